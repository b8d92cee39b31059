// How a two-thread engine should share a kernel call: one fixed half per thread, or a few chunks
// per thread claimed one after another (what the engine does); and, for one long sequence,
// attention shared by query heads (what the engine does) or left to one thread (batch entries
// are the only other cut, and there is one). One two-thread engine and one
// model, switching between kernel sets built both ways (and the engine thread's own kernels, for
// the one-thread baseline) call by call, so all three see the same minute of the machine. Reaches
// into the engine's internals (its kernel set and pool) on purpose: this measures a design choice,
// not an API. Prints speed-ups over one thread: the median call and, in brackets, the fastest.
//
//   node --experimental-wasm-relaxed-simd bench/run.js chunking [--quick]
import { pathToFileURL } from "node:url";
import { Engine, HookedTransformer, getActPatchDirectPath, logitDiff } from "../dist/index.js";
import { parallelKernels } from "../dist/engine/parallel-kernels.js";
import { GPT2_SMALL, gpt2SmallWeights, randomTokens } from "./gpt2-small.js";

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function run(options = {}) {
  const quick = options.quick ?? false;
  const engine = await Engine.create({ threads: 2 });
  if (engine.threads !== 2) throw new Error(`two threads did not start: ${engine.threadsNote}`);
  const { cfg, weights } = gpt2SmallWeights();
  const model = new HookedTransformer(cfg, weights, engine);
  const own = engine.singleKernels;
  const sets = {
    "one thread": own,
    "fixed halves": parallelKernels(own, engine.pool, 1),
    "chunks claimed in turn": parallelKernels(own, engine.pool),
  };
  // Attention on the engine's thread alone (a batch of one cannot be cut between entries).
  sets["attention on one thread"] = { ...sets["chunks claimed in turn"],
    attention: own.attention, attnScores: own.attnScores, attnApplyPattern: own.attnApplyPattern };
  const work = [];
  for (const [batch, pos] of quick ? [[1, 16]] : [[1, 16], [8, 16]]) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    work.push({ name: `forward ${batch}x${pos}`, rounds: quick ? 2 : 12, task: async () => model.forward(tokens),
      names: ["one thread", "fixed halves", "chunks claimed in turn"] });
  }
  if (!quick) {
    const tokens = randomTokens(1, 1024, 1024);
    work.push({ name: "forward 1x1024", rounds: 8, task: async () => model.forward(tokens, { returnType: "none" }),
      names: ["one thread", "chunks claimed in turn", "attention on one thread"] });
  }
  if (!quick) {
    const [batch, pos] = [8, 16];
    const clean = randomTokens(batch, pos, 11);
    const corrupted = clean.map((row, b) => row.map((t, p) => (p >= 1 && (p + b) % 3 === 0 ? (t + 977) % GPT2_SMALL.dVocab : t)));
    const metric = logitDiff({ correct: clean.map((r) => r[pos - 1]), incorrect: corrupted.map((r) => r[pos - 2]) });
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    work.push({ name: "planned sweep 8x16", rounds: 5,
      task: () => getActPatchDirectPath(model, corrupted, cc, rc, metric, { srcLayer: 0, srcHead: 0, component: "q" }),
      names: ["one thread", "fixed halves", "chunks claimed in turn"] });
  }
  const rows = [];
  for (const { name, rounds, task, names } of work) {
    const times = Object.fromEntries(names.map((n) => [n, []]));
    // Round 0 warms up; the order rotates so that no way of splitting always goes first.
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const set = names[(i + r) % names.length];
        engine.kernelSet = sets[set];
        const t0 = performance.now();
        await task();
        if (r > 0) times[set].push(performance.now() - t0);
      }
    }
    engine.kernelSet = sets["chunks claimed in turn"];
    const base = times["one thread"];
    for (const set of names.slice(1)) {
      const row = { suite: "chunking", work: name, split: set, calls: times[set].length,
        medianSpeedup: median(base) / median(times[set]), fastestSpeedup: Math.min(...base) / Math.min(...times[set]) };
      rows.push(row);
      console.log(`${name.padEnd(20)} ${set.padEnd(24)} x${row.medianSpeedup.toFixed(2)} median (x${row.fastestSpeedup.toFixed(2)} fastest) over one thread, ${row.calls} calls each`);
    }
  }
  model.dispose();
  engine.dispose();
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
