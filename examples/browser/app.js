// The page: the model and prompt forms, the view tabs, and drawing what the worker computes.
// Every computation runs in worker.js; this file only reads forms, posts requests and draws.
import { download, stackSvgs, svgToPng } from "./exporting.js";
import { attachFigure, drawFigure, figureSvg, showTip } from "./figure.js";
import { droppedFiles, modelFolder } from "./model-files.js";
import { fromHash, toHash } from "./page-state.js";
import { checkTokens, formItems, renderChips, splitRows } from "./prompts.js";
import { drawThumbnails, thumbnailAt, thumbnailsSvg } from "./thumbnails.js";
import * as views from "./views.js";

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });

/** Everything the page knows; the browser test reads it (window.hooklensPage). */
const page = {
  state: "loading", cfg: undefined, tokenizer: false, view: "patterns",
  // The loaded model's source ({ kind: "demo" | "files" | "url", url? }), and the one being loaded.
  model: { kind: "demo" }, loading: undefined,
  check: undefined, split: undefined, result: undefined, figures: [], exportSvg: undefined,
  lastCircuit: undefined, autoRun: false,
};
window.hooklensPage = page;
/** Resolves once the tokens of the form as it is now are shown (the browser test waits on it). */
page.settled = () => tokensReady;

const IOI = {
  clean: "When Mary and John went to the store, John gave a drink to",
  corrupted: "When Mary and John went to the store, Mary gave a drink to",
  correct: " Mary", incorrect: " John",
};

// ---- state, status and the URL hash ---------------------------------------------------------

function setState(state, status, { error = false } = {}) {
  page.state = state;
  document.body.dataset.state = error ? "error" : state;
  if (status !== undefined) {
    $("status").textContent = status;
    $("status").classList.toggle("error", error);
  }
  const busy = state === "running" || state === "loading";
  $("run").disabled = busy || page.cfg === undefined || !page.check?.ok;
  $("cancel").disabled = !busy || page.cfg === undefined && state !== "loading";
  $("load-url").disabled = busy;
  for (const id of ["export-svg", "export-png", "export-json"]) $(id).disabled = busy || page.result === undefined;
}

function formState() {
  return {
    model: page.model.kind === "url" ? page.model.url : page.model.kind === "demo" ? "demo" : "",
    dtype: $("dtype").value, mode: currentMode(), clean: $("clean").value, corrupted: $("corrupted").value,
    correct: $("correct").value, incorrect: $("incorrect").value, view: page.view, row: $("row").value,
    act: $("act-kind").value, src: $("src").value, component: $("component").value, pmode: $("pmode").value,
    mid: $("lens-mid").checked ? "1" : "", layer: page.picked?.layer, head: page.picked?.head,
  };
}

const saveHash = () => history.replaceState(null, "", toHash(formState()));
const currentMode = () => ($("mode-text").checked ? "text" : "ids");

// ---- model ------------------------------------------------------------------------------------

function load(request, status) {
  page.downloads = {}; // file → bytes received (and announced) of this load
  page.loading = request.kind === "url" ? { kind: "url", url: request.url } : { kind: request.kind };
  $("progress").value = 0;
  setState("loading", status);
  worker.postMessage({ type: "load", request: { ...request, dtype: $("dtype").value } }, request.transfer ?? []);
}

const loadDemo = () => load({ kind: "demo" }, "loading the demo model…");

function loadUrl() {
  const url = $("model-url").value.trim();
  if (url === "") { setState(page.state === "loading" ? "ready" : page.state, "type a model folder URL or a hub repository (owner/name) first", { error: true }); return; }
  $("model-demo").checked = false;
  load({ kind: "url", url }, `fetching ${url}…`);
}

async function loadFiles(fileList) {
  const { files, problem } = await modelFolder(fileList);
  if (problem !== undefined) {
    setState(page.cfg ? "ready" : "error", problem, { error: true });
    return;
  }
  $("model-demo").checked = false;
  const name = fileList[0].webkitRelativePath?.split("/")[0] || "dropped folder";
  load({ kind: "files", files, name, transfer: Object.values(files) }, "loading the dropped model…");
}

