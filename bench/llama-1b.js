// The Llama-3.2-1B shape (16 layers, d_model 2048, 32 heads, 8 KV heads, d_mlp 8192, vocab 128256,
// tied), random BF16 weights loaded with dtype "bf16": does it load into the 4 GiB WASM memory, and
// run a forward and a direct path sweep at 1 × 16; the memory after each (see llama.js's large part).
//
//   node --experimental-wasm-relaxed-simd --expose-gc bench/run.js llama-1b
import { largePart } from "./llama.js";

export const LLAMA_32_1B = {
  name: "Llama-3.2-1B", nLayers: 16, dModel: 2048, nHeads: 32, nKeyValueHeads: 8, dMlp: 8192, dVocab: 128256, nCtx: 131072, ropeTheta: 500000, eps: 1e-5,
};

export async function run() {
  return largePart(LLAMA_32_1B, "bf16");
}
