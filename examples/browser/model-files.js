// A model folder from the page's file input or a drop: the files the loader reads, as bytes.

/** The files of a model folder the page reads (the rest of a dropped folder is ignored). */
export const MODEL_FILES = /^(config\.json|model\.safetensors|model\.safetensors\.index\.json|model-\d+-of-\d+\.safetensors|tokenizer\.json|tokenizer_config\.json|vocab\.json|merges\.txt)$/;

/** { files: {name: ArrayBuffer} } of a File list, or { problem } when it lacks config.json or weights. */
export async function modelFolder(fileList) {
  const files = {};
  for (const f of fileList) if (MODEL_FILES.test(f.name)) files[f.name] = await f.arrayBuffer();
  if (!files["config.json"] || !(files["model.safetensors"] || files["model.safetensors.index.json"])) {
    const got = [...fileList].map((f) => f.name).join(", ") || "nothing";
    return { problem: `the folder needs config.json and model.safetensors (or a sharded index); got ${got}` };
  }
  return { files };
}

/** Every File under dropped entries (folders are walked). */
export async function droppedFiles(items) {
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
