// Loads the model a command names with --model, turning every failure into one line
// that names the folder (exit code 1).

import type { WeightDtype } from "../model/device-weights.js";
import { statSync } from "node:fs";
import { Engine, type BackendName } from "../engine/engine.js";
import { HookedTransformer } from "../model/hooked-transformer.js";
import type { Context } from "./context.js";
import { InputError, InterruptedError, oneLine } from "./errors.js";

export interface LoadModelOptions {
  /** TransformerLens weight processing, as fromPretrained's default (true). */
  processWeights: boolean;
  backend: BackendName;
  /** Kernel threads (default 1). */
  threads?: number;
  /** How the engine stores the weight matrices (default f32). */
  dtype?: WeightDtype;
}

/** A folder path (relative to the context's cwd) or an http(s) URL of a Hugging Face GPT-2 checkpoint. */
export async function loadModel(ctx: Context, model: string, options: LoadModelOptions): Promise<HookedTransformer> {
  const isUrl = /^https?:\/\//i.test(model);
  const source = isUrl ? model : ctx.path(model);
  if (!isUrl) {
    let isDir = false;
    try {
      isDir = statSync(source).isDirectory();
    } catch {
      throw new InputError(`--model: no such folder: ${model}`);
    }
    if (!isDir) throw new InputError(`--model: ${model} is not a folder (give the checkpoint folder holding config.json and model.safetensors)`);
  }
  let engine: Engine;
  try {
    engine = await Engine.create({ backend: options.backend, threads: options.threads ?? 1 });
  } catch (e) {
    throw new InputError(`cannot start the ${options.backend} engine: ${oneLine(e)}`, { cause: e });
  }
  let loaded: HookedTransformer;
  try {
    loaded = await HookedTransformer.fromPretrained(source, { processWeights: options.processWeights, engine, dtype: options.dtype ?? "f32" });
  } catch (e) {
    throw new InputError(`cannot load the model in ${model}: ${oneLine(e)}`, { cause: e });
  }
  // Ctrl-C while loading: stop before any computation starts.
  if (ctx.signal?.aborted) throw new InterruptedError();
  return loaded;
}
