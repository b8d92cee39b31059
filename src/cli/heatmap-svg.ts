// The SVG heatmap: small multiples of (row axis × column axis) panels, a diverging colour
// scale centred on 0, no-path cells in grey, the source head outlined, labelled axes,
// a title and a colour bar. Every cell is a <rect class="cell"> with a <title> tooltip.

import { divergingColour, hex, NO_PATH } from "./colours.js";
import { containsZero, intervalName, layoutPanels, tick, valueLimit, type HeatmapData, type Panel } from "./grid.js";

const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\"";
const TITLE_HEIGHT = 52;
const PANEL_LEFT = 58;
const PANEL_TOP = 22;
const PANEL_BOTTOM = 40;
const PANEL_GAP = 18;
const BAR_WIDTH = 150;

export function renderSvgHeatmap(data: HeatmapData): string {
  const limit = valueLimit(data);
  const { panels, columns } = layoutPanels(data);
  const { rows, cols } = panels[0]!;
  const cell = Math.max(6, Math.min(36, Math.floor(360 / Math.max(rows, cols))));
  const panelW = PANEL_LEFT + cols * cell + PANEL_GAP;
  const panelH = PANEL_TOP + rows * cell + PANEL_BOTTOM;
  const gridRows = Math.ceil(panels.length / columns);
  // Room for the title (about 9 px per character at 15 px) and for the colour bar with its legend.
  const width = Math.max(12 + panelW * columns + BAR_WIDTH, Math.ceil(data.title.length * 9) + 24, 420);
  const height = Math.max(TITLE_HEIGHT + panelH * gridRows + 10, TITLE_HEIGHT + PANEL_TOP + 290);

  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="11">`,
    `<title>${esc(data.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600">${esc(data.title)}</text>`,
    `<text x="12" y="40" fill="#555555">${esc(data.valueLabel)}</text>`,
  ];
  // Entries whose interval over prompts contains 0 are hatched.
  if (data.intervals !== undefined) {
    out.push(`<defs><pattern id="hooklens-hatch" patternUnits="userSpaceOnUse" width="5" height="5" patternTransform="rotate(45)">` +
      `<line x1="0" y1="0" x2="0" y2="5" stroke="#333333" stroke-width="1" stroke-opacity="0.45"/></pattern></defs>`);
  }
  panels.forEach((panel, i) => {
    const x0 = 12 + (i % columns) * panelW;
    const y0 = TITLE_HEIGHT + Math.floor(i / columns) * panelH;
    out.push(...renderPanel(data, panel, x0, y0, cell, limit));
  });
  const hasNoPath = data.noPath?.includes(1) === true;
  const unsure = data.intervals === undefined ? undefined : intervalName(data);
  out.push(...colourBar(width - BAR_WIDTH + 20, TITLE_HEIGHT + PANEL_TOP, limit, hasNoPath, data.marked !== undefined, unsure));
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function renderPanel(data: HeatmapData, panel: Panel, x0: number, y0: number, cell: number, limit: number): string[] {
  const gx = x0 + PANEL_LEFT - 12;
  const gy = y0 + PANEL_TOP;
  const out: string[] = [`<g class="panel">`];
  if (panel.title !== "") out.push(`<text x="${gx}" y="${gy - 7}" font-weight="600">${esc(panel.title)}</text>`);
  const marks: string[] = [];
  for (let r = 0; r < panel.rows; r++) {
    for (let c = 0; c < panel.cols; c++) {
      const flat = panel.offset + r * panel.cols + c;
      const index = [...panel.prefix, r, c];
      const noPath = data.noPath?.[flat] === 1;
      const value = data.values[flat]!;
      const fill = hex(noPath ? NO_PATH : divergingColour(value, limit));
      const where = index.map((v, k) => `${data.axes[k]?.name ?? k} ${tick(data.axes[k] ?? { name: "" }, v)}`).join(", ");
      const ci = data.intervals;
      const interval = ci === undefined || noPath ? "" : ` [${ci.low[flat]!.toFixed(4)}, ${ci.high[flat]!.toFixed(4)}]`;
      const what = noPath ? "no causal path" : `${value.toFixed(4)}${interval} (metric ${data.scores[flat]!.toFixed(4)})`;
      const x = gx + c * cell;
      const y = gy + r * cell;
      const unsure = containsZero(data, flat);
      out.push(`<rect class="cell${noPath ? " no-path" : ""}${unsure ? " contains-zero" : ""}" x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#ffffff" stroke-width="${cell > 10 ? 1 : 0.5}"><title>${esc(`${where}: ${what}`)}</title></rect>`);
      if (unsure) marks.push(`<rect class="hatch" x="${x}" y="${y}" width="${cell}" height="${cell}" fill="url(#hooklens-hatch)" pointer-events="none"/>`);
      if (data.marked?.(index)) {
        marks.push(`<rect class="source" x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" fill="none" stroke="#111111" stroke-width="2"/>`);
        if (cell >= 18) marks.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 3}" text-anchor="middle" font-size="${Math.min(10, cell / 3)}">src</text>`);
      }
    }
  }
  out.push(...marks);
  // Ticks: every one when they fit, else every k-th.
  const every = (n: number) => Math.max(1, Math.ceil(n / Math.max(1, Math.floor((n * cell) / 14))));
  const rowStep = every(panel.rows);
  for (let r = 0; r < panel.rows; r += rowStep) {
    out.push(`<text x="${gx - 4}" y="${gy + r * cell + cell / 2 + 4}" text-anchor="end">${esc(tick(panel.rowAxis, r))}</text>`);
  }
  const colStep = Math.max(every(panel.cols), Math.ceil(panel.cols / Math.max(1, Math.floor((panel.cols * cell) / 22))));
  for (let c = 0; c < panel.cols; c += colStep) {
    out.push(`<text x="${gx + c * cell + cell / 2}" y="${gy + panel.rows * cell + 13}" text-anchor="middle">${esc(tick(panel.colAxis, c))}</text>`);
  }
  const midY = gy + (panel.rows * cell) / 2;
  out.push(`<text x="${gx + (panel.cols * cell) / 2}" y="${gy + panel.rows * cell + 29}" text-anchor="middle" fill="#333333">${esc(panel.colAxis.name)}</text>`);
  out.push(`<text x="${x0 + 8}" y="${midY}" text-anchor="middle" fill="#333333" transform="rotate(-90 ${x0 + 8} ${midY})">${esc(panel.rowAxis.name)}</text>`);
  out.push(`</g>`);
  return out;
}

function colourBar(x: number, y: number, limit: number, hasNoPath: boolean, hasSource: boolean, unsure: string | undefined): string[] {
  const h = 180;
  const w = 16;
  const stops = [-1, -0.5, 0, 0.5, 1].map((t, i) =>
    `<stop offset="${i * 25}%" stop-color="${hex(divergingColour(-t * limit, limit || 1))}"/>`);
  const out = [
    `<g class="colour-bar">`,
    `<defs><linearGradient id="hooklens-scale" x1="0" y1="0" x2="0" y2="1">${stops.join("")}</linearGradient></defs>`,
    `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="url(#hooklens-scale)" stroke="#999999" stroke-width="0.5"/>`,
    `<text x="${x + w + 5}" y="${y + 8}">${signed(limit)}</text>`,
    `<text x="${x + w + 5}" y="${y + h / 2 + 4}">0</text>`,
    `<text x="${x + w + 5}" y="${y + h}">${signed(-limit)}</text>`,
  ];
  let legendY = y + h + 16;
  if (hasNoPath) {
    out.push(`<rect x="${x}" y="${legendY}" width="${w}" height="${w}" fill="${hex(NO_PATH)}"/>`);
    out.push(`<text x="${x + w + 5}" y="${legendY + 12}">no causal path</text>`);
    legendY += 23;
  }
  if (hasSource) {
    out.push(`<rect x="${x + 1}" y="${legendY}" width="${w - 2}" height="${w - 2}" fill="none" stroke="#111111" stroke-width="2"/>`);
    out.push(`<text x="${x + w + 5}" y="${legendY + 11}">source head</text>`);
    legendY += 23;
  }
  if (unsure !== undefined) {
    out.push(`<rect x="${x}" y="${legendY}" width="${w}" height="${w}" fill="${hex(divergingColour(0.6 * (limit || 1), limit || 1))}"/>`);
    out.push(`<rect x="${x}" y="${legendY}" width="${w}" height="${w}" fill="url(#hooklens-hatch)"/>`);
    out.push(`<text x="${x + w + 5}" y="${legendY + 8}">${esc(unsure)}</text>`);
    out.push(`<text x="${x + w + 5}" y="${legendY + 21}">contains 0</text>`);
  }
  out.push(`</g>`);
  return out;
}

function signed(v: number): string {
  return `${v < 0 ? "−" : "+"}${Math.abs(v).toFixed(3)}`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}
