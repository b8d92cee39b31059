// Whole forward pass of a GPT-2-small-architecture model (random weights written by the
// bench): batch 1 x 16, 1 x 64 and 8 x 16 tokens, with the unembedding (logits for every
// position) and without it, on the WASM engine (plain and relaxed SIMD) and the JS twin.
//
//   node --experimental-wasm-relaxed-simd bench/run.js forward [--quick]
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Engine, supportsRelaxedSimd } from "../dist/index.js";
import { gpt2Small, randomTokens } from "./gpt2-small.js";

const SHAPES = [[1, 16], [1, 64], [8, 16]];

/** Options: `quick` (short runs), `shapes` ([batch, pos] pairs; default 1x16, 1x64, 8x16). */
export async function run(options = {}) {
  const time = options.quick ? 200 : 3000;
  const engines = [await Engine.create({ variant: "simd" })];
  if (supportsRelaxedSimd()) engines.push(await Engine.create({ variant: "relaxed" }));
  engines.push(Engine.createJs());
  const models = engines.map((engine) => gpt2Small(engine));
  const rows = [];
  for (const [batch, pos] of options.shapes ?? SHAPES) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    for (const unembed of [true, false]) {
      const measured = [];
      for (const model of models) {
        const isJs = model.engine.variant === "js";
        const call = () => model.forward(tokens, { returnType: unembed ? "logits" : "none" });
        // The JS twin takes seconds per pass: one timed pass is enough for its ratio.
        const bench = new Bench(isJs ? { time: 0, iterations: 1, warmupIterations: 0, warmupTime: 0 }
          : { time, iterations: 3, warmupTime: time / 5, warmupIterations: 1 });
        bench.add(model.engine.variant, call);
        await bench.run();
        measured.push({ engine: model.engine.variant, ms: bench.tasks[0].result.latency.mean });
      }
      const jsMs = measured.find((m) => m.engine === "js").ms;
      for (const { engine, ms } of measured) {
        rows.push({ suite: "forward", batch, pos, unembed, engine, ms, tokensPerSecond: (batch * pos) / (ms / 1000), vsJs: jsMs / ms });
      }
      printRows(rows.slice(-measured.length));
    }
  }
  for (const m of models) m.dispose();
  return rows;
}

function printRows(rows) {
  for (const r of rows) {
    console.log(`${`${r.batch}x${r.pos}`.padEnd(6)} ${(r.unembed ? "logits" : "no unembed").padEnd(11)} ${r.engine.padEnd(8)} ` +
      `${r.ms.toFixed(1).padStart(9)} ms  ${r.tokensPerSecond.toFixed(0).padStart(7)} tok/s  x${r.vsJs.toFixed(1)} vs js`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
