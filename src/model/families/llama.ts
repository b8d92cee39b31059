// LLaMA (LlamaForCausalLM), Qwen2 (Qwen2ForCausalLM: q/k/v biases), OLMo and Mistral (with its
// sliding window): rotary q/k, RMSNorm, a SwiGLU MLP, grouped-query attention, attention biases where the
// checkpoint has them; nn.Linear weights stored [out, in] and applied as x @ Wᵀ.

import { Tensor } from "../../engine/tensor.js";
import { ModelFormatError } from "../../io/errors.js";
import type { JsonObject } from "../../io/json.js";
import { makeConfig, type HookedTransformerConfig, type RotaryScaling } from "../config.js";
import { kvName, type Weights } from "../weights.js";
import type { HfCheckpoint, HfTensors, ModelFamily } from "./family.js";
import { checkExportable, headsToLinear, hfConfigFields, hfTensors, linearToHeads, isTiedUnembedding, scalesBySqrtDHead, transpose } from "./hf-layout.js";

const ARCHITECTURES = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM", olmo: "OlmoForCausalLM" } as const;

/** OLMo (v1): the LLaMA layout with LayerNorms that have no weight or bias (eps 1e-5). */
const isOlmo = (cfg: Pick<HookedTransformerConfig, "originalArchitecture">) => cfg.originalArchitecture === ARCHITECTURES.olmo;

/**
 * Reads a Hugging Face LLaMA-family config.json (`model_type` llama, qwen2 or mistral: RMSNorm,
 * rotary, SwiGLU, grouped-query attention; attention biases as the checkpoint stores them).
 * Llama 3's `rope_scaling` (`rope_type: "llama3"`) is read; variants computed differently (MLP
 * biases, other rope scalings, Qwen2's layer-dependent sliding windows, other activations) are refused by name rather
 * than approximated.
 *
 * @throws ConfigError naming the field
 * @example
 * ```ts
 * const cfg = configFromHfLlama({ hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3,
 *   num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, vocab_size: 100 });
 * cfg.nKeyValueHeads; // 2
 * configFromHfLlama({ ...json, rope_scaling: { rope_type: "yarn", factor: 4 } });
 * // ConfigError: config.json: rope_scaling: rope scaling of rope_type "yarn" is not supported yet (llama3 is)
 * ```
 */
export function configFromHfLlama(json: JsonObject, file = "config.json"): HookedTransformerConfig {
  const field = hfConfigFields(json, file);
  field.expectModelType(llama);
  if (json["mlp_bias"] === true) field.refuse("mlp_bias", "an MLP with biases");
  const rotaryScaling = ropeScaling(json["rope_scaling"], field);
  const olmo = json["model_type"] === "olmo";
  if (olmo && json["clip_qkv"] !== undefined && json["clip_qkv"] !== null) field.refuse("clip_qkv", "clipping q, k and v");
  // Mistral's window covers every layer; Qwen2's (use_sliding_window) starts at max_window_layers: not built.
  const mistral = json["model_type"] === "mistral";
  let slidingWindow: number | undefined;
  if (mistral && json["sliding_window"] !== undefined && json["sliding_window"] !== null) {
    slidingWindow = field.size("sliding_window");
  } else if (json["use_sliding_window"] === true || (typeof json["sliding_window"] === "number" && json["use_sliding_window"] !== false)) {
    field.refuse("sliding_window", `sliding-window attention for model_type ${JSON.stringify(json["model_type"])}`);
  }
  const act = json["hidden_act"] ?? "silu";
  if (act !== "silu") field.refuse("hidden_act", `activation ${JSON.stringify(act)}`);
  const nHeads = field.size("num_attention_heads");
  const nKeyValueHeads = field.size("num_key_value_heads", nHeads);
  if (nHeads % nKeyValueHeads !== 0) field.fail("num_key_value_heads", `${nKeyValueHeads} does not divide num_attention_heads (${nHeads})`);
  const dModel = field.size("hidden_size");
  const dHead = field.sizeOr("head_dim", dModel / nHeads);
  if (!Number.isInteger(dHead) || dHead % 2 !== 0) {
    field.fail("head_dim", `the head size must be an even integer for rotary embeddings, got ${dHead}`);
  }
  const theta = json["rope_theta"] ?? 10000;
  if (typeof theta !== "number" || !(theta > 1)) field.fail("rope_theta", `expected a number > 1, got ${JSON.stringify(theta)}`);
  return makeConfig({
    nLayers: field.size("num_hidden_layers"), dModel, nHeads, nKeyValueHeads, dHead,
    dMlp: field.size("intermediate_size"),
    dVocab: field.size("vocab_size"),
    nCtx: field.size("max_position_embeddings"),
    // OLMo's parameter-free LayerNorm has its eps fixed at 1e-5 (config.json has no field for it).
    eps: olmo ? 1e-5 : field.epsilon("rms_norm_eps", 1e-6),
    actFn: "silu",
    normalizationType: olmo ? "LN" : "RMS",
    positionalEmbeddingType: "rotary",
    rotaryBase: theta as number,
    ...(rotaryScaling === undefined ? {} : { rotaryScaling }),
    ...(slidingWindow === undefined ? {} : { slidingWindow }),
    gatedMlp: true,
    originalArchitecture: olmo ? ARCHITECTURES.olmo : field.architecture(ARCHITECTURES.llama),
    attnScale: Math.sqrt(dHead),
  });
}

