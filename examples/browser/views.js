// What each view draws: results from the worker (analyses.js) turned into figure descriptions
// (figure.js), plus the views' own summaries and detail panels. No DOM access except through
// the `out` object the page passes: { figures(list, onClick), details(html), summary(text) }.

import { diverging, maxAbs, sequential } from "./figure.js";

const fmt = (x, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
const signed = (x) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(4)}` : "n/a");
const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);

// ---- attention patterns ---------------------------------------------------------------------

/** The layer × head grid: each cell a thumbnail of that head's pattern (drawn by the page), click for the full one. */
export function patternGrid(data) {
  return { kind: "thumbnails", rows: data.nLayers, cols: data.nHeads, size: data.labels.length, pattern: (l, h) => data.patterns[l][h] };
}

/** One head's token-to-token pattern: rows the attending (destination) tokens, columns the attended (source) tokens. */
export function patternFigure(data, layer, head) {
  const P = data.labels.length;
  const pattern = data.patterns[layer][head];
  const posLabels = data.labels.map((t, i) => `${i} ${t}`);
  return {
    title: `attention pattern of L${layer}H${head}`, rows: P, cols: P, rowLabels: posLabels, colLabels: posLabels,
    axes: `L${layer}H${head}: destination ↓ source →`,
    value: (r, c) => pattern[r * P + c], colour: sequential(1),
    tooltip: (r, c) => `L${layer}H${head}: ${data.labels[r]} (pos ${r}) attends to ${data.labels[c]} (pos ${c}): ${fmt(pattern[r * P + c])}`,
    legend: "colour: attention weight, white 0 … purple 1",
  };
}

// ---- logit lens --------------------------------------------------------------------------------

/** Top token of every layer and position, shaded by its probability; hover for the top k. */
export function lensFigure(data) {
  const C = data.layerLabels.length;
  const P = data.labels.length;
  return {
    title: "logit lens: top token by layer and position", rows: C, cols: P, rowLabels: data.layerLabels,
    colLabels: data.labels.map((t, i) => `${i} ${t}`), axes: "residual stream ↓ position →",
    value: (r, c) => data.top[r][c][0].prob, colour: sequential(1), text: (r, c) => data.top[r][c][0].label,
    tooltip: (r, c) => `${data.layerLabels[r]}, pos ${c} (${data.labels[c]}): ` + data.top[r][c].map((t) => `${t.label} ${(100 * t.prob).toFixed(1)}%`).join(", "),
    legend: "cell: the top token of the residual stream there (final norm applied, unembedded); colour: its probability",
  };
}

/** The logit difference correct − incorrect at the last position, read off each layer's residual stream. */
export function lensDiffFigure(data) {
  const max = maxAbs(data.logitDiff);
  return {
    title: "logit lens: logit difference by layer", rows: 1, cols: data.layerLabels.length, rowLabels: ["logit diff"],
    colLabels: data.layerLabels, axes: "", cell: 40, value: (_, c) => data.logitDiff[c], colour: diverging(max),
    text: (_, c) => data.logitDiff[c].toFixed(2),
    tooltip: (_, c) => `${data.layerLabels[c]}: mean logit[correct] − logit[incorrect] at the last position = ${fmt(data.logitDiff[c])}`,
    legend: `logit difference (${data.correct.join(", ")} vs ${data.incorrect.join(", ")}): blue −${fmt(max, 2)} … red +${fmt(max, 2)}`,
  };
}

// ---- patching results (activation and direct path) ---------------------------------------------

/** The normalized scores of a PatchResult JSON as a figure; rows and columns by the result's op. */
export function patchFigure(result, labels) {
  const values = result.normalized ?? result.scores;
  const shape = result.shape;
  const posLabels = labels.map((t, i) => `${i} ${t}`);
  let grid;
  if (result.op === "act_patch_resid_pre") {
    grid = { rows: shape[0], cols: shape[1], rowLabels: range(shape[0]).map((l) => `L${l}`), colLabels: posLabels, axes: "layer ↓ position →", name: (r, c) => `resid_pre L${r}, pos ${c} (${labels[c]})`, index: (r, c) => r * shape[1] + c };
  } else if (result.op === "act_patch_attn_head_out_all_pos") {
    grid = { rows: shape[0], cols: shape[1], rowLabels: range(shape[0]).map((l) => `L${l}`), colLabels: range(shape[1]).map((h) => `H${h}`), axes: "layer ↓ head →", name: (r, c) => `head ${r}.${c}, all positions`, index: (r, c) => r * shape[1] + c };
  } else if (result.op === "act_patch_attn_head_out_by_pos") {
    const [L, P, H] = shape; // scores [layer, pos, head]
    grid = { rows: L * H, cols: P, rowLabels: range(L * H).map((i) => `${Math.floor(i / H)}.${i % H}`), colLabels: posLabels, axes: "head ↓ position →", name: (r, c) => `head ${Math.floor(r / H)}.${r % H}, pos ${c} (${labels[c]})`, index: (r, c) => (Math.floor(r / H) * P + c) * H + (r % H) };
  } else if (shape.length === 4) {
    const [L, H] = shape;
    const heads = range(L * H).map((i) => `${Math.floor(i / H)}.${i % H}`);
    grid = { rows: L * H, cols: L * H, rowLabels: heads, colLabels: heads, axes: "source ↓ destination →", name: (r, c) => `${heads[r]} → ${heads[c]}`, index: (r, c) => r * L * H + c, source: (r) => heads[r] };
  } else {
    const [L, H] = shape;
    const src = result.options.src.join(".");
    grid = { rows: L, cols: H, rowLabels: range(L).map((l) => `L${l}`), colLabels: range(H).map((h) => `H${h}`), axes: "layer ↓ head →", name: (r, c) => `${src} → ${r}.${c}`, index: (r, c) => r * H + c, source: () => src };
  }
  const noPath = (i) => result.noPath?.[i] === true;
  const max = maxAbs(values.filter((_, i) => !noPath(i)));
  return {
    ...grid, title: result.op,
    value: (r, c) => (noPath(grid.index(r, c)) ? NaN : values[grid.index(r, c)]),
    colour: diverging(max),
    tooltip: (r, c) => `${grid.name(r, c)}: ${describeCell(result, grid.index(r, c))}`,
    legend: `colour: normalized effect (0 = corrupted run, 1 = clean run), blue −${fmt(max, 3)} … white 0 … red +${fmt(max, 3)}${result.noPath ? "; grey: no causal path" : ""}`,
  };
}

export function describeCell(result, i) {
  return result.noPath?.[i] ? "no causal path" : `score ${fmt(result.scores[i])}, normalized ${fmt(result.normalized?.[i] ?? NaN)}`;
}

export function patchSummary(result, elapsedMs) {
  const opts = result.options ?? {};
  const what = [opts.component, opts.mode].filter(Boolean).join(", ");
  return `${result.op} [${result.shape.join(", ")}]${what ? ` (${what})` : ""}: metric corrupted ${fmt(result.baseline)}, clean ${fmt(result.clean)}; ${elapsedMs.toFixed(0)} ms`;
}

/** The ten cells with the largest |normalized| effect (from the clicked cell's source for direct path), as an HTML table. */
export function topCellsHtml(fig, result, hit) {
  const cells = [];
  const rows = fig.source && fig.rows === fig.cols ? [hit.r] : range(fig.rows);
  for (const r of rows) {
    for (let c = 0; c < fig.cols; c++) {
      const i = fig.index(r, c);
      if (!result.noPath?.[i]) cells.push({ r, c, i, v: result.normalized?.[i] ?? result.scores[i] });
    }
  }
  cells.sort((a, b) => Math.abs(b.v) - Math.abs(a.v));
  const picked = fig.index(hit.r, hit.c);
  const body = cells.slice(0, 10).map(({ r, c, i }) =>
    `<tr class="${i === picked ? "picked" : ""}"><td>${esc(fig.name(r, c))}</td><td>${fmt(result.scores[i])}</td><td>${fmt(result.normalized?.[i] ?? NaN)}</td></tr>`);
  const heading = fig.source ? `Top paths from ${esc(fig.source(hit.r))}` : "Top cells";
  return `<h2>${heading}</h2><p class="note">picked: ${esc(fig.name(hit.r, hit.c))} — ${describeCell(result, picked)}</p>` +
    `<table><tr><th>${fig.source ? "path" : "cell"}</th><th>score</th><th>normalized</th></tr>${body.join("")}</table>`;
}

// ---- circuit -------------------------------------------------------------------------------------

export function circuitSummary(found, elapsedMs) {
  return `${found.edges.length} edges, faithfulness ${found.faithfulness.toFixed(3)} (corrupted ${found.baseline.toFixed(4)}, clean ${found.clean.toFixed(4)}); ` +
    `Spearman ρ of estimate and exact ${Number.isNaN(found.spearman) ? "n/a" : found.spearman.toFixed(3)}; ${elapsedMs.toFixed(0)} ms`;
}

export function circuitTableRows(found) {
  return [["edge", "estimate", "exact"], ...found.edges.map((e) => [`${e.writer} → ${e.reader}`, e.estimate === undefined ? "" : signed(e.estimate), e.exact === undefined ? "" : signed(e.exact)])];
}

function range(n) {
  return Array.from({ length: n }, (_, i) => i);
}
