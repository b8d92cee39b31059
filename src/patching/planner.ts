// Planning a sweep: how its patches are grouped into stacked forward passes, what each pass
// computes, and the flop and memory model that sizes and prices them. Nothing here runs a pass
// (sweep-run.ts does).
import { activationBytes } from "../model/activation-sizes.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { memoize } from "./memo.js";
import type { Metric } from "./metrics.js";
import type { CorruptedRun, Patch, PlannedPass, SweepOptions, SweepPlan, SweepPlanSummary } from "./sweep-types.js";
import { metricColumns } from "./unembed-columns.js";

// The sweep types are public through this module (src/index.ts exports them from here).

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
    // A post-norm (Gemma-2) acts on every head's sum: one head's change does not add to resid_mid;
    // the shortcut's recomputed attention does not soft-cap its scores.
    return !cfg.postNorms && cfg.attnSoftcap === undefined && corrupted.residMid?.(layer) !== undefined && !model.hasHooks((name) => name.startsWith(b) &&
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
    const perCopy = passBytesPerCopy(model, B, P, group, passHooks(model, group.patches, group.startLayer));
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

/** A pass of the naive loop: a whole forward from the tokens, every position unembedded. */
const NAIVE_PASS = { startLayer: 0, startPos: 0, pruneLastLayer: false, afterAttention: false, lastPositionOnly: false } as const;

/** The naive loop: one forward per patch over every block and position, every position unembedded. */
function naivePlan(model: HookedTransformer, tokens: readonly (readonly number[])[], patches: readonly Patch[]): SweepPlan {
  const B = tokens.length;
  const P = tokens[0]!.length;
  const { qo, kv, mlp, unembed } = matmulFlops(model);
  const layerTokens = patches.length * model.cfg.nLayers * B * P;
  const flops = layerTokens * (qo + kv + mlp) + patches.length * B * P * unembed;
  return {
    strategy: "naive",
    passes: patches.map((patch) => ({ ...NAIVE_PASS, patches: [patch] })),
    patches: patches.length, layerTokenEvaluations: layerTokens, naiveLayerTokenEvaluations: layerTokens,
    tokensRecomputed: patches.length * B * P,
    peakMemoryBytes: Math.max(0, ...patches.map((patch) => passBytesPerCopy(model, B, P, NAIVE_PASS, passHooks(model, [patch], 0)))),
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

/** Which hook points a pass's edits (and the model's own hooks) watch, as far as its memory depends on them. */
export interface PassHooks {
  /** Attention scores or patterns: they are materialised. */
  scores?: boolean;
  /** Split q/k/v inputs: each head's copy of its input is held. */
  splitInputs?: boolean;
  /** hook_mlp_in: the MLP's copy of its input is held. */
  mlpIn?: boolean;
}

/**
 * Bytes one stacked copy of a pass holds: the forward's activation arena (`activationSizes`, the
 * function the forward allocates from), the residual stream it starts from, each copy's change to
 * it where the pass starts after the attention, and the logits it hands back. An upper bound: K
 * copies hold at most K times this (the arena is linear in the batch, up to its alignment).
 */
export function passBytesPerCopy(model: HookedTransformer, batch: number, pos: number,
  pass: Omit<PlannedPass, "patches">, hooks: PassHooks): number {
  const cfg = model.cfg;
  const n = pos - pass.startPos;
  const columns = pass.unembedTokens;
  const arena = activationBytes(cfg, {
    batch, pos, posStart: pass.startPos, embeds: pass.startLayer === 0 && !pass.afterAttention, scores: hooks.scores ?? false,
    pruneLastLayer: pass.pruneLastLayer, attentionMask: false,
    logitRows: columns !== undefined ? 0 : pass.lastPositionOnly ? batch : batch * n,
    splitInputs: hooks.splitInputs ?? false, mlpIn: hooks.mlpIn ?? false,
  });
  const residual = pass.startLayer > 0 || pass.afterAttention ? batch * n * cfg.dModel * (pass.afterAttention ? 2 : 1) : 0;
  // Only the declared columns are unembedded, from ln_final's last-position output; the metric gets [batch, 1, dVocab].
  const logits = columns !== undefined ? batch * (cfg.dModel + cfg.dVocab) : (pass.lastPositionOnly ? batch : batch * n) * cfg.dVocab;
  return arena + 4 * (residual + logits);
}

/** What the patches' edits, and the model's own hooks from `startLayer` on, watch (see {@link PassHooks}). */
function passHooks(model: HookedTransformer, patches: readonly Patch[], startLayer: number): PassHooks {
  const watched = (pattern: RegExp) => patches.some((p) => p.edits.some((e) => pattern.test(e.hook))) ||
    model.hasHooks((name) => pattern.test(name) && Number(/^blocks\.(\d+)\./.exec(name)?.[1] ?? -1) >= startLayer);
  return { scores: watched(/attn\.hook_(pattern|attn_scores)$/), splitInputs: watched(/hook_[qkv]_input$/), mlpIn: watched(/hook_mlp_in$/) };
}
