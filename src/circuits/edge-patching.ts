import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookPoint } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { kvName } from "../model/weights.js";
import type { Metric } from "../patching/metrics.js";
import { directPathCaches, type DirectPathCaches } from "../patching/direct-path/caches.js";
import { deltaPatchValues } from "../patching/direct-path/patch-values.js";
import { headPatch } from "../patching/direct-path/patches.js";
import { directPathSetup, unfoldedLinearWarning, type DirectPathSetup } from "../patching/direct-path/setup.js";
import { memoize, sharedValues } from "../patching/memo.js";
import { planSweepPatches, summarize } from "../patching/planner.js";
import { runSweep } from "../patching/sweep-run.js";
import type { CorruptedRun, Patch, PatchEdit, SweepOptions, SweepPlanSummary } from "../patching/sweep-types.js";
import { metricsFromResidual, perPromptBuffer } from "../patching/final-metric.js";
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
  const L = model.cfg.nLayers;
  const baseline = metricsFromResidual(model, tokens, corruptedCache.get(`blocks.${L - 1}.hook_resid_post`), metric, "the corrupted run");
  const clean = metricsFromResidual(model, tokens, cleanCache.get(`blocks.${L - 1}.hook_resid_post`), metric, "the clean run");
  const scores = new Float32Array(graph.nWriters * graph.nReaders);
  const rows = perPromptBuffer(metric, tokens.length, scores.length);
  await runSweep(model, tokens, sweep.patches, metric, sweep.corruptedRun, scores, options, rows?.scores);
  const strategy = options.strategy ?? "planned";
  const shape = [graph.nWriters, graph.nReaders];
  return new PatchResult("edge_patch", new Tensor(scores, shape), baseline.value, clean.value,
    { mode: sweep.mode, strategy, writers: graph.writers, readers: graph.readers }, graph.edgeMask.map((x) => 1 - x),
    rows?.rows(shape, baseline.perPrompt, clean.perPrompt));
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
  const firstDifference = writerFirstDifferences(graph, cleanCache, corruptedCache, B, P);
  // Head readers run as direct path patches do (their q, k or v replaced or shifted, the reader's
  // layer from resid_mid plus the heads' changed attention, from the writer's first changed
  // position), wherever that is the same definition: always in exact mode, and in linear mode
  // where the norm is folded or is an RMSNorm (see unfoldedLinearWarning).
  const asDirectPath = mode === "exact" || unfoldedLinearWarning(cfg) === undefined;
  const headSweeps = new Map<string, { setup: DirectPathSetup; caches: DirectPathCaches; valuesOf: ReturnType<typeof deltaPatchValues> }>();
  const headSweep = (component: "q" | "k" | "v", as: "exact" | "linear" = mode) => {
    const key = `${component}.${as}`;
    const known = headSweeps.get(key);
    if (known !== undefined) return known;
    const setup = directPathSetup(model, tokens, metric, { component, mode: as });
    const caches = directPathCaches(setup, cleanCache, corruptedCache, metric);
    const sweep = { setup, caches, valuesOf: deltaPatchValues(setup, caches) };
    headSweeps.set(key, sweep);
    return sweep;
  };
  // Each writer's patch values into a layer's q, k or v, shared by the edges into its heads.
  const readersOf = new Map<string, number>();
  const valueKey = (u: number, v: number) => {
    const r = graph.readerNodes[v]!;
    return r.kind === "q" || r.kind === "k" || r.kind === "v" ? `${u}.${r.layer}.${r.kind}` : undefined;
  };
  for (const flat of chosen) {
    const key = valueKey(Math.floor(flat / graph.nReaders), flat % graph.nReaders);
    if (key !== undefined) readersOf.set(key, (readersOf.get(key) ?? 0) + 1);
  }
  const shared = sharedValues<Float32Array>();

  const patches: Patch[] = chosen.map((flat) => {
    const u = Math.floor(flat / graph.nReaders);
    const v = flat % graph.nReaders;
    const reader = graph.readerNodes[v]!;
    const label = `${graph.writers[u]} -> ${graph.readers[v]}`;
    if (asDirectPath && reader.kind !== "mlp" && reader.kind !== "logits") {
      const { setup, caches, valuesOf } = headSweep(reader.kind);
      const key = valueKey(u, v)!;
      return headPatch(setup, caches, {
        index: flat, label, startPos: firstDifference[u]!, dstLayer: reader.layer, dstHead: reader.head,
        values: () => shared(key, readersOf.get(key)!, () => valuesOf(deltas(undefined)[u]!, reader.layer)),
      });
    }
    // An MLP (or the logits) reads the residual stream after its layer's attention, which the
    // patch leaves as the corrupted run's: the pass starts at that layer's resid_mid (no heads
    // change), from the writer's first changed position.
    const afterAttention = reader.kind === "mlp" || reader.kind === "logits";
    return {
      index: flat,
      label,
      startLayer: reader.kind === "logits" ? cfg.nLayers - 1 : reader.layer,
      startPos: afterAttention ? firstDifference[u]! : undefined,
      attnOutDelta: afterAttention ? { heads: 0, compute: (s: number) => new Float32Array(B * (P - s) * cfg.dModel) } : undefined,
      edits: readerEdits(model, corruptedCache, reader, () => deltas(undefined)[u]!, mode, rows),
      // The deltas run products on the engine: outside hooks (an allocation could detach their views).
      prepare: () => { deltas(undefined); },
    };
  });
  // What the planner reuses of the corrupted run: its residual streams, and (for the head
  // readers' kept prefixes and attention shortcut) its keys, values and resid_mid where cached.
  const corruptedRun: CorruptedRun = headSweep("q", "exact").caches.corruptedRun;
  return { graph, tokens, patches, corruptedRun, mode };
}