function modelLoaded(m) {
  page.model = page.loading;
  page.cfg = m.cfg;
  page.tokenizer = m.tokenizer;
  $("model-name").textContent = `${m.name}: ${m.cfg.nLayers} layers × ${m.cfg.nHeads} heads, d_model ${m.cfg.dModel}, vocabulary ${m.cfg.dVocab}, context ${m.cfg.nCtx}`;
  $("model-note").textContent = m.note ?? "";
  $("mode-text").disabled = !m.tokenizer;
  fillSources(m.cfg);
  if (page.pendingPrompts) {
    setPrompts(page.pendingPrompts);
    page.pendingPrompts = undefined;
  } else if (m.tokenizer) {
    setPrompts({ mode: "text", ...IOI });
  } else if (page.model.kind === "demo") {
    setPrompts(page.demoPrompts);
  } else {
    setPrompts({ mode: "ids", clean: $("clean").value, corrupted: $("corrupted").value, correct: $("correct").value, incorrect: $("incorrect").value });
  }
  setState("ready", "ready");
  refreshTokens();
}

function setPrompts(p) {
  const mode = p.mode === "text" && page.tokenizer ? "text" : "ids";
  $(`mode-${mode}`).checked = true;
  for (const key of ["clean", "corrupted", "correct", "incorrect"]) $(key).value = p[key] ?? "";
}

