// One row per model family at one shared 160M-class shape (Pythia-160M's: 12 layers, d_model 768,
// 12 heads, vocabulary 50304; LLaMA-family ones with 4 key/value heads and a SwiGLU MLP of 2048),
// random weights exported through each family's own Hugging Face layout (hfFiles) and loaded back
// with fromPretrained: load time and WASM memory, the forward at 1 × 16, and a direct path sweep
// from head (0, 0) into q at 1 × 16 (planned, and naive for the ratio).
//
//   node --experimental-wasm-relaxed-simd bench/run.js families [--quick] [--only=gemma2,gpt2]
//
// --quick keeps 2 of the 12 layers; --only runs the named families.
import { Bench } from "tinybench";
import { Engine, HookedTransformer, getActPatchDirectPath, logitDiff, makeConfig, parameterShapes, Tensor } from "../dist/index.js";
import { hfFiles } from "../dist/model/families/index.js";

const BASE = { nLayers: 12, dModel: 768, nHeads: 12, dVocab: 50304, nCtx: 2048 };
const LLAMA = { ...BASE, nKeyValueHeads: 4, gatedMlp: true, actFn: "silu", dMlp: 2048, normalizationType: "RMS", positionalEmbeddingType: "rotary", eps: 1e-5 };

/** Each family's config: what its adapter reads from a config.json of that architecture. */
export const FAMILY_SHAPES = {
  gpt2: { ...BASE, originalArchitecture: "GPT2LMHeadModel" },
  gpt_neox: {
    ...BASE, originalArchitecture: "GPTNeoXForCausalLM", positionalEmbeddingType: "rotary", rotaryDim: 16, parallelAttnMlp: true, actFn: "gelu",
  },
  llama: { ...LLAMA, originalArchitecture: "LlamaForCausalLM" },
  llama3: { ...LLAMA, originalArchitecture: "LlamaForCausalLM", rotaryBase: 500000,
    rotaryScaling: { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } },
  qwen2: { ...LLAMA, originalArchitecture: "Qwen2ForCausalLM", rotaryBase: 1e6, qkvBias: true },
  mistral: { ...LLAMA, originalArchitecture: "MistralForCausalLM", slidingWindow: 8 },
  olmo: { ...LLAMA, originalArchitecture: "OlmoForCausalLM", normalizationType: "LN" },
  gemma2: { ...LLAMA, originalArchitecture: "Gemma2ForCausalLM", actFn: "gelu_new", dHead: 128, postNorms: true, attnSoftcap: 50, finalSoftcap: 30,
    slidingWindow: 8, attnTypes: Array.from({ length: 12 }, (_, l) => (l % 2 === 0 ? "local" : "global")), attnScale: Math.sqrt(256) },
};

/** A seeded uniform fill with standard deviation `std` (mulberry32). */
function fill(n, seed, std, offset = 0) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const a = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = offset + a * (2 * (((t ^ (t >>> 14)) >>> 0) / 4294967296) - 1);
  }
  return out;
}

/** Random unprocessed weights of a family's config: matrices std 0.02, norm weights 1, biases 0 (Qwen2's q/k/v: 0.02). */
function randomWeights(cfg, qkvBias) {
  const weights = new Map();
  let seed = 1;
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /(^|\.)ln(1|2|_final)\.[wb]$/.test(name) || name.startsWith("ln_final.");
    let data;
    if (isNorm) data = new Float32Array(n).fill(name.endsWith(".w") ? 1 : 0);
    else if (/\.b_[QKV]$|\._b_[KV]$/.test(name)) data = qkvBias ? fill(n, seed++, 0.02) : new Float32Array(n);
    else if (/\.b_|b_U$/.test(name)) data = new Float32Array(n);
    else data = fill(n, seed++, 0.02);
    if (/ln\d_post\.w$/.test(name)) data = new Float32Array(n).fill(1);
    weights.set(name, new Tensor(data, shape));
  }
  return weights;
}

function ioiPrompts(vocab, pos) {
  const ids = fill(pos, 7, 0.28, 0.5);
  const clean = [Array.from(ids, (x) => 3 + Math.floor(x * (vocab - 3)))];
  const corrupted = clean.map((row) => row.map((t, p) => (p === 10 ? 3 + ((t + 977) % (vocab - 3)) : t)));
  return { clean, corrupted, metric: logitDiff({ correct: [clean[0][10]], incorrect: [corrupted[0][10]] }) };
}

export async function run({ quick, args = [] }) {
  const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const rows = [];
  const time = quick ? 200 : 2000;
  console.log("| family | parameters | load | WASM memory | forward 1 × 16 | direct path sweep (0.0 → q), planned | naive | naive / planned |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [family, spec] of Object.entries(FAMILY_SHAPES)) {
    if (only !== undefined && !only.includes(family)) continue;
    const { qkvBias, ...partial } = spec;
    const nLayers = quick ? 2 : partial.nLayers;
    const cfg = makeConfig({ ...partial, nLayers, ...(partial.attnTypes ? { attnTypes: partial.attnTypes.slice(0, nLayers) } : {}) });
    let files = hfFiles(cfg, randomWeights(cfg, qkvBias === true));
    const engine = await Engine.create();
    const t0 = performance.now();
    const model = await HookedTransformer.fromPretrained(files, { engine, tokenizer: false });
    const loadMs = performance.now() - t0;
    files = undefined;
    if (model.cfg.originalArchitecture !== spec.originalArchitecture) throw new Error(`${family}: loaded as ${model.cfg.originalArchitecture}`);
    const parameters = [...parameterShapes(cfg).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    const memory = engine.stats().memoryBytes;
    const { clean, corrupted, metric } = ioiPrompts(cfg.dVocab, 16);
    const bench = new Bench({ time, iterations: 3, warmupTime: time / 5, warmupIterations: 1 });
    bench.add("forward", () => model.forward(clean, { returnType: "logits" }));
    await bench.run();
    const forwardMs = bench.tasks[0].result.latency.mean;
    const cleanCache = model.runWithCache(clean).cache;
    const corruptedCache = model.runWithCache(corrupted).cache;
    const sweep = async (strategy) => {
      const t = performance.now();
      await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { srcLayer: 0, srcHead: 0, component: "q", strategy });
      return performance.now() - t;
    };
    await sweep("planned"); // warm-up
    const plannedMs = await sweep("planned");
    const naiveMs = await sweep("naive");
    const row = { suite: "families", family, architecture: spec.originalArchitecture, nLayers: cfg.nLayers, parameters, loadMs, wasmMemoryBytes: memory,
      engine: engine.variant, forwardMs, plannedMs, naiveMs, speedup: naiveMs / plannedMs };
    rows.push(row);
    console.log(`| ${family} | ${(parameters / 1e6).toFixed(0)}M | ${(loadMs / 1000).toFixed(1)} s | ${(memory / 2 ** 30).toFixed(2)} GiB | ` +
      `${forwardMs.toFixed(1)} ms | ${plannedMs.toFixed(0)} ms | ${naiveMs.toFixed(0)} ms | × ${(naiveMs / plannedMs).toFixed(1)} |`);
    model.dispose();
  }
  return rows;
}
