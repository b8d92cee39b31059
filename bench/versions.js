// This checkout against another checkout of hooklens (its dist/ and build/, e.g. an earlier
// commit built in a git worktree), on the same work, alternating call by call in one process so
// the machine's load falls on both alike: whole forwards (GPT-2-small shape, and a LLaMA shape
// with rotary and grouped-query attention) and a direct path sweep. Both must give the same
// numbers (checked before timing, to 1e-5 relative).
//
//   git worktree add /tmp/base <commit> && (cd /tmp/base && ln -s $PWD/node_modules . && npm run build)
//   node --experimental-wasm-relaxed-simd bench/run.js versions --base=/tmp/base [--quick]
//
// Ratios above 1 mean this checkout is faster.
import { pathToFileURL } from "node:url";
import { SMOLLM2_135M, llamaHfFiles } from "./llama.js";
import { randomTokens } from "./gpt2-small.js";

/** Options: `quick`, `args` (needs --base=DIR). */
export async function run(options = {}) {
  const base = (options.args ?? []).find((a) => a.startsWith("--base="))?.slice("--base=".length);
  if (!base) throw new Error("versions: give --base=DIR, a built checkout of hooklens to compare against");
  const ours = await import("../dist/index.js");
  const theirs = await import(pathToFileURL(`${base}/dist/index.js`).href);
  const rounds = options.quick ? 5 : 15;
  const rows = [];
  const systems = [["this", ours], ["base", theirs]];

  const gpt2 = await Promise.all(systems.map(async ([, lib]) => gpt2Small(lib, await lib.Engine.create({ variant: "relaxed" }))));
  for (const [batch, pos] of [[1, 16], [8, 16], [1, 64]]) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    rows.push(compare(`GPT-2-small forward ${batch}x${pos}`, gpt2.map((m) => () => m.forward(tokens).logits.data), rounds));
  }
  const metric = (lib, tokens) => lib.logitDiff({ correct: tokens.map((r) => r[1]), incorrect: tokens.map((r) => r[2]) });
  {
    const clean = randomTokens(2, 12, 5);
    const corrupted = clean.map((row) => row.map((t, p) => (p === 3 ? (t + 7) % 50257 : t)));
    const caches = gpt2.map((m) => [m.runWithCache(clean).cache, m.runWithCache(corrupted).cache]);
    rows.push(await compareAsync("GPT-2-small direct path 0.1 -> k (exact), 2x12", gpt2.map((m, i) => async () =>
      (await systems[i][1].getActPatchDirectPath(m, corrupted, caches[i][0], caches[i][1], metric(systems[i][1], clean),
        { srcLayer: 0, srcHead: 1, component: "k", mode: "exact" })).scores.data), Math.max(3, Math.floor(rounds / 3))));
  }
  for (const m of gpt2) m.dispose();

  const files = llamaHfFiles(SMOLLM2_135M);
  const llama = await Promise.all(systems.map(async ([, lib]) =>
    lib.HookedTransformer.fromPretrained(files, { engine: await lib.Engine.create({ variant: "relaxed" }), tokenizer: false })));
  for (const [batch, pos] of [[1, 64], [4, 32]]) {
    const tokens = randomTokens(batch, pos, 77, SMOLLM2_135M.dVocab);
    rows.push(compare(`${SMOLLM2_135M.name} forward ${batch}x${pos}`, llama.map((m) => () => m.forward(tokens, { lastPositionOnly: true }).logits.data), rounds));
  }
  for (const m of llama) m.dispose();
  return rows;
}

/** GPT-2-small-shaped random weights (as gpt2-small.js writes them) built with a given hooklens module. */
function gpt2Small(lib, engine) {
  const cfg = lib.makeConfig({ nLayers: 12, dModel: 768, nHeads: 12, dVocab: 50257, nCtx: 1024, dMlp: 3072 });
  const weights = new Map();
  let k = 1;
  for (const [name, shape] of lib.parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const std = name.endsWith(".w") ? 0.05 : 0.02;
    let s = (k++ * 7919) >>> 0 || 1;
    const a = std * Math.sqrt(3) * 2 / 4294967296;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      data[i] = s * a - std * Math.sqrt(3) + (name.endsWith(".w") ? 1 : 0);
    }
    weights.set(name, new lib.Tensor(data, shape));
  }
  const processed = lib.processWeights(cfg, weights);
  return new lib.HookedTransformer(processed.cfg, processed.weights, engine);
}

function check(label, a, b) {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  if (a.length !== b.length || worst > 1e-5 * Math.max(1, scale)) throw new Error(`${label}: the two versions differ (max ${worst}, scale ${scale})`);
}

/** Alternates the two calls `rounds` times (after one warm-up each); the fastest and median ratio. */
function compare(label, [ours, theirs], rounds) {
  check(label, ours(), theirs());
  const t = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const [i, fn] of (r % 2 === 0 ? [[0, ours], [1, theirs]] : [[1, theirs], [0, ours]])) {
      const start = performance.now();
      fn();
      t[i].push(performance.now() - start);
    }
  }
  return report(label, t);
}

async function compareAsync(label, [ours, theirs], rounds) {
  check(label, await ours(), await theirs());
  const t = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const [i, fn] of (r % 2 === 0 ? [[0, ours], [1, theirs]] : [[1, theirs], [0, ours]])) {
      const start = performance.now();
      await fn();
      t[i].push(performance.now() - start);
    }
  }
  return report(label, t);
}

function report(label, [ours, theirs]) {
  const median = (x) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
  const row = {
    suite: "versions", label, thisFastestMs: Math.min(...ours), baseFastestMs: Math.min(...theirs),
    fastestRatio: Math.min(...theirs) / Math.min(...ours), medianRatio: median(theirs) / median(ours),
  };
  console.log(`${label.padEnd(48)} this ${row.thisFastestMs.toFixed(1).padStart(8)} ms  base ${row.baseFastestMs.toFixed(1).padStart(8)} ms  ` +
    `x${row.fastestRatio.toFixed(3)} (fastest)  x${row.medianRatio.toFixed(3)} (median)`);
  return row;
}
