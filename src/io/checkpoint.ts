// Loading a checkpoint's weights and JSON config from a model source: a single
// model.safetensors or a sharded one (model.safetensors.index.json + shards).
// Names are returned as stored; mapping them to TransformerLens names is the model's job.

import { ModelFormatError, ModelSourceError } from "./errors.js";
import { describeJson, isJsonObject, parseJsonObject, type JsonObject } from "./json.js";
import { unsafeNameReason } from "./paths.js";
import { readSafetensors, type LoadedTensor } from "./safetensors.js";
import type { ModelSource } from "./model-source.js";

/** The single-file checkpoint name. */
export const SAFETENSORS_FILE = "model.safetensors";
/** The index of a sharded checkpoint. */
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";

/** Weights by stored name (a null-prototype object). */
export type WeightMap = Record<string, LoadedTensor>;

/** Options of {@link loadSafetensorsWeights}. */
export interface LoadWeightsOptions {
  /**
   * Copy F32 tensors out of the file bytes. Off by default: aligned F32 tensors are views of the
   * bytes the source returned, which the built-in sources read fresh (or copy) for each call.
   */
  copy?: boolean;
}

/**
 * Loads every tensor of a checkpoint: `model.safetensors`, or else the shards listed by
 * `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shardFile}}`).
 *
 * Shard names that could leave the folder or URL base (`../x`, `/abs`, `http://other/x`,
 * backslashes) are refused, every tensor of the weight map must be in its shard, and a
 * tensor stored in two shards is refused.
 *
 * @returns tensors by stored name (e.g. `wte.weight` or `transformer.wte.weight`), as float32
 * @throws ModelSourceError if neither file exists or a shard cannot be read
 * @throws ModelFormatError naming the file for malformed files, indexes or shard names
 * @example
 * ```ts
 * const weights = await loadSafetensorsWeights(openSource("./gpt2"));
 * weights[stripPrefix("transformer.wte.weight", "transformer.")];
 * ```
 */
export async function loadSafetensorsWeights(source: ModelSource, options: LoadWeightsOptions = {}): Promise<WeightMap> {
  if (await source.exists(SAFETENSORS_FILE)) {
    return readSafetensors(await source.readFile(SAFETENSORS_FILE), SAFETENSORS_FILE, options).tensors;
  }
  if (!(await source.exists(SAFETENSORS_INDEX_FILE))) {
    throw new ModelSourceError(
      SAFETENSORS_FILE,
      "not_found",
      `neither ${SAFETENSORS_FILE} nor ${SAFETENSORS_INDEX_FILE} is in ${source.location}`,
    );
  }
  const weightMap = parseShardIndex(await source.readFile(SAFETENSORS_INDEX_FILE), SAFETENSORS_INDEX_FILE);
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of weightMap) {
    const list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, [tensor]);
    else list.push(tensor);
  }
  const weights = Object.create(null) as WeightMap;
  const origin = new Map<string, string>();
  for (const [shard, expected] of byShard) {
    const { tensors } = readSafetensors(await source.readFile(shard), shard, options);
    for (const name of expected) {
      if (!(name in tensors)) {
        throw new ModelFormatError(shard, "missing_tensor", `lacks tensor "${name}" that ${SAFETENSORS_INDEX_FILE} places in it`);
      }
    }
    for (const name of Object.keys(tensors)) {
      const first = origin.get(name);
      if (first !== undefined) {
        throw new ModelFormatError(shard, "duplicate_tensor", `holds tensor "${name}" that ${first} holds too`);
      }
      origin.set(name, shard);
      weights[name] = tensors[name]!;
    }
  }
  return weights;
}

/**
 * Validates a sharded-checkpoint index and returns its weight map as tensor → shard file.
 *
 * @param bytes - the index file
 * @param file - its name, for messages
 * @throws ModelFormatError `bad_index` for a malformed index, `unsafe_path` for a shard name that leaves the folder
 */
