/**
 * The model configuration, named as TransformerLens's HookedTransformerConfig (camelCase), and
 * the rules every config must satisfy before the forward pass runs it. Reading a Hugging Face
 * config.json is each family's job (see families/).
 */

/** Activation functions of the MLP (each has its own kernel). */
export const ACT_FNS = ["gelu_new", "gelu", "silu"] as const;
/** Activation function of the MLP. */
export type ActFn = typeof ACT_FNS[number];

/**
 * `LN` / `RMS` carry learned weights; `LNPre` / `RMSPre` are what remains after
 * `foldLn` (centring and scaling only).
 */
export const NORMALIZATION_TYPES = ["LN", "LNPre", "RMS", "RMSPre"] as const;
export type NormalizationType = typeof NORMALIZATION_TYPES[number];

/** Llama 3's rotary scaling (Hugging Face `rope_scaling` of `rope_type` "llama3"). */
export interface RotaryScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface HookedTransformerConfig {
  nLayers: number;
  dModel: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (grouped-query attention when fewer than nHeads; equal for GPT-2). */
  nKeyValueHeads: number;
  dHead: number;
  dMlp: number;
  dVocab: number;
  nCtx: number;
  actFn: ActFn;
  normalizationType: NormalizationType;
  eps: number;
  /** Hugging Face architecture the weights came from, e.g. `GPT2LMHeadModel`. */
  originalArchitecture: string;
  /** `standard`: learned W_pos added to the embedding (GPT-2); `rotary`: rotary q/k (LLaMA). */
  positionalEmbeddingType: "standard" | "rotary";
  /** Rotary base (rope_theta). */
  rotaryBase: number;
  /**
   * Llama 3's rotary frequency scaling (Hugging Face `rope_scaling` with `rope_type: "llama3"`):
   * long wavelengths divided by `factor`, short ones kept, the band between interpolated (see
   * rotaryFrequencies). Absent: plain rotary.
   */
  rotaryScaling?: RotaryScaling;
  /**
   * Partial rotary (GPT-NeoX's `rotary_pct`): only each head's first `rotaryDim` dimensions of q and
   * k are rotated, the rest pass through (TransformerLens `rotary_dim`). Absent: all dHead.
   */
  rotaryDim?: number;
  /**
   * Attention and MLP in parallel (GPT-NeoX's `use_parallel_residual`, TransformerLens
   * `parallel_attn_mlp`): resid_post = resid_pre + attn(ln1(resid_pre)) + mlp(ln2(resid_pre)). The
   * MLP reads resid_pre, so a layer's MLP never sees its own heads, and there is no hook_resid_mid.
   */
  parallelAttnMlp?: boolean;
  /**
   * Which layers use the sliding window (TransformerLens `attn_types`): "local" ones do, "global"
   * ones attend to every earlier position (Gemma-2 alternates, from layer 0). Absent: every layer
   * uses `slidingWindow` when it is set.
   */
  attnTypes?: readonly ("global" | "local")[];
  /**
   * RMSNorms after attention and after the MLP as well as before (Gemma-2's sandwich norms,
   * TransformerLens `use_normalization_before_and_after`): `hook_attn_out` is
   * ln1_post(attention's output), `hook_mlp_out` ln2_post(the MLP's). Their weights
   * (`blocks.l.ln1_post.w`, `ln2_post.w`) act on the sum of every head, so they are never folded.
   */
  postNorms?: boolean;
  /** Attention scores soft-capped before the mask: c · tanh(scores / c) (Gemma-2's `attn_logit_softcapping`). */
  attnSoftcap?: number;
  /** Logits soft-capped: c · tanh(logits / c) (Gemma-2's `final_logit_softcapping`). */
  finalSoftcap?: number;
  /**
   * Sliding-window attention on every layer (Mistral's `sliding_window`): the query at position p
   * reads keys p − slidingWindow + 1 .. p only. Absent: full causal attention.
   */
  slidingWindow?: number;
  /** SwiGLU MLP: post = act(x @ W_gate) * (x @ W_in). */
  gatedMlp: boolean;
  /** When true, the forward also computes `attn.hook_result` [batch, pos, n_heads, d_model]. */
  useAttnResult: boolean;
  /**
   * When true, each head reads its own copy of the residual stream: `blocks.l.hook_q_input`
   * [batch, pos, nHeads, dModel] and `hook_k_input` / `hook_v_input` [batch, pos, nKeyValueHeads, dModel]
   * (TransformerLens `use_split_qkv_input`). A hook on a copy changes only that head's input.
   * Without it the hook points still exist on demand (named exactly); with it `hookNames()` lists
   * them and predicates select them.
   */
  useSplitQkvInput?: boolean;
  /** When true, `hookNames()` lists `blocks.l.hook_mlp_in` [batch, pos, dModel], the MLP's copy of resid_mid (TransformerLens `use_hook_mlp_in`; on demand without it). */
  useHookMlpIn?: boolean;
  /** Attention scores are divided by this (sqrt(dHead) for GPT-2). */
  attnScale: number;
  /** Sets of weight processing already applied (for warnings such as "layer norm is not folded"). */
  processing: { foldLn: boolean; centerWritingWeights: boolean; centerUnembed: boolean; foldValueBiases: boolean };
}

