// A GPT-2-small-architecture model with random weights (12 layers, d_model 768, 12 heads,
// d_mlp 3072, vocab 50257, n_ctx 1024), written by the bench itself in TransformerLens
// layout; the same seed gives the same weights on every run.
import { HookedTransformer, Tensor, makeConfig, parameterShapes, processWeights } from "../dist/index.js";

export const GPT2_SMALL = { nLayers: 12, dModel: 768, nHeads: 12, dVocab: 50257, nCtx: 1024, dMlp: 3072 };

/** Uniform(-a, a) weights from a xorshift stream, a = std * sqrt(3). */
function fill(n, seed, std) {
  let s = seed >>> 0 || 1;
  const a = std * Math.sqrt(3) * 2 / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s * a - std * Math.sqrt(3);
  }
  return out;
}

/** { cfg, weights } with LayerNorm weights near 1, processed as fromPretrained would. */
export function gpt2SmallWeights(seed = 1) {
  const cfg = makeConfig(GPT2_SMALL);
  const weights = new Map();
  let k = seed;
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = fill(n, k++ * 7919, name.endsWith(".w") ? 0.05 : 0.02);
    if (name.endsWith(".w")) for (let i = 0; i < n; i++) data[i] += 1;
    weights.set(name, new Tensor(data, shape));
  }
  return processWeights(cfg, weights);
}

/** The model on a given engine. */
export function gpt2Small(engine, seed = 1) {
  const { cfg, weights } = gpt2SmallWeights(seed);
  return new HookedTransformer(cfg, weights, engine);
}

/** batch x pos token ids. */
export function randomTokens(batch, pos, seed, vocab = GPT2_SMALL.dVocab) {
  let s = seed >>> 0 || 1;
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % vocab;
  }));
}