function fillSources(cfg) {
  const select = $("src");
  const keep = select.value;
  select.replaceChildren(new Option("all", "all"));
  for (let l = 0; l < cfg.nLayers - 1; l++) for (let h = 0; h < cfg.nHeads; h++) select.add(new Option(`${l}.${h}`, `${l}.${h}`));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

// ---- prompts: tokens, chips and the check ------------------------------------------------------

let tokenSeq = 0;
let tokenTimer;
let tokensReady;

/** Asks the worker for the tokens of the form (debounced while typing); resolves when they are shown. */
function refreshTokens(delay = 0) {
  clearTimeout(tokenTimer);
  tokensReady = new Promise((resolve) => {
    tokenTimer = setTimeout(() => {
      if (page.cfg === undefined) { resolve(); return; }
      const form = formItems({ mode: currentMode(), clean: $("clean").value, corrupted: $("corrupted").value, correct: $("correct").value, incorrect: $("incorrect").value });
      const seq = ++tokenSeq;
      page.pendingTokens = { seq, groups: form.groups, resolve };
      worker.postMessage({ type: "tokenize", seq, items: form.items });
    }, delay);
  });
  return tokensReady;
}

function tokensArrived(m) {
  const pending = page.pendingTokens;
  if (pending === undefined || pending.seq !== m.seq) return; // an older request
  page.pendingTokens = undefined;
  const split = splitRows(pending.groups, m.rows);
  page.split = split;
  page.check = checkTokens(split, currentMode());
  renderChips($("clean-chips"), split.clean, split.corrupted);
  renderChips($("corrupted-chips"), split.corrupted, split.clean);
  renderChips($("correct-chips"), split.correct);
  renderChips($("incorrect-chips"), split.incorrect);
  $("prompt-check").textContent = page.check.ok ? `${split.clean.length} prompt pair${split.clean.length === 1 ? "" : "s"} of ${split.clean[0].ids.length} tokens` : page.check.message;
  $("prompt-check").classList.toggle("error", !page.check.ok);
  fillRows(split);
  setState(page.state);
  saveHash();
  pending.resolve();
  if (page.autoRun && page.check.ok && page.state === "ready") {
    page.autoRun = false;
    run();
  }
}

function fillRows(split) {
  const select = $("row");
  const keep = page.pendingRow ?? select.value;
  page.pendingRow = undefined;
  select.replaceChildren();
  for (const group of ["clean", "corrupted"]) {
    split[group].forEach((row, i) => {
      const preview = row.labels ? row.labels.slice(0, 8).join(" ") : "";
      select.add(new Option(`${group} ${i + 1}: ${preview}${row.labels?.length > 8 ? " …" : ""}`, `${group}:${i}`));
    });
  }
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

/** Switching text ↔ ids rewrites the prompts in the other form, from the tokens the page holds. */
async function switchMode(mode) {
  await tokensReady;
  const split = page.split;
  if (split === undefined || Object.values(split).flat().some((r) => r.error !== undefined)) { refreshTokens(); return; }
  if (mode === "ids") {
    const rows = (group) => split[group].map((r) => r.ids.join(" ")).join("\n");
    setPrompts({ mode, clean: rows("clean"), corrupted: rows("corrupted"), correct: rows("correct"), incorrect: rows("incorrect") });
  } else {
    const texts = (group) => split[group].map((r) => r.text ?? "").join("\n");
    setPrompts({ mode, clean: texts("clean"), corrupted: texts("corrupted"), correct: texts("correct"), incorrect: texts("incorrect") });
  }
  refreshTokens();
}

// ---- views -------------------------------------------------------------------------------------

const TITLES = { patterns: "Attention patterns", lens: "Logit lens", act: "Activation patching", direct: "Direct path patching", circuit: "Circuit" };

function selectView(view) {
  page.view = view;
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  for (const box of document.querySelectorAll(".view-options")) box.hidden = !box.dataset.view.split(" ").includes(view);
  $("run").textContent = view === "circuit" ? "Find circuit" : view === "patterns" || view === "lens" ? "Show" : "Run sweep";
  saveHash();
}

/** The worker request of the current view, from the checked tokens and the view's options. */
function viewRequest(tokens) {
  const [group, index] = $("row").value.split(":");
  const batch = group === "corrupted" ? tokens.corrupted : tokens.clean;
  const row = Number(index) || 0;
  switch (page.view) {
    case "patterns": return { tokens: batch, row };
    case "lens": return { tokens: batch, row, correct: tokens.correct, incorrect: tokens.incorrect, inclMid: $("lens-mid").checked };
    case "act": return { ...tokens, kind: $("act-kind").value };
    case "direct": {
      const src = $("src").value;
      return { ...tokens, src: src === "all" ? "all" : src.split(".").map(Number), component: $("component").value, mode: $("pmode").value };
    }
    case "circuit": return { ...tokens, options: { method: "eap-ig", steps: 5, verify: 20, target: 0.8 } };
    default: throw new Error(`unknown view ${page.view}`);
  }
}

async function run() {
  await tokensReady;
  if (!page.check?.ok) { setState("ready", page.check?.message ?? "no prompts", { error: true }); return; }
  $("progress").value = 0;
  setState("running", `${TITLES[page.view]}: computing in the worker…`);
  worker.postMessage({ type: "job", view: page.view, request: viewRequest(page.check.tokens) });
}

/** Draws figure descriptions into #figures, each with hover and click; each figure keeps its canvas layout. */
function showFigures(list) {
  const box = $("figures");
  box.replaceChildren();
  page.figures = list;
  page.detachers?.forEach((f) => f());
  page.detachers = [];
  list.forEach(({ fig, onClick }) => {
    const wrap = document.createElement("div");
    wrap.className = "figure";
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-label", fig.title);
    wrap.append(canvas);
    box.append(wrap);
    const lay = drawFigure(canvas, fig);
    page.detachers.push(attachFigure(canvas, $("tooltip"), fig, lay, onClick));
    fig.layout = lay;
  });
  $("legend").textContent = list.map(({ fig }) => fig.legend).filter(Boolean).join(" · ");
  page.exportSvg = () => stackSvgs(page.figures.map(({ fig }) => figureSvg(fig)));
}

function showResult(view, data, elapsedMs) {
  page.result = { view, data };
  $("view-title").textContent = TITLES[view];
  $("details").replaceChildren();
  $("summary").textContent = "";
  if (view === "patterns") {
    showPatterns(data, page.picked ?? { layer: 0, head: 0 });
    $("summary").textContent = `${data.nLayers} layers × ${data.nHeads} heads on ${data.labels.length} tokens; ${elapsedMs.toFixed(0)} ms. Click a thumbnail for its pattern.`;
  } else if (view === "lens") {
    showFigures([{ fig: views.lensFigure(data) }, { fig: views.lensDiffFigure(data) }]);
    $("summary").textContent = `top tokens of the residual stream before each layer and after the last, prompt ${data.row + 1}; ${elapsedMs.toFixed(0)} ms`;
  } else if (view === "act" || view === "direct") {
    const result = data.result;
    const fig = views.patchFigure(result, data.labels ?? page.split.clean[0].labels);
    showFigures([{ fig, onClick: (r, c) => { $("details").innerHTML = views.topCellsHtml(fig, result, { r, c }); } }]);
    $("summary").textContent = views.patchSummary(result, elapsedMs);
  } else if (view === "circuit") {
    showCircuit(data, elapsedMs);
  }
  saveHash();
}

function showPatterns(data, picked) {
  page.picked = { layer: Math.min(Number(picked.layer) || 0, data.nLayers - 1), head: Math.min(Number(picked.head) || 0, data.nHeads - 1) };
  const { canvas: thumbs, layout } = drawThumbnails(views.patternGrid(data), page.picked);
  const fig = views.patternFigure(data, page.picked.layer, page.picked.head);
  showFigures([{ fig }]);
  $("figures").prepend(thumbs);
  page.thumbs = layout;
  thumbs.addEventListener("click", (event) => {
    const hit = thumbnailAt(thumbs, layout, event);
    if (hit !== undefined) { showPatterns(data, hit); saveHash(); }
  });
  // The export: the thumbnails as an embedded image above the picked head's pattern.
  page.exportSvg = () => stackSvgs([thumbnailsSvg(thumbs), figureSvg(fig)]);
}

function showCircuit(data, elapsedMs) {
  const { found, svg } = data;
  page.lastCircuit = found;
  page.figures = [];
  const box = $("figures");
  box.innerHTML = `<div id="circuit">${svg}</div>`; // the library's own drawing: input at the bottom, logits at the top
  const table = document.createElement("table");
  table.id = "circuit-edges";
  for (const cells of views.circuitTableRows(found)) {
    const row = table.insertRow();
    for (const text of cells) row.insertCell().textContent = text; // reader names hold "<k>": text, not markup
  }
  $("details").replaceChildren(table);
  $("summary").textContent = views.circuitSummary(found, elapsedMs);
  $("legend").textContent = "edges EAP-IG ranks first and exact patching confirms; hover an edge for its scores";
  const tip = $("tooltip");
  for (const path of box.querySelectorAll("svg path")) {
    path.addEventListener("mousemove", (event) => showTip(tip, path.querySelector("title")?.textContent ?? "", event));
    path.addEventListener("mouseleave", () => { tip.hidden = true; });
  }
  page.exportSvg = () => svg;
}

// ---- export and share ------------------------------------------------------------------------

const exportName = (ext) => `hooklens-${page.result.view}.${ext}`;
$("export-svg").addEventListener("click", () => download(exportName("svg"), new Blob([page.exportSvg()], { type: "image/svg+xml" })));
$("export-png").addEventListener("click", async () => download(exportName("png"), await svgToPng(page.exportSvg())));
$("export-json").addEventListener("click", () => download(exportName("json"), new Blob([JSON.stringify(page.result.data, null, 1)], { type: "application/json" })));
$("share").addEventListener("click", async () => {
  saveHash();
  try {
    await navigator.clipboard.writeText(location.href);
    $("status").textContent = "link copied";
  } catch {
    $("status").textContent = `link: ${location.href}`;
  }
});

// ---- wiring ----------------------------------------------------------------------------------

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  await loadFiles(await droppedFiles(e.dataTransfer.items));
});
$("files").addEventListener("change", (e) => loadFiles(e.target.files));
$("model-demo").addEventListener("change", loadDemo);
$("load-url").addEventListener("click", loadUrl);
$("model-url").addEventListener("keydown", (e) => { if (e.key === "Enter") loadUrl(); });
// The weights' storage applies from the next load: the demo model reloads at once.
$("dtype").addEventListener("change", () => { if ($("model-demo").checked) loadDemo(); });
for (const id of ["clean", "corrupted", "correct", "incorrect"]) $(id).addEventListener("input", () => refreshTokens(150));
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", () => switchMode(radio.value));
for (const tab of document.querySelectorAll("#tabs button")) tab.addEventListener("click", () => selectView(tab.dataset.view));
for (const id of ["row", "act-kind", "src", "component", "pmode", "lens-mid"]) $(id).addEventListener("change", saveHash);
$("run").addEventListener("click", run);
$("cancel").addEventListener("click", () => worker.postMessage({ type: "cancel" }));

