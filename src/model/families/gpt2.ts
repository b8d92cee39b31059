// GPT-2 (GPT2LMHeadModel): learned positions, LayerNorm, an ungated MLP, Conv1D weights
// stored [in, out] and applied as x @ W + b, q/k/v fused into one c_attn.

import { Tensor } from "../../engine/tensor.js";
import type { JsonObject } from "../../io/json.js";
import { makeConfig, type HookedTransformerConfig } from "../config.js";
import type { Weights } from "../weights.js";
import type { HfCheckpoint, HfTensors, ModelFamily } from "./family.js";
import { checkExportable, hfConfigFields, hfTensors, isTiedUnembedding, scalesBySqrtDHead, transpose } from "./hf-layout.js";

const ARCHITECTURE = "GPT2LMHeadModel";
/** The activation_function values with a kernel of the same definition (HF "gelu" is the exact erf GELU). */
const ACTIVATIONS = ["gelu_new", "gelu", "silu"] as const;

/**
 * Reads a Hugging Face GPT-2 config.json (already parsed) into a TransformerLens config.
 * Every size is checked before anything is allocated.
 *
 * @throws ConfigError naming the field: a size that is not a positive integer, n_embd not divisible
 * by n_head, an activation without a kernel, `scale_attn_by_inverse_layer_idx` or `reorder_and_upcast_attn`
 * @example
 * ```ts
 * const cfg = configFromHfGpt2({ n_layer: 2, n_head: 4, n_embd: 64, n_positions: 32, vocab_size: 100 });
 * cfg.dHead; // 16
 * ```
 */
export function configFromHfGpt2(json: JsonObject, file = "config.json"): HookedTransformerConfig {
  const field = hfConfigFields(json, file);
  field.expectModelType(gpt2);
  const nLayers = field.size("n_layer");
  const nHeads = field.size("n_head");
  const dModel = field.size("n_embd");
  if (dModel % nHeads !== 0) field.fail("n_head", `n_embd (${dModel}) must be divisible by n_head (${nHeads})`);
  const dMlp = field.sizeOr("n_inner", 4 * dModel);
  const eps = field.epsilon("layer_norm_epsilon", 1e-5);
  const actFn = json["activation_function"] ?? "gelu_new";
  if (!ACTIVATIONS.includes(actFn as never)) {
    field.fail("activation_function", `unsupported ${JSON.stringify(actFn)} (${ACTIVATIONS.join(", ")})`);
  }
  for (const flag of ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"]) {
    if (json[flag] === true) field.fail(flag, "true is not supported");
  }
  const dHead = dModel / nHeads;
  return makeConfig({
    nLayers, dModel, nHeads, nKeyValueHeads: nHeads, dHead, dMlp, eps,
    dVocab: field.size("vocab_size"),
    nCtx: field.size("n_positions", json["n_ctx"] as number | undefined),
    actFn: actFn as typeof ACTIVATIONS[number],
    normalizationType: "LN",
    positionalEmbeddingType: "standard",
    gatedMlp: false,
    originalArchitecture: field.architecture(ARCHITECTURE),
    attnScale: json["scale_attn_weights"] === false ? 1 : Math.sqrt(dHead),
  });
}

/**
 * Maps Hugging Face GPT-2 tensors (`wte.weight`, `h.0.attn.c_attn.weight`, ...; with or
 * without the `transformer.` prefix) to TransformerLens names and layouts. An `lm_head.weight`
 * is the unembedding when present; otherwise it is tied to `wte`. Buffers such as
 * `h.0.attn.bias` are ignored.
 *
 * @throws ModelFormatError `missing_tensor` or `shape_mismatch`, naming the tensor
 * @example
 * ```ts
 * const file = readSafetensors(bytes, "model.safetensors");
 * const weights = convertGpt2Weights(file.tensors, cfg);
 * weights.get("blocks.0.attn.W_Q")!.shape;   // [nHeads, dModel, dHead]
 * ```
 */
