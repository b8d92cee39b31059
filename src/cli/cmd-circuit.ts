// `hooklens circuit edges | eval | discover`: edge scores over the whole writer/reader graph,
// circuit evaluation, and rank-then-verify discovery with a drawing of the circuit.

import { readFileSync } from "node:fs";
import { acdc, type AcdcResult } from "../circuits/acdc.js";
import { evaluateCircuit, faithfulnessCi, type CircuitEvaluation } from "../circuits/circuit-run.js";
import { discoverCircuit, type DiscoveredCircuit } from "../circuits/discover.js";
import { getEdgeAttrEap, getEdgeAttrEapIg } from "../circuits/edge-attribution.js";
import { EdgeGraph } from "../circuits/edge-graph.js";
import { getEdgePatchExact } from "../circuits/edge-patching.js";
import { logitDiff } from "../patching/metrics.js";
import { planSweep } from "../patching/plan-sweep.js";
import { discoveredCircuitDrawing, renderCircuitSvg } from "../circuits/circuit-svg.js";
import { BACKEND_FLAG, backendOf, MODEL_FLAG, PLAN_FLAG, PROMPTS_FLAG, QUIET_FLAG, STRATEGY_FLAG, THREADS_FLAG, threadsOf, DTYPE_FLAG, dtypeOf, type Command } from "./command.js";
import type { Context } from "./context.js";
import { describePlan } from "./cmd-patch.js";
import { EDGE_PART_FORMAT, edgeLabel, edgeScoresJson, edgeUnits, runEdgesOnWorkers, splitEdges, type EdgeJob, type EdgePart } from "./edge-shards.js";
import { InputError, InterruptedError, isAbortError, UsageError } from "./errors.js";
import { loadModel } from "./load-model.js";
import { createProgress } from "./progress.js";
import { readPromptsFile } from "./prompts.js";
import { fingerprint, parseShard, partRows } from "./shards.js";
import { CI_FLAGS, describeIntervals, uncertaintyFields, intervalFlags, type IntervalOptions } from "./intervals.js";

const OUT_FLAG = { name: "out", kind: "string", value: "FILE", help: "where to write the JSON (- for stdout)" } as const;

/** The model, the prompts, the metric and both caches. */
async function setUp(ctx: Context, args: Parameters<Command["run"]>[1]) {
  const model = await loadModel(ctx, args.required("model"), {
    processWeights: true, backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args),
  });
  const prompts = readPromptsFile(ctx, args.required("prompts"), model, "patch");
  const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
  const clean = model.runWithCache(prompts.clean).cache;
  const corrupted = model.runWithCache(prompts.corrupted!).cache;
  return { model, prompts, metric, clean, corrupted };
}

