import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import { activationBytes } from "../model/activation-sizes.js";
import type { HookFn } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { metricsFromResidual, metricsOf } from "../patching/final-metric.js";
import type { Metric } from "../patching/metrics.js";
import { bootstrapFaithfulness } from "../patching/prompt-stats.js";
import { EdgeGraph, type EdgeRef } from "./edge-graph.js";
import { attentionBeforePostNorm, throughPostNorm } from "../patching/post-norm.js";

export interface CircuitEvaluation {
  /** The metric of the circuit's run. */
  metric: number;
  /** (metric − M(corrupted)) / (M(clean) − M(corrupted)). */
  faithfulness: number;
  /** The circuit's edges, as [writer, reader] names. */
  edges: [string, string][];
  /**
   * With a metric that has `perPrompt` (the built-in ones): each prompt's metric in the circuit's
   * run, the corrupted run and the clean run, from the same passes (see {@link faithfulnessCi}).
   */
  perPrompt?: { metric: Float64Array; baseline: Float64Array; clean: Float64Array };
}

/**
 * The percentile bootstrap interval of a circuit's faithfulness over prompts (of an evaluation, a
 * discovered circuit or a curve point) (defaults: level
 * 0.95, 1000 samples, seed 0): each resampling of the prompts recomputes the ratio of means
 * (mean circuit − mean corrupted) / (mean clean − mean corrupted). Deterministic for a seed.
 *
 * @example
 * ```ts
 * const evaluation = evaluateCircuit(model, corruptedTokens, clean, corrupted, logitDiff(answers), edges);
 * const { low, high } = faithfulnessCi(evaluation, { level: 0.95 });
 * ```
 */
export function faithfulnessCi(evaluation: Pick<CircuitEvaluation, "perPrompt">, options: { level?: number; samples?: number; seed?: number } = {}): { low: number; high: number } {
  const rows = evaluation.perPrompt;
  if (rows === undefined) throw new Error("faithfulnessCi: this evaluation has no per-prompt rows (its metric has no perPrompt(logits); logitDiff, logProb and normalize have one)");
  const level = options.level ?? 0.95;
  const samples = options.samples ?? 1000;
  const seed = options.seed ?? 0;
  if (!(level > 0 && level < 1)) throw new Error(`faithfulnessCi: level must be in (0, 1), got ${level}`);
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`faithfulnessCi: samples must be a positive integer, got ${samples}`);
  if (!Number.isInteger(seed)) throw new Error(`faithfulnessCi: seed must be an integer, got ${seed}`);
  return bootstrapFaithfulness(rows.metric, rows.baseline, rows.clean, { level, samples, seed });
}

export interface CircuitRunOptions {
  /**
   * Memory one stacked pass may take (default 1 GiB): circuits evaluated together run as copies of
   * the prompts stacked along the batch axis, as many to a pass as fit.
   */
  memoryBudgetBytes?: number;
}

const DEFAULT_BUDGET = 1024 * 1024 * 1024;

/**
 * Runs a circuit (ATTRIBUTION.md, section 5) on the corrupted tokens: every reader reads, from each
 * writer, that writer's output in this same run where the edge is in the circuit and its corrupted
 * output where it is not; the input writer's output in this run is the clean one, and every norm
 * is recomputed. So the clean input reaches the metric only through the circuit's edges:
 * all edges give M(clean), none gives M(corrupted). Each reader's own input is an on-demand hook
 * point (`hook_q_input`, ..., `hook_mlp_in`), so any model can run it.
 *
 * @example
 * ```ts
 * const { metric, faithfulness } = evaluateCircuit(model, corruptedTokens, cleanCache, corruptedCache, logitDiff(answers),
 *   [["a0.h2", "a1.h1<k>"], ["a1.h1", "logits"]]);
 * ```
 */
export function evaluateCircuit(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, edges: Iterable<EdgeRef>): CircuitEvaluation {
  return evaluateCircuits(model, corruptedTokens, cleanCache, corruptedCache, metric, [edges])[0]!;
}

/**
 * {@link evaluateCircuit} for several circuits at once: their runs are stacked along the batch axis
 * (as many copies of the prompts per forward pass as `memoryBudgetBytes` allows), each copy
 * reading through its own circuit's edges. The same numbers as evaluating each alone.
 *
 * @example
 * ```ts
 * const [small, large] = evaluateCircuits(model, corruptedTokens, cleanCache, corruptedCache, metric,
 *   [[["a1.h1", "logits"]], [["a0.h2", "a1.h1<k>"], ["a1.h1", "logits"]]]);
 * ```
 */
