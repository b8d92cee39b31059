// Direct path patching (`../shared/reference/README.md`): the sweeps users call, and their plans.
// The parts are in direct-path/: options and record (setup.ts), cache reads (caches.ts), source
// writes (source-writes.ts), patch values (patch-values.ts), the destination-layer shortcut
// (attn-out-delta.ts) and the patch list (patches.ts).
import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import { directPathCaches, type DirectPathCaches } from "./direct-path/caches.js";
import { directPathPatches } from "./direct-path/patches.js";
import {
  checkIndex, checkSources, directPathSetup, type DirectPathAllSourcesOptions, type DirectPathOptions, type DirectPathRecord,
  type DirectPathSetup, type DirectPathSingleOptions, type DirectPathSource,
} from "./direct-path/setup.js";
import type { Metric } from "./metrics.js";
import { planSweepPatches, summarize } from "./planner.js";
import { PatchResult } from "./result.js";
import { runSweep } from "./sweep-run.js";
import type { Patch, SweepPlanSummary } from "./sweep-types.js";
import { perPromptBuffer } from "./final-metric.js";

export type {
  DirectPathAllSourcesOptions, DirectPathComponent, DirectPathMode, DirectPathOptions, DirectPathRecord, DirectPathSingleOptions,
  DirectPathSource,
} from "./direct-path/setup.js";

/** The arguments every direct path sweep takes, its options last. */
type SweepArgs<O extends DirectPathOptions> = [model: HookedTransformer, corruptedTokens: TokenIds,
  cleanCache: ActivationCache, corruptedCache: ActivationCache, metric: Metric, options: O];

/**
 * Direct path patching from one source head A = (srcLayer, srcHead) into the query, key
 * or value input of every later head B: only B's view of A changes from corrupted to
 * clean; every other component still reads the corrupted residual stream.
 * `scores[dl, dh]` is the metric of that run; entries with dl <= srcLayer have no causal
 * path, are 0 (as in TransformerLens) and are flagged in `noPath`.
 *
 * @example
 * ```ts
 * const { cache: clean } = model.runWithCache(cleanTokens);
 * const { cache: corrupted } = model.runWithCache(corruptedTokens);
 * const result = await getActPatchDirectPath(model, corruptedTokens, clean, corrupted,
 *   logitDiff({ correct, incorrect }), { srcLayer: 0, srcHead: 1, component: "k" });
 * result.scores;        // Tensor [nLayers, nHeads]
 * result.normalized();  // 0 = no effect, 1 = the whole clean effect
 * ```
 */
export async function getActPatchDirectPath(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathSingleOptions): Promise<PatchResult<DirectPathRecord>> {
  return runPrepared(singleSource(model, corruptedTokens, cleanCache, corruptedCache, metric, options));
}

/** The plan of {@link getActPatchDirectPath} with these arguments, without running it (see {@link planSweep}). */
getActPatchDirectPath.plan = (...args: SweepArgs<DirectPathSingleOptions>): SweepPlanSummary => planPrepared(singleSource(...args));

/**
 * {@link getActPatchDirectPath} for every source head at once: scores
 * [srcLayer, srcHead, dstLayer, dstHead], whose [sl, sh] slice is the single-source result.
 * Patches from all sources that enter the same destination layer share stacked passes.
 */
export async function getActPatchDirectPathAllSources(model: HookedTransformer, corruptedTokens: TokenIds,
  cleanCache: ActivationCache, corruptedCache: ActivationCache, metric: Metric,
  options: DirectPathAllSourcesOptions): Promise<PatchResult<DirectPathRecord>> {
  return runPrepared(allSources(model, corruptedTokens, cleanCache, corruptedCache, metric, options));
}

/** The plan of {@link getActPatchDirectPathAllSources} with these arguments, without running it (see {@link planSweep}). */
getActPatchDirectPathAllSources.plan = (...args: SweepArgs<DirectPathAllSourcesOptions>): SweepPlanSummary =>
  planPrepared(allSources(...args));

