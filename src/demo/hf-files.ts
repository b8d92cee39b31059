import type { Tensor } from "../engine/tensor.js";
import type { HookedTransformerConfig } from "../model/config.js";
import { checkpointFiles, gpt2ToHf } from "../model/families/index.js";

/**
 * Writes TransformerLens-named GPT-2 weights as a Hugging Face checkpoint folder
 * (`config.json` + `model.safetensors`, GPT2LMHeadModel names): the GPT-2 adapter's exporter
 * (`gpt2ToHf`, the inverse of `convertGpt2Weights`), serialised, so
 * `HookedTransformer.fromPretrained(files)` rebuilds the same model.
 *
 * The weights must be unprocessed (normalizationType "LN", they still carry their
 * LayerNorm weights), and `unembed.b_U` must be zero: GPT-2 checkpoints have no slot for it.
 *
 * @example
 * ```ts
 * const { cfg, weights } = buildInductionModelWeights();
 * const files = gpt2HfFiles(cfg, weights);   // { "config.json": ..., "model.safetensors": ... }
 * const model = await HookedTransformer.fromPretrained(files);
 * ```
 */
export function gpt2HfFiles(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): Record<string, Uint8Array> {
  return checkpointFiles(gpt2ToHf(cfg, weights));
}
