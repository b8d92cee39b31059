// Forward + backward (gradients of a logit difference at every hook point) against the forward
// alone, GPT-2-small architecture (random weights written by the bench), one and two threads.
// The ratio is what a gradient costs over the forward it differentiates; PyTorch autograd takes
// about 2x its forward on this work. Then the memory of a gradient run at 8 x 16 (estimated and
// measured on the engine), and attribution patching of every head's output against the planned
// activation patching it estimates: the time of each and the rank correlation of their scores.
// Last, the peer: the same gradient with tfjs (tf.grads, wasm backend, one thread) on the same
// model written in tfjs ops, checked against ours at the embeddings.
//
//   node --experimental-wasm-relaxed-simd bench/run.js backward [--quick] [--no-peer]
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, getActPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutAllPos, logitDiff, spearman } from "../dist/index.js";
import { gradientMemory } from "../dist/model/activation-sizes.js";
import { gpt2Small, gpt2SmallWeights, randomTokens } from "./gpt2-small.js";
import { loadTfjsWasm } from "./peers/tfjs.js";
import { registerTfjsGradients } from "./peers/tfjs-gradients.js";
import { tfjsGpt2 } from "./peers/tfjs-gpt2.js";

const SHAPES = [[1, 16], [1, 64], [8, 16]];

/** Options: `quick` (short runs), `shapes` ([batch, pos] pairs), `threads` (default [1, 2]). */
export async function run(options = {}) {
  const time = options.quick ? 300 : 3000;
  const rows = [];
  for (const threads of options.threads ?? [1, 2]) {
    const engine = await Engine.create({ variant: "relaxed", threads });
    const model = gpt2Small(engine);
    for (const [batch, pos] of options.shapes ?? SHAPES) {
      const tokens = randomTokens(batch, pos, batch * 1000 + pos);
      const metric = logitDiff({ correct: tokens.map((row) => row[1]), incorrect: tokens.map((row) => row[2]) });
      const bench = new Bench({ time, iterations: 3, warmupTime: time / 5, warmupIterations: 1 });
      // The forward a gradient differentiates: logits at the last position, which the metric reads.
      bench.add("forward", () => model.forward(tokens, { lastPositionOnly: true }));
      bench.add("forward+backward", () => model.runWithHooks(tokens, { metric }));
      await bench.run();
      const [fwd, both] = bench.tasks.map((t) => t.result.latency.mean);
      const row = { suite: "backward", threads, batch, pos, forwardMs: fwd, forwardBackwardMs: both, ratio: both / fwd };
      rows.push(row);
      console.log(`${threads} thread(s) ${`${batch}x${pos}`.padEnd(6)} forward ${fwd.toFixed(1).padStart(8)} ms  ` +
        `forward+backward ${both.toFixed(1).padStart(8)} ms  x${row.ratio.toFixed(2)}`);
    }
    if (threads === 1) {
      rows.push(memoryRow(model, 8, 16));
      rows.push(await attributionRow(model, options.quick ? 4 : 8, 16));
    }
    if (threads === 1 && !(options.args ?? []).includes("--no-peer")) rows.push(...await peerRows(model, options.shapes ?? SHAPES, time));
    model.dispose();
    engine.dispose();
  }
  return rows;
}