/** A config.json's `rope_scaling`: null/absent, or Llama 3's (its four numbers checked); others refused by name. */
function ropeScaling(value: unknown, field: ReturnType<typeof hfConfigFields>): RotaryScaling | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) field.fail("rope_scaling", `expected an object or null, got ${JSON.stringify(value)}`);
  const r = value as JsonObject;
  const type = r["rope_type"] ?? r["type"];
  if (type !== "llama3") field.refuse("rope_scaling", `rope scaling of rope_type ${JSON.stringify(type)} (llama3 is supported)`);
  const number = (key: string) => {
    const x = r[key];
    if (typeof x !== "number" || !(x > 0) || !Number.isFinite(x)) field.fail("rope_scaling", `${key} must be a number > 0, got ${JSON.stringify(x)}`);
    return x as number;
  };
  const scaling: RotaryScaling = {
    type: "llama3", factor: number("factor"), lowFreqFactor: number("low_freq_factor"), highFreqFactor: number("high_freq_factor"),
    originalMaxPositionEmbeddings: number("original_max_position_embeddings"),
  };
  if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) field.fail("rope_scaling", `high_freq_factor (${scaling.highFreqFactor}) must exceed low_freq_factor (${scaling.lowFreqFactor})`);
  return scaling;
}

/**
 * Maps Hugging Face LLaMA tensors (`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`,
 * ...) to TransformerLens names and layouts: per-head [heads, dModel, dHead] attention matrices
 * (`_W_K`, `_W_V` with grouped-query attention), [in, out] MLP matrices; q/k/v/o biases where the
 * checkpoint has them (Qwen2's q/k/v, LLaMA's with `attention_bias`), else zero. An
 * `lm_head.weight` is the unembedding when present; otherwise it is tied to `embed_tokens`.
 *
 * @throws ModelFormatError `missing_tensor` or `shape_mismatch` naming the tensor, and `unsupported`
 * for MLP biases (which the config reader would have refused as mlp_bias)
 * @example
 * ```ts
 * const weights = convertLlamaWeights(readSafetensors(bytes, "model.safetensors").tensors, cfg);
 * weights.get("blocks.0.mlp.W_gate")!.shape;   // [dModel, dMlp]
 * ```
 */
