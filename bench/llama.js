// LLaMA-family models at real sizes, random weights written by the bench as a Hugging Face
// folder would hold them (config.json + BF16 model.safetensors, tied embeddings) and loaded
// through HookedTransformer.fromPretrained:
//
//   small  SmolLM2-135M shape: forward at batch 1 x 16 (wasm, and the js twin once), and the
//          single-source direct path sweep (source (0, 0), q, linear, logit difference,
//          IOI-shaped prompts differing only at position 10), planned vs naive in one run.
//   large  Qwen2.5-0.5B shape (as a plain LLaMA: no q/k/v biases): does it load into the
//          4 GiB WASM memory, the memory after loading, the peak during a forward at 1 x 16 and
//          during a small sweep, and the process RSS.
//
//   node --experimental-wasm-relaxed-simd bench/run.js llama [--quick] [--parts=small,large] [--naive-cap=600]
//
// --quick keeps 4 of SmolLM2's 30 layers and skips the large part. The naive sweep is skipped
// when its estimate (patches x one full forward) exceeds --naive-cap seconds.
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, HookedTransformer, getActPatchDirectPath, logitDiff, writeSafetensors } from "../dist/index.js";

export const SMOLLM2_135M = {
  name: "SmolLM2-135M", nLayers: 30, dModel: 576, nHeads: 9, nKeyValueHeads: 3, dMlp: 1536, dVocab: 49152, nCtx: 2048, ropeTheta: 100000, eps: 1e-5,
};
export const QWEN25_05B = {
  name: "Qwen2.5-0.5B", nLayers: 24, dModel: 896, nHeads: 14, nKeyValueHeads: 2, dMlp: 4864, dVocab: 151936, nCtx: 32768, ropeTheta: 1000000, eps: 1e-6,
};

const GiB = 2 ** 30;
const gib = (bytes) => `${(bytes / GiB).toFixed(2)} GiB`;

/** A splitmix32-style stream of uniform floats in (-a, a). */
function randomFill(n, seed, a, offset = 0) {
  const out = new Float32Array(n);
  let s = (seed * 0x9e3779b9) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    out[i] = offset + a * (z / 2147483648 - 1);
  }
  return out;
}

/** Parameter count of a tied-embedding LLaMA shape (what a Hugging Face model card reports). */
export function parameterCount(shape) {
  const { nLayers: L, dModel: D, nHeads: H, nKeyValueHeads: Hk, dMlp: M, dVocab: V } = shape;
  const d = D / H;
  return V * D + L * (2 * D + 2 * H * d * D + 2 * Hk * d * D + 3 * D * M) + D;
}

/** config.json and a BF16 model.safetensors in Hugging Face LLaMA layout ([out, in] projections, no lm_head: tied). */
export function llamaHfFiles(shape, seed = 1) {
  const { nLayers: L, dModel: D, nHeads: H, nKeyValueHeads: Hk, dMlp: M, dVocab: V } = shape;
  const d = D / H;
  const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "silu",
    hidden_size: D, intermediate_size: M, num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: Hk,
    max_position_embeddings: shape.nCtx, rms_norm_eps: shape.eps, rope_theta: shape.ropeTheta, rope_scaling: null,
    attention_bias: false, mlp_bias: false, tie_word_embeddings: true, vocab_size: V,
    bos_token_id: 1, eos_token_id: 2, torch_dtype: "bfloat16",
  };
  let k = seed;
  // Uniform with std 0.02 (a = std * sqrt(3)); norm weights near 1.
  const matrix = (rows, cols) => ({ shape: [rows, cols], data: randomFill(rows * cols, k++, 0.02 * Math.sqrt(3)) });
  const norm = () => ({ shape: [D], data: randomFill(D, k++, 0.05, 1) });
  const tensors = { "model.embed_tokens.weight": matrix(V, D) };
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    tensors[`${p}input_layernorm.weight`] = norm();
    tensors[`${p}self_attn.q_proj.weight`] = matrix(H * d, D);
    tensors[`${p}self_attn.k_proj.weight`] = matrix(Hk * d, D);
    tensors[`${p}self_attn.v_proj.weight`] = matrix(Hk * d, D);
    tensors[`${p}self_attn.o_proj.weight`] = matrix(D, H * d);
    tensors[`${p}post_attention_layernorm.weight`] = norm();
    tensors[`${p}mlp.gate_proj.weight`] = matrix(M, D);
    tensors[`${p}mlp.up_proj.weight`] = matrix(M, D);
    tensors[`${p}mlp.down_proj.weight`] = matrix(D, M);
  }
  tensors["model.norm.weight"] = norm();
  return {
    "config.json": new TextEncoder().encode(JSON.stringify(config)),
    "model.safetensors": writeSafetensors(tensors, { dtype: "BF16" }),
  };
}

