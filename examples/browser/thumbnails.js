// The attention view's overview: every head's pattern as a small image in a layer × head grid,
// the picked head outlined; and which thumbnail a click landed on.

const GAP = 6;
const LEFT = 36;
const TOP = 20;

/**
 * Draws `grid` ({ rows: layers, cols: heads, size: tokens, pattern(l, h): [size²] }) into a new
 * canvas, white (0) to purple (1). Returns { canvas, layout }; layout locates the thumbnails.
 */
export function drawThumbnails(grid, picked) {
  const canvas = document.createElement("canvas");
  canvas.className = "thumbs";
  canvas.setAttribute("aria-label", "attention patterns of every head (layer × head)");
  const size = Math.max(36, Math.min(72, Math.floor(640 / grid.cols) - GAP));
  const layout = { left: LEFT, top: TOP, size, gap: GAP, rows: grid.rows, cols: grid.cols };
  canvas.width = LEFT + grid.cols * (size + GAP);
  canvas.height = TOP + grid.rows * (size + GAP);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#1d232a";
  for (let l = 0; l < grid.rows; l++) ctx.fillText(`L${l}`, 4, TOP + l * (size + GAP) + size / 2 + 4);
  for (let h = 0; h < grid.cols; h++) ctx.fillText(`H${h}`, LEFT + h * (size + GAP) + size / 2 - 8, 12);
  const P = grid.size;
  const image = ctx.createImageData(P, P);
  const scratch = document.createElement("canvas");
  scratch.width = P;
  scratch.height = P;
  ctx.imageSmoothingEnabled = false;
  for (let l = 0; l < grid.rows; l++) {
    for (let h = 0; h < grid.cols; h++) {
      const pattern = grid.pattern(l, h);
      for (let i = 0; i < P * P; i++) {
        const t = Math.max(0, Math.min(1, pattern[i]));
        image.data.set([Math.round(255 + (84 - 255) * t), Math.round(255 + (39 - 255) * t), Math.round(255 + (143 - 255) * t), 255], i * 4);
      }
      scratch.getContext("2d").putImageData(image, 0, 0);
      const [x, y] = [LEFT + h * (size + GAP), TOP + l * (size + GAP)];
      ctx.drawImage(scratch, x, y, size, size);
      const isPicked = l === picked.layer && h === picked.head;
      ctx.strokeStyle = isPicked ? "#c62828" : "#cfd5dc";
      ctx.lineWidth = isPicked ? 3 : 1;
      ctx.strokeRect(x - 0.5, y - 0.5, size + 1, size + 1);
    }
  }
  return { canvas, layout };
}

/** The { layer, head } under a mouse event on the canvas, or undefined between thumbnails' cells. */
export function thumbnailAt(canvas, layout, event) {
  const rect = canvas.getBoundingClientRect();
  const head = Math.floor((event.clientX - rect.left - layout.left) / (layout.size + layout.gap));
  const layer = Math.floor((event.clientY - rect.top - layout.top) / (layout.size + layout.gap));
  return layer >= 0 && head >= 0 && layer < layout.rows && head < layout.cols ? { layer, head } : undefined;
}

/** The canvas as a standalone SVG (an embedded PNG), for the view's export. */
export function thumbnailsSvg(canvas) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${canvas.width}" height="${canvas.height}"><image width="${canvas.width}" height="${canvas.height}" href="${canvas.toDataURL("image/png")}"/></svg>`;
}
