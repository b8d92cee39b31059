// `hooklens patch direct-path` and `hooklens patch act`: a patching sweep over the prompts
// file with the logit-difference metric, a progress bar, and the result as JSON, CSV, SVG
// and a terminal heatmap.

import type { HookedTransformer } from "../model/hooked-transformer.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../patching/direct-path.js";
import { logitDiff } from "../patching/metrics.js";
import { planSweep } from "../patching/plan-sweep.js";
import type { SweepOptions, SweepPlanSummary } from "../patching/sweep-types.js";
import type { PatchResult } from "../patching/result.js";
import { ACT_KIND_NAMES, ACT_KINDS } from "./act-kinds.js";
import { suggest, type FlagSpec, type ParsedArgs } from "./args.js";
import { BACKEND_FLAG, backendOf, THREADS_FLAG, threadsOf, DTYPE_FLAG, dtypeOf, MODEL_FLAG, PLAN_FLAG, PROMPTS_FLAG, QUIET_FLAG, STRATEGY_FLAG, TOP_FLAG, type Command } from "./command.js";
import type { Context } from "./context.js";
import { InterruptedError, isAbortError, UsageError } from "./errors.js";
import type { HeatmapData } from "./grid.js";
import { loadModel } from "./load-model.js";
import { actHeatmap, checkTargets, describeBaselines, directPathHeatmap, reportPatchResult } from "./patch-report.js";
import { CI_FLAGS, describeIntervals, intervalFlags, type IntervalOptions } from "./intervals.js";
import { createProgress } from "./progress.js";
import { readPromptsFile, type Prompts } from "./prompts.js";
import { planUnits, runUnits, runUnitsOnWorkers, type ShardJob } from "./shard-run.js";
import { allUnits, fingerprint, parseShard, PART_FORMAT, partRows, splitUnits, unitId, unitIndices, type ShardPart } from "./shards.js";

const OUTPUT_FLAGS: readonly FlagSpec[] = [
  { name: "out", kind: "string", value: "FILE", help: "write the result JSON {op, shape, scores, noPath, baseline, clean, normalized, options} (- for stdout)" },
  { name: "svg", kind: "string", value: "FILE", help: "write an SVG heatmap of the normalized scores" },
  { name: "csv", kind: "string", value: "FILE", help: "write one CSV line per entry: indices, score, normalized, no_path" },
];


const PATCH_NOTES = [
  "The metric is the logit difference: the mean over rows of logit[correct] - logit[incorrect] at the",
  "last position. Scores are that metric for each patched run; normalized = (score - baseline) /",
  "(clean - baseline), so 0 is the corrupted run and 1 the clean one.",
  "",
  "Output: the summary (run, baselines, terminal heatmap, top entries) goes to stdout, or to stderr",
  "when --out - puts the JSON on stdout. Progress and 'wrote ...' lines go to stderr (not with --quiet).",
].join("\n");

