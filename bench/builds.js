// Two builds of the kernels, one call after the other: this tree's build/ against another
// build's .wasm files (`--base=DIR`, e.g. a copy of build/ taken before a change), on the
// shapes a kernel change is meant to move. Both run in one process, one thread each, taking
// turns call by call with the order rotated every round, so the ratio compares like with like
// on a shared machine. Each shape is first checked to give the same bits on both builds
// (`--allow-diff` times it anyway and says so).
//
//   cp build/*.wasm /tmp/base/            # before the change
//   npm run build && node --experimental-wasm-relaxed-simd bench/run.js builds --base=/tmp/base [--variant=simd] [--quick]
//
// Prints, per shape, base / this (above 1: this build is faster) three ways: of the fastest
// calls, of the median calls, and the median over rounds of each round's two calls (a paired
// ratio, the steadiest of the three when other work on the machine comes and goes, as it does
// for the memory-bound products whose weights do not fit in cache).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Engine, supportsRelaxedSimd } from "../dist/index.js";
import { fill } from "./check.js";

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** gemmPacked C[m, n] = A[m, k] · B[k, n] on a B packed beforehand (how the model runs its weights). */
function gemmPackedCase(m, k, n) {
  const a = fill(m * k, 1);
  const b = fill(k * n, 2);
  return {
    name: `gemmPacked ${m}x${k}x${n}`,
    setup(engine) {
      const pa = engine.upload(a);
      const pb = engine.upload(b);
      const packed = engine.alloc(k * Math.ceil(n / 8) * 8);
      engine.kernels.prepackB(pb, n, k, n, 0, packed);
      engine.free(pb);
      const pc = engine.alloc(m * n);
      return {
        call: () => engine.kernels.gemmPacked(pa, k, packed, pc, n, 0, m, n, k, 0, 0, n, 0),
        output: () => engine.download(pc, m * n),
        free: () => [pa, packed, pc].forEach((p) => engine.free(p)),
      };
    },
  };
}

/** The fused causal attention kernel alone, GPT-2-small heads (H = 12, d = 64), every head. */
function attentionCase(batch, pos, nHeads = 12, dHead = 64) {
  const [q, k, v] = [3, 4, 5].map((seed) => fill(batch * pos * nHeads * dHead, seed));
  const zn = batch * pos * nHeads * dHead;
  return {
    name: `attention ${batch}x${pos}, ${nHeads}x${dHead}`,
    setup(engine) {
      const [pq, pk, pv] = [q, k, v].map((x) => engine.upload(x));
      const pz = engine.alloc(zn);
      return {
        call: () => engine.kernels.attention(pq, pk, pv, pz, 0, batch, pos, pos, nHeads, nHeads, dHead, 1 / Math.sqrt(dHead), 0, nHeads),
        output: () => engine.download(pz, zn),
        free: () => [pq, pk, pv, pz].forEach((p) => engine.free(p)),
      };
    },
  };
}

/** A row-wise kernel over x: [rows, n]: the fused residual add + layer norm, or softmax. */
function rowsCase(kernel, rows, n) {
  const [x, r] = [6, 7].map((seed) => fill(rows * n, seed));
  return {
    name: `${kernel} ${rows}x${n}`,
    setup(engine) {
      const [px, pr] = [x, r].map((t) => engine.upload(t));
      const [po, ps] = [engine.alloc(rows * n), engine.alloc(rows)];
      const call = kernel === "softmax"
        ? () => engine.kernels.softmax(px, po, rows, n)
        : () => engine.kernels.addLayerNorm(px, pr, po, po, ps, 0, 0, rows, n, 1e-5);
      return {
        call,
        output: () => engine.download(po, rows * n),
        free: () => [px, pr, po, ps].forEach((p) => engine.free(p)),
      };
    },
  };
}

