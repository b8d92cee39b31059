// A patching result seen as heatmap panels, shared by the terminal and SVG renderers:
// the last two axes are the rows and columns of a panel; leading axes (all-sources,
// by-position, pattern and "every" results) index small multiples.

import type { PatchResult } from "../patching/result.js";
import { unravelIndex } from "../engine/tensor-shape.js";

export interface Axis {
  name: string;
  /** Tick labels (default: the index). */
  labels?: readonly string[];
}

/** What a heatmap shows. */
export interface HeatmapData {
  title: string;
  /** What the colours mean, e.g. "normalized logit difference". */
  valueLabel: string;
  shape: readonly number[];
  axes: readonly Axis[];
  /** The plotted values (normalized scores), flat row-major. */
  values: Float32Array;
  /** The raw metric values. */
  scores: Float32Array;
  noPath?: Uint8Array;
  /** Cells to outline (the source head of direct path patching). */
  marked?: (index: readonly number[]) => boolean;
  /** Names a cell in the list of top entries. */
  describe: (index: readonly number[]) => string;
  /** Bootstrap intervals over prompts of the plotted values (same units), flat row-major, at `level` (e.g. 0.95). */
  intervals?: { low: Float32Array; high: Float32Array; level?: number };
}

/** Whether a cell's interval over prompts contains 0 (no effect told apart from none): drawn dimmed or hatched. */
export function containsZero(data: HeatmapData, flat: number): boolean {
  const ci = data.intervals;
  return ci !== undefined && data.noPath?.[flat] !== 1 && ci.low[flat]! <= 0 && ci.high[flat]! >= 0;
}

/** "95% interval" for legends. */
export function intervalName(data: HeatmapData): string {
  const level = data.intervals?.level;
  return level === undefined ? "interval" : `${Math.round(level * 1000) / 10}% interval`;
}

export interface Panel {
  /** e.g. "src layer 0, src head 1" (empty for a single panel). */
  title: string;
  /** Index of the leading axes. */
  prefix: readonly number[];
  rowAxis: Axis;
  colAxis: Axis;
  rows: number;
  cols: number;
  /** Flat index of the panel's first cell. */
  offset: number;
}

export interface PanelLayout {
  panels: Panel[];
  /** Panels per row of the layout (a 2-axis prefix lays out as its own grid). */
  columns: number;
}

/** The panels of `data` and how to arrange them. */
export function layoutPanels(data: HeatmapData, maxColumns = 6): PanelLayout {
  const shape = data.shape.length >= 2 ? data.shape : [1, data.shape[0] ?? 1];
  const axes = data.shape.length >= 2 ? data.axes : [{ name: "" }, data.axes[0] ?? { name: "" }];
  const lead = shape.slice(0, -2);
  const rows = shape[shape.length - 2]!;
  const cols = shape[shape.length - 1]!;
  const count = lead.reduce((a, b) => a * b, 1);
  const panels: Panel[] = [];
  for (let p = 0; p < count; p++) {
    const prefix = unravelIndex(p, lead);
    panels.push({
      title: prefix.map((i, k) => `${axes[k]!.name} ${tick(axes[k]!, i)}`).join(", "),
      prefix,
      rowAxis: axes[axes.length - 2]!,
      colAxis: axes[axes.length - 1]!,
      rows,
      cols,
      offset: p * rows * cols,
    });
  }
  const columns = lead.length === 2 ? lead[1]! : Math.min(count, maxColumns);
  return { panels, columns: Math.max(1, columns) };
}

export function tick(axis: Axis, i: number): string {
  return axis.labels?.[i] ?? String(i);
}

export interface TopEntry {
  index: number[];
  /** Its flat index. */
  flat: number;
  value: number;
  score: number;
  label: string;
}

/** The `n` cells with the largest |value|, no-path cells left out. */
export function topEntries(data: HeatmapData, n: number): TopEntry[] {
  const order: number[] = [];
  for (let i = 0; i < data.values.length; i++) if (!data.noPath?.[i] && Number.isFinite(data.values[i]!)) order.push(i);
  order.sort((a, b) => Math.abs(data.values[b]!) - Math.abs(data.values[a]!) || a - b);
  return order.slice(0, n).map((flat) => {
    const index = unravelIndex(flat, data.shape);
    return { index, flat, value: data.values[flat]!, score: data.scores[flat]!, label: data.describe(index) };
  });
}

/** The largest |value| outside no-path cells (the colour scale's limit). */
export function valueLimit(data: HeatmapData): number {
  let max = 0;
  for (let i = 0; i < data.values.length; i++) {
    const v = data.values[i]!;
    if (!data.noPath?.[i] && Number.isFinite(v)) max = Math.max(max, Math.abs(v));
  }
  return max;
}

/**
 * Normalized scores ((score - baseline) / (clean - baseline)) when the clean and corrupted
 * runs differ, else the change from the baseline.
 */
export function plottedValues(result: PatchResult<object>): { values: Float32Array; label: string } {
  if (result.clean !== result.baseline) return { values: result.normalized().data, label: "normalized logit difference (0 = corrupted, 1 = clean)" };
  const values = result.scores.data.map((s, i) => (result.noPath?.[i] ? 0 : s - result.baseline));
  return { values, label: "logit difference minus the corrupted baseline" };
}