/** hooklens forward + backward against tfjs's tf.grads of the same metric, one thread each. */
async function peerRows(model, shapes, time) {
  const { tf } = await loadTfjsWasm();
  await registerTfjsGradients();
  const { cfg, weights } = gpt2SmallWeights();
  const peer = tfjsGpt2(tf, cfg, weights);
  const rows = [];
  for (const [batch, pos] of shapes) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    const correct = tokens.map((row) => row[1]);
    const incorrect = tokens.map((row) => row[2]);
    const metric = logitDiff({ correct, incorrect });
    const ours = model.runWithCache(tokens, { inclBwd: true, metric, namesFilter: ["hook_embed_grad"] }).cache.get("hook_embed_grad").data;
    const theirs = peer.inputGradient(tokens, correct, incorrect);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < ours.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ours[i] - theirs[i]));
      maxAbs = Math.max(maxAbs, Math.abs(theirs[i]));
    }
    const bench = new Bench({ time, iterations: 3, warmupTime: time / 5, warmupIterations: 1 });
    bench.add("hooklens", () => model.runWithHooks(tokens, { metric }));
    bench.add("tfjs", () => peer.inputGradient(tokens, correct, incorrect));
    await bench.run();
    const [oursMs, tfjsMs] = bench.tasks.map((t) => t.result.latency.mean);
    const row = { suite: "backward", kind: "peer", batch, pos, hooklensMs: oursMs, tfjsMs, speedup: tfjsMs / oursMs, maxAbsDiff: maxDiff, maxAbsGrad: maxAbs };
    rows.push(row);
    console.log(`peer ${`${batch}x${pos}`.padEnd(6)} hooklens ${oursMs.toFixed(1).padStart(8)} ms  tfjs tf.grads ${tfjsMs.toFixed(1).padStart(8)} ms  ` +
      `x${row.speedup.toFixed(2)}  (gradients at the embeddings agree to ${maxDiff.toExponential(1)}, max |grad| ${maxAbs.toExponential(1)})`);
  }
  peer.dispose();
  return rows;
}

/** Peak memory of one gradient run: gradientMemory's estimate, and the engine's measured peak. */
function memoryRow(model, batch, pos) {
  const tokens = randomTokens(batch, pos, 77);
  const metric = logitDiff({ correct: tokens.map((row) => row[1]), incorrect: tokens.map((row) => row[2]) });
  model.runWithHooks(tokens, { metric });
  const before = model.engine.stats().bytesInUse;
  model.engine.resetPeak();
  model.runWithHooks(tokens, { metric });
  const engineMiB = (model.engine.stats().peakBytesInUse - before) / 2 ** 20;
  const need = gradientMemory(model.cfg, { batch, pos, lastPositionOnly: true });
  const mib = (x) => x / 2 ** 20;
  const row = {
    suite: "backward", kind: "memory", batch, pos, storedMiB: mib(need.stored), forwardArenaMiB: mib(need.forwardArena),
    backwardArenaMiB: mib(need.backwardArena), peakMiB: mib(need.peak), measuredEnginePeakMiB: engineMiB, transposedWeightsMiB: mib(need.transposedWeights),
  };
  console.log(`memory ${batch}x${pos}: kept activations ${row.storedMiB.toFixed(1)} MiB, arenas ${row.forwardArenaMiB.toFixed(1)} / ` +
    `${row.backwardArenaMiB.toFixed(1)} MiB (measured on the engine ${engineMiB.toFixed(1)} MiB), peak ${row.peakMiB.toFixed(1)} MiB; ` +
    `transposed weights ${row.transposedWeightsMiB.toFixed(1)} MiB once per model`);
  return row;
}

/** Attribution patching of every head's output against the exact, planned sweep it estimates. */
async function attributionRow(model, batch, pos) {
  const clean = randomTokens(batch, pos, 5);
  const corrupted = clean.map((row, b) => row.map((t, p) => (p === 3 || p === 7 ? (t + 1 + b) % 50257 : t)));
  const metric = logitDiff({ correct: clean.map((row) => row[pos - 1]), incorrect: corrupted.map((row) => row[pos - 2]) });
  const { cache } = model.runWithCache(clean);
  let t = performance.now();
  const attr = getAttrPatchAttnHeadOutAllPos(model, corrupted, cache, metric);
  const attrMs = performance.now() - t;
  t = performance.now();
  const exact = await getActPatchAttnHeadOutAllPos(model, corrupted, cache, metric);
  const exactMs = performance.now() - t;
  const rho = spearman(Array.from(attr.scores.data), Array.from(exact.scores.data));
  console.log(`attribution ${batch}x${pos}, all heads' outputs: ${attrMs.toFixed(0)} ms vs activation patching (planned) ${exactMs.toFixed(0)} ms ` +
    `(x${(exactMs / attrMs).toFixed(1)}); Spearman rho ${rho.toFixed(3)}`);
  return { suite: "backward", kind: "attribution", batch, pos, attributionMs: attrMs, activationPatchingMs: exactMs, speedup: exactMs / attrMs, spearman: rho };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
