// Sharded exact edge patching: the units (one edge each, ordered by the reader's layer so a shard's
// edges share stacked passes), the part files and their merge, and running shards on workers.

import type { WeightDtype } from "../model/device-weights.js";
import type { BackendName } from "../engine/engine.js";
import { EdgeGraph } from "../circuits/edge-graph.js";
import { getEdgePatchExact } from "../circuits/edge-patching.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { logitDiff } from "../patching/metrics.js";
import type { PatchResult } from "../patching/result.js";
import type { SweepOptions } from "../patching/sweep-types.js";
import { checkPartSet, mergeRows, splitByCost, type PartHeader, type PartRows } from "./shards.js";
import type { PerPromptRows } from "../patching/result.js";
import { runOnWorkers } from "./worker-jobs.js";

export const EDGE_PART_FORMAT = "hooklens-edge-shard/1";

/** The JSON `circuit edges` writes (and `merge` of edge parts). */
export interface EdgeScoresJson {
  op: string;
  method: string;
  shape: number[];
  writers: readonly string[];
  readers: readonly string[];
  scores: number[];
  noPath: boolean[];
  baseline: number;
  clean: number;
}

/** A part's edge scores: with its own edges' per-prompt rows (in its edges' order). */
export interface EdgePartScores extends EdgeScoresJson {
  perPrompt?: PartRows;
}

export function edgeScoresJson(result: PatchResult<object>, method: string): EdgeScoresJson {
  const o = result.options as { writers: readonly string[]; readers: readonly string[] };
  return {
    op: result.op, method, shape: [...result.scores.shape], writers: o.writers, readers: o.readers, scores: Array.from(result.scores.data),
    noPath: Array.from(result.noPath!, (x) => x === 1), baseline: result.baseline, clean: result.clean,
  };
}

/** A part file of a sharded `circuit edges --method exact`: its edges (`writer->reader`) and their scores (0 elsewhere). */
export interface EdgePart extends PartHeader {
  format: typeof EDGE_PART_FORMAT;
  shard: { index: number; count: number; edges: string[] };
  result: EdgePartScores;
}

/** Every edge's flat index, ordered by reader (so by the layer its patch starts at), then writer. */
export function edgeUnits(graph: EdgeGraph): number[] {
  const units: number[] = [];
  for (let v = 0; v < graph.nReaders; v++) {
    for (let u = 0; u < graph.nWriters; u++) if (graph.edgeMask[u * graph.nReaders + v]) units.push(u * graph.nReaders + v);
  }
  return units;
}

/** The edges in `count` contiguous runs of about equal work (an edge into layer l runs the L - l remaining blocks). */
export function splitEdges(graph: EdgeGraph, units: readonly number[], count: number): number[][] {
  const L = graph.cfg.nLayers;
  return splitByCost(units, (flat) => {
    const reader = graph.readerNodes[flat % graph.nReaders]!;
    return L - (reader.kind === "logits" ? L - 1 : reader.layer);
  }, count);
}

export const edgeLabel = (graph: EdgeGraph, flat: number): string =>
  `${graph.writers[Math.floor(flat / graph.nReaders)]}->${graph.readers[flat % graph.nReaders]}`;

/**
 * Merges the parts of one sharded edge sweep into the unsharded result: every edge from the part
 * that computed it. Refuses what {@link checkPartSet} refuses, an edge in two parts, and parts
 * that leave an edge out.
 */
export function mergeEdgeParts(parts: readonly { name: string; part: EdgePart }[]): { json: EdgeScoresJson; perPrompt?: PerPromptRows } {
  checkPartSet(parts, EDGE_PART_FORMAT);
  const f = parts[0]!.part.result;
  const graph = { writers: f.writers, readers: f.readers };
  const index = new Map<string, number>();
  f.writers.forEach((w, u) => f.readers.forEach((r, v) => index.set(`${w}->${r}`, u * graph.readers.length + v)));
  const scores = new Array<number>(f.scores.length).fill(0);
  const owner = new Map<string, string>();
  const entries = parts.map(() => [] as number[]);
  parts.forEach(({ name, part }, k) => {
    for (const id of part.shard.edges) {
      const flat = index.get(id);
      if (flat === undefined || f.noPath[flat]) throw new Error(`merge: ${name} lists ${JSON.stringify(id)}, which is not an edge of this graph`);
      if (owner.has(id)) throw new Error(`merge: edge ${id} is in both ${owner.get(id)} and ${name}`);
      owner.set(id, name);
      scores[flat] = part.result.scores[flat]!;
      entries[k]!.push(flat);
    }
  });
  const absent = [...index].filter(([id, flat]) => !f.noPath[flat] && !owner.has(id)).map(([id]) => id);
  if (absent.length > 0) throw new Error(`merge: the parts do not cover edges ${absent.slice(0, 5).join(", ")}${absent.length > 5 ? ", ..." : ""}`);
  const { perPrompt: _rows, ...json } = f;
  const perPrompt = mergeRows(parts.map(({ name, part }, k) => ({ name, rows: part.result.perPrompt, entries: entries[k]! })), f.shape);
  return { json: { ...json, scores }, ...(perPrompt === undefined ? {} : { perPrompt }) };
}

/** What a worker of `circuit edges --method exact --workers N` runs: some edges of the sweep. */
export interface EdgeJob {
  /** Absolute folder path or URL of the checkpoint. */
  model: string;
  backend: BackendName;
  /** How the weights are stored (the worker loads the model the same way). */
  dtype: WeightDtype;
  prompts: { clean: number[][]; corrupted: number[][]; correct: number[]; incorrect: number[] };
  mode: "exact" | "linear";
  strategy: "planned" | "naive";
  /** Flat edge indices. */
  edges: number[];
}

/** The edges of `job` on `model` in this thread (the others' scores 0). */
export async function runEdges(model: HookedTransformer, job: Omit<EdgeJob, "model" | "backend">, sweep: SweepOptions) {
  const { clean, corrupted, correct, incorrect } = job.prompts;
  const graph = new EdgeGraph(model.cfg);
  return getEdgePatchExact(model, corrupted, model.runWithCache(clean).cache, model.runWithCache(corrupted).cache,
    logitDiff({ correct, incorrect }), {
      ...sweep, mode: job.mode, strategy: job.strategy,
      edges: job.edges.map((flat) => [Math.floor(flat / graph.nReaders), flat % graph.nReaders] as const),
    });
}

/** The same split over `workers` threads (each loads the model itself); the scores are bit-identical. */
export async function runEdgesOnWorkers(model: HookedTransformer, job: EdgeJob, workers: number, sweep: SweepOptions): Promise<PatchResult<object>> {
  const frame = await runEdges(model, { ...job, edges: [] }, {});
  const graph = new EdgeGraph(model.cfg);
  const parts = splitEdges(graph, job.edges, Math.min(workers, Math.max(1, job.edges.length))).filter((p) => p.length > 0);
  const results = await runOnWorkers(new URL("./edge-shard-worker.js", import.meta.url),
    parts.map((edges) => ({ ...job, edges } satisfies EdgeJob)), model.engine.variant, sweep);
  const n = frame.scores.size;
  const rows = frame.perPrompt?.scores.data;
  const B = rows === undefined ? 0 : rows.length / n;
  parts.forEach((edges, k) => {
    const { scores, perPrompt } = results[k]!;
    for (const flat of edges) {
      frame.scores.data[flat] = scores[flat]!;
      if (rows !== undefined) for (let b = 0; b < B; b++) rows[b * n + flat] = perPrompt![b * n + flat]!;
    }
  });
  return frame;
}
