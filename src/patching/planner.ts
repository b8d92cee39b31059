// Planning a sweep: how its patches are grouped into stacked forward passes, what each pass
// computes, and the flop and memory model that sizes and prices them. Nothing here runs a pass
// (sweep-run.ts does).
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { memoize } from "./memo.js";
import type { Metric } from "./metrics.js";
import type { CorruptedRun, Patch, PlannedPass, SweepOptions, SweepPlan, SweepPlanSummary } from "./sweep-types.js";
import { metricColumns } from "./unembed-columns.js";

// The sweep types are public through this module (src/index.ts exports them from here).
export type { Patch, PatchEdit, PlannedPass, SweepOptions, SweepPlan, SweepPlanSummary, SweepProgress } from "./sweep-types.js";

const DEFAULT_BUDGET = 1024 * 1024 * 1024;

/**
 * Checks a sweep's options and plans it: the planned strategy's stacked passes, or the naive
 * loop's one pass per patch. Throws, before any work, what `runSweep` (sweep-run.ts) would throw.
 */
export function planSweepPatches(model: HookedTransformer, tokens: readonly (readonly number[])[], patches: readonly Patch[],
  metric: Metric, corrupted: CorruptedRun, options: SweepOptions): SweepPlan {
  const strategy = options.strategy ?? "planned";
  if (strategy !== "planned" && strategy !== "naive") throw new Error(`strategy must be "planned" or "naive", got ${JSON.stringify(strategy)}`);
  const budget = options.memoryBudgetBytes ?? DEFAULT_BUDGET;
  if (!(budget > 0)) throw new Error(`memoryBudgetBytes must be positive, got ${budget}`);
  return strategy === "naive" ? naivePlan(model, tokens, patches) : planPasses(model, tokens, patches, metric, corrupted, budget);
}

/** The plan without its patches. */
export function summarize(plan: SweepPlan): SweepPlanSummary {
  return { ...plan, passes: plan.passes.length };
}

/**
 * Groups patches into stacked passes: by the layer and position they start at, chunked so
 * one pass stays within the memory budget. Throws, before any work, when a single patched
 * run needs more than the budget.
 */
