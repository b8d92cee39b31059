// The page: reads the form, hands the sweep to the Web Worker, shows progress, and draws the
// result as a heatmap (hover for layer.head and score, click for the top paths).
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./sweep-worker.js", import.meta.url), { type: "module" });
const canvas = $("heatmap");
const ctx2d = canvas.getContext("2d");
const LABEL_W = 64;
const LABEL_H = 44;

const page = { state: "loading", cfg: undefined, lastResult: undefined, grid: undefined, lastCircuit: undefined };
window.hooklensPage = page; // read by the browser test

function setState(state, status) {
  page.state = state;
  document.body.dataset.state = state;
  if (status !== undefined) $("status").textContent = status;
  $("run").disabled = state === "running" || state === "loading" || page.cfg === undefined;
  $("circuit-run").disabled = $("run").disabled;
  $("cancel").disabled = state !== "running";
}

// ---- model ------------------------------------------------------------------------------

function loadDemo() {
  setState("loading", "loading the demo model…");
  worker.postMessage({ type: "load", source: "demo", dtype: $("dtype").value });
}

async function loadFiles(fileList) {
  const wanted = new Set(["config.json", "model.safetensors", "tokenizer.json"]);
  const files = {};
  for (const f of fileList) if (wanted.has(f.name)) files[f.name] = await f.arrayBuffer();
  if (!files["config.json"] || !files["model.safetensors"]) {
    setState(page.state === "loading" ? "ready" : page.state, `the folder needs config.json and model.safetensors; got ${[...fileList].map((f) => f.name).join(", ") || "nothing"}`);
    return;
  }
  document.querySelector('input[name="model"]').checked = false;
  setState("loading", "loading the dropped model…");
  const name = fileList[0].webkitRelativePath?.split("/")[0] || "dropped folder";
  worker.postMessage({ type: "load", files, name, dtype: $("dtype").value }, Object.values(files));
}

/** Every File under the dropped entries (folders are walked). */
async function droppedFiles(items) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) out.push(await new Promise((ok, fail) => entry.file(ok, fail)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const entry of [...items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean)) await walk(entry);
  return out;
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  await loadFiles(await droppedFiles(e.dataTransfer.items));
});
$("files").addEventListener("change", (e) => loadFiles(e.target.files));
document.querySelector('input[name="model"]').addEventListener("change", loadDemo);
// The weights' storage applies from the next load: the demo model reloads at once.
$("dtype").addEventListener("change", () => { if (document.querySelector('input[name="model"]').checked) loadDemo(); });

// ---- prompts and options ----------------------------------------------------------------

const idsOf = (text) => text.split(/[\s,]+/).filter(Boolean).map(Number);
const rowsOf = (text) => text.split("\n").map((l) => l.replace(/[[\]]/g, " ").trim()).filter(Boolean).map(idsOf);

function readForm() {
  const clean = rowsOf($("clean").value);
  const corrupted = rowsOf($("corrupted").value);
  const correct = idsOf($("correct").value);
  const incorrect = idsOf($("incorrect").value);
  const { dVocab } = page.cfg;
  const bad = [...clean.flat(), ...corrupted.flat(), ...correct, ...incorrect].find((t) => !Number.isInteger(t) || t < 0 || t >= dVocab);
  if (bad !== undefined) throw new Error(`token ids must be integers in [0, ${dVocab - 1}]; found ${bad}`);
  if (clean.length === 0 || clean.length !== corrupted.length) throw new Error(`clean and corrupted need the same number of prompts (got ${clean.length} and ${corrupted.length})`);
  if (correct.length !== clean.length || incorrect.length !== clean.length) throw new Error(`give one correct and one incorrect id per prompt (${clean.length})`);
  const srcValue = $("src").value;
  const src = srcValue === "all" ? "all" : srcValue.split(".").map(Number);
  return { clean, corrupted, correct, incorrect, src, component: $("component").value, mode: $("mode").value };
}

function fillSources(cfg) {
  const select = $("src");
  select.replaceChildren(new Option("all", "all"));
  for (let l = 0; l < cfg.nLayers - 1; l++) for (let h = 0; h < cfg.nHeads; h++) select.add(new Option(`${l}.${h}`, `${l}.${h}`));
}

/** Reads the form and hands a job to the worker (the form's error on the page instead, if it has one). */
function startJob(status, message) {
  let request;
  try {
    request = readForm();
  } catch (e) {
    setState("ready", e.message);
    return;
  }
  $("progress").value = 0;
  setState("running", status);
  worker.postMessage(message(request));
}

$("run").addEventListener("click", () => startJob("running the sweep in the worker…", (request) => ({ type: "run", ...request })));
$("cancel").addEventListener("click", () => worker.postMessage({ type: "cancel" }));
$("circuit-run").addEventListener("click", () => startJob("finding the circuit in the worker…", ({ clean, corrupted, correct, incorrect }) => ({
  type: "circuit", clean, corrupted, correct, incorrect, options: { method: "eap-ig", steps: 5, verify: 20, target: 0.8 },
})));

