// `hooklens demo`: direct path patching on the embedded induction model, with no arguments.
// It asks through which later heads' keys the planted previous-token head acts, in linear
// and exact mode, and checks that the planted induction head answers.

import { loadDemoModel, PLANTED_HEADS } from "../demo/induction-model.js";
import { demoPrompts } from "../demo/prompts.js";
import { Engine } from "../engine/engine.js";
import { discoverCircuit } from "../circuits/discover.js";
import { getActPatchDirectPath } from "../patching/direct-path.js";
import { logitDiff } from "../patching/metrics.js";
import type { PatchResult } from "../patching/result.js";
import { BACKEND_FLAG, backendOf, QUIET_FLAG, STRATEGY_FLAG, type Command } from "./command.js";
import { sweepWithProgress } from "./cmd-patch.js";
import { InputError, oneLine } from "./errors.js";
import { plottedValues, topEntries, type HeatmapData } from "./grid.js";
import { renderSvgHeatmap } from "./heatmap-svg.js";
import { renderTerminalHeatmap } from "./heatmap-terminal.js";
import { checkTargets, describeBaselines, directPathHeatmap } from "./patch-report.js";

type Mode = "linear" | "exact";

export const demoCommand: Command = {
  name: "demo",
  summary: "direct path patching on the embedded induction model (no arguments needed)",
  usage: "demo [--out demo.json] [--svg demo.svg] [--mode both|linear|exact]",
  flags: [
    { name: "out", kind: "string", value: "FILE", help: "where to write the results JSON (default demo.json; - for stdout)" },
    { name: "svg", kind: "string", value: "FILE", help: "where to write the SVG heatmap (default demo.svg)" },
    { name: "mode", kind: "string", value: "both|linear|exact", choices: ["both", "linear", "exact"], help: "direct path mode(s) to run (default both)" },
    { name: "top", kind: "int", value: "N", help: "list the N strongest paths of each mode (default 5)" },
    QUIET_FLAG, STRATEGY_FLAG, BACKEND_FLAG,
  ],
  notes: [
    "The embedded model is a 2-layer, 4-head GPT-2 built deterministically by hooklens with a planted",
    "induction circuit: a layer-0 previous-token head whose output a layer-1 induction head reads",
    "through its keys. The prompts repeat random token sequences (clean) against sequences whose first",
    "half was resampled (corrupted). demo.json holds {description, model, prompts, results: {linear,",
    "exact}}, each result in the `patch --out` format.",
  ].join("\n"),
  async run(ctx, args) {
    const out = args.string("out") ?? "demo.json";
    const svg = args.string("svg") ?? "demo.svg";
    checkTargets({ out, svg });
    const modes: Mode[] = args.string("mode") === "linear" ? ["linear"] : args.string("mode") === "exact" ? ["exact"] : ["linear", "exact"];
    const top = args.int("top", 5, 0, 1000);
    const quiet = args.switch("quiet");
    const strategy = args.string("strategy") === "naive" ? "naive" : "planned";
    const summary = out === "-" ? ctx.io.stderr : ctx.io.stdout;
    const say = (text: string) => { if (!(out === "-" && quiet)) summary.write(text); };

    let model: Awaited<ReturnType<typeof loadDemoModel>>;
    try {
      model = await loadDemoModel({ engine: await Engine.create({ backend: backendOf(args) }) });
    } catch (e) {
      throw new InputError(`cannot build the demo model: ${oneLine(e)}`, { cause: e });
    }
    const cfg = model.cfg;
    const prompts = demoPrompts();
    const [sl, sh] = PLANTED_HEADS.prevTokenHead;
    const [il, ih] = PLANTED_HEADS.inductionHead;
    const n = (prompts.clean[0]!.length - 1) / 2;
    say([
      "hooklens demo: direct path patching on the embedded induction model",
      "",
      `model     a ${cfg.nLayers}-layer, ${cfg.nHeads}-head GPT-2 (d_model ${cfg.dModel}, vocab ${cfg.dVocab}) built deterministically by hooklens,`,
      `          with a planted induction circuit: previous-token head ${sl}.${sh} → induction head ${il}.${ih} (through its keys)`,
      `prompts   ${prompts.clean.length} rows of BOS + ${n} random tokens repeated (clean), against the same rows with the`,
      `          first half resampled (corrupted); answer: the token an induction head predicts at the last position`,
      `question  which later heads read head ${sl}.${sh}'s output through their keys? Direct path patching from`,
      `          ${sl}.${sh}, component k: only that path carries the clean value, everything else stays corrupted.`,
      "",
    ].join("\n"));

    const { cache: clean } = model.runWithCache(prompts.clean);
    const { cache: corrupted } = model.runWithCache(prompts.corrupted);
    const metric = logitDiff(prompts);
    const results = new Map<Mode, PatchResult<object>>();
    for (const mode of modes) {
      const result = await sweepWithProgress(ctx, `direct path ${sl}.${sh} → k (${mode})`, { quiet, strategy }, (sweep) =>
        getActPatchDirectPath(model, prompts.corrupted, clean, corrupted, metric, { ...sweep, srcLayer: sl, srcHead: sh, component: "k", mode }));
      results.set(mode, result);
      const data = directPathHeatmap(result, { src: [sl, sh], component: "k", mode });
      if (results.size === 1) say(`${describeBaselines(result)}\n\n`);
      say(renderTerminalHeatmap(data, { colour: ctx.colour(summary), width: ctx.width(summary), top, topHeading: "top paths" }) + "\n");
    }

    const verdicts = [...results].map(([mode, result]) => {
      const data = directPathHeatmap(result, { src: [sl, sh], component: "k", mode });
      const [first, second] = topEntries(data, 2);
      const planted = first !== undefined && first.index[0] === il && first.index[1] === ih;
      return { mode, planted, first, second };
    });
    const allFirst = verdicts.every((v) => v.planted);
    const detail = verdicts.map((v) => `${v.mode}: ${v.first ? signed(v.first.value) : "?"} vs next ${v.second ? signed(v.second.value) : "none"}`).join("; ");
    say(allFirst
      ? `The planted path ${sl}.${sh} → ${il}.${ih} (k) ranks first in ${modes.length === 2 ? "both modes" : `${modes[0]} mode`} (${detail}).\n`
      : `Unexpected: the planted path ${sl}.${sh} → ${il}.${ih} (k) does not rank first (${detail}).\n`);

    // The whole circuit, found without being told where to look: every edge ranked by EAP-IG, the
    // top 20 patched exactly, then the smallest faithful top-n.
    say(`\nCircuit discovery: every edge ranked by EAP-IG (5 steps), the top 20 patched exactly, the smallest circuit with faithfulness ≥ 0.8\n`);
    const found = await sweepWithProgress(ctx, "circuit discovery", { quiet, strategy }, (sweep) =>
      discoverCircuit(model, prompts.corrupted, clean, corrupted, metric, { method: "eap-ig", steps: 5, verify: 20, signal: sweep.signal }));
    for (const e of found.edges) {
      say(`  ${`${e.writer} → ${e.reader}`.padEnd(20)} estimate ${signed(e.estimate)}${e.exact !== undefined ? `  exact ${signed(e.exact)}` : ""}\n`);
    }
    const plantedEdge = found.edges.some((e) => e.writer === `a${sl}.h${sh}` && e.reader === `a${il}.h${ih}<k>`);
    say(`${found.edges.length} edges, faithfulness ${found.faithfulness.toFixed(3)}; the planted path a${sl}.h${sh} → a${il}.h${ih}<k> is ` +
      `${plantedEdge ? "in it, verified exactly" : "NOT in it"}.\n`);

    const json = {
      description: `Direct path patching from the previous-token head ${sl}.${sh} into the keys of later heads on hooklens's embedded induction model`,
      model: { nLayers: cfg.nLayers, nHeads: cfg.nHeads, dModel: cfg.dModel, dVocab: cfg.dVocab, planted: { prevTokenHead: [sl, sh], inductionHead: [il, ih] } },
      prompts,
      results: Object.fromEntries([...results].map(([mode, r]) => [mode, r.toJSON()])),
      plantedRanksFirst: allFirst,
      circuit: found,
    };
    ctx.write(out, JSON.stringify(json) + "\n");
    ctx.write(svg, renderSvgHeatmap(combined([...results], [sl, sh])));
    if (!quiet) for (const target of [out, svg]) if (target !== "-") ctx.err(`wrote ${target}\n`);
    return 0;
  },
};

