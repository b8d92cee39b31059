import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import type { Metric } from "../patching/metrics.js";
import { spearman } from "../patching/verify-attribution.js";
import { evaluateCircuits, type CircuitEvaluation, type CircuitRunOptions } from "./circuit-run.js";
import { getEdgeAttrEap, getEdgeAttrEapIg } from "./edge-attribution.js";
import { EdgeGraph } from "./edge-graph.js";
import { getEdgePatchExact } from "./edge-patching.js";

/** One point of a faithfulness curve: the circuit of the top `n` edges. */
export interface CurvePoint {
  n: number;
  metric: number;
  faithfulness: number;
  /** Each prompt's metrics, where the metric gives them (see `faithfulnessCi`). */
  perPrompt?: CircuitEvaluation["perPrompt"];
}

/**
 * The faithfulness of the circuits made of the first `n` edges of a ranking, for each `n`.
 * `ranking` is a list of [writer, reader] index pairs, best first.
 */
export function faithfulnessCurve(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, ranking: readonly (readonly [number, number])[], ns: readonly number[],
  options: CircuitRunOptions = {}): CurvePoint[] {
  for (const n of ns) if (!Number.isInteger(n) || n < 0 || n > ranking.length) throw new Error(`faithfulnessCurve: n = ${n} is outside [0, ${ranking.length}]`);
  // Every point's circuit in stacked runs (see evaluateCircuits).
  return evaluateCircuits(model, corruptedTokens, cleanCache, corruptedCache, metric, ns.map((n) => ranking.slice(0, n)), options)
    .map(({ metric: m, faithfulness, perPrompt }, i) => ({ n: ns[i]!, metric: m, faithfulness, ...(perPrompt ? { perPrompt } : {}) }));
}

