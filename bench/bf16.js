// bf16 and f16 vs f32 weight storage on the GPT-2-small architecture (random weights): the forward
// at 1 × 16, 1 × 64 and 8 × 16 on one and two kernel threads, the three models in one process,
// calls alternating (tinybench), and the engine memory each model's weights take.
//
//   node --experimental-wasm-relaxed-simd bench/run.js bf16 [--quick]
import { Bench } from "tinybench";
import { Engine, HookedTransformer } from "../dist/index.js";
import { gpt2SmallWeights } from "./gpt2-small.js";

export async function run({ quick }) {
  const rows = [];
  const time = quick ? 200 : 2500;
  const { cfg, weights } = gpt2SmallWeights();
  console.log("| threads | batch × pos | f32 | bf16 | f16 | f32 / bf16 | f32 / f16 |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const threads of [1, 2]) {
    const engine = await Engine.create({ threads });
    const base = engine.stats().bytesInUse;
    const f32 = new HookedTransformer(cfg, weights, engine, undefined, { dtype: "f32" });
    const f32Bytes = engine.stats().bytesInUse - base;
    const bf16 = new HookedTransformer(cfg, weights, engine, undefined, { dtype: "bf16" });
    const bf16Bytes = engine.stats().bytesInUse - base - f32Bytes;
    const f16 = new HookedTransformer(cfg, weights, engine, undefined, { dtype: "f16" });
    const f16Bytes = engine.stats().bytesInUse - base - f32Bytes - bf16Bytes;
    if (threads === 1) {
      console.log(`weights in the engine: f32 ${(f32Bytes / 2 ** 20).toFixed(0)} MiB, bf16 ${(bf16Bytes / 2 ** 20).toFixed(0)} MiB, f16 ${(f16Bytes / 2 ** 20).toFixed(0)} MiB`);
      rows.push({ suite: "bf16", op: "weight memory", f32Bytes, bf16Bytes, f16Bytes });
    }
    for (const [batch, pos] of [[1, 16], [1, 64], [8, 16]]) {
      const tokens = Array.from({ length: batch }, (_, b) => Array.from({ length: pos }, (_, p) => (b * 131 + p * 17) % cfg.dVocab));
      const bench = new Bench({ time, warmupTime: time / 5 });
      bench.add("f32", () => f32.forward(tokens));
      bench.add("bf16", () => bf16.forward(tokens));
      bench.add("f16", () => f16.forward(tokens));
      await bench.run();
      const [a, b, c] = bench.tasks.map((t) => t.result.latency.mean);
      console.log(`| ${threads} | ${batch} × ${pos} | ${a.toFixed(1)} ms | ${b.toFixed(1)} ms | ${c.toFixed(1)} ms | × ${(a / b).toFixed(2)} | × ${(a / c).toFixed(2)} |`);
      rows.push({ suite: "bf16", op: "forward", threads, batch, pos, engine: engine.variant, f32Ms: a, bf16Ms: b, f16Ms: c, ratio: a / b, f16Ratio: a / c });
    }
    f32.dispose();
    bf16.dispose();
    f16.dispose();
    engine.dispose();
  }
  return rows;
}
