// The hooklens GPT-2 weights (TransformerLens layout, processed: LayerNorms folded into the
// weights that read them, so every norm only centres and scales) rearranged as plain
// [in, out] matrices, the layout the ONNX and tfjs peers multiply by.

/** Per block: attention's fused W_qkv [dModel, 3 * nHeads * dHead] and the rest as [in, out] matrices. */
export function blockMatrices(cfg, weights, layer) {
  const get = (name) => {
    const t = weights.get(`blocks.${layer}.${name}`);
    if (t === undefined) throw new Error(`gpt2 layout: missing weight blocks.${layer}.${name}`);
    return t.data;
  };
  const { dModel: D, nHeads: H, dHead: d } = cfg;
  const Hd = H * d;
  // W_Q/W_K/W_V: [H, D, d] -> columns [which * Hd + h * d + j] of one [D, 3 * Hd] matrix.
  const wqkv = new Float32Array(D * 3 * Hd);
  const bqkv = new Float32Array(3 * Hd);
  ["attn.W_Q", "attn.W_K", "attn.W_V"].forEach((name, which) => {
    const w = get(name);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < D; i++) {
        const src = (h * D + i) * d;
        wqkv.set(w.subarray(src, src + d), i * 3 * Hd + which * Hd + h * d);
      }
    }
    bqkv.set(get(name.replace("W_", "b_")), which * Hd); // [H, d] is already h * d + j
  });
  return {
    wqkv, bqkv,
    wo: get("attn.W_O"), // [H, d, D] is [Hd, D] row-major
    bo: get("attn.b_O"),
    win: get("mlp.W_in"), bin: get("mlp.b_in"),
    wout: get("mlp.W_out"), bout: get("mlp.b_out"),
  };
}

/** The config must be the processed GPT-2 form these peers implement. */
export function checkGpt2Config(cfg) {
  const ok = cfg.normalizationType === "LNPre" && cfg.actFn === "gelu_new" && cfg.positionalEmbeddingType === "standard" &&
    !cfg.gatedMlp && cfg.nKeyValueHeads === cfg.nHeads;
  if (!ok) throw new Error("peers: only processed GPT-2 models (LNPre, gelu_new, learned positions, no GQA) are exported");
}
