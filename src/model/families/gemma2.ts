// Gemma-2 (Gemma2ForCausalLM): RMSNorm with (1 + w), four norms a layer (before and after attention
// and the MLP), embeddings scaled by √d_model, a GeGLU MLP (gelu in its tanh form), attention scaled
// by query_pre_attn_scalar, attention and final-logit soft-capping, a sliding window on the even
// layers, head_dim independent of d_model / n_heads; nn.Linear weights stored [out, in].

import { Tensor } from "../../engine/tensor.js";
import type { JsonObject } from "../../io/json.js";
import { makeConfig, type HookedTransformerConfig } from "../config.js";
import { kvName, type Weights } from "../weights.js";
import type { HfCheckpoint, HfTensors, ModelFamily } from "./family.js";
import { checkExportable, headsToLinear, hfConfigFields, hfTensors, linearToHeads, transpose } from "./hf-layout.js";

const ARCHITECTURE = "Gemma2ForCausalLM";

/**
 * Reads a Hugging Face Gemma-2 config.json. Layers with an even index use `sliding_window`, odd ones
 * attend to everything (`attnTypes`); the attention scale is √query_pre_attn_scalar. Attention
 * biases, rope scaling and activations other than the tanh GELU are refused by name.
 *
 * @throws ConfigError naming the field
 * @example
 * ```ts
 * const cfg = configFromHfGemma2(json);   // tiny-gemma2-random's config.json
 * cfg.attnTypes;      // ["local", "global", "local"]
 * cfg.attnSoftcap;    // 5
 * ```
 */
export function configFromHfGemma2(json: JsonObject, file = "config.json"): HookedTransformerConfig {
  const field = hfConfigFields(json, file);
  field.expectModelType(gemma2);
  if (json["attention_bias"] === true) field.refuse("attention_bias", "attention biases for Gemma-2");
  if (json["rope_scaling"] !== undefined && json["rope_scaling"] !== null) field.refuse("rope_scaling", "rope scaling for Gemma-2");
  const act = json["hidden_activation"] ?? json["hidden_act"] ?? "gelu_pytorch_tanh";
  if (act !== "gelu_pytorch_tanh") field.refuse("hidden_activation", `activation ${JSON.stringify(act)} (gelu_pytorch_tanh is built)`);
  const nLayers = field.size("num_hidden_layers");
  const nHeads = field.size("num_attention_heads");
  const nKeyValueHeads = field.size("num_key_value_heads", nHeads);
  if (nHeads % nKeyValueHeads !== 0) field.fail("num_key_value_heads", `${nKeyValueHeads} does not divide num_attention_heads (${nHeads})`);
  const dModel = field.size("hidden_size");
  const dHead = field.size("head_dim", dModel / nHeads);
  if (dHead % 2 !== 0) field.fail("head_dim", `rotary embeddings need an even head size, got ${dHead}`);
  const scalar = json["query_pre_attn_scalar"] ?? dHead;
  if (typeof scalar !== "number" || !(scalar > 0)) field.fail("query_pre_attn_scalar", `expected a number > 0, got ${JSON.stringify(scalar)}`);
  const cap = (key: string): number | undefined => {
    const c = json[key];
    if (c === undefined || c === null) return undefined;
    if (typeof c !== "number" || !(c > 0)) field.fail(key, `expected a number > 0 or null, got ${JSON.stringify(c)}`);
    return c as number;
  };
  const attnSoftcap = cap("attn_logit_softcapping");
  const finalSoftcap = cap("final_logit_softcapping");
  const window = json["sliding_window"] === null || json["sliding_window"] === undefined ? undefined : field.size("sliding_window");
  const theta = json["rope_theta"] ?? 10000;
  if (typeof theta !== "number" || !(theta > 1)) field.fail("rope_theta", `expected a number > 1, got ${JSON.stringify(theta)}`);
  return makeConfig({
    nLayers, dModel, nHeads, nKeyValueHeads, dHead,
    dMlp: field.size("intermediate_size"),
    dVocab: field.size("vocab_size"),
    nCtx: field.size("max_position_embeddings"),
    eps: field.epsilon("rms_norm_eps", 1e-6),
    actFn: "gelu_new",
    normalizationType: "RMS",
    positionalEmbeddingType: "rotary",
    rotaryBase: theta as number,
    gatedMlp: true,
    postNorms: true,
    ...(attnSoftcap === undefined ? {} : { attnSoftcap }),
    ...(finalSoftcap === undefined ? {} : { finalSoftcap }),
    ...(window === undefined ? {} : { slidingWindow: window, attnTypes: Array.from({ length: nLayers }, (_, l) => (l % 2 === 0 ? "local" : "global")) }),
    originalArchitecture: field.architecture(ARCHITECTURE),
    attnScale: Math.sqrt(scalar as number),
  });
}

