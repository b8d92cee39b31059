// The destination-layer shortcut of a planned direct path sweep: a patch changes the attention
// of one query head (q) or of one key/value group's heads (k, v) only, so the change it makes to
// the layer's attention output is those heads' attention recomputed with the patch, minus the
// corrupted run's, through their rows of W_O. The sweep then starts that layer at resid_mid.
import { engineAttention } from "../engine-attention.js";
import { engineMatmul } from "../engine-matmul.js";
import { layerWindow } from "../../model/config.js";
import { rotaryDivisors } from "../../model/rotary-tables.js";
import { engineRotary } from "../engine-rotary.js";
import type { AttentionInputs } from "./caches.js";
import { applyHeadPatch } from "./patch-values.js";
import type { DirectPathSetup } from "./setup.js";

/** How many query heads a patch into destination head `dh` changes: one for q, the group of a key/value head. */
export function changedHeads({ model, component }: DirectPathSetup): number {
  return component === "q" ? 1 : model.cfg.nHeads / model.cfg.nKeyValueHeads;
}

/**
 * The change of layer dl's attention output (`hook_attn_out`) at positions [s, pos), [batch,
 * pos - s, dModel], when the patch values `values` ([batch * pos, destHeads * dHead], see
 * patch-values.ts) enter destination head `dh`; `inputs` are layer dl's corrupted attention inputs.
 */
export function attnOutDelta(setup: DirectPathSetup, inputs: AttentionInputs, dl: number, dh: number, values: Float32Array,
  s: number): Float32Array {
  const { model, component, mode, destHeads: Hc, batch: B, pos: P } = setup;
  const cfg = model.cfg;
  const { nHeads: H, nKeyValueHeads: Hk, dHead: d, dModel: D } = cfg;
  const rotary = cfg.positionalEmbeddingType === "rotary";
  const n = P - s;
  const heads = changedHeads(setup);
  const first = component === "q" ? dh : dh * heads; // query heads first..first+heads share key/value head g
  const g = Math.floor(first / (H / Hk));
  // q [B, n, heads, d] at positions [s, P); k, v [B, P, 1, d] of key/value head g. The side the
  // patch enters is taken before rotary (and rotated below), the others as attention read them.
  const qSource = component === "q" ? inputs.q : inputs.rotQ;
  const kSource = component === "k" ? inputs.k : inputs.rotK;
  let q: Float32Array = new Float32Array(B * n * heads * d);
  let k: Float32Array = new Float32Array(B * P * d);
  const v = new Float32Array(B * P * d);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const row = b * P + p;
      k.set(kSource.subarray((row * Hk + g) * d, (row * Hk + g + 1) * d), row * d);
      v.set(inputs.v.subarray((row * Hk + g) * d, (row * Hk + g + 1) * d), row * d);
      if (p >= s) q.set(qSource.subarray((row * H + first) * d, (row * H + first + heads) * d), (b * n + p - s) * heads * d);
    }
  }
  // The patch: on the queries the sweep recomputes, or on the keys or values of every position
  // (the recomputed queries read them all, including any the patch changes before s).
  const target = component === "q" ? q : component === "k" ? k : v;
  for (let b = 0; b < B; b++) {
    for (let p = component === "q" ? s : 0; p < P; p++) {
      const o = component === "q" ? (b * n + p - s) * heads * d : (b * P + p) * d;
      applyHeadPatch(mode, target, o, values, ((b * P + p) * Hc + dh) * d, d);
    }
  }
  if (rotary && component === "q") q = engineRotary(model.engine, q, B, n, heads, d, s, rotaryDivisors(cfg));
  if (rotary && component === "k") k = engineRotary(model.engine, k, B, P, 1, d, 0, rotaryDivisors(cfg));
  const z = engineAttention(model.engine, q, k, v, B, n, P, heads, 1, d, 1 / cfg.attnScale, layerWindow(cfg, dl));
  // (z - corrupted z) of those heads @ their rows of W_O: every other head's output is unchanged.
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < n; i++) {
      const o = (b * n + i) * heads * d;
      const from = ((b * P + s + i) * H + first) * d;
      for (let e = 0; e < heads * d; e++) z[o + e]! -= inputs.z[from + e]!;
    }
  }
  const WO = model.weights.get(`blocks.${dl}.attn.W_O`)!.data.subarray(first * d * D, (first + heads) * d * D); // [heads * d, D]
  return engineMatmul(model.engine, z, B * n, heads * d, WO, D);
}
