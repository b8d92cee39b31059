import type { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";

/** A cached activation a sweep needs, with an error that says how to get it. */
export function needCached(cache: ActivationCache, which: string, name: string): Tensor {
  if (!cache.has(name)) {
    throw new Error(`${which} lacks ${name}: run runWithCache without a namesFilter, or include this name`);
  }
  return cache.get(name);
}

/** Checks a cached activation has the batch and positions of the tokens being patched. */
export function checkBatch(t: Tensor, name: string, batch: number, pos: number): Tensor {
  if (t.shape[0] !== batch) throw new Error(`cached ${name} has batch ${t.shape[0]} but the corrupted tokens have ${batch} rows`);
  if (name.endsWith("hook_pattern") || name.endsWith("hook_attn_scores") ? t.shape[2] !== pos : t.shape[1] !== pos) {
    throw new Error(`cached ${name} has shape [${t.shape.join(", ")}], which does not fit ${pos} positions`);
  }
  return t;
}
