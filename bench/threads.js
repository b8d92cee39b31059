// One thread against two on the same work, in one run: a GPT-2-small-architecture forward
// (random weights written by the bench) at batch 1 x 16, 1 x 64 and 8 x 16 with logits, and the
// planned direct path sweep from source (0, 0), component q, linear mode, at batch 8 x 16 with
// prompts differing from position 1. The two engines take turns call by call; each figure is the
// fastest call (noise on a shared machine only adds time). The outputs of the two must be the
// same bits, and are checked before timing.
//
//   node --experimental-wasm-relaxed-simd bench/run.js threads [--quick]
import { pathToFileURL } from "node:url";
import { Engine, HookedTransformer, getActPatchDirectPath, logitDiff } from "../dist/index.js";
import { GPT2_SMALL, gpt2SmallWeights, randomTokens } from "./gpt2-small.js";

const SHAPES = [[1, 16], [1, 64], [8, 16]];

const sameBits = (a, b) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Alternates the tasks call by call for `rounds` rounds; the fastest call of each, in ms. */
function interleave(tasks, rounds) {
  const best = tasks.map(() => Infinity);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < tasks.length; i++) {
      const j = (i + r) % tasks.length;
      const t0 = performance.now();
      tasks[j]();
      best[j] = Math.min(best[j], performance.now() - t0);
    }
  }
  return best;
}

export async function run(options = {}) {
  const quick = options.quick ?? false;
  const engines = [await Engine.create(), await Engine.create({ threads: 2 })];
  if (engines[1].threads !== 2) throw new Error(`two threads did not start: ${engines[1].threadsNote}`);
  const { cfg, weights } = gpt2SmallWeights();
  const models = engines.map((engine) => new HookedTransformer(cfg, weights, engine));
  const variant = engines[0].variant;
  const rows = [];

  for (const [batch, pos] of quick ? [[1, 16]] : SHAPES) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    const outs = models.map((m) => m.forward(tokens).logits.data);
    if (!sameBits(outs[0], outs[1])) throw new Error(`forward ${batch}x${pos}: two threads differ from one`);
    const [one, two] = interleave(models.map((m) => () => m.forward(tokens)), quick ? 3 : 8);
    rows.push({ suite: "threads", work: `forward ${batch}x${pos} logits`, variant, oneThreadMs: one, twoThreadsMs: two, speedup: one / two });
    print(rows.at(-1));
  }

  // The planned single-source sweep: each call builds its caches outside the timing.
  const [batch, pos] = quick ? [2, 12] : [8, 16];
  const clean = randomTokens(batch, pos, 11);
  const corrupted = clean.map((row, b) => row.map((t, p) => (p >= 1 && (p + b) % 3 === 0 ? (t + 977) % GPT2_SMALL.dVocab : t)));
  const metric = logitDiff({ correct: clean.map((r) => r[pos - 1]), incorrect: corrupted.map((r) => r[pos - 2]) });
  const sweeps = models.map((model) => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    return { model, cc, rc };
  });
  const results = [];
  const tasks = sweeps.map((s, i) => async () => {
    const r = await getActPatchDirectPath(s.model, corrupted, s.cc, s.rc, metric, { srcLayer: 0, srcHead: 0, component: "q" });
    results[i] = r.scores.data;
  });
  const best = [Infinity, Infinity];
  for (let r = 0; r < (quick ? 1 : 3); r++) {
    for (let i = 0; i < 2; i++) {
      const j = (i + r) % 2;
      const t0 = performance.now();
      await tasks[j]();
      best[j] = Math.min(best[j], performance.now() - t0);
    }
    if (!sameBits(results[0], results[1])) throw new Error("sweep: two threads differ from one");
  }
  // Peak resident memory of this process (both models, weights loaded once per engine) and each
  // engine's linear memory after the sweeps.
  const memory = {
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    wasmMemoryMiB: engines.map((e) => e.stats().memoryBytes / 2 ** 20),
  };
  rows.push({ suite: "threads", work: `planned sweep ${batch}x${pos} src (0,0) q`, variant, oneThreadMs: best[0], twoThreadsMs: best[1], speedup: best[0] / best[1], ...memory });
  print(rows.at(-1));
  console.log(`peak RSS ${memory.peakRssMiB.toFixed(0)} MiB (two GPT-2-small models, one per engine); WASM memory per engine ${memory.wasmMemoryMiB.map((m) => m.toFixed(0)).join(" / ")} MiB`);
  for (const m of models) m.dispose();
  engines[1].dispose();
  return rows;
}

function print(r) {
  console.log(`${r.work.padEnd(34)} ${r.variant.padEnd(8)} 1 thread ${r.oneThreadMs.toFixed(0).padStart(6)} ms   2 threads ${r.twoThreadsMs.toFixed(0).padStart(6)} ms   x${r.speedup.toFixed(2)}   (same bits)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
