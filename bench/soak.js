// Soak: 10,000 forwards and 200 direct path sweeps on the embedded demo model, checking that
// WASM memory, the engine's allocations, the JS heap and the process RSS stay flat after
// warm-up and that every repeated result is bit-identical to the first one.
//
//   npm run soak            (builds the TypeScript, then runs this with --expose-gc)
//   node --experimental-wasm-relaxed-simd --expose-gc bench/soak.js [--forwards=N] [--sweeps=N]
//
// Prints the figures and writes bench/results/soak.json; exits 1 when a check fails.
import { mkdirSync, writeFileSync } from "node:fs";
import { Engine, demoPrompts, getActPatchDirectPath, loadDemoModel, logitDiff } from "../dist/index.js";

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const FORWARDS = arg("forwards", 10_000);
const SWEEPS = arg("sweeps", 200);
const WARMUP_FORWARDS = 500;
const WARMUP_SWEEPS = 10;
const MB = 1024 * 1024;
const gc = globalThis.gc ?? (() => {});

const engine = await Engine.create();
const model = await loadDemoModel({ engine });
const prompts = demoPrompts();
const metric = logitDiff(prompts);
const inputs = [prompts.clean, prompts.corrupted];
const sweepKinds = [
  { srcLayer: 0, srcHead: 1, component: "k", mode: "linear" },
  { srcLayer: 0, srcHead: 1, component: "k", mode: "exact" },
  { srcLayer: 0, srcHead: 3, component: "q", mode: "linear", strategy: "naive" },
];

const bits = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a, b) => a.length === b.length && Buffer.compare(bits(a), bits(b)) === 0;

function forward(i) {
  return model.forward(inputs[i % inputs.length]).logits.data;
}

async function sweep(i) {
  const clean = model.runWithCache(prompts.clean).cache;
  const corrupted = model.runWithCache(prompts.corrupted).cache;
  const result = await getActPatchDirectPath(model, prompts.corrupted, clean, corrupted, metric, sweepKinds[i % sweepKinds.length]);
  return result.scores.data;
}

function sample(phase, done) {
  gc();
  const m = process.memoryUsage();
  const s = engine.stats();
  return {
    phase, done,
    wasmBytes: engine.memory?.buffer.byteLength ?? 0,
    engineBytesInUse: s.bytesInUse, liveBlocks: s.liveBlocks,
    rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers,
  };
}

/** Runs `n` repetitions of `step`, checking each result against the first of its kind; samples memory along the way. */
async function soak(phase, n, warmup, kinds, step, samples) {
  const reference = [];
  let mismatches = 0;
  const started = performance.now();
  for (let i = 0; i < warmup + n; i++) {
    const out = await step(i);
    const k = i % kinds;
    if (reference[k] === undefined) reference[k] = out.slice();
    else if (!sameBits(out, reference[k])) mismatches++;
    if (i + 1 === warmup || (i + 1 > warmup && (i + 1 - warmup) % Math.max(1, Math.floor(n / 20)) === 0)) samples.push(sample(phase, i + 1 - warmup));
  }
  return { runs: n, warmup, mismatches, msPerRun: (performance.now() - started) / (warmup + n) };
}

const samples = [sample("start", 0)];
const forwards = await soak("forward", FORWARDS, WARMUP_FORWARDS, inputs.length, forward, samples);
const sweeps = await soak("sweep", SWEEPS, WARMUP_SWEEPS, sweepKinds.length, sweep, samples);

/** Growth over a phase after warm-up: `end` (last sample − first) and `peak` (highest sample − first). */
function drift(phase) {
  const s = samples.filter((x) => x.phase === phase);
  const first = s[0];
  const out = {};
  for (const key of ["wasmBytes", "engineBytesInUse", "liveBlocks", "rss", "heapUsed", "arrayBuffers"]) {
    out[key] = { end: s.at(-1)[key] - first[key], peak: Math.max(...s.map((x) => x[key])) - first[key] };
  }
  return out;
}

const limits = { rss: 32 * MB, heapUsed: 8 * MB, arrayBuffers: 8 * MB };
const checks = [];
for (const [phase, stats] of [["forward", forwards], ["sweep", sweeps]]) {
  const d = drift(phase);
  checks.push([`${phase}: every repeated result bit-identical`, stats.mismatches === 0, `${stats.mismatches} mismatches`]);
  checks.push([`${phase}: WASM memory flat after warm-up`, d.wasmBytes.peak === 0, `peak +${d.wasmBytes.peak} bytes`]);
  checks.push([`${phase}: engine allocations flat after warm-up`, d.engineBytesInUse.peak === 0 && d.liveBlocks.peak === 0,
    `peak +${d.engineBytesInUse.peak} bytes, +${d.liveBlocks.peak} blocks`]);
  // The JS side is garbage-collected: judged by where it ends, with its peak shown.
  for (const key of ["rss", "heapUsed", "arrayBuffers"]) {
    checks.push([`${phase}: ${key} growth after warm-up < ${limits[key] / MB} MiB`, d[key].end < limits[key],
      `end ${(d[key].end / MB).toFixed(2)} MiB, peak +${(d[key].peak / MB).toFixed(2)} MiB`]);
  }
}

const last = samples.at(-1);
const summary = {
  date: new Date().toISOString(),
  node: process.version,
  engine: `${engine.backend}/${engine.variant}`,
  forwards, sweeps,
  final: { wasmMiB: last.wasmBytes / MB, rssMiB: +(last.rss / MB).toFixed(1), heapUsedMiB: +(last.heapUsed / MB).toFixed(1), engineBytesInUse: last.engineBytesInUse },
  drift: { forward: drift("forward"), sweep: drift("sweep") },
  checks: checks.map(([name, ok, detail]) => ({ name, ok, detail })),
  samples,
};

console.log(`soak on ${summary.engine}, node ${process.version}`);
console.log(`forwards: ${forwards.runs} (+${forwards.warmup} warm-up), ${forwards.msPerRun.toFixed(3)} ms each`);
console.log(`sweeps:   ${sweeps.runs} (+${sweeps.warmup} warm-up), ${sweeps.msPerRun.toFixed(1)} ms each`);
console.log(`final: WASM memory ${summary.final.wasmMiB} MiB, RSS ${summary.final.rssMiB} MiB, heap ${summary.final.heapUsedMiB} MiB, engine bytes in use ${last.engineBytesInUse}`);
for (const [name, ok, detail] of checks) console.log(`${ok ? "ok  " : "FAIL"} ${name} (${detail})`);
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(new URL("./results/soak.json", import.meta.url), JSON.stringify(summary, null, 2) + "\n");
if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