export function convertLlamaWeights(raw: HfTensors, cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const hf = hfTensors(raw, file);
  for (const name of hf.names()) {
    if (/\.(gate_proj|up_proj|down_proj)\.bias$/.test(name)) {
      throw new ModelFormatError(file, "unsupported", `${name}: MLP biases are not supported yet for LLaMA-family models`);
    }
  }
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));
  const perHead = (src: Float32Array, heads: number) => linearToHeads(src, heads, D, d);

  const embed = hf.take("model.embed_tokens.weight", [V, D]);
  put("embed.W_E", [V, D], embed.slice());
  // A norm's weight (RMSNorm), or OLMo's parameter-free LayerNorm as an identity weight and a zero bias.
  const norm = (name: string, hfName: string) => {
    if (cfg.normalizationType === "LN") {
      put(`${name}.w`, [D], new Float32Array(D).fill(1));
      put(`${name}.b`, [D], new Float32Array(D));
    } else {
      put(`${name}.w`, [D], hf.take(hfName, [D]).slice());
    }
  };
  for (let l = 0; l < nLayers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.`;
    norm(`${b}ln1`, `${h}input_layernorm.weight`);
    put(`${b}attn.W_Q`, [H, D, d], perHead(hf.take(`${h}self_attn.q_proj.weight`, [H * d, D]), H));
    put(`${b}attn.${kvName(cfg, "W_K")}`, [Hk, D, d], perHead(hf.take(`${h}self_attn.k_proj.weight`, [Hk * d, D]), Hk));
    put(`${b}attn.${kvName(cfg, "W_V")}`, [Hk, D, d], perHead(hf.take(`${h}self_attn.v_proj.weight`, [Hk * d, D]), Hk));
    // Biases [heads * d] are head-major: [heads, d] as they are.
    const bias = (name: string, n: number) => hf.optional(name, [n])?.slice() ?? new Float32Array(n);
    put(`${b}attn.b_Q`, [H, d], bias(`${h}self_attn.q_proj.bias`, H * d));
    put(`${b}attn.${kvName(cfg, "b_K")}`, [Hk, d], bias(`${h}self_attn.k_proj.bias`, Hk * d));
    put(`${b}attn.${kvName(cfg, "b_V")}`, [Hk, d], bias(`${h}self_attn.v_proj.bias`, Hk * d));
    // o_proj [D, H*d]: W_O[h, e, i] = o_proj[i, h*d + e], i.e. its transpose viewed [H, d, D].
    put(`${b}attn.W_O`, [H, d, D], transpose(hf.take(`${h}self_attn.o_proj.weight`, [D, H * d]), D, H * d));
    put(`${b}attn.b_O`, [D], bias(`${h}self_attn.o_proj.bias`, D));
    norm(`${b}ln2`, `${h}post_attention_layernorm.weight`);
    put(`${b}mlp.W_gate`, [D, M], transpose(hf.take(`${h}mlp.gate_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.W_in`, [D, M], transpose(hf.take(`${h}mlp.up_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.b_in`, [M], new Float32Array(M));
    put(`${b}mlp.W_out`, [M, D], transpose(hf.take(`${h}mlp.down_proj.weight`, [D, M]), D, M));
    put(`${b}mlp.b_out`, [D], new Float32Array(D));
  }
  norm("ln_final", "model.norm.weight");
  put("unembed.W_U", [D, V], transpose(hf.optional("lm_head.weight", [V, D]) ?? embed, V, D));
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}

/** Every bias a LLaMA-family checkpoint has no tensor for (the MLP's and the unembedding's). */
function biasNames(cfg: HookedTransformerConfig): string[] {
  const names = ["unembed.b_U"];
  for (let l = 0; l < cfg.nLayers; l++) names.push(`blocks.${l}.mlp.b_in`, `blocks.${l}.mlp.b_out`);
  return names;
}

/** The attention biases' names of block l (q, k, v, o). */
function attentionBiasNames(cfg: HookedTransformerConfig, l: number): string[] {
  const a = `blocks.${l}.attn.`;
  return [`${a}b_Q`, `${a}${kvName(cfg, "b_K")}`, `${a}${kvName(cfg, "b_V")}`, `${a}b_O`];
}

/**
 * Unprocessed TransformerLens LLaMA-family weights as a Hugging Face checkpoint: the inverse of
 * {@link configFromHfLlama} and {@link convertLlamaWeights}. The model_type is `mistral` or `qwen2`
 * when the config came from a MistralForCausalLM or Qwen2ForCausalLM, `llama` otherwise. Qwen2 keeps
 * its q/k/v biases; LLaMA writes q/k/v/o biases (`attention_bias: true`) when any is not zero. The
 * unembedding is tied (no `lm_head.weight`, `tie_word_embeddings: true`) exactly when W_U is W_E
 * transposed bit for bit.
 *
 * @throws Error when the config is not LLaMA-shaped, the weights are processed (normalizationType not
 * "RMS") or do not match the config, or a bias is not zero that the checkpoint cannot store (MLP
 * biases; Qwen2's o_proj; any attention bias of Mistral)
 * @example
 * ```ts
 * const raw = await HookedTransformer.fromPretrained("./tiny-llama", { processWeights: false });
 * const { config, tensors } = llamaToHf(raw.cfg, raw.weights);
 * tensors["model.layers.0.self_attn.k_proj.weight"].shape;   // [nKeyValueHeads * dHead, dModel]
 * ```
 */
export function llamaToHf(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): HfCheckpoint {
  const olmo = isOlmo(cfg);
  const norms = ["ln_final", ...Array.from({ length: cfg.nLayers }, (_, l) => [`blocks.${l}.ln1`, `blocks.${l}.ln2`]).flat()];
  checkExportable(llama, cfg, weights, olmo ? "LN" : "RMS", [...biasNames(cfg), ...(olmo ? norms.map((n) => `${n}.b`) : [])]);
  if (olmo) {
    for (const n of norms) {
      if (weights.get(`${n}.w`)!.data.some((x) => x !== 1)) throw new Error(`llama export: ${n}.w must be all ones (an OLMo checkpoint's norms have no weight)`);
    }
  }
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const get = (name: string): Float32Array => weights.get(name)!.data; // present: checkExportable checked every name
  const tensors: HfCheckpoint["tensors"] = {};
  const put = (name: string, shape: number[], data: Float32Array) => { tensors[name] = { shape, data }; };
  const fused = (src: Float32Array, heads: number) => headsToLinear(src, heads, D, d);

  put("model.embed_tokens.weight", [V, D], get("embed.W_E"));
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    const h = `model.layers.${l}.`;
    if (!olmo) put(`${h}input_layernorm.weight`, [D], get(`${b}ln1.w`));
    put(`${h}self_attn.q_proj.weight`, [H * d, D], fused(get(`${b}attn.W_Q`), H));
    put(`${h}self_attn.k_proj.weight`, [Hk * d, D], fused(get(`${b}attn.${kvName(cfg, "W_K")}`), Hk));
    put(`${h}self_attn.v_proj.weight`, [Hk * d, D], fused(get(`${b}attn.${kvName(cfg, "W_V")}`), Hk));
    put(`${h}self_attn.o_proj.weight`, [D, H * d], transpose(get(`${b}attn.W_O`), H * d, D)); // W_O [H, d, D] read as [H*d, D]
    if (!olmo) put(`${h}post_attention_layernorm.weight`, [D], get(`${b}ln2.w`));
    put(`${h}mlp.gate_proj.weight`, [M, D], transpose(get(`${b}mlp.W_gate`), D, M));
    put(`${h}mlp.up_proj.weight`, [M, D], transpose(get(`${b}mlp.W_in`), D, M));
    put(`${h}mlp.down_proj.weight`, [D, M], transpose(get(`${b}mlp.W_out`), M, D));
  }
  if (!olmo) put("model.norm.weight", [D], get("ln_final.w"));
  const tied = isTiedUnembedding(get("embed.W_E"), get("unembed.W_U"), V, D);
  if (!tied) put("lm_head.weight", [V, D], transpose(get("unembed.W_U"), D, V));

  const [modelType, architecture] = Object.entries(ARCHITECTURES).find(([, a]) => a === cfg.originalArchitecture) ??
    ["llama", ARCHITECTURES.llama];
  // Attention biases: Qwen2 always stores q/k/v (and has no o_proj bias); LLaMA stores all four when any is set.
  const nonZero = (name: string) => get(name).some((x) => x !== 0);
  const anyAttentionBias = Array.from({ length: nLayers }, (_, l) => attentionBiasNames(cfg, l)).flat().some(nonZero);
  for (let l = 0; l < nLayers; l++) {
    const [bq, bk, bv, bo] = attentionBiasNames(cfg, l);
    const h = `model.layers.${l}.self_attn.`;
    if (modelType === "qwen2" || (modelType === "llama" && anyAttentionBias)) {
      put(`${h}q_proj.bias`, [H * d], get(bq!));
      put(`${h}k_proj.bias`, [Hk * d], get(bk!));
      put(`${h}v_proj.bias`, [Hk * d], get(bv!));
    }
    if (modelType === "llama" && anyAttentionBias) put(`${h}o_proj.bias`, [D], get(bo!));
    else if (nonZero(bo!)) throw new Error(`${bo}: a ${architecture} checkpoint has no o_proj bias; this one is not zero`);
    if (modelType === "mistral" && [bq!, bk!, bv!].some(nonZero)) throw new Error(`blocks.${l}.attn: a MistralForCausalLM checkpoint has no attention biases`);
  }
  const config: JsonObject = {
    architectures: [architecture],
    model_type: modelType,
    hidden_size: D,
    intermediate_size: M,
    num_hidden_layers: nLayers,
    num_attention_heads: H,
    num_key_value_heads: Hk,
    head_dim: d,
    hidden_act: "silu",
    max_position_embeddings: nCtx,
    ...(olmo ? { clip_qkv: null } : { rms_norm_eps: cfg.eps }),
    rope_theta: cfg.rotaryBase,
    rope_scaling: cfg.rotaryScaling === undefined ? null : {
      rope_type: "llama3", factor: cfg.rotaryScaling.factor, low_freq_factor: cfg.rotaryScaling.lowFreqFactor,
      high_freq_factor: cfg.rotaryScaling.highFreqFactor, original_max_position_embeddings: cfg.rotaryScaling.originalMaxPositionEmbeddings,
    },
    mlp_bias: false,
    tie_word_embeddings: tied,
    vocab_size: V,
  };
  if (modelType === "llama") config["attention_bias"] = anyAttentionBias;
  // Transformers' MistralConfig defaults sliding_window to 4096 when the field is absent.
  if (modelType === "mistral" || modelType === "qwen2") config["sliding_window"] = cfg.slidingWindow ?? null;
  else if (cfg.slidingWindow !== undefined) throw new Error(`llama export: a ${architecture} checkpoint has no sliding window (slidingWindow ${cfg.slidingWindow})`);
  if (modelType === "qwen2") config["use_sliding_window"] = false;
  return { config, tensors };
}

