import { Tensor } from "../engine/tensor.js";
import type { HookedTransformerConfig } from "./config.js";
import { kvName, type Weights } from "./weights.js";

/**
 * TransformerLens weight processing. Each function takes a config and weights and
 * returns new ones; the inputs are left as they were. Applied in the order of
 * {@link processWeights}, they leave logit differences and softmax outputs unchanged.
 */

export interface ProcessOptions {
  foldLn?: boolean;
  centerWritingWeights?: boolean;
  centerUnembed?: boolean;
  foldValueBiases?: boolean;
}

/** All four steps, on by default, in TransformerLens's order. */
export function processWeights(cfg: HookedTransformerConfig, weights: Weights, options: ProcessOptions = {}):
  { cfg: HookedTransformerConfig; weights: Weights } {
  let state = { cfg, weights };
  if (options.foldLn ?? true) state = foldLn(state.cfg, state.weights);
  // Centring what writes to the residual stream is exact only when the norms centre their input
  // (LayerNorm); TransformerLens skips it for RMSNorm models, and so do we unless asked.
  const centres = cfg.normalizationType === "LN" || cfg.normalizationType === "LNPre";
  if (options.centerWritingWeights ?? centres) state = centerWritingWeights(state.cfg, state.weights);
  // Centring the unembedding shifts logits by a constant per position, which a soft-cap does not
  // pass through unchanged: skipped for soft-capped logits (TransformerLens does the same).
  if (options.centerUnembed && cfg.finalSoftcap !== undefined) {
    throw new Error(`processWeights: centerUnembed would change this model's soft-capped logits (finalSoftcap ${cfg.finalSoftcap})`);
  }
  if (options.centerUnembed ?? cfg.finalSoftcap === undefined) state = centerUnembed(state.cfg, state.weights);
  if (options.foldValueBiases ?? true) state = foldValueBiases(state.cfg, state.weights);
  return state;
}

/**
 * Folds each LayerNorm's weight and bias into the weights that read its output
 * (W_Q/W_K/W_V and biases from ln1, W_in/b_in from ln2, W_U/b_U from ln_final), then
 * centres those reading weights over d_model, which is what lets the LayerNorm drop its
 * own centring of the weights. The LayerNorms become LNPre (normalise only).
 */
export function foldLn(cfg: HookedTransformerConfig, weights: Weights): { cfg: HookedTransformerConfig; weights: Weights } {
  if (cfg.normalizationType !== "LN" && cfg.normalizationType !== "RMS") {
    throw new Error(`foldLn: the layer norms are already folded (normalizationType ${cfg.normalizationType})`);
  }
  // RMSNorm has a weight but no bias and does not centre: only the weight folds, nothing is centred.
  const rms = cfg.normalizationType === "RMS";
  const out = new Map(weights);
  const { nLayers, dModel: D } = cfg;
  const fold = (lnName: string, readers: [wName: string, bName: string | undefined][]) => {
    const lnW = need(weights, `${lnName}.w`).data;
    const lnB = rms ? undefined : need(weights, `${lnName}.b`).data;
    for (const [wName, bName] of readers) {
      const W = need(weights, wName); // [..., D, n]: each leading index is one [D, n] matrix
      const bias = bName === undefined ? undefined : need(weights, bName);
      const n = W.shape[W.shape.length - 1]!;
      const groups = W.size / (D * n);
      const Wf = new Float32Array(W.size);
      const bf = bias?.data.slice();
      for (let g = 0; g < groups; g++) {
        for (let j = 0; j < n; j++) {
          let shift = 0;
          let mean = 0;
          for (let i = 0; i < D; i++) {
            const wij = W.data[(g * D + i) * n + j]!;
            if (lnB !== undefined) shift += wij * lnB[i]!;
            const scaled = wij * lnW[i]!;
            Wf[(g * D + i) * n + j] = scaled;
            mean += scaled;
          }
          if (!rms) {
            mean /= D;
            for (let i = 0; i < D; i++) Wf[(g * D + i) * n + j]! -= mean;
          }
          if (bf !== undefined) bf[g * n + j]! += shift;
        }
      }
      out.set(wName, new Tensor(Wf, W.shape));
      if (bName !== undefined) out.set(bName, new Tensor(bf!, bias!.shape));
    }
    out.delete(`${lnName}.w`);
    out.delete(`${lnName}.b`);
  };
  for (let l = 0; l < nLayers; l++) {
    const a = `blocks.${l}.attn.`;
    const m = `blocks.${l}.mlp.`;
    fold(`blocks.${l}.ln1`, [[`${a}W_Q`, `${a}b_Q`], [`${a}${kvName(cfg, "W_K")}`, `${a}${kvName(cfg, "b_K")}`],
      [`${a}${kvName(cfg, "W_V")}`, `${a}${kvName(cfg, "b_V")}`]]);
    fold(`blocks.${l}.ln2`, cfg.gatedMlp ? [[`${m}W_in`, `${m}b_in`], [`${m}W_gate`, undefined]] : [[`${m}W_in`, `${m}b_in`]]);
  }
  fold("ln_final", [["unembed.W_U", "unembed.b_U"]]);
  return { cfg: { ...cfg, normalizationType: rms ? "RMSPre" : "LNPre", processing: { ...cfg.processing, foldLn: true } }, weights: out };
}

