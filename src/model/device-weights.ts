import type { Engine } from "../engine/engine.js";
import { packedBLength, type Kernels } from "../engine/kernels.js";
import { packedBlockDepth } from "../engine/js/gemm.js";
import { bf16BitsToF32Bits, f16BitsToF32Bits, f32BitsToBf16Bits, f32BitsToF16Bits } from "../io/half.js";
import { transpose } from "./families/hf-layout.js";
import { Tensor } from "../engine/tensor.js";
import type { HookedTransformerConfig } from "./config.js";
import { kvName, type Weights } from "./weights.js";

/**
 * Byte pointers of one block's parameters in the engine's memory, in the layouts the kernels read.
 * Matrices marked "packed" are the [in, out] matrix packed once by `prepackB` for `gemmPacked`.
 */
export interface BlockPointers {
  wq: number; wk: number; wv: number; // packed [D, H*d] and [D, Hk*d]: x @ w gives q in [rows, H, d] order
  /** The same unpacked, for one head's columns at a time (split q/k/v inputs); 0 until a pass first needs them. */
  wqRaw: number; wkRaw: number; wvRaw: number;
  bq: number; bk: number; bv: number; // [H*d], [Hk*d]
  wo: number;                         // packed [H*d, D]
  woHeads: number;                    // [H*d, D] unpacked (rows h*d..(h+1)*d: head h's W_O) for hook_result, else 0
  bo: number;                         // [D]
  wgate: number;                      // packed [D, M], or 0 without a gated MLP
  win: number; bin: number;           // packed [D, M], [M]
  wout: number; bout: number;         // packed [M, D], [D]
  ln1Post: number; ln2Post: number;   // [D] post-norm weights (Gemma-2), or 0
}

export interface DevicePointers {
  /** How the packed matrices (every block's and W_U) are stored: f32, bf16 (read by gemmPacked16) or f16 (gemmPackedF16). */
  dtype: WeightDtype;
  wE: number;   // [V, D]
  wPos: number; // [nCtx, D], or 0 with rotary embeddings
  blocks: BlockPointers[];
  wU: number;   // packed [D, V]
  bU: number;   // [V]
}

/** A matrix the forward multiplies by, [rows (in), cols (out)] row-major, with the bias added after it. */
interface HostMatrix {
  W: Float32Array;
  bias: Float32Array;
  rows: number;
  cols: number;
}

/**
 * The forward's matrices as the kernels use them, on the host. LayerNorm weights are folded into
 * the matrices that read them (without centring: that is foldLn's job and it changes hook values),
 * so every norm kernel call is the same affine-free one.
 */
function hostMatrices(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>) {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M } = cfg;
  const hasNorm = cfg.normalizationType === "LN" || cfg.normalizationType === "RMS";
  const get = (name: string): Float32Array => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`uploadWeights: missing parameter ${name}`);
    return t.data;
  };
  const lnOf = (name: string) => hasNorm ? { w: get(`${name}.w`), b: cfg.normalizationType === "LN" ? get(`${name}.b`) : undefined } : undefined;

  // W: [D, n] rows scaled by ln.w; bias += ln.b @ W (original W).
  const foldInto = (W: Float32Array, bias: Float32Array, n: number, ln: ReturnType<typeof lnOf>): HostMatrix => {
    if (ln === undefined) return { W, bias, rows: D, cols: n };
    const Wf = new Float32Array(W.length);
    const bf = bias.slice();
    for (let i = 0; i < D; i++) {
      const w = ln.w[i]!;
      const b = ln.b?.[i] ?? 0;
      for (let j = 0; j < n; j++) {
        const x = W[i * n + j]!;
        Wf[i * n + j] = x * w;
        if (b !== 0) bf[j]! += x * b;
      }
    }
    return { W: Wf, bias: bf, rows: D, cols: n };
  };
  // [heads, D, d] -> [D, heads*d]
  const headsToColumns = (W: Float32Array, heads: number) => {
    const out = new Float32Array(D * heads * d);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D; i++) out.set(W.subarray((h * D + i) * d, (h * D + i + 1) * d), i * heads * d + h * d);
    }
    return out;
  };
  return {
    get,
    /** Block l's matrices (computed when asked, so only one block's copies live at a time). */
    block(l: number) {
      const a = `blocks.${l}.attn.`;
      const m = `blocks.${l}.mlp.`;
      const ln1 = lnOf(`blocks.${l}.ln1`);
      const ln2 = lnOf(`blocks.${l}.ln2`);
      return {
        q: foldInto(headsToColumns(get(`${a}W_Q`), H), get(`${a}b_Q`), H * d, ln1),
        k: foldInto(headsToColumns(get(`${a}${kvName(cfg, "W_K")}`), Hk), get(`${a}${kvName(cfg, "b_K")}`), Hk * d, ln1),
        v: foldInto(headsToColumns(get(`${a}${kvName(cfg, "W_V")}`), Hk), get(`${a}${kvName(cfg, "b_V")}`), Hk * d, ln1),
        o: { W: get(`${a}W_O`), bias: get(`${a}b_O`), rows: H * d, cols: D },
        // A gated MLP adds b_in after the product (as TransformerLens); its projections carry no bias.
        in: foldInto(get(`${m}W_in`), cfg.gatedMlp ? new Float32Array(M) : get(`${m}b_in`), M, ln2),
        gate: cfg.gatedMlp ? foldInto(get(`${m}W_gate`), new Float32Array(M), M, ln2) : undefined,
        out: { W: get(`${m}W_out`), bias: get(`${m}b_out`), rows: M, cols: D },
      };
    },
    unembed: () => foldInto(get("unembed.W_U"), get("unembed.b_U"), cfg.dVocab, lnOf("ln_final")),
  };
}

