// The values a direct path patch puts into its destination layer's q, k or v, for every
// destination head of the layer at once: an increment (linear mode) or a replacement (exact mode).
import { kvName } from "../../model/weights.js";
import { engineMatmul } from "../engine-matmul.js";
import type { DirectPathCaches } from "./caches.js";
import type { DirectPathMode, DirectPathSetup } from "./setup.js";
import type { SourceWrites } from "./source-writes.js";

/**
 * The patch values of source head (srcLayer, srcHead) into layer dstLayer, [batch * pos,
 * destHeads * dHead] in the layout of `hook_q/k/v` (head h at columns h*dHead..): linear mode
 * adds them to the corrupted run's activation, exact mode replaces it with them.
 */
export type PatchValues = (srcLayer: number, srcHead: number, dstLayer: number) => Float32Array;

/**
 * Patch values by the reference definition (`../shared/reference/README.md`), with the corrupted
 * run's `r = hook_resid_pre`, `s = ln1.hook_scale` of the destination layer and the source write `delta`:
 * - linear: `(delta / s) @ W_c`, TransformerLens's formula (an unfolded RMSNorm's weight applied to
 *   delta: the reference's formula on unprocessed weights; an unfolded LayerNorm's left out, as warned);
 * - exact: `Norm(r + delta) @ W_c + b_c`, the destination's layer norm recomputed on the shifted stream.
 */
export function patchValues(setup: DirectPathSetup, caches: DirectPathCaches, writes: SourceWrites): PatchValues {
  const { model, mode, destHeads: Hc, batch: B, pos: P } = setup;
  const cfg = model.cfg;
  const { dHead: d, dModel: D } = cfg;
  const R = B * P;
  const rms = cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre";
  const weights = destinationWeights(setup);
  return (sl, sh, dl) => {
    const delta = writes.take(sl, sh);
    const { W, bias } = weights(dl);
    const x = new Float32Array(R * D);
    const lnW = model.weights.get(`blocks.${dl}.ln1.w`)?.data;
    if (mode === "linear") {
      const s = caches.corrupted(`blocks.${dl}.ln1.hook_scale`).data; // [B, P, 1]
      const scaleBy = rms ? lnW : undefined;
      for (let r = 0; r < R; r++) for (let i = 0; i < D; i++) x[r * D + i] = (delta[r * D + i]! / s[r]!) * (scaleBy?.[i] ?? 1);
      return engineMatmul(model.engine, x, R, D, W, Hc * d);
    }
    const resid = caches.corruptedRun.residPre(dl).data;
    for (let i = 0; i < R * D; i++) x[i] = resid[i]! + delta[i]!;
    normalizeRows(x, R, D, cfg.eps, rms, lnW, model.weights.get(`blocks.${dl}.ln1.b`)?.data);
    return engineMatmul(model.engine, x, R, D, W, Hc * d, bias);
  };
}

/**
 * Puts one head's patch values, `values[from .. from + dHead)`, into `target[at .. at + dHead)`:
 * added in linear mode, replacing in exact mode.
 */
export function applyHeadPatch(mode: DirectPathMode, target: Float32Array, at: number, values: Float32Array, from: number,
  dHead: number): void {
  if (mode === "linear") for (let e = 0; e < dHead; e++) target[at + e]! += values[from + e]!;
  else for (let e = 0; e < dHead; e++) target[at + e] = values[from + e]!;
}

/** W_c of a destination layer as one [D, Hc*d] matrix, so a product gives every destination head, and b_c [Hc*d]. */
function destinationWeights({ model, component, destHeads: Hc }: DirectPathSetup): (layer: number) => { W: Float32Array; bias: Float32Array } {
  const { dHead: d, dModel: D } = model.cfg;
  const name = component === "q" ? "W_Q" : kvName(model.cfg, component === "k" ? "W_K" : "W_V");
  const biasName = component === "q" ? "b_Q" : kvName(model.cfg, component === "k" ? "b_K" : "b_V");
  const built = new Map<number, { W: Float32Array; bias: Float32Array }>();
  return (layer) => {
    let w = built.get(layer);
    if (w === undefined) {
      const heads = model.weights.get(`blocks.${layer}.attn.${name}`)!.data; // [Hc, D, d]
      const W = new Float32Array(D * Hc * d);
      for (let h = 0; h < Hc; h++) for (let i = 0; i < D; i++) W.set(heads.subarray((h * D + i) * d, (h * D + i + 1) * d), i * Hc * d + h * d);
      w = { W, bias: model.weights.get(`blocks.${layer}.attn.${biasName}`)!.data };
      built.set(layer, w);
    }
    return w;
  };
}

/**
 * Layer norm (or RMS norm) of each row of x [rows, D] in place: centre (not for RMS), divide by
 * sqrt(mean square + eps), then w and b when the norm is not folded.
 */
function normalizeRows(x: Float32Array, rows: number, D: number, eps: number, rms: boolean, w?: Float32Array, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    if (!rms) for (let i = 0; i < D; i++) mean += x[o + i]!;
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[o + i]! - mean) ** 2;
    const scale = Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) {
      const y = (x[o + i]! - mean) / scale;
      x[o + i] = w ? y * w[i]! + (b ? b[i]! : 0) : y;
    }
  }
}