const STAGES = { rank: "ranking every edge (EAP-IG passes)", verify: "patching the top edges exactly", circuit: "circuit runs" };
const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;

worker.onmessage = ({ data: m }) => {
  if (m.type === "ready") {
    $("engine").textContent = `Engine: WASM ${m.variant}, ${m.threads} thread${m.threads === 1 ? "" : "s"}.`;
    const p = m.demoPrompts;
    page.demoPrompts = { mode: "ids", clean: p.clean.map((r) => r.join(" ")).join("\n"), corrupted: p.corrupted.map((r) => r.join(" ")).join("\n"), correct: p.correct.join(" "), incorrect: p.incorrect.join(" ") };
    startFromHash();
  } else if (m.type === "model") {
    modelLoaded(m);
  } else if (m.type === "tokens") {
    tokensArrived(m);
  } else if (m.type === "progress") {
    if (m.stage === "size") {
      $("status").textContent = m.bytes === undefined ? "downloading the weights (size not announced)…" : `downloading ${m.files.length} weight file${m.files.length === 1 ? "" : "s"}, ${MB(m.bytes)}…`;
    } else if (m.stage === "download") {
      page.downloads[m.file] = { received: m.received, total: m.total };
      if (m.total) { $("progress").max = m.total; $("progress").value = m.received; }
      $("status").textContent = `downloading ${m.file}: ${MB(m.received)}${m.total ? ` / ${MB(m.total)}` : ""}`;
    } else {
      $("progress").max = m.total;
      $("progress").value = m.done;
      $("status").textContent = m.stage === undefined ? `patched runs ${m.done} / ${m.total}` : `${STAGES[m.stage] ?? m.stage}: ${m.done} / ${m.total}`;
    }
  } else if (m.type === "result") {
    $("progress").value = $("progress").max;
    showResult(m.view, m.data, m.elapsedMs);
    setState("done", "done");
  } else if (m.type === "error") {
    setState(page.cfg ? "ready" : "error", m.cancelled ? "cancelled" : m.message, { error: !m.cancelled });
    if (m.cancelled) document.body.dataset.state = "cancelled";
  }
};
worker.onerror = (e) => setState("error", `worker failed: ${e.message}`, { error: true });

