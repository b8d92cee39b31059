// Direct path patching sweeps on a GPT-2-small-architecture model (random weights written
// by the bench), batch 8 x 16 tokens, logit-difference metric: the planned sweep against
// the naive one-forward-per-patch loop (TransformerLens's way), in one run.
//   1. single source (0, 0), component q, linear
//   2. two sources, (0, 0) and (5, 3), all three components
//
//   node --experimental-wasm-relaxed-simd bench/run.js patching [--quick]
import { pathToFileURL } from "node:url";
import { Engine, getActPatchDirectPath, logitDiff } from "../dist/index.js";
import { gpt2Small, randomTokens } from "./gpt2-small.js";

export async function run(options = {}) {
  const engine = await Engine.create();
  const model = gpt2Small(engine);
  const [batch, pos] = options.quick ? [2, 8] : [8, 16];
  const clean = randomTokens(batch, pos, 11);
  const corrupted = clean.map((row, b) => row.map((t, p) => (p === pos - 4 || p === 2 + (b % 3) ? (t + 977) % 50257 : t)));
  const metric = logitDiff({ correct: clean.map((r) => r[pos - 1]), incorrect: corrupted.map((r) => r[pos - 2]) });
  const cleanCache = model.runWithCache(clean).cache;
  const corruptedCache = model.runWithCache(corrupted).cache;
  const jobs = [
    { name: "source (0,0) q", sources: [[0, 0]], components: ["q"] },
    { name: "sources (0,0),(5,3) q+k+v", sources: [[0, 0], [5, 3]], components: ["q", "k", "v"] },
  ];
  const rows = [];
  for (const job of jobs) {
    const ms = {};
    const scores = {};
    for (const strategy of ["planned", "naive"]) {
      const t0 = performance.now();
      const out = [];
      for (const [srcLayer, srcHead] of job.sources) {
        for (const component of job.components) {
          const r = await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { srcLayer, srcHead, component, strategy });
          out.push(...r.scores.data);
        }
      }
      ms[strategy] = performance.now() - t0;
      scores[strategy] = out;
    }
    const maxDiff = Math.max(...scores.planned.map((s, i) => Math.abs(s - scores.naive[i])));
    const row = { suite: "patching", job: job.name, batch, pos, engine: engine.variant, plannedMs: ms.planned, naiveMs: ms.naive, speedup: ms.naive / ms.planned, maxDiff };
    console.log(`${job.name.padEnd(28)} planned ${(ms.planned / 1000).toFixed(2)} s  naive ${(ms.naive / 1000).toFixed(2)} s  ` +
      `speedup x${row.speedup.toFixed(2)}  max |planned - naive| ${maxDiff.toExponential(1)}  (${engine.variant})`);
    rows.push(row);
  }
  model.dispose();
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
