// The source heads' side of a direct path: each source head's residual write, clean minus
// corrupted, and the first position where it is not zero.
import { engineMatmul } from "../engine-matmul.js";
import { memoize, sharedValues } from "../memo.js";
import { attentionBeforePostNorm, throughPostNorm } from "../post-norm.js";
import type { DirectPathCaches } from "./caches.js";
import type { DirectPathSetup, DirectPathSource } from "./setup.js";

export interface SourceWrites {
  /**
   * delta [batch * pos, dModel] = (z_clean - z_corrupted)[:, :, srcHead] @ W_O[srcLayer][srcHead]. With
   * post-norms (Gemma-2), where a head's write has no value of its own, the change of the layer's
   * post-normed write when only that head is switched to clean:
   * ln1_post(attn_pre(z_mix)) - ln1_post(attn_pre(z_corrupted)), attn_pre(z) = z @ W_O + b_O.
   * Each destination layer the sweep patches from this source takes it once; after the last it is dropped.
   */
  take(srcLayer: number, srcHead: number): Float32Array;
  /** The first position where the source head's z differs between the runs (`pos` if nowhere): delta is zero before it. */
  firstDifference(srcLayer: number, srcHead: number): number;
}

/**
 * The source writes of a sweep over `sources`, each computed on first use and held until the
 * last destination layer that reads it has taken it.
 */
export function sourceWrites(setup: DirectPathSetup, caches: DirectPathCaches, sources: readonly DirectPathSource[]): SourceWrites {
  const { model, batch: B, pos: P } = setup;
  const { nLayers: L, nHeads: H, dHead: d, dModel: D } = model.cfg;
  const readers = new Map<string, number>();
  for (const [sl, sh, only] of sources) readers.set(`${sl}.${sh}`, (readers.get(`${sl}.${sh}`) ?? 0) + (only === undefined ? L - sl - 1 : 1));
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
    const write = engineMatmul(model.engine, dz, R, d, WO, D);
    return model.cfg.postNorms ? throughPostNorm(model, sl, preNorm(sl), write, R) : write;
  };
  // Through the post-norm: the corrupted run's pre-norm attention output once per source layer.
  const preNorm = memoize((sl: number) => attentionBeforePostNorm(model, sl, zOf(sl).corrupted, R));

  const deltas = sharedValues<Float32Array>();
  // Per source layer, each head's first differing position.
  const firstDifferences = memoize((sl: number): Int32Array => {
    const z = zOf(sl);
    return Int32Array.from({ length: H }, (_, sh) => {
      for (let p = 0; p < P; p++) {
        for (let b = 0; b < B; b++) {
          const o = ((b * P + p) * H + sh) * d;
          for (let e = 0; e < d; e++) if (z.clean[o + e] !== z.corrupted[o + e]) return p;
        }
      }
      return P;
    });
  });
  return {
    take: (sl, sh) => deltas(`${sl}.${sh}`, readers.get(`${sl}.${sh}`)!, () => compute(sl, sh)),
    firstDifference: (sl, sh) => firstDifferences(sl)[sh]!,
  };
}
