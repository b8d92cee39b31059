import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { kvName } from "../model/weights.js";
import type { Metric } from "../patching/metrics.js";
import { memoize } from "../patching/memo.js";
import { planSweepPatches, summarize } from "../patching/planner.js";
import { runSweep } from "../patching/sweep-run.js";
import type { CorruptedRun, Patch, PatchEdit, SweepOptions, SweepPlanSummary } from "../patching/sweep-types.js";
import { metricFromCache } from "../patching/final-metric.js";
import { PatchResult } from "../patching/result.js";
import { writerDeltas } from "./edge-attribution.js";
import { EdgeGraph, type EdgeRef, type Reader } from "./edge-graph.js";

export interface EdgePatchOptions extends SweepOptions {
  /**
   * `exact` (default): the reader's norm is recomputed on its shifted input. `linear`: the norm's
   * scale is held at the corrupted run's (ln1, ln2 or ln_final `hook_scale`), as TransformerLens's
   * direct path patching does.
   */
  mode?: "exact" | "linear";
  /** Only these edges (names or indices); the others' scores stay 0. Default: every edge. */
  edges?: Iterable<EdgeRef>;
}

export interface EdgePatchRecord {
  mode: "exact" | "linear";
  strategy: "planned" | "naive";
  writers: readonly string[];
  readers: readonly string[];
}

/**
 * Exact edge patching (ATTRIBUTION.md, section 4): for each edge u → v, one corrupted run in which
 * reader v alone reads its corrupted input plus writer u's clean − corrupted output; every other
 * reader reads what the corrupted run gives it. `[n_writers, n_readers]` scores (the metric of each
 * run), non-edges 0 and flagged in `noPath`. Runs on the sweep planner: patches start at the
 * reader's layer from the corrupted residual stream, stacked along the batch axis; `strategy:
 * "naive"` is one whole forward per edge. Direct path patching is the head → q/k/v block of this
 * matrix. Each reader's own input is an on-demand hook point, so any model can run it.
 *
 * @example
 * ```ts
 * const r = await getEdgePatchExact(model, corruptedTokens, clean, corrupted, metric, { edges: [["a0.h2", "a1.h1<k>"]] });
 * r.scores.get(graph.writerIndex("a0.h2"), graph.readerIndex("a1.h1<k>"));
 * ```
 */
export async function getEdgePatchExact(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: EdgePatchOptions = {}): Promise<PatchResult<EdgePatchRecord>> {
  const sweep = prepareEdgeSweep(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const { graph, tokens } = sweep;
  const baseline = metricFromCache(model, tokens, corruptedCache, metric, "the corrupted run");
  const clean = metricFromCache(model, tokens, cleanCache, metric, "the clean run");
  const scores = new Float32Array(graph.nWriters * graph.nReaders);
  await runSweep(model, tokens, sweep.patches, metric, sweep.corruptedRun, scores, options);
  const strategy = options.strategy ?? "planned";
  return new PatchResult("edge_patch", new Tensor(scores, [graph.nWriters, graph.nReaders]), baseline, clean,
    { mode: sweep.mode, strategy, writers: graph.writers, readers: graph.readers }, graph.edgeMask.map((x) => 1 - x));
}

/**
 * The plan of {@link getEdgePatchExact} with these arguments (see `planSweep`): its stacked passes,
 * work and peak memory against one whole forward per edge, without running a patched pass.
 */
getEdgePatchExact.plan = (model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: EdgePatchOptions = {}): SweepPlanSummary => {
  const sweep = prepareEdgeSweep(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  return summarize(planSweepPatches(model, sweep.tokens, sweep.patches, metric, sweep.corruptedRun, options));
};

/** The patches of an edge sweep (each writer's clean − corrupted output computed at first use). */
function prepareEdgeSweep(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: EdgePatchOptions) {
  const cfg = model.cfg;
  const mode = options.mode ?? "exact";
  if (mode !== "exact" && mode !== "linear") throw new Error(`mode must be "exact" or "linear", got ${JSON.stringify(mode)}`);
  if (typeof metric !== "function") throw new Error("getEdgePatchExact: the metric must be a function of the logits");
  const graph = new EdgeGraph(cfg);
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  const tokens = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P)));
  const rows = B * P;
  const deltas = memoize(() => writerDeltas(model, graph, cleanCache, corruptedCache, rows));
  const chosen = options.edges === undefined ? allEdges(graph) : [...graph.edgeSet(options.edges)];
  const patches: Patch[] = chosen.map((flat) => {
    const u = Math.floor(flat / graph.nReaders);
    const v = flat % graph.nReaders;
    const reader = graph.readerNodes[v]!;
    return {
      index: flat,
      label: `${graph.writers[u]} -> ${graph.readers[v]}`,
      startLayer: reader.kind === "logits" ? cfg.nLayers - 1 : reader.layer,
      edits: readerEdits(model, corruptedCache, reader, () => deltas(undefined)[u]!, mode, rows),
      // The deltas run products on the engine: outside hooks (an allocation could detach their views).
      prepare: () => { deltas(undefined); },
    };
  });
  const corruptedRun: CorruptedRun = {
    residPre: (l) => corruptedCache.get(`blocks.${l}.hook_resid_pre`),
    hasKeysValues: () => false,
    keysValues: () => undefined,
  };
  return { graph, tokens, patches, corruptedRun, mode };
}