/** Records the largest bytesInUse seen at any allocation on `engine` (the forward allocates its arena there). */
function trackPeak(engine) {
  const alloc = engine.alloc;
  let peak = engine.stats().bytesInUse;
  engine.alloc = function (floats) {
    const ptr = alloc.call(this, floats);
    peak = Math.max(peak, engine.stats().bytesInUse);
    return ptr;
  };
  return {
    get peak() { return peak; },
    reset() { peak = engine.stats().bytesInUse; },
  };
}

/** batch x pos clean tokens and corrupted ones that differ only at position 10 (the IOI name slot). */
function ioiPrompts(vocab, batch, pos, seed) {
  const ids = randomFill(batch * pos, seed, 0.5, 0.5);
  const clean = Array.from({ length: batch }, (_, b) => Array.from({ length: pos }, (_, p) => 3 + Math.floor(ids[b * pos + p] * (vocab - 3))));
  const at = Math.min(10, pos - 2);
  const corrupted = clean.map((row) => row.map((t, p) => (p === at ? 3 + ((t + 977) % (vocab - 3)) : t)));
  const metric = logitDiff({ correct: clean.map((r) => r[at]), incorrect: corrupted.map((r) => r[at]) });
  return { clean, corrupted, metric };
}

async function loadShape(shape, engine, dtype = "f32") {
  const t0 = performance.now();
  let files = llamaHfFiles(shape);
  const safetensorsBytes = files["model.safetensors"].byteLength;
  const t1 = performance.now();
  const model = await HookedTransformer.fromPretrained(files, { engine, tokenizer: false, dtype });
  files = undefined;
  const t2 = performance.now();
  return { model, writeMs: t1 - t0, loadMs: t2 - t1, safetensorsBytes };
}

async function smallPart(quick, naiveCapSeconds) {
  const shape = quick ? { ...SMOLLM2_135M, name: "SmolLM2-135M (4 layers)", nLayers: 4 } : SMOLLM2_135M;
  const engine = await Engine.create();
  const { model, loadMs } = await loadShape(shape, engine);
  const [batch, pos] = [1, 16];
  const { clean, corrupted, metric } = ioiPrompts(shape.dVocab, batch, pos, 7);
  const rows = [];
  const describe = `${shape.name} shape, ${(parameterCount(shape) / 1e6).toFixed(0)}M parameters`;
  console.log(`${describe}: loaded (BF16 safetensors -> f32) in ${(loadMs / 1000).toFixed(1)} s; WASM memory ${gib(engine.stats().memoryBytes)}`);

  const time = quick ? 200 : 3000;
  const bench = new Bench({ time, iterations: 3, warmupTime: time / 5, warmupIterations: 1 });
  bench.add("wasm", () => model.forward(clean, { returnType: "logits" }));
  await bench.run();
  const wasmMs = bench.tasks[0].result.latency.mean;
  const js = new HookedTransformer(model.cfg, model.weights, Engine.createJs());
  const tj = performance.now();
  const jsLogits = js.forward(clean, { returnType: "logits" }).logits;
  const jsMs = performance.now() - tj;
  const wasmLogits = model.forward(clean, { returnType: "logits" }).logits;
  let maxDiff = 0;
  for (let i = 0; i < jsLogits.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(jsLogits.data[i] - wasmLogits.data[i]));
  js.dispose();
  console.log(`forward 1x16 (logits): wasm ${wasmMs.toFixed(1)} ms [${engine.variant}], js twin ${jsMs.toFixed(0)} ms (x${(jsMs / wasmMs).toFixed(1)}), max |wasm - js| ${maxDiff.toExponential(1)}`);
  rows.push({ suite: "llama", part: "small", op: "forward", shape: shape.name, batch, pos, engine: engine.variant, ms: wasmMs, jsMs, vsJs: jsMs / wasmMs, maxDiff });

  const cleanCache = model.runWithCache(clean).cache;
  const corruptedCache = model.runWithCache(corrupted).cache;
  const patches = (shape.nLayers - 1) * shape.nHeads;
  const naiveEstimateS = (patches * wasmMs) / 1000;
  const sweep = async (strategy) => {
    let plan;
    const t = performance.now();
    const r = await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric,
      { srcLayer: 0, srcHead: 0, component: "q", mode: "linear", strategy, onPlan: (p) => { plan = p; } });
    return { ms: performance.now() - t, scores: r.scores.data, plan };
  };
  const planned = await sweep("planned");
  let naive;
  if (naiveEstimateS <= naiveCapSeconds) naive = await sweep("naive");
  let diff = 0;
  if (naive) planned.scores.forEach((s, i) => { diff = Math.max(diff, Math.abs(s - naive.scores[i])); });
  console.log(`direct path sweep, source (0,0) -> q of ${patches} heads, linear, 1x16 differing at pos 10: planned ${(planned.ms / 1000).toFixed(2)} s, ` +
    (naive
      ? `naive ${(naive.ms / 1000).toFixed(2)} s, x${(naive.ms / planned.ms).toFixed(1)} (plan estimate x${planned.plan?.estimatedSpeedup?.toFixed(1)}), max |planned - naive| ${diff.toExponential(1)}`
      : `naive skipped (estimate ${naiveEstimateS.toFixed(0)} s > cap ${naiveCapSeconds} s)`));
  rows.push({
    suite: "llama", part: "small", op: "direct path sweep", shape: shape.name, batch, pos, patches, engine: engine.variant,
    plannedMs: planned.ms, naiveMs: naive?.ms, speedup: naive ? naive.ms / planned.ms : undefined,
    estimatedSpeedup: planned.plan?.estimatedSpeedup, maxDiff: naive ? diff : undefined, naiveEstimateS,
  });
  model.dispose();
  return rows;
}

