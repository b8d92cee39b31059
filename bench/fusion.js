// What the forward's fusions save: a GPT-2-small-architecture forward (random weights written by
// the bench) as it runs with no hooks, against the same forward with hooks that only look placed
// where they turn fusions off, so the very same arithmetic runs as separate kernels:
//   - "add + norm, bias + gelu": hooks on every block's hook_resid_mid, hook_resid_post and
//     mlp.hook_pre (the residual add and the layer norm after it run as two passes; the MLP's
//     product writes hook_pre, then gelu runs as its own kernel);
//   - "all": those plus hook_pattern (attention materialises scores and pattern).
// The outputs must be the same bits (checked first). Relaxed SIMD (else plain), one thread, the
// variants taking turns call by call; each figure is the fastest call.
//
//   node --experimental-wasm-relaxed-simd bench/run.js fusion [--quick]
import { pathToFileURL } from "node:url";
import { Engine } from "../dist/index.js";
import { GPT2_SMALL, gpt2Small, randomTokens } from "./gpt2-small.js";

const SHAPES = [[1, 64], [8, 16], [1, 256]];

const sameBits = (a, b) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export async function run(options = {}) {
  const quick = options.quick ?? false;
  const engine = await Engine.create();
  const model = gpt2Small(engine);
  const look = () => undefined;
  const blockHooks = (names) => Array.from({ length: GPT2_SMALL.nLayers }, (_, l) => names.map((n) => [`blocks.${l}.${n}`, look])).flat();
  const variants = {
    fused: [],
    "add + norm, bias + gelu unfused": blockHooks(["hook_resid_mid", "hook_resid_post", "mlp.hook_pre"]),
    "all unfused": blockHooks(["hook_resid_mid", "hook_resid_post", "mlp.hook_pre", "attn.hook_pattern"]),
  };
  const names = Object.keys(variants);
  const rows = [];
  for (const [batch, pos] of quick ? [[1, 16]] : SHAPES) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    // Logits of the last position only: the unembedding is the same in every variant.
    const call = (name) => model.runWithHooks(tokens, { fwdHooks: variants[name], lastPositionOnly: true }).logits.data;
    const outs = names.map(call);
    for (const [i, out] of outs.entries()) {
      if (!sameBits(out, outs[0])) throw new Error(`${batch}x${pos}: "${names[i]}" differs from the fused forward`);
    }
    const best = names.map(() => Infinity);
    const rounds = quick ? 2 : 10;
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const j = (i + r) % names.length;
        const t0 = performance.now();
        call(names[j]);
        best[j] = Math.min(best[j], performance.now() - t0);
      }
    }
    for (const [i, name] of names.entries()) {
      rows.push({ suite: "fusion", batch, pos, variant: engine.variant, forward: name, ms: best[i], vsFused: best[i] / best[0] });
      console.log(`${`${batch}x${pos}`.padEnd(6)} ${engine.variant.padEnd(8)} ${name.padEnd(32)} ${best[i].toFixed(1).padStart(8)} ms   x${(best[i] / best[0]).toFixed(3)} of fused`);
    }
  }
  model.dispose();
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