export const directPathCommand: Command = {
  name: "patch direct-path",
  summary: "direct path patching from a source head (or all) into the q/k/v of later heads",
  usage: "patch direct-path --model DIR --prompts FILE --src L.H|all --component q|k|v [--mode linear|exact] [--out FILE.json] [--svg FILE.svg] [--quiet] [--shard i/N] [--workers N]",
  flags: [
    MODEL_FLAG, PROMPTS_FLAG,
    { name: "src", kind: "string", value: "L.H|all", help: "source head as layer.head (e.g. 0.1), or all for every source" },
    { name: "component", kind: "string", value: "q|k|v", choices: ["q", "k", "v"], help: "which input of the destination heads receives the source's output" },
    { name: "mode", kind: "string", value: "linear|exact", choices: ["linear", "exact"], help: "linear (TransformerLens, default) or exact (recompute the destination's layer norm)" },
    ...OUTPUT_FLAGS, TOP_FLAG("paths with the largest |normalized| effect", 10), QUIET_FLAG, STRATEGY_FLAG, PLAN_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG, ...CI_FLAGS,
    { name: "shard", kind: "string", value: "i/N", help: "with --src all: compute only shard i of N (1-based) and write it as a part to --out; join parts with hooklens merge" },
    { name: "workers", kind: "int", value: "N", help: "with --src all: run the sweep (or the shard) on N worker threads; the result is identical" },
  ],
  notes: `${PATCH_NOTES}\n\n` + [
    "Shards: the all-sources sweep splits into units (a source head into one destination layer, id",
    "L.H>D); --shard i/N takes the i-th of N contiguous runs of units of about equal work. Each part",
    "stores a fingerprint of the model weights, prompts and options; `hooklens merge part-*.json --out",
    "all.json` refuses parts of different sweeps and writes exactly the unsharded result.",
  ].join("\n"),
  async run(ctx, args) {
    const srcText = args.required("src");
    const src = parseSrc(srcText);
    const component = args.required("component");
    const mode = args.string("mode") ?? "linear";
    const common = commonFlags(args);
    const model = await loadModel(ctx, common.model, { processWeights: true, backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args) });
    const { nLayers: L, nHeads: H } = model.cfg;
    if (src !== "all") {
      if (src[0] >= L) throw new UsageError(`patch direct-path: --src ${srcText}: layer ${src[0]} is out of range; the model has layers 0..${L - 1}`);
      if (src[1] >= H) throw new UsageError(`patch direct-path: --src ${srcText}: head ${src[1]} is out of range; the model has heads 0..${H - 1}`);
    }
    const prompts = readPromptsFile(ctx, common.prompts, model, "patch");
    const shardText = args.string("shard");
    const workers = args.int("workers", 1, 1, 1024);
    if (shardText !== undefined || workers > 1) {
      if (src !== "all") throw new UsageError("patch direct-path: --shard and --workers split an all-sources sweep; use them with --src all");
      if (common.intervals && shardText !== undefined) throw new UsageError("patch direct-path: a shard part carries per-prompt rows; give --ci to hooklens merge");
      return shardedDirectPath(ctx, model, prompts, { shardText, workers, component: component as "q" | "k" | "v", mode: mode as "linear" | "exact", backend: backendOf(args), common });
    }
    const { clean, corrupted } = caches(model, prompts);
    const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
    const base = { component: component as "q" | "k" | "v", mode: mode as "linear" | "exact", strategy: common.strategy };
    const corruptedTokens = prompts.corrupted!;
    const run = (sweep: SweepOptions) => src === "all"
      ? getActPatchDirectPathAllSources(model, corruptedTokens, clean, corrupted, metric, { ...sweep, ...base })
      : getActPatchDirectPath(model, corruptedTokens, clean, corrupted, metric, { ...sweep, ...base, srcLayer: src[0], srcHead: src[1] });
    const plan = () => src === "all"
      ? planSweep(getActPatchDirectPathAllSources, model, corruptedTokens, clean, corrupted, metric, base)
      : planSweep(getActPatchDirectPath, model, corruptedTokens, clean, corrupted, metric, { ...base, srcLayer: src[0], srcHead: src[1] });
    const label = `direct path ${src === "all" ? "all" : src.join(".")} → ${component} (${mode})`;
    const result = await sweepWithProgress(ctx, label, common, run, plan);
    const what = src === "all" ? "every head" : `head ${src.join(".")}`;
    report(ctx, result, directPathHeatmap(result, { src, component, mode, kvGroups: component !== "q" && model.cfg.nKeyValueHeads !== model.cfg.nHeads }), common, {
      header: [`model ${common.model} (${model.cfg.nLayers} layers × ${model.cfg.nHeads} heads), ${shapeOf(prompts)}; ${what} → ${component} (${mode})`],
      topHeading: "top paths",
      provenance: { src: src === "all" ? "all" : [...src] },
    });
    return 0;
  },
};

export const actCommand: Command = {
  name: "patch act",
  summary: "activation patching (the TransformerLens get_act_patch_* family)",
  usage: "patch act --kind KIND --model DIR --prompts FILE [--out FILE.json] [--svg FILE.svg] [--quiet]",
  flags: [
    { name: "kind", kind: "string", value: "KIND", help: "the TransformerLens function name without get_act_patch_ (see below)" },
    MODEL_FLAG, PROMPTS_FLAG, ...OUTPUT_FLAGS, TOP_FLAG("patches with the largest |normalized| effect", 10), QUIET_FLAG, STRATEGY_FLAG, PLAN_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG, ...CI_FLAGS,
  ],
  notes: `KIND: ${ACT_KIND_NAMES.join(", ")}.\nResults have TransformerLens's shapes.\n\n${PATCH_NOTES}`,
  async run(ctx, args) {
    const kindName = args.required("kind");
    const kind = ACT_KINDS[kindName];
    if (kind === undefined) {
      throw new UsageError(`patch act: unknown --kind ${JSON.stringify(kindName)}${suggest(kindName, ACT_KIND_NAMES, "")}; kinds: ${ACT_KIND_NAMES.join(", ")}`);
    }
    const common = commonFlags(args);
    const model = await loadModel(ctx, common.model, { processWeights: true, backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args) });
    const prompts = readPromptsFile(ctx, common.prompts, model, "patch");
    const { clean } = caches(model, prompts, false);
    const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
    const run = (sweep: SweepOptions) => kind.fn(model, prompts.corrupted!, clean, metric, { ...sweep, strategy: common.strategy });
    const plan = () => planSweep(kind.fn, model, prompts.corrupted!, clean, metric, { strategy: common.strategy });
    const result = await sweepWithProgress(ctx, `act patch ${kindName}`, common, run, plan);
    report(ctx, result, actHeatmap(result, kindName, kind.axes), common, {
      header: [`model ${common.model} (${model.cfg.nLayers} layers × ${model.cfg.nHeads} heads), ${shapeOf(prompts)}; get_act_patch_${kindName} → [${result.scores.shape.join(", ")}]`],
      topHeading: "top patches",
      provenance: { kind: kindName },
    });
    return 0;
  },
};