/** Restores a shared link's state, then loads its model (the demo when it names none or a dropped folder). */
function startFromHash() {
  const s = fromHash(location.hash);
  if (s.dtype) $("dtype").value = s.dtype;
  if (s.view && TITLES[s.view]) selectView(s.view);
  else selectView("patterns");
  if (s.mid) $("lens-mid").checked = true;
  if (s.layer !== undefined) page.picked = { layer: Number(s.layer), head: Number(s.head ?? 0) };
  if (s.row) page.pendingRow = s.row;
  if (s.clean !== undefined) page.pendingPrompts = { mode: s.mode ?? "ids", clean: s.clean, corrupted: s.corrupted, correct: s.correct, incorrect: s.incorrect };
  page.autoRun = s.view !== undefined && s.clean !== undefined;
  for (const [key, id] of [["act", "act-kind"], ["src", "src"], ["component", "component"], ["pmode", "pmode"]]) {
    if (!s[key]) continue;
    const el = $(id);
    // The source heads are listed once the model is known; the link's one waits in the list until then.
    if (![...el.options].some((o) => o.value === s[key])) el.add(new Option(s[key], s[key]));
    el.value = s[key];
  }
  if (s.model && s.model !== "demo") {
    $("model-url").value = s.model;
    $("model-demo").checked = false;
    load({ kind: "url", url: s.model }, `fetching ${s.model}…`);
  } else {
    loadDemo();
  }
}

worker.postMessage({ type: "init" });
