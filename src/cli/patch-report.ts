// What a patching command hands back: the JSON result (--out), a CSV (--csv), the SVG
// heatmap (--svg) and the human summary (terminal heatmap and top entries).
//
// Where it goes: `--out -` puts the JSON alone on stdout and the summary on stderr;
// otherwise the summary goes to stdout and files are announced on stderr. `--quiet`
// silences stderr (progress and announcements), never the results.

import { uncertainty, uncertaintyFields, type IntervalOptions } from "./intervals.js";
import type { PatchResult } from "../patching/result.js";
import type { Context } from "./context.js";
import { UsageError } from "./errors.js";
import { unravelIndex } from "../engine/tensor-shape.js";
import { plottedValues, type Axis, type HeatmapData } from "./grid.js";
import { renderSvgHeatmap } from "./heatmap-svg.js";
import { renderTerminalHeatmap } from "./heatmap-terminal.js";

export interface DirectPathDescription {
  /** The source head, or "all". */
  src: readonly [number, number] | "all";
  component: string;
  mode: string;
  /** k/v destinations of a grouped-query model are key/value groups, not query heads. */
  kvGroups?: boolean;
}

/** Heatmap data of a direct path result: [layer, head], or [src layer, src head, layer, head] for all sources. */
export function directPathHeatmap(result: PatchResult<object>, d: DirectPathDescription): HeatmapData {
  const { values, label } = plottedValues(result);
  const base = { valueLabel: label, shape: result.scores.shape, values, scores: result.scores.data, noPath: result.noPath };
  // A source head is a cell of the grid only when destinations are query heads too.
  const dest = d.kvGroups
    ? { axis: "kv head", into: "key/value groups", name: (l: number, h: number) => `${l}.kv${h}`, isSource: () => false }
    : { axis: "head", into: "heads", name: (l: number, h: number) => `${l}.${h}`, isSource: (a: boolean) => a };
  if (d.src === "all") {
    return {
      ...base,
      title: `Direct path patching from every head into the ${d.component} input of later ${dest.into} (${d.mode})`,
      axes: [{ name: "src layer" }, { name: "src head" }, { name: "layer" }, { name: dest.axis }],
      marked: ([sl, sh, dl, dh]) => dest.isSource(sl === dl && sh === dh),
      describe: ([sl, sh, dl, dh]) => `${sl}.${sh} → ${dest.name(dl!, dh!)} ${d.component}`,
    };
  }
  const [sl, sh] = d.src;
  return {
    ...base,
    title: `Direct path patching from head ${sl}.${sh} into the ${d.component} input of later ${dest.into} (${d.mode})`,
    axes: [{ name: "layer" }, { name: dest.axis }],
    marked: ([l, h]) => dest.isSource(l === sl && h === sh),
    describe: ([l, h]) => `${sl}.${sh} → ${dest.name(l!, h!)} ${d.component}`,
  };
}

/** Heatmap data of an activation patching result whose axes are `axes`. */
export function actHeatmap(result: PatchResult<object>, kind: string, axes: readonly Axis[]): HeatmapData {
  const { values, label } = plottedValues(result);
  return {
    title: `Activation patching: ${kind}`,
    valueLabel: label,
    shape: result.scores.shape,
    axes,
    values,
    scores: result.scores.data,
    noPath: result.noPath,
    describe: (index) => index.map((i, k) => `${axes[k]!.name} ${axes[k]!.labels?.[i] ?? i}`).join(", "),
  };
}

export interface ReportTargets {
  out?: string;
  svg?: string;
  csv?: string;
  quiet: boolean;
  top: number;
  /** Extra fields recorded in the JSON's options (model, prompts file, kind). */
  provenance: Record<string, unknown>;
  /** Lines printed before the heatmap (what was run). */
  header: readonly string[];
  topHeading: string;
  /** Bootstrap intervals and permutation p-values over prompts (--ci, --bootstrap, --seed). */
  intervals?: IntervalOptions;
}