/** How a model's packed weight matrices are stored in the engine. */
export type WeightDtype = "f32" | "bf16" | "f16";

/** The storage types {@link WeightDtype} allows, for checks and help texts. */
export const WEIGHT_DTYPES: readonly WeightDtype[] = ["f32", "bf16", "f16"];

/** The packed product that reads weights stored as `dtype`. */
export function packedProduct(kernels: Kernels, dtype: WeightDtype): Kernels["gemmPacked"] {
  return dtype === "bf16" ? kernels.gemmPacked16 : dtype === "f16" ? kernels.gemmPackedF16 : kernels.gemmPacked;
}

/**
 * A host matrix packed for gemmPacked: W itself [rows, cols], or (transposed) Wᵀ [cols, rows]; as
 * bf16 or f16 (for gemmPacked16 / gemmPackedF16) the packed floats rounded to nearest even, half the memory.
 */
function uploadPacked(engine: Engine, m: HostMatrix, transposed: boolean, dtype: WeightDtype = "f32"): number {
  // 16 bits: a column block at a time (Wᵀ transposed on the host first: prepackB of Wᵀ is the same layout).
  if (dtype !== "f32") return transposed ? pack16(engine, transpose(m.W, m.rows, m.cols), m.cols, m.rows, dtype) : pack16(engine, m.W, m.rows, m.cols, dtype);
  const raw = engine.upload(m.W); // the unpacked copy lives only during the call
  const [k, n] = transposed ? [m.cols, m.rows] : [m.rows, m.cols];
  const packed = engine.alloc(packedBLength(k, n));
  engine.kernels.prepackB(raw, m.cols, k, n, transposed ? 1 : 0, packed);
  engine.free(raw);
  return packed;
}

/**
 * W [k, n] packed for gemmPacked16 or gemmPackedF16 (prepackB's layout, each element rounded to
 * bf16 or f16), a block of `chunk` columns at a time (a multiple of 32): only that block's f32
 * copies ever exist in the engine, so a 1 GiB W_U needs 0.5 GiB and a few MiB, not 2.5 GiB for a
 * moment. The bits are the whole matrix's: prepackB's K blocks depend on k alone, and a column
 * block's slivers are its columns' slivers of the whole layout.
 */
export function pack16(engine: Engine, W: Float32Array, k: number, n: number, dtype: "bf16" | "f16",
  chunk = Math.max(32, Math.floor((8 << 20) / k) & ~31)): number {
  if (chunk % 32 !== 0 || chunk <= 0) throw new Error(`pack16: chunk must be a positive multiple of 32, got ${chunk}`);
  const round = dtype === "f16" ? engine.kernels.toF16 : engine.kernels.toBf16;
  const NR = 8;
  const nPad = Math.ceil(n / NR) * NR;
  const kcMax = packedBlockDepth(k);
  const half = engine.alloc(Math.ceil(packedBLength(k, n) / 2));
  const block = new Float32Array(k * Math.min(chunk, n));
  for (let j0 = 0; j0 < n; j0 += chunk) {
    const w = Math.min(chunk, n - j0);
    for (let p = 0; p < k; p++) block.set(W.subarray(p * n + j0, p * n + j0 + w), p * w);
    const raw = engine.upload(block.subarray(0, k * w));
    const packed = engine.alloc(packedBLength(k, w));
    engine.kernels.prepackB(raw, w, k, w, 0, packed);
    engine.free(raw);
    const wPad = Math.ceil(w / NR) * NR;
    // K block pc of the column block: kc · wPad floats at pc · wPad, which go at pc · nPad + kc · j0 of the whole.
    for (let pc = 0; pc < k; pc += kcMax) {
      const kc = Math.min(kcMax, k - pc);
      round(packed + pc * wPad * 4, half + (pc * nPad + kc * j0) * 2, kc * wPad);
    }
    engine.free(packed);
  }
  return half;
}

