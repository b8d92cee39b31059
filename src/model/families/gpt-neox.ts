// GPT-NeoX and Pythia (GPTNeoXForCausalLM): LayerNorm, rotary on the first rotary_pct of each
// head's dimensions, attention and MLP in parallel (use_parallel_residual), q/k/v fused per head
// in query_key_value, biases everywhere, an untied embed_out; nn.Linear weights stored [out, in].

import { Tensor } from "../../engine/tensor.js";
import type { JsonObject } from "../../io/json.js";
import { makeConfig, type HookedTransformerConfig } from "../config.js";
import { rotaryDim } from "../rotary-tables.js";
import type { Weights } from "../weights.js";
import type { HfCheckpoint, HfTensors, ModelFamily } from "./family.js";
import { checkExportable, hfConfigFields, hfTensors, scalesBySqrtDHead, transpose } from "./hf-layout.js";

const ARCHITECTURE = "GPTNeoXForCausalLM";
/** hidden_act values with a kernel of the same definition (Hugging Face "gelu" is the exact erf GELU). */
const ACTIVATIONS = { gelu: "gelu", gelu_new: "gelu_new", gelu_pytorch_tanh: "gelu_new" } as const;

/**
 * Reads a Hugging Face GPT-NeoX config.json (Pythia's layout). The rotated dimensions are
 * `int(d_head · rotary_pct)` (they must be even); `use_parallel_residual` (default true) sets
 * `parallelAttnMlp`. Rope scaling, a tied embedding and activations without a kernel are refused by name.
 *
 * @throws ConfigError naming the field
 * @example
 * ```ts
 * const cfg = configFromHfGptNeox({ model_type: "gpt_neox", hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 3,
 *   intermediate_size: 256, max_position_embeddings: 64, vocab_size: 97, rotary_pct: 0.25 });
 * cfg.rotaryDim;         // 4
 * cfg.parallelAttnMlp;   // true
 * ```
 */
export function configFromHfGptNeox(json: JsonObject, file = "config.json"): HookedTransformerConfig {
  const field = hfConfigFields(json, file);
  field.expectModelType(gptNeox);
  const nHeads = field.size("num_attention_heads");
  const dModel = field.size("hidden_size");
  if (dModel % nHeads !== 0) field.fail("num_attention_heads", `hidden_size (${dModel}) must be divisible by num_attention_heads (${nHeads})`);
  const dHead = dModel / nHeads;
  const pct = json["rotary_pct"] ?? json["partial_rotary_factor"] ?? 1;
  if (typeof pct !== "number" || !(pct > 0 && pct <= 1)) field.fail("rotary_pct", `expected a number in (0, 1], got ${JSON.stringify(pct)}`);
  const rotated = Math.floor(dHead * (pct as number));
  if (rotated < 2 || rotated % 2 !== 0) field.fail("rotary_pct", `rotates int(${dHead} × ${pct}) = ${rotated} dimensions of each head; rotary needs an even number ≥ 2`);
  if (json["rope_scaling"] !== undefined && json["rope_scaling"] !== null) field.refuse("rope_scaling", "rope scaling for GPT-NeoX");
  if (json["tie_word_embeddings"] === true) field.refuse("tie_word_embeddings", "a tied GPT-NeoX embedding");
  const act = json["hidden_act"] ?? "gelu";
  if (typeof act !== "string" || !Object.hasOwn(ACTIVATIONS, act)) field.refuse("hidden_act", `activation ${JSON.stringify(act)}`);
  const base = json["rotary_emb_base"] ?? json["rope_theta"] ?? 10000;
  if (typeof base !== "number" || !(base > 1)) field.fail("rotary_emb_base", `expected a number > 1, got ${JSON.stringify(base)}`);
  const parallel = json["use_parallel_residual"] ?? true;
  if (typeof parallel !== "boolean") field.fail("use_parallel_residual", `expected true or false, got ${JSON.stringify(parallel)}`);
  return makeConfig({
    nLayers: field.size("num_hidden_layers"), dModel, nHeads, nKeyValueHeads: nHeads, dHead,
    dMlp: field.size("intermediate_size"),
    dVocab: field.size("vocab_size"),
    nCtx: field.size("max_position_embeddings"),
    eps: field.epsilon("layer_norm_eps", 1e-5),
    actFn: ACTIVATIONS[act as keyof typeof ACTIVATIONS],
    normalizationType: "LN",
    positionalEmbeddingType: "rotary",
    rotaryBase: base as number,
    ...(rotated === dHead ? {} : { rotaryDim: rotated }),
    parallelAttnMlp: parallel as boolean,
    gatedMlp: false,
    originalArchitecture: field.architecture(ARCHITECTURE),
    attnScale: Math.sqrt(dHead),
  });
}

