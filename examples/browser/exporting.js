// Saving a view: its figures as one SVG or one PNG (stacked top to bottom), and its result as JSON.

/** Offers `blob` as a download named `name`. */
export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Stacks standalone SVG documents into one, top to bottom. */
export function stackSvgs(svgs) {
  const sizes = svgs.map((svg) => ({
    width: Number(/width="([\d.]+)"/.exec(svg)?.[1] ?? 0), height: Number(/height="([\d.]+)"/.exec(svg)?.[1] ?? 0),
  }));
  if (svgs.length === 1) return svgs[0];
  const width = Math.max(...sizes.map((s) => s.width));
  let y = 0;
  const parts = svgs.map((svg, i) => {
    const part = svg.replace("<svg ", `<svg y="${y}" `);
    y += sizes[i].height + 12;
    return part;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y - 12}">\n${parts.join("\n")}\n</svg>`;
}

/** Renders an SVG document to a PNG blob (at `scale`). */
export async function svgToPng(svg, scale = 2) {
  const width = Number(/width="([\d.]+)"/.exec(svg)?.[1] ?? 600);
  const height = Number(/height="([\d.]+)"/.exec(svg)?.[1] ?? 400);
  const image = new Image();
  const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  try {
    await new Promise((ok, fail) => { image.onload = ok; image.onerror = () => fail(new Error("the SVG could not be rasterised")); image.src = url; });
    const canvas = document.createElement("canvas");
    canvas.width = Math.ceil(width * scale);
    canvas.height = Math.ceil(height * scale);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    return await new Promise((ok) => canvas.toBlob(ok, "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}