export function convertGpt2Weights(raw: HfTensors, cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const hf = hfTensors(raw, file, "transformer.");
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));
  const copy = (name: string, from: string, shape: number[]) => put(name, shape, hf.take(from, shape).slice());

  const wte = hf.take("wte.weight", [V, D]);
  put("embed.W_E", [V, D], wte.slice());
  copy("pos_embed.W_pos", "wpe.weight", [nCtx, D]);
  for (let l = 0; l < nLayers; l++) {
    const h = `h.${l}.`;
    const b = `blocks.${l}.`;
    copy(`${b}ln1.w`, `${h}ln_1.weight`, [D]);
    copy(`${b}ln1.b`, `${h}ln_1.bias`, [D]);
    const cAttn = hf.take(`${h}attn.c_attn.weight`, [D, 3 * D]); // [D, 3D]: q, k, v column blocks
    const cAttnBias = hf.take(`${h}attn.c_attn.bias`, [3 * D]);
    ["Q", "K", "V"].forEach((x, which) => {
      const W = new Float32Array(H * D * d); // [H, D, d]: column which*D + head*d + e of c_attn
      for (let head = 0; head < H; head++) {
        for (let i = 0; i < D; i++) {
          const src = i * 3 * D + which * D + head * d;
          W.set(cAttn.subarray(src, src + d), (head * D + i) * d);
        }
      }
      put(`${b}attn.W_${x}`, [H, D, d], W);
      put(`${b}attn.b_${x}`, [H, d], cAttnBias.slice(which * D, (which + 1) * D));
    });
    put(`${b}attn.W_O`, [H, d, D], hf.take(`${h}attn.c_proj.weight`, [D, D]).slice()); // rows h*d + e
    copy(`${b}attn.b_O`, `${h}attn.c_proj.bias`, [D]);
    copy(`${b}ln2.w`, `${h}ln_2.weight`, [D]);
    copy(`${b}ln2.b`, `${h}ln_2.bias`, [D]);
    copy(`${b}mlp.W_in`, `${h}mlp.c_fc.weight`, [D, M]);
    copy(`${b}mlp.b_in`, `${h}mlp.c_fc.bias`, [M]);
    copy(`${b}mlp.W_out`, `${h}mlp.c_proj.weight`, [M, D]);
    copy(`${b}mlp.b_out`, `${h}mlp.c_proj.bias`, [D]);
  }
  copy("ln_final.w", "ln_f.weight", [D]);
  copy("ln_final.b", "ln_f.bias", [D]);
  put("unembed.W_U", [D, V], transpose(hf.optional("lm_head.weight", [V, D]) ?? wte, V, D)); // [D, V]
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}

/**
 * Unprocessed TransformerLens GPT-2 weights as a Hugging Face GPT2LMHeadModel checkpoint: the
 * inverse of {@link configFromHfGpt2} and {@link convertGpt2Weights}. Tensor names carry the
 * `transformer.` prefix of save_pretrained; the unembedding is tied (no `lm_head.weight`,
 * `tie_word_embeddings: true`) exactly when W_U is W_E transposed bit for bit, else stored as `lm_head.weight`.
 *
 * @throws Error when the config is not GPT-2's, the weights are processed (normalizationType not "LN")
 * or do not match the config, or `unembed.b_U` is not zero (GPT-2 has no unembedding bias)
 * @example
 * ```ts
 * const { config, tensors } = gpt2ToHf(model.cfg, model.weights);   // a model loaded with processWeights: false
 * writeSafetensors(tensors);
 * ```
 */