export const circuitEdgesCommand: Command = {
  name: "circuit edges",
  summary: "score every edge of the writer/reader graph: EAP, EAP-IG or exact edge patching",
  usage: "circuit edges --method eap|eap-ig|exact [--steps N] [--mode exact|linear] --model DIR --prompts FILE --out FILE.json " +
    "[--plan] [--strategy planned|naive] [--shard i/N] [--workers N] [--ci LEVEL]",
  flags: [
    { name: "method", kind: "string", value: "eap|eap-ig|exact", choices: ["eap", "eap-ig", "exact"], help: "attribution (one backward), integrated gradients (--steps backwards) or one patched run per edge" },
    { name: "steps", kind: "int", value: "N", help: "EAP-IG's interpolation steps (default 5)" },
    { name: "mode", kind: "string", value: "exact|linear", choices: ["exact", "linear"], help: "with --method exact: recompute the reader's norm (default) or hold its scale" },
    MODEL_FLAG, PROMPTS_FLAG, OUT_FLAG, QUIET_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG, STRATEGY_FLAG, PLAN_FLAG,
    { name: "shard", kind: "string", value: "i/N", help: "with --method exact: patch only shard i of N of the edges and write it as a part to --out; join parts with hooklens merge" },
    { name: "workers", kind: "int", value: "N", help: "with --method exact: patch the edges (or the shard) on N worker threads; the result is identical" },
    ...CI_FLAGS,
  ],
  notes: [
    "Writes {op, shape: [n_writers, n_readers], writers, readers, scores, noPath, baseline, clean}: each score is the",
    "(estimated, for eap and eap-ig) logit difference with that one edge patched clean into the corrupted run.",
    "Shards (--method exact): the edges, ordered by reader, split into N contiguous runs of about equal work;",
    "each part stores a fingerprint of the model weights, prompts and options, and `hooklens merge part-*.json",
    "--out edges.json` refuses parts of different sweeps and writes exactly the unsharded result.",
  ].join("\n"),
  async run(ctx, args) {
    const method = args.required("method");
    const out = args.required("out");
    const quiet = args.switch("quiet");
    const shardText = args.string("shard");
    const workers = args.int("workers", 1, 1, 1024);
    const strategy: "planned" | "naive" = args.string("strategy") === "naive" ? "naive" : "planned";
    const intervals = intervalFlags(args);
    if (intervals !== undefined && args.has("shard")) {
      throw new UsageError("circuit edges: a shard part carries per-prompt rows; give --ci to hooklens merge");
    }
    if (method !== "exact") {
      for (const flag of ["shard", "workers", "plan", "strategy"]) {
        if (args.has(flag)) throw new UsageError(`circuit edges: --${flag} applies to --method exact (one patched run per edge)`);
      }
    }
    let shard: { index: number; count: number } | undefined;
    if (shardText !== undefined) {
      try {
        shard = parseShard(shardText);
      } catch (e) {
        throw new UsageError(`circuit edges: ${(e as Error).message}`);
      }
      if (out === "-") throw new UsageError("circuit edges: --shard writes a part file: give --out FILE.json");
    }
    const { model, prompts, metric, clean, corrupted } = await setUp(ctx, args);
    const mode: "exact" | "linear" = args.string("mode") === "linear" ? "linear" : "exact";
    const graph = new EdgeGraph(model.cfg);
    const all = edgeUnits(graph);
    const edges = shard ? splitEdges(graph, all, shard.count)[shard.index - 1]! : all;
    const what = method !== "exact" ? method : `exact, ${mode}, ${shard ? `shard ${shard.index}/${shard.count}: ${edges.length} of ${all.length} edges` : `${all.length} edges`}` +
      `${workers > 1 ? `, ${workers} workers` : ""}`;
    const progress = createProgress(ctx.io.stderr, `circuit edges (${what})`, { quiet, width: ctx.width(ctx.io.stderr) });
    const started = Date.now();
    const onProgress = (p: { done: number; total: number }) => {
      const elapsedMs = Date.now() - started;
      progress.update({ done: p.done, total: p.total, elapsedMs, etaMs: p.done > 0 ? (elapsedMs / p.done) * (p.total - p.done) : undefined });
    };
    const corruptedTokens = prompts.corrupted!;
    const p = { clean: prompts.clean, corrupted: corruptedTokens, correct: prompts.correct!, incorrect: prompts.incorrect! };
    const modelPath = args.required("model");
    const job: EdgeJob = {
      model: /^https?:\/\//i.test(modelPath) ? modelPath : ctx.path(modelPath), backend: backendOf(args), dtype: model.devicePointers().dtype, prompts: p, mode, strategy, edges,
    };
    const exactOptions = { mode, strategy, edges: edges.map((f) => [Math.floor(f / graph.nReaders), f % graph.nReaders] as const) };
    if (method === "exact" && args.switch("plan")) ctx.err(describePlan(planSweep(getEdgePatchExact, model, corruptedTokens, clean, corrupted, metric, exactOptions)));
    let result;
    try {
      result = method === "eap" ? await getEdgeAttrEap(model, corruptedTokens, clean, corrupted, metric, { onProgress, signal: ctx.signal })
        : method === "eap-ig" ? await getEdgeAttrEapIg(model, corruptedTokens, clean, corrupted, metric, { steps: args.int("steps", 5, 1, 10_000), onProgress, signal: ctx.signal })
        : workers > 1 ? await runEdgesOnWorkers(model, job, workers, { onProgress, signal: ctx.signal })
        : await getEdgePatchExact(model, corruptedTokens, clean, corrupted, metric, { ...exactOptions, onProgress, signal: ctx.signal });
    } catch (e) {
      if (isAbortError(e) || ctx.signal?.aborted) throw new InterruptedError();
      throw e;
    } finally {
      progress.finish();
    }
    const json = edgeScoresJson(result, method);
    if (shard !== undefined) {
      const options = { method, mode, strategy, kernels: `${model.engine.backend}-${model.engine.variant}`, dtype: model.devicePointers().dtype };
      const part: EdgePart = {
        format: EDGE_PART_FORMAT,
        shard: { index: shard.index, count: shard.count, edges: edges.map((flat) => edgeLabel(graph, flat)) },
        fingerprint: fingerprint({ weights: model.weights, prompts: p, options }),
        describes: { model: modelPath, prompts: args.required("prompts"), options },
        result: { ...json, ...(result.perPrompt === undefined ? {} : { perPrompt: partRows(result.perPrompt, edges) }) },
      };
      ctx.write(out, JSON.stringify(part) + "\n");
      if (!quiet) ctx.err(`wrote shard ${shard.index}/${shard.count} (${edges.length} edges) to ${out}\n`);
      return 0;
    }
    ctx.write(out, JSON.stringify(intervals === undefined ? json : { ...json, ...uncertaintyFields(result, intervals) }) + "\n");
    if (out !== "-" && !quiet) ctx.err(`wrote the ${method} edge scores to ${out}\n`);
    return 0;
  },
};

