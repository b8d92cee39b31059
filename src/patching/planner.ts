import { Tensor } from "../engine/tensor.js";
import type { HookFn, HookPoint } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { Metric } from "./metrics.js";
import { metricColumns, unembedColumns } from "./unembed-columns.js";

/** One change to an activation of the corrupted run. */
export interface PatchEdit {
  /** Full hook name, e.g. `blocks.2.attn.hook_k`. */
  hook: string;
  /**
   * Edits, in place, this patch's copy of the activation: [batch, ...] for the corrupted prompts.
   * A planned sweep may hand over only the positions it recomputes: the position axis (the query
   * axis of scores and patterns) then starts at `hook.positionStart`.
   */
  apply(activation: Tensor, hook: HookPoint): void;
}

/** One patched run of a sweep. */
export interface Patch {
  /** Flat index of this run's score in the result. */
  index: number;
  /** Names the patch in errors and progress, e.g. `src (0, 1) -> dst (2, 3) k`. */
  label: string;
  /** The first block the patch can change; a planned sweep starts there from the corrupted residual stream. */
  startLayer: number;
  /**
   * The first position the patch can change (default 0): a planned sweep reuses the corrupted
   * run before it and, since the metric reads only later positions, computes the last block only
   * where the metric reads. Leave it undefined for edits that need whole activations.
   */
  startPos?: number;
  edits: PatchEdit[];
  /**
   * For a patch whose edits change only some heads' attention in `startLayer` (keys, values and
   * queries of the other heads there are the corrupted run's): how many query heads it changes, and
   * the change it makes to that layer's `hook_attn_out` at positions [positionStart, pos) of each
   * row, [batch, pos - positionStart, dModel], called after `prepare`. A planned sweep then starts
   * from the corrupted `hook_resid_mid` plus this change and skips that layer's attention, unless a
   * hook of the model watches it; the edits are not applied then.
   */
  attnOutDelta?: { heads: number; compute: (positionStart: number) => Float32Array };
  /**
   * Runs before the forward pass that carries this patch, outside any hook: the place to
   * compute patch values on the engine (allocating inside a hook could grow the memory and
   * detach the activation views the hook holds).
   */
  prepare?: () => void;
}

export interface SweepProgress {
  /** Patched runs finished. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Estimated time to finish, once a run has finished. */
  etaMs: number | undefined;
}

/** Options every sweep accepts. */
export interface SweepOptions {
  /**
   * `planned` (default): patches are grouped by the layer they start at, stacked along the
   * batch axis and run from the cached corrupted residual stream at that layer, unembedding
   * only the positions the metric reads. `naive`: one full forward pass per patch, as
   * TransformerLens runs it; kept as the reference the planned sweep is tested against.
   */
  strategy?: "planned" | "naive";
  /**
   * Upper bound on the activation memory of one stacked pass (default 1 GiB). A sweep whose single
   * patched run needs more is refused before it starts.
   */
  memoryBudgetBytes?: number;
  /** Called after each forward pass of the sweep. */
  onProgress?: (progress: SweepProgress) => void;
  /** Cancels the sweep: the promise rejects with an AbortError within one forward pass. */
  signal?: AbortSignal;
  /**
   * Called once when the sweep is aborted, before the promise rejects, with the scores finished so
   * far (flat, in the result's row-major layout) and `done[i] = 1` for each finished entry.
   */
  onPartial?: (partial: { scores: Float32Array; done: Uint8Array }) => void;
  /** Called once before the sweep runs, with its plan: the same numbers `planSweep` gives. */
  onPlan?: (plan: SweepPlanSummary) => void;
}

/** A planned sweep's plan without its patches: what it will compute and what it saves. */
export type SweepPlanSummary = Omit<SweepPlan, "passes"> & { passes: number };

const DEFAULT_BUDGET = 1024 * 1024 * 1024;

/** What a planned sweep reuses from the corrupted run. */
export interface CorruptedRun {
  /** `blocks.l.hook_resid_pre` [batch, pos, dModel]. */
  residPre(layer: number): Tensor;
  /** Whether {@link keysValues} has the layer's keys and values (planning asks this without reading them). */
  hasKeysValues(layer: number): boolean;
  /** `blocks.l.attn.hook_k` / `hook_v`, or undefined when not cached (no prefix is then reused). */
  keysValues(layer: number): { k: Tensor; v: Tensor } | undefined;
  /** `blocks.l.hook_resid_mid` [batch, pos, dModel], where cached (patches with `attnOutDelta` start there). */
  residMid?(layer: number): Tensor | undefined;
}

/**
 * Runs every patch on the corrupted tokens and writes metric(patched logits) to
 * `scores[patch.index]`.
 */
