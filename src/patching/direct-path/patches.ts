// The patch list of a direct path sweep: one patch per (source head, destination head), each
// with the hook edit a forward pass applies, and the destination-layer shortcut where the
// corrupted run's attention of that layer is cached.
import { sharedValues } from "../memo.js";
import type { Patch } from "../sweep-types.js";
import { attnOutDelta, changedHeads } from "./attn-out-delta.js";
import type { DirectPathCaches } from "./caches.js";
import { applyHeadPatch, patchValues } from "./patch-values.js";
import type { DirectPathSetup, DirectPathSource } from "./setup.js";
import { sourceWrites } from "./source-writes.js";

/** The flat index in the result of the score of `source` into destination head `dstHead` of `dstLayer`. */
export type ScoreIndex = (source: DirectPathSource, dstLayer: number, dstHead: number) => number;

/**
 * The patches from each source head into every destination head of every later layer (or of
 * its one destination layer). Patch values are computed in a patch's `prepare`, shared by the
 * destination heads of a (source, destination layer) pair and dropped after the last of them.
 */
export function directPathPatches(setup: DirectPathSetup, caches: DirectPathCaches, sources: readonly DirectPathSource[],
  indexOf: ScoreIndex): Patch[] {
  const { component, mode, destHeads: Hc, batch: B, pos: P } = setup;
  const { nLayers: L, dHead: d } = setup.model.cfg;
  const writes = sourceWrites(setup, caches, sources);
  const valuesOf = patchValues(setup, caches, writes);
  const shared = sharedValues<Float32Array>();
  const acquire = (sl: number, sh: number, dl: number) => shared(`${sl}.${sh}.${dl}`, Hc, () => valuesOf(sl, sh, dl));

  const patches: Patch[] = [];
  for (const source of sources) {
    const [sl, sh, only] = source;
    for (let dl = sl + 1; dl < L; dl++) {
      if (only !== undefined && dl !== only) continue;
      const inputs = caches.attentionInputs(dl);
      for (let dh = 0; dh < Hc; dh++) {
        let values: Float32Array | undefined; // [B * P, Hc * d], between prepare and the edit (or the shortcut)
        patches.push({
          index: indexOf(source, dl, dh),
          label: `src (${sl}, ${sh}) -> dst (${dl}, ${dh}) ${component}`,
          startLayer: dl,
          // Before the first position where the source head's output differs, delta is zero.
          startPos: writes.firstDifference(sl, sh),
          prepare: () => { values = acquire(sl, sh, dl); },
          attnOutDelta: inputs === undefined ? undefined : {
            heads: changedHeads(setup),
            compute: (s) => {
              const delta = attnOutDelta(setup, inputs, dl, dh, values!, s);
              values = undefined;
              return delta;
            },
          },
          edits: [{
            hook: `blocks.${dl}.attn.hook_${component}`,
            apply: (act, point) => {
              const a = act.data; // [B, n, Hc, d]: positions [positionStart, positionStart + n)
              const n = act.shape[1]!;
              for (let b = 0; b < B; b++) {
                for (let i = 0; i < n; i++) {
                  applyHeadPatch(mode, a, ((b * n + i) * Hc + dh) * d, values!, ((b * P + point.positionStart + i) * Hc + dh) * d, d);
                }
              }
              values = undefined;
            },
          }],
        });
      }
    }
  }
  return patches;
}
