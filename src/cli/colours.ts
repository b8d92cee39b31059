// The diverging colour scale of the heatmaps, centred on 0: blue for negative, near-white
// for 0, red for positive (the ColorBrewer RdBu end points), as RGB, hex and ANSI 256.

export type Rgb = readonly [number, number, number];

const NEGATIVE: Rgb = [33, 102, 172];
const ZERO: Rgb = [247, 247, 247];
const POSITIVE: Rgb = [178, 24, 43];
/** Cells that have no causal path. */
export const NO_PATH: Rgb = [189, 189, 189];

/** The colour of `value` on a scale from -limit (blue) through 0 (white) to +limit (red). */
export function divergingColour(value: number, limit: number): Rgb {
  if (!Number.isFinite(value)) return NO_PATH;
  const t = limit > 0 ? Math.max(-1, Math.min(1, value / limit)) : 0;
  const end = t < 0 ? NEGATIVE : POSITIVE;
  const a = Math.abs(t);
  return [0, 1, 2].map((i) => Math.round(ZERO[i]! + (end[i]! - ZERO[i]!) * a)) as unknown as Rgb;
}

export function hex([r, g, b]: Rgb): string {
  return `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}

/** The nearest colour of the xterm 6×6×6 cube (codes 16..231). */
export function ansi256([r, g, b]: Rgb): number {
  const level = (c: number) => (c < 48 ? 0 : c < 115 ? 1 : Math.min(5, Math.floor((c - 35) / 40)));
  return 16 + 36 * level(r) + 6 * level(g) + level(b);
}

/** Black or white text, whichever reads better on `bg`. */
export function textOn([r, g, b]: Rgb): "black" | "white" {
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "black" : "white";
}
