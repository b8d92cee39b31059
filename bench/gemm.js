// GEMM GFLOP/s on GPT-2-small shapes: the plain SIMD build, the relaxed build
// (where the runtime runs it), the JS twin (small shapes only) and the peer
// tfjs-backend-wasm (XNNPACK, one thread), all on the same operands.
//
//   node --experimental-wasm-relaxed-simd bench/gemm.js [--quick]
//
// Every shape runs as many rounds of a tinybench Bench holding all systems,
// two calls each, with the task order rotated each round, so the systems take
// turns call by call. A system's figure is its fastest call over all rounds: the
// work is deterministic and noise on a shared machine only ever adds time, so
// the minimum is the estimate least disturbed by it, for every system alike.
// Each system's output is checked against the plain SIMD build before it is timed.
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, supportsRelaxedSimd } from "../dist/index.js";
import { loadTfjsWasm, tfjsMatMul } from "./peers/tfjs.js";
import { fill, relError } from "./check.js";

const MS = [16, 64, 512];
/** [k, n]: GPT-2-small weights are [in, out], so C[m, n] = X[m, k] · W[k, n]. */
const KN = [[768, 768], [768, 3072], [3072, 768], [768, 50257]];
/** The JS twin takes about a second for 3e8 flops; larger shapes skip it. */
const JS_MAX_FLOPS = 3.2e8;

/** The shapes to run: every M × (K, N) pair, plus the transposed unembedding (tied W_E: [n, k]). */
function shapes(quick) {
  if (quick) return [{ m: 64, k: 768, n: 3072, transB: 0 }, { m: 64, k: 3072, n: 768, transB: 0 }];
  const list = [];
  for (const m of MS) for (const [k, n] of KN) list.push({ m, k, n, transB: 0 });
  list.push({ m: 64, k: 768, n: 50257, transB: 1 });
  return list;
}

/** Uploads the operands into an engine; returns the call, its output and a release. */
function hooklensTask(engine, s, a, b) {
  const pa = engine.upload(a);
  const pb = engine.upload(b);
  const pc = engine.alloc(s.m * s.n);
  const ldb = s.transB ? s.k : s.n;
  return {
    run: () => engine.kernels.gemm(pa, s.k, pb, ldb, pc, s.n, 0, s.m, s.n, s.k, s.transB, 0),
    output: () => engine.download(pc, s.m * s.n),
    dispose: () => [pa, pb, pc].forEach((p) => engine.free(p)),
  };
}

/** The same product on a B packed once beforehand (as the model's weights are): gemmPacked. */
function hooklensPackedTask(engine, s, a, b) {
  const pa = engine.upload(a);
  const pb = engine.upload(b);
  const packed = engine.alloc(s.k * Math.ceil(s.n / 8) * 8);
  engine.kernels.prepackB(pb, s.transB ? s.k : s.n, s.k, s.n, s.transB, packed);
  engine.free(pb);
  const pc = engine.alloc(s.m * s.n);
  return {
    run: () => engine.kernels.gemmPacked(pa, s.k, packed, pc, s.n, 0, s.m, s.n, s.k, 0, 0, s.n, 0),
    output: () => engine.download(pc, s.m * s.n),
    dispose: () => [pa, packed, pc].forEach((p) => engine.free(p)),
  };
}

/**
 * Runs the suite and prints a table. Options: `quick` (two shapes, short runs),
 * `rounds` (at most, per shape), `budgetMs` (about how long each WASM system runs per shape),
 * `shapes` ({ m, k, n, transB } list instead of the default set).
 * @returns rows of { shape, m, k, n, transB, simd, relaxed, js, xnnpack } in GFLOP/s (null: not run) plus ratios
 */
