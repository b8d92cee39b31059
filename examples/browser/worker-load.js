// Loading a model in the page's Web Worker: the embedded demo, a dropped folder, or a
// Hugging Face-layout folder behind a URL (or a hub repository "owner/name"). Weights first,
// then the tokenizer on its own, so a model whose tokenizer cannot load still runs on token ids.

/** Where the worker finds @huggingface/tokenizers: serve.mjs serves it beside the page. */
const TOKENIZER_MODULE = new URL("./vendor/tokenizers.mjs", import.meta.url).href;

/**
 * A model folder: `{ kind: "demo" }`, `{ kind: "files", files: {name: ArrayBuffer} }` or
 * `{ kind: "url", url }`, where url is an http(s) folder or a hub repository "owner/name".
 * Returns { model, name, note } (note: why there is no tokenizer, when there is none).
 */
export async function loadModel(hl, engine, request, { signal, onProgress }) {
  const dtype = request.dtype ?? "f32";
  if (request.kind === "demo") {
    const model = await hl.HookedTransformer.fromPretrained(hl.demoModelFiles(), { engine, dtype, tokenizer: false });
    return { model, name: "demo model (planted induction circuit; token ids, no tokenizer)" };
  }
  let source;
  let name;
  if (request.kind === "files") {
    const files = Object.fromEntries(Object.entries(request.files).map(([file, buf]) => [file, new Uint8Array(buf)]));
    if (files["config.json"] === undefined) throw new Error(`the folder has no config.json (got ${Object.keys(files).join(", ") || "no model files"})`);
    source = hl.bytesSource(files);
    name = request.name ?? "dropped folder";
  } else if (request.kind === "url") {
    ({ source, name } = urlFolder(hl, request.url, { signal, onProgress }));
    await announceSize(source, onProgress);
  } else {
    throw new Error(`unknown model source ${JSON.stringify(request.kind)}`);
  }
  const model = await withSourceHelp(() => hl.HookedTransformer.fromPretrained(source, { engine, dtype, tokenizer: false }));
  let note;
  try {
    model.tokenizer = (await hl.loadTokenizer(source, { importLibrary: () => import(TOKENIZER_MODULE) })) ?? undefined;
    if (model.tokenizer === undefined) note = "the folder has no tokenizer.json or vocab.json + merges.txt: prompts are token ids";
  } catch (e) {
    note = `the tokenizer did not load (${e.message}): prompts are token ids`;
  }
  return { model, name, note };
}

/** A URL folder or a hub repository, checked before anything is fetched. */
function urlFolder(hl, text, options) {
  const url = String(text ?? "").trim();
  if (/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(url)) {
    return { source: hl.hubSource({ repo: url, ...options }), name: url };
  }
  if (!/^https?:\/\//i.test(url)) throw new Error(`a model URL must start with http:// or https:// (or name a hub repository "owner/name"); got ${JSON.stringify(url)}`);
  return { source: hl.urlSource(url, options), name: url };
}

/**
 * Asks for the weight files' sizes (HEAD) before downloading them, and reports the total, so the
 * page can show what it is about to fetch. The model's memory check (from config.json) runs next.
 */
async function announceSize(source, onProgress) {
  const sizeOf = async (file) => {
    const response = await fetch(new URL(file, source.location), { method: "HEAD" }).catch(() => undefined);
    const header = response?.ok ? response.headers.get("content-length") : null;
    return header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  };
  let files = ["model.safetensors"];
  let bytes = await sizeOf("model.safetensors");
  if (bytes === undefined && (await source.exists("model.safetensors.index.json").catch(() => false))) {
    const index = JSON.parse(await source.readText("model.safetensors.index.json"));
    files = [...new Set(Object.values(index.weight_map ?? {}))];
    const sizes = await Promise.all(files.map(sizeOf));
    bytes = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : undefined;
  }
  onProgress({ stage: "size", files, bytes });
}

/** Network failures in a browser are mostly cross-origin refusals: say so. */
async function withSourceHelp(load) {
  try {
    return await load();
  } catch (e) {
    if (e?.name === "ModelSourceError" && e.code === "network_error") {
      throw new Error(`${e.message}. The server did not answer this page: it may refuse cross-origin requests (it must send Access-Control-Allow-Origin), or be unreachable.`);
    }
    throw e;
  }
}
