// Exports a processed hooklens GPT-2 model (cfg + TransformerLens-named weights) to ONNX,
// standard opset-20 ops only, as a Hugging Face export would lay it out: one fused QKV
// MatMul per block, LayerNormalization, Softmax over an additive causal mask, Gelu with
// the tanh approximation (gelu_new). Input `input_ids` int64 [batch, pos]; output `logits`
// [batch, pos, dVocab], or with unembed false `normalized` (ln_final's output) [batch, pos, dModel].
import { FLOAT, GraphBuilder, INT64 } from "./onnx.js";
import { blockMatrices, checkGpt2Config } from "./gpt2-layout.js";

export function gpt2Onnx(cfg, weights, { unembed = true } = {}) {
  checkGpt2Config(cfg);
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx, eps } = cfg;
  const g = new GraphBuilder();
  const w = (name) => weights.get(name).data;
  const ints = (...xs) => BigInt64Array.from(xs.map(BigInt));

  const ids = g.input("input_ids", INT64, ["batch", "pos"]);
  const ones = g.constant("ln.ones", [D], new Float32Array(D).fill(1));
  const zeros = g.constant("ln.zeros", [D], new Float32Array(D));
  // LNPre: the folded norms only centre and scale.
  const layerNorm = (x) => g.op("LayerNormalization", [x, ones, zeros], { axis: { i: -1 }, epsilon: { f: eps } });
  const linear = (x, name, wData, bData, k, n) =>
    g.op("Add", [g.op("MatMul", [x, g.constant(`${name}.w`, [k, n], wData)]), g.constant(`${name}.b`, [n], bData)]);

  // Sequence length from the input; positions and the causal mask are slices of full-context tables.
  const pos = g.op("Shape", [ids], { start: { i: 1 }, end: { i: 2 } }); // [1] = [pos]
  const zero = g.constant("c.zero", [1], ints(0));
  const zero2 = g.constant("c.zero2", [2], ints(0, 0));
  const posEmbed = g.op("Slice", [g.constant("pos_embed.W_pos", [nCtx, D], w("pos_embed.W_pos")), zero, pos, zero]); // [pos, D]
  const causal = new Float32Array(nCtx * nCtx);
  for (let i = 0; i < nCtx; i++) causal.fill(-Infinity, i * nCtx + i + 1, (i + 1) * nCtx);
  const mask = g.op("Slice", [g.constant("c.causal", [nCtx, nCtx], causal), zero2, g.op("Concat", [pos, pos], { axis: { i: 0 } })]); // [pos, pos]

  const tokenEmbed = g.op("Gather", [g.constant("embed.W_E", [V, D], w("embed.W_E")), ids]); // [B, pos, D]
  let resid = g.op("Add", [tokenEmbed, posEmbed]);
  const headsShape = g.constant("c.heads", [4], ints(0, 0, H, d)); // Reshape: 0 keeps that dim
  const mergedShape = g.constant("c.merged", [3], ints(0, 0, H * d));
  const splits = g.constant("c.qkv", [3], ints(H * d, H * d, H * d));
  const scale = g.constant("c.scale", [], Float32Array.of(1 / cfg.attnScale));

  for (let l = 0; l < nLayers; l++) {
    const m = blockMatrices(cfg, weights, l);
    const b = `blocks.${l}`;
    const qkv = linear(layerNorm(resid), `${b}.qkv`, m.wqkv, m.bqkv, D, 3 * H * d); // [B, pos, 3 * H * d]
    const [q, k, v] = g.op("Split", [qkv, splits], { axis: { i: -1 } }, 3).map((x) => g.op("Reshape", [x, headsShape])); // [B, pos, H, d]
    const qT = g.op("Transpose", [q], { perm: { ints: [0, 2, 1, 3] } }); // [B, H, pos, d]
    const kT = g.op("Transpose", [k], { perm: { ints: [0, 2, 3, 1] } }); // [B, H, d, pos]
    const vT = g.op("Transpose", [v], { perm: { ints: [0, 2, 1, 3] } }); // [B, H, pos, d]
    const scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [qT, kT]), scale]), mask]); // [B, H, pos, pos]
    const pattern = g.op("Softmax", [scores], { axis: { i: -1 } });
    const z = g.op("Transpose", [g.op("MatMul", [pattern, vT])], { perm: { ints: [0, 2, 1, 3] } }); // [B, pos, H, d]
    const attnOut = linear(g.op("Reshape", [z, mergedShape]), `${b}.attn_out`, m.wo, m.bo, H * d, D);
    resid = g.op("Add", [resid, attnOut]);
    const pre = linear(layerNorm(resid), `${b}.mlp_in`, m.win, m.bin, D, M); // [B, pos, M]
    const post = g.op("Gelu", [pre], { approximate: { s: "tanh" } });
    resid = g.op("Add", [resid, linear(post, `${b}.mlp_out`, m.wout, m.bout, M, D)]);
  }

  if (unembed) {
    const normalized = layerNorm(resid);
    g.op("Add", [g.op("MatMul", [normalized, g.constant("unembed.W_U", [D, V], w("unembed.W_U"))]),
      g.constant("unembed.b_U", [V], w("unembed.b_U"))], {}, ["logits"]);
    g.output("logits", FLOAT, ["batch", "pos", V]);
  } else {
    g.op("LayerNormalization", [resid, ones, zeros], { axis: { i: -1 }, epsilon: { f: eps } }, ["normalized"]);
    g.output("normalized", FLOAT, ["batch", "pos", D]);
  }
  return g.model({ name: "gpt2", opset: 20 });
}
