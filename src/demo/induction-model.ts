/**
 * The embedded demo model: a 2-layer, 4-head GPT-2 whose weights are written by hand
 * (deterministically, from a fixed seed) so that it contains a known induction circuit.
 *
 * How the circuit is laid out. The residual stream is split into orthogonal subspaces of a
 * seeded random orthonormal basis whose first vector is the all-ones direction; nothing the
 * circuit relies on lives along that direction, so LayerNorm's centring never touches it, and
 * each position's norm is nearly the same, so LayerNorm's rescaling is a near-constant factor
 * that the designed scales account for:
 *
 * - TOK (32 dims): the current token. Token v is ±(row v mod 32 of a Sylvester Hadamard
 *   matrix): two codes are equal, opposite or exactly orthogonal, so "same token" is a clean
 *   dot-product test.
 * - POS (16 dims): the position, as 8 cos/sin pairs at frequencies π(k + ½)/8. Two codes'
 *   dot product is 1 at equal positions, −1 sixteen apart and exactly 0 otherwise (for
 *   distances below 32 = nCtx), and "one position back" is a rotation: a linear map.
 * - PREV (32 dims): written by the layer-0 previous-token head: the previous token's code.
 * - OUT (32 dims): written by the layer-1 induction head: the code of the predicted token,
 *   the only subspace the unembedding is designed to read.
 * - JUNK (15 dims): where the other heads and the MLPs write.
 *
 * Every weight also gets a little seeded noise, the LayerNorms get mild non-trivial weights
 * and biases (compensated exactly in the matrices that read them, so processing by
 * `processWeights` recovers the designed matrices), and the other heads do real, visible
 * things (attend to BOS, to themselves, or nearly uniformly), so the planted path has to
 * stand out from a model that is not trivially sparse.
 */
import { Engine } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import { makeConfig, type HookedTransformerConfig } from "../model/config.js";
import { HookedTransformer } from "../model/hooked-transformer.js";
import { processWeights } from "../model/process-weights.js";
import type { Weights } from "../model/weights.js";
import { DEMO_BOS, DEMO_DIMS } from "./constants.js";
import { gpt2HfFiles } from "./hf-files.js";
import { SeededRandom } from "./random.js";

export { DEMO_BOS, DEMO_DIMS } from "./constants.js";
export { demoPrompts, type DemoPrompts, type DemoPromptsOptions } from "./prompts.js";

const { nLayers: L, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx: N_CTX } = DEMO_DIMS;

const MODEL_SEED = 0x1d0c7;

/** What each head does; only the planted heads are designed to read PREV into their keys or to write OUT. */
type Role = "prev" | "induction" | "bos" | "self" | "uniform";
const ROLES: readonly (readonly Role[])[] = [
  ["bos", "uniform", "prev", "self"],
  ["self", "induction", "bos", "uniform"],
];

/** The planted heads, as [layer, head]. */
export const PLANTED_HEADS = Object.freeze({
  prevTokenHead: [0, 2] as [0, number],
  inductionHead: [1, 1] as [1, number],
});

interface Subspace { start: number; size: number }
const TOK: Subspace = { start: 1, size: 32 };
const POS: Subspace = { start: 33, size: 16 };
const PREV: Subspace = { start: 49, size: 32 };
const OUT: Subspace = { start: 81, size: 32 };
const JUNK: Subspace = { start: 113, size: 15 };

/** Norms of what each writer puts in the residual stream. */
const NORM = { tok: 1, pos: 1, prev: 1, out: 2, junk: 0.3 };
/**
 * Attention scores (after the 1/sqrt(dHead) scale) at the intended key. The sharp heads'
 * wrong keys score 0 (or negative), so e^14 against at most 31 others keeps > 99.9%.
 */
const SCORE = { prev: 14, induction: 14, bos: 8, self: 10, uniformStd: 0.5 };
/** Logit of the copied token at the designed scale. */
const LOGIT = 10;
/** Standard deviation of the noise on each weight, relative to 1/sqrt(fan-in). */
const NOISE = 0.02;
/** Fraction of a non-planted writer's output norm that leaks out of JUNK into the whole stream. */
const LEAK = 0.3;

/**
 * LayerNorm maps a centred x to sqrt(dModel) * x / |x|, so a unit code written at norm n
 * in a residual stream of norm |x| is read at sqrt(dModel) * n / |x|. These are the
 * expected |x| entering each layer's attention and the unembedding (layer 0's is exact).
 */
