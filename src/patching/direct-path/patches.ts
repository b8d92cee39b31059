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
  const { component, destHeads: Hc } = setup;
  const L = setup.model.cfg.nLayers;
  const writes = sourceWrites(setup, caches, sources);
  const valuesOf = patchValues(setup, caches, writes);
  const shared = sharedValues<Float32Array>();
  const acquire = (sl: number, sh: number, dl: number) => shared(`${sl}.${sh}.${dl}`, Hc, () => valuesOf(sl, sh, dl));

  const patches: Patch[] = [];
  for (const source of sources) {
    const [sl, sh, only] = source;
    for (let dl = sl + 1; dl < L; dl++) {
      if (only !== undefined && dl !== only) continue;
      for (let dh = 0; dh < Hc; dh++) {
        patches.push(headPatch(setup, caches, {
          index: indexOf(source, dl, dh),
          label: `src (${sl}, ${sh}) -> dst (${dl}, ${dh}) ${component}`,
          // Before the first position where the source head's output differs, delta is zero.
          startPos: writes.firstDifference(sl, sh),
          dstLayer: dl, dstHead: dh,
          values: () => acquire(sl, sh, dl),
        }));
      }
    }
  }
  return patches;
}

/**
 * The patch that puts `values()` ([batch * pos, destHeads * dHead], taken in the patch's
 * `prepare`) into destination head `dstHead` of `dstLayer`'s q, k or v (`setup.component`), with
 * the destination-layer shortcut where the corrupted run's attention of that layer is cached.
 */
export function headPatch(setup: DirectPathSetup, caches: DirectPathCaches, p: {
  index: number; label: string; startPos: number; dstLayer: number; dstHead: number; values: () => Float32Array;
}): Patch {
  const { component, mode, destHeads: Hc, batch: B, pos: P } = setup;
  const d = setup.model.cfg.dHead;
  const { dstLayer: dl, dstHead: dh } = p;
  const inputs = caches.attentionInputs(dl);
  let values: Float32Array | undefined; // between prepare and the edit (or the shortcut)
  return {
    index: p.index,
    label: p.label,
    startLayer: dl,
    startPos: p.startPos,
    prepare: () => { values = p.values(); },
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
  };
}
