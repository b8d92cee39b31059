// The page's Web Worker: owns the engine and the model and runs sweeps and circuit discovery, so
// the page stays responsive. Messages in: init, load, run, circuit, cancel. Messages out: ready,
// model, progress, result, circuit, error.
import * as hl from "./hooklens/dist/index.js";

let enginePromise;
let model;
let running;

// Two kernel threads where the page is cross-origin isolated (serve.mjs sends the headers);
// elsewhere the engine says why it runs on one.
const engine = () => (enginePromise ??= hl.Engine.create({ threads: Math.min(2, navigator.hardwareConcurrency || 1) }));
const post = (message) => self.postMessage(message);

async function loadModel(message) {
  const e = await engine();
  if (message.source === "demo") {
    model?.dispose();
    model = await hl.HookedTransformer.fromPretrained(hl.demoModelFiles(), { engine: e, dtype: message.dtype ?? "f32" });
    return "demo model (planted induction circuit)";
  }
  const files = Object.fromEntries(Object.entries(message.files).map(([name, buf]) => [name, new Uint8Array(buf)]));
  model?.dispose();
  model = await hl.HookedTransformer.fromPretrained(files, { engine: e, dtype: message.dtype ?? "f32" });
  return message.name ?? "dropped folder";
}

async function runSweep(message) {
  if (model === undefined) throw new Error("no model loaded");
  const { clean, corrupted, correct, incorrect, src, component, mode } = message;
  const metric = hl.logitDiff({ correct, incorrect });
  const started = performance.now();
  const { cache: cleanCache } = model.runWithCache(clean);
  const { cache: corruptedCache } = model.runWithCache(corrupted);
  running = new AbortController();
  const options = {
    component, mode, signal: running.signal,
    onProgress: (p) => post({ type: "progress", done: p.done, total: p.total }),
  };
  const result = src === "all"
    ? await hl.getActPatchDirectPathAllSources(model, corrupted, cleanCache, corruptedCache, metric, options)
    : await hl.getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { ...options, srcLayer: src[0], srcHead: src[1] });
  return { result: result.toJSON(), elapsedMs: performance.now() - started };
}

/** Rank every edge by EAP-IG, verify the top exactly, keep the smallest faithful circuit, and draw it. */
async function findCircuit(message) {
  if (model === undefined) throw new Error("no model loaded");
  const { clean, corrupted, correct, incorrect, options } = message;
  const metric = hl.logitDiff({ correct, incorrect });
  const started = performance.now();
  const { cache: cleanCache } = model.runWithCache(clean);
  const { cache: corruptedCache } = model.runWithCache(corrupted);
  running = new AbortController();
  const found = await hl.discoverCircuit(model, corrupted, cleanCache, corruptedCache, metric, {
    ...options, signal: running.signal,
    onProgress: (p) => post({ type: "progress", done: p.done, total: p.total, stage: p.stage }),
  });
  const svg = hl.renderCircuitSvg(hl.discoveredCircuitDrawing(found, model.cfg, options.method));
  return { found, svg, elapsedMs: performance.now() - started };
}

self.onmessage = async ({ data: message }) => {
  try {
    if (message.type === "init") {
      post({ type: "ready", demoPrompts: hl.demoPrompts(), variant: (await engine()).variant, threads: (await engine()).threads });
    } else if (message.type === "load") {
      const name = await loadModel(message);
      const { nLayers, nHeads, dVocab, nCtx } = model.cfg;
      post({ type: "model", name, cfg: { nLayers, nHeads, dVocab, nCtx } });
    } else if (message.type === "run") {
      post({ type: "result", ...(await runSweep(message)) });
    } else if (message.type === "circuit") {
      post({ type: "circuit", ...(await findCircuit(message)) });
    } else if (message.type === "cancel") {
      running?.abort();
    }
  } catch (e) {
    post({ type: "error", message: e?.name === "AbortError" ? "sweep cancelled" : String(e?.message ?? e) });
  } finally {
    if (message.type === "run" || message.type === "circuit") running = undefined;
  }
};