const JUNK_WRITERS_PER_LAYER = 4; // three non-planted heads and the MLP
const RESID_SQ_0 = NORM.tok ** 2 + NORM.pos ** 2;
const RESID_SQ_1 = RESID_SQ_0 + NORM.prev ** 2 + JUNK_WRITERS_PER_LAYER * NORM.junk ** 2;
const RESID_SQ_FINAL = RESID_SQ_1 + NORM.out ** 2 + JUNK_WRITERS_PER_LAYER * NORM.junk ** 2;
const READ_GAIN = [Math.sqrt(D / RESID_SQ_0), Math.sqrt(D / RESID_SQ_1)];
const READ_GAIN_FINAL = Math.sqrt(D / RESID_SQ_FINAL);

/** A head's designed matrices, acting on the LayerNorm's normalised output (before its weight and bias). */
interface HeadDesign {
  AQ: Float64Array; AK: Float64Array; AV: Float64Array; // [D, d]
  bQ: Float64Array; bK: Float64Array; bV: Float64Array; // [d]
  WO: Float64Array;                                      // [d, D]
}

/** The result of {@link buildInductionModelWeights}. */
export interface InductionModel {
  cfg: HookedTransformerConfig;
  weights: Weights;
  planted: { prevTokenHead: [0, number]; inductionHead: [1, number] };
}

/**
 * Builds the demo model's unprocessed weights (normalizationType "LN", TransformerLens
 * names and shapes, `unembed.b_U` zero as in a GPT-2 checkpoint). Deterministic: every call
 * returns the same bits.
 *
 * Planted: `blocks.0` head 2 attends from each position to the previous one and writes that
 * token's identity into a "previous token" subspace; `blocks.1` head 1 matches its query (the
 * current token) against keys read from that subspace, so on a repeated sequence it attends
 * to the token right after the earlier occurrence of the current token and copies it to the
 * logits. The other heads attend to BOS, to themselves, or nearly uniformly.
 *
 * @example
 * ```ts
 * const { cfg, weights, planted } = buildInductionModelWeights();
 * planted.inductionHead;                                  // [1, 1]
 * const { cfg: pcfg, weights: pw } = processWeights(cfg, weights);
 * const model = await HookedTransformer.create(pcfg, pw);
 * ```
 */