/** Both modes in one picture: panels along a leading "mode" axis. */
function combined(results: [Mode, PatchResult<object>][], [sl, sh]: readonly [number, number]): HeatmapData {
  const [, first] = results[0]!;
  const size = first.scores.size;
  const values = new Float32Array(size * results.length);
  const scores = new Float32Array(size * results.length);
  const noPath = new Uint8Array(size * results.length);
  results.forEach(([, r], m) => {
    values.set(plottedValues(r).values, m * size);
    scores.set(r.scores.data, m * size);
    if (r.noPath) noPath.set(r.noPath, m * size);
  });
  const modes = results.map(([mode]) => mode);
  return {
    title: `hooklens demo: direct path patching from previous-token head ${sl}.${sh} into keys (k)`,
    valueLabel: plottedValues(first).label,
    shape: [results.length, ...first.scores.shape],
    axes: [{ name: "mode", labels: modes }, { name: "layer" }, { name: "head" }],
    values,
    scores,
    noPath,
    marked: ([, l, h]) => l === sl && h === sh,
    describe: ([m, l, h]) => `${sl}.${sh} → ${l}.${h} k (${modes[m!]})`,
  };
}

function signed(v: number): string {
  return `${v < 0 ? "-" : "+"}${Math.abs(v).toFixed(3)}`;
}
