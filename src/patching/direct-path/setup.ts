// A direct path sweep's options, checked, and what every part of the sweep shares: the
// destination heads, the corrupted prompts and the record its result carries.
import type { HookedTransformerConfig } from "../../model/config.js";
import type { HookedTransformer } from "../../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../../model/tokens.js";
import type { Metric } from "../metrics.js";
import type { SweepOptions } from "../sweep-types.js";

/** Which input of the destination head receives the source head's output. */
export type DirectPathComponent = "q" | "k" | "v";

/** How a patch changes the destination's input; see {@link DirectPathOptions.mode}. */
export type DirectPathMode = "linear" | "exact";

export interface DirectPathOptions extends SweepOptions {
  /** Query, key or value input of the destination heads. */
  component: DirectPathComponent;
  /**
   * `linear` (default, TransformerLens): add (delta / corrupted ln1 scale) @ W_c to the
   * destination's q/k/v, holding its layer-norm scale at the corrupted value.
   * `exact`: recompute the destination's layer norm on corrupted resid_pre + delta.
   */
  mode?: DirectPathMode;
}

export interface DirectPathAllSourcesOptions extends DirectPathOptions {
  /**
   * Only these paths (a shard of the sweep): `[srcLayer, srcHead]` into every later layer, or
   * `[srcLayer, srcHead, dstLayer]` into one layer. Scores of the paths left out stay 0.
   */
  sources?: readonly DirectPathSource[];
}

export interface DirectPathSingleOptions extends DirectPathOptions {
  srcLayer: number;
  srcHead: number;
}

/** A source head `[srcLayer, srcHead]`, and optionally the one destination layer it is patched into. */
export type DirectPathSource = readonly [number, number, number?];

/** What a direct path result records of its options (functions and signals left out). */
export interface DirectPathRecord {
  component: DirectPathComponent;
  mode: DirectPathMode;
  strategy: "planned" | "naive";
  src?: [number, number];
  weights: string;
}

/** A direct path sweep's checked options and the shapes its parts share. */
export interface DirectPathSetup {
  model: HookedTransformer;
  component: DirectPathComponent;
  mode: DirectPathMode;
  /**
   * Destination heads per layer: query heads for `q`; key/value heads for `k` and `v` (with
   * grouped-query attention each is read by nHeads / nKeyValueHeads query heads).
   */
  destHeads: number;
  /** The corrupted prompts, `batch` rows of `pos` token ids. */
  tokens: number[][];
  batch: number;
  pos: number;
  record: DirectPathRecord;
}

/** Checks a direct path sweep's options (before any work) and returns what its parts share. */
export function directPathSetup(model: HookedTransformer, corruptedTokens: TokenIds, metric: Metric,
  options: DirectPathOptions): DirectPathSetup {
  const cfg = model.cfg;
  const component = options.component;
  if (component !== "q" && component !== "k" && component !== "v") {
    throw new Error(`component must be "q", "k" or "v", got ${JSON.stringify(component)}`);
  }
  const mode = options.mode ?? "linear";
  if (mode !== "linear" && mode !== "exact") throw new Error(`mode must be "linear" or "exact", got ${JSON.stringify(mode)}`);
  if (typeof metric !== "function") throw new Error("metric must be a function from logits to a number");
  if (mode === "linear") warnUnfoldedLinear(model);
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  return {
    model, component, mode,
    destHeads: component === "q" ? cfg.nHeads : cfg.nKeyValueHeads,
    tokens: Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P))),
    batch: B,
    pos: P,
    record: { component, mode, strategy: options.strategy ?? "planned", weights: describeProcessing(cfg) },
  };
}

/** Throws unless `value` is an integer in [0, size). */
export function checkIndex(name: string, value: number, size: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= size) {
    throw new Error(`${name} must be an integer in [0, ${size - 1}], got ${value}`);
  }
}

/** Checks an all-sources sweep's `sources` against the model's layers and heads. */
export function checkSources(sources: readonly DirectPathSource[], nLayers: number, nHeads: number): void {
  sources.forEach(([sl, sh, dl], i) => {
    checkIndex(`sources[${i}][0] (source layer)`, sl, nLayers);
    checkIndex(`sources[${i}][1] (source head)`, sh, nHeads);
    if (dl !== undefined && (!Number.isInteger(dl) || dl <= sl || dl >= nLayers)) {
      throw new Error(`sources[${i}][2] (destination layer) must be an integer in [${sl + 1}, ${nLayers - 1}], got ${dl}`);
    }
  });
}

/**
 * What linear mode computes on a model whose layer norm is not folded, when that differs from
 * the linear scores of the same model with foldLn; undefined where it does not. The increment
 * is (delta / s) @ W_c with the model's own W_Q/W_K/W_V (patch-values.ts). An RMSNorm has no
 * centring and its weight is applied to delta there: the reference's formula on unprocessed
 * weights, the same scores as folded. A LayerNorm's linear change is (delta - mean(delta)) / s * w;
 * folding builds both the centring and w into W_c, unfolded weights leave them out.
 */
export function unfoldedLinearWarning(cfg: Readonly<HookedTransformerConfig>): string | undefined {
  if (cfg.processing.foldLn || cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre") return undefined;
  const leftOut = cfg.normalizationType === "LN" ? "ln1's weight and the centring of delta" : "the centring of delta";
  return "hooklens: linear direct path patching on a model whose LayerNorm is not folded: the scores use " +
    `(delta / s) @ W_Q/W_K/W_V with the unfolded weights, which leaves out ${leftOut} (foldLn builds them into the weights), ` +
    "so they differ from the linear scores of the same model loaded with foldLn (fromPretrained's default). " +
    "Use mode \"exact\", which folding does not change, or load with foldLn.";
}

const warnedUnfolded = new WeakSet<HookedTransformer>();

/** Prints {@link unfoldedLinearWarning} once per model. */
function warnUnfoldedLinear(model: HookedTransformer): void {
  const warning = unfoldedLinearWarning(model.cfg);
  if (warning === undefined || warnedUnfolded.has(model)) return;
  warnedUnfolded.add(model);
  console.warn(warning);
}

/** The weight processing the model has had, as TransformerLens names its steps. */
function describeProcessing(cfg: Readonly<HookedTransformerConfig>): string {
  const p = cfg.processing;
  const steps = [p.foldLn && "fold_ln", p.centerWritingWeights && "center_writing_weights", p.centerUnembed && "center_unembed",
    p.foldValueBiases && "fold_value_biases"].filter(Boolean);
  return steps.length ? steps.join("+") : "unprocessed";
}