export async function runSweep(
  model: HookedTransformer,
  tokens: readonly (readonly number[])[],
  patches: readonly Patch[],
  metric: Metric,
  corrupted: CorruptedRun,
  scores: Float32Array,
  options: SweepOptions = {},
): Promise<void> {
  const plan = planSweepPatches(model, tokens, patches, metric, corrupted, options);
  const started = Date.now();
  let done = 0;
  const finished = new Uint8Array(scores.length); // 1 where scores[i] holds a finished run
  const report = async (n: number) => {
    done += n;
    const elapsedMs = Date.now() - started;
    options.onProgress?.({ done, total: patches.length, elapsedMs, etaMs: done > 0 ? (elapsedMs / done) * (patches.length - done) : undefined });
    await yieldToEventLoop();
    if (options.signal?.aborted) options.onPartial?.({ scores: scores.slice(), done: finished.slice() });
    throwIfAborted(options.signal);
  };
  throwIfAborted(options.signal);
  options.onPlan?.(summarize(plan));

  const record = (patch: Patch, logits: Tensor) => {
    const value = metric(logits);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      const hint = metric.tokens !== undefined && plan.strategy === "planned"
        ? ` (it declares tokens [${metric.tokens.join(", ")}], so every other token's logit it was given is NaN)` : "";
      throw new Error(`the metric returned ${value} for patch ${patch.label}; a sweep needs finite numbers${hint}`);
    }
    scores[patch.index] = value;
    finished[patch.index] = 1;
  };

  if (plan.strategy === "naive") {
    for (const patch of patches) {
      patch.prepare?.();
      const fwdHooks = patch.edits.map((e) => [e.hook, ((act: Tensor, hook: HookPoint) => e.apply(act, hook)) as HookFn] as const);
      record(patch, model.forward(tokens, { fwdHooks }).logits!);
      await report(1);
    }
    return;
  }

  for (const pass of plan.passes) {
    for (const patch of pass.patches) patch.prepare?.();
    const logits = runStacked(model, tokens, pass, corrupted);
    const perCopy = logits.size / pass.patches.length;
    const copyShape = [tokens.length, ...logits.shape.slice(1)];
    pass.patches.forEach((patch, k) => record(patch, new Tensor(logits.data.subarray(k * perCopy, (k + 1) * perCopy), copyShape)));
    await report(pass.patches.length);
  }
}

/** One stacked forward pass of a planned sweep. */
export interface PlannedPass {
  startLayer: number;
  /** First recomputed position (earlier ones are the corrupted run's). */
  startPos: number;
  /** Whether the last block is computed only at the last position. */
  pruneLastLayer: boolean;
  /**
   * Whether the pass starts after `startLayer`'s attention, from the corrupted resid_mid plus each
   * patch's `attnOutDelta` (at the last layer with a last-position metric: only at the last position).
   */
  afterAttention: boolean;
  /** Whether only the last position is unembedded (the metric reads nothing else). */
  lastPositionOnly: boolean;
  /** The only vocabulary entries unembedded (the metric's declared tokens), or undefined for all. */
  unembedTokens?: Int32Array;
  patches: Patch[];
}

/**
 * Checks a sweep's options and plans it: the planned strategy's stacked passes, or the naive
 * loop's one pass per patch. Throws, before any work, what {@link runSweep} would throw.
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

/** How a sweep will run, and what it saves over the naive loop. */
export interface SweepPlan {
  strategy: "planned" | "naive";
  /** Forward passes, in order (the naive loop: one per patch, each from layer 0 at every position). */
  passes: PlannedPass[];
  patches: number;
  /** Block evaluations summed over passes, each over the rows it computes (in units of one batch row × position). */
  layerTokenEvaluations: number;
  /** The same for the naive loop (every patch: every block, every position). */
  naiveLayerTokenEvaluations: number;
  /** Token positions recomputed, summed over passes and copies. */
  tokensRecomputed: number;
  /** Activation bytes of the largest pass. */
  peakMemoryBytes: number;
  /**
   * Floating-point operations of the matrix products the passes make: with the block weights, the
   * unembedding, and (where a pass skips its first layer's attention) the changed heads' W_O.
   */
  flops: number;
  /** The same for the naive loop. */
  naiveFlops: number;
  /** Estimated speedup over the naive loop: naiveFlops / flops. */
  estimatedSpeedup: number;
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
  const kvFrom = new Map<number, boolean>();
  const keysValuesFrom = (layer: number): boolean => {
    let ok = kvFrom.get(layer);
    if (ok === undefined) {
      ok = true;
      for (let l = layer; l < cfg.nLayers && ok; l++) ok = corrupted.hasKeysValues(l);
      kvFrom.set(layer, ok);
    }
    return ok;
  };
  // Whether a pass may skip a layer's attention: the corrupted resid_mid is there and no hook of the model watches that attention.
  const skippable = new Map<number, boolean>();
  const canSkipAttention = (layer: number): boolean => {
    let ok = skippable.get(layer);
    if (ok === undefined) {
      const b = `blocks.${layer}.`;
      ok = corrupted.residMid?.(layer) !== undefined && !model.hasHooks((name) => name.startsWith(b) &&
        (name === `${b}hook_resid_pre` || name.startsWith(`${b}ln1.`) || name.startsWith(`${b}attn.`) || name === `${b}hook_attn_out`));
      skippable.set(layer, ok);
    }
    return ok;
  };
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
 * row (a batch row at one position): the query and output projections, the key and value
 * projections, the MLP, the unembedding (of every token, and of one), and one head's output projection.
 */
function matmulFlops(model: HookedTransformer) {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, gatedMlp } = model.cfg;
  return {
    qo: 2 * 2 * D * H * d, kv: 2 * 2 * D * Hk * d, mlp: 2 * (gatedMlp ? 3 : 2) * D * M, unembed: 2 * D * V, unembedColumn: 2 * D,
    headOut: 2 * d * D,
  };
}