export function buildInductionModelWeights(): InductionModel {
  const rng = new SeededRandom(MODEL_SEED);
  const basis = orthonormalBasis(D, rng);
  const lift = (sub: Subspace, coords: ArrayLike<number>): Float64Array => {
    const out = new Float64Array(D);
    for (let c = 0; c < coords.length; c++) {
      const e = basis[sub.start + c]!;
      for (let i = 0; i < D; i++) out[i]! += coords[c]! * e[i]!;
    }
    return out;
  };
  const junkVector = (norm: number): Float64Array => {
    const g = Array.from({ length: JUNK.size }, () => rng.normal() * norm / Math.sqrt(JUNK.size));
    return lift(JUNK, g);
  };
  // A write of about `norm`: JUNK, plus LEAK of it in a random direction of the whole stream.
  const leakyJunkWrite = (norm: number): Float64Array => {
    const out = junkVector(norm);
    const leakStd = LEAK * norm / Math.sqrt(D);
    for (let i = 0; i < D; i++) out[i]! += leakStd * rng.normal();
    return out;
  };
  const cfg = makeConfig({ ...DEMO_DIMS, actFn: "gelu_new", normalizationType: "LN", originalArchitecture: "GPT2LMHeadModel" });
  const weights: Weights = new Map();
  const put = (name: string, shape: number[], data: Float64Array) => weights.set(name, new Tensor(Float32Array.from(data), shape));

  // Embeddings: token code + position code, each of unit norm, plus a little noise.
  const WE = new Float64Array(V * D);
  for (let v = 0; v < V; v++) WE.set(addNoise(lift(TOK, scaled(tokenCode(v), NORM.tok)), 0.01, rng), v * D);
  const WPos = new Float64Array(N_CTX * D);
  for (let p = 0; p < N_CTX; p++) WPos.set(addNoise(lift(POS, scaled(positionCode(p), NORM.pos)), 0.01, rng), p * D);
  put("embed.W_E", [V, D], WE);
  put("pos_embed.W_pos", [N_CTX, D], WPos);

  for (let l = 0; l < L; l++) {
    const p = `blocks.${l}.`;
    const ln1 = mildLayerNorm(rng);
    const heads = ROLES[l]!.map((role) => designHead(role, READ_GAIN[l]!, lift, leakyJunkWrite, rng));
    const stacked = { Q: new Float64Array(H * D * d), K: new Float64Array(H * D * d), V: new Float64Array(H * D * d) };
    const biases = { Q: new Float64Array(H * d), K: new Float64Array(H * d), V: new Float64Array(H * d) };
    const WO = new Float64Array(H * d * D);
    heads.forEach((head, h) => {
      for (const [x, A, b] of [["Q", head.AQ, head.bQ], ["K", head.AK, head.bK], ["V", head.AV, head.bV]] as const) {
        const folded = absorbLayerNorm(addNoise(A, NOISE / Math.sqrt(D), rng), addNoise(b, NOISE, rng), ln1, d);
        stacked[x].set(folded.W, h * D * d);
        biases[x].set(folded.b, h * d);
      }
      WO.set(addNoise(head.WO, NOISE / Math.sqrt(d), rng), h * d * D);
    });
    put(`${p}ln1.w`, [D], ln1.w);
    put(`${p}ln1.b`, [D], ln1.b);
    for (const x of ["Q", "K", "V"] as const) {
      put(`${p}attn.W_${x}`, [H, D, d], stacked[x]);
      put(`${p}attn.b_${x}`, [H, d], biases[x]);
    }
    put(`${p}attn.W_O`, [H, d, D], WO);
    put(`${p}attn.b_O`, [D], junkVector(0.05));

    // The MLP: random features of the whole stream, written into JUNK, so it is alive
    // (its output varies with the input) but carries nothing the circuit reads.
    const ln2 = mildLayerNorm(rng);
    const AIn = new Float64Array(D * M).map(() => rng.normal() / Math.sqrt(D));
    const bIn = new Float64Array(M).map(() => 0.5 * rng.normal());
    const mlpIn = absorbLayerNorm(AIn, bIn, ln2, M);
    // E[gelu(z)^2] ≈ 0.425 for z ~ N(0, 1): this puts the MLP's JUNK write near NORM.junk.
    const outStd = NORM.junk / Math.sqrt(JUNK.size * M * 0.425);
    const WOut = new Float64Array(M * D);
    for (let m = 0; m < M; m++) WOut.set(addNoise(leakyJunkWrite(outStd * Math.sqrt(JUNK.size)), NOISE / Math.sqrt(M), rng), m * D);
    put(`${p}ln2.w`, [D], ln2.w);
    put(`${p}ln2.b`, [D], ln2.b);
    put(`${p}mlp.W_in`, [D, M], mlpIn.W);
    put(`${p}mlp.b_in`, [M], mlpIn.b);
    put(`${p}mlp.W_out`, [M, D], WOut);
    put(`${p}mlp.b_out`, [D], junkVector(0.05));
  }

  // Unembedding: logit(v) reads token v's code in OUT. ln_final's bias lies in JUNK, which
  // the unembedding does not read, because a GPT-2 checkpoint has no b_U to compensate it in.
  const lnFinal = { w: mildLayerNorm(rng).w, b: junkVector(0.05) };
  const unembedGain = LOGIT / (READ_GAIN_FINAL * NORM.out);
  const AU = new Float64Array(D * V);
  for (let v = 0; v < V; v++) {
    const column = lift(OUT, scaled(tokenCode(v), unembedGain));
    for (let i = 0; i < D; i++) AU[i * V + v] = column[i]!;
  }
  const unembed = absorbLayerNorm(addNoise(AU, NOISE / Math.sqrt(D), rng), new Float64Array(V), { w: lnFinal.w, b: new Float64Array(D) }, V);
  put("ln_final.w", [D], lnFinal.w);
  put("ln_final.b", [D], lnFinal.b);
  put("unembed.W_U", [D, V], unembed.W);
  put("unembed.b_U", [V], new Float64Array(V));

  return {
    cfg,
    weights,
    planted: { prevTokenHead: [...PLANTED_HEADS.prevTokenHead], inductionHead: [...PLANTED_HEADS.inductionHead] },
  };
}

/**
 * The demo model, ready to run: built by {@link buildInductionModelWeights} and, by default,
 * processed as `HookedTransformer.fromPretrained` processes a checkpoint (foldLn,
 * centerWritingWeights, centerUnembed, foldValueBiases).
 *
 * @param options.engine run on this engine (default: a new WASM SIMD engine)
 * @param options.processWeights apply TransformerLens weight processing (default true)
 * @example
 * ```ts
 * const model = await loadDemoModel();
 * const { clean, corrupted, correct, incorrect } = demoPrompts();
 * const metric = logitDiff({ correct, incorrect });
 * metric(model.forward(clean).logits!);        // clearly positive: the induction head copies
 * metric(model.forward(corrupted).logits!);    // clearly negative
 * ```
 */
