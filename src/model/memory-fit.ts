// Whether a model's weights fit one WASM instance's memory, judged from its config alone, so a
// checkpoint too large for the 4 GiB address space is refused before anything is read or allocated.

import type { HookedTransformerConfig } from "./config.js";
import type { WeightDtype } from "./device-weights.js";
import { parameterShapes } from "./weights.js";

/** What a WASM32 instance addresses: 65536 pages of 64 KiB. */
export const WASM_MEMORY_LIMIT = 65536 * 65536;

const GiB = 2 ** 30;

/**
 * The engine memory loading a model takes, in bytes: every parameter resident as f32 (W_E and W_U
 * both, also when the checkpoint ties them) plus the largest matrix once more, the unpacked copy
 * a weight has while it is packed at upload. (The Qwen2.5-0.5B shape: 2.85 GiB estimated, 2.88 GiB
 * measured by bench/llama.js.)
 */
export function weightMemoryBytes(cfg: HookedTransformerConfig, dtype: WeightDtype = "f32"): number {
  let total = 0;
  let largest = 0;
  let embedding = 0;
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    total += n;
    largest = Math.max(largest, n);
    if (name === "embed.W_E" || name === "pos_embed.W_pos") embedding += n;
  }
  if (dtype === "f32") return (total + largest) * 4;
  // bf16 or f16: the matrices at 2 bytes and the embeddings (gathered row by row) at 4; matrices are
  // converted a column block (about 8 MiB) at a time.
  return total * 2 + embedding * 2 + 2 * (8 << 20) * 4;
}

/**
 * Refuses, before anything is allocated, a model whose f32 weights cannot fit the 4 GiB of a WASM32
 * instance (`what` names it in the message, with the size it needs and what 16-bit storage would take).
 *
 * @throws RangeError naming the size needed
 * @example
 * ```ts
 * checkWeightsFitMemory(configFromHf(json), "./Llama-3.2-1B");
 * // RangeError: ./Llama-3.2-1B: its weights need about 5.9 GiB of WASM memory as f32, more than the 4 GiB ...
 * ```
 */
export function checkWeightsFitMemory(cfg: HookedTransformerConfig, what: string, dtype: WeightDtype = "f32"): void {
  const need = weightMemoryBytes(cfg, dtype);
  if (need <= WASM_MEMORY_LIMIT) return;
  const half = weightMemoryBytes(cfg, "bf16");
  const hint = dtype !== "f32" ? `even stored as ${dtype}` : half <= WASM_MEMORY_LIMIT
    ? `stored in 16 bits (dtype: "f16" or "bf16", --dtype f16) they would take about ${(half / GiB).toFixed(1)} GiB, which fits`
    : `stored in 16 bits (f16 or bf16) they would take about ${(half / GiB).toFixed(1)} GiB, still too much`;
  throw new RangeError(`${what}: its weights need about ${(need / GiB).toFixed(1)} GiB of WASM memory as ${dtype}, more than the 4 GiB ` +
    `a WASM32 instance can address, so it is not loaded; ${hint}.`);
}
