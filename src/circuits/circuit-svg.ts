// An SVG drawing of a circuit: the input at the bottom, the logits at the top, one row of nodes
// per layer (its heads, then its MLP above them), each edge a curve from its writer to its
// reader, its width by |effect| and its colour by sign; query, key and value edges told apart by
// their dash and a letter at the reader's end.

import type { DiscoveredCircuit } from "./discover.js";

export interface CircuitDrawing {
  title: string;
  nLayers: number;
  nHeads: number;
  /** The circuit's edges with their effect (width by |effect|, colour by sign) and a detail for the hover text. */
  edges: readonly { writer: string; reader: string; effect: number; detail?: string }[];
}

const COLUMN = 90;
const ROW = 110;
const MARGIN = 60;

/** The SVG document of a circuit drawing. */
export function renderCircuitSvg(d: CircuitDrawing): string {
  const width = MARGIN * 2 + COLUMN * Math.max(d.nHeads, 2);
  const rows = 2 + 2 * d.nLayers; // input, per layer (heads, mlp), logits
  const height = MARGIN * 2 + ROW * (rows - 1) / 2 + 40;
  const y = (row: number) => height - MARGIN - (row * ROW) / 2;
  const centre = width / 2;
  // Node positions by writer/reader node name (a reader's position is its head's or MLP's).
  const pos = (name: string): [number, number] => {
    if (name === "input") return [centre, y(0)];
    if (name === "logits") return [centre, y(rows - 1)];
    const head = /^a(\d+)\.h(\d+)/.exec(name);
    if (head) {
      const l = Number(head[1]);
      const h = Number(head[2]);
      return [MARGIN + COLUMN * (h + 0.5) * (Math.max(d.nHeads, 2) / d.nHeads), y(1 + 2 * l)];
    }
    const mlp = /^m(\d+)/.exec(name)!;
    return [centre, y(2 + 2 * Number(mlp[1]))];
  };
  const maxEffect = Math.max(1e-12, ...d.edges.map((e) => Math.abs(e.effect)));
  const used = new Set<string>(["input", "logits"]);
  const paths = d.edges.map((e) => {
    const readerNode = e.reader.replace(/<[qkv]>$/, "");
    used.add(e.writer);
    used.add(readerNode);
    const [x1, y1] = pos(e.writer);
    const [x2, y2] = pos(readerNode);
    const kind = /<([qkv])>$/.exec(e.reader)?.[1];
    const w = 1 + 7 * Math.abs(e.effect) / maxEffect;
    const colour = e.effect >= 0 ? "#1f6fb4" : "#c0392b";
    const dash = kind === "k" ? ' stroke-dasharray="8 4"' : kind === "v" ? ' stroke-dasharray="2 4"' : "";
    const bend = (x1 === x2 ? 40 : 0);
    const label = kind ? `<text x="${x2 - 10}" y="${y2 + 24}" font-size="11" fill="${colour}">${kind}</text>` : "";
    return `<path d="M ${x1} ${y1} C ${x1 + bend} ${(y1 + y2) / 2}, ${x2 + bend} ${(y1 + y2) / 2}, ${x2} ${y2}" fill="none" stroke="${colour}" ` +
      `stroke-width="${w.toFixed(2)}" stroke-opacity="0.75"${dash}><title>${escape(`${e.writer} → ${e.reader}: effect ${sign(e.effect)}` +
      `${e.detail !== undefined ? ` (${e.detail})` : ""}`)}</title></path>${label}`;
  });
  const nodes: string[] = [];
  const node = (name: string, faint: boolean) => {
    const [x, yy] = pos(name);
    nodes.push(`<g opacity="${faint ? 0.3 : 1}"><rect x="${x - 28}" y="${yy - 12}" width="56" height="24" rx="6" fill="#fff" stroke="#333"/>` +
      `<text x="${x}" y="${yy + 4}" font-size="12" text-anchor="middle">${escape(name)}</text></g>`);
  };
  node("input", false);
  node("logits", false);
  for (let l = 0; l < d.nLayers; l++) {
    for (let h = 0; h < d.nHeads; h++) node(`a${l}.h${h}`, !used.has(`a${l}.h${h}`));
    node(`m${l}`, !used.has(`m${l}`));
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    `<text x="${width / 2}" y="24" font-size="14" text-anchor="middle">${escape(d.title)}</text>`,
    `<text x="10" y="${height - 10}" font-size="11" fill="#555">blue: raises the metric, red: lowers it; width: |effect|; solid q, dashed k, dotted v</text>`,
    ...paths, ...nodes, "</svg>", "",
  ].join("\n");
}

function sign(x: number): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(4)}`;
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The drawing of a discovered circuit: each edge's effect is its exact metric where verified, else
 * its estimate, minus the corrupted metric; the hover text gives both.
 *
 * @example
 * ```ts
 * const found = await discoverCircuit(model, corrupted, cleanCache, corruptedCache, metric, { method: "eap-ig" });
 * const svg = renderCircuitSvg(discoveredCircuitDrawing(found, model.cfg, "eap-ig"));
 * ```
 */
export function discoveredCircuitDrawing(found: DiscoveredCircuit, cfg: { nLayers: number; nHeads: number }, method: string): CircuitDrawing {
  return {
    title: `circuit (${method}): ${found.edges.length} edges, faithfulness ${found.faithfulness.toFixed(2)}`,
    nLayers: cfg.nLayers, nHeads: cfg.nHeads,
    edges: found.edges.map((e) => ({
      writer: e.writer, reader: e.reader, effect: (e.exact ?? e.estimate) - found.baseline,
      detail: e.exact !== undefined ? `exact ${e.exact.toFixed(4)}, estimate ${e.estimate.toFixed(4)}` : `estimate ${e.estimate.toFixed(4)}`,
    })),
  };
}