export function evaluateCircuits(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, circuits: readonly Iterable<EdgeRef>[], options: CircuitRunOptions = {}): CircuitEvaluation[] {
  const runner = circuitRunner(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const sets = circuits.map((edges) => runner.graph.edgeSet(edges));
  const { baseline, clean, perPrompt } = runner.baselines();
  return runner.runs(sets).map((run, k) => {
    const evaluation: CircuitEvaluation = {
      metric: run.value, faithfulness: (run.value - baseline) / (clean - baseline), edges: runner.graph.edgesToJSON(sets[k]!),
    };
    if (run.perPrompt !== undefined && perPrompt !== undefined) evaluation.perPrompt = { metric: run.perPrompt, ...perPrompt };
    return evaluation;
  });
}

/** A run's metric and, where the metric has `perPrompt`, each prompt's. */
export interface RunMetrics {
  value: number;
  perPrompt: Float64Array | undefined;
}

/** Evaluates circuits (sets of flat edge indices) on fixed prompts and caches, stacked within a memory budget. */
export interface CircuitRunner {
  graph: EdgeGraph;
  /** M(corrupted) and M(clean) (and each prompt's, where the metric gives them); throws when they are equal (faithfulness is undefined). */
  baselines(): { baseline: number; clean: number; perPrompt?: { baseline: Float64Array; clean: Float64Array } };
  /** The metric of each circuit's run. */
  metrics(circuits: readonly ReadonlySet<number>[]): number[];
  /** The metric of each circuit's run and, where the metric gives them, each prompt's. */
  runs(circuits: readonly ReadonlySet<number>[]): RunMetrics[];
  /** How many circuits one pass stacks. */
  perPass: number;
}

/** Checks the caches and budget once, for many circuit runs (discovery, ACDC). */
export function circuitRunner(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: CircuitRunOptions = {}): CircuitRunner {
  const cfg = model.cfg;
  const graph = new EdgeGraph(cfg);
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  const tokens = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P)));
  const need = (cache: ActivationCache, name: string): Tensor => {
    if (!cache.has(name)) throw new Error(`evaluateCircuit: the cache has no ${name}; run runWithCache without a namesFilter (or include it)`);
    return cache.get(name);
  };
  const { nLayers: L, dModel: D, nHeads: H, dHead: d } = cfg;
  // Check what the runs read now, before any work.
  const embedClean = need(cleanCache, "hook_embed").data;
  const embedCorrupted = need(corruptedCache, "hook_embed").data;
  const zCorrupted = Array.from({ length: L }, (_, l) => need(corruptedCache, `blocks.${l}.attn.hook_z`).data);
  const mlpCorrupted = Array.from({ length: L }, (_, l) => need(corruptedCache, `blocks.${l}.hook_mlp_out`).data);
  need(cleanCache, `blocks.${L - 1}.hook_resid_post`);
  need(corruptedCache, `blocks.${L - 1}.hook_resid_post`);

  const budget = options.memoryBudgetBytes ?? DEFAULT_BUDGET;
  if (!(budget > 0)) throw new Error(`memoryBudgetBytes must be positive, got ${budget}`);
  const rows = B * P;
  // One copy: the forward's arena with every reader's own input, and (in JS) every writer's shift.
  const lastOnly = metric.positions === "last";
  const copyBytes = (k: number) => activationBytes(cfg, {
    batch: k * B, pos: P, posStart: 0, embeds: true, scores: false, pruneLastLayer: false, attentionMask: false,
    logitRows: lastOnly ? k * B : k * rows, splitInputs: true, mlpIn: true,
  }) + 4 * k * graph.nWriters * rows * D;
  if (copyBytes(1) > budget) {
    throw new Error(`a circuit run of ${B} × ${P} tokens needs about ${copyBytes(1)} bytes, more than memoryBudgetBytes (${budget}); ` +
      "raise the budget or evaluate fewer prompts at once");
  }
  let perPass = 1;
  while (perPass < 1024 && copyBytes(perPass + 1) <= budget) perPass++;
  const wO = Array.from({ length: L }, (_, l) => model.weights.get(`blocks.${l}.attn.W_O`)!.data);
  // With post-norms, each layer's corrupted attention output before its norm (once per layer).
  const preNorms = new Map<number, Float32Array>();
  const preNorm = (l: number) => {
    let pre = preNorms.get(l);
    if (pre === undefined) preNorms.set(l, pre = attentionBeforePostNorm(model, l, zCorrupted[l]!, rows));
    return pre;
  };

  /** One stacked run: copy k reads through circuits[k]'s edges. */
  const pass = (circuits: readonly ReadonlySet<number>[]): RunMetrics[] => {
    const K = circuits.length;
    const nR = graph.nReaders;
    // shift[k][u]: writer u's output in copy k's run minus its corrupted output, [rows * D], set as the run reaches it.
    const shift = circuits.map(() => new Map<number, Float32Array>());
    // x~_v = x_v(run) − Σ over writers u → v outside the circuit of shift_u, copy by copy.
    const correct = (x: Float32Array, slot: number, slots: number, reader: number) => {
      circuits.forEach((inCircuit, k) => {
        for (let u = 0; u < graph.nWriters; u++) {
          const flat = u * nR + reader;
          if (!graph.edgeMask[flat] || inCircuit.has(flat)) continue;
          const s = shift[k]!.get(u);
          if (s === undefined) continue; // not written yet: it cannot reach this reader
          for (let r = 0; r < rows; r++) {
            const o = ((k * rows + r) * slots + slot) * D;
            for (let i = 0; i < D; i++) x[o + i]! -= s[r * D + i]!;
          }
        }
      });
    };
    const inputShift = embedClean.map((x, i) => x - embedCorrupted[i]!);
    const hooks: [string, HookFn][] = [["hook_embed", (a) => {
      for (let k = 0; k < K; k++) {
        a.data.set(embedClean, k * rows * D);
        shift[k]!.set(graph.writerIndex("input"), inputShift);
      }
    }]];
    for (let l = 0; l < L; l++) {
      for (const kind of ["q", "k", "v"] as const) {
        hooks.push([`blocks.${l}.hook_${kind}_input`, (a) => {
          const heads = a.shape[2]!;
          for (let h = 0; h < heads; h++) correct(a.data, h, heads, graph.readerIndex(`a${l}.h${h}<${kind}>`));
        }]);
      }
      hooks.push([`blocks.${l}.attn.hook_z`, (z) => {
        for (let k = 0; k < K; k++) {
          for (let h = 0; h < H; h++) {
            // (z_run − z_corrupted)[:, :, h] @ W_O[h]
            const out = new Float32Array(rows * D);
            for (let r = 0; r < rows; r++) {
              for (let e = 0; e < d; e++) {
                const dz = z.data[((k * rows + r) * H + h) * d + e]! - zCorrupted[l]![(r * H + h) * d + e]!;
                if (dz === 0) continue;
                for (let i = 0; i < D; i++) out[r * D + i]! += dz * wO[l]![(h * d + e) * D + i]!;
              }
            }
            // Through a post-norm (Gemma-2): the change of the layer's write with only this head switched.
            shift[k]!.set(graph.writerIndex(`a${l}.h${h}`), cfg.postNorms ? throughPostNorm(model, l, preNorm(l), out, rows) : out);
          }
        }
      }]);
      hooks.push([`blocks.${l}.hook_mlp_in`, (a) => correct(a.data, 0, 1, graph.readerIndex(`m${l}`))]);
      hooks.push([`blocks.${l}.hook_mlp_out`, (a) => {
        for (let k = 0; k < K; k++) {
          const o = k * rows * D;
          shift[k]!.set(graph.writerIndex(`m${l}`), Float32Array.from({ length: rows * D }, (_, i) => a.data[o + i]! - mlpCorrupted[l]![i]!));
        }
      }]);
    }
    hooks.push([`blocks.${L - 1}.hook_resid_post`, (a) => correct(a.data, 0, 1, graph.readerIndex("logits"))]);
    const stacked = Array.from({ length: K }, () => tokens).flat();
    const logits = model.runWithHooks(stacked, { fwdHooks: hooks, lastPositionOnly: lastOnly }).logits!;
    const size = logits.size / K;
    return circuits.map((_, k) => metricsOf(metric, new Tensor(logits.data.subarray(k * size, (k + 1) * size), [B, ...logits.shape.slice(1)]),
      "a circuit's run"));
  };
  const runs = (circuits: readonly ReadonlySet<number>[]): RunMetrics[] => {
    const out: RunMetrics[] = [];
    for (let i = 0; i < circuits.length; i += perPass) out.push(...pass(circuits.slice(i, i + perPass)));
    return out;
  };
  const final = (cache: ActivationCache, run: string) => metricsFromResidual(model, tokens, cache.get(`blocks.${L - 1}.hook_resid_post`), metric, run);

  return {
    graph,
    perPass,
    baselines: () => {
      const baseline = final(corruptedCache, "the corrupted run");
      const clean = final(cleanCache, "the clean run");
      if (clean.value === baseline.value) throw new Error(`the clean and corrupted runs give the same metric (${clean.value}): faithfulness is undefined`);
      return {
        baseline: baseline.value, clean: clean.value,
        ...(baseline.perPrompt !== undefined && clean.perPrompt !== undefined ? { perPrompt: { baseline: baseline.perPrompt, clean: clean.perPrompt } } : {}),
      };
    },
    metrics: (circuits) => runs(circuits).map((r) => r.value),
    runs,
  };
}