/** A result's uncertainty over prompts (see intervals.ts), with the interval in normalised units for the heatmaps. */
function uncertaintyWithNormalized(result: PatchResult<object>, o: IntervalOptions) {
  const u = uncertainty(result, o);
  const range = result.clean - result.baseline;
  const norm = (t: Float32Array) => t.map((x, i) => (result.noPath?.[i] ? 0 : range === 0 ? NaN : (x - result.baseline) / range));
  return { ...u, normalized: { low: norm(u.low), high: norm(u.high) } };
}

/** Rejects two outputs on stdout before any work is done. */
export function checkTargets(t: { out?: string; svg?: string; csv?: string }): void {
  const onStdout = [["--out", t.out], ["--svg", t.svg], ["--csv", t.csv]].filter(([, v]) => v === "-").map(([k]) => k);
  if (onStdout.length > 1) throw new UsageError(`only one of ${onStdout.join(" and ")} can be "-" (stdout)`);
}

export function reportPatchResult(ctx: Context, result: PatchResult<object>, data: HeatmapData, t: ReportTargets): void {
  const json = result.toJSON();
  json["options"] = { ...(json["options"] as object), ...t.provenance };
  const u = t.intervals === undefined ? undefined : uncertaintyWithNormalized(result, t.intervals);
  if (u !== undefined) {
    Object.assign(json, uncertaintyFields(result, t.intervals!, u));
    const level = t.intervals!.level;
    data = { ...data, intervals: data.values === result.scores.data ? { low: u.low, high: u.high, level } : { ...u.normalized, level } };
  }
  const files: [string | undefined, string, () => string][] = [
    [t.out, "result", () => JSON.stringify(json) + "\n"],
    [t.csv, "CSV", () => toCsv(result, data, u)],
    [t.svg, "SVG heatmap", () => renderSvgHeatmap(data)],
  ];
  const anyStdout = files.some(([target]) => target === "-");
  const summaryStream = anyStdout ? ctx.io.stderr : ctx.io.stdout;
  if (!(anyStdout && t.quiet)) {
    const heatmap = renderTerminalHeatmap(data, {
      colour: ctx.colour(summaryStream), width: ctx.width(summaryStream), top: t.top, topHeading: t.topHeading,
    });
    summaryStream.write([...t.header, "", heatmap].join("\n"));
  }
  for (const [target, what, render] of files) {
    if (target === undefined) continue;
    ctx.write(target, render());
    if (target !== "-" && !t.quiet) ctx.err(`wrote the ${what} to ${target}\n`);
  }
}

/**
 * One line per cell: its index along each axis, the metric, the normalized value and the no-path
 * flag; with intervals also the score's ci_low, ci_high, p_value and stderr.
 */
export function toCsv(result: PatchResult<object>, data: HeatmapData,
  u?: { low: Float32Array; high: Float32Array; pValue: Float32Array; stderr: Float32Array }): string {
  const names = data.axes.map((a) => a.name.replace(/ /g, "_"));
  const lines = [[...names, "score", "normalized", "no_path", ...(u ? ["ci_low", "ci_high", "p_value", "stderr"] : [])].join(",")];
  for (let i = 0; i < result.scores.size; i++) {
    const index = unravelIndex(i, data.shape).map((v, k) => data.axes[k]!.labels?.[v] ?? String(v));
    const normalized = result.clean === result.baseline ? "" : data.values[i]!;
    const extra = u ? [u.low[i]!, u.high[i]!, u.pValue[i]!, u.stderr[i]!] : [];
    lines.push([...index, result.scores.data[i]!, normalized, result.noPath?.[i] ? 1 : 0, ...extra].join(","));
  }
  return lines.join("\n") + "\n";
}

export function describeBaselines(result: PatchResult<object>): string {
  return `metric: logit difference (mean over rows, last position); corrupted run ${result.baseline.toFixed(4)}, clean run ${result.clean.toFixed(4)}`;
}
