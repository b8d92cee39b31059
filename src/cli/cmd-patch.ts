// `hooklens patch direct-path` and `hooklens patch act`: a patching sweep over the prompts
// file with the logit-difference metric, a progress bar, and the result as JSON, CSV, SVG
// and a terminal heatmap.

import type { HookedTransformer } from "../model/hooked-transformer.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../patching/direct-path.js";
import { logitDiff } from "../patching/metrics.js";
import type { SweepOptions, SweepPlanSummary } from "../patching/planner.js";
import type { PatchResult } from "../patching/result.js";
import { ACT_KIND_NAMES, ACT_KINDS } from "./act-kinds.js";
import { suggest, type FlagSpec, type ParsedArgs } from "./args.js";
import { BACKEND_FLAG, backendOf, MODEL_FLAG, PLAN_FLAG, PROMPTS_FLAG, QUIET_FLAG, STRATEGY_FLAG, TOP_FLAG, type Command } from "./command.js";
import type { Context } from "./context.js";
import { InterruptedError, isAbortError, UsageError } from "./errors.js";
import type { HeatmapData } from "./grid.js";
import { loadModel } from "./load-model.js";
import { actHeatmap, checkTargets, describeBaselines, directPathHeatmap, reportPatchResult } from "./patch-report.js";
import { createProgress } from "./progress.js";
import { readPromptsFile, type Prompts } from "./prompts.js";

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
  usage: "patch direct-path --model DIR --prompts FILE --src L.H|all --component q|k|v [--mode linear|exact] [--out FILE.json] [--svg FILE.svg] [--quiet]",
  flags: [
    MODEL_FLAG, PROMPTS_FLAG,
    { name: "src", kind: "string", value: "L.H|all", help: "source head as layer.head (e.g. 0.1), or all for every source" },
    { name: "component", kind: "string", value: "q|k|v", choices: ["q", "k", "v"], help: "which input of the destination heads receives the source's output" },
    { name: "mode", kind: "string", value: "linear|exact", choices: ["linear", "exact"], help: "linear (TransformerLens, default) or exact (recompute the destination's layer norm)" },
    ...OUTPUT_FLAGS, TOP_FLAG("paths with the largest |normalized| effect", 10), QUIET_FLAG, STRATEGY_FLAG, PLAN_FLAG, BACKEND_FLAG,
  ],
  notes: PATCH_NOTES,
  async run(ctx, args) {
    const srcText = args.required("src");
    const src = parseSrc(srcText);
    const component = args.required("component");
    const mode = args.string("mode") ?? "linear";
    const common = commonFlags(args);
    const model = await loadModel(ctx, common.model, { processWeights: true, backend: backendOf(args) });
    const { nLayers: L, nHeads: H } = model.cfg;
    if (src !== "all") {
      if (src[0] >= L) throw new UsageError(`patch direct-path: --src ${srcText}: layer ${src[0]} is out of range; the model has layers 0..${L - 1}`);
      if (src[1] >= H) throw new UsageError(`patch direct-path: --src ${srcText}: head ${src[1]} is out of range; the model has heads 0..${H - 1}`);
    }
    const prompts = readPromptsFile(ctx, common.prompts, model, "patch");
    const run = async (sweep: SweepOptions) => {
      const { clean, corrupted } = caches(model, prompts);
      const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
      const options = { ...sweep, component: component as "q" | "k" | "v", mode: mode as "linear" | "exact" };
      return src === "all"
        ? getActPatchDirectPathAllSources(model, prompts.corrupted!, clean, corrupted, metric, options)
        : getActPatchDirectPath(model, prompts.corrupted!, clean, corrupted, metric, { ...options, srcLayer: src[0], srcHead: src[1] });
    };
    const label = `direct path ${src === "all" ? "all" : src.join(".")} → ${component} (${mode})`;
    const result = await sweepWithProgress(ctx, label, common, run);
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
    MODEL_FLAG, PROMPTS_FLAG, ...OUTPUT_FLAGS, TOP_FLAG("patches with the largest |normalized| effect", 10), QUIET_FLAG, STRATEGY_FLAG, PLAN_FLAG, BACKEND_FLAG,
  ],
  notes: `KIND: ${ACT_KIND_NAMES.join(", ")}.\nResults have TransformerLens's shapes.\n\n${PATCH_NOTES}`,
  async run(ctx, args) {
    const kindName = args.required("kind");
    const kind = ACT_KINDS[kindName];
    if (kind === undefined) {
      throw new UsageError(`patch act: unknown --kind ${JSON.stringify(kindName)}${suggest(kindName, ACT_KIND_NAMES, "")}; kinds: ${ACT_KIND_NAMES.join(", ")}`);
    }
    const common = commonFlags(args);
    const model = await loadModel(ctx, common.model, { processWeights: true, backend: backendOf(args) });
    const prompts = readPromptsFile(ctx, common.prompts, model, "patch");
    const run = async (sweep: SweepOptions) => {
      const { clean } = caches(model, prompts, false);
      const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
      return kind.fn(model, prompts.corrupted!, clean, metric, sweep);
    };
    const result = await sweepWithProgress(ctx, `act patch ${kindName}`, common, run);
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
  };
  checkTargets(flags);
  return flags;
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

/** Runs a sweep with the progress bar on stderr; Ctrl-C (the context's signal) ends it as InterruptedError. */
export async function sweepWithProgress<R>(ctx: Context, label: string,
  flags: { quiet: boolean; strategy: "planned" | "naive"; plan?: boolean },
  sweep: (options: SweepOptions) => Promise<R>): Promise<R> {
  const progress = createProgress(ctx.io.stderr, label, { quiet: flags.quiet, width: ctx.width(ctx.io.stderr) });
  const onPlan = flags.plan ? (plan: SweepPlanSummary) => ctx.err(describePlan(plan)) : undefined;
  try {
    return await sweep({ strategy: flags.strategy, signal: ctx.signal, onProgress: (p) => progress.update(p), onPlan });
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
    header: [...extra.header, describeBaselines(result)],
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
    `plan: ${plan.patches} patched runs in ${plan.passes} stacked passes`,
    `plan: ${plan.layerTokenEvaluations} block×token evaluations (naive loop: ${plan.naiveLayerTokenEvaluations}), ` +
      `${plan.tokensRecomputed} token positions recomputed`,
    `plan: peak activation memory ${mib(plan.peakMemoryBytes)}; estimated speedup over the naive loop ×${plan.estimatedSpeedup.toFixed(2)}`,
    "",
  ].join("\n");
}
