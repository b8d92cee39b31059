// Model-level peers: one GPT-2-small-architecture forward (random weights written by the bench,
// see ../gpt2-small.js) at batch 1 x 16, 1 x 64 and 8 x 16, with the unembedding (logits of
// every position) and without it (ln_final's output), on
//   - hooklens relaxed and plain SIMD, one thread: model.forward, and runWithCache of every hook;
//   - hooklens with two threads, when Engine.create({ threads: 2 }) gives an engine with threads === 2;
//   - onnxruntime-web (WASM execution provider) with 1 and 2 threads, on the same weights exported
//     to ONNX by the bench (onnx-gpt2.js);
//   - tfjs with the wasm backend (XNNPACK, one thread), the same model in tfjs ops (tfjs-gpt2.js).
// Every system's output is checked against hooklens plain SIMD before it is timed.
//
//   node --experimental-wasm-relaxed-simd bench/run.js peers [--quick]
//
// Each shape runs rounds of one call per system, in an order rotated every round, so the systems
// take turns call by call; a system's figure is its fastest call (noise only adds time), and
// the median is kept beside it in the results.
import os from "node:os";
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, HookedTransformer, supportsRelaxedSimd } from "../../dist/index.js";
import { relError } from "../check.js";
import { gpt2SmallWeights, randomTokens } from "../gpt2-small.js";
import { gpt2Onnx } from "./onnx-gpt2.js";
import { int64Tokens, startOrt } from "./ort.js";
import { loadTfjsWasm } from "./tfjs.js";
import { tfjsGpt2 } from "./tfjs-gpt2.js";

const SHAPES = [[1, 16], [1, 64], [8, 16]];
const MAX_REL_ERROR = 1e-3;
const FINAL = "ln_final.hook_normalized";

/** hooklens systems on one engine: forward, and (logits only) runWithCache of every hook. */
function hooklensSystems(model, label) {
  const forward = {
    name: label,
    applies: () => true,
    run: (t) => { model.forward(t.tokens, { returnType: t.unembed ? "logits" : "none" }); },
    // forward "none" returns nothing: check ln_final's output through a one-hook cache instead.
    output: (t) => (t.unembed ? model.forward(t.tokens).logits : model.runWithCache(t.tokens, { namesFilter: FINAL }).cache.get(FINAL)).data,
  };
  // runWithCache always unembeds (TransformerLens's run_with_cache returns logits).
  const cached = {
    name: `${label}+cache`,
    applies: (unembed) => unembed,
    run: (t) => { model.runWithCache(t.tokens); },
    output: (t) => model.runWithCache(t.tokens).logits.data,
  };
  return [forward, cached];
}

function ortSystem(ort, label) {
  const model = (t) => (t.unembed ? "logits" : "none");
  return {
    name: label,
    applies: () => true,
    run: (t) => ort.run(model(t), t.ids, t.batch, t.pos),
    output: async (t) => (await ort.run(model(t), t.ids, t.batch, t.pos, true)).data,
  };
}

/** Sets up every system; returns them with a close(). */
async function setUp(log) {
  let t0 = performance.now();
  const { cfg, weights } = gpt2SmallWeights();
  log(`weights: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const systems = [];
  const variants = supportsRelaxedSimd() ? ["relaxed", "simd"] : ["simd"];
  for (const variant of variants) {
    systems.push(...hooklensSystems(new HookedTransformer(cfg, weights, await Engine.create({ variant })), variant));
  }
  // Two threads: only when the engine reports it runs them (Engine.create may not know the option yet).
  const twoThreaded = await Engine.create({ variant: variants[0], threads: 2 });
  const skipped = [];
  if (twoThreaded.threads === 2) {
    systems.push(hooklensSystems(new HookedTransformer(cfg, weights, twoThreaded), `${variants[0]} 2T`)[0]);
  } else {
    skipped.push(`hooklens ${variants[0]} 2T skipped: Engine.create({ threads: 2 }) gave engine.threads = ${twoThreaded.threads}`);
  }

  t0 = performance.now();
  const models = { logits: gpt2Onnx(cfg, weights), none: gpt2Onnx(cfg, weights, { unembed: false }) };
  log(`ONNX export: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${(models.logits.length / 2 ** 20).toFixed(0)} + ${(models.none.length / 2 ** 20).toFixed(0)} MiB`);
  const orts = [];
  for (const threads of [1, 2]) {
    t0 = performance.now();
    const ort = await startOrt(threads, models);
    orts.push(ort);
    log(`onnxruntime-web ${ort.version}, asked ${threads} thread(s), runs ${ort.threads}: sessions in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (ort.threads === threads) systems.push(ortSystem(ort, `ort ${threads}T`));
    else skipped.push(`ort ${threads}T skipped: onnxruntime-web fell back to ${ort.threads} thread(s)`);
  }

  const { tf, simd, threads } = await loadTfjsWasm();
  const tfModel = tfjsGpt2(tf, cfg, weights);
  log(`tfjs-backend-wasm ${tf.version_core}, SIMD ${simd ? "on" : "OFF"}, ${threads} thread(s)`);
  systems.push({
    name: "tfjs",
    applies: () => true,
    run: (t) => { tfModel.forward(t.tokens, t.unembed); },
    output: (t) => tfModel.forward(t.tokens, t.unembed),
  });
  for (const s of skipped) log(s);
  return {
    systems,
    skipped,
    close: async () => {
      for (const ort of orts) await ort.close();
      tfModel.dispose();
    },
  };
}

