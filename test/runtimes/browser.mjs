// The Chromium test: Debian's chromium driven by playwright-core. Runs the smoke suite inside
// the page's origin, then uses the explorer as a person would: each view on the demo model
// (Run, hover, click, export, Cancel), bad files and bad URLs, then a GPT-2-shaped model with a
// tokenizer loaded from a URL, an IOI pair typed as text, and a shared link opened anew. Every
// number the page shows is compared with Node's (`expected`, from runtime-smoke.mjs --patch).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareSmoke } from "./compare.mjs";
import { IOI_TEXT } from "./text-model.mjs";

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Console messages that are the network's, not the page's: a refused or missing file is logged by Chromium itself. */
const NETWORK_NOISE = /Failed to load resource|Access-Control-Allow-Origin|CORS|net::ERR_/;

/**
 * `chromium` is playwright-core's export; `url` serves the page with the package under /hooklens/
 * and the text model under /models/tiny-gpt2-text/. Returns { smoke, checks: [{name, ok, detail}],
 * errors } (checks in the order they ran); screenshots of the views go to `screenshotDir`.
 */
export async function runBrowser({ chromium, executablePath, url, smokeSource, screenshotDir, expected }) {
  const userDataDir = mkdtempSync(join(tmpdir(), "hooklens-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 }, acceptDownloads: true,
  });
  const errors = [];
  const checks = [];
  const check = (name, ok, detail) => checks.push({ name, ok: Boolean(ok), detail });
  const compare = (name, actual, wanted) => {
    const [c] = compareSmoke({ answer: actual }, { answer: wanted });
    check(name, c.ok, c.detail);
    return c.ok;
  };
  const watch = (page) => {
    page.on("pageerror", (e) => errors.push(`uncaught: ${e}`));
    page.on("console", (m) => { if (m.type() === "error" && !NETWORK_NOISE.test(m.text())) errors.push(`console: ${m.text()}`); });
  };
  if (screenshotDir) mkdirSync(screenshotDir, { recursive: true });
  const shoot = (page, name) => (screenshotDir ? page.screenshot({ path: join(screenshotDir, name), fullPage: true }) : undefined);
  let smoke;
  try {
    const page = context.pages()[0] ?? await context.newPage();
    watch(page);
    // The smoke module is served from the page's own origin, beside the package.
    await page.route("**/__smoke/smoke.mjs", (route) => route.fulfill({ contentType: "text/javascript", body: smokeSource }));
    await page.goto(url);
    smoke = await page.evaluate(async () => {
      const hl = await import("/hooklens/dist/index.js");
      const { smoke } = await import("/__smoke/smoke.mjs");
      return smoke(hl, await hl.Engine.create());
    });
    const ui = pageDriver(page);
    await ui.waitFor(["ready"], 60_000);
    check("threads", await page.evaluate(() => globalThis.crossOriginIsolated === true) && /2 threads/.test(await page.locator("#engine").textContent()),
      `the page says ${JSON.stringify(await page.locator("#engine").textContent())}`);

    // ---- the demo model (token ids) ----
    await ui.run("patterns");
    compare("attention: patterns", await ui.data(), expected.views.demoPatterns);
    // Click the thumbnail of L1H1, then hover its pattern at (destination 20, source 11).
    const thumbs = await page.evaluate(() => window.hooklensPage.thumbs);
    await page.locator("#figures canvas.thumbs").scrollIntoViewIfNeeded();
    const box = await page.locator("#figures canvas.thumbs").boundingBox();
    await page.mouse.click(box.x + thumbs.left + 1 * (thumbs.size + thumbs.gap) + thumbs.size / 2, box.y + thumbs.top + 1 * (thumbs.size + thumbs.gap) + thumbs.size / 2);
    const picked = await page.evaluate(() => window.hooklensPage.picked);
    const tip = await ui.hoverCell(20, 11);
    const want = expected.views.demoPatterns.patterns[1][1][20 * 21 + 11];
    const shown = Number(/: (-?[\d.]+)$/.exec(tip)?.[1]);
    check("attention: click and hover", picked.layer === 1 && picked.head === 1 && tip.startsWith("L1H1: ") && Math.abs(shown - want) <= 1e-4,
      `picked L${picked.layer}H${picked.head}; hover ${JSON.stringify(tip)} (Node: ${want.toFixed(4)})`);
    await shoot(page, "explorer-attention.png");

    await ui.run("lens");
    compare("logit lens (demo)", await ui.data(), expected.views.demoLens);
    await ui.run("act", { "#act-kind": "resid_pre" });
    compare("activation patching: resid_pre", (await ui.data()).result, expected.views.demoAct);
    await shoot(page, "explorer-activation-patching.png");

    // Direct path: the sweep the old page ran, its colours, hover and click.
    await ui.run("direct", { "#src": "all", "#component": "k", "#pmode": "linear" });
    compare("direct path: page sweep", (await ui.data()).result, expected.page);
    const drawn = await page.evaluate(() => {
      const fig = window.hooklensPage.figures[0].fig;
      const g = { rows: fig.rows, cols: fig.cols, cell: fig.layout.cell, left: fig.layout.left, top: fig.layout.top };
      const canvas = document.querySelector("#figures canvas");
      const ctx = canvas.getContext("2d");
      const colours = new Set();
      const img = ctx.getImageData(g.left, g.top, g.cols * g.cell, g.rows * g.cell).data;
      for (let i = 0; i < img.length; i += 4) colours.add(`${img[i]},${img[i + 1]},${img[i + 2]}`);
      const at = (r, c) => Array.from(ctx.getImageData(g.left + c * g.cell + g.cell / 2, g.top + r * g.cell + g.cell / 2, 1, 1).data.slice(0, 3));
      return { ...g, distinctColours: colours.size, planted: at(2, 5), noPath: at(5, 1) };
    });
    const grey = drawn.noPath.every((x, i) => Math.abs(x - [227, 231, 235][i]) <= 2);
    const red = drawn.planted[0] > 150 && drawn.planted[1] < 100 && drawn.planted[2] < 100;
    check("direct path: heatmap drawn", drawn.rows === 8 && drawn.cols === 8 && drawn.distinctColours >= 3 && grey && red,
      `${drawn.rows}×${drawn.cols} cells of ${drawn.cell}px, ${drawn.distinctColours} colours; planted cell rgb(${drawn.planted}), no-path cell rgb(${drawn.noPath})`);
    const i = ((0 * 4 + 2) * 2 + 1) * 4 + 1; // source 0.2 → destination 1.1
    const pathTip = await ui.hoverCell(2, 5);
    const pathScore = Number(/score (-?[\d.]+)/.exec(pathTip)?.[1]);
    check("direct path: hover", pathTip.startsWith("0.2 → 1.1") && Math.abs(pathScore - expected.page.scores[i]) <= 1e-4, JSON.stringify(pathTip));
    await ui.clickCell(2, 5);
    const topPath = await page.locator("#details tr.picked td").first().textContent();
    const firstTop = await page.locator("#details tr td").first().textContent();
    check("direct path: click, top paths", topPath === "0.2 → 1.1" && firstTop === "0.2 → 1.1", `picked ${topPath}, strongest ${firstTop}`);
    await shoot(page, "explorer-direct-path.png");

    // Export: the SVG has a cell per entry, the JSON is the result, the PNG is a PNG.
    const svg = (await ui.download("#export-svg")).toString("utf8");
    const json = JSON.parse((await ui.download("#export-json")).toString("utf8"));
    const png = await ui.download("#export-png");
    const cells = svg.match(/<g class="cell"/g)?.length ?? 0;
    check("export: SVG, PNG, JSON", cells === 64 && svg.includes("0.2 → 1.1: score") && png.subarray(1, 4).toString() === "PNG" && png.length > 2000 &&
      compareSmoke({ a: json.result }, { a: expected.page })[0].ok, `SVG ${cells} cells, PNG ${png.length} bytes, JSON op ${json.result?.op}`);

    // Circuit: found as Node finds it; hover the edge into the logits.
    await ui.run("circuit", {}, 180_000);
    const found = await page.evaluate(() => window.hooklensPage.lastCircuit);
    const circuitEdges = (await page.locator("#circuit-edges tr td:first-child").allTextContents()).slice(1); // after the header
    const mid = await page.evaluate(() => {
      const path = [...document.querySelectorAll("#circuit svg path")].find((p) => p.querySelector("title")?.textContent.startsWith("a1.h1 → logits"));
      path.scrollIntoView({ block: "center" });
      for (const f of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {
        const point = path.getPointAtLength(path.getTotalLength() * f).matrixTransform(path.getScreenCTM());
        if (document.elementFromPoint(point.x, point.y) === path) return { x: point.x, y: point.y };
      }
      return undefined;
    });
    let circuitTip = "";
    if (mid !== undefined) {
      await page.mouse.move(mid.x, mid.y);
      circuitTip = await page.locator("#tooltip").textContent();
    }
    const [circuit] = compareSmoke({ a: { edges: found.edges, metric: found.metric, faithfulness: found.faithfulness } }, { a: expected.circuit });
    const planted = ["input → a0.h2<v>", "a0.h2 → a1.h1<k>", "a1.h1 → logits"].every((e) => circuitEdges.includes(e));
    check("circuit view", circuit.ok && planted && /^a1\.h1 → logits: effect \+\d/.test(circuitTip),
      `${circuit.detail}; drawn edges ${circuitEdges.join(", ")}; hover ${JSON.stringify(circuitTip)}`);
    await shoot(page, "explorer-circuit.png");

    // Cancel: start the circuit search again (about a second of work) and stop it at once; the
    // worker sees the request at the search's next yield to its event loop.
    await page.click("#run");
    await page.click("#cancel");
    await ui.waitFor(["cancelled", "done", "error"], 60_000);
    const after = await ui.state();
    check("cancel", after.state === "cancelled" && after.status === "cancelled" && !(await page.locator("#run").isDisabled()), JSON.stringify(after));

    // ---- bad input: a message on the page, the loaded model kept ----
    // The file input takes a folder: one holding a malformed config.json and a three-byte safetensors file.
    const badFolder = join(userDataDir, "bad-model");
    mkdirSync(badFolder);
    writeFileSync(join(badFolder, "config.json"), "{ not json");
    writeFileSync(join(badFolder, "model.safetensors"), Buffer.from([1, 2, 3]));
    await page.setInputFiles("#files", badFolder);
    await ui.waitFor(["error"], 30_000);
    const badFile = await ui.state();
    check("bad file", /config\.json/.test(badFile.status) && await page.evaluate(() => window.hooklensPage.cfg.nLayers === 2), badFile.status);
    for (const [name, target, pattern] of [
      ["bad URL: 404", `${url}models/nope/`, /config\.json: not found at .*HTTP 404/],
      ["bad URL: cross-origin refused", `${url.replace("127.0.0.1", "localhost")}models/tiny-gpt2-text/`, /cross-origin/],
      ["bad URL: not a URL", "ftp:/nowhere", /must start with http:\/\/ or https:\/\//],
      ["too large: refused from config.json", `${url}models/too-big/`, /models\/too-big\/: its weights need about \d+\.\d GiB of WASM memory as f32, more than the 4 GiB.*bf16/],
    ]) {
      const result = await ui.loadUrl(target);
      check(name, result.state === "error" && pattern.test(result.status), result.status);
    }

    // ---- a GPT-2-shaped model with a tokenizer, from a URL, and an IOI pair as text ----
    const loaded = await ui.loadUrl(`${url}models/tiny-gpt2-text/`);
    const textMode = await page.evaluate(() => document.getElementById("mode-text").checked && window.hooklensPage.tokenizer);
    const downloads = await page.evaluate(() => window.hooklensPage.downloads);
    const weights = downloads["model.safetensors"];
    check("URL model with tokenizer, download progress", loaded.state === "ready" && textMode && weights?.total > 0 && weights.received === weights.total,
      `${loaded.status}; ${await page.locator("#model-name").textContent()}; progress ${JSON.stringify(downloads)}`);
    await ui.fillPrompts(IOI_TEXT);
    const chipIds = async (box) => (await page.locator(`#${box} .chip small`).allTextContents()).map(Number);
    const t = expected.views.textTokens;
    const chipsOk = JSON.stringify(await chipIds("clean-chips")) === JSON.stringify(t.clean) && JSON.stringify(await chipIds("corrupted-chips")) === JSON.stringify(t.corrupted)
      && JSON.stringify(await chipIds("correct-chips")) === JSON.stringify([t.correct]);
    const differs = await page.locator("#corrupted-chips .chip.differs").allTextContents();
    check("text prompts: token chips", chipsOk && differs.length === 1 && differs[0].startsWith("·Mary"), `clean ids ${await chipIds("clean-chips")}; differing ${differs}`);
    await ui.fillPrompts({ ...IOI_TEXT, corrupted: `${IOI_TEXT.corrupted} a` });
    const lengthMessage = await page.locator("#prompt-check").textContent();
    await ui.fillPrompts({ ...IOI_TEXT, correct: "Mary" });
    const answerMessage = await page.locator("#prompt-check").textContent();
    check("text prompts: checks", /has 15 tokens but corrupted prompt 1 has 16; they first differ at token 10: ·John vs ·Mary/.test(lengthMessage)
      && /correct answer 1 is 4 tokens/.test(answerMessage) && await page.locator("#run").isDisabled(), `${lengthMessage} / ${answerMessage}`);
    await ui.fillPrompts(IOI_TEXT);
    await ui.run("patterns");
    compare("text: attention patterns", await ui.data(), expected.views.textPatterns);
    await ui.run("act", { "#act-kind": "head_out_all_pos" });
    compare("text: activation patching (head outputs)", (await ui.data()).result, expected.views.textAct);
    await ui.run("lens");
    compare("text: logit lens", await ui.data(), expected.views.textLens);
    await shoot(page, "explorer-logit-lens.png");

    // The link: a new tab opened on it loads the model and shows the same view and numbers.
    const link = page.url();
    const shared = await context.newPage();
    watch(shared);
    await shared.goto(link);
    await shared.waitForFunction(() => window.hooklensPage?.result?.view === "lens" || document.body.dataset.state === "error", null, { timeout: 60_000 });
    const sharedData = await shared.evaluate(() => window.hooklensPage.result?.data);
    compare("shared link", sharedData, expected.views.textLens);
    await shared.close();
  } catch (e) {
    // The checks so far stand; the step that broke is one more failed check.
    check(`stopped after ${checks.at(-1)?.name ?? "the start"}`, false, String(e?.message ?? e).split("\n")[0]);
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  return { smoke, checks, errors };
}

/** The page's controls, as a person uses them. */
function pageDriver(page) {
  const ui = {
    waitFor: (states, timeout = 120_000) => page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout }),
    state: () => page.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById("status").textContent })),
    data: () => page.evaluate(() => window.hooklensPage.result.data),
    /** Opens a view's tab, sets its options, runs it and waits; throws with the page's status if it fails. */
    async run(view, options = {}, timeout = 120_000) {
      await page.click(`#tabs button[data-view="${view}"]`);
      for (const [selector, value] of Object.entries(options)) await page.selectOption(selector, value);
      await page.click("#run");
      await ui.waitFor(["done", "error"], timeout);
      const s = await ui.state();
      if (s.state !== "done") throw new Error(`the ${view} view ended in ${s.state}: ${s.status}`);
    },
    /** Hovers cell (r, c) of the view's first figure (not the thumbnails); the tooltip's text. */
    async hoverCell(r, c) {
      const point = await ui.cellPoint(r, c);
      await page.mouse.move(point.x, point.y);
      return page.locator("#tooltip").textContent();
    },
    async clickCell(r, c) {
      const point = await ui.cellPoint(r, c);
      await page.mouse.click(point.x, point.y);
    },
    async cellPoint(r, c) {
      const canvas = page.locator("#figures canvas:not(.thumbs)").first();
      await canvas.scrollIntoViewIfNeeded();
      const lay = await page.evaluate(() => window.hooklensPage.figures[0].fig.layout);
      const b = await canvas.boundingBox();
      return { x: b.x + lay.left + c * lay.cellW + lay.cellW / 2, y: b.y + lay.top + r * lay.cell + lay.cell / 2 };
    },
    async download(button) {
      const [file] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
      return readFileSync(await file.path());
    },
    async loadUrl(target) {
      await page.fill("#model-url", target);
      await page.click("#load-url");
      await page.waitForFunction(() => document.body.dataset.state !== "loading", null, { timeout: 60_000 });
      return ui.state();
    },
    /** Types the prompts as text and waits for the page's tokens of them. */
    async fillPrompts(p) {
      for (const key of ["clean", "corrupted", "correct", "incorrect"]) await page.fill(`#${key}`, p[key]);
      await page.evaluate(() => window.hooklensPage.settled());
    },
  };
  return ui;
}
