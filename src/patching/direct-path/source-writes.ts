// The source heads' side of a direct path: each source head's residual write, clean minus
// corrupted, and the first position where it is not zero.
import { engineMatmul } from "../engine-matmul.js";
import type { DirectPathCaches } from "./caches.js";
import type { DirectPathSetup } from "./setup.js";

export interface SourceWrites {
  /**
   * delta [batch * pos, dModel] = (z_clean - z_corrupted)[:, :, srcHead] @ W_O[srcLayer][srcHead].
   * Each destination layer after the source takes it once; after the last it is dropped.
   */
  take(srcLayer: number, srcHead: number): Float32Array;
  /** The first position where the source head's z differs between the runs (`pos` if nowhere): delta is zero before it. */
  firstDifference(srcLayer: number, srcHead: number): number;
}

/** The source writes of a sweep, each computed on first use. */
export function sourceWrites(setup: DirectPathSetup, caches: DirectPathCaches): SourceWrites {
  const { model, batch: B, pos: P } = setup;
  const { nLayers: L, nHeads: H, dHead: d, dModel: D } = model.cfg;
  const R = B * P;
  const zOf = (sl: number) => {
    const name = `blocks.${sl}.attn.hook_z`; // [B, P, H, d]
    return { clean: caches.clean(name).data, corrupted: caches.corrupted(name).data };
  };

  const compute = (sl: number, sh: number): Float32Array => {
    const z = zOf(sl);
    const dz = new Float32Array(R * d);
    for (let r = 0; r < R; r++) {
      for (let e = 0; e < d; e++) dz[r * d + e] = z.clean[(r * H + sh) * d + e]! - z.corrupted[(r * H + sh) * d + e]!;
    }
    const WO = model.weights.get(`blocks.${sl}.attn.W_O`)!.data.subarray(sh * d * D, (sh + 1) * d * D); // [d, D]
    return engineMatmul(model.engine, dz, R, d, WO, D);
  };
  const live = new Map<string, { delta: Float32Array; uses: number }>();
  const take = (sl: number, sh: number): Float32Array => {
    const key = `${sl}.${sh}`;
    let entry = live.get(key);
    if (entry === undefined) {
      entry = { delta: compute(sl, sh), uses: L - sl - 1 };
      live.set(key, entry);
    }
    if (--entry.uses === 0) live.delete(key);
    return entry.delta;
  };

  const firstDiff = new Map<string, number>();
  const firstDifference = (sl: number, sh: number): number => {
    const key = `${sl}.${sh}`;
    let first = firstDiff.get(key);
    if (first === undefined) {
      const z = zOf(sl);
      first = P;
      for (let b = 0; b < B; b++) {
        for (let p = 0; p < first; p++) {
          const o = ((b * P + p) * H + sh) * d;
          let same = true;
          for (let e = 0; e < d && same; e++) same = z.clean[o + e] === z.corrupted[o + e];
          if (!same) { first = p; break; }
        }
      }
      firstDiff.set(key, first);
    }
    return first;
  };
  return { take, firstDifference };
}
