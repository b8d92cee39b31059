// The terminal heatmap: one grid per panel with the value in each cell, on an ANSI 256
// colour background in a colour terminal, or behind a Unicode shade glyph in plain text;
// panels too wide for the terminal fall back to two-character cells. The top entries follow.

import { ansi256, divergingColour, NO_PATH, textOn } from "./colours.js";
import { containsZero, intervalName, layoutPanels, tick, topEntries, valueLimit, type HeatmapData, type Panel } from "./grid.js";

export interface TerminalHeatmapOptions {
  /** ANSI colours (a TTY); otherwise plain glyphs. */
  colour: boolean;
  /** Terminal width in columns. */
  width: number;
  /** How many top entries to list (0: none). */
  top: number;
  /** Heading of the list, e.g. "top paths". */
  topHeading?: string;
  /** At most this many panels are drawn (the top list still covers all). */
  maxPanels?: number;
}

const SHADES = [" ", "░", "▒", "▓", "█"];
const VALUE_WIDTH = 8;
const RESET = "\x1b[0m";

export function renderTerminalHeatmap(data: HeatmapData, options: TerminalHeatmapOptions): string {
  const limit = valueLimit(data);
  const { panels } = layoutPanels(data);
  const maxPanels = options.maxPanels ?? 24;
  const lines: string[] = [`${data.title}`, `  ${data.valueLabel}; ${legend(limit, options.colour)}`];
  if (data.intervals !== undefined) {
    lines.push(`  ~ = its ${intervalName(data)} over prompts contains 0 (an effect not told apart from none)${options.colour ? ", drawn faded" : ""}`);
  }
  for (const panel of panels.slice(0, maxPanels)) lines.push("", ...renderPanel(data, panel, limit, options));
  if (panels.length > maxPanels) lines.push("", `  (${panels.length - maxPanels} more panels not drawn; write them with --svg or --out)`);
  if (options.top > 0) {
    lines.push("", `${options.topHeading ?? "top entries"} (by |value|):`);
    const top = topEntries(data, options.top);
    const labelWidth = Math.max(0, ...top.map((t) => t.label.length));
    const ci = data.intervals;
    top.forEach((t, i) => {
      // With intervals: "+0.840 [+0.710, +0.930]", and a note where the interval contains 0.
      const interval = ci === undefined ? "" : ` [${signed(ci.low[t.flat]!, 3)}, ${signed(ci.high[t.flat]!, 3)}]` +
        (ci.low[t.flat]! <= 0 && ci.high[t.flat]! >= 0 ? " (contains 0)" : "");
      lines.push(`  ${String(i + 1).padStart(2)}. ${t.label.padEnd(labelWidth)}  ${signed(t.value, 3).padStart(7)}${interval}  (metric ${t.score.toFixed(4)})`);
    });
    if (top.length === 0) lines.push("  (no entries with a causal path)");
  }
  return lines.join("\n") + "\n";
}

function renderPanel(data: HeatmapData, panel: Panel, limit: number, options: TerminalHeatmapOptions): string[] {
  const rowTicks = Array.from({ length: panel.rows }, (_, r) => tick(panel.rowAxis, r));
  const rowWidth = Math.max(panel.rowAxis.name.length, ...rowTicks.map((t) => t.length));
  const compact = rowWidth + 2 + panel.cols * VALUE_WIDTH > options.width;
  const cellWidth = compact ? 2 : VALUE_WIDTH;
  const lines: string[] = [];
  if (panel.title !== "") lines.push(`  ${panel.title}`);
  lines.push(`  ${" ".repeat(rowWidth)} ${panel.colAxis.name} →`);
  const colTicks = Array.from({ length: panel.cols }, (_, c) => tick(panel.colAxis, c));
  const header = compact ? sparseTicks(colTicks) : colTicks.map((t) => `${t.slice(0, cellWidth - 1).padStart(cellWidth - 1)} `).join("");
  lines.push(`  ${panel.rowAxis.name.padStart(rowWidth)} ${header}`);
  for (let r = 0; r < panel.rows; r++) {
    let line = `  ${rowTicks[r]!.padStart(rowWidth)} `;
    for (let c = 0; c < panel.cols; c++) {
      const flat = panel.offset + r * panel.cols + c;
      const index = [...panel.prefix, r, c];
      line += cell(data.values[flat]!, data.noPath?.[flat] === 1, data.marked?.(index) === true, containsZero(data, flat), limit, compact, options.colour);
    }
    lines.push(line);
  }
  return lines;
}

/** Two-column cells: a tick every fifth column. */
function sparseTicks(ticks: readonly string[]): string {
  const chars = new Array<string>(ticks.length * 2).fill(" ");
  for (let c = 0; c < ticks.length; c += 5) [...ticks[c]!.slice(0, 9)].forEach((ch, k) => { if (c * 2 + k < chars.length) chars[c * 2 + k] = ch; });
  return chars.join("");
}

function cell(value: number, noPath: boolean, marked: boolean, unsure: boolean, limit: number, compact: boolean, colour: boolean): string {
  const width = compact ? 2 : VALUE_WIDTH;
  let text: string;
  if (marked) text = compact ? "[]" : "  [src] ";
  else if (noPath) text = compact ? " ·" : "      · ";
  else if (compact) text = colour ? (unsure ? " ~" : "  ") : `${unsure ? "~" : value < 0 ? "-" : value > 0 ? "+" : " "}${shade(value, limit)}`;
  else text = colour ? ` ${fixed(value)}${unsure ? "~" : " "}` : `${shade(value, limit)}${fixed(value)}${unsure ? "~" : " "}`;
  text = text.padEnd(width);
  if (!colour) return text;
  // An entry whose interval contains 0 is faded halfway to white.
  const base = noPath || marked ? NO_PATH : divergingColour(value, limit);
  const bg: typeof base = unsure && !noPath && !marked ? [fade(base[0]), fade(base[1]), fade(base[2])] : base;
  const fg = textOn(bg) === "black" ? 16 : 231;
  return `\x1b[48;5;${ansi256(bg)}m\x1b[38;5;${fg}m${text}${RESET}`;
}

function fade(channel: number): number {
  return Math.round(channel + (255 - channel) * 0.6);
}

function shade(value: number, limit: number): string {
  if (!(limit > 0)) return SHADES[0]!;
  const level = Math.min(SHADES.length - 1, Math.round((Math.abs(value) / limit) * (SHADES.length - 1)));
  return SHADES[level]!;
}

function legend(limit: number, colour: boolean): string {
  const end = signed(limit, 3);
  if (!colour) return `shade ${SHADES.slice(1).join("")} = |value| up to ${limit.toFixed(3)}; · = no causal path`;
  const steps = 9;
  let bar = "";
  for (let i = 0; i < steps; i++) {
    const v = ((2 * i) / (steps - 1) - 1) * limit;
    bar += `\x1b[48;5;${ansi256(divergingColour(v, limit))}m  `;
  }
  return `${signed(-limit, 3)} ${bar}${RESET} ${end}; grey = no causal path`;
}

/** A value in 6 columns: +0.93, -12.3, +1e+3. */
function fixed(v: number): string {
  const a = Math.abs(v);
  const s = a < 9.995 ? a.toFixed(2) : a < 99.95 ? a.toFixed(1) : a.toExponential(0);
  // No sign on values that round to zero: "-0.00" reads as an effect.
  return (/[1-9]/.test(s) ? `${v < 0 ? "-" : "+"}${s}` : s).padStart(6);
}

function signed(v: number, digits: number): string {
  return `${v < 0 ? "-" : "+"}${Math.abs(v).toFixed(digits)}`;
}
