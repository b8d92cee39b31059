// One grid figure (a heatmap with labelled rows and columns, optional text in the cells),
// drawn on a canvas for the page and written as SVG for export, from the same description:
//   { title, rows, cols, rowLabels, colLabels, axes: "row ↓ col →", value(r, c), colour(v),
//     text?(r, c), tooltip(r, c), legend }
// `attach` adds hover (a tooltip) and click to a drawn canvas.

const FONT = "11px ui-monospace, monospace";
const PAD = 8;

/** Cell size and label margins for a figure. */
export function layoutOf(fig) {
  const longest = (labels) => labels.reduce((m, s) => Math.max(m, String(s).length), 0);
  const cell = fig.cell ?? Math.max(14, Math.min(48, Math.floor(640 / Math.max(fig.rows, fig.cols))));
  const cellW = fig.text ? Math.max(cell, 64) : cell;
  const left = Math.min(160, 12 + 7 * longest(fig.rowLabels));
  const colChars = longest(fig.colLabels);
  const rotate = colChars * 7 > cellW;
  const top = 24 + (rotate ? Math.min(110, 7 * colChars) : 16);
  return { cell, cellW, left, top, rotate, width: left + fig.cols * cellW + PAD, height: top + fig.rows * cell + PAD };
}

/** Draws the figure on `canvas` (resized to fit) and returns its layout. */
export function drawFigure(canvas, fig) {
  const lay = layoutOf(fig);
  canvas.width = lay.width;
  canvas.height = lay.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, lay.width, lay.height);
  ctx.font = FONT;
  for (let r = 0; r < fig.rows; r++) {
    for (let c = 0; c < fig.cols; c++) {
      const x = lay.left + c * lay.cellW;
      const y = lay.top + r * lay.cell;
      ctx.fillStyle = fig.colour(fig.value(r, c));
      ctx.fillRect(x, y, lay.cellW - 1, lay.cell - 1);
      const text = fig.text?.(r, c);
      if (text) {
        ctx.fillStyle = textColour(fig.colour(fig.value(r, c)));
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(clip(text, lay.cellW), x + lay.cellW / 2, y + lay.cell / 2, lay.cellW - 4);
      }
    }
  }
  ctx.fillStyle = "#1d232a";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  fig.rowLabels.forEach((label, r) => ctx.fillText(label, lay.left - 6, lay.top + r * lay.cell + lay.cell / 2));
  fig.colLabels.forEach((label, c) => {
    const x = lay.left + c * lay.cellW + lay.cellW / 2;
    ctx.save();
    if (lay.rotate) {
      ctx.translate(x, lay.top - 6);
      ctx.rotate(-Math.PI / 3);
      ctx.textAlign = "left";
      ctx.fillText(label, 0, 0);
    } else {
      ctx.textAlign = "center";
      ctx.fillText(label, x, lay.top - 10);
    }
    ctx.restore();
  });
  ctx.textAlign = "left";
  ctx.fillText(fig.axes ?? "", 4, 12);
  return lay;
}

