// The values a direct path patch puts into its destination layer's q, k or v, for every
// destination head of the layer at once: an increment (linear mode) or a replacement (exact mode).
import { kvName } from "../../model/weights.js";
import { engineMatmul, engineMatmulResident } from "../engine-matmul.js";
import { memoize } from "../memo.js";
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
 * - linear: `(delta / s) @ W_c`, TransformerLens's formula;
 * - exact: `Norm(r + delta) @ W_c + b_c`, the destination's layer norm recomputed on the shifted stream.
 *
 * W_c and b_c are the engine's resident weights of the forward pass, which carry the weight and bias
 * of a norm that is not folded; only linear mode on an unfolded LayerNorm multiplies by the model's
 * own W_c, without ln1's weight (the case setup.ts warns about).
 */
export function patchValues(setup: DirectPathSetup, caches: DirectPathCaches, writes: SourceWrites): PatchValues {
  const valuesOf = deltaPatchValues(setup, caches);
  return (sl, sh, dl) => valuesOf(writes.take(sl, sh), dl);
}

/**
 * The same for any residual write `delta` [batch * pos, dModel] into layer `dstLayer` (a head's,
 * an MLP's or the embeddings': edge patching's writers).
 */
export function deltaPatchValues(setup: DirectPathSetup, caches: DirectPathCaches): (delta: Float32Array, dstLayer: number) => Float32Array {
  const { model, component, mode, destHeads: Hc, batch: B, pos: P } = setup;
  const cfg = model.cfg;
  const { dHead: d, dModel: D } = cfg;
  const R = B * P;
  const width = Hc * d;
  // W_c packed [D, Hc*d] and b_c [Hc*d] of a destination layer: one product gives every destination head.
  const resident = (dl: number) => {
    const block = model.devicePointers().blocks[dl]!;
    if (component === "q") return { W: block.wq, bias: block.bq };
    return component === "k" ? { W: block.wk, bias: block.bk } : { W: block.wv, bias: block.bv };
  };

  if (mode === "exact") {
    const rms = cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre";
    return (delta, dl) => {
      const resid = caches.corruptedRun.residPre(dl).data;
      const x = new Float32Array(R * D);
      for (let i = 0; i < R * D; i++) x[i] = resid[i]! + delta[i]!;
      normalizeRows(x, R, D, cfg.eps, rms);
      const { W, bias } = resident(dl);
      return engineMatmulResident(model.engine, x, R, D, W, width, bias, model.devicePointers().dtype);
    };
  }

  const unfoldedLayerNorm = cfg.normalizationType === "LN" ? unfoldedWeights(setup) : undefined;
  return (delta, dl) => {
    const s = caches.corrupted(`blocks.${dl}.ln1.hook_scale`).data; // [B, P, 1]
    const x = new Float32Array(R * D);
    for (let r = 0; r < R; r++) for (let i = 0; i < D; i++) x[r * D + i] = delta[r * D + i]! / s[r]!;
    if (unfoldedLayerNorm) return engineMatmul(model.engine, x, R, D, unfoldedLayerNorm(dl), width);
    return engineMatmulResident(model.engine, x, R, D, resident(dl).W, width, 0, model.devicePointers().dtype);
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

/** The model's own W_c of a destination layer as one [D, Hc*d] matrix (built once per layer): every destination head in one product. */
function unfoldedWeights({ model, component, destHeads: Hc }: DirectPathSetup): (layer: number) => Float32Array {
  const { dHead: d, dModel: D } = model.cfg;
  const name = component === "q" ? "W_Q" : kvName(model.cfg, component === "k" ? "W_K" : "W_V");
  return memoize((layer: number) => {
    const heads = model.weights.get(`blocks.${layer}.attn.${name}`)!.data; // [Hc, D, d]
    const W = new Float32Array(D * Hc * d);
    for (let h = 0; h < Hc; h++) for (let i = 0; i < D; i++) W.set(heads.subarray((h * D + i) * d, (h * D + i + 1) * d), i * Hc * d + h * d);
    return W;
  });
}

/**
 * Each row of x [rows, D] normalised in place as `LNPre` / `RMSPre` do: centred (not for RMS),
 * then divided by sqrt(mean square + eps). A norm's weight and bias are in the resident weights.
 */
function normalizeRows(x: Float32Array, rows: number, D: number, eps: number, rms: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    if (!rms) for (let i = 0; i < D; i++) mean += x[o + i]!;
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[o + i]! - mean) ** 2;
    const scale = Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) x[o + i] = (x[o + i]! - mean) / scale;
  }
}