export const circuitEvalCommand: Command = {
  name: "circuit eval",
  summary: "run a circuit (a list of edges) and report its metric and faithfulness",
  usage: "circuit eval --edges EDGES.json --model DIR --prompts FILE [--out FILE.json] [--ci LEVEL]",
  flags: [
    { name: "edges", kind: "string", value: "FILE", help: "JSON list of [writer, reader] name pairs, e.g. [[\"a0.h2\", \"a1.h1<k>\"], [\"a1.h1\", \"logits\"]]" },
    MODEL_FLAG, PROMPTS_FLAG, OUT_FLAG, ...CI_FLAGS, QUIET_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG,
  ],
  notes: [
    "Writes {metric, faithfulness, edges, perPrompt: {metric, baseline, clean}}; faithfulness = (metric - corrupted) / (clean - corrupted).",
    "--ci adds faithfulnessCi {level, samples, seed, prompts, low, high}: resampling the prompts, the ratio of means each time.",
  ].join("\n"),
  async run(ctx, args) {
    const file = args.required("edges");
    const intervals = intervalFlags(args);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(ctx.path(file), "utf8"));
    } catch (e) {
      throw new InputError(`--edges ${file}: ${(e as Error).message}`);
    }
    const { model, prompts, metric, clean, corrupted } = await setUp(ctx, args);
    const graph = new EdgeGraph(model.cfg);
    let edges: Set<number>;
    try {
      edges = graph.edgesFromJSON(json);
    } catch (e) {
      throw new UsageError(`--edges ${file}: ${(e as Error).message}`);
    }
    const flat = [...edges].map((f) => [Math.floor(f / graph.nReaders), f % graph.nReaders] as const);
    const result = evaluateCircuit(model, prompts.corrupted!, clean, corrupted, metric, flat);
    const text = `circuit of ${result.edges.length} edges: metric ${result.metric.toFixed(4)}, faithfulness ${result.faithfulness.toFixed(3)}` +
      `${faithfulnessSuffix(result, intervals)}\n${intervals ? describeIntervals(intervals, prompts.clean.length, false) + "\n" : ""}`;
    const out = args.string("out");
    if (out !== undefined) ctx.write(out, circuitJson(result, intervals));
    if (out !== "-") ctx.out(text);
    else if (!args.switch("quiet")) ctx.err(text);
    return 0;
  },
};

