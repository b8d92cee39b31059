// Non-GEMM kernels: layernorm and gelu_new throughput (GB/s) and causal attention at
// seq 16/64/256 on GPT-2-small heads, for the plain SIMD build, the relaxed build (where
// the runtime runs it) and the JS twin, all in one run so the ratios compare like with like.
//
//   node --experimental-wasm-relaxed-simd bench/kernels.js [--quick]
//
// Every engine's output is first checked against the twin; a wrong kernel is not timed.
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, supportsRelaxedSimd } from "../dist/index.js";
import { relError } from "./check.js";

const D_MODEL = 768;
const N_HEADS = 12;
const D_HEAD = 64;
const SEQS = [16, 64, 256];

/** A deterministic N(0, std²) fill (Box-Muller over a xorshift stream). */
function randn(n, seed, std = 1) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/**
 * One benchmark case: `setup(engine)` uploads its inputs and returns { call, output, free };
 * `bytes` or `flops` per call turn the latency into GB/s or GFLOP/s.
 */
function cases() {
  const list = [];
  for (const rows of [64, 512]) {
    const x = randn(rows * D_MODEL, rows, 3);
    const w = randn(D_MODEL, 1);
    const b = randn(D_MODEL, 2);
    list.push({
      kernel: "layerNorm",
      shape: `${rows}x${D_MODEL}`,
      bytes: rows * D_MODEL * 4 * 2, // read x, write out (w, b and scale stay in cache)
      setup(engine) {
        const [px, pw, pb] = [x, w, b].map((t) => engine.upload(t));
        const po = engine.alloc(rows * D_MODEL);
        const ps = engine.alloc(rows);
        return {
          call: () => engine.kernels.layerNorm(px, po, ps, pw, pb, rows, D_MODEL, 1e-5),
          output: () => engine.download(po, rows * D_MODEL),
          free: () => [px, pw, pb, po, ps].forEach((p) => engine.free(p)),
        };
      },
    });
  }
  {
    const rows = 64;
    const n = rows * 4 * D_MODEL;
    const x = randn(n, 9, 2);
    list.push({
      kernel: "geluNew",
      shape: `${rows}x${4 * D_MODEL}`,
      bytes: n * 4 * 2,
      setup(engine) {
        const px = engine.upload(x);
        const po = engine.alloc(n);
        return {
          call: () => engine.kernels.geluNew(px, po, n),
          output: () => engine.download(po, n),
          free: () => [px, po].forEach((p) => engine.free(p)),
        };
      },
    });
  }
  for (const pos of SEQS) {
    const qkv = [0, 1, 2].map((i) => randn(pos * N_HEADS * D_HEAD, pos * 10 + i));
    const scale = 1 / Math.sqrt(D_HEAD);
    // Causal: q·kᵀ and p·v over the lower triangle, 2 flops per multiply-add.
    const flops = 2 * 2 * N_HEADS * D_HEAD * (pos * (pos + 1)) / 2;
    const zn = pos * N_HEADS * D_HEAD;
    const sn = N_HEADS * pos * pos;
    list.push({
      kernel: "attention (fused)",
      shape: `pos ${pos}, ${N_HEADS}x${D_HEAD}`,
      flops,
      setup(engine) {
        const [pq, pk, pv] = qkv.map((t) => engine.upload(t));
        const pz = engine.alloc(zn);
        return {
          call: () => engine.kernels.attention(pq, pk, pv, pz, 0, 1, pos, pos, N_HEADS, N_HEADS, D_HEAD, scale, 0, N_HEADS),
          output: () => engine.download(pz, zn),
          free: () => [pq, pk, pv, pz].forEach((p) => engine.free(p)),
        };
      },
    });
    list.push({
      kernel: "attention (hooked: scores, softmax, apply)",
      shape: `pos ${pos}, ${N_HEADS}x${D_HEAD}`,
      flops,
      setup(engine) {
        const [pq, pk, pv] = qkv.map((t) => engine.upload(t));
        const pz = engine.alloc(zn);
        const ps = engine.alloc(sn);
        const pp = engine.alloc(sn);
        return {
          call: () => {
            engine.kernels.attnScores(pq, pk, ps, 0, 1, pos, pos, N_HEADS, N_HEADS, D_HEAD, scale, 0, N_HEADS);
            engine.kernels.softmax(ps, pp, N_HEADS * pos, pos);
            engine.kernels.attnApplyPattern(pp, pv, pz, 1, pos, pos, N_HEADS, N_HEADS, D_HEAD, 0, N_HEADS);
          },
          output: () => engine.download(pz, zn),
          free: () => [pq, pk, pv, pz, ps, pp].forEach((p) => engine.free(p)),
        };
      },
    });
  }
  return list;
}

/**
 * Runs the suite and prints a table. Options: `time` (ms per task, default 400),
 * `quick` (shorter runs for a smoke test).
 * @returns rows of { suite, kernel, shape, engine, ms, value, unit, vsJs, vsSimd }
 */
export async function run(options = {}) {
  const time = options.time ?? (options.quick ? 60 : 400);
  const engines = [await Engine.create({ variant: "simd" })];
  if (supportsRelaxedSimd()) engines.push(await Engine.create({ variant: "relaxed" }));
  const js = Engine.createJs();
  engines.push(js);

  const rows = [];
  for (const c of cases()) {
    const reference = c.setup(js);
    reference.call();
    const expected = reference.output();
    reference.free();

    const measured = [];
    for (const engine of engines) {
      const instance = c.setup(engine);
      instance.call();
      const err = relError(instance.output(), expected);
      if (!(err <= 1e-5)) throw new Error(`${c.kernel} ${c.shape} on ${engine.variant}: relative error ${err} vs the twin`);
      const bench = new Bench({ time, warmupTime: time / 4, iterations: 3, warmupIterations: 1 });
      bench.add(engine.variant, instance.call);
      await bench.run();
      const ms = bench.tasks[0].result.latency.mean;
      instance.free();
      measured.push({ engine: engine.variant, ms });
    }
    const msOf = (name) => measured.find((m) => m.engine === name)?.ms;
    for (const { engine, ms } of measured) {
      const value = c.bytes !== undefined ? c.bytes / (ms * 1e6) : c.flops / (ms * 1e6);
      rows.push({
        suite: "kernels",
        kernel: c.kernel,
        shape: c.shape,
        engine,
        ms,
        value,
        unit: c.bytes !== undefined ? "GB/s" : "GFLOP/s",
        vsJs: msOf("js") / ms,
        vsSimd: msOf("simd") / ms,
      });
    }
  }
  printTable(rows);
  return rows;
}

function printTable(rows) {
  const header = ["kernel", "shape", "engine", "ms", "throughput", "x js", "x simd"];
  const body = rows.map((r) => [
    r.kernel, r.shape, r.engine, r.ms.toFixed(4), `${r.value.toFixed(2)} ${r.unit}`, r.vsJs.toFixed(1), r.vsSimd.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells) => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of body) console.log(line(row));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