/** The figure as a standalone SVG document (same cells, labels and tooltips as the canvas). */
export function figureSvg(fig) {
  const lay = layoutOf(fig);
  const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${lay.width}" height="${lay.height}" font-family="ui-monospace, monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`, `<title>${esc(fig.title ?? "")}</title>`,
    `<text x="4" y="14">${esc(fig.axes ?? "")}</text>`];
  for (let r = 0; r < fig.rows; r++) {
    for (let c = 0; c < fig.cols; c++) {
      const x = lay.left + c * lay.cellW;
      const y = lay.top + r * lay.cell;
      const fill = fig.colour(fig.value(r, c));
      out.push(`<g class="cell" data-row="${r}" data-col="${c}"><rect x="${x}" y="${y}" width="${lay.cellW - 1}" height="${lay.cell - 1}" fill="${fill}"><title>${esc(fig.tooltip(r, c))}</title></rect>`);
      const text = fig.text?.(r, c);
      if (text) out.push(`<text x="${x + lay.cellW / 2}" y="${y + lay.cell / 2 + 4}" text-anchor="middle" fill="${textColour(fill)}">${esc(clip(text, lay.cellW))}</text>`);
      out.push("</g>");
    }
  }
  fig.rowLabels.forEach((label, r) => out.push(`<text x="${lay.left - 6}" y="${lay.top + r * lay.cell + lay.cell / 2 + 4}" text-anchor="end">${esc(label)}</text>`));
  fig.colLabels.forEach((label, c) => {
    const x = lay.left + c * lay.cellW + lay.cellW / 2;
    out.push(lay.rotate
      ? `<text transform="translate(${x},${lay.top - 6}) rotate(-60)">${esc(label)}</text>`
      : `<text x="${x}" y="${lay.top - 10}" text-anchor="middle">${esc(label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}

/** Hover shows `fig.tooltip` in `tip`; click calls onClick(r, c). Returns a function that detaches. */
export function attachFigure(canvas, tip, fig, lay, onClick) {
  const cellAt = (event) => {
    const rect = canvas.getBoundingClientRect();
    const c = Math.floor((event.clientX - rect.left - lay.left) / lay.cellW);
    const r = Math.floor((event.clientY - rect.top - lay.top) / lay.cell);
    return r >= 0 && c >= 0 && r < fig.rows && c < fig.cols ? { r, c } : undefined;
  };
  const move = (event) => {
    const hit = cellAt(event);
    if (hit === undefined) tip.hidden = true;
    else showTip(tip, fig.tooltip(hit.r, hit.c), event);
  };
  const leave = () => { tip.hidden = true; };
  const click = (event) => {
    const hit = cellAt(event);
    if (hit !== undefined) onClick?.(hit.r, hit.c);
  };
  canvas.addEventListener("mousemove", move);
  canvas.addEventListener("mouseleave", leave);
  canvas.addEventListener("click", click);
  return () => {
    canvas.removeEventListener("mousemove", move);
    canvas.removeEventListener("mouseleave", leave);
    canvas.removeEventListener("click", click);
  };
}

/** Shows `text` in the tooltip element beside the mouse (positioned within the tooltip's container). */
export function showTip(tip, text, event) {
  const box = tip.parentElement.getBoundingClientRect();
  tip.textContent = text;
  tip.style.left = `${event.clientX - box.left + 14}px`;
  tip.style.top = `${event.clientY - box.top + 10}px`;
  tip.hidden = false;
}

/** Blue (−max) … white (0) … red (+max); grey for non-finite values (no path). */
export function diverging(max) {
  return (v) => {
    if (!Number.isFinite(v)) return "#e3e7eb";
    const t = Math.max(-1, Math.min(1, v / (max || 1)));
    const mix = (a, b) => Math.round(a + (b - a) * Math.abs(t));
    return t >= 0 ? `rgb(${mix(247, 178)},${mix(247, 24)},${mix(247, 43)})` : `rgb(${mix(247, 33)},${mix(247, 102)},${mix(247, 172)})`;
  };
}

/** White (0) … purple (max), for attention weights and probabilities. */
export function sequential(max = 1) {
  return (v) => {
    const t = Math.max(0, Math.min(1, v / (max || 1)));
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(255, 84)},${mix(255, 39)},${mix(255, 143)})`;
  };
}

/** The largest |value| of a figure's cells (1e-12 at least), for colour scales. */
export function maxAbs(values) {
  let m = 1e-12;
  for (const v of values) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

function textColour(fill) {
  const [r, g, b] = (fill.match(/\d+/g) ?? [255, 255, 255]).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? "#fff" : "#1d232a";
}

function clip(text, width) {
  const max = Math.max(2, Math.floor((width - 4) / 6.6));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
