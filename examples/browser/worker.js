// The page's Web Worker: owns the engine and the model, and runs every view's computation
// (analyses.js), so the page stays responsive. One job at a time; Cancel aborts it.
//   in:  init | load {request} | tokenize {seq, items} | job {view, request} | cancel
//   out: ready | model | tokens | progress | result | error
import * as hl from "./hooklens/dist/index.js";
import * as analyses from "./analyses.js";
import { loadModel } from "./worker-load.js";

let enginePromise;
let model;
let running;

// Two kernel threads where the page is cross-origin isolated (serve.mjs sends the headers);
// elsewhere the engine says why it runs on one.
const engine = () => (enginePromise ??= hl.Engine.create({ threads: Math.min(2, navigator.hardwareConcurrency || 1) }));
const post = (message) => self.postMessage(message);
const progress = (p) => post({ type: "progress", ...p });

function needModel() {
  if (model === undefined) throw new Error("no model loaded");
  return model;
}

/** Each item: {text, bos} (encoded with the tokenizer, BOS prepended when asked) or {ids}; labels (and text, with a tokenizer) for every row. */
function tokenize(items) {
  const m = needModel();
  return items.map((item) => {
    try {
      let ids = item.ids;
      if (item.text !== undefined) {
        if (m.tokenizer === undefined) throw new Error("this model has no tokenizer: give token ids");
        ids = m.tokenizer.encode(item.text);
        if (item.bos && m.tokenizer.bosTokenId !== undefined) ids = [m.tokenizer.bosTokenId, ...ids];
      }
      const word = ids.find((t) => typeof t !== "number");
      if (word !== undefined) throw new Error(`"${word}" is not a token id${m.tokenizer === undefined ? " (this model has no tokenizer: type ids)" : " (switch to text to type words)"}`);
      const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= m.cfg.dVocab);
      if (bad !== undefined) throw new Error(`token id ${bad} is outside the vocabulary [0, ${m.cfg.dVocab - 1}]`);
      // The text of id rows too (without a leading BOS), so the page can switch ids → text.
      const bos = m.tokenizer?.bosTokenId;
      const text = item.text ?? m.tokenizer?.decode(ids.length > 1 && ids[0] === bos ? ids.slice(1) : ids);
      return { ids, labels: analyses.tokenLabels(m, ids), text };
    } catch (e) {
      return { error: e.message };
    }
  });
}

const JOBS = {
  patterns: (m, r) => analyses.attentionPatterns(hl, m, r),
  lens: (m, r) => analyses.logitLens(hl, m, r),
  act: (m, r, o) => analyses.activationPatching(hl, m, { ...r, ...o }),
  direct: (m, r, o) => analyses.directPath(hl, m, { ...r, ...o }),
  circuit: (m, r, o) => analyses.findCircuit(hl, m, { ...r, ...o }),
};

self.onmessage = async ({ data: message }) => {
  try {
    if (message.type === "init") {
      const e = await engine();
      post({ type: "ready", demoPrompts: hl.demoPrompts(), variant: e.variant, threads: e.threads });
    } else if (message.type === "load") {
      running = new AbortController();
      const loaded = await loadModel(hl, await engine(), message.request, { signal: running.signal, onProgress: (p) => progress({ stage: p.stage ?? "download", ...p }) });
      model?.dispose();
      model = loaded.model;
      const { nLayers, nHeads, dVocab, nCtx, dModel } = model.cfg;
      post({ type: "model", name: loaded.name, note: loaded.note, cfg: { nLayers, nHeads, dVocab, nCtx, dModel }, tokenizer: model.tokenizer !== undefined });
    } else if (message.type === "tokenize") {
      post({ type: "tokens", seq: message.seq, rows: tokenize(message.items) });
    } else if (message.type === "job") {
      const job = JOBS[message.view];
      if (job === undefined) throw new Error(`unknown view ${JSON.stringify(message.view)}`);
      running = new AbortController();
      const started = performance.now();
      const data = await job(needModel(), message.request, { signal: running.signal, onProgress: progress });
      post({ type: "result", view: message.view, data, elapsedMs: performance.now() - started });
    } else if (message.type === "cancel") {
      running?.abort();
    }
  } catch (e) {
    const cancelled = e?.name === "AbortError";
    post({ type: "error", during: message.type, cancelled, message: cancelled ? "cancelled" : String(e?.message ?? e) });
  } finally {
    if (message.type === "job" || message.type === "load") running = undefined;
  }
};
