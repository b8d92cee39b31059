import { writeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import type { HookedTransformerConfig } from "../model/config.js";
import type { Weights } from "../model/weights.js";

/**
 * Writes TransformerLens-named GPT-2 weights as a Hugging Face checkpoint folder
 * (`config.json` + `model.safetensors`, GPT2LMHeadModel names with an untied
 * `lm_head.weight`): the inverse of `convertGpt2Weights`, so
 * `HookedTransformer.fromPretrained(files)` rebuilds the same model.
 *
 * The weights must be unprocessed (normalizationType "LN", they still carry their
 * LayerNorm weights), and `unembed.b_U` must be zero: GPT-2 checkpoints have no slot for it.
 *
 * @example
 * ```ts
 * const { cfg, weights } = buildInductionModelWeights();
 * const files = gpt2HfFiles(cfg, weights);   // { "config.json": ..., "model.safetensors": ... }
 * const model = await HookedTransformer.fromPretrained(files);
 * ```
 */
export function gpt2HfFiles(cfg: HookedTransformerConfig, weights: Weights): Record<string, Uint8Array> {
  if (cfg.normalizationType !== "LN") {
    throw new Error(`gpt2HfFiles: cfg.normalizationType must be "LN" (unprocessed weights), got ${JSON.stringify(cfg.normalizationType)}`);
  }
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  if (H * d !== D) throw new Error(`gpt2HfFiles: GPT-2 needs nHeads * dHead == dModel, got ${H} * ${d} != ${D}`);
  if (cfg.attnScale !== 1 && Math.abs(cfg.attnScale - Math.sqrt(d)) > 1e-6 * Math.sqrt(d)) {
    throw new Error(`gpt2HfFiles: attnScale must be sqrt(dHead) (${Math.sqrt(d)}) or 1 for GPT-2, got ${cfg.attnScale}`);
  }
  const get = (name: string): Float32Array => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`gpt2HfFiles: missing parameter ${name}`);
    return t.data;
  };
  if (get("unembed.b_U").some((x) => x !== 0)) {
    throw new Error("gpt2HfFiles: unembed.b_U must be all zeros (a GPT-2 checkpoint cannot store an unembedding bias)");
  }

  const tensors: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], data: Float32Array) => { tensors[`transformer.${name}`] = { shape, data }; };
  put("wte.weight", [V, D], get("embed.W_E"));
  put("wpe.weight", [nCtx, D], get("pos_embed.W_pos"));
  for (let l = 0; l < nLayers; l++) {
    const b = `blocks.${l}.`;
    const h = `h.${l}.`;
    put(`${h}ln_1.weight`, [D], get(`${b}ln1.w`));
    put(`${h}ln_1.bias`, [D], get(`${b}ln1.b`));
    // Conv1D c_attn: [D, 3D], columns are the q, k, v blocks, each head-major.
    const cAttn = new Float32Array(D * 3 * D);
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
  const WU = get("unembed.W_U"); // [D, V]
  const lmHead = new Float32Array(V * D); // [V, D]
  for (let i = 0; i < D; i++) for (let v = 0; v < V; v++) lmHead[v * D + i] = WU[i * V + v]!;
  tensors["lm_head.weight"] = { shape: [V, D], data: lmHead };

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
    tie_word_embeddings: false,
  };
  return {
    "config.json": new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
    "model.safetensors": writeSafetensors(tensors, { metadata: { format: "pt" } }),
  };
}