export const circuitDiscoverCommand: Command = {
  name: "circuit discover",
  summary: "rank every edge (EAP or EAP-IG), verify the top exactly, and find the smallest faithful circuit",
  usage: "circuit discover --method eap|eap-ig [--steps N] [--verify K] [--target F] --model DIR --prompts FILE [--out FILE.json] [--svg FILE.svg] [--ci LEVEL]",
  flags: [
    { name: "method", kind: "string", value: "eap|eap-ig", choices: ["eap", "eap-ig"], help: "how edges are ranked (default eap-ig)" },
    { name: "steps", kind: "int", value: "N", help: "EAP-IG's interpolation steps (default 5)" },
    { name: "verify", kind: "int", value: "K", help: "patch the K top-ranked edges exactly and re-rank them (default 50)" },
    { name: "target", kind: "string", value: "F", help: "the faithfulness the circuit must reach, in (0, 1] (default 0.8)" },
    MODEL_FLAG, PROMPTS_FLAG, OUT_FLAG,
    { name: "svg", kind: "string", value: "FILE", help: "write a drawing of the circuit" },
    ...CI_FLAGS, QUIET_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG,
  ],
  notes: "Writes {edges: [{writer, reader, estimate, exact?}], metric, faithfulness, reachedTarget, curve, spearman, baseline, clean, perPrompt}\n" +
    "(and faithfulnessCi with --ci, as circuit eval's).",
  async run(ctx, args) {
    const method = (args.string("method") ?? "eap-ig") as "eap" | "eap-ig";
    const targetText = args.string("target") ?? "0.8";
    const target = Number(targetText);
    if (!(target > 0 && target <= 1)) throw new UsageError(`circuit discover: --target must be a number in (0, 1], got ${JSON.stringify(targetText)}`);
    const intervals = intervalFlags(args);
    const quiet = args.switch("quiet");
    const { model, prompts, metric, clean, corrupted } = await setUp(ctx, args);
    // One progress line per stage: ranking (forward + backward passes), verifying (patched runs), circuit runs.
    const STAGES: Record<string, string> = { rank: `ranking edges (${method})`, verify: "verifying the top edges exactly", circuit: "circuit runs" };
    let stage: { name: string; bar: ReturnType<typeof createProgress>; started: number } | undefined;
    let found: DiscoveredCircuit;
    try {
      found = await discoverCircuit(model, prompts.corrupted!, clean, corrupted, metric, {
        method, steps: args.int("steps", 5, 1, 10_000), verify: args.int("verify", 50, 0, 1_000_000), target, signal: ctx.signal,
        onProgress: (p) => {
          if (stage?.name !== p.stage) {
            stage?.bar.finish();
            stage = { name: p.stage, bar: createProgress(ctx.io.stderr, STAGES[p.stage] ?? p.stage, { quiet, width: ctx.width(ctx.io.stderr) }), started: Date.now() };
          }
          const elapsedMs = Date.now() - stage.started;
          // Circuit runs have no known total (the search decides): their count is shown as done.
          stage.bar.update({ done: p.done, total: p.total, elapsedMs, etaMs: p.done > 0 && p.stage !== "circuit" ? (elapsedMs / p.done) * (p.total - p.done) : undefined });
        },
      });
    } finally {
      stage?.bar.finish();
    }
    const out = args.string("out");
    const svg = args.string("svg");
    if (out !== undefined) ctx.write(out, circuitJson(found, intervals));
    if (svg !== undefined) ctx.write(svg, renderCircuitSvg(discoveredCircuitDrawing(found, model.cfg, method)));
    const summary = describe(found, method, intervals);
    if (out === "-") { if (!quiet) ctx.err(summary); } else ctx.out(summary);
    return 0;
  },
};

export const circuitAcdcCommand: Command = {
  name: "circuit acdc",
  summary: "ACDC: from every edge, drop those whose removal moves the metric by less than a threshold",
  usage: "circuit acdc --threshold T --model DIR --prompts FILE [--out FILE.json] [--svg FILE.svg] [--ci LEVEL]",
  flags: [
    { name: "threshold", kind: "string", value: "T", help: "drop an edge when removing it changes the logit difference by less than T (≥ 0)" },
    MODEL_FLAG, PROMPTS_FLAG, OUT_FLAG,
    { name: "svg", kind: "string", value: "FILE", help: "write a drawing of the circuit" },
    ...CI_FLAGS, QUIET_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG,
  ],
  notes: [
    "Walks the readers from the logits back to the input (each reader's writers latest first), greedily:",
    "every decision sees the earlier removals. Writes {edges: [[writer, reader], ...], metric, faithfulness,",
    "baseline, clean, steps: [{writer, reader, metricWithout, change, removed}], passes, perPrompt} (and faithfulnessCi with --ci).",
  ].join("\n"),
  async run(ctx, args) {
    const text = args.required("threshold");
    const threshold = Number(text);
    if (text.trim() === "" || !Number.isFinite(threshold) || threshold < 0) {
      throw new UsageError(`circuit acdc: --threshold must be a number ≥ 0, got ${JSON.stringify(text)}`);
    }
    const intervals = intervalFlags(args);
    const quiet = args.switch("quiet");
    const { model, prompts, metric, clean, corrupted } = await setUp(ctx, args);
    const progress = createProgress(ctx.io.stderr, `acdc (threshold ${threshold})`, { quiet, width: ctx.width(ctx.io.stderr) });
    const started = Date.now();
    let found: AcdcResult;
    try {
      found = await acdc(model, prompts.corrupted!, clean, corrupted, metric, {
        threshold, signal: ctx.signal,
        onProgress: (p) => {
          const elapsedMs = Date.now() - started;
          progress.update({ done: p.done, total: p.total, elapsedMs, etaMs: p.done > 0 ? (elapsedMs / p.done) * (p.total - p.done) : undefined });
        },
      });
    } catch (e) {
      if (isAbortError(e) || ctx.signal?.aborted) throw new InterruptedError();
      throw e;
    } finally {
      progress.finish();
    }
    const out = args.string("out");
    const svg = args.string("svg");
    if (out !== undefined) ctx.write(out, circuitJson(found, intervals));
    // Each kept edge with what removing it did at its trial: the circuit's metric with it minus without it.
    const trial = new Map(found.steps.map((s) => [`${s.writer}|${s.reader}`, s]));
    const effect = (w: string, r: string) => trial.get(`${w}|${r}`)!.metricWith - trial.get(`${w}|${r}`)!.metricWithout;
    if (svg !== undefined) {
      ctx.write(svg, renderCircuitSvg({
        title: `circuit (acdc, threshold ${threshold}): ${found.edges.length} edges, faithfulness ${found.faithfulness.toFixed(2)}`,
        nLayers: model.cfg.nLayers, nHeads: model.cfg.nHeads,
        edges: found.edges.map(([writer, reader]) => ({
          writer, reader, effect: effect(writer, reader), detail: `metric without it ${trial.get(`${writer}|${reader}`)!.metricWithout.toFixed(4)}`,
        })),
      }));
    }
    const summary = [
      `circuit (acdc, threshold ${threshold}): ${found.edges.length} of ${found.steps.length} edges kept, metric ${found.metric.toFixed(4)} ` +
        `(corrupted ${found.baseline.toFixed(4)}, clean ${found.clean.toFixed(4)}), faithfulness ${found.faithfulness.toFixed(3)}` +
        `${faithfulnessSuffix(found, intervals)}, ${found.passes} passes`,
      ...(intervals ? [describeIntervals(intervals, found.perPrompt?.metric.length, false)] : []),
      "",
      ...found.edges.map(([w, r]) => `  ${`${w} → ${r}`.padEnd(24)} effect ${sign(effect(w, r))}`),
      "",
    ].join("\n");
    if (out === "-") { if (!quiet) ctx.err(summary); } else ctx.out(summary);
    return 0;
  },
};