/**
 * Each writer's first position where its output differs between the clean and the corrupted run
 * (`pos` if nowhere): before it, its clean − corrupted output is zero, and a patch of it changes nothing.
 */
function writerFirstDifferences(graph: EdgeGraph, clean: ActivationCache, corrupted: ActivationCache, B: number, P: number): Int32Array {
  const first = (names: string[], head?: number) => {
    let found = P;
    for (const name of names) {
      if (!clean.has(name) || !corrupted.has(name)) return 0; // not cached: assume it differs from the start
      const a = clean.get(name).data;
      const b = corrupted.get(name).data;
      const perPos = a.length / (B * P); // floats per (batch, position)
      const width = head === undefined ? perPos : perPos / graph.cfg.nHeads;
      const offset = head === undefined ? 0 : head * width;
      for (let p = 0; p < found; p++) {
        for (let r = 0; r < B && found > p; r++) {
          const o = (r * P + p) * perPos + offset;
          for (let e = 0; e < width; e++) if (a[o + e] !== b[o + e]) { found = p; break; }
        }
      }
    }
    return found;
  };
  return Int32Array.from(graph.writerNodes, (w) => w.kind === "input" ? first(["hook_embed", "hook_pos_embed"].filter((n) => clean.has(n)))
    : w.kind === "mlp" ? first([`blocks.${w.layer}.hook_mlp_out`]) : first([`blocks.${w.layer}.attn.hook_z`], w.head));
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
  // a: [B, n, ...] at positions [positionStart, positionStart + n) (a planned pass may hand over
  // only the positions it recomputes); delta's rows for those positions go into its D-wide slot
  // `slot` of `slots` per position.
  const addRows = (a: Tensor, point: HookPoint, slot: number, slots: number) => {
    const delta = deltaOf();
    const [B, n] = a.shape as [number, number];
    const P = rows / B;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n; i++) {
        const src = (b * P + point.positionStart + i) * D;
        const dst = ((b * n + i) * slots + slot) * D;
        for (let e = 0; e < D; e++) a.data[dst + e]! += delta[src + e]!;
      }
    }
  };
  const holdScale = (name: string): PatchEdit => {
    const scale = corrupted.get(name).data; // [B, P, 1]
    return {
      hook: name, apply: (a, point) => {
        const [B, n] = a.shape as [number, number];
        const P = rows / B;
        for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) a.data[b * n + i] = scale[b * P + point.positionStart + i]!;
      },
    };
  };
  if (reader.kind === "logits") {
    const edits: PatchEdit[] = [{ hook: `blocks.${cfg.nLayers - 1}.hook_resid_post`, apply: (a, point) => addRows(a, point, 0, 1) }];
    if (mode === "linear") edits.push(holdScale("ln_final.hook_scale"));
    return edits;
  }
  if (reader.kind === "mlp") {
    const edits: PatchEdit[] = [{ hook: `blocks.${reader.layer}.hook_mlp_in`, apply: (a, point) => addRows(a, point, 0, 1) }];
    if (mode === "linear") edits.push(holdScale(`blocks.${reader.layer}.ln2.hook_scale`));
    return edits;
  }
  const { layer, head, kind } = reader;
  if (mode === "exact") {
    return [{ hook: `blocks.${layer}.hook_${kind}_input`, apply: (a, point) => addRows(a, point, head, a.shape[2]!) }];
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
