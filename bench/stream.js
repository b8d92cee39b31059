// How much a forward's weights cost by coming from memory: gemmPacked on GPT-2-small shapes with
// a packed B that stays in cache (the same B every call, as the gemm suite and most GEMM
// benchmarks measure) against B streamed from memory (a different copy every call, ~200 MB in
// all, as a forward uses each of its 500 MB of weights once). Relaxed SIMD (else plain), one
// thread, the two taking turns; GFLOP/s of the fastest round.
//
//   node --experimental-wasm-relaxed-simd bench/run.js stream [--quick]
import { pathToFileURL } from "node:url";
import { Engine } from "../dist/index.js";
import { packedBLength } from "../dist/engine/kernels.js";

/** [m, k, n]: a 1 x 16 forward's MLP products and attention output, and the same at 64 and 128 rows. */
const SHAPES = [[16, 768, 3072], [16, 3072, 768], [16, 768, 768], [64, 768, 3072], [64, 3072, 768], [128, 768, 3072]];
const STREAM_BYTES = 200e6;

export async function run(options = {}) {
  const quick = options.quick ?? false;
  const engine = await Engine.create();
  const rows = [];
  for (const [m, k, n] of quick ? [[16, 768, 768]] : SHAPES) {
    const copies = Math.max(2, Math.ceil((quick ? 20e6 : STREAM_BYTES) / (k * n * 4)));
    const a = engine.upload(Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)));
    const b = engine.upload(Float32Array.from({ length: k * n }, (_, i) => Math.cos(i)));
    const c = engine.alloc(m * n);
    const packs = Array.from({ length: copies }, () => {
      const p = engine.alloc(packedBLength(k, n));
      engine.kernels.prepackB(b, n, k, n, 0, p);
      return p;
    });
    // Each round multiplies `copies` times: by packs[0] every time (hot), or by every copy in turn.
    const round = (hot) => {
      const t0 = performance.now();
      for (let i = 0; i < copies; i++) engine.kernels.gemmPacked(a, k, packs[hot ? 0 : i], c, n, 0, m, n, k, 0, 0, n, 0);
      return performance.now() - t0;
    };
    const best = { hot: Infinity, streamed: Infinity };
    for (let r = 0; r < (quick ? 2 : 8); r++) {
      for (const hot of r % 2 ? [true, false] : [false, true]) {
        const ms = round(hot);
        if (r > 0) best[hot ? "hot" : "streamed"] = Math.min(best[hot ? "hot" : "streamed"], ms);
      }
    }
    const gflops = (ms) => (2 * m * n * k * copies) / (ms * 1e6);
    const row = { suite: "stream", variant: engine.variant, m, k, n, hotGflops: gflops(best.hot), streamedGflops: gflops(best.streamed),
      streamedGBps: (k * n * 4 * copies) / (best.streamed * 1e6) };
    row.hotOverStreamed = row.hotGflops / row.streamedGflops;
    rows.push(row);
    console.log(`${`${m}x${k}x${n}`.padEnd(14)} ${engine.variant.padEnd(8)} B in cache ${row.hotGflops.toFixed(1).padStart(5)} GFLOP/s   ` +
      `B from memory ${row.streamedGflops.toFixed(1).padStart(5)} GFLOP/s (${row.streamedGBps.toFixed(2)} GB/s of weights)   x${row.hotOverStreamed.toFixed(2)}`);
    for (const p of [a, b, c, ...packs]) engine.free(p);
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
