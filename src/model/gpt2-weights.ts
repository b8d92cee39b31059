import { Tensor } from "../engine/tensor.js";
import { ModelFormatError } from "../io/errors.js";
import type { HookedTransformerConfig } from "./config.js";
import type { Weights } from "./weights.js";

/** A tensor as read from a checkpoint. */
export interface RawTensor { shape: readonly number[]; data: Float32Array }

/**
 * Maps Hugging Face GPT-2 tensors (`wte.weight`, `h.0.attn.c_attn.weight`, ...; with or
 * without the `transformer.` prefix) to TransformerLens names and layouts. Conv1D weights
 * are stored [in, out] and applied as x @ W + b.
 */
export function convertGpt2Weights(raw: ReadonlyMap<string, RawTensor> | Record<string, RawTensor>,
  cfg: HookedTransformerConfig, file = "model.safetensors"): Weights {
  const source = raw instanceof Map ? raw : new Map(Object.entries(raw));
  const byName = new Map<string, RawTensor>();
  for (const [name, t] of source) byName.set(name.startsWith("transformer.") ? name.slice("transformer.".length) : name, t);

  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const take = (name: string, shape: number[]): Float32Array => {
    const t = byName.get(name);
    if (t === undefined) throw new ModelFormatError(file, "missing_tensor", `missing tensor ${name} (or transformer.${name})`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new ModelFormatError(file, "shape_mismatch", `${name} has shape [${t.shape.join(", ")}] but config.json implies [${shape.join(", ")}]`);
    }
    return t.data;
  };
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => w.set(name, new Tensor(data, shape));

  const wte = take("wte.weight", [V, D]);
  put("embed.W_E", [V, D], wte.slice());
  put("pos_embed.W_pos", [nCtx, D], take("wpe.weight", [nCtx, D]).slice());
  for (let l = 0; l < nLayers; l++) {
    const h = `h.${l}.`;
    const b = `blocks.${l}.`;
    put(`${b}ln1.w`, [D], take(`${h}ln_1.weight`, [D]).slice());
    put(`${b}ln1.b`, [D], take(`${h}ln_1.bias`, [D]).slice());
    const cAttn = take(`${h}attn.c_attn.weight`, [D, 3 * D]); // [D, 3D]: q, k, v column blocks
    const cAttnBias = take(`${h}attn.c_attn.bias`, [3 * D]);
    ["Q", "K", "V"].forEach((x, which) => {
      const W = new Float32Array(H * D * d); // [H, D, d]
      for (let head = 0; head < H; head++) {
        for (let i = 0; i < D; i++) {
          const src = i * 3 * D + which * D + head * d;
          W.set(cAttn.subarray(src, src + d), (head * D + i) * d);
        }
      }
      put(`${b}attn.W_${x}`, [H, D, d], W);
      put(`${b}attn.b_${x}`, [H, d], cAttnBias.slice(which * D, (which + 1) * D));
    });
    put(`${b}attn.W_O`, [H, d, D], take(`${h}attn.c_proj.weight`, [D, D]).slice()); // rows h*d + e
    put(`${b}attn.b_O`, [D], take(`${h}attn.c_proj.bias`, [D]).slice());
    put(`${b}ln2.w`, [D], take(`${h}ln_2.weight`, [D]).slice());
    put(`${b}ln2.b`, [D], take(`${h}ln_2.bias`, [D]).slice());
    put(`${b}mlp.W_in`, [D, M], take(`${h}mlp.c_fc.weight`, [D, M]).slice());
    put(`${b}mlp.b_in`, [M], take(`${h}mlp.c_fc.bias`, [M]).slice());
    put(`${b}mlp.W_out`, [M, D], take(`${h}mlp.c_proj.weight`, [M, D]).slice());
    put(`${b}mlp.b_out`, [D], take(`${h}mlp.c_proj.bias`, [D]).slice());
  }
  put("ln_final.w", [D], take("ln_f.weight", [D]).slice());
  put("ln_final.b", [D], take("ln_f.bias", [D]).slice());
  const lmHead = byName.get("lm_head.weight");
  const unembedSource = lmHead ?? { shape: [V, D], data: wte };
  if (lmHead !== undefined && (lmHead.shape[0] !== V || lmHead.shape[1] !== D)) {
    throw new ModelFormatError(file, "shape_mismatch", `lm_head.weight has shape [${lmHead.shape.join(", ")}] but config.json implies [${V}, ${D}]`);
  }
  const WU = new Float32Array(D * V); // [D, V] = lm_head (or tied wte) transposed
  for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) WU[i * V + v] = unembedSource.data[v * D + i]!;
  put("unembed.W_U", [D, V], WU);
  put("unembed.b_U", [V], new Float32Array(V));
  return w;
}