/** One forward pass over K stacked copies of the corrupted batch, copy k carrying patch k. */
function runStacked(model: HookedTransformer, tokens: readonly (readonly number[])[], pass: PlannedPass, corrupted: CorruptedRun): Tensor {
  const B = tokens.length;
  const P = tokens[0]!.length;
  const { startLayer, startPos: s, patches } = pass;
  const K = patches.length;
  const stackedTokens = Array.from({ length: K * B }, (_, r) => tokens[r % B]!);
  let residual: Tensor | undefined;
  if (startLayer > 0 || pass.afterAttention) {
    // The corrupted residual stream at positions [s, P) of each row, repeated for each copy; after
    // the attention, plus each copy's change to it.
    const r = pass.afterAttention ? corrupted.residMid!(startLayer)! : corrupted.residPre(startLayer);
    const D = r.shape[2]!;
    const n = P - s;
    const data = new Float32Array(K * B * n * D);
    for (let row = 0; row < K * B; row++) {
      const b = row % B;
      data.set(r.data.subarray((b * P + s) * D, (b + 1) * P * D), row * n * D);
    }
    if (pass.afterAttention) {
      patches.forEach((patch, k) => {
        const delta = patch.attnOutDelta!.compute(s); // [B, n, D]
        const o = k * B * n * D;
        for (let i = 0; i < delta.length; i++) data[o + i]! += delta[i]!;
      });
    }
    residual = new Tensor(data, [K * B, n, D]);
  }
  // One hook per hook name; it hands each copy its own [B, ...] slice.
  const byHook = new Map<string, [number, PatchEdit][]>();
  // A pass after the attention starts past every edit of its patches' start layer.
  if (!pass.afterAttention) patches.forEach((patch, k) => {
    for (const edit of patch.edits) {
      const list = byHook.get(edit.hook) ?? [];
      list.push([k, edit]);
      byHook.set(edit.hook, list);
    }
  });
  const fwdHooks = [...byHook].map(([hook, edits]) => [hook, ((act: Tensor, point: HookPoint) => {
    const per = act.size / K;
    const shape = [B, ...act.shape.slice(1)];
    for (const [k, edit] of edits) edit.apply(new Tensor(act.data.subarray(k * per, (k + 1) * per), shape), point);
  }) as HookFn] as const);
  const keptPrefix = s > 0
    ? { length: s, keysValues: (layer: number) => corrupted.keysValues(layer)! }
    : undefined;
  const columns = pass.unembedTokens;
  if (columns === undefined) {
    return model.forward(stackedTokens, {
      startAtLayer: startLayer, startAfterAttention: pass.afterAttention, residual, fwdHooks, lastPositionOnly: pass.lastPositionOnly,
      keptPrefix, pruneLastLayer: pass.pruneLastLayer,
    }).logits!;
  }
  // Only the metric's tokens are unembedded, from the final norm's output at each row's last position.
  const D = model.cfg.dModel;
  const last = new Float32Array(K * B * D);
  const readLast = (act: Tensor) => {
    const n = act.shape[1]!;
    for (let row = 0; row < K * B; row++) last.set(act.data.subarray(((row + 1) * n - 1) * D, (row + 1) * n * D), row * D);
  };
  model.forward(stackedTokens, {
    startAtLayer: startLayer, startAfterAttention: pass.afterAttention, residual,
    fwdHooks: [...fwdHooks, ["ln_final.hook_normalized", readLast]], returnType: "none",
    lastPositionOnly: true, keptPrefix, pruneLastLayer: pass.pruneLastLayer,
  });
  return unembedColumns(model, last, K * B, columns);
}

/** Activation bytes one batch row × position needs in a forward pass of a sequence of `pos` (a pass's buffers scale with it). */
export function bytesPerRow(model: HookedTransformer, pos: number): number {
  const { dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V } = model.cfg;
  // resid, embed, pos embed, norm, attn out, mlp out, the JS residual copy; q, k, v, z; pre, post;
  // scores and pattern when hooked; logits of one position per row.
  return 4 * (7 * D + 4 * H * d + 2 * M + 2 * H * pos + V / pos);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : makeAbortError();
  }
}

function makeAbortError(): Error {
  if (typeof DOMException === "function") return new DOMException("the sweep was aborted", "AbortError");
  const e = new Error("the sweep was aborted");
  e.name = "AbortError";
  return e;
}