export async function loadDemoModel(options: { engine?: Engine; processWeights?: boolean; splitInputs?: boolean } = {}): Promise<HookedTransformer> {
  let { cfg, weights } = buildInductionModelWeights();
  if (options.processWeights ?? true) ({ cfg, weights } = processWeights(cfg, weights));
  // Each reader's own input as a hook point, for edge-level circuits (see useSplitQkvInput).
  if (options.splitInputs) cfg = { ...cfg, useSplitQkvInput: true, useHookMlpIn: true };
  return HookedTransformer.create(cfg, weights, { engine: options.engine ?? await Engine.create() });
}

/**
 * The demo model as a Hugging Face GPT-2 checkpoint folder: `config.json` and
 * `model.safetensors` bytes (float32, untied `lm_head.weight`). Write them to a folder to
 * use the model wherever a `--model DIR` is expected, or load them directly.
 *
 * @example
 * ```ts
 * const files = demoModelFiles();
 * for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(`demo-model/${name}`, bytes);
 * const model = await HookedTransformer.fromPretrained(files);   // same logits as loadDemoModel()
 * ```
 */
export function demoModelFiles(): Record<string, Uint8Array> {
  const { cfg, weights } = buildInductionModelWeights();
  return gpt2HfFiles(cfg, weights);
}

function designHead(role: Role, gain: number, lift: (sub: Subspace, coords: ArrayLike<number>) => Float64Array,
  leakyJunkWrite: (norm: number) => Float64Array, rng: SeededRandom): HeadDesign {
  const head: HeadDesign = {
    AQ: new Float64Array(D * d), AK: new Float64Array(D * d), AV: new Float64Array(D * d),
    bQ: new Float64Array(d), bK: new Float64Array(d), bV: new Float64Array(d),
    WO: new Float64Array(d * D),
  };
  const basisVector = (sub: Subspace, c: number) => lift(sub, unit(sub.size, c));
  // A score s between unit codes read at `gain` needs q·k = s·sqrt(d): split it evenly over q and k.
  const qkScale = (score: number, keyNorm = 1) => Math.sqrt(score * Math.sqrt(d) / (gain * gain * keyNorm));

  if (role === "prev") {
    // Query: the position code rotated one step back; key: the position code. Their dot
    // product is 1 exactly at key = query − 1 and 0 or −1 at every other causal key.
    const s = qkScale(SCORE.prev);
    for (let k = 0; k < POS.size / 2; k++) {
      const w = frequency(k);
      const [cosP, sinP] = [basisVector(POS, 2 * k), basisVector(POS, 2 * k + 1)];
      addColumn(head.AQ, 2 * k, cosP, s * Math.cos(w));
      addColumn(head.AQ, 2 * k, sinP, s * Math.sin(w));
      addColumn(head.AQ, 2 * k + 1, cosP, -s * Math.sin(w));
      addColumn(head.AQ, 2 * k + 1, sinP, s * Math.cos(w));
    }
    for (let c = 0; c < POS.size; c++) addColumn(head.AK, c, basisVector(POS, c), s);
    // OV: the attended token's TOK code, copied into PREV.
    const ov = Math.sqrt(NORM.prev / gain);
    for (let c = 0; c < TOK.size; c++) {
      addColumn(head.AV, c, basisVector(TOK, c), ov);
      head.WO.set(scaled(basisVector(PREV, c), ov), c * D);
    }
    return head;
  }
  if (role === "induction") {
    // Query: the current token (TOK); key: the previous token (PREV). They match at the
    // position right after an earlier occurrence of the current token.
    const s = qkScale(SCORE.induction, NORM.prev);
    for (let c = 0; c < TOK.size; c++) {
      addColumn(head.AQ, c, basisVector(TOK, c), s);
      addColumn(head.AK, c, basisVector(PREV, c), s);
    }
    // OV: the attended token's TOK code, copied into OUT, which the unembedding reads.
    const ov = Math.sqrt(NORM.out / gain);
    for (let c = 0; c < TOK.size; c++) {
      addColumn(head.AV, c, basisVector(TOK, c), ov);
      head.WO.set(scaled(basisVector(OUT, c), ov), c * D);
    }
    return head;
  }

  if (role === "bos") {
    // A constant query (its bias) against a key that detects the BOS token's code.
    const s = SCORE.bos * Math.sqrt(d) / gain;
    head.bQ[0] = 1;
    addColumn(head.AK, 0, lift(TOK, tokenCode(DEMO_BOS)), s);
  } else if (role === "self") {
    const s = qkScale(SCORE.self);
    for (let c = 0; c < POS.size; c++) {
      addColumn(head.AQ, c, basisVector(POS, c), s);
      addColumn(head.AK, c, basisVector(POS, c), s);
    }
  } else {
    // Random small query and key weights: scores with a standard deviation of about
    // SCORE.uniformStd, so the pattern is nearly (not exactly) uniform.
    const std = Math.sqrt(SCORE.uniformStd / D);
    for (const A of [head.AQ, head.AK]) for (let i = 0; i < A.length; i++) A[i] = std * rng.normal();
  }
  // The non-planted heads read random features of the whole stream and write them mostly
  // into JUNK, with a random leak everywhere: small, real side effects on the circuit.
  for (let i = 0; i < head.AV.length; i++) head.AV[i] = rng.normal() / Math.sqrt(D);
  for (let e = 0; e < d; e++) head.WO.set(leakyJunkWrite(NORM.junk / Math.sqrt(d)), e * D);
  return head;
}

