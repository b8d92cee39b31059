import { Tensor } from "../engine/tensor.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { engineMatmul } from "./engine-matmul.js";

/**
 * The token ids a last-position metric declares it reads, sorted and deduplicated, when they are
 * all valid ids and fewer than the vocabulary; otherwise undefined (the sweep unembeds everything,
 * and the metric reports a bad id itself).
 */
export function metricColumns(tokens: readonly number[] | undefined, dVocab: number): Int32Array | undefined {
  if (tokens === undefined || !Array.isArray(tokens) || tokens.length === 0) return undefined;
  if (!tokens.every((t) => Number.isInteger(t) && t >= 0 && t < dVocab)) return undefined;
  const ids = Int32Array.from(new Set(tokens)).sort();
  return ids.length < dVocab ? ids : undefined;
}

/**
 * Logits of some vocabulary entries only: `x` [rows, dModel] (the final norm's output,
 * `ln_final.hook_normalized`) times those columns of W_U, plus b_U, with an unfolded final norm's
 * weight and bias applied first, and a final soft-cap after. Returns [rows, 1, dVocab] whose other entries are NaN.
 */
export function unembedColumns(model: HookedTransformer, x: Float32Array, rows: number, columns: Int32Array): Tensor {
  const { dModel: D, dVocab: V, normalizationType } = model.cfg;
  const WU = model.weights.get("unembed.W_U")!.data; // [D, V]
  const bU = model.weights.get("unembed.b_U")!.data;
  const c = columns.length;
  const W = new Float32Array(D * c);
  for (let i = 0; i < D; i++) for (let j = 0; j < c; j++) W[i * c + j] = WU[i * V + columns[j]!]!;
  const bias = Float32Array.from(columns, (t) => bU[t]!);
  let input = x;
  if (normalizationType === "LN" || normalizationType === "RMS") {
    const w = model.weights.get("ln_final.w")!.data;
    const b = normalizationType === "LN" ? model.weights.get("ln_final.b")!.data : undefined;
    input = new Float32Array(rows * D);
    for (let r = 0; r < rows; r++) for (let i = 0; i < D; i++) input[r * D + i] = x[r * D + i]! * w[i]! + (b ? b[i]! : 0);
  }
  const picked = engineMatmul(model.engine, input, rows, D, W, c, bias); // [rows, c]
  const cap = model.cfg.finalSoftcap;
  const logits = new Float32Array(rows * V).fill(NaN);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      // Soft-capping is per logit, so the picked ones cap as the whole row would (the forward's formula).
      const v = picked[r * c + j]!;
      logits[r * V + columns[j]!] = cap === undefined ? v : cap * Math.tanh(v / cap);
    }
  }
  return new Tensor(logits, [rows, 1, V]);
}