function allEdges(graph: EdgeGraph): number[] {
  const out: number[] = [];
  graph.edgeMask.forEach((x, i) => { if (x) out.push(i); });
  return out;
}

/**
 * The edits that shift reader `reader`'s input by `delta` [rows, D]: its own input copy in exact
 * mode; in linear mode, what its norm's output becomes with the corrupted scale held (q/k/v get
 * (δ̂ / s) · W of their head, δ̂ = δ centred for LayerNorm; the MLP's and the logits' norms get their
 * scale set back to the corrupted one).
 */
function readerEdits(model: HookedTransformer, corrupted: ActivationCache, reader: Reader, deltaOf: () => Float32Array, mode: "exact" | "linear",
  rows: number): PatchEdit[] {
  const cfg = model.cfg;
  const D = cfg.dModel;
  const addRows = (x: Float32Array, offset: number, stride: number) => {
    const delta = deltaOf();
    for (let r = 0; r < rows; r++) for (let i = 0; i < D; i++) x[offset + r * stride + i]! += delta[r * D + i]!;
  };
  const holdScale = (name: string): PatchEdit => {
    const s = corrupted.get(name).data;
    return { hook: name, apply: (a) => { a.data.set(s); } };
  };
  if (reader.kind === "logits") {
    const edits: PatchEdit[] = [{ hook: `blocks.${cfg.nLayers - 1}.hook_resid_post`, apply: (a) => addRows(a.data, 0, D) }];
    if (mode === "linear") edits.push(holdScale("ln_final.hook_scale"));
    return edits;
  }
  if (reader.kind === "mlp") {
    const edits: PatchEdit[] = [{ hook: `blocks.${reader.layer}.hook_mlp_in`, apply: (a) => addRows(a.data, 0, D) }];
    if (mode === "linear") edits.push(holdScale(`blocks.${reader.layer}.ln2.hook_scale`));
    return edits;
  }
  const { layer, head, kind } = reader;
  if (mode === "exact") {
    return [{ hook: `blocks.${layer}.hook_${kind}_input`, apply: (a) => addRows(a.data, head * D, a.shape[2]! * D) }];
  }
  // Linear: hook_c[:, :, head] += (δ̂ / s_corrupted) · W_c[head] (ln1's weight folded in when it is not yet).
  const d = cfg.dHead;
  const name = kind === "q" ? "W_Q" : kvName(cfg, kind === "k" ? "W_K" : "W_V");
  const W = model.weights.get(`blocks.${layer}.attn.${name}`)!.data; // [heads, D, d]
  const lnW = model.weights.get(`blocks.${layer}.ln1.w`)?.data;
  const scale = corrupted.get(`blocks.${layer}.ln1.hook_scale`).data;
  const centred = cfg.normalizationType === "LN" || cfg.normalizationType === "LNPre";
  // The change to this head's q/k/v (plain arithmetic, safe inside the hook), at its first use.
  let change: Float32Array | undefined;
  const compute = () => {
    const delta = deltaOf();
    change = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      if (centred) {
        for (let i = 0; i < D; i++) mean += delta[r * D + i]!;
        mean /= D;
      }
      for (let i = 0; i < D; i++) {
        const x = ((delta[r * D + i]! - mean) / scale[r]!) * (lnW?.[i] ?? 1);
        if (x === 0) continue;
        for (let e = 0; e < d; e++) change[r * d + e]! += x * W[(head * D + i) * d + e]!;
      }
    }
    return change;
  };
  return [{
    hook: `blocks.${layer}.attn.hook_${kind}`,
    apply: (a) => {
      const heads = a.shape[2]!;
      const c = change ?? compute();
      for (let r = 0; r < rows; r++) for (let e = 0; e < d; e++) a.data[(r * heads + head) * d + e]! += c[r * d + e]!;
    },
  }];
}
