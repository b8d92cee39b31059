// `hooklens patch attr --kind KIND`: attribution patching (every entry of an activation patching
// sweep estimated from one corrupted forward and backward), optionally checked exactly on its
// largest entries with --verify K.

import { ATTRIBUTION_KINDS, getAttrPatchAll, type AttributionKindName } from "../patching/attribution-patching.js";
import { logitDiff } from "../patching/metrics.js";
import { verifyAttribution } from "../patching/verify-attribution.js";
import { ACT_KINDS } from "./act-kinds.js";
import { suggest } from "./args.js";
import { BACKEND_FLAG, backendOf, MODEL_FLAG, PROMPTS_FLAG, QUIET_FLAG, THREADS_FLAG, threadsOf, DTYPE_FLAG, dtypeOf, TOP_FLAG, type Command } from "./command.js";
import { UsageError } from "./errors.js";
import { loadModel } from "./load-model.js";
import { actHeatmap, checkTargets, describeBaselines, reportPatchResult } from "./patch-report.js";
import { readPromptsFile } from "./prompts.js";
import { CI_FLAGS, describeIntervals, intervalFlags } from "./intervals.js";
import { sweepWithProgress } from "./cmd-patch.js";

const KINDS = Object.keys(ATTRIBUTION_KINDS) as AttributionKindName[];

export const attrCommand: Command = {
  name: "patch attr",
  summary: "attribution patching: every entry of a `patch act` sweep estimated from one forward and backward",
  usage: "patch attr --kind KIND --model DIR --prompts FILE [--verify K] [--ci LEVEL] [--out FILE.json] [--svg FILE.svg] [--csv FILE.csv] [--quiet]",
  flags: [
    { name: "kind", kind: "string", value: "KIND", help: "which activation patching sweep to estimate, named as for patch act (see below)" },
    MODEL_FLAG, PROMPTS_FLAG,
    { name: "verify", kind: "int", value: "K", help: "run the K largest entries exactly (activation patching) and print estimate and exact side by side (0: none)" },
    { name: "out", kind: "string", value: "FILE", help: "write the result JSON, as patch act's, with \"verify\" when --verify is given (- for stdout)" },
    { name: "svg", kind: "string", value: "FILE", help: "write an SVG heatmap of the normalized estimates" },
    { name: "csv", kind: "string", value: "FILE", help: "write one CSV line per entry: indices, estimate, normalized, no_path" },
    ...CI_FLAGS, TOP_FLAG("entries with the largest |normalized| estimate", 10), QUIET_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG,
  ],
  notes: [
    `KIND: ${KINDS.join(", ")}.`,
    "Each score estimates the metric after patching that entry clean into the corrupted run, to first order:",
    "M(corrupted) + sum over the entry of (clean - corrupted activation) x dM/d(activation) in the corrupted run.",
    "The metric is the logit difference at the last position, as for patch act. Estimates are not exact:",
    "--verify K shows where they hold (Spearman rank correlation of estimate and exact over the K entries).",
    "--ci gives each estimate's interval over the prompts (each prompt's own estimate comes from the same backward).",
  ].join("\n"),
  async run(ctx, args) {
    const kindName = args.required("kind");
    if (!(KINDS as string[]).includes(kindName)) {
      throw new UsageError(`patch attr: unknown --kind ${JSON.stringify(kindName)}${suggest(kindName, KINDS, "")}; kinds: ${KINDS.join(", ")}`);
    }
    const kind = kindName as AttributionKindName;
    const flags = { model: args.required("model"), prompts: args.required("prompts"), out: args.string("out"), svg: args.string("svg"), csv: args.string("csv") };
    checkTargets(flags);
    const quiet = args.switch("quiet");
    const verifyTop = args.int("verify", 0, 0, 1_000_000);
    const intervals = intervalFlags(args);
    const model = await loadModel(ctx, flags.model, { processWeights: true, backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args) });
    const prompts = readPromptsFile(ctx, flags.prompts, model, "patch");
    const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
    const clean = model.runWithCache(prompts.clean).cache;
    const result = getAttrPatchAll(model, prompts.corrupted!, clean, metric, { kinds: [kind] })[kind];
    const provenance: Record<string, unknown> = { kind, model: flags.model, prompts: flags.prompts };
    const lines: string[] = [];
    if (verifyTop > 0) {
      const check = await sweepWithProgress(ctx, `verify ${verifyTop} entries exactly`, { quiet, strategy: "planned" },
        (sweep) => verifyAttribution(model, prompts.corrupted!, clean, metric, result, { ...sweep, top: verifyTop }));
      provenance["verify"] = check;
      lines.push("", `verify: the ${check.entries.length} largest estimates against exact activation patching`,
        ...check.entries.map((e) => `  [${e.index.join(", ")}]  estimate ${sign(e.estimate)}  exact ${sign(e.exact)}`),
        `verify: Spearman ρ ${Number.isNaN(check.spearman) ? "n/a" : check.spearman.toFixed(3)}, max |estimate - exact| ${check.maxAbsError.toFixed(4)}`, "");
    }
    const data = actHeatmap(result, kind, ACT_KINDS[kind]!.axes);
    data.title = `Attribution patching: ${kind}`;
    reportPatchResult(ctx, result, data, {
      out: flags.out, svg: flags.svg, csv: flags.csv, quiet, top: args.int("top", 10, 0, 10_000), topHeading: "top estimates",
      header: [`model ${flags.model} (${model.cfg.nLayers} layers × ${model.cfg.nHeads} heads), ${prompts.clean.length} prompts × ${prompts.clean[0]!.length} tokens; ` +
        `attribution estimate of get_act_patch_${kind} → [${result.scores.shape.join(", ")}]`, describeBaselines(result),
      ...(intervals ? [describeIntervals(intervals, result.perPrompt?.baseline.length)] : []), ...lines],
      provenance, intervals,
    });
    return 0;
  },
};

function sign(x: number): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(4)}`;
}