/** Checks every system against hooklens plain SIMD (the first forward of "simd"); returns the slowest call in ms. */
async function validate(systems, t) {
  const reference = systems.find((s) => s.name === "simd").output(t);
  let slowest = 0;
  for (const s of systems) {
    const t0 = performance.now();
    const out = await s.output(t);
    slowest = Math.max(slowest, performance.now() - t0);
    const err = relError(out, reference);
    if (!(out.length === reference.length && err < MAX_REL_ERROR)) {
      throw new Error(`peers ${t.batch}x${t.pos} ${t.unembed ? "logits" : "no unembed"}: ${s.name} differs from hooklens simd (relative error ${err}, ${out.length} vs ${reference.length} values)`);
    }
  }
  return slowest;
}

export async function run(options = {}) {
  const quick = options.quick ?? false;
  const shapes = quick ? SHAPES.slice(0, 1) : SHAPES;
  const budgetMs = options.budgetMs ?? (quick ? 3000 : 45000);
  const [minRounds, maxRounds] = quick ? [2, 3] : [3, 15];
  const log = (line) => console.log(line);
  log(`CPU: ${os.cpus()[0]?.model ?? "unknown"} x ${os.cpus().length}, Node ${process.version}`);
  const { systems, skipped, close } = await setUp(log);

  const rows = [];
  try {
    for (const [batch, pos] of shapes) {
      const tokens = randomTokens(batch, pos, batch * 1000 + pos);
      for (const unembed of [true, false]) {
        const t = { tokens, ids: int64Tokens(tokens), batch, pos, unembed };
        const active = systems.filter((s) => s.applies(unembed));
        const slowest = await validate(active, t);
        const roundMs = slowest * active.length;
        const rounds = Math.max(minRounds, Math.min(maxRounds, Math.floor(budgetMs / roundMs)));
        const samples = Object.fromEntries(active.map((s) => [s.name, []]));
        for (let r = 0; r < rounds; r++) {
          const bench = new Bench({ time: 0, iterations: 1, warmup: false });
          for (let i = 0; i < active.length; i++) {
            const s = active[(i + r) % active.length];
            bench.add(s.name, () => s.run(t));
          }
          await bench.run();
          for (const task of bench.tasks) samples[task.name].push(task.result.latency.min);
        }
        const row = summarise({ batch, pos, unembed, rounds }, samples);
        rows.push(row);
        printRow(row, rows.length === 1);
      }
    }
  } finally {
    await close();
  }
  printRatios(rows);
  for (const s of skipped) console.log(s);
  return rows;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** ms (fastest call) and medianMs per system, and the ratios the targets are about. */
function summarise(row, samples) {
  const ms = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.min(...v)]));
  const medianMs = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const ratio = (slow, fast) => (ms[slow] === undefined || ms[fast] === undefined ? null : ms[slow] / ms[fast]);
  return {
    shape: `${row.batch}x${row.pos}`, ...row, ms, medianMs,
    ratios: {
      // > 1: hooklens is faster than the peer.
      relaxedVsOrt1T: ratio("ort 1T", "relaxed"),
      simdVsOrt1T: ratio("ort 1T", "simd"),
      relaxedVsOrt2T: ratio("ort 2T", "relaxed"),
      relaxed2TVsOrt2T: ratio("ort 2T", "relaxed 2T"),
      relaxedVsTfjs: ratio("tfjs", "relaxed"),
      simdVsTfjs: ratio("tfjs", "simd"),
      // Slowdown of caching every hook over the hook-free forward (< 1.25 targeted).
      relaxedCacheOverhead: ratio("relaxed+cache", "relaxed"),
      simdCacheOverhead: ratio("simd+cache", "simd"),
    },
  };
}

const SYSTEMS = ["relaxed", "simd", "relaxed+cache", "simd+cache", "relaxed 2T", "ort 1T", "ort 2T", "tfjs"];
const num = (x, digits) => (x === null || x === undefined ? "-" : x.toFixed(digits));

function printRow(row, header) {
  if (header) {
    console.log("\nms per forward (fastest call; the systems take turns call by call)");
    console.log(`${"shape".padEnd(6)} ${"output".padEnd(8)} ${"rounds".padStart(6)} ${SYSTEMS.map((s) => s.padStart(13)).join(" ")}`);
  }
  console.log(`${row.shape.padEnd(6)} ${(row.unembed ? "logits" : "ln_final").padEnd(8)} ${String(row.rounds).padStart(6)} ` +
    SYSTEMS.map((s) => num(row.ms[s], 1).padStart(13)).join(" "));
}

const RATIOS = [
  ["relaxed/ort1", "relaxedVsOrt1T"], ["simd/ort1", "simdVsOrt1T"], ["relaxed/ort2", "relaxedVsOrt2T"],
  ["rlx2T/ort2", "relaxed2TVsOrt2T"], ["relaxed/tfjs", "relaxedVsTfjs"], ["simd/tfjs", "simdVsTfjs"],
  ["rlx cache", "relaxedCacheOverhead"], ["simd cache", "simdCacheOverhead"],
];

function printRatios(rows) {
  console.log("\nspeed-ups of hooklens over each peer (peer ms / hooklens ms; targets: relaxed/ort1 >= 2.5, simd/ort1 >= 1.8, rlx2T/ort2 >= 2.5)");
  console.log("and the cost of runWithCache of every hook (cache ms / forward ms; target <= 1.25)");
  console.log(`${"shape".padEnd(6)} ${"output".padEnd(8)} ${RATIOS.map(([h]) => h.padStart(12)).join(" ")}`);
  for (const r of rows) {
    console.log(`${r.shape.padEnd(6)} ${(r.unembed ? "logits" : "ln_final").padEnd(8)} ${RATIOS.map(([, k]) => num(r.ratios[k], 2).padStart(12)).join(" ")}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") || process.env.BENCH_QUICK === "1" });
}