/**
 * Maps Hugging Face GPT-NeoX tensors (`gpt_neox.embed_in.weight`, `gpt_neox.layers.0.attention.query_key_value.weight`,
 * ..., `embed_out.weight`) to TransformerLens names and layouts. `query_key_value` [3D, D] is grouped
 * per head first: row h·3d + c·d + e is head h, component c (q, k, v), dimension e. Buffers
 * (`attention.bias`, `masked_bias`, `rotary_emb.inv_freq`) are ignored; q/k/v/dense biases absent
 * (`attention_bias: false`) are zero.
 *
 * @throws ModelFormatError `missing_tensor` or `shape_mismatch`, naming the tensor
 */
export function convertGptNeoxWeights(raw: HfTensors, cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const hf = hfTensors(raw, file);
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V } = cfg;
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));
  const copy = (name: string, from: string, shape: number[]) => put(name, shape, hf.take(from, shape).slice());
  const bias = (name: string, n: number) => hf.optional(name, [n])?.slice() ?? new Float32Array(n);

  put("embed.W_E", [V, D], hf.take("gpt_neox.embed_in.weight", [V, D]).slice());
  for (let l = 0; l < nLayers; l++) {
    const h = `gpt_neox.layers.${l}.`;
    const b = `blocks.${l}.`;
    copy(`${b}ln1.w`, `${h}input_layernorm.weight`, [D]);
    copy(`${b}ln1.b`, `${h}input_layernorm.bias`, [D]);
    const qkv = hf.take(`${h}attention.query_key_value.weight`, [3 * D, D]); // [H, 3, d, D]
    const qkvBias = bias(`${h}attention.query_key_value.bias`, 3 * D);
    ["Q", "K", "V"].forEach((x, c) => {
      const W = new Float32Array(H * D * d); // [H, D, d]: W[h, i, e] = qkv[h*3d + c*d + e, i]
      const B = new Float32Array(H * d);
      for (let head = 0; head < H; head++) {
        for (let e = 0; e < d; e++) {
          const row = head * 3 * d + c * d + e;
          for (let i = 0; i < D; i++) W[(head * D + i) * d + e] = qkv[row * D + i]!;
          B[head * d + e] = qkvBias[row]!;
        }
      }
      put(`${b}attn.W_${x}`, [H, D, d], W);
      put(`${b}attn.b_${x}`, [H, d], B);
    });
    // dense [D, H*d]: W_O[h, e, i] = dense[i, h*d + e], its transpose viewed [H, d, D].
    put(`${b}attn.W_O`, [H, d, D], transpose(hf.take(`${h}attention.dense.weight`, [D, H * d]), D, H * d));
    put(`${b}attn.b_O`, [D], bias(`${h}attention.dense.bias`, D));
    copy(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, [D]);
    copy(`${b}ln2.b`, `${h}post_attention_layernorm.bias`, [D]);
    put(`${b}mlp.W_in`, [D, M], transpose(hf.take(`${h}mlp.dense_h_to_4h.weight`, [M, D]), M, D));
    put(`${b}mlp.b_in`, [M], bias(`${h}mlp.dense_h_to_4h.bias`, M));
    put(`${b}mlp.W_out`, [M, D], transpose(hf.take(`${h}mlp.dense_4h_to_h.weight`, [D, M]), D, M));
    put(`${b}mlp.b_out`, [D], bias(`${h}mlp.dense_4h_to_h.bias`, D));
  }
  copy("ln_final.w", "gpt_neox.final_layer_norm.weight", [D]);
  copy("ln_final.b", "gpt_neox.final_layer_norm.bias", [D]);
  put("unembed.W_U", [D, V], transpose(hf.take("embed_out.weight", [V, D]), V, D));
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}

/**
 * Unprocessed TransformerLens GPT-NeoX weights as a Hugging Face GPTNeoXForCausalLM checkpoint:
 * the inverse of {@link configFromHfGptNeox} and {@link convertGptNeoxWeights}.
 *
 * @throws Error when the config is not GPT-NeoX's, the weights are processed or do not match the
 * config, or `unembed.b_U` is not zero (embed_out has no bias)
 */