/** Gram–Schmidt over seeded random vectors, starting from the all-ones direction. Rows are the basis vectors. */
function orthonormalBasis(n: number, rng: SeededRandom): Float64Array[] {
  const basis: Float64Array[] = [new Float64Array(n).fill(1 / Math.sqrt(n))];
  while (basis.length < n) {
    const v = new Float64Array(n).map(() => rng.normal());
    for (let pass = 0; pass < 2; pass++) { // twice, for orthogonality to rounding error
      for (const e of basis) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += v[i]! * e[i]!;
        for (let i = 0; i < n; i++) v[i]! -= dot * e[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm);
    basis.push(v.map((x) => x / norm));
  }
  return basis;
}

/** Token v's code: ±(row v mod 32 of the 32×32 Sylvester Hadamard matrix), unit norm. */
function tokenCode(v: number): Float64Array {
  const n = TOK.size;
  const sign = v < n ? 1 : -1;
  const code = new Float64Array(n);
  for (let j = 0; j < n; j++) code[j] = sign * (popcount((v % n) & j) % 2 === 0 ? 1 : -1) / Math.sqrt(n);
  return code;
}

/**
 * Position p's code: cos/sin pairs at frequencies π(k + ½)/8, unit norm. The dot product of
 * two codes is (1/8) Σ_k cos(π(2k + 1)Δ/16): 1 at Δ = 0, −1 at Δ = 16, 0 for other Δ < 32.
 */
function positionCode(p: number): Float64Array {
  const pairs = POS.size / 2;
  const code = new Float64Array(POS.size);
  for (let k = 0; k < pairs; k++) {
    code[2 * k] = Math.cos(frequency(k) * p) / Math.sqrt(pairs);
    code[2 * k + 1] = Math.sin(frequency(k) * p) / Math.sqrt(pairs);
  }
  return code;
}

function frequency(k: number): number {
  return Math.PI * (k + 0.5) / (POS.size / 2);
}

/** LayerNorm weight near 1 and bias near 0: mild, but enough that folding them matters. */
function mildLayerNorm(rng: SeededRandom): { w: Float64Array; b: Float64Array } {
  return {
    w: new Float64Array(D).map(() => 1 + 0.2 * (rng.uniform() - 0.5)),
    b: new Float64Array(D).map(() => 0.05 * rng.normal()),
  };
}

/**
 * The stored weight and bias that make a LayerNorm with weight w and bias b followed by
 * them equal to the designed matrix A and bias applied to the bare normalised input:
 * (x̂ ⊙ w + b) W + b' = x̂ A + bias with W = diag(1/w) A and b' = bias − b W.
 */
function absorbLayerNorm(A: Float64Array, bias: Float64Array, ln: { w: Float64Array; b: Float64Array }, cols: number):
  { W: Float64Array; b: Float64Array } {
  const W = new Float64Array(A.length);
  const out = bias.slice();
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < cols; j++) {
      W[i * cols + j] = A[i * cols + j]! / ln.w[i]!;
      out[j]! -= ln.b[i]! * W[i * cols + j]!;
    }
  }
  return { W, b: out };
}

function addColumn(A: Float64Array, col: number, vector: Float64Array, scale: number): void {
  for (let i = 0; i < D; i++) A[i * d + col]! += scale * vector[i]!;
}

function addNoise(x: Float64Array, std: number, rng: SeededRandom): Float64Array {
  return x.map((v) => v + std * rng.normal());
}

function scaled(x: Float64Array, s: number): Float64Array {
  return x.map((v) => v * s);
}

function unit(n: number, c: number): Float64Array {
  const e = new Float64Array(n);
  e[c] = 1;
  return e;
}

function popcount(x: number): number {
  let count = 0;
  for (let y = x; y !== 0; y &= y - 1) count++;
  return count;
}