/** Loads `shape` (random BF16 weights) with weights stored as `dtype`, then a forward and a small direct path sweep at 1 × 16, with the memory each takes. */
export async function largePart(shape = QWEN25_05B, dtype = "f32") {
  const params = parameterCount(shape);
  const { nLayers: L, dModel: D, nHeads: H, nKeyValueHeads: Hk, dMlp: M, dVocab: V } = shape;
  const d = D / H;
  // What the engine holds in f32: every block matrix, W_E [V, D] and W_U [D, V] (tied in the file, both uploaded).
  const uploadedFloats = 2 * V * D + L * (2 * H * d * D + 2 * Hk * d * D + 3 * D * M);
  console.log(`${shape.name} shape as LLaMA (${(params / 1e6).toFixed(0)}M parameters; ${gib(uploadedFloats * 4)} of f32 weights to upload, W_E and W_U both)`);
  const engine = await Engine.create();
  const tracker = trackPeak(engine);
  const row = { suite: "llama", part: "large", shape: shape.name, dtype, params, uploadedWeightBytes: uploadedFloats * 4 };
  let model;
  try {
    const loaded = await loadShape(shape, engine, dtype);
    model = loaded.model;
    Object.assign(row, { loads: true, loadMs: loaded.loadMs, safetensorsBytes: loaded.safetensorsBytes });
  } catch (e) {
    row.loads = false;
    row.error = e.message;
    console.log(`does not load: ${e.message}`);
    return [row];
  }
  globalThis.gc?.();
  const afterLoad = engine.stats();
  // maxRSS: the process's peak resident memory so far (KiB), the host's cost of loading.
  Object.assign(row, { bytesInUseAfterLoad: afterLoad.bytesInUse, memoryAfterLoad: engine.memory.buffer.byteLength, rssAfterLoad: process.memoryUsage().rss,
    peakRssAfterLoad: process.resourceUsage().maxRSS * 1024 });
  console.log(`loads: ${(row.loadMs / 1000).toFixed(1)} s from ${gib(row.safetensorsBytes)} of BF16 safetensors; in use ${gib(afterLoad.bytesInUse)}, ` +
    `WASM memory ${gib(row.memoryAfterLoad)} of 4 GiB; RSS ${gib(row.rssAfterLoad)} (peak ${gib(row.peakRssAfterLoad)})`);

  const { clean, corrupted, metric } = ioiPrompts(V, 1, 16, 7);
  tracker.reset();
  const t0 = performance.now();
  model.forward(clean, { returnType: "logits" });
  Object.assign(row, { forwardMs: performance.now() - t0, forwardPeakInUse: tracker.peak, memoryAfterForward: engine.memory.buffer.byteLength });
  console.log(`forward 1x16: ${row.forwardMs.toFixed(0)} ms; peak in use ${gib(row.forwardPeakInUse)}, WASM memory ${gib(row.memoryAfterForward)}`);

  tracker.reset();
  const t1 = performance.now();
  const cleanCache = model.runWithCache(clean).cache;
  const corruptedCache = model.runWithCache(corrupted).cache;
  const srcLayer = L - 4;
  const result = await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { srcLayer, srcHead: 0, component: "q" });
  Object.assign(row, {
    sweep: `caches + direct path from (${srcLayer}, 0) into q of layers ${srcLayer + 1}..${L - 1} (${3 * H} patches)`,
    sweepMs: performance.now() - t1, sweepPeakInUse: tracker.peak, memoryAfterSweep: engine.memory.buffer.byteLength,
    rssAfterSweep: process.memoryUsage().rss, sweepFinite: result.scores.data.every(Number.isFinite),
  });
  console.log(`sweep (${row.sweep}): ${(row.sweepMs / 1000).toFixed(1)} s; peak in use ${gib(row.sweepPeakInUse)}, ` +
    `WASM memory ${gib(row.memoryAfterSweep)}; RSS ${gib(row.rssAfterSweep)}`);
  model.dispose();
  return [row];
}

export async function run(options = {}) {
  const args = options.args ?? [];
  const arg = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const parts = arg("parts")?.split(",") ?? (options.quick ? ["small"] : ["large", "small"]);
  const naiveCap = Number(arg("naive-cap") ?? 600);
  const rows = [];
  // The large model first, so the RSS it reports is not inflated by the small one's buffers.
  if (parts.includes("large")) rows.push(...await largePart());
  if (parts.includes("small")) rows.push(...await smallPart(options.quick, naiveCap));
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick"), args: process.argv.slice(2) });
}