/** A sweep ready to run or plan: its patches, what it reads, and the result they fill. */
interface PreparedSweep {
  model: HookedTransformer;
  tokens: number[][];
  metric: Metric;
  options: DirectPathOptions;
  caches: DirectPathCaches;
  patches: Patch[];
  op: string;
  /** The scores' shape; `patches[i].index` is a flat index into it. */
  shape: number[];
  /** 1 where a score has no causal path (the destination layer is not after the source). */
  noPath: Uint8Array;
  record: DirectPathRecord;
}

/** {@link getActPatchDirectPath}'s sweep, prepared: scores [dstLayer, dstHead]. */
function singleSource(...args: SweepArgs<DirectPathSingleOptions>): PreparedSweep {
  const [model, , , , metric, options] = args;
  const { nLayers: L, nHeads: H } = model.cfg;
  checkIndex("srcLayer", options.srcLayer, L);
  checkIndex("srcHead", options.srcHead, H);
  const { setup, caches } = prepare(...args);
  const Hc = setup.destHeads;
  return {
    model, tokens: setup.tokens, metric, options, caches,
    patches: directPathPatches(setup, caches, [[options.srcLayer, options.srcHead]], (_source, dl, dh) => dl * Hc + dh),
    op: "direct_path",
    shape: [L, Hc],
    noPath: new Uint8Array(L * Hc).map((_, i) => (Math.floor(i / Hc) <= options.srcLayer ? 1 : 0)),
    record: { ...setup.record, src: [options.srcLayer, options.srcHead] },
  };
}

/** {@link getActPatchDirectPathAllSources}'s sweep, prepared: scores [srcLayer, srcHead, dstLayer, dstHead]. */
function allSources(...args: SweepArgs<DirectPathAllSourcesOptions>): PreparedSweep {
  const [model, , , , metric, options] = args;
  const { nLayers: L, nHeads: H } = model.cfg;
  if (options.sources) checkSources(options.sources, L, H);
  const { setup, caches } = prepare(...args);
  const Hc = setup.destHeads;
  const sources: DirectPathSource[] = [];
  if (options.sources) sources.push(...options.sources);
  else for (let sl = 0; sl < L; sl++) for (let sh = 0; sh < H; sh++) sources.push([sl, sh]);
  return {
    model, tokens: setup.tokens, metric, options, caches,
    patches: directPathPatches(setup, caches, sources, ([sl, sh], dl, dh) => ((sl * H + sh) * L + dl) * Hc + dh),
    op: "direct_path_all_sources",
    shape: [L, H, L, Hc],
    noPath: new Uint8Array(L * H * L * Hc).map((_, i) => {
      const sl = Math.floor(i / (H * L * Hc));
      const dl = Math.floor(i / Hc) % L;
      return dl <= sl ? 1 : 0;
    }),
    record: setup.record,
  };
}

/** Checks the arguments every direct path sweep shares and reads its caches. */
function prepare(...[model, corruptedTokens, cleanCache, corruptedCache, metric, options]: SweepArgs<DirectPathOptions>):
  { setup: DirectPathSetup; caches: DirectPathCaches } {
  const setup = directPathSetup(model, corruptedTokens, metric, options);
  return { setup, caches: directPathCaches(setup, cleanCache, corruptedCache, metric) };
}

/** Runs a prepared sweep into its result. */
async function runPrepared(sweep: PreparedSweep): Promise<PatchResult<DirectPathRecord>> {
  const scores = new Float32Array(sweep.noPath.length);
  const { baseline, clean, perPrompt } = sweep.caches.baselines();
  const rows = perPromptBuffer(sweep.metric, sweep.tokens.length, scores.length);
  await runSweep(sweep.model, sweep.tokens, sweep.patches, sweep.metric, sweep.caches.corruptedRun, scores, sweep.options, rows?.scores);
  return new PatchResult(sweep.op, new Tensor(scores, sweep.shape), baseline, clean, sweep.record, sweep.noPath,
    rows?.rows(sweep.shape, perPrompt?.baseline, perPrompt?.clean));
}

/** The plan of a prepared sweep, nothing run. */
function planPrepared(sweep: PreparedSweep): SweepPlanSummary {
  return summarize(planSweepPatches(sweep.model, sweep.tokens, sweep.patches, sweep.metric, sweep.caches.corruptedRun, sweep.options));
}