export interface DiscoverOptions {
  /** How edges are ranked: EAP (one backward) or EAP-IG (`steps` backwards; default 5). */
  method: "eap" | "eap-ig";
  steps?: number;
  /** How many of the top-ranked edges to patch exactly (default 50; 0: none). */
  verify?: number;
  /** The faithfulness the circuit must reach (default 0.8). */
  target?: number;
  /** Exact patching's mode (default exact). */
  mode?: "exact" | "linear";
  onProgress?: (progress: { stage: string; done: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface DiscoveredEdge {
  writer: string;
  reader: string;
  /** The attribution estimate (a metric). */
  estimate: number;
  /** The exact edge patching metric, where verified. */
  exact?: number;
}

export interface DiscoveredCircuit {
  /** The circuit: the smallest top-n of the ranking whose faithfulness reaches the target (or all edges). */
  edges: DiscoveredEdge[];
  metric: number;
  faithfulness: number;
  /** Whether some top-n (at most every edge) reaches the target; when not, the circuit is every edge. */
  reachedTarget: boolean;
  /** The curve the choice was made on. */
  curve: CurvePoint[];
  /** Spearman's ρ of estimate and exact over the verified edges (NaN with fewer than 2). */
  spearman: number;
  baseline: number;
  clean: number;
  /** The chosen circuit's per-prompt metrics, where the metric gives them (see `faithfulnessCi`). */
  perPrompt?: CircuitEvaluation["perPrompt"];
}

/**
 * Rank-then-verify circuit discovery: every edge ranked by |EAP or EAP-IG estimate − M(corrupted)|;
 * the top `verify` patched exactly and re-ranked by their exact effect (the rest follow in estimate
 * order); then the smallest top-n circuit whose faithfulness reaches `target`, found on a doubling
 * curve refined by bisection.
 *
 * @example
 * ```ts
 * const found = await discoverCircuit(model, corrupted, cleanCache, corruptedCache, metric, { method: "eap-ig", verify: 50 });
 * found.edges;         // [{ writer: "a0.h2", reader: "a1.h1<k>", estimate, exact }, ...]
 * found.faithfulness;  // ≥ 0.8 when reachedTarget
 * ```
 */
export async function discoverCircuit(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DiscoverOptions): Promise<DiscoveredCircuit> {
  const { method } = options;
  if (method !== "eap" && method !== "eap-ig") throw new Error(`discoverCircuit: method must be "eap" or "eap-ig", got ${JSON.stringify(method)}`);
  const target = options.target ?? 0.8;
  if (!(target > 0 && target <= 1)) throw new Error(`discoverCircuit: target must be in (0, 1], got ${target}`);
  const verify = options.verify ?? 50;
  if (!Number.isInteger(verify) || verify < 0) throw new Error(`discoverCircuit: verify must be a non-negative integer, got ${verify}`);
  const progress = (stage: string) => (p: { done: number; total: number }) => options.onProgress?.({ stage, ...p });
  const graph = new EdgeGraph(model.cfg);
  const attr = method === "eap"
    ? await getEdgeAttrEap(model, corruptedTokens, cleanCache, corruptedCache, metric, { signal: options.signal, onProgress: progress("rank") })
    : await getEdgeAttrEapIg(model, corruptedTokens, cleanCache, corruptedCache, metric,
      { steps: options.steps ?? 5, signal: options.signal, onProgress: progress("rank") });
  if (attr.clean === attr.baseline) throw new Error(`the clean and corrupted runs give the same metric (${attr.clean}): faithfulness is undefined`);
  const estimate = attr.scores.data;
  const edges: number[] = [];
  graph.edgeMask.forEach((x, i) => { if (x) edges.push(i); });
  const byEffect = (score: ArrayLike<number>) => (a: number, b: number) =>
    Math.abs(score[b]! - attr.baseline) - Math.abs(score[a]! - attr.baseline) || a - b;
  edges.sort(byEffect(estimate));

  // Verify the top of the ranking exactly and re-rank it by the exact effect.
  const checked = edges.slice(0, Math.min(verify, edges.length));
  const exact = new Map<number, number>();
  if (checked.length > 0) {
    const r = await getEdgePatchExact(model, corruptedTokens, cleanCache, corruptedCache, metric, {
      mode: options.mode ?? "exact", edges: checked.map((flat) => [Math.floor(flat / graph.nReaders), flat % graph.nReaders] as const),
      signal: options.signal, onProgress: (p) => options.onProgress?.({ stage: "verify", done: p.done, total: p.total }),
    });
    for (const flat of checked) exact.set(flat, r.scores.data[flat]!);
    const exactScores = new Float32Array(estimate.length);
    for (const [flat, v] of exact) exactScores[flat] = v;
    checked.sort(byEffect(exactScores));
  }
  const ranking = [...checked, ...edges.slice(checked.length)].map((flat) => [Math.floor(flat / graph.nReaders), flat % graph.nReaders] as const);

  // The smallest n reaching the target: doubling, then bisection between the last miss and the
  // first hit (one point at a time: a stacked run costs as much per copy, and most points are never needed).
  const curve = new Map<number, CurvePoint>();
  const at = (n: number) => {
    let p = curve.get(n);
    if (p === undefined) {
      p = faithfulnessCurve(model, corruptedTokens, cleanCache, corruptedCache, metric, ranking, [n])[0]!;
      curve.set(n, p);
      options.onProgress?.({ stage: "circuit", done: curve.size, total: curve.size });
    }
    return p;
  };
  let lo = 0;
  let hi = 1;
  while (hi < ranking.length && at(hi).faithfulness < target) {
    lo = hi;
    hi = Math.min(ranking.length, hi * 2);
  }
  const reached = at(hi).faithfulness >= target;
  if (reached) {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (at(mid).faithfulness >= target) hi = mid;
      else lo = mid;
    }
  }
  const chosen = at(hi);
  const verified = checked.filter((flat) => exact.has(flat));
  return {
    edges: ranking.slice(0, hi).map(([u, v]) => {
      const flat = u * graph.nReaders + v;
      const e: DiscoveredEdge = { writer: graph.writers[u]!, reader: graph.readers[v]!, estimate: estimate[flat]! };
      if (exact.has(flat)) e.exact = exact.get(flat)!;
      return e;
    }),
    metric: chosen.metric, faithfulness: chosen.faithfulness, reachedTarget: reached,
    curve: [...curve.values()].sort((a, b) => a.n - b.n),
    spearman: spearman(verified.map((f) => estimate[f]!), verified.map((f) => exact.get(f)!)),
    baseline: attr.baseline, clean: attr.clean,
    ...(chosen.perPrompt === undefined ? {} : { perPrompt: chosen.perPrompt }),
  };
}
