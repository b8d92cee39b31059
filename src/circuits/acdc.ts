// ACDC (Conmy et al., "Towards Automated Circuit Discovery"): start from every edge and, walking
// the graph from the logits back to the input, drop each edge whose removal changes the circuit's
// metric by less than a threshold.
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import type { Metric } from "../patching/metrics.js";
import { circuitRunner, type CircuitEvaluation, type CircuitRunOptions } from "./circuit-run.js";

export interface AcdcOptions extends CircuitRunOptions {
  /** An edge is dropped when removing it moves the circuit's metric by less than this (in the metric's units, ≥ 0). */
  threshold: number;
  /** Called after each stacked pass: edges decided so far, of all, and how many the circuit keeps. */
  onProgress?: (progress: { done: number; total: number; kept: number }) => void;
  /** Cancels between passes: the promise rejects with an AbortError and the model is left as it was. */
  signal?: AbortSignal;
}

/** One decision of the walk. */
export interface AcdcStep {
  writer: string;
  reader: string;
  /** The circuit's metric at this step (without the edges dropped before it). */
  metricWith: number;
  /** The same without this edge. */
  metricWithout: number;
  /** |metricWithout − metricWith|. */
  change: number;
  removed: boolean;
}

export interface AcdcResult {
  /** The edges kept, as [writer, reader] names. */
  edges: [string, string][];
  /** The kept circuit's metric and faithfulness ((metric − M(corrupted)) / (M(clean) − M(corrupted))). */
  metric: number;
  faithfulness: number;
  baseline: number;
  clean: number;
  /** Every decision, in walk order. */
  steps: AcdcStep[];
  /** The kept circuit's per-prompt metrics, where the metric gives them (see `faithfulnessCi`). */
  perPrompt?: CircuitEvaluation["perPrompt"];
  /** Stacked forward passes run (circuit runs, the full circuit's included). */
  passes: number;
}

/**
 * ACDC over the writer/reader graph, on circuit runs (ATTRIBUTION.md, section 5). The walk takes
 * the readers from the logits back to the first layer (the reverse of the graph's reader order)
 * and, for each, its writers from the latest to the input; each edge is dropped when
 * |M(circuit without it) − M(circuit)| < `threshold`, and the circuit then goes on without it
 * (greedy: every later decision sees the earlier removals). The result is the one edge-by-edge walk
 * gives; to save passes, while the walk keeps edges the next edges' trials are stacked in one run
 * on the current circuit (twice as many after each pass without a removal) and read in order up to
 * the first removal (after which the rest are tried again on the new circuit, one at a time).
 * Nodes left without a path to the logits keep their edges in the list; their effect is nil.
 *
 * @example
 * ```ts
 * const found = await acdc(model, corruptedTokens, cleanCache, corruptedCache, logitDiff(answers), { threshold: 0.1 });
 * found.edges;        // [["a1.h1", "logits"], ...]
 * found.faithfulness;
 * ```
 */
export async function acdc(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: AcdcOptions): Promise<AcdcResult> {
  const { threshold } = options;
  if (typeof threshold !== "number" || !Number.isFinite(threshold) || threshold < 0) {
    throw new Error(`acdc: threshold must be a finite number ≥ 0, got ${threshold}`);
  }
  const runner = circuitRunner(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const { graph } = runner;
  const { baseline, clean, perPrompt: baselineRows } = runner.baselines();
  const nR = graph.nReaders;
  const order: number[] = [];
  for (let v = nR - 1; v >= 0; v--) {
    for (let u = graph.nWriters - 1; u >= 0; u--) if (graph.edgeMask[u * nR + v]) order.push(u * nR + v);
  }
  const circuit = new Set(order);
  throwIfAborted(options.signal);
  let kept = runner.runs([circuit])[0]!;
  let current = kept.value;
  let passes = 1;
  const steps: AcdcStep[] = [];
  // How many trials a pass stacks: one after a removal (the rest would be wasted), doubling while
  // the walk keeps edges, up to what the memory budget allows.
  let stack = 1;
  for (let i = 0; i < order.length;) {
    throwIfAborted(options.signal);
    const trials = order.slice(i, i + stack);
    const runs = runner.runs(trials.map((edge) => {
      const without = new Set(circuit);
      without.delete(edge);
      return without;
    }));
    const values = runs.map((r) => r.value);
    passes++;
    for (let j = 0; j < trials.length; j++) {
      const edge = trials[j]!;
      const change = Math.abs(values[j]! - current);
      const removed = change < threshold;
      steps.push({
        writer: graph.writers[Math.floor(edge / nR)]!, reader: graph.readers[edge % nR]!, metricWith: current, metricWithout: values[j]!, change, removed,
      });
      i++;
      if (removed) {
        circuit.delete(edge);
        current = values[j]!;
        kept = runs[j]!;
        break; // the remaining trials ran on the circuit before this removal
      }
    }
    stack = steps.at(-1)!.removed ? 1 : Math.min(runner.perPass, stack * 2);
    options.onProgress?.({ done: i, total: order.length, kept: circuit.size - (order.length - i) });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return {
    edges: graph.edgesToJSON(circuit), metric: current, faithfulness: (current - baseline) / (clean - baseline),
    baseline, clean, steps, passes,
    ...(kept.perPrompt === undefined || baselineRows === undefined ? {} : { perPrompt: { metric: kept.perPrompt, ...baselineRows } }),
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (signal.reason instanceof Error && signal.reason.name === "AbortError") throw signal.reason;
  const e = new Error("acdc was aborted", { cause: signal.reason });
  e.name = "AbortError";
  throw e;
}