/** The LLaMA adapter (model_type `llama`, `qwen2`, `olmo` and `mistral`). */
export const llama: ModelFamily = {
  name: "llama",
  modelTypes: ARCHITECTURES,
  configFromHf: configFromHfLlama,
  weightsFromHf: convertLlamaWeights,
  toHf: llamaToHf,
  mismatch(cfg) {
    if (cfg.positionalEmbeddingType !== "rotary") return `positionalEmbeddingType is ${JSON.stringify(cfg.positionalEmbeddingType)}; LLaMA uses rotary embeddings ("rotary")`;
    const norms = isOlmo(cfg) ? ["LN", "LNPre"] : ["RMS", "RMSPre"];
    if (!norms.includes(cfg.normalizationType)) {
      return `normalizationType is ${JSON.stringify(cfg.normalizationType)}; ${isOlmo(cfg) ? "OLMo uses a parameter-free LayerNorm (\"LN\")" : "LLaMA uses RMSNorm (\"RMS\")"}`;
    }
    if (!cfg.gatedMlp || cfg.actFn !== "silu") return `LLaMA's MLP is gated with silu, got gatedMlp ${cfg.gatedMlp} with actFn ${JSON.stringify(cfg.actFn)}`;
    if (!scalesBySqrtDHead(cfg)) return `attnScale must be sqrt(dHead) (${Math.sqrt(cfg.dHead)}) for LLaMA, got ${cfg.attnScale}`;
    if (cfg.parallelAttnMlp) return "parallelAttnMlp is true; LLaMA runs attention, then the MLP";
    if (cfg.postNorms || cfg.attnSoftcap !== undefined || cfg.finalSoftcap !== undefined) return "LLaMA has no post-norms or soft-capping";
    if (cfg.rotaryDim !== undefined && cfg.rotaryDim !== cfg.dHead) return `rotaryDim is ${cfg.rotaryDim}; LLaMA rotates all ${cfg.dHead} dimensions`;
    return undefined;
  },
};
