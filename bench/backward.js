// Forward + backward (gradients of a logit difference at every hook point) against the forward
// alone, GPT-2-small architecture (random weights written by the bench), one and two threads.
// The ratio is what a gradient costs over the forward it differentiates; PyTorch autograd takes
// about 2x its forward on this work.
//
//   node --experimental-wasm-relaxed-simd bench/run.js backward [--quick]
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, logitDiff } from "../dist/index.js";
import { gpt2Small, randomTokens } from "./gpt2-small.js";

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
    model.dispose();
    engine.dispose();
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
