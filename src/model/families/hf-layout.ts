// Helpers every family adapter shares: typed reads of config.json fields, checked reads of
// checkpoint tensors, and the checks and layout changes of exporting.

import type { Tensor } from "../../engine/tensor.js";
import { ModelFormatError } from "../../io/errors.js";
import type { JsonObject } from "../../io/json.js";
import { ConfigError, MAX_DIM, type HookedTransformerConfig } from "../config.js";
import { checkWeights } from "../weights.js";
import type { HfTensors, ModelFamily, RawTensor } from "./family.js";

/**
 * Typed reads of one parsed config.json; every error is a ConfigError naming the file and the field.
 *
 * @example
 * ```ts
 * const field = hfConfigFields({ n_layer: 2 }, "config.json");
 * field.size("n_layer");           // 2
 * field.size("n_head");            // throws: config.json: n_head: expected a positive integer ≤ 1048576, got undefined
 * ```
 */
export function hfConfigFields(json: JsonObject, file: string) {
  const fail = (key: string, why: string): never => { throw new ConfigError(file, key, why); };
  const size = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > MAX_DIM) {
      return fail(key, `expected a positive integer ≤ ${MAX_DIM}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  return {
    fail,
    size,
    /** A size that may be null or absent, meaning `fallback`. */
    sizeOr: (key: string, fallback: number): number => (json[key] === null || json[key] === undefined ? fallback : size(key)),
    /** A norm epsilon in (0, 1). */
    epsilon(key: string, fallback: number): number {
      const v = json[key] ?? fallback;
      if (typeof v !== "number" || !(v > 0 && v < 1)) return fail(key, `expected a number in (0, 1), got ${JSON.stringify(v)}`);
      return v;
    },
    /** The first entry of `architectures`, or the family's own name for it. */
    architecture(fallback: string): string {
      const list = json["architectures"];
      return Array.isArray(list) && typeof list[0] === "string" ? list[0] : fallback;
    },
    /** A feature computed differently from what the family implements: refused by name. */
    refuse: (key: string, what: string): never => fail(key, `${what} is not supported yet`),
    /** Refuses a config.json of another family (a missing model_type is left to the caller). */
    expectModelType(family: ModelFamily): void {
      const type = json["model_type"];
      const known = Object.keys(family.modelTypes);
      if (type !== undefined && !known.includes(type as string)) {
        fail("model_type", `expected ${known.map((t) => JSON.stringify(t)).join(" or ")} for the ${family.name} family, got ${JSON.stringify(type)}`);
      }
    },
  };
}

/**
 * Checked reads of checkpoint tensors by name. With `prefix`, names that start with it are also
 * found without it (GPT-2's `transformer.` written by save_pretrained).
 *
 * @example
 * ```ts
 * const tensors = hfTensors(raw, "model.safetensors", "transformer.");
 * tensors.take("wte.weight", [V, D]);   // found as wte.weight or transformer.wte.weight
 * ```
 */
export function hfTensors(raw: HfTensors, file: string, prefix?: string) {
  const source: Iterable<[string, RawTensor]> = raw instanceof Map ? raw : Object.entries(raw);
  const byName = new Map<string, RawTensor>();
  for (const [name, t] of source) byName.set(prefix !== undefined && name.startsWith(prefix) ? name.slice(prefix.length) : name, t);
  const checkShape = (name: string, t: RawTensor, shape: readonly number[]) => {
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new ModelFormatError(file, "shape_mismatch", `${name} has shape [${t.shape.join(", ")}] but config.json implies [${shape.join(", ")}]`);
    }
  };
  return {
    names: (): IterableIterator<string> => byName.keys(),
    /** The values of tensor `name`, which must have `shape`. */
    take(name: string, shape: readonly number[]): Float32Array {
      const t = byName.get(name);
      if (t === undefined) {
        throw new ModelFormatError(file, "missing_tensor", `missing tensor ${name}${prefix === undefined ? "" : ` (or ${prefix}${name})`}`);
      }
      checkShape(name, t, shape);
      return t.data;
    },
    /** Like take, for a tensor the checkpoint may leave out. */
    optional(name: string, shape: readonly number[]): Float32Array | undefined {
      const t = byName.get(name);
      if (t !== undefined) checkShape(name, t, shape);
      return t?.data;
    },
  };
}

/** An nn.Linear projection [heads · d, D] (out, in) as TransformerLens's per-head [heads, D, d]. */
export function linearToHeads(src: Float32Array, heads: number, D: number, d: number): Float32Array {
  const out = new Float32Array(heads * D * d);
  for (let h = 0; h < heads; h++) for (let e = 0; e < d; e++) for (let i = 0; i < D; i++) out[(h * D + i) * d + e] = src[(h * d + e) * D + i]!;
  return out;
}

/** The inverse of {@link linearToHeads}: [heads, D, d] -> [heads · d, D]. */
export function headsToLinear(src: Float32Array, heads: number, D: number, d: number): Float32Array {
  const out = new Float32Array(heads * d * D);
  for (let h = 0; h < heads; h++) for (let i = 0; i < D; i++) for (let e = 0; e < d; e++) out[(h * d + e) * D + i] = src[(h * D + i) * d + e]!;
  return out;
}

/** [rows, cols] -> [cols, rows]. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/** Whether the unembedding W_U [D, V] is the embedding W_E [V, D] transposed, bit for bit (a tied checkpoint). */
export function isTiedUnembedding(WE: Float32Array, WU: Float32Array, V: number, D: number): boolean {
  const e = new Uint32Array(WE.buffer, WE.byteOffset, WE.length);
  const u = new Uint32Array(WU.buffer, WU.byteOffset, WU.length);
  for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) if (e[v * D + i] !== u[i * V + v]) return false;
  return true;
}

/** Whether attnScale is the usual sqrt(dHead) (within float rounding). */
export function scalesBySqrtDHead(cfg: HookedTransformerConfig): boolean {
  return Math.abs(cfg.attnScale - Math.sqrt(cfg.dHead)) <= 1e-6 * Math.sqrt(cfg.dHead);
}

/**
 * What every exporter checks first: the config is one of this family's, its weights are unprocessed
 * (the norms still carry their weights: `unprocessed` is "LN" or "RMS"), the weights match it, and
 * the named parameters, which a checkpoint of this family has no tensor for, are all zero.
 */
export function checkExportable(family: ModelFamily, cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>,
  unprocessed: "LN" | "RMS", zeroParameters: readonly string[]): void {
  const who = `${family.name} export`;
  const mismatch = family.mismatch(cfg);
  if (mismatch !== undefined) throw new Error(`${who}: ${mismatch}`);
  if (cfg.normalizationType !== unprocessed) {
    throw new Error(`${who}: cfg.normalizationType must be "${unprocessed}" (unprocessed weights), got ${JSON.stringify(cfg.normalizationType)}`);
  }
  checkWeights(cfg, weights);
  for (const name of zeroParameters) {
    if (weights.get(name)!.data.some((x) => x !== 0)) {
      throw new Error(`${who}: ${name} must be all zeros (a ${family.name} checkpoint has no tensor for it)`);
    }
  }
}
