// Peer: the same processed GPT-2 model written with tfjs ops, for @tensorflow/tfjs-backend-wasm
// (XNNPACK). Weights are uploaded once; a forward returns logits [batch * pos, dVocab] or,
// without the unembedding, ln_final's output [batch * pos, dModel], read back into JS.
// `inputGradient` differentiates the logit difference with tf.grads (the whole backward through
// every block) and returns its gradient at the embeddings.
import { blockMatrices, checkGpt2Config } from "./gpt2-layout.js";

/** Uploads the weights; returns { forward(tokens, unembed) -> Float32Array, dispose() }. */
export function tfjsGpt2(tf, cfg, weights) {
  checkGpt2Config(cfg);
  const { nLayers, dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, nCtx, eps } = cfg;
  const Hd = H * d;
  const w = (name) => weights.get(name).data;
  const kept = [];
  const upload = (data, shape) => {
    const t = tf.tensor(data, shape, "float32");
    kept.push(t);
    return t;
  };
  const WE = upload(w("embed.W_E"), [V, D]);
  const Wpos = upload(w("pos_embed.W_pos"), [nCtx, D]);
  const WU = upload(w("unembed.W_U"), [D, V]);
  const bU = upload(w("unembed.b_U"), [V]);
  const blocks = Array.from({ length: nLayers }, (_, l) => {
    const m = blockMatrices(cfg, weights, l);
    return {
      wqkv: upload(m.wqkv, [D, 3 * Hd]), bqkv: upload(m.bqkv, [3 * Hd]),
      wo: upload(m.wo, [Hd, D]), bo: upload(m.bo, [D]),
      win: upload(m.win, [D, M]), bin: upload(m.bin, [M]),
      wout: upload(m.wout, [M, D]), bout: upload(m.bout, [D]),
    };
  });
  const masks = new Map(); // pos -> additive causal mask [pos, pos]
  const causalMask = (P) => {
    if (!masks.has(P)) {
      const data = new Float32Array(P * P);
      for (let i = 0; i < P; i++) data.fill(-Infinity, i * P + i + 1, (i + 1) * P);
      masks.set(P, upload(data, [P, P]));
    }
    return masks.get(P);
  };

  // LNPre: the folded norms only centre and scale.
  const layerNorm = (x) => {
    const centred = tf.sub(x, tf.mean(x, -1, true));
    return tf.mul(centred, tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), eps)));
  };
  const linear = (x, wt, b) => tf.fused.matMul({ a: x, b: wt, bias: b });
  const geluNew = (x) => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  };
  // pow's gradient also differentiates the exponent (through a log): x·x·x has the same value.
  const geluNewCubed = (x) => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(x, tf.mul(x, x)))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  };
  // The blocks and ln_final from the residual stream [B*P, D].
  const blocksFrom = (resid, B, P, act, mask) => {
    for (const p of blocks) {
      const qkv = linear(layerNorm(resid), p.wqkv, p.bqkv); // [B*P, 3*Hd]
      const [q, k, v] = tf.split(qkv, 3, 1).map((x) => tf.transpose(tf.reshape(x, [B, P, H, d]), [0, 2, 1, 3])); // [B, H, P, d]
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / cfg.attnScale), mask); // [B, H, P, P]
      const z = tf.matMul(tf.softmax(scores), v); // [B, H, P, d]
      const zRows = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B * P, Hd]);
      resid = tf.add(resid, linear(zRows, p.wo, p.bo));
      const post = act(linear(layerNorm(resid), p.win, p.bin)); // [B*P, M]
      resid = tf.add(resid, linear(post, p.wout, p.bout));
    }
    return layerNorm(resid);
  };

  const forward = (tokens, unembed) => {
    const B = tokens.length;
    const P = tokens[0].length;
    const mask = causalMask(P); // uploaded once, outside tidy (which would dispose it)
    const out = tf.tidy(() => {
      const ids = tf.tensor1d(tokens.flat(), "int32");
      const embed = tf.reshape(tf.gather(WE, ids), [B, P, D]);
      const resid = tf.reshape(tf.add(embed, tf.slice(Wpos, [0, 0], [P, D])), [B * P, D]); // [B*P, D]
      const normalized = blocksFrom(resid, B, P, geluNew, mask);
      return unembed ? linear(normalized, WU, bU) : normalized;
    });
    const data = out.dataSync();
    out.dispose();
    return data;
  };

  /** d(mean logit[correct] - logit[incorrect] at the last position)/d(embeddings) [B*P*D], by tf.grads. */
  const inputGradient = (tokens, correct, incorrect) => {
    const B = tokens.length;
    const P = tokens[0].length;
    const pick = new Float32Array(B * P * V); // +1/B at (row's last position, correct), -1/B at incorrect
    for (let b = 0; b < B; b++) {
      pick[((b * P) + P - 1) * V + correct[b]] += 1 / B;
      pick[((b * P) + P - 1) * V + incorrect[b]] -= 1 / B;
    }
    const mask = causalMask(P);
    const out = tf.tidy(() => {
      const ids = tf.tensor1d(tokens.flat(), "int32");
      const resid = tf.reshape(tf.add(tf.reshape(tf.gather(WE, ids), [B, P, D]), tf.slice(Wpos, [0, 0], [P, D])), [B * P, D]);
      const weights = tf.tensor2d(pick, [B * P, V]);
      const metric = (x) => tf.sum(tf.mul(linear(blocksFrom(x, B, P, geluNewCubed, mask), WU, bU), weights));
      const [grad] = tf.grads(metric)([resid]);
      return grad;
    });
    const data = out.dataSync();
    out.dispose();
    return data;
  };

  return {
    forward,
    inputGradient,
    dispose: () => kept.forEach((t) => t.dispose()),
  };
}