export async function run(options = {}) {
  const quick = options.quick ?? false;
  const maxRounds = options.rounds ?? (quick ? 15 : 40);
  const budgetMs = options.budgetMs ?? (quick ? 400 : 1500);
  const systems = [{ name: "simd", engine: await Engine.create({ variant: "simd" }) }];
  if (supportsRelaxedSimd()) systems.push({ name: "relaxed", engine: await Engine.create({ variant: "relaxed" }) });
  const js = { name: "js", engine: Engine.createJs() };
  const { tf, simd: tfSimd, threads } = await loadTfjsWasm();
  console.log(`peer: tfjs-backend-wasm ${tf.version_core}, SIMD ${tfSimd ? "on" : "OFF"}, ${threads} thread(s)`);

  const rows = [];
  for (const s of options.shapes ?? shapes(quick)) {
    const flops = 2 * s.m * s.n * s.k;
    const a = fill(s.m * s.k, 1);
    const b = fill(s.k * s.n, 2);
    const tasks = systems.map(({ name, engine }) => ({ name, ...hooklensTask(engine, s, a, b) }));
    for (const { name, engine } of systems) tasks.push({ name: `${name}Packed`, ...hooklensPackedTask(engine, s, a, b) });
    if (flops <= JS_MAX_FLOPS) tasks.push({ name: "js", ...hooklensTask(js.engine, s, a, b) });
    tasks.push({ name: "xnnpack", ...tfjsMatMul(tf, s, a, b) });

    // Validate before timing: every system against the first (plain SIMD). The
    // validating call also sizes the rounds.
    tasks[0].run();
    const expected = tasks[0].output();
    let slowestWasm = 0;
    for (const t of tasks) {
      const t0 = performance.now();
      t.run();
      if (t.name !== "js" && t.name !== "xnnpack") slowestWasm = Math.max(slowestWasm, performance.now() - t0);
      const err = relError(t.output(), expected);
      if (!(err <= 1e-4)) throw new Error(`gemm ${label(s)}: ${t.name} differs from simd by ${err}`);
    }
    const rounds = Math.max(3, Math.min(maxRounds, Math.floor(budgetMs / (2 * slowestWasm))));

    const best = Object.fromEntries(tasks.map((t) => [t.name, Infinity]));
    for (let r = 0; r < rounds; r++) {
      // Two calls per system per round: the systems alternate call by call.
      const bench = new Bench({ time: 0, iterations: 2, warmup: false });
      const order = tasks.map((_, i) => tasks[(i + r) % tasks.length]);
      // The JS twin is ~50x slower; three rounds are enough for it.
      for (const t of order) if (t.name !== "js" || r < 3) bench.add(t.name, t.run);
      await bench.run();
      for (const task of bench.tasks) best[task.name] = Math.min(best[task.name], task.result.latency.min);
    }
    for (const t of tasks) t.dispose();

    const gflops = (name) => (best[name] === undefined ? null : flops / (best[name] * 1e6));
    const row = { shape: label(s), m: s.m, k: s.k, n: s.n, transB: s.transB };
    for (const name of ["simd", "relaxed", "simdPacked", "relaxedPacked", "js", "xnnpack"]) row[name] = gflops(name);
    row.simdVsXnnpack = row.simd / row.xnnpack;
    row.relaxedVsXnnpack = row.relaxed === null ? null : row.relaxed / row.xnnpack;
    // XNNPACK keeps its packed weights between calls; gemmPacked is the like-for-like figure.
    row.simdPackedVsXnnpack = row.simdPacked / row.xnnpack;
    row.relaxedPackedVsXnnpack = row.relaxedPacked === null ? null : row.relaxedPacked / row.xnnpack;
    row.simdVsJs = row.js === null ? null : row.simd / row.js;
    row.relaxedVsJs = row.js === null || row.relaxed === null ? null : row.relaxed / row.js;
    rows.push(row);
    printRow(row, rows.length === 1);
  }
  if (rows.some((r) => r.transB)) {
    console.log("ᵀ: B stored [N, K]; tfjs sends a transposed B to its naive loop, not to XNNPACK");
  }
  return rows;
}

function label(s) {
  return `${s.m}x${s.k}x${s.n}${s.transB ? "ᵀ" : ""}`;
}

const COLUMNS = [
  ["M×K×N", (r) => r.shape, 15],
  ["simd", (r) => num(r.simd, 1), 7],
  ["relaxed", (r) => num(r.relaxed, 1), 8],
  ["js", (r) => num(r.js, 2), 6],
  ["simd·p", (r) => num(r.simdPacked, 1), 7],
  ["relax·p", (r) => num(r.relaxedPacked, 1), 8],
  ["xnnpack", (r) => num(r.xnnpack, 1), 8],
  ["simd/xnn", (r) => num(r.simdVsXnnpack, 2), 9],
  ["relax/xnn", (r) => num(r.relaxedVsXnnpack, 2), 10],
  ["simd·p/xnn", (r) => num(r.simdPackedVsXnnpack, 2), 11],
  ["relax·p/xnn", (r) => num(r.relaxedPackedVsXnnpack, 2), 12],
  ["simd/js", (r) => num(r.simdVsJs, 1), 8],
  ["relax/js", (r) => num(r.relaxedVsJs, 1), 9],
];

function num(x, digits) {
  return x === null || x === undefined ? "-" : x.toFixed(digits);
}

/** Prints one row as it completes (the whole suite takes minutes), with the header first. */
function printRow(row, header) {
  if (header) {
    console.log("GFLOP/s, one thread; ratios are from the same run");
    console.log(COLUMNS.map(([h, , w], i) => (i === 0 ? h.padEnd(w) : h.padStart(w))).join(" "));
  }
  console.log(COLUMNS.map(([, f, w], i) => (i === 0 ? f(row).padEnd(w) : f(row).padStart(w))).join(" "));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") || process.env.BENCH_QUICK === "1" });
}