/** Raised when a config is missing a field or holds an impossible value. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly field: string, message: string) {
    super(`${file}: ${field}: ${message}`);
    this.name = "ConfigError";
  }
}

/** The largest size a config may hold (layers, widths, vocabulary, context). */
export const MAX_DIM = 1 << 20;

/**
 * Builds a config by hand: fills every omitted field with GPT-2's choice (learned positions, LayerNorm,
 * gelu_new, an ungated MLP of 4 × dModel, attention scaled by sqrt(dHead)), then checks the whole
 * config with {@link checkConfig}.
 *
 * @throws ConfigError naming the field, for sizes that are not positive integers and for combinations
 * the forward cannot run (e.g. a gated MLP with gelu)
 * @example
 * ```ts
 * const cfg = makeConfig({ nLayers: 2, dModel: 64, nHeads: 4, dVocab: 100, nCtx: 32 });
 * cfg.dHead; // 16
 * makeConfig({ nLayers: 2, dModel: 64, nHeads: 4, dVocab: 100, nCtx: 32, gatedMlp: true, actFn: "gelu" }); // throws
 * ```
 */
export function makeConfig(partial: Partial<HookedTransformerConfig> &
  Pick<HookedTransformerConfig, "nLayers" | "dModel" | "nHeads" | "dVocab" | "nCtx">): HookedTransformerConfig {
  const { nLayers, dModel, nHeads, dVocab, nCtx } = partial;
  for (const [k, v] of Object.entries({ nLayers, dModel, nHeads, dVocab, nCtx })) {
    if (!Number.isInteger(v) || v <= 0 || v > MAX_DIM) throw new ConfigError("config", k, `expected a positive integer ≤ ${MAX_DIM}, got ${v}`);
  }
  const dHead = partial.dHead ?? dModel / nHeads;
  if (!Number.isInteger(dHead) || dHead <= 0) {
    throw new ConfigError("config", "dHead", `d_model (${dModel}) must be divisible by n_heads (${nHeads}) unless dHead is given`);
  }
  return checkConfig({
    nLayers, dModel, nHeads, dHead, dVocab, nCtx,
    nKeyValueHeads: partial.nKeyValueHeads ?? nHeads,
    positionalEmbeddingType: partial.positionalEmbeddingType ?? "standard",
    rotaryBase: partial.rotaryBase ?? 10000,
    ...(partial.rotaryScaling === undefined ? {} : { rotaryScaling: partial.rotaryScaling }),
    ...(partial.slidingWindow === undefined ? {} : { slidingWindow: partial.slidingWindow }),
    ...(partial.rotaryDim === undefined ? {} : { rotaryDim: partial.rotaryDim }),
    ...(partial.parallelAttnMlp ? { parallelAttnMlp: true } : {}),
    ...(partial.attnTypes === undefined ? {} : { attnTypes: partial.attnTypes }),
    ...(partial.postNorms ? { postNorms: true } : {}),
    ...(partial.attnSoftcap === undefined ? {} : { attnSoftcap: partial.attnSoftcap }),
    ...(partial.finalSoftcap === undefined ? {} : { finalSoftcap: partial.finalSoftcap }),
    gatedMlp: partial.gatedMlp ?? false,
    dMlp: partial.dMlp ?? 4 * dModel,
    actFn: partial.actFn ?? "gelu_new",
    normalizationType: partial.normalizationType ?? "LN",
    eps: partial.eps ?? 1e-5,
    originalArchitecture: partial.originalArchitecture ?? "GPT2LMHeadModel",
    useAttnResult: partial.useAttnResult ?? false,
    attnScale: partial.attnScale ?? Math.sqrt(dHead),
    processing: partial.processing ?? { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  });
}

/**
 * Checks that the forward pass can run a config as it stands, and returns it. Every rule the
 * forward relies on is here, so the forward itself checks none: sizes are positive integers,
 * nKeyValueHeads divides nHeads, the enumerations hold known values, a gated MLP uses silu (the
 * SwiGLU kernel is the only gated one), rotary embeddings rotate pairs (an even dHead) with a base
 * above 1, and eps and attnScale are positive and finite. Family adapters and {@link makeConfig}
 * end with it; `HookedTransformer` checks again through `checkWeights`.
 *
 * @param file - names the config in errors (`config` for a hand-built one)
 * @throws ConfigError naming the field, the rule and the value
 * @example
 * ```ts
 * checkConfig({ ...cfg, gatedMlp: true, actFn: "gelu" });
 * // ConfigError: config: actFn: a gated MLP needs "silu" (the SwiGLU kernel), got "gelu"
 * ```
 */
export function checkConfig(cfg: HookedTransformerConfig, file = "config"): HookedTransformerConfig {
  const fail = (field: string, why: string): never => { throw new ConfigError(file, field, why); };
  const sizes = { nLayers: MAX_DIM, dModel: MAX_DIM, nHeads: MAX_DIM, nKeyValueHeads: MAX_DIM, dHead: MAX_DIM, dVocab: MAX_DIM, nCtx: MAX_DIM,
    // HF configs default the MLP width to 4 × d_model.
    dMlp: 4 * MAX_DIM };
  for (const [field, max] of Object.entries(sizes)) {
    const v = cfg[field as keyof typeof sizes];
    if (!Number.isInteger(v) || v <= 0 || v > max) fail(field, `expected a positive integer ≤ ${max}, got ${JSON.stringify(v)}`);
  }
  if (cfg.nHeads % cfg.nKeyValueHeads !== 0) fail("nKeyValueHeads", `must divide nHeads (${cfg.nHeads}), got ${cfg.nKeyValueHeads}`);
  const oneOf = (field: keyof HookedTransformerConfig, allowed: readonly unknown[]) => {
    if (!allowed.includes(cfg[field])) fail(field, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(cfg[field])}`);
  };
  oneOf("actFn", ACT_FNS);
  oneOf("normalizationType", NORMALIZATION_TYPES);
  oneOf("positionalEmbeddingType", ["standard", "rotary"]);
  oneOf("gatedMlp", [true, false]);
  oneOf("useAttnResult", [true, false]);
  if (cfg.gatedMlp && cfg.actFn !== "silu" && cfg.actFn !== "gelu_new") {
    fail("actFn", `a gated MLP needs "silu" (SwiGLU) or "gelu_new" (GeGLU), got ${JSON.stringify(cfg.actFn)}`);
  }
  for (const key of ["attnSoftcap", "finalSoftcap"] as const) {
    const c = cfg[key];
    if (c !== undefined && !(typeof c === "number" && c > 0 && Number.isFinite(c))) fail(key, `expected a finite number > 0, got ${JSON.stringify(c)}`);
  }
  if (cfg.attnTypes !== undefined) {
    const t = cfg.attnTypes;
    if (!Array.isArray(t) || t.length !== cfg.nLayers || t.some((x) => x !== "global" && x !== "local")) {
      fail("attnTypes", `expected one "global" or "local" per layer (${cfg.nLayers}), got ${JSON.stringify(t)}`);
    }
    if (t.includes("local") && cfg.slidingWindow === undefined) fail("attnTypes", "\"local\" layers need slidingWindow");
  }
  if (cfg.postNorms !== undefined) oneOf("postNorms", [true, false]);
  if (cfg.postNorms && cfg.normalizationType !== "RMS" && cfg.normalizationType !== "RMSPre") fail("postNorms", "post-norms are RMSNorms (normalizationType \"RMS\")");
  if (cfg.positionalEmbeddingType === "rotary") {
    if (cfg.dHead % 2 !== 0) fail("dHead", `rotary embeddings rotate pairs of dimensions, so dHead must be even, got ${cfg.dHead}`);
    if (!(cfg.rotaryBase > 1 && Number.isFinite(cfg.rotaryBase))) fail("rotaryBase", `expected a finite number > 1, got ${cfg.rotaryBase}`);
  }
  if (cfg.rotaryDim !== undefined) {
    const r = cfg.rotaryDim;
    if (cfg.positionalEmbeddingType !== "rotary") fail("rotaryDim", "is for rotary embeddings (positionalEmbeddingType \"rotary\")");
    if (!(Number.isInteger(r) && r >= 2 && r % 2 === 0 && r <= cfg.dHead)) fail("rotaryDim", `expected an even integer in [2, dHead = ${cfg.dHead}], got ${JSON.stringify(r)}`);
  }
  if (cfg.parallelAttnMlp !== undefined) oneOf("parallelAttnMlp", [true, false]);
  if (cfg.rotaryScaling !== undefined) {
    const r = cfg.rotaryScaling;
    if (r.type !== "llama3") fail("rotaryScaling", `only type "llama3" is built, got ${JSON.stringify(r.type)}`);
    for (const k of ["factor", "lowFreqFactor", "highFreqFactor", "originalMaxPositionEmbeddings"] as const) {
      if (!(typeof r[k] === "number" && r[k] > 0 && Number.isFinite(r[k]))) fail("rotaryScaling", `${k} must be a finite number > 0, got ${JSON.stringify(r[k])}`);
    }
    if (!(r.highFreqFactor > r.lowFreqFactor)) fail("rotaryScaling", `highFreqFactor (${r.highFreqFactor}) must exceed lowFreqFactor (${r.lowFreqFactor})`);
  }
  if (cfg.slidingWindow !== undefined && !(Number.isInteger(cfg.slidingWindow) && cfg.slidingWindow > 0)) {
    fail("slidingWindow", `expected a positive integer (keys each query reads), got ${JSON.stringify(cfg.slidingWindow)}`);
  }
  if (!(cfg.eps > 0 && Number.isFinite(cfg.eps))) fail("eps", `expected a finite number > 0, got ${cfg.eps}`);
  if (!(cfg.attnScale > 0 && Number.isFinite(cfg.attnScale))) fail("attnScale", `expected a finite number > 0, got ${cfg.attnScale}`);
  if (typeof cfg.originalArchitecture !== "string") fail("originalArchitecture", `expected a string, got ${JSON.stringify(cfg.originalArchitecture)}`);
  return cfg;
}

/** The sliding window of layer `l`'s attention (0: none), from `slidingWindow` and `attnTypes`. */
export function layerWindow(cfg: Pick<HookedTransformerConfig, "slidingWindow" | "attnTypes">, l: number): number {
  if (cfg.slidingWindow === undefined) return 0;
  return cfg.attnTypes === undefined || cfg.attnTypes[l] === "local" ? cfg.slidingWindow : 0;
}
