// The Llama-3.2-1B shape (16 layers, d_model 2048, 32 heads, 8 KV heads, d_mlp 8192, vocab 128256,
// tied), random BF16 weights loaded with dtype "bf16": does it load into the 4 GiB WASM memory, and
// run a forward and a direct path sweep at 1 × 16; the memory after each (see llama.js's large part).
// --dtype f16 stores the weights as f16 instead. The half-memory suite runs the Qwen2.5-0.5B shape
// in both 16-bit formats, one after the other in one process.
//
//   node --experimental-wasm-relaxed-simd --expose-gc bench/run.js llama-1b [--dtype f16]
//   node --experimental-wasm-relaxed-simd --expose-gc bench/run.js half-memory
import { largePart, QWEN25_05B } from "./llama.js";

export const LLAMA_32_1B = {
  name: "Llama-3.2-1B", nLayers: 16, dModel: 2048, nHeads: 32, nKeyValueHeads: 8, dMlp: 8192, dVocab: 128256, nCtx: 131072, ropeTheta: 500000, eps: 1e-5,
};

export async function run({ args = [] } = {}) {
  const i = args.indexOf("--dtype");
  const dtype = i >= 0 ? args[i + 1] : "bf16";
  if (dtype !== "bf16" && dtype !== "f16") throw new Error(`--dtype must be bf16 or f16, got ${dtype}`);
  return largePart(LLAMA_32_1B, dtype);
}

/** The half-memory suite: the Qwen2.5-0.5B shape loaded as bf16, then as f16. */
export async function runQwenHalf() {
  const rows = [];
  for (const dtype of ["bf16", "f16"]) {
    rows.push(...await largePart(QWEN25_05B, dtype));
    globalThis.gc?.();
  }
  return rows;
}
