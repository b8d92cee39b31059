/**
 * The model configuration, named as TransformerLens's HookedTransformerConfig
 * (camelCase), and its derivation from a Hugging Face config.json.
 */

/** Activation function of the MLP. */
export type ActFn = "gelu_new" | "gelu" | "silu";

/**
 * `LN` / `RMS` carry learned weights; `LNPre` / `RMSPre` are what remains after
 * `foldLn` (centring and scaling only).
 */
export type NormalizationType = "LN" | "LNPre" | "RMS" | "RMSPre";

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
  /** SwiGLU MLP: post = act(x @ W_gate) * (x @ W_in). */
  gatedMlp: boolean;
  /** When true, the forward also computes `attn.hook_result` [batch, pos, n_heads, d_model]. */
  useAttnResult: boolean;
  /**
   * When true, each head reads its own copy of the residual stream: `blocks.l.hook_q_input`
   * [batch, pos, nHeads, dModel] and `hook_k_input` / `hook_v_input` [batch, pos, nKeyValueHeads, dModel]
   * (TransformerLens `use_split_qkv_input`). A hook on a copy changes only that head's input.
   */
  useSplitQkvInput?: boolean;
  /** When true, the MLP reads `blocks.l.hook_mlp_in` [batch, pos, dModel], a copy of resid_mid (TransformerLens `use_hook_mlp_in`). */
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

const MAX_DIM = 1 << 20;

/**
 * Reads a Hugging Face GPT-2 config.json (already parsed) into a TransformerLens config.
 * Every size is checked before anything is allocated.
 *
 * @example
 * ```ts
 * const cfg = configFromHfGpt2({ n_layer: 2, n_head: 4, n_embd: 64, n_positions: 32, vocab_size: 100 });
 * cfg.dHead; // 16
 * ```
 */