/**
 * Removes the mean over d_model from every weight that writes to the residual stream
 * (W_E, W_pos, W_O, W_out and the biases b_O, b_out). With LayerNorm centring its input
 * anyway, this changes no output, and makes the residual stream mean-free.
 */
export function centerWritingWeights(cfg: HookedTransformerConfig, weights: Weights): { cfg: HookedTransformerConfig; weights: Weights } {
  const out = new Map(weights);
  const center = (name: string) => out.set(name, centerRows(need(weights, name)));
  center("embed.W_E");
  if (cfg.positionalEmbeddingType === "standard") center("pos_embed.W_pos");
  for (let l = 0; l < cfg.nLayers; l++) {
    center(`blocks.${l}.attn.W_O`);
    center(`blocks.${l}.attn.b_O`);
    center(`blocks.${l}.mlp.W_out`);
    center(`blocks.${l}.mlp.b_out`);
  }
  return { cfg: { ...cfg, processing: { ...cfg.processing, centerWritingWeights: true } }, weights: out };
}

/** Removes the mean over the vocabulary from W_U and b_U: logits shift by a per-position constant, softmax is unchanged. */
export function centerUnembed(cfg: HookedTransformerConfig, weights: Weights): { cfg: HookedTransformerConfig; weights: Weights } {
  const out = new Map(weights);
  out.set("unembed.W_U", centerRows(need(weights, "unembed.W_U")));
  out.set("unembed.b_U", centerRows(need(weights, "unembed.b_U")));
  return { cfg: { ...cfg, processing: { ...cfg.processing, centerUnembed: true } }, weights: out };
}

/**
 * Moves the value bias into the output bias: since every pattern row sums to one,
 * b_V contributes the constant sum_h b_V[h] @ W_O[h] to attn_out at every position.
 * b_V becomes zero (so hook_z loses it) and b_O absorbs it, re-centred if writing weights are centred.
 */
export function foldValueBiases(cfg: HookedTransformerConfig, weights: Weights): { cfg: HookedTransformerConfig; weights: Weights } {
  const out = new Map(weights);
  const { nHeads: H, nKeyValueHeads: Hk, dHead: d, dModel: D } = cfg;
  const group = H / Hk;
  for (let l = 0; l < cfg.nLayers; l++) {
    const a = `blocks.${l}.attn.`;
    const bV = need(weights, `${a}${kvName(cfg, "b_V")}`); // [Hk, d]: query head h reads kv head floor(h / group)
    const WO = need(weights, `${a}W_O`).data; // [H, d, D]
    const bO = need(weights, `${a}b_O`).data.slice();
    for (let h = 0; h < H; h++) {
      for (let e = 0; e < d; e++) {
        const v = bV.data[Math.floor(h / group) * d + e]!;
        if (v === 0) continue;
        for (let i = 0; i < D; i++) bO[i]! += v * WO[(h * d + e) * D + i]!;
      }
    }
    let bOTensor = new Tensor(bO, [D]);
    if (cfg.processing.centerWritingWeights) bOTensor = centerRows(bOTensor);
    out.set(`${a}b_O`, bOTensor);
    out.set(`${a}${kvName(cfg, "b_V")}`, Tensor.zeros([Hk, d]));
  }
  return { cfg: { ...cfg, processing: { ...cfg.processing, foldValueBiases: true } }, weights: out };
}

/** Subtracts from each row (last axis) its mean. */
function centerRows(t: Tensor): Tensor {
  const n = t.shape[t.shape.length - 1]!;
  const data = t.data.slice();
  for (let r = 0; r < data.length; r += n) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += data[r + j]!;
    mean /= n;
    for (let j = 0; j < n; j++) data[r + j]! -= mean;
  }
  return new Tensor(data, t.shape);
}

function need(weights: Weights, name: string): Tensor {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`weight processing: missing parameter ${name}`);
  return t;
}