interface CommonFlags {
  model: string;
  prompts: string;
  out?: string;
  svg?: string;
  csv?: string;
  quiet: boolean;
  top: number;
  strategy: "planned" | "naive";
  plan: boolean;
  /** --ci LEVEL (with --bootstrap N, --seed S): intervals and p-values over prompts. */
  intervals?: IntervalOptions;
}


function commonFlags(args: ParsedArgs): CommonFlags {
  const flags: CommonFlags = {
    model: args.required("model"),
    prompts: args.required("prompts"),
    out: args.string("out"),
    svg: args.string("svg"),
    csv: args.string("csv"),
    quiet: args.switch("quiet"),
    top: args.int("top", 10, 0, 10_000),
    strategy: args.string("strategy") === "naive" ? "naive" : "planned",
    plan: args.switch("plan"),
    intervals: intervalFlags(args),
  };
  checkTargets(flags);
  return flags;
}

/**
 * `--src all` with `--shard i/N` (one part, written to --out) and/or `--workers N` (threads on
 * this machine; without --shard the result is reported as an unsharded run's).
 */
async function shardedDirectPath(ctx: Context, model: HookedTransformer, prompts: Prompts, o: {
  shardText?: string; workers: number; component: "q" | "k" | "v"; mode: "linear" | "exact"; backend: "wasm" | "js"; common: CommonFlags;
}): Promise<number> {
  let shard: { index: number; count: number } | undefined;
  if (o.shardText !== undefined) {
    try {
      shard = parseShard(o.shardText);
    } catch (e) {
      throw new UsageError(`patch direct-path: ${(e as Error).message}`);
    }
    if (o.common.out === undefined || o.common.out === "-") throw new UsageError("patch direct-path: --shard writes a part file: give --out FILE.json");
    if (o.common.svg !== undefined || o.common.csv !== undefined) throw new UsageError("patch direct-path: a shard has no heatmap of its own; give --svg/--csv to hooklens merge");
  }
  const { nLayers: L, nHeads: H } = model.cfg;
  const all = allUnits(L, H);
  const units = shard ? splitUnits(all, L, shard.count)[shard.index - 1]! : all;
  const p = { clean: prompts.clean, corrupted: prompts.corrupted!, correct: prompts.correct!, incorrect: prompts.incorrect! };
  const isUrl = /^https?:\/\//i.test(o.common.model);
  const job: ShardJob = {
    model: isUrl ? o.common.model : ctx.path(o.common.model), backend: o.backend, dtype: model.devicePointers().dtype, prompts: p,
    component: o.component, mode: o.mode, strategy: o.common.strategy, units,
  };
  const what = shard ? `shard ${shard.index}/${shard.count}, ${units.length} of ${all.length} units` : `${all.length} units`;
  const label = `direct path all → ${o.component} (${o.mode}), ${what}${o.workers > 1 ? `, ${o.workers} workers` : ""}`;
  const result = await sweepWithProgress(ctx, label, { ...o.common, plan: o.workers > 1 ? false : o.common.plan },
    (sweep) => (o.workers > 1 ? runUnitsOnWorkers(model, job, o.workers, sweep) : runUnits(model, job, sweep)),
    () => planUnits(model, job));
  const provenance = { src: "all", model: o.common.model, prompts: o.common.prompts };
  if (shard === undefined) {
    report(ctx, result, directPathHeatmap(result, { src: "all", component: o.component, mode: o.mode }), o.common, {
      header: [`model ${o.common.model} (${L} layers × ${H} heads), ${shapeOf(prompts)}; every head → ${o.component} (${o.mode}), ${o.workers} workers`],
      topHeading: "top paths", provenance,
    });
    return 0;
  }
  const options = { component: o.component, mode: o.mode, strategy: o.common.strategy, kernels: `${model.engine.backend}-${model.engine.variant}`, weights: describeWeights(result),
    dtype: model.devicePointers().dtype };
  const json = result.toJSON();
  json["options"] = { ...(json["options"] as object), ...provenance };
  const rows = partRows(result.perPrompt, units.flatMap((u) => unitIndices(u, result.scores.shape)));
  if (rows !== undefined) json["perPrompt"] = rows;
  const part: ShardPart = {
    format: PART_FORMAT,
    shard: { index: shard.index, count: shard.count, units: units.map(unitId) },
    fingerprint: fingerprint({ weights: model.weights, prompts: p, options }),
    describes: { model: o.common.model, prompts: o.common.prompts, options },
    result: json as unknown as ShardPart["result"],
  };
  ctx.write(o.common.out!, JSON.stringify(part) + "\n");
  if (!o.common.quiet) ctx.err(`wrote shard ${shard.index}/${shard.count} (${units.length} units) to ${o.common.out}\n`);
  return 0;
}

