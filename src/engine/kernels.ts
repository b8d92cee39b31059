/** The activations {@link Kernels.gemmPacked} can apply to its output (its `act` argument). */
export const GemmActivation = { none: 0, geluNew: 1, gelu: 2, silu: 3 } as const;

/**
 * The kernel interface shared by both backends.
 *
 * Every pointer is a byte offset into the engine's linear memory (0 means
 * "absent" for optional operands); every size is an element count. Matrices are
 * row-major with an explicit leading dimension (elements between consecutive
 * rows). The `wasm` backend runs the AssemblyScript kernels in `assembly/`; the
 * `js` backend (src/engine/js/) is a plain TypeScript twin of each kernel with
 * the same signature and is the reference the WASM kernels are tested against.
 */
export interface Kernels {
  // ---- gemm (assembly/gemm.ts) ----
  /**
   * C = A·op(B) + bias, or C += A·op(B) + bias when `accumulate` is 1.
   * a: [m, k] (lda) ; b: [k, n] (ldb) when transB = 0, [n, k] (ldb) when transB = 1
   * c: [m, n] (ldc) ; bias: [n] or 0
   */
  gemm(a: number, lda: number, b: number, ldb: number, c: number, ldc: number, bias: number,
    m: number, n: number, k: number, transB: number, accumulate: number): void;
  /**
   * Packs B once for any number of {@link Kernels.gemmPacked} products (weights, packed at upload).
   * b: [k, n] (ldb), or [n, k] when transB = 1 -> out: {@link packedBLength}(k, n) floats in the
   * layout gemm packs into its scratch: K blocks of depth kc, each [ceil(n / 8) slivers][kc][8].
   */
  prepackB(b: number, ldb: number, k: number, n: number, transB: number, out: number): void;
  /**
   * gemm on a prepacked B, bit for bit what gemm gives: C[:, j0:j1] = act(A·B[:, j0:j1] + bias),
   * or act(C + A·B + bias) when `accumulate` is 1. n is B's full width; c and bias point at
   * column 0; j0 is a multiple of 32, j1 <= n (so threads can split the columns of one product).
   * `act` ({@link GemmActivation}) applies an activation in the same pass, bit for bit what its
   * own kernel would give afterwards (the MLP's bias + activation, fused).
   */
  gemmPacked(a: number, lda: number, packed: number, c: number, ldc: number, bias: number,
    m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void;

  // ---- layernorm (assembly/layernorm.ts) ----
  /**
   * x: [rows, d] -> out: [rows, d], scale: [rows] (TransformerLens hook_scale = sqrt(var + eps)).
   * out = (x - mean) / scale * w + b ; w and b may be 0 (no affine; each independently).
   * out may alias x.
   */
  layerNorm(x: number, out: number, scale: number, w: number, b: number, rows: number, d: number, eps: number): void;
  /** x: [rows, d] -> out: [rows, d], scale: [rows] = sqrt(mean(x²) + eps); out = x / scale * w (w may be 0). */
  rmsNorm(x: number, out: number, scale: number, w: number, rows: number, d: number, eps: number): void;
  /** resid = a + r (both [rows, d]), then layerNorm(resid) into out/scale. resid may alias a or r. */
  addLayerNorm(a: number, r: number, resid: number, out: number, scale: number, w: number, b: number,
    rows: number, d: number, eps: number): void;
  /** resid = a + r (both [rows, d]), then rmsNorm(resid) into out/scale. resid may alias a or r. */
  addRmsNorm(a: number, r: number, resid: number, out: number, scale: number, w: number,
    rows: number, d: number, eps: number): void;

  // ---- attention (assembly/attention.ts) ----
  // q: [batch, qLen, nHeads, dHead]; k, v: [batch, kLen, nKvHeads, dHead] (query head h reads
  // kv head floor(h / (nHeads / nKvHeads))); z: [batch, qLen, nHeads, dHead];
  // scores, pattern: [batch, nHeads, qLen, kLen]; keyMask: [batch, kLen] with 1 = attend, 0 = padding, or 0.
  // The queries are the last qLen of the kLen positions: query i sits at position kLen - qLen + i
  // (qLen = kLen for a whole sequence; fewer when earlier positions' keys and values were kept).
  // Each computes the query heads [h0, h1) only (0 and nHeads for all; threads split by heads).
  /** scores = q·kᵀ * scale, -Infinity where key j is after the query's position or the key is masked. */
  attnScores(q: number, k: number, scores: number, keyMask: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
    h0: number, h1: number): void;
  /** z = pattern · v. */
  attnApplyPattern(pattern: number, v: number, z: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, h0: number, h1: number): void;
  /** Fused causal attention: z = softmax(q·kᵀ * scale, masked) · v without materialising scores or pattern. */
  attention(q: number, k: number, v: number, z: number, keyMask: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
    h0: number, h1: number): void;

  // ---- activations (assembly/activations.ts) ----
  /** out = gelu_new(x) (GPT-2 tanh form), n elements; out may alias x. */
  geluNew(x: number, out: number, n: number): void;
  /** out = exact (erf) gelu(x). */
  geluExact(x: number, out: number, n: number): void;
  /** out = x * sigmoid(x). */
  silu(x: number, out: number, n: number): void;
  /** out = silu(gate) * up (SwiGLU), n elements; out may alias either input. */
  swiglu(gate: number, up: number, out: number, n: number): void;
  /** Row-wise softmax over the last dim: x: [rows, n] -> out; -Infinity maps to 0; an all -Infinity row gives 0s. */
  softmax(x: number, out: number, rows: number, n: number): void;

  // ---- rotary (assembly/rotary.ts) ----
  /**
   * Rotary embeddings, rotate_half convention: x, out: [rows, nHeads, dHead] (out may alias x),
   * cos, sin: [rows, dHead / 2] (each row's angles); dimension i pairs with i + dHead/2.
   */
  rotary(x: number, out: number, cos: number, sin: number, rows: number, nHeads: number, dHead: number): void;

  // ---- elementwise (assembly/elementwise.ts) ----
  /** out = a + b, n elements. */
  add(a: number, b: number, out: number, n: number): void;
  /** out[r, :] = x[r, :] + row[:] for x: [rows, n], row: [n]. */
  addRow(x: number, row: number, out: number, rows: number, n: number): void;
}

/** Names of every kernel, for tests and for binding the WASM exports. */
export const KERNEL_NAMES = [
  "gemm", "prepackB", "gemmPacked",
  "layerNorm", "rmsNorm", "addLayerNorm", "addRmsNorm",
  "attnScores", "attnApplyPattern", "attention",
  "geluNew", "geluExact", "silu", "swiglu", "softmax", "rotary",
  "add", "addRow",
] as const satisfies readonly (keyof Kernels)[];

/** Floats a B of depth k and width n takes once packed by {@link Kernels.prepackB}: n rounded up to 8 columns. */
export function packedBLength(k: number, n: number): number {
  return k * Math.ceil(n / 8) * 8;
}