/**
 * Uploads a model's weights once, the matrices packed for gemmPacked, so every norm kernel call
 * is affine-free and `hook_normalized` is the norm's output before its weights apply.
 */
export function uploadWeights(engine: Engine, cfg: HookedTransformerConfig, weights: Weights, dtype: WeightDtype = "f32"): DevicePointers {
  if (!WEIGHT_DTYPES.includes(dtype)) throw new Error(`dtype must be "f32", "bf16" or "f16", got ${JSON.stringify(dtype)}`);
  const host = hostMatrices(cfg, weights);
  const up = (data: Float32Array) => engine.upload(data);
  const packed = (m: HostMatrix) => uploadPacked(engine, m, false, dtype);
  const blocks: BlockPointers[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const { q, k, v, o, in: mlpIn, gate, out } = host.block(l);
    blocks.push({
      wq: packed(q), wk: packed(k), wv: packed(v), bq: up(q.bias), bk: up(k.bias), bv: up(v.bias),
      wqRaw: 0, wkRaw: 0, wvRaw: 0,
      wo: packed(o), woHeads: cfg.useAttnResult ? up(o.W) : 0, bo: up(o.bias),
      wgate: gate ? packed(gate) : 0,
      win: packed(mlpIn), bin: up(cfg.gatedMlp ? host.get(`blocks.${l}.mlp.b_in`) : mlpIn.bias),
      wout: packed(out), bout: up(out.bias),
      ln1Post: cfg.postNorms ? up(host.get(`blocks.${l}.ln1_post.w`)) : 0,
      ln2Post: cfg.postNorms ? up(host.get(`blocks.${l}.ln2_post.w`)) : 0,
    });
  }
  const unembed = host.unembed();
  return {
    dtype,
    wE: up(host.get("embed.W_E")),
    wPos: cfg.positionalEmbeddingType === "standard" ? up(host.get("pos_embed.W_pos")) : 0,
    blocks,
    wU: packed(unembed),
    bU: up(unembed.bias),
  };
}

/**
 * Uploads W_Q, W_K and W_V unpacked (the split q/k/v inputs' per-head products read them), once:
 * the first pass that hooks a split input pays for it, 4 · D · (H + 2·Hk) · d_head bytes a block,
 * and the model keeps them until dispose.
 */
export function uploadRawProjections(engine: Engine, cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>, device: DevicePointers): void {
  if (device.blocks.every((b) => b.wqRaw !== 0)) return;
  const host = hostMatrices(cfg, weights);
  device.blocks.forEach((b, l) => {
    if (b.wqRaw !== 0) return;
    const { q, k, v } = host.block(l);
    b.wqRaw = engine.upload(q.W);
    b.wkRaw = engine.upload(k.W);
    b.wvRaw = engine.upload(v.W);
  });
}

/** One block's transposed matrices, packed: the backward's products g_in = g_out · Wᵀ. */
export interface TransposedBlockPointers {
  wqT: number; wkT: number; wvT: number; // [H*d, D], [Hk*d, D]
  woT: number;                           // [D, H*d]
  wgateT: number;                        // [M, D], or 0 without a gated MLP
  winT: number;                          // [M, D]
  woutT: number;                         // [D, M]
}

export interface TransposedPointers {
  /** How the transposed matrices are stored: the model's own dtype (the backward reads them with its packed product). */
  dtype: WeightDtype;
  blocks: TransposedBlockPointers[];
  /**
   * [V, D], or 0 until a backward needs the dense unembedding (a metric that reads every logit);
   * metrics declaring their tokens read W_U's columns instead (see unembedColumns).
   */
  wUT: number;
}

/**
 * Packs the transpose of every matrix the forward multiplies by, for the backward's products at
 * the forward's speed. Costs as much engine memory as the forward's matrices again (the
 * embeddings aside); a model builds them at its first backward and keeps them until dispose.
 */
export function uploadTransposedWeights(engine: Engine, cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>,
  dtype: WeightDtype = "f32"): TransposedPointers {
  const host = hostMatrices(cfg, weights);
  const packedT = (m: HostMatrix) => uploadPacked(engine, m, true, dtype);
  const blocks: TransposedBlockPointers[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const { q, k, v, o, in: mlpIn, gate, out } = host.block(l);
    blocks.push({
      wqT: packedT(q), wkT: packedT(k), wvT: packedT(v), woT: packedT(o),
      wgateT: gate ? packedT(gate) : 0, winT: packedT(mlpIn), woutT: packedT(out),
    });
  }
  return { dtype, blocks, wUT: 0 };
}