export function gpt2ToHf(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): HfCheckpoint {
  checkExportable(gpt2, cfg, weights, "LN", ["unembed.b_U"]);
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const get = (name: string): Float32Array => weights.get(name)!.data; // present: checkExportable checked every name
  const tensors: HfCheckpoint["tensors"] = {};
  const put = (name: string, shape: number[], data: Float32Array) => { tensors[`transformer.${name}`] = { shape, data }; };

  put("wte.weight", [V, D], get("embed.W_E"));
  put("wpe.weight", [nCtx, D], get("pos_embed.W_pos"));
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    const h = `h.${l}.`;
    put(`${h}ln_1.weight`, [D], get(`${b}ln1.w`));
    put(`${h}ln_1.bias`, [D], get(`${b}ln1.b`));
    const cAttn = new Float32Array(D * 3 * D); // [D, 3D]: the q, k, v column blocks, each head-major
    const cAttnBias = new Float32Array(3 * D);
    ["Q", "K", "V"].forEach((x, which) => {
      const W = get(`${b}attn.W_${x}`); // [H, D, d]
      for (let head = 0; head < H; head++) {
        for (let i = 0; i < D; i++) {
          cAttn.set(W.subarray((head * D + i) * d, (head * D + i + 1) * d), i * 3 * D + which * D + head * d);
        }
      }
      cAttnBias.set(get(`${b}attn.b_${x}`), which * D); // [H, d] is already head-major
    });
    put(`${h}attn.c_attn.weight`, [D, 3 * D], cAttn);
    put(`${h}attn.c_attn.bias`, [3 * D], cAttnBias);
    put(`${h}attn.c_proj.weight`, [D, D], get(`${b}attn.W_O`)); // [H, d, D] read as [H*d, D]
    put(`${h}attn.c_proj.bias`, [D], get(`${b}attn.b_O`));
    put(`${h}ln_2.weight`, [D], get(`${b}ln2.w`));
    put(`${h}ln_2.bias`, [D], get(`${b}ln2.b`));
    put(`${h}mlp.c_fc.weight`, [D, M], get(`${b}mlp.W_in`));
    put(`${h}mlp.c_fc.bias`, [M], get(`${b}mlp.b_in`));
    put(`${h}mlp.c_proj.weight`, [M, D], get(`${b}mlp.W_out`));
    put(`${h}mlp.c_proj.bias`, [D], get(`${b}mlp.b_out`));
  }
  put("ln_f.weight", [D], get("ln_final.w"));
  put("ln_f.bias", [D], get("ln_final.b"));
  const tied = isTiedUnembedding(get("embed.W_E"), get("unembed.W_U"), V, D);
  if (!tied) tensors["lm_head.weight"] = { shape: [V, D], data: transpose(get("unembed.W_U"), D, V) };

  const config = {
    architectures: [cfg.originalArchitecture],
    model_type: "gpt2",
    n_layer: nLayers,
    n_head: H,
    n_embd: D,
    n_inner: M,
    n_positions: nCtx,
    n_ctx: nCtx,
    vocab_size: V,
    activation_function: cfg.actFn,
    layer_norm_epsilon: cfg.eps,
    scale_attn_weights: cfg.attnScale !== 1,
    tie_word_embeddings: tied,
  };
  return { config, tensors };
}

/** The GPT-2 adapter (model_type `gpt2`). */
export const gpt2: ModelFamily = {
  name: "gpt2",
  modelTypes: { gpt2: ARCHITECTURE },
  configFromHf: configFromHfGpt2,
  weightsFromHf: convertGpt2Weights,
  toHf: gpt2ToHf,
  mismatch(cfg) {
    if (cfg.positionalEmbeddingType !== "standard") return `positionalEmbeddingType is ${JSON.stringify(cfg.positionalEmbeddingType)}; GPT-2 learns W_pos ("standard")`;
    if (cfg.normalizationType !== "LN" && cfg.normalizationType !== "LNPre") return `normalizationType is ${JSON.stringify(cfg.normalizationType)}; GPT-2 uses LayerNorm ("LN")`;
    if (cfg.gatedMlp) return "gatedMlp is true; GPT-2's MLP is not gated";
    if (cfg.parallelAttnMlp) return "parallelAttnMlp is true; GPT-2 runs attention, then the MLP";
    if (cfg.nKeyValueHeads !== cfg.nHeads) return `nKeyValueHeads (${cfg.nKeyValueHeads}) differs from nHeads (${cfg.nHeads}); GPT-2 has no grouped-query attention`;
    if (cfg.nHeads * cfg.dHead !== cfg.dModel) return `nHeads * dHead (${cfg.nHeads} * ${cfg.dHead}) must equal dModel (${cfg.dModel}) for GPT-2`;
    if (cfg.attnScale !== 1 && !scalesBySqrtDHead(cfg)) return `attnScale must be sqrt(dHead) (${Math.sqrt(cfg.dHead)}) or 1 for GPT-2, got ${cfg.attnScale}`;
    return undefined;
  },
};