/** √d_model as Gemma-2 forms it: in float32. */
const embedScale = (cfg: HookedTransformerConfig) => Math.fround(Math.sqrt(cfg.dModel));

/**
 * Maps Hugging Face Gemma-2 tensors to TransformerLens names and layouts: W_E is the embedding times
 * √d_model (the scale Gemma-2 applies to its input, folded in as TransformerLens does; both
 * factors float32), W_U the unscaled embedding transposed (tied) or `lm_head.weight`; every
 * norm weight is stored as the (1 + w) it multiplies by: ln1 = input_layernorm, ln1_post =
 * post_attention_layernorm, ln2 = pre_feedforward_layernorm, ln2_post = post_feedforward_layernorm.
 *
 * @throws ModelFormatError `missing_tensor` or `shape_mismatch`, naming the tensor
 */
export function convertGemma2Weights(raw: HfTensors, cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const hf = hfTensors(raw, file);
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));
  const perHead = (src: Float32Array, heads: number) => linearToHeads(src, heads, D, d);
  // (1 + w) in float32, as Gemma-2's RMSNorm computes it.
  const norm = (name: string, hfName: string) => put(`${name}.w`, [D], hf.take(hfName, [D]).map((x) => 1 + x));

  const embed = hf.take("model.embed_tokens.weight", [V, D]);
  const scale = embedScale(cfg);
  put("embed.W_E", [V, D], embed.map((x) => x * scale));
  for (let l = 0; l < nLayers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.`;
    norm(`${b}ln1`, `${h}input_layernorm.weight`);
    put(`${b}attn.W_Q`, [H, D, d], perHead(hf.take(`${h}self_attn.q_proj.weight`, [H * d, D]), H));
    put(`${b}attn.${kvName(cfg, "W_K")}`, [Hk, D, d], perHead(hf.take(`${h}self_attn.k_proj.weight`, [Hk * d, D]), Hk));
    put(`${b}attn.${kvName(cfg, "W_V")}`, [Hk, D, d], perHead(hf.take(`${h}self_attn.v_proj.weight`, [Hk * d, D]), Hk));
    put(`${b}attn.b_Q`, [H, d], new Float32Array(H * d));
    put(`${b}attn.${kvName(cfg, "b_K")}`, [Hk, d], new Float32Array(Hk * d));
    put(`${b}attn.${kvName(cfg, "b_V")}`, [Hk, d], new Float32Array(Hk * d));
    put(`${b}attn.W_O`, [H, d, D], transpose(hf.take(`${h}self_attn.o_proj.weight`, [D, H * d]), D, H * d));
    put(`${b}attn.b_O`, [D], new Float32Array(D));
    norm(`${b}ln1_post`, `${h}post_attention_layernorm.weight`);
    norm(`${b}ln2`, `${h}pre_feedforward_layernorm.weight`);
    put(`${b}mlp.W_gate`, [D, M], transpose(hf.take(`${h}mlp.gate_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.W_in`, [D, M], transpose(hf.take(`${h}mlp.up_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.b_in`, [M], new Float32Array(M));
    put(`${b}mlp.W_out`, [M, D], transpose(hf.take(`${h}mlp.down_proj.weight`, [D, M]), D, M));
    put(`${b}mlp.b_out`, [D], new Float32Array(D));
    norm(`${b}ln2_post`, `${h}post_feedforward_layernorm.weight`);
  }
  norm("ln_final", "model.norm.weight");
  put("unembed.W_U", [D, V], transpose(hf.optional("lm_head.weight", [V, D]) ?? embed, V, D));
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}

/**
 * Unprocessed TransformerLens Gemma-2 weights as a Hugging Face Gemma2ForCausalLM checkpoint: the
 * inverse of {@link configFromHfGemma2} and {@link convertGemma2Weights}. A tied checkpoint's
 * embedding is W_U transposed (bit for bit); an untied one's is W_E / √d_model.
 *
 * @throws Error when the config is not Gemma-2's, the weights are processed or do not match it, or a
 * bias is not zero (Gemma-2 has none)
 */
export function gemma2ToHf(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): HfCheckpoint {
  const biases = ["unembed.b_U", ...Array.from({ length: cfg.nLayers }, (_, l) => [`attn.b_Q`, `attn.${kvName(cfg, "b_K")}`, `attn.${kvName(cfg, "b_V")}`,
    "attn.b_O", "mlp.b_in", "mlp.b_out"].map((n) => `blocks.${l}.${n}`)).flat()];
  checkExportable(gemma2, cfg, weights, "RMS", biases);
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const get = (name: string): Float32Array => weights.get(name)!.data;
  const tensors: HfCheckpoint["tensors"] = {};
  const put = (name: string, shape: number[], data: Float32Array) => { tensors[name] = { shape, data }; };
  const fused = (src: Float32Array, heads: number) => headsToLinear(src, heads, D, d);
  const norm = (hfName: string, name: string) => put(hfName, [D], get(`${name}.w`).map((x) => x - 1));
  const WU = get("unembed.W_U");
  const WE = get("embed.W_E");
  const scale = embedScale(cfg);
  // Tied: W_E is W_U transposed and scaled, bit for bit (as the reader makes it).
  let tied = true;
  for (let v = 0; v < V && tied; v++) for (let i = 0; i < D; i++) if (WE[v * D + i] !== Math.fround(WU[i * V + v]! * scale)) { tied = false; break; }
  const embedding = tied ? transpose(WU, D, V) : WE.map((x) => x / scale);
  put("model.embed_tokens.weight", [V, D], embedding);
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    const h = `model.layers.${l}.`;
    norm(`${h}input_layernorm.weight`, `${b}ln1`);
    put(`${h}self_attn.q_proj.weight`, [H * d, D], fused(get(`${b}attn.W_Q`), H));
    put(`${h}self_attn.k_proj.weight`, [Hk * d, D], fused(get(`${b}attn.${kvName(cfg, "W_K")}`), Hk));
    put(`${h}self_attn.v_proj.weight`, [Hk * d, D], fused(get(`${b}attn.${kvName(cfg, "W_V")}`), Hk));
    put(`${h}self_attn.o_proj.weight`, [D, H * d], transpose(get(`${b}attn.W_O`), H * d, D));
    norm(`${h}post_attention_layernorm.weight`, `${b}ln1_post`);
    norm(`${h}pre_feedforward_layernorm.weight`, `${b}ln2`);
    norm(`${h}post_feedforward_layernorm.weight`, `${b}ln2_post`);
    put(`${h}mlp.gate_proj.weight`, [M, D], transpose(get(`${b}mlp.W_gate`), D, M));
    put(`${h}mlp.up_proj.weight`, [M, D], transpose(get(`${b}mlp.W_in`), D, M));
    put(`${h}mlp.down_proj.weight`, [D, M], transpose(get(`${b}mlp.W_out`), M, D));
  }
  norm("model.norm.weight", "ln_final");
  if (!tied) put("lm_head.weight", [V, D], transpose(WU, D, V));
  const config: JsonObject = {
    architectures: [ARCHITECTURE],
    model_type: "gemma2",
    hidden_size: D,
    intermediate_size: M,
    num_hidden_layers: nLayers,
    num_attention_heads: H,
    num_key_value_heads: Hk,
    head_dim: d,
    hidden_activation: "gelu_pytorch_tanh",
    max_position_embeddings: nCtx,
    rms_norm_eps: cfg.eps,
    rope_theta: cfg.rotaryBase,
    query_pre_attn_scalar: cfg.attnScale * cfg.attnScale,
    attn_logit_softcapping: cfg.attnSoftcap ?? null,
    final_logit_softcapping: cfg.finalSoftcap ?? null,
    sliding_window: cfg.slidingWindow ?? null,
    attention_bias: false,
    tie_word_embeddings: tied,
    vocab_size: V,
  };
  return { config, tensors };
}

/** The Gemma-2 adapter (model_type `gemma2`). */
export const gemma2: ModelFamily = {
  name: "gemma2",
  modelTypes: { gemma2: ARCHITECTURE },
  configFromHf: configFromHfGemma2,
  weightsFromHf: convertGemma2Weights,
  toHf: gemma2ToHf,
  mismatch(cfg) {
    if (cfg.originalArchitecture !== ARCHITECTURE) return `originalArchitecture is ${JSON.stringify(cfg.originalArchitecture)}, not ${ARCHITECTURE}`;
    if (!cfg.postNorms) return "Gemma-2 has post-norms (postNorms)";
    if (!cfg.gatedMlp || cfg.actFn !== "gelu_new") return "Gemma-2's MLP is gated with the tanh GELU";
    if (cfg.normalizationType !== "RMS" && cfg.normalizationType !== "RMSPre") return "Gemma-2 uses RMSNorm";
    if (cfg.positionalEmbeddingType !== "rotary") return "Gemma-2 uses rotary embeddings";
    return undefined;
  },
};
