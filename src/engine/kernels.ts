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
  /**
   * gemmPacked on a B packed as bf16 (prepackB, then toBf16 on the packed floats): each packed
   * group widened to f32 into the scratch as it is reached, f32 accumulation; packed16: packedBLength(k, n) u16.
   */
  gemmPacked16(a: number, lda: number, packed16: number, c: number, ldc: number, bias: number,
    m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void;
  /** x: [n] f32 -> out: [n] bf16 (u16), round to nearest even; NaN stays NaN. */
  toBf16(x: number, out: number, n: number): void;
  /**
   * gemmPacked on a B packed as IEEE half floats (prepackB, then toF16 on the packed floats):
   * each group widened to f32 exactly, f32 accumulation; packed16: packedBLength(k, n) u16.
   */
  gemmPackedF16(a: number, lda: number, packed16: number, c: number, ldc: number, bias: number,
    m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void;
  /** x: [n] f32 -> out: [n] f16 (u16), round to nearest even; ±inf beyond ±65504; NaN stays NaN. */
  toF16(x: number, out: number, n: number): void;

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
  /**
   * scores = q·kᵀ * scale, -Infinity where key j is after the query's position, outside its
   * sliding window (window > 0: keys position - window + 1 .. position only; 0: none) or masked.
   */
  attnScores(q: number, k: number, scores: number, keyMask: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
    h0: number, h1: number, window: number): void;
  /** z = pattern · v. */
  attnApplyPattern(pattern: number, v: number, z: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, h0: number, h1: number): void;
  /** Fused causal attention: z = softmax(q·kᵀ * scale, masked, windowed as attnScores) · v without materialising scores or pattern. */
  attention(q: number, k: number, v: number, z: number, keyMask: number,
    batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
    h0: number, h1: number, window: number): void;

  // ---- activations (assembly/activations.ts) ----
  /** out = gelu_new(x) (GPT-2 tanh form), n elements; out may alias x. */
  geluNew(x: number, out: number, n: number): void;
  /** out = exact (erf) gelu(x). */
  geluExact(x: number, out: number, n: number): void;
  /** out = x * sigmoid(x). */
  silu(x: number, out: number, n: number): void;
  /** out = silu(gate) * up (SwiGLU), n elements; out may alias either input. */
  swiglu(gate: number, up: number, out: number, n: number): void;
  /** out = gelu_new(gate) * up (Gemma's gated MLP), n elements; out may alias either input. */
  geglu(gate: number, up: number, out: number, n: number): void;
  /** out = cap · tanh(x / cap) with -Infinity kept (soft-capped scores and logits), n elements; out may alias x. */
  softcap(x: number, out: number, n: number, cap: number): void;
  /** Row-wise softmax over the last dim: x: [rows, n] -> out; -Infinity maps to 0; an all -Infinity row gives 0s. */
  softmax(x: number, out: number, rows: number, n: number): void;

  // ---- rotary (assembly/rotary.ts) ----
  /**
   * Rotary embeddings, rotate_half convention, of each head's first `rotated` dimensions (dHead, or
   * fewer: partial rotary): x, out: [rows, nHeads, dHead] (out may alias x), cos, sin:
   * [rows, rotated / 2] (each row's angles); dimension i pairs with i + rotated/2, the rest are copied.
   */
  rotary(x: number, out: number, cos: number, sin: number, rows: number, nHeads: number, dHead: number, rotated: number): void;

  // ---- elementwise (assembly/elementwise.ts) ----
  /** out = a + b, n elements. */
  add(a: number, b: number, out: number, n: number): void;
  /** out[r, :] = x[r, :] + row[:] for x: [rows, n], row: [n]. */
  addRow(x: number, row: number, out: number, rows: number, n: number): void;
  /** The index of x's first NaN or ±Infinity among n elements, or -1 when all are finite. */
  firstNonFinite(x: number, n: number): number;

  // ---- backward: norms (assembly/backward-norm.ts) ----
  // The gradient of a forward step's input from its output's gradient and what the forward kept.
  // norm: the norm's output before its weight (hook_normalized) [rows, d]; scale: [rows] (hook_scale).
  /** gScale: [rows] = -(gNorm · norm) / scale, row by row (normalized = x̂ / scale). */
  normScaleGrad(gNorm: number, norm: number, scale: number, gScale: number, rows: number, d: number): void;
  /**
   * gx: [rows, d] += the norm's input gradient: g = gNorm / scale + gScale · norm / d, minus g's row
   * mean when `centred` is 1 (LayerNorm; 0 for RMSNorm).
   */
  normInputGrad(gNorm: number, norm: number, scale: number, gScale: number, gx: number, rows: number, d: number,
    centred: number): void;

  // ---- backward: activations (assembly/backward-activations.ts) ----
  /** gPre = gPost · gelu_new'(pre), n elements. */
  geluNewGrad(pre: number, gPost: number, gPre: number, n: number): void;
  /** gPre = gPost · gelu'(pre) (exact erf gelu: Φ(x) + x φ(x)). */
  geluExactGrad(pre: number, gPost: number, gPre: number, n: number): void;
  /** gPre = gPost · silu'(pre) = gPost · σ(x)(1 + x(1 - σ(x))). */
  siluGrad(pre: number, gPost: number, gPre: number, n: number): void;
  /** post = silu(gate) · up: gGate = gPost · up · silu'(gate), gUp = gPost · silu(gate); n elements. */
  swigluGrad(gate: number, up: number, gPost: number, gGate: number, gUp: number, n: number): void;
  /** post = gelu_new(gate) · up: gGate = gPost · up · gelu_new'(gate), gUp = gPost · gelu_new(gate). */
  gegluGrad(gate: number, up: number, gPost: number, gGate: number, gUp: number, n: number): void;
  /** Softmax's backward row by row: gScores = pattern · (gPattern - Σ_j pattern · gPattern); all [rows, n]. */
  softmaxGrad(pattern: number, gPattern: number, gScores: number, rows: number, n: number): void;

  // ---- backward: attention (assembly/backward-attention.ts) ----
  // Whole sequences (qLen = kLen = pos): q, z, gq, gz: [batch, pos, nHeads, dHead]; k, v, gk, gv:
  // [batch, pos, nKvHeads, dHead]; pattern, gPattern, gScores: [batch, nHeads, pos, pos].
  // Each computes the query heads [h0, h1) and the kv heads they read, [h0 / g, h1 / g) with
  // g = nHeads / nKvHeads: h0 and h1 must be multiples of g, so no two calls (threads) share a kv
  // head's gradient, which sums over the g query heads of its group.
  /**
   * gPattern[b, h, i, j] = gz[b, i, h] · v[b, j, kv(h)] for every key j (z is linear in all of them);
   * gv[b, j, kv] = Σ over the group's heads h and queries i of pattern[b, h, i, j] · gz[b, i, h] (overwritten).
   */
  patternAndValueGrad(gz: number, v: number, pattern: number, gPattern: number, gv: number,
    batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, h0: number, h1: number): void;
  /**
   * From gScores, the gradient of scores = q·kᵀ · scale at the keys each query sees (j <= i, keyMask[b, j]
   * != 0; keyMask 0 for none; the others, -∞ in the forward, pass nothing): gq = scale · gScores · k and
   * gk = scale · gScoresᵀ · q summed over the group's heads (both overwritten).
   */
  queryKeyGrad(gScores: number, q: number, k: number, keyMask: number, gq: number, gk: number,
    batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, scale: number, h0: number, h1: number): void;
}

/** Names of every kernel, for tests and for binding the WASM exports. */
export const KERNEL_NAMES = [
  "gemm", "prepackB", "gemmPacked", "gemmPacked16", "toBf16", "gemmPackedF16", "toF16",
  "layerNorm", "rmsNorm", "addLayerNorm", "addRmsNorm",
  "attnScores", "attnApplyPattern", "attention",
  "geluNew", "geluExact", "silu", "swiglu", "geglu", "softcap", "softmax", "rotary",
  "add", "addRow", "firstNonFinite",
  "normScaleGrad", "normInputGrad", "geluNewGrad", "geluExactGrad", "siluGrad", "swigluGrad", "gegluGrad", "softmaxGrad",
  "patternAndValueGrad", "queryKeyGrad",
] as const satisfies readonly (keyof Kernels)[];

/** Floats a B of depth k and width n takes once packed by {@link Kernels.prepackB}: n rounded up to 8 columns. */
export function packedBLength(k: number, n: number): number {
  return k * Math.ceil(n / 8) * 8;
}
