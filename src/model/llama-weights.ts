import { Tensor } from "../engine/tensor.js";
import { ModelFormatError } from "../io/errors.js";
import type { HookedTransformerConfig } from "./config.js";
import type { RawTensor } from "./gpt2-weights.js";
import { kvName, type Weights } from "./weights.js";

/**
 * Maps Hugging Face LLaMA tensors (`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`,
 * ...) to TransformerLens names and layouts. HF Linear weights are [out, in] and applied as
 * x @ Wᵀ; TransformerLens stores [in, out]-style per-head matrices. Every bias is zero.
 */
export function convertLlamaWeights(raw: ReadonlyMap<string, RawTensor> | Record<string, RawTensor>,
  cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const byName: ReadonlyMap<string, RawTensor> = raw instanceof Map ? raw : new Map(Object.entries(raw));
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const take = (name: string, shape: number[]): Float32Array => {
    const t = byName.get(name);
    if (t === undefined) throw new ModelFormatError(file, "missing_tensor", `missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new ModelFormatError(file, "shape_mismatch", `${name} has shape [${t.shape.join(", ")}] but config.json implies [${shape.join(", ")}]`);
    }
    return t.data;
  };
  for (const name of byName.keys()) {
    if (/\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.bias$/.test(name)) {
      throw new ModelFormatError(file, "unsupported", `${name}: biases are not supported yet for LLaMA-family models`);
    }
  }
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));
  // [heads * d, D] (out, in) -> [heads, D, d]
  const perHead = (src: Float32Array, heads: number) => {
    const out = new Float32Array(heads * D * d);
    for (let h = 0; h < heads; h++) for (let e = 0; e < d; e++) for (let i = 0; i < D; i++) out[(h * D + i) * d + e] = src[(h * d + e) * D + i]!;
    return out;
  };
  // [rows, cols] -> [cols, rows]
  const transpose = (src: Float32Array, rows: number, cols: number) => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
    return out;
  };

  const embed = take("model.embed_tokens.weight", [V, D]);
  put("embed.W_E", [V, D], embed.slice());
  for (let l = 0; l < nLayers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.`;
    put(`${b}ln1.w`, [D], take(`${h}input_layernorm.weight`, [D]).slice());
    put(`${b}attn.W_Q`, [H, D, d], perHead(take(`${h}self_attn.q_proj.weight`, [H * d, D]), H));
    put(`${b}attn.${kvName(cfg, "W_K")}`, [Hk, D, d], perHead(take(`${h}self_attn.k_proj.weight`, [Hk * d, D]), Hk));
    put(`${b}attn.${kvName(cfg, "W_V")}`, [Hk, D, d], perHead(take(`${h}self_attn.v_proj.weight`, [Hk * d, D]), Hk));
    put(`${b}attn.b_Q`, [H, d], new Float32Array(H * d));
    put(`${b}attn.${kvName(cfg, "b_K")}`, [Hk, d], new Float32Array(Hk * d));
    put(`${b}attn.${kvName(cfg, "b_V")}`, [Hk, d], new Float32Array(Hk * d));
    // o_proj [D, H*d]: W_O[h, e, i] = o_proj[i, h*d + e], i.e. its transpose viewed [H, d, D].
    put(`${b}attn.W_O`, [H, d, D], transpose(take(`${h}self_attn.o_proj.weight`, [D, H * d]), D, H * d));
    put(`${b}attn.b_O`, [D], new Float32Array(D));
    put(`${b}ln2.w`, [D], take(`${h}post_attention_layernorm.weight`, [D]).slice());
    put(`${b}mlp.W_gate`, [D, M], transpose(take(`${h}mlp.gate_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.W_in`, [D, M], transpose(take(`${h}mlp.up_proj.weight`, [M, D]), M, D));
    put(`${b}mlp.b_in`, [M], new Float32Array(M));
    put(`${b}mlp.W_out`, [M, D], transpose(take(`${h}mlp.down_proj.weight`, [D, M]), D, M));
    put(`${b}mlp.b_out`, [D], new Float32Array(D));
  }
  put("ln_final.w", [D], take("model.norm.weight", [D]).slice());
  const lmHead = byName.has("lm_head.weight") ? take("lm_head.weight", [V, D]) : embed;
  put("unembed.W_U", [D, V], transpose(lmHead, V, D));
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}