// ---- circuit ------------------------------------------------------------------------------

const STAGES = { rank: "ranking every edge (EAP-IG passes)", verify: "patching the top edges exactly", circuit: "circuit runs" };

function showCircuit(found, svg, elapsedMs) {
  page.lastCircuit = found;
  $("circuit").innerHTML = svg; // the library's own drawing: input at the bottom, logits at the top
  const fmt = (x) => (x === undefined ? "" : `${x >= 0 ? "+" : ""}${x.toFixed(4)}`);
  const table = $("circuit-edges");
  table.replaceChildren();
  for (const cells of [["edge", "estimate", "exact"], ...found.edges.map((e) => [`${e.writer} → ${e.reader}`, fmt(e.estimate), fmt(e.exact)])]) {
    const row = table.insertRow();
    for (const text of cells) row.insertCell().textContent = text; // reader names hold "<k>": text, not markup
  }
  $("circuit-summary").textContent = `${found.edges.length} edges, faithfulness ${found.faithfulness.toFixed(3)} ` +
    `(corrupted ${found.baseline.toFixed(4)}, clean ${found.clean.toFixed(4)}); Spearman ρ of estimate and exact ` +
    `${Number.isNaN(found.spearman) ? "n/a" : found.spearman.toFixed(3)}; ${elapsedMs.toFixed(0)} ms`;
  // Hover an edge: its scores (the drawing's own <title> of it) in the page's tooltip.
  const tip = $("circuit-tooltip");
  for (const path of $("circuit").querySelectorAll("svg path")) {
    path.addEventListener("mousemove", (event) => {
      const box = $("circuit-wrap").getBoundingClientRect();
      tip.textContent = path.querySelector("title")?.textContent ?? "";
      tip.style.left = `${event.clientX - box.left + 14}px`;
      tip.style.top = `${event.clientY - box.top + 10}px`;
      tip.hidden = false;
    });
    path.addEventListener("mouseleave", () => { tip.hidden = true; });
  }
}

// ---- heatmap ------------------------------------------------------------------------------

/** Rows and columns of the result: [L, H] → destination layers × heads; [L, H, L, H] → sources × destinations. */
function gridOf(result) {
  const values = result.normalized ?? result.scores;
  const [L, H] = result.shape;
  const heads = Array.from({ length: L * H }, (_, i) => `${Math.floor(i / H)}.${i % H}`);
  const all = result.shape.length === 4;
  return {
    all, values, rows: all ? L * H : L, cols: all ? L * H : H,
    rowLabel: (r) => (all ? heads[r] : `L${r}`),
    colLabel: (c) => (all ? heads[c] : `H${c}`),
    cellName: (r, c) => (all ? `${heads[r]} → ${heads[c]}` : `${result.options.src.join(".")} → ${r}.${c}`),
    index: (r, c) => r * (all ? L * H : H) + c,
    source: (r) => (all ? heads[r] : result.options.src.join(".")),
  };
}

function colour(v, max) {
  const t = Math.max(-1, Math.min(1, v / max));
  const mix = (a, b) => Math.round(a + (b - a) * Math.abs(t));
  return t >= 0 ? `rgb(${mix(247, 178)},${mix(247, 24)},${mix(247, 43)})` : `rgb(${mix(247, 33)},${mix(247, 102)},${mix(247, 172)})`;
}

function draw(result) {
  const grid = gridOf(result);
  const cell = Math.max(14, Math.min(48, Math.floor(560 / Math.max(grid.rows, grid.cols))));
  canvas.width = LABEL_W + grid.cols * cell + 8;
  canvas.height = LABEL_H + grid.rows * cell + 8;
  const max = grid.values.reduce((m, v, i) => (result.noPath?.[i] ? m : Math.max(m, Math.abs(v))), 1e-12);
  ctx2d.fillStyle = "#fff";
  ctx2d.fillRect(0, 0, canvas.width, canvas.height);
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const i = grid.index(r, c);
      ctx2d.fillStyle = result.noPath?.[i] ? "#e3e7eb" : colour(grid.values[i], max);
      ctx2d.fillRect(LABEL_W + c * cell, LABEL_H + r * cell, cell - 1, cell - 1);
    }
  }
  ctx2d.fillStyle = "#1d232a";
  ctx2d.font = "11px ui-monospace, monospace";
  ctx2d.textAlign = "right";
  ctx2d.textBaseline = "middle";
  for (let r = 0; r < grid.rows; r++) ctx2d.fillText(grid.rowLabel(r), LABEL_W - 6, LABEL_H + r * cell + cell / 2);
  ctx2d.textAlign = "center";
  for (let c = 0; c < grid.cols; c++) ctx2d.fillText(grid.colLabel(c), LABEL_W + c * cell + cell / 2, LABEL_H - 10);
  ctx2d.textAlign = "left";
  ctx2d.fillText(grid.all ? "source ↓  destination →" : "layer ↓  head →", 4, 12);
  page.grid = { ...grid, cell, max };
  $("legend").textContent = `colour: normalized effect, blue −${max.toFixed(3)} … white 0 … red +${max.toFixed(3)}; grey: no causal path`;
}