function planPasses(model: HookedTransformer, tokens: readonly (readonly number[])[], patches: readonly Patch[],
  metric: Metric, corrupted: CorruptedRun, budget: number): SweepPlan {
  const cfg = model.cfg;
  const B = tokens.length;
  const P = tokens[0]!.length;
  const lastOnly = metric.positions === "last";
  const columns = lastOnly ? metricColumns(metric.tokens, cfg.dVocab) : undefined;
  const groups = new Map<string, PlannedPass>();
  // Whether the corrupted run's keys and values exist for every block from `layer` on (a kept prefix needs them all).
  const keysValuesFrom = memoize((layer: number): boolean => {
    let ok = true;
    for (let l = layer; l < cfg.nLayers && ok; l++) ok = corrupted.hasKeysValues(l);
    return ok;
  });
  // Whether a pass may skip a layer's attention: the corrupted resid_mid is there and no hook of the model watches that attention.
  const canSkipAttention = memoize((layer: number): boolean => {
    const b = `blocks.${layer}.`;
    return corrupted.residMid?.(layer) !== undefined && !model.hasHooks((name) => name.startsWith(b) &&
      (name === `${b}hook_resid_pre` || name.startsWith(`${b}ln1.`) || name.startsWith(`${b}attn.`) || name === `${b}hook_attn_out`));
  });
  for (const patch of patches) {
    const hasKV = patch.startLayer < cfg.nLayers && keysValuesFrom(patch.startLayer);
    // Reusing a prefix leaves the logits of its positions out, so only metrics reading the last position allow it.
    const windowed = patch.startPos !== undefined && lastOnly;
    const afterAttention = patch.attnOutDelta !== undefined && canSkipAttention(patch.startLayer);
    // A patch that changes nothing (its first position is past the end) still runs once, on the last position;
    // so does one that starts after the last layer's attention (no later position reads the others).
    const lastOnlyHere = afterAttention && lastOnly && patch.startLayer === cfg.nLayers - 1;
    const startPos = lastOnlyHere ? P - 1 : windowed && hasKV ? Math.min(patch.startPos!, P - 1) : 0;
    const prune = lastOnly && windowed;
    const key = `${patch.startLayer}:${startPos}:${prune}:${afterAttention}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = { startLayer: patch.startLayer, startPos, pruneLastLayer: prune, afterAttention, lastPositionOnly: lastOnly, unembedTokens: columns, patches: [] };
      groups.set(key, group);
    }
    group.patches.push(patch);
  }
  const ordered = [...groups.values()].sort((a, b) => a.startLayer - b.startLayer || a.startPos - b.startPos);
  const passes: PlannedPass[] = [];
  let peak = 0;
  let work = 0;
  let tokensRecomputed = 0;
  let layerTokens = 0;
  const f = matmulFlops(model);
  for (const group of ordered) {
    const n = P - group.startPos;
    const perCopy = B * n * bytesPerRow(model, P);
    if (perCopy > budget) {
      throw new Error(`a patched run needs about ${perCopy} bytes of activations (batch ${B}, ${n} positions), ` +
        `more than memoryBudgetBytes (${budget}); raise the budget or patch a smaller batch`);
    }
    const copies = Math.max(1, Math.floor(budget / perCopy));
    for (let first = 0; first < group.patches.length; first += copies) {
      const chunk = group.patches.slice(first, first + copies);
      passes.push({ ...group, patches: chunk });
      peak = Math.max(peak, chunk.length * perCopy);
    }
    const layers = cfg.nLayers - group.startLayer;
    const rowsPerCopy = B * n;
    const lastLayerRows = group.pruneLastLayer && layers > 0 ? B : rowsPerCopy;
    const evals = (layers > 0 ? (layers - 1) * rowsPerCopy + lastLayerRows : 0) * group.patches.length;
    layerTokens += evals;
    tokensRecomputed += rowsPerCopy * group.patches.length;
    let copyFlops = (lastOnly ? B : rowsPerCopy) * (columns ? f.unembedColumn * columns.length : f.unembed);
    for (let l = group.startLayer; l < cfg.nLayers; l++) {
      // The pruned last block: keys and values at every recomputed position, the rest at the last one.
      const pruned = l === cfg.nLayers - 1 && group.pruneLastLayer && n > 1;
      if (l === group.startLayer && group.afterAttention) copyFlops += (pruned ? B : rowsPerCopy) * f.mlp;
      else copyFlops += pruned ? rowsPerCopy * f.kv + B * (f.qo + f.mlp) : rowsPerCopy * (f.qo + f.kv + f.mlp);
    }
    work += copyFlops * group.patches.length;
    // The changed heads' outputs, z @ W_O[h] for each, where the attention is skipped.
    if (group.afterAttention) for (const patch of group.patches) work += rowsPerCopy * patch.attnOutDelta!.heads * f.headOut;
  }
  const naive = naivePlan(model, tokens, patches);
  return {
    strategy: "planned", passes, patches: patches.length, layerTokenEvaluations: layerTokens,
    naiveLayerTokenEvaluations: naive.naiveLayerTokenEvaluations, tokensRecomputed, peakMemoryBytes: peak,
    flops: work, naiveFlops: naive.naiveFlops, estimatedSpeedup: work > 0 ? naive.naiveFlops / work : 1,
  };
}

/** The naive loop: one forward per patch over every block and position, every position unembedded. */
function naivePlan(model: HookedTransformer, tokens: readonly (readonly number[])[], patches: readonly Patch[]): SweepPlan {
  const B = tokens.length;
  const P = tokens[0]!.length;
  const { qo, kv, mlp, unembed } = matmulFlops(model);
  const layerTokens = patches.length * model.cfg.nLayers * B * P;
  const flops = layerTokens * (qo + kv + mlp) + patches.length * B * P * unembed;
  return {
    strategy: "naive",
    passes: patches.map((patch) => ({ startLayer: 0, startPos: 0, pruneLastLayer: false, afterAttention: false, lastPositionOnly: false, patches: [patch] })),
    patches: patches.length, layerTokenEvaluations: layerTokens, naiveLayerTokenEvaluations: layerTokens,
    tokensRecomputed: patches.length * B * P, peakMemoryBytes: patches.length > 0 ? B * P * bytesPerRow(model, P) : 0,
    flops, naiveFlops: flops, estimatedSpeedup: 1,
  };
}

/**
 * Floating-point operations (2 per multiply-add) of the forward pass's matrix products for one
 * row (a batch row at one position).
 */
interface MatmulFlops {
  /** The query and output projections. */
  qo: number;
  /** The key and value projections. */
  kv: number;
  /** The MLP's products (with the gate's, where gated). */
  mlp: number;
  /** The unembedding of every token, and of one token. */
  unembed: number;
  unembedColumn: number;
  /** One head's output projection, z[h] @ W_O[h]. */
  headOut: number;
}

function matmulFlops(model: HookedTransformer): MatmulFlops {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, gatedMlp } = model.cfg;
  return {
    qo: 2 * 2 * D * H * d, kv: 2 * 2 * D * Hk * d, mlp: 2 * (gatedMlp ? 3 : 2) * D * M, unembed: 2 * D * V, unembedColumn: 2 * D,
    headOut: 2 * d * D,
  };
}

/** Activation bytes one batch row × position needs in a forward pass of a sequence of `pos` (a pass's buffers scale with it). */
export function bytesPerRow(model: HookedTransformer, pos: number): number {
  const { dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V } = model.cfg;
  // resid, embed, pos embed, norm, attn out, mlp out, the JS residual copy; q, k, v, z; pre, post;
  // scores and pattern when hooked; logits of one position per row.
  return 4 * (7 * D + 4 * H * d + 2 * M + 2 * H * pos + V / pos);
}