export function configFromHfGpt2(json: Record<string, unknown>, file = "config.json"): HookedTransformerConfig {
  const size = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > MAX_DIM) {
      throw new ConfigError(file, key, `expected a positive integer ≤ ${MAX_DIM}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const modelType = json["model_type"];
  if (modelType !== undefined && modelType !== "gpt2") {
    throw new ConfigError(file, "model_type", `expected "gpt2", got ${JSON.stringify(modelType)}`);
  }
  const nLayers = size("n_layer");
  const nHeads = size("n_head");
  const dModel = size("n_embd");
  if (dModel % nHeads !== 0) {
    throw new ConfigError(file, "n_head", `n_embd (${dModel}) must be divisible by n_head (${nHeads})`);
  }
  const dMlp = json["n_inner"] === null || json["n_inner"] === undefined ? 4 * dModel : size("n_inner");
  const eps = json["layer_norm_epsilon"] ?? 1e-5;
  if (typeof eps !== "number" || !(eps > 0 && eps < 1)) {
    throw new ConfigError(file, "layer_norm_epsilon", `expected a number in (0, 1), got ${JSON.stringify(eps)}`);
  }
  const act = json["activation_function"] ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu" && act !== "silu") {
    throw new ConfigError(file, "activation_function", `unsupported ${JSON.stringify(act)} (gelu_new, gelu, silu)`);
  }
  for (const flag of ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"]) {
    if (json[flag] === true) throw new ConfigError(file, flag, "true is not supported");
  }
  const dHead = dModel / nHeads;
  const architectures = json["architectures"];
  return {
    nLayers, dModel, nHeads, nKeyValueHeads: nHeads, dHead, dMlp,
    positionalEmbeddingType: "standard", rotaryBase: 10000, gatedMlp: false,
    dVocab: size("vocab_size"),
    nCtx: size("n_positions", json["n_ctx"] as number | undefined),
    actFn: act,
    normalizationType: "LN",
    eps,
    originalArchitecture: Array.isArray(architectures) && typeof architectures[0] === "string" ? architectures[0] : "GPT2LMHeadModel",
    useAttnResult: false,
    attnScale: json["scale_attn_weights"] === false ? 1 : Math.sqrt(dHead),
    processing: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/**
 * Checks a config built by hand (the plain constructor path) and fills derived fields.
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
  const nKeyValueHeads = partial.nKeyValueHeads ?? nHeads;
  if (!Number.isInteger(nKeyValueHeads) || nKeyValueHeads <= 0 || nHeads % nKeyValueHeads !== 0) {
    throw new ConfigError("config", "nKeyValueHeads", `must divide nHeads (${nHeads}), got ${nKeyValueHeads}`);
  }
  return {
    nLayers, dModel, nHeads, nKeyValueHeads, dHead, dVocab, nCtx,
    positionalEmbeddingType: partial.positionalEmbeddingType ?? "standard",
    rotaryBase: partial.rotaryBase ?? 10000,
    gatedMlp: partial.gatedMlp ?? false,
    dMlp: partial.dMlp ?? 4 * dModel,
    actFn: partial.actFn ?? "gelu_new",
    normalizationType: partial.normalizationType ?? "LN",
    eps: partial.eps ?? 1e-5,
    originalArchitecture: partial.originalArchitecture ?? "GPT2LMHeadModel",
    useAttnResult: partial.useAttnResult ?? false,
    attnScale: partial.attnScale ?? Math.sqrt(dHead),
    processing: partial.processing ?? { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/**
 * Reads a Hugging Face LLaMA-family config.json (`LlamaForCausalLM`: RMSNorm, rotary, SwiGLU,
 * grouped-query attention). Variants computed differently (biases, rope scaling, sliding
 * windows, other activations) are refused by name rather than approximated.
 *
 * @example
 * ```ts
 * const cfg = configFromHfLlama({ hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3,
 *   num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, vocab_size: 100 });
 * cfg.nKeyValueHeads; // 2
 * ```
 */
export function configFromHfLlama(json: Record<string, unknown>, file = "config.json"): HookedTransformerConfig {
  const size = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > MAX_DIM) {
      throw new ConfigError(file, key, `expected a positive integer ≤ ${MAX_DIM}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const refuse = (key: string, why: string) => { throw new ConfigError(file, key, `${why} is not supported yet`); };
  if (json["attention_bias"] === true) refuse("attention_bias", "attention with biases");
  if (json["mlp_bias"] === true) refuse("mlp_bias", "an MLP with biases");
  if (json["rope_scaling"] !== undefined && json["rope_scaling"] !== null) refuse("rope_scaling", "rope scaling");
  if (json["use_sliding_window"] === true || (typeof json["sliding_window"] === "number" && json["use_sliding_window"] !== false)) {
    refuse("sliding_window", "sliding-window attention");
  }
  const act = json["hidden_act"] ?? "silu";
  if (act !== "silu") refuse("hidden_act", `activation ${JSON.stringify(act)}`);
  const nLayers = size("num_hidden_layers");
  const dModel = size("hidden_size");
  const nHeads = size("num_attention_heads");
  const nKeyValueHeads = size("num_key_value_heads", nHeads);
  if (nHeads % nKeyValueHeads !== 0) {
    throw new ConfigError(file, "num_key_value_heads", `${nKeyValueHeads} does not divide num_attention_heads (${nHeads})`);
  }
  const dHead = json["head_dim"] === undefined || json["head_dim"] === null ? dModel / nHeads : size("head_dim");
  if (!Number.isInteger(dHead) || dHead % 2 !== 0) {
    throw new ConfigError(file, "head_dim", `the head size must be an even integer for rotary embeddings, got ${dHead}`);
  }
  const eps = json["rms_norm_eps"] ?? 1e-6;
  if (typeof eps !== "number" || !(eps > 0 && eps < 1)) {
    throw new ConfigError(file, "rms_norm_eps", `expected a number in (0, 1), got ${JSON.stringify(eps)}`);
  }
  const theta = json["rope_theta"] ?? 10000;
  if (typeof theta !== "number" || !(theta > 1)) throw new ConfigError(file, "rope_theta", `expected a number > 1, got ${JSON.stringify(theta)}`);
  const architectures = json["architectures"];
  return {
    nLayers, dModel, nHeads, nKeyValueHeads, dHead,
    dMlp: size("intermediate_size"),
    dVocab: size("vocab_size"),
    nCtx: size("max_position_embeddings"),
    actFn: "silu",
    normalizationType: "RMS",
    eps,
    originalArchitecture: Array.isArray(architectures) && typeof architectures[0] === "string" ? architectures[0] : "LlamaForCausalLM",
    positionalEmbeddingType: "rotary",
    rotaryBase: theta,
    gatedMlp: true,
    useAttnResult: false,
    attnScale: Math.sqrt(dHead),
    processing: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/** The config of a Hugging Face config.json, by its model_type (gpt2, llama and LLaMA-shaped types). */
export function configFromHf(json: Record<string, unknown>, file = "config.json"): HookedTransformerConfig {
  const type = json["model_type"];
  if (type === undefined || type === "gpt2") return configFromHfGpt2(json, file);
  if (type === "llama" || type === "mistral") return configFromHfLlama(json, file);
  throw new ConfigError(file, "model_type", `${JSON.stringify(type)} is not supported (gpt2, llama)`);
}
