// Data movement and small reductions of the forward pass: plain loops over the engine's heap,
// too light to be kernels. Pointers are byte offsets; sizes are in floats.
import type { HookedTransformerConfig } from "./config.js";
import type { DevicePointers } from "./device-weights.js";
import type { ForwardPlan } from "./forward.js";

/** Position id of every token [batch * pos]: its index among the row's real tokens (padding skipped). */
export function positionIds(plan: Pick<ForwardPlan, "batch" | "pos" | "attentionMask">): Int32Array {
  const { batch: B, pos: P } = plan;
  const ids = new Int32Array(B * P);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let p = 0; p < P; p++) {
      if (plan.attentionMask === undefined || plan.attentionMask[b * P + p] !== 0) seen++;
      ids[b * P + p] = Math.max(0, seen - 1);
    }
  }
  return ids;
}

/** full [B, P, Hd] = kept[b mod keptRows, 0:s] then computed [B, P - s, Hd]. */
export function assemble(heap: Float32Array, kept: Float32Array, computed: number, full: number, B: number, P: number, s: number, Hd: number): void {
  const n = P - s;
  const keptRows = kept.length / (P * Hd);
  for (let b = 0; b < B; b++) {
    const dst = (full >>> 2) + b * P * Hd;
    const from = (b % keptRows) * P * Hd;
    heap.set(kept.subarray(from, from + s * Hd), dst);
    const src = (computed >>> 2) + b * n * Hd;
    heap.copyWithin(dst + s * Hd, src, src + n * Hd);
  }
}

/** out [B, D] = x [B, n, D] at position n - 1 of each row. */
export function gatherLastRows(heap: Float32Array, x: number, out: number, B: number, n: number, D: number): void {
  for (let b = 0; b < B; b++) {
    const src = (x >>> 2) + (b * n + n - 1) * D;
    heap.copyWithin((out >>> 2) + b * D, src, src + D);
  }
}

/**
 * Writes W_E[token] and W_pos[position id] rows for positions [s, pos) of each sequence;
 * padded rows get position ids that skip padding.
 */
export function embed(heap: Float32Array, plan: ForwardPlan, s: number, cfg: HookedTransformerConfig, w: DevicePointers, out: number, outPos: number): void {
  const { batch: B, pos: P } = plan;
  const D = cfg.dModel;
  const n = P - s;
  const tokens = plan.tokens!;
  const ids = positionIds(plan);
  for (let b = 0; b < B; b++) {
    for (let p = s; p < P; p++) {
      const row = b * n + p - s;
      const tokenSrc = (w.wE >>> 2) + tokens[b * P + p]! * D;
      heap.copyWithin((out >>> 2) + row * D, tokenSrc, tokenSrc + D);
      if (outPos === 0) continue; // rotary models add no positional embedding
      const posSrc = (w.wPos >>> 2) + ids[b * P + p]! * D;
      heap.copyWithin((outPos >>> 2) + row * D, posSrc, posSrc + D);
    }
  }
}

/** norm = (x - mean) / scale (or x / scale for RMS), with the scale a hook may have changed. */
export function renormalize(heap: Float32Array, x: number, norm: number, scale: number, rows: number, D: number, rms: boolean): void {
  for (let r = 0; r < rows; r++) {
    const xi = (x >>> 2) + r * D;
    const ni = (norm >>> 2) + r * D;
    let mean = 0;
    if (!rms) {
      for (let i = 0; i < D; i++) mean += heap[xi + i]!;
      mean /= D;
    }
    const s = heap[(scale >>> 2) + r]!;
    for (let i = 0; i < D; i++) heap[ni + i] = (heap[xi + i]! - mean) / s;
  }
}

/** attnOut[r, :] = sum_h result[r, h, :] + bO. */
export function sumHeads(heap: Float32Array, result: number, bO: number, attnOut: number, rows: number, H: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = (attnOut >>> 2) + r * D;
    for (let i = 0; i < D; i++) heap[o + i] = heap[(bO >>> 2) + i]!;
    for (let h = 0; h < H; h++) {
      const src = (result >>> 2) + (r * H + h) * D;
      for (let i = 0; i < D; i++) heap[o + i]! += heap[src + i]!;
    }
  }
}
