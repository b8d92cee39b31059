// Random GPT-2 checkpoints in Hugging Face layout, written with our own safetensors writer.
import { writeSafetensors, type TensorToWrite } from "../src/io/safetensors.js";
import { randn } from "./helpers.js";

export interface RandomGpt2Spec {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  nPositions: number;
  vocab: number;
  nInner?: number;
  seed?: number;
  /** Prefix every name with `transformer.` (as save_pretrained does). */
  prefixed?: boolean;
}

/** config.json + model.safetensors bytes of a GPT-2 with random weights (LayerNorm w/b random too). */
export function randomGpt2Files(spec: RandomGpt2Spec): Record<string, Uint8Array> {
  const { nLayer, nHead, nEmbd: D, nPositions, vocab: V } = spec;
  const M = spec.nInner ?? 4 * D;
  let seed = spec.seed ?? 1;
  const t = (shape: number[], std: number, mean = 0): TensorToWrite => {
    const data = randn(shape.reduce((a, b) => a * b, 1), seed++, std);
    if (mean !== 0) for (let i = 0; i < data.length; i++) data[i]! += mean;
    return { shape, data };
  };
  const tensors: Record<string, TensorToWrite> = {
    "wte.weight": t([V, D], 0.5),
    "wpe.weight": t([nPositions, D], 0.2),
    "ln_f.weight": t([D], 0.2, 1),
    "ln_f.bias": t([D], 0.2),
  };
  for (let l = 0; l < nLayer; l++) {
    const h = `h.${l}.`;
    Object.assign(tensors, {
      [`${h}ln_1.weight`]: t([D], 0.2, 1), [`${h}ln_1.bias`]: t([D], 0.2),
      [`${h}attn.c_attn.weight`]: t([D, 3 * D], 0.3), [`${h}attn.c_attn.bias`]: t([3 * D], 0.1),
      [`${h}attn.c_proj.weight`]: t([D, D], 0.3), [`${h}attn.c_proj.bias`]: t([D], 0.1),
      [`${h}ln_2.weight`]: t([D], 0.2, 1), [`${h}ln_2.bias`]: t([D], 0.2),
      [`${h}mlp.c_fc.weight`]: t([D, M], 0.3), [`${h}mlp.c_fc.bias`]: t([M], 0.1),
      [`${h}mlp.c_proj.weight`]: t([M, D], 0.3), [`${h}mlp.c_proj.bias`]: t([D], 0.1),
    });
  }
  const named = spec.prefixed
    ? Object.fromEntries(Object.entries(tensors).map(([k, v]) => [`transformer.${k}`, v]))
    : tensors;
  const config = {
    model_type: "gpt2", architectures: ["GPT2LMHeadModel"],
    n_layer: nLayer, n_head: nHead, n_embd: D, n_positions: nPositions, n_inner: spec.nInner ?? null,
    vocab_size: V, layer_norm_epsilon: 1e-5, activation_function: "gelu_new",
  };
  return {
    "config.json": new TextEncoder().encode(JSON.stringify(config)),
    "model.safetensors": writeSafetensors(named),
  };
}