/** Packs W_Uᵀ [V, D] for the backward of a metric that reads every logit. */
export function uploadTransposedUnembed(engine: Engine, cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>,
  dtype: WeightDtype = "f32"): number {
  return uploadPacked(engine, hostMatrices(cfg, weights).unembed(), true, dtype);
}

/**
 * The columns of W_U the forward multiplies by (ln_final's weight folded in, as at upload) for
 * the given tokens: [tokens.length, D], row i = column tokens[i].
 */
export function unembedColumns(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>, tokens: readonly number[]): Float32Array {
  const { dModel: D, dVocab: V } = cfg;
  const wU = weights.get("unembed.W_U")!.data;
  const hasNorm = cfg.normalizationType === "LN" || cfg.normalizationType === "RMS";
  const lnW = hasNorm ? weights.get("ln_final.w")!.data : undefined;
  const out = new Float32Array(tokens.length * D);
  tokens.forEach((t, i) => {
    for (let j = 0; j < D; j++) out[i * D + j] = lnW === undefined ? wU[j * V + t]! : wU[j * V + t]! * lnW[j]!;
  });
  return out;
}

/** Frees everything {@link uploadTransposedWeights} allocated. */
export function freeTransposedWeights(engine: Engine, p: TransposedPointers): void {
  for (const b of p.blocks) for (const ptr of Object.values(b) as number[]) engine.free(ptr);
  engine.free(p.wUT);
  p.wUT = 0;
}

/** Frees everything {@link uploadWeights} allocated. */
export function freeWeights(engine: Engine, p: DevicePointers): void {
  engine.free(p.wE);
  engine.free(p.wPos);
  for (const b of p.blocks) for (const ptr of Object.values(b) as number[]) engine.free(ptr);
  engine.free(p.wU);
  engine.free(p.bU);
}

/** The matrices a 16-bit model stores in 16 bits: every block's projections and W_U. */
const MATRIX_16 = /(^|\.)_?W_(Q|K|V|O|in|gate|out|U)$/;

/** The largest finite f16 (a value that rounds above it becomes infinite). */
const F16_MAX = 65504;

/**
 * The weights of a model stored as bf16 or f16, as the engine holds them: every matrix in
 * {@link MATRIX_16} rounded (nearest, ties to even) and kept as f32, so what the host computes
 * with them (direct path shortcuts, edge writes, the sweeps' unembedding of a few columns)
 * equals what the engine's products compute. Other tensors are shared, not copied.
 *
 * @throws RangeError for f16 when a matrix holds a value beyond f16's range (±65504), naming it
 */
export function roundedWeights(weights: ReadonlyMap<string, Tensor>, dtype: "bf16" | "f16"): Weights {
  // A map this function made for the same dtype is returned as it is: fromPretrained rounds before
  // the constructor does, and the second pass over every weight would find nothing to change.
  if (ROUNDED.get(weights) === dtype) return weights as Weights;
  const round = dtype === "bf16" ? (b: number) => bf16BitsToF32Bits(f32BitsToBf16Bits(b)) : (b: number) => f16BitsToF32Bits(f32BitsToF16Bits(b));
  const out: Weights = new Map();
  for (const [name, t] of weights) {
    if (!MATRIX_16.test(name)) { out.set(name, t as Tensor); continue; }
    const source = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    // Copied from the first value rounding changes: a matrix already rounded is shared, not copied.
    let data: Float32Array | undefined;
    let bits: Uint32Array | undefined;
    for (let i = 0; i < source.length; i++) {
      if (dtype === "f16" && Math.abs(t.data[i]!) >= F16_MAX + 16) { // 65520 and beyond round to infinity
        throw new RangeError(`${name}[${i}] = ${t.data[i]} is beyond f16's range (±65504), so it cannot be stored as f16; use dtype "bf16" (f32's range) or "f32"`);
      }
      const rounded = round(source[i]!);
      if (bits === undefined && rounded !== source[i]) {
        data = t.data.slice();
        bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      }
      if (bits !== undefined) bits[i] = rounded;
    }
    out.set(name, data === undefined ? t as Tensor : new Tensor(data, t.shape));
  }
  ROUNDED.set(out, dtype);
  return out;
}

/** The weight maps {@link roundedWeights} returned, with the dtype they were rounded to. */
const ROUNDED = new WeakMap<ReadonlyMap<string, Tensor>, "bf16" | "f16">();
