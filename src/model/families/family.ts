import type { Tensor } from "../../engine/tensor.js";
import type { JsonObject } from "../../io/json.js";
import type { TensorToWrite } from "../../io/safetensors.js";
import type { HookedTransformerConfig } from "../config.js";
import type { Weights } from "../weights.js";

/** A tensor as read from a checkpoint: row-major float32 values and their shape. */
export interface RawTensor { readonly shape: readonly number[]; readonly data: Float32Array }

/** Checkpoint tensors by their Hugging Face name, as a Map or a plain object (what the safetensors reader returns). */
export type HfTensors = ReadonlyMap<string, RawTensor> | Readonly<Record<string, RawTensor>>;

/**
 * A Hugging Face checkpoint before serialisation: the config.json object and the tensors of
 * model.safetensors (which may share memory with the weights they came from).
 */
export interface HfCheckpoint {
  config: JsonObject;
  tensors: Record<string, TensorToWrite>;
}

/**
 * One architecture family: everything that differs between, say, GPT-2 and LLaMA checkpoints.
 * The registry (`families/index.ts`) is the only place a `model_type` is dispatched on; the rest of
 * hooklens reads the config flags an adapter sets (positionalEmbeddingType, gatedMlp,
 * normalizationType, actFn, nKeyValueHeads, attnScale, rotaryBase) and never asks which family it runs.
 *
 * Weight processing needs nothing from a family: what foldLn and centerWritingWeights do is decided
 * by the normalization type (LayerNorm centres, RMSNorm does not), which the adapter sets.
 */
export interface ModelFamily {
  /** Short name for messages, e.g. `gpt2`. */
  readonly name: string;
  /** The config.json `model_type` values this family reads, each with the Hugging Face architecture it stands for. */
  readonly modelTypes: Readonly<Record<string, string>>;
  /**
   * Reads a parsed config.json. What the family would compute differently from the checkpoint's
   * own code (biases, rope scaling, sliding windows, ...) is refused by field name, never approximated.
   * The result has passed `checkConfig`.
   */
  configFromHf(json: JsonObject, file?: string): HookedTransformerConfig;
  /** Maps the checkpoint's tensors to TransformerLens names and layouts, checking each shape against `cfg`. */
  weightsFromHf(raw: HfTensors, cfg: HookedTransformerConfig, file?: string): Weights;
  /** Why `cfg` is not a model of this family, naming the field; undefined when it is (processed or not). */
  mismatch(cfg: HookedTransformerConfig): string | undefined;
  /**
   * The inverse of {@link configFromHf} and {@link weightsFromHf}: unprocessed TransformerLens weights
   * as a Hugging Face checkpoint that loads back to the same config and the same weights, bit for bit.
   */
  toHf(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): HfCheckpoint;
}
