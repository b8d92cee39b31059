// The registry of model families: the one place a config.json's model_type is dispatched on.
// Adding a family is one adapter file (see family.ts), its tests, and one line in FAMILIES.

import type { Tensor } from "../../engine/tensor.js";
import type { JsonObject } from "../../io/json.js";
import { writeSafetensors } from "../../io/safetensors.js";
import { ConfigError, type HookedTransformerConfig } from "../config.js";
import type { HfCheckpoint, ModelFamily } from "./family.js";
import { gpt2 } from "./gpt2.js";
import { gptNeox } from "./gpt-neox.js";
import { gemma2 } from "./gemma2.js";
import { llama } from "./llama.js";

export type { HfCheckpoint, HfTensors, ModelFamily, RawTensor } from "./family.js";
export { configFromHfGpt2, convertGpt2Weights, gpt2, gpt2ToHf } from "./gpt2.js";
export { configFromHfGptNeox, convertGptNeoxWeights, gptNeox, gptNeoxToHf } from "./gpt-neox.js";
export { configFromHfGemma2, convertGemma2Weights, gemma2, gemma2ToHf } from "./gemma2.js";
export { configFromHfLlama, convertLlamaWeights, llama, llamaToHf } from "./llama.js";

/** Every supported family. */
export const FAMILIES: readonly ModelFamily[] = [gpt2, gptNeox, llama, gemma2];

/** The model_type of a config.json that has none: early GPT-2 configs were written without one. */
const DEFAULT_MODEL_TYPE = "gpt2";

/**
 * The family of a parsed config.json, by its `model_type` (a config.json without one is GPT-2's).
 *
 * @throws ConfigError naming `model_type` and listing the supported ones when no family reads it
 * @example
 * ```ts
 * familyOf({ model_type: "mistral", ... }).name;   // "llama"
 * familyOf({ model_type: "gemma2" });              // ConfigError: config.json: model_type: "gemma2" is not supported (supported: gpt2, gpt_neox, llama, mistral, qwen2, olmo)
 * ```
 */
export function familyOf(json: JsonObject, file = "config.json"): ModelFamily {
  const type = json["model_type"] ?? DEFAULT_MODEL_TYPE;
  const family = typeof type === "string" ? FAMILIES.find((f) => Object.hasOwn(f.modelTypes, type)) : undefined;
  if (family === undefined) {
    throw new ConfigError(file, "model_type", `${JSON.stringify(type)} is not supported (supported: ${FAMILIES.flatMap((f) => Object.keys(f.modelTypes)).join(", ")})`);
  }
  return family;
}

/**
 * Reads a parsed config.json with the adapter of its model_type.
 *
 * @throws ConfigError naming the field (an unsupported model_type, or what that family refuses)
 * @example
 * ```ts
 * const cfg = configFromHf(await readJsonConfig(openSource("./tiny-llama")));
 * cfg.positionalEmbeddingType;   // "rotary"
 * ```
 */
export function configFromHf(json: JsonObject, file = "config.json"): HookedTransformerConfig {
  return familyOf(json, file).configFromHf(json, file);
}

/**
 * The family whose checkpoints can hold a config, judged by its flags (rotary or learned
 * positions, norm, gated MLP, ...), processed or not.
 *
 * @throws ConfigError when no family fits, with each family's reason
 * @example
 * ```ts
 * familyFor(makeConfig({ nLayers: 1, dModel: 8, nHeads: 2, dVocab: 10, nCtx: 4 })).name;   // "gpt2"
 * ```
 */
export function familyFor(cfg: HookedTransformerConfig): ModelFamily {
  const reasons: string[] = [];
  for (const family of FAMILIES) {
    const mismatch = family.mismatch(cfg);
    if (mismatch === undefined) return family;
    reasons.push(`${family.name}: ${mismatch}`);
  }
  throw new ConfigError("config", "family", `no supported family can hold this config (${reasons.join("; ")})`);
}

/**
 * Unprocessed TransformerLens weights as the files of a Hugging Face checkpoint folder
 * (`config.json` and `model.safetensors`, F32) of their family, so that
 * `HookedTransformer.fromPretrained(files)` rebuilds the same model.
 *
 * @throws ConfigError when no family fits the config; Error when the weights are processed, do
 * not match the config, or hold a bias the family's checkpoints cannot store
 * @example
 * ```ts
 * const raw = await HookedTransformer.fromPretrained("./tiny-llama", { processWeights: false });
 * const files = hfFiles(raw.cfg, raw.weights);      // { "config.json": ..., "model.safetensors": ... }
 * const again = await HookedTransformer.fromPretrained(files, { processWeights: false });
 * ```
 */
export function hfFiles(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): Record<string, Uint8Array> {
  return checkpointFiles(familyFor(cfg).toHf(cfg, weights));
}

/**
 * A checkpoint as the bytes of its folder's files: `config.json` (indented) and `model.safetensors` (F32).
 *
 * @example
 * ```ts
 * const files = checkpointFiles(gpt2ToHf(cfg, weights));
 * await HookedTransformer.fromPretrained(files);
 * ```
 */
export function checkpointFiles({ config, tensors }: HfCheckpoint): Record<string, Uint8Array> {
  return {
    "config.json": new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
    "model.safetensors": writeSafetensors(tensors, { metadata: { format: "pt" } }),
  };
}