const SPARK = "▁▂▃▄▅▆▇█";

/**
 * A circuit result as JSON: typed arrays as lists, the curve's points without their per-prompt
 * rows (the chosen circuit keeps its own), and with --ci the faithfulness interval.
 */
function circuitJson(result: object & Pick<CircuitEvaluation, "perPrompt">, intervals: IntervalOptions | undefined): string {
  const json: Record<string, unknown> = { ...result };
  if (Array.isArray(json["curve"])) json["curve"] = (json["curve"] as object[]).map((p) => ({ ...p, perPrompt: undefined }));
  const ci = intervals === undefined ? undefined : faithfulnessInterval(result, intervals);
  if (ci !== undefined) json["faithfulnessCi"] = ci;
  return JSON.stringify(json, (_, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v)) + "\n";
}

/** The bootstrap interval of a circuit's faithfulness with the options that made it. */
function faithfulnessInterval(result: Pick<CircuitEvaluation, "perPrompt">, o: IntervalOptions) {
  const { low, high } = faithfulnessCi(result, o);
  return { level: o.level, samples: o.samples, seed: o.seed, prompts: result.perPrompt!.metric.length, low, high };
}

/** " [0.812, 0.967]" after a faithfulness in a summary, with --ci. */
function faithfulnessSuffix(result: Pick<CircuitEvaluation, "perPrompt">, o: IntervalOptions | undefined): string {
  if (o === undefined) return "";
  const { low, high } = faithfulnessInterval(result, o);
  return ` [${low.toFixed(3)}, ${high.toFixed(3)}]`;
}


function describe(found: DiscoveredCircuit, method: string, intervals: IntervalOptions | undefined): string {
  const lines = [
    `circuit (${method}): ${found.edges.length} edges, metric ${found.metric.toFixed(4)} ` +
      `(corrupted ${found.baseline.toFixed(4)}, clean ${found.clean.toFixed(4)}), faithfulness ${found.faithfulness.toFixed(3)}` +
      `${faithfulnessSuffix(found, intervals)}${found.reachedTarget ? "" : " (target not reached: every edge)"}`,
    ...(intervals ? [describeIntervals(intervals, found.perPrompt?.metric.length, false)] : []),
    `verified edges: Spearman ρ ${Number.isNaN(found.spearman) ? "n/a" : found.spearman.toFixed(3)} between estimate and exact`,
    "",
    ...found.edges.map((e) => `  ${`${e.writer} → ${e.reader}`.padEnd(24)} estimate ${sign(e.estimate)}` +
      `${e.exact !== undefined ? `  exact ${sign(e.exact)}` : ""}`),
    "",
    `faithfulness by top-n: ${found.curve.map((p) => SPARK[Math.max(0, Math.min(7, Math.round(p.faithfulness * 7)))]).join("")}  ` +
      found.curve.map((p) => `${p.n}:${p.faithfulness.toFixed(2)}`).join(" "),
    "",
  ];
  return lines.join("\n");
}

function sign(x: number): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(4)}`;
}