function cellAt(event) {
  const g = page.grid;
  if (!g) return undefined;
  const rect = canvas.getBoundingClientRect();
  const c = Math.floor((event.clientX - rect.left - LABEL_W) / g.cell);
  const r = Math.floor((event.clientY - rect.top - LABEL_H) / g.cell);
  return r >= 0 && c >= 0 && r < g.rows && c < g.cols ? { r, c, i: g.index(r, c) } : undefined;
}

function describe(i) {
  const res = page.lastResult;
  return res.noPath?.[i] ? "no causal path" : `score ${res.scores[i].toFixed(4)}, normalized ${(res.normalized?.[i] ?? NaN).toFixed(4)}`;
}

canvas.addEventListener("mousemove", (event) => {
  const hit = cellAt(event);
  const tip = $("tooltip");
  if (hit === undefined) { tip.hidden = true; return; }
  tip.textContent = `${page.grid.cellName(hit.r, hit.c)}: ${describe(hit.i)}`;
  tip.style.left = `${event.offsetX + 14}px`;
  tip.style.top = `${event.offsetY + 10}px`;
  tip.hidden = false;
});
canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
canvas.addEventListener("click", (event) => {
  const hit = cellAt(event);
  if (hit !== undefined) showTopPaths(hit);
});

/** The ten paths from the clicked cell's source with the largest |normalized| effect. */
function showTopPaths(hit) {
  const g = page.grid;
  const res = page.lastResult;
  const cells = [];
  for (let c = 0; c < g.cols; c++) {
    for (const r of g.all ? [hit.r] : Array.from({ length: g.rows }, (_, k) => k)) {
      const i = g.index(r, c);
      if (!res.noPath?.[i]) cells.push({ r, c, i, v: res.normalized?.[i] ?? res.scores[i] });
    }
  }
  cells.sort((a, b) => Math.abs(b.v) - Math.abs(a.v));
  const rows = cells.slice(0, 10).map(({ r, c, i }) =>
    `<tr class="${i === hit.i ? "picked" : ""}"><td>${g.cellName(r, c)}</td><td>${res.scores[i].toFixed(4)}</td><td>${(res.normalized?.[i] ?? NaN).toFixed(4)}</td></tr>`);
  $("details").innerHTML = `<h2>Top paths from ${g.source(hit.r)}</h2><p class="note">picked: ${g.cellName(hit.r, hit.c)} — ${describe(hit.i)}</p>` +
    `<table><tr><th>path</th><th>score</th><th>normalized</th></tr>${rows.join("")}</table>`;
}

// ---- worker messages ----------------------------------------------------------------------

worker.onmessage = ({ data: m }) => {
  if (m.type === "ready") {
    $("engine").textContent = `Engine: WASM ${m.variant}, ${m.threads} thread${m.threads === 1 ? "" : "s"}.`;
    const p = m.demoPrompts;
    $("clean").value = p.clean.map((row) => row.join(" ")).join("\n");
    $("corrupted").value = p.corrupted.map((row) => row.join(" ")).join("\n");
    $("correct").value = p.correct.join(" ");
    $("incorrect").value = p.incorrect.join(" ");
    loadDemo();
  } else if (m.type === "model") {
    page.cfg = m.cfg;
    fillSources(m.cfg);
    $("model-name").textContent = `${m.name}: ${m.cfg.nLayers} layers × ${m.cfg.nHeads} heads, vocabulary ${m.cfg.dVocab}, context ${m.cfg.nCtx}`;
    setState("ready", "ready");
  } else if (m.type === "progress") {
    $("progress").max = m.total;
    $("progress").value = m.done;
    $("status").textContent = m.stage === undefined ? `patched runs ${m.done} / ${m.total}` : `${STAGES[m.stage] ?? m.stage}: ${m.done} / ${m.total}`;
  } else if (m.type === "circuit") {
    showCircuit(m.found, m.svg, m.elapsedMs);
    $("progress").value = $("progress").max;
    setState("done", "done");
  } else if (m.type === "result") {
    page.lastResult = m.result;
    $("progress").value = $("progress").max;
    draw(m.result);
    $("summary").textContent = `${m.result.op} [${m.result.shape.join(", ")}], ${m.result.options.component} (${m.result.options.mode}): ` +
      `corrupted ${m.result.baseline.toFixed(4)}, clean ${m.result.clean.toFixed(4)}; ${m.elapsedMs.toFixed(0)} ms`;
    setState("done", "done");
  } else if (m.type === "error") {
    setState(page.cfg ? "ready" : "error", m.message);
    if (page.state === "ready" && m.message !== "sweep cancelled") document.body.dataset.state = "error";
  }
};
worker.onerror = (e) => setState("error", `worker failed: ${e.message}`);
worker.postMessage({ type: "init" });