function cases(quick) {
  if (quick) return [gemmPackedCase(1, 768, 50257), attentionCase(1, 64)];
  return [
    gemmPackedCase(1, 768, 768), gemmPackedCase(1, 768, 50257), gemmPackedCase(7, 768, 50257), gemmPackedCase(8, 768, 50257), gemmPackedCase(16, 768, 3072),
    attentionCase(1, 64), attentionCase(8, 16), attentionCase(1, 1024),
    rowsCase("addLayerNorm", 64, 768), rowsCase("softmax", 12 * 64, 64),
  ];
}

function option(args, name) {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? undefined : hit.slice(name.length + 3);
}

/**
 * Options: `args` (the command line: --base=DIR required, --this=DIR instead of build/ (the same
 * DIR twice measures what the order and placement alone give), --variant=simd|relaxed, --allow-diff),
 * `quick` (two shapes, few rounds), `budgetMs` (about how long each build runs per shape).
 * @returns rows of { shape, variant, rounds, sameBits, baseMs, thisMs, baseMedianMs, thisMedianMs, speedup, medianSpeedup, pairedSpeedup }
 */
export async function run(options = {}) {
  const args = options.args ?? process.argv.slice(2);
  const baseDir = option(args, "base");
  if (baseDir === undefined) throw new Error("builds: --base=DIR (a directory holding another build's hooklens-*.wasm) is required");
  const variant = option(args, "variant") ?? (supportsRelaxedSimd() ? "relaxed" : "simd");
  const thisDir = option(args, "this");
  const allowDiff = args.includes("--allow-diff");
  const quick = options.quick ?? false;
  const budgetMs = options.budgetMs ?? (quick ? 300 : 3000);
  const builds = [
    { name: "base", engine: await Engine.create({ variant, wasm: await readFile(join(baseDir, `hooklens-${variant}.wasm`)) }) },
    { name: "this", engine: await Engine.create(thisDir === undefined ? { variant } : { variant, wasm: await readFile(join(thisDir, `hooklens-${variant}.wasm`)) }) },
  ];
  console.log(`${variant}, one thread: base = ${baseDir}, this = ${thisDir ?? "build/"}; base / this above 1: this build is faster`);
  const rows = [];
  for (const c of cases(quick)) {
    const tasks = builds.map((b) => ({ ...b, ...c.setup(b.engine) }));
    const t0 = performance.now();
    for (const t of tasks) t.call();
    const perCall = (performance.now() - t0) / tasks.length;
    const [base, ours] = tasks.map((t) => new Uint32Array(t.output().buffer));
    const sameBits = base.length === ours.length && base.every((x, i) => x === ours[i]);
    if (!sameBits && !allowDiff) throw new Error(`${c.name}: the two builds give different bits (--allow-diff to time it anyway)`);
    const rounds = Math.max(5, Math.min(quick ? 10 : 200, Math.floor(budgetMs / perCall)));
    const times = { base: [], this: [] };
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < tasks.length; i++) {
        const t = tasks[(i + r) % tasks.length];
        const s = performance.now();
        t.call();
        times[t.name].push(performance.now() - s);
      }
    }
    for (const t of tasks) t.free();
    const row = {
      shape: c.name, variant, rounds, sameBits,
      baseMs: Math.min(...times.base), thisMs: Math.min(...times.this),
      baseMedianMs: median(times.base), thisMedianMs: median(times.this),
    };
    row.speedup = row.baseMs / row.thisMs;
    row.medianSpeedup = row.baseMedianMs / row.thisMedianMs;
    row.pairedSpeedup = median(times.base.map((t, r) => t / times.this[r]));
    rows.push(row);
    console.log(`${c.name.padEnd(28)} base ${row.baseMs.toFixed(3).padStart(8)} ms  this ${row.thisMs.toFixed(3).padStart(8)} ms  `
      + `x${row.speedup.toFixed(3)} fastest, x${row.medianSpeedup.toFixed(3)} median, x${row.pairedSpeedup.toFixed(3)} paired (${rounds} rounds)`
      + (sameBits ? "" : "  DIFFERENT BITS"));
  }
  for (const b of builds) b.engine.dispose();
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
