// Direct path patching sweeps on a GPT-2-small-architecture model (random weights written by
// the bench), logit-difference metric, linear mode: the planned sweep against the naive
// one-forward-per-patch loop (TransformerLens's way: every patch from layer 0, every position
// unembedded), measured in one run, with the largest difference between their scores.
//
//   node --experimental-wasm-relaxed-simd bench/run.js patching [--quick] [--jobs=a,b,...]
//
// Jobs (batch 8 x 16 tokens unless --quick):
//   early    source (0, 0), q; prompts differ from position 1 on
//   ioi      source (0, 0), q; prompts differ only at position 10 (IOI-shaped)
//   multi    sources (0, 0) and (5, 3), components q, k and v; prompts differ from position 1
//   all4     every source, q, on a 4-layer slice of the model; IOI-shaped prompts
import { pathToFileURL } from "node:url";
import {
  Engine, HookedTransformer, getActPatchDirectPath, getActPatchDirectPathAllSources, logitDiff, makeConfig,
} from "../dist/index.js";
import { GPT2_SMALL, gpt2SmallWeights, randomTokens } from "./gpt2-small.js";

const JOBS = {
  early: { label: "source (0,0) q, differ from pos 1", diff: "early", sources: [[0, 0]], components: ["q"] },
  ioi: { label: "source (0,0) q, differ at pos 10 only", diff: "ioi", sources: [[0, 0]], components: ["q"] },
  multi: { label: "sources (0,0),(5,3) q+k+v, differ from pos 1", diff: "early", sources: [[0, 0], [5, 3]], components: ["q", "k", "v"] },
  all4: { label: "all sources q, 4-layer slice, differ at pos 10", diff: "ioi", all: true, layers: 4, components: ["q"] },
};

function prompts(batch, pos, diff) {
  const clean = randomTokens(batch, pos, 11);
  const changed = (b, p) => (diff === "ioi" ? p === Math.min(10, pos - 2) : p >= 1 && (p + b) % 3 === 0);
  const corrupted = clean.map((row, b) => row.map((t, p) => (changed(b, p) ? (t + 977) % GPT2_SMALL.dVocab : t)));
  const metric = logitDiff({ correct: clean.map((r) => r[pos - 1]), incorrect: corrupted.map((r) => r[pos - 2]) });
  return { clean, corrupted, metric };
}

/** The full model, or its first `layers` blocks (same weights) as a smaller model. */
function buildModel(engine, layers) {
  const { cfg, weights } = gpt2SmallWeights();
  if (layers === undefined) return new HookedTransformer(cfg, weights, engine);
  const small = { ...cfg, ...makeConfig({ ...GPT2_SMALL, nLayers: layers }), normalizationType: cfg.normalizationType, processing: cfg.processing };
  const kept = new Map([...weights].filter(([name]) => !name.startsWith("blocks.") || Number(name.split(".")[1]) < layers));
  return new HookedTransformer(small, kept, engine);
}

export async function run(options = {}) {
  const engine = await Engine.create();
  const [batch, pos] = options.quick ? [2, 12] : [8, 16];
  const jobsArg = options.args?.find((a) => a.startsWith("--jobs="));
  const names = options.jobs ?? jobsArg?.slice(7).split(",") ?? Object.keys(JOBS);
  const rows = [];
  for (const name of names) {
    const job = JOBS[name];
    if (job === undefined) throw new Error(`unknown job ${name}; jobs: ${Object.keys(JOBS).join(", ")}`);
    const model = buildModel(engine, job.layers);
    const { clean, corrupted, metric } = prompts(batch, pos, job.diff);
    const cleanCache = model.runWithCache(clean).cache;
    const corruptedCache = model.runWithCache(corrupted).cache;
    const ms = {};
    const scores = {};
    let estimated;
    for (const strategy of ["planned", "naive"]) {
      const t0 = performance.now();
      const out = [];
      const onPlan = (p) => { if (strategy === "planned") estimated = p.estimatedSpeedup; };
      for (const component of job.components) {
        if (job.all) {
          const r = await getActPatchDirectPathAllSources(model, corrupted, cleanCache, corruptedCache, metric, { component, strategy, onPlan });
          out.push(...r.scores.data);
        } else {
          for (const [srcLayer, srcHead] of job.sources) {
            const r = await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { srcLayer, srcHead, component, strategy, onPlan });
            out.push(...r.scores.data);
          }
        }
      }
      ms[strategy] = performance.now() - t0;
      scores[strategy] = out;
    }
    let maxDiff = 0;
    scores.planned.forEach((s, i) => { maxDiff = Math.max(maxDiff, Math.abs(s - scores.naive[i])); });
    const row = {
      suite: "patching", job: name, label: job.label, batch, pos, engine: engine.variant,
      plannedMs: ms.planned, naiveMs: ms.naive, speedup: ms.naive / ms.planned, estimatedSpeedup: estimated, maxDiff,
    };
    console.log(`${name.padEnd(6)} ${job.label.padEnd(46)} planned ${(ms.planned / 1000).toFixed(2).padStart(7)} s  ` +
      `naive ${(ms.naive / 1000).toFixed(2).padStart(8)} s  x${row.speedup.toFixed(2)} (plan estimate x${estimated.toFixed(2)})  ` +
      `max |planned - naive| ${maxDiff.toExponential(1)}  [${engine.variant}, batch ${batch} x ${pos}]`);
    rows.push(row);
    model.dispose();
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const jobsArg = process.argv.find((a) => a.startsWith("--jobs="));
  await run({ quick: process.argv.includes("--quick"), jobs: jobsArg?.slice(7).split(",") });
}
