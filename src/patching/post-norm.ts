// A head's residual write in a model with post-norms (Gemma-2): the norm acts on the sum of every
// head of its layer, so a head's write is defined as the change of the layer's post-normed write
// when only that head is switched (the definition of ../shared/reference's Gemma-2 goldens).
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { engineMatmul } from "./engine-matmul.js";

/** Layer `layer`'s attention output before its post-norm, z [rows, H·d] @ W_O + b_O: [rows, D]. */
export function attentionBeforePostNorm(model: HookedTransformer, layer: number, z: Float32Array, rows: number): Float32Array {
  const { nHeads: H, dHead: d, dModel: D } = model.cfg;
  const pre = engineMatmul(model.engine, z, rows, H * d, model.weights.get(`blocks.${layer}.attn.W_O`)!.data, D);
  const bO = model.weights.get(`blocks.${layer}.attn.b_O`)!.data;
  for (let r = 0; r < rows; r++) for (let i = 0; i < D; i++) pre[r * D + i]! += bO[i]!;
  return pre;
}

/**
 * ln1_post(pre + write) − ln1_post(pre), row by row ([rows, D]): a head's write `write` (its
 * Δz @ W_O[h]) through layer `layer`'s post-attention norm, `pre` the corrupted run's attention
 * output before that norm ({@link attentionBeforePostNorm}).
 */
export function throughPostNorm(model: HookedTransformer, layer: number, pre: Float32Array, write: Float32Array, rows: number): Float32Array {
  const { dModel: D, eps } = model.cfg;
  const w = model.weights.get(`blocks.${layer}.ln1_post.w`)!.data;
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let sq0 = 0;
    let sq1 = 0;
    for (let i = 0; i < D; i++) {
      const a = pre[r * D + i]!;
      const b = a + write[r * D + i]!;
      sq0 += a * a;
      sq1 += b * b;
    }
    const s0 = Math.sqrt(sq0 / D + eps);
    const s1 = Math.sqrt(sq1 / D + eps);
    for (let i = 0; i < D; i++) {
      const a = pre[r * D + i]!;
      out[r * D + i] = ((a + write[r * D + i]!) / s1 - a / s0) * w[i]!;
    }
  }
  return out;
}
