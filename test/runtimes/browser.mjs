// The Chromium test: Debian's chromium driven by playwright-core. Runs the smoke suite inside
// the page's origin, then uses the page as a person would (Run, wait, hover, click) and
// returns the numbers it read, plus whether the heatmap was drawn; then finds the circuit in the
// circuit view and hovers its edge into the logits.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** `chromium` is playwright-core's export; `url` serves the page with the package under /hooklens/. */
export async function runBrowser({ chromium, executablePath, url, smokeSource, screenshot }) {
  const userDataDir = mkdtempSync(join(tmpdir(), "hooklens-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1180, height: 860 },
  });
  const errors = [];
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    // The smoke module is served from the page's own origin, beside the package.
    await page.route("**/__smoke/smoke.mjs", (route) => route.fulfill({ contentType: "text/javascript", body: smokeSource }));
    await page.goto(url);
    const smoke = await page.evaluate(async () => {
      const hl = await import("/hooklens/dist/index.js");
      const { smoke } = await import("/__smoke/smoke.mjs");
      return smoke(hl, await hl.Engine.create());
    });

    // The page: demo model and demo prompts are preloaded; run the all-sources k sweep.
    await page.waitForFunction(() => document.body.dataset.state === "ready", null, { timeout: 60_000 });
    await page.selectOption("#src", "all");
    await page.selectOption("#component", "k");
    await page.selectOption("#mode", "linear");
    await page.click("#run");
    await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state), null, { timeout: 120_000 });
    const state = await page.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById("status").textContent }));
    if (state.state !== "done") throw new Error(`the page's sweep ended in ${state.state}: ${state.status}`);
    const pageResult = await page.evaluate(() => window.hooklensPage.lastResult);
    const prompts = await page.evaluate(() => ({
      clean: document.getElementById("clean").value, corrupted: document.getElementById("corrupted").value,
    }));

    // What the canvas shows: distinct colours inside the grid, and the colour of two cells.
    const drawn = await page.evaluate(() => {
      const g = window.hooklensPage.grid;
      const canvas = document.getElementById("heatmap");
      const ctx = canvas.getContext("2d");
      const colours = new Set();
      const img = ctx.getImageData(64, 44, g.cols * g.cell, g.rows * g.cell).data;
      for (let i = 0; i < img.length; i += 4) colours.add(`${img[i]},${img[i + 1]},${img[i + 2]}`);
      const at = (r, c) => Array.from(ctx.getImageData(64 + c * g.cell + g.cell / 2, 44 + r * g.cell + g.cell / 2, 1, 1).data.slice(0, 3));
      return { rows: g.rows, cols: g.cols, cell: g.cell, distinctColours: colours.size, at: { planted: at(2, 5), noPath: at(5, 1) } };
    });

    // Hover over the planted path (source 0.2 -> destination 1.1) and click it.
    const box = await page.locator("#heatmap").boundingBox();
    const cx = box.x + 64 + 5 * drawn.cell + drawn.cell / 2;
    const cy = box.y + 44 + 2 * drawn.cell + drawn.cell / 2;
    await page.mouse.move(cx, cy);
    const tooltip = await page.locator("#tooltip").textContent();
    await page.mouse.click(cx, cy);
    const topPath = await page.locator("#details tr.picked td").first().textContent();
    const firstTop = await page.locator("#details tr td").first().textContent();
    // The circuit view: find the circuit, read what the page shows, hover the edge into the logits.
    await page.click("#circuit-run");
    await page.waitForFunction(() => window.hooklensPage.lastCircuit !== undefined || document.body.dataset.state === "error", null, { timeout: 180_000 });
    const found = await page.evaluate(() => window.hooklensPage.lastCircuit);
    if (found === undefined) throw new Error(`the circuit view ended in ${await page.evaluate(() => document.getElementById("status").textContent)}`);
    const circuit = { edges: found.edges, metric: found.metric, faithfulness: found.faithfulness };
    const circuitEdges = (await page.locator("#circuit-edges tr td:first-child").allTextContents()).slice(1); // after the header
    // A point of the curve that the curve itself is on top at (its bounding box's centre may lie under a node).
    const mid = await page.evaluate(() => {
      const path = [...document.querySelectorAll("#circuit svg path")].find((p) => p.querySelector("title")?.textContent.startsWith("a1.h1 → logits"));
      path.scrollIntoView({ block: "center" });
      for (const f of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {
        const point = path.getPointAtLength(path.getTotalLength() * f).matrixTransform(path.getScreenCTM());
        if (document.elementFromPoint(point.x, point.y) === path) return { x: point.x, y: point.y };
      }
      return undefined;
    });
    if (mid === undefined) throw new Error("no point of the edge a1.h1 → logits is on top in the circuit drawing");
    await page.mouse.move(mid.x, mid.y);
    const circuitTooltip = await page.locator("#circuit-tooltip").textContent();
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const engineText = await page.locator("#engine").textContent();
    const isolated = await page.evaluate(() => globalThis.crossOriginIsolated === true);
    return { smoke, pageResult, prompts, drawn, tooltip, topPath, firstTop, errors, engineText, isolated, circuit, circuitEdges, circuitTooltip };
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}