export function parseShardIndex(bytes: Uint8Array, file: string): Map<string, string> {
  const index = parseJsonObject(bytes, file);
  const { weight_map: weightMap, metadata } = index;
  if (metadata !== undefined && metadata !== null && !isJsonObject(metadata)) {
    throw new ModelFormatError(file, "bad_index", `"metadata" must be an object, got ${describeJson(metadata)}`);
  }
  if (!isJsonObject(weightMap)) {
    throw new ModelFormatError(file, "bad_index", `"weight_map" must be an object of tensor → shard file, got ${describeJson(weightMap)}`);
  }
  const out = new Map<string, string>();
  for (const tensor of Object.keys(weightMap)) {
    const shard = weightMap[tensor];
    if (typeof shard !== "string") {
      throw new ModelFormatError(file, "bad_index", `weight_map["${tensor}"] must be a file name, got ${describeJson(shard)}`);
    }
    const reason = unsafeNameReason(shard);
    if (reason !== undefined) {
      throw new ModelFormatError(file, "unsafe_path", `weight_map["${tensor}"] = ${JSON.stringify(shard)} is refused: the name ${reason}`);
    }
    out.set(tensor, shard);
  }
  if (out.size === 0) throw new ModelFormatError(file, "bad_index", `"weight_map" lists no tensors`);
  return out;
}

/**
 * Reads and parses a JSON object file such as `config.json` into null-prototype objects.
 *
 * @throws ModelSourceError if the file is missing or unreadable
 * @throws ModelFormatError `not_utf8`, `invalid_json`, `forbidden_key` or `not_object`
 * @example
 * ```ts
 * const config = await readJsonConfig(openSource("./gpt2"));
 * config.n_layer;  // 12
 * ```
 */
export async function readJsonConfig(source: ModelSource, name = "config.json"): Promise<JsonObject> {
  return parseJsonObject(await source.readFile(name), name);
}

/**
 * `name` without `prefix` when it starts with it, else `name` unchanged.
 *
 * @example
 * ```ts
 * stripPrefix("transformer.wte.weight", "transformer.");  // "wte.weight"
 * stripPrefix("lm_head.weight", "transformer.");          // "lm_head.weight"
 * ```
 */
export function stripPrefix(name: string, prefix: string): string {
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

/**
 * The tensor `name` of `weights`, checked against the shape the config implies.
 *
 * @param file - the checkpoint file named in errors (default `model.safetensors`)
 * @throws ModelFormatError `missing_tensor` or `shape_mismatch`, naming the tensor, the expected and the actual shape
 * @example
 * ```ts
 * const wte = expectTensor(weights, "wte.weight", [config.vocab_size, config.n_embd]);
 * ```
 */
export function expectTensor(weights: WeightMap, name: string, shape: readonly number[], file = SAFETENSORS_FILE): LoadedTensor {
  const tensor = Object.prototype.hasOwnProperty.call(weights, name) ? weights[name] : undefined;
  if (tensor === undefined) throw new ModelFormatError(file, "missing_tensor", `has no tensor "${name}"`);
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
    throw new ModelFormatError(
      file,
      "shape_mismatch",
      `tensor "${name}" has shape [${tensor.shape.join(", ")}], expected [${shape.join(", ")}] from config.json`,
    );
  }
  return tensor;
}

/**
 * Throws if any weight holds NaN or ±Infinity, naming the first such tensor and element.
 *
 * @param file - the checkpoint file named in the error (default `model.safetensors`)
 * @throws ModelFormatError `non_finite`
 * @example
 * ```ts
 * assertFiniteWeights(await loadSafetensorsWeights(source));
 * ```
 */
export function assertFiniteWeights(weights: WeightMap, file = SAFETENSORS_FILE): void {
  for (const name of Object.keys(weights)) {
    const { data, shape } = weights[name]!;
    for (let i = 0; i < data.length; i++) {
      // x - x is 0 for finite x and NaN for NaN and ±Infinity: one comparison per element.
      const x = data[i]!;
      if (x - x !== 0) {
        throw new ModelFormatError(file, "non_finite", `tensor "${name}" [${shape.join(", ")}] holds ${x} at flat index ${i}`);
      }
    }
  }
}