function describeWeights(result: PatchResult<object>): string {
  return String((result.options as { weights?: unknown }).weights ?? "");
}

/** `L.H` → [L, H], or "all". */
export function parseSrc(text: string): [number, number] | "all" {
  if (text === "all") return "all";
  const m = /^(\d+)\.(\d+)$/.exec(text);
  if (m === null) throw new UsageError(`patch direct-path: --src must be layer.head (e.g. 0.1) or all, got ${JSON.stringify(text)}`);
  return [Number(m[1]), Number(m[2])];
}

function caches(model: HookedTransformer, prompts: Prompts, withCorrupted = true) {
  const clean = model.runWithCache(prompts.clean).cache;
  const corrupted = withCorrupted ? model.runWithCache(prompts.corrupted!).cache : clean;
  return { clean, corrupted };
}

/**
 * Runs a sweep with the progress bar on stderr; Ctrl-C (the context's signal) ends it as InterruptedError.
 * With `flags.plan`, the sweep's plan (from `plan`, which runs nothing) is printed first.
 */
export async function sweepWithProgress<R>(ctx: Context, label: string,
  flags: { quiet: boolean; strategy: "planned" | "naive"; plan?: boolean },
  sweep: (options: SweepOptions) => Promise<R>, plan?: () => SweepPlanSummary): Promise<R> {
  if (flags.plan && plan) ctx.err(describePlan(plan()));
  const progress = createProgress(ctx.io.stderr, label, { quiet: flags.quiet, width: ctx.width(ctx.io.stderr) });
  try {
    return await sweep({ strategy: flags.strategy, signal: ctx.signal, onProgress: (p) => progress.update(p) });
  } catch (e) {
    if (isAbortError(e) || ctx.signal?.aborted) throw new InterruptedError();
    throw e;
  } finally {
    progress.finish();
  }
}

function report(ctx: Context, result: PatchResult<object>, data: HeatmapData, flags: CommonFlags,
  extra: { header: string[]; topHeading: string; provenance: Record<string, unknown> }): void {
  reportPatchResult(ctx, result, data, {
    out: flags.out, svg: flags.svg, csv: flags.csv, quiet: flags.quiet, top: flags.top, topHeading: extra.topHeading,
    header: [...extra.header, describeBaselines(result),
      ...(flags.intervals ? [describeIntervals(flags.intervals, result.perPrompt?.baseline.length)] : [])],
    intervals: flags.intervals,
    provenance: { ...extra.provenance, model: flags.model, prompts: flags.prompts },
  });
}

function shapeOf(prompts: Prompts): string {
  return `${prompts.clean.length} prompt${prompts.clean.length === 1 ? "" : "s"} × ${prompts.clean[0]!.length} tokens`;
}

/** The `--plan` lines: what the planned sweep computes, against the naive loop. */
export function describePlan(plan: SweepPlanSummary): string {
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
  return [
    plan.strategy === "naive"
      ? `plan: ${plan.patches} patched runs, one full forward pass each (the naive loop)`
      : `plan: ${plan.patches} patched runs in ${plan.passes} stacked passes`,
    `plan: ${plan.layerTokenEvaluations} block×token evaluations (naive loop: ${plan.naiveLayerTokenEvaluations}), ` +
      `${plan.tokensRecomputed} token positions recomputed`,
    `plan: peak activation memory ${mib(plan.peakMemoryBytes)}; estimated speedup over the naive loop ×${plan.estimatedSpeedup.toFixed(2)}`,
    "",
  ].join("\n");
}