export function gptNeoxToHf(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): HfCheckpoint {
  checkExportable(gptNeox, cfg, weights, "LN", ["unembed.b_U"]);
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const get = (name: string): Float32Array => weights.get(name)!.data;
  const tensors: HfCheckpoint["tensors"] = {};
  const put = (name: string, shape: number[], data: Float32Array) => { tensors[name] = { shape, data }; };
  put("gpt_neox.embed_in.weight", [V, D], get("embed.W_E"));
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    const h = `gpt_neox.layers.${l}.`;
    put(`${h}input_layernorm.weight`, [D], get(`${b}ln1.w`));
    put(`${h}input_layernorm.bias`, [D], get(`${b}ln1.b`));
    const qkv = new Float32Array(3 * D * D);
    const qkvBias = new Float32Array(3 * D);
    ["Q", "K", "V"].forEach((x, c) => {
      const W = get(`${b}attn.W_${x}`);
      const B = get(`${b}attn.b_${x}`);
      for (let head = 0; head < H; head++) {
        for (let e = 0; e < d; e++) {
          const row = head * 3 * d + c * d + e;
          for (let i = 0; i < D; i++) qkv[row * D + i] = W[(head * D + i) * d + e]!;
          qkvBias[row] = B[head * d + e]!;
        }
      }
    });
    put(`${h}attention.query_key_value.weight`, [3 * D, D], qkv);
    put(`${h}attention.query_key_value.bias`, [3 * D], qkvBias);
    put(`${h}attention.dense.weight`, [D, H * d], transpose(get(`${b}attn.W_O`), H * d, D));
    put(`${h}attention.dense.bias`, [D], get(`${b}attn.b_O`));
    put(`${h}post_attention_layernorm.weight`, [D], get(`${b}ln2.w`));
    put(`${h}post_attention_layernorm.bias`, [D], get(`${b}ln2.b`));
    put(`${h}mlp.dense_h_to_4h.weight`, [M, D], transpose(get(`${b}mlp.W_in`), D, M));
    put(`${h}mlp.dense_h_to_4h.bias`, [M], get(`${b}mlp.b_in`));
    put(`${h}mlp.dense_4h_to_h.weight`, [D, M], transpose(get(`${b}mlp.W_out`), M, D));
    put(`${h}mlp.dense_4h_to_h.bias`, [D], get(`${b}mlp.b_out`));
  }
  put("gpt_neox.final_layer_norm.weight", [D], get("ln_final.w"));
  put("gpt_neox.final_layer_norm.bias", [D], get("ln_final.b"));
  put("embed_out.weight", [V, D], transpose(get("unembed.W_U"), D, V));
  const config: JsonObject = {
    architectures: [ARCHITECTURE],
    model_type: "gpt_neox",
    hidden_size: D,
    intermediate_size: M,
    num_hidden_layers: nLayers,
    num_attention_heads: H,
    max_position_embeddings: nCtx,
    vocab_size: V,
    hidden_act: cfg.actFn,
    layer_norm_eps: cfg.eps,
    rotary_pct: rotaryDim(cfg) / d,
    rotary_emb_base: cfg.rotaryBase,
    rope_scaling: null,
    use_parallel_residual: cfg.parallelAttnMlp === true,
    attention_bias: true,
    tie_word_embeddings: false,
  };
  return { config, tensors };
}

/** The GPT-NeoX adapter (model_type `gpt_neox`: Pythia). */
export const gptNeox: ModelFamily = {
  name: "gpt_neox",
  modelTypes: { gpt_neox: ARCHITECTURE },
  configFromHf: configFromHfGptNeox,
  weightsFromHf: convertGptNeoxWeights,
  toHf: gptNeoxToHf,
  mismatch(cfg) {
    if (cfg.originalArchitecture !== ARCHITECTURE) return `originalArchitecture is ${JSON.stringify(cfg.originalArchitecture)}, not ${ARCHITECTURE}`;
    if (cfg.positionalEmbeddingType !== "rotary") return `positionalEmbeddingType is ${JSON.stringify(cfg.positionalEmbeddingType)}; GPT-NeoX uses rotary embeddings`;
    if (cfg.normalizationType !== "LN" && cfg.normalizationType !== "LNPre") return `normalizationType is ${JSON.stringify(cfg.normalizationType)}; GPT-NeoX uses LayerNorm ("LN")`;
    if (cfg.gatedMlp) return "gatedMlp is true; GPT-NeoX's MLP is not gated";
    if (cfg.nKeyValueHeads !== cfg.nHeads) return "GPT-NeoX has no grouped-query attention";
    if (cfg.nHeads * cfg.dHead !== cfg.dModel) return `nHeads * dHead (${cfg.nHeads} * ${cfg.dHead}) must equal dModel (${cfg.dModel}) for GPT-NeoX`;
    if (!scalesBySqrtDHead(cfg)) return `attnScale must be sqrt(dHead) (${Math.sqrt(cfg.dHead)}) for GPT-NeoX, got ${cfg.attnScale}`;
    return undefined;
  },
};
