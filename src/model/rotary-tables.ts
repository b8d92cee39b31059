// Rotary embedding tables, shared by the forward pass, the backward and the sweeps that rotate a
// few heads by themselves.
import type { HookedTransformerConfig } from "./config.js";

/**
 * How many of each head's dimensions rotary rotates: `rotaryDim`, or all `dHead`.
 */
export function rotaryDim(cfg: Pick<HookedTransformerConfig, "dHead" | "rotaryDim">): number {
  return cfg.rotaryDim ?? cfg.dHead;
}

/**
 * The r/2 rotary angle divisors of a model, r = {@link rotaryDim} (angle = position / divisor, the
 * reciprocal of each frequency): base^(2i/r), and with Llama 3's scaling (`rotaryScaling`), for frequency f = 1 / divisor
 * of wavelength λ = 2π / f: kept below λ = N / highFreqFactor, divided by `factor` above
 * N / lowFreqFactor, and between them (1 − s) · f / factor + s · f with
 * s = (N / λ − lowFreqFactor) / (highFreqFactor − lowFreqFactor), N the original context length.
 */
export function rotaryDivisors(cfg: Pick<HookedTransformerConfig, "dHead" | "rotaryBase" | "rotaryScaling" | "rotaryDim">): Float64Array {
  const half = rotaryDim(cfg) / 2;
  const divisors = Float64Array.from({ length: half }, (_, j) => Math.pow(cfg.rotaryBase, j / half));
  const r = cfg.rotaryScaling;
  if (r === undefined) return divisors;
  const N = r.originalMaxPositionEmbeddings;
  return divisors.map((divisor) => {
    const wavelength = 2 * Math.PI * divisor;
    if (wavelength < N / r.highFreqFactor) return divisor;
    if (wavelength > N / r.lowFreqFactor) return divisor * r.factor;
    const s = (N / wavelength - r.lowFreqFactor) / (r.highFreqFactor - r.lowFreqFactor);
    return 1 / ((1 - s) / (divisor * r.factor) + s / divisor);
  });
}

/**
 * cos/sin [B * count, r/2] of the angles id / divisors[i] for positions [first, first + count) of
 * each row (divisors from {@link rotaryDivisors}), computed in double precision and rounded once
 * (as TransformerLens does).
 */
export function rotaryTables(heap: Float32Array, ids: Int32Array, B: number, P: number, first: number, count: number,
  divisors: Float64Array, cos: number, sin: number): void {
  const half = divisors.length;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < count; i++) {
      const id = ids[b * P + first + i]!;
      const row = (b * count + i) * half;
      for (let j = 0; j < half; j++) {
        const angle = id / divisors[j]!;
        heap[(cos >>> 2) + row + j] = Math.cos(angle);
        heap[(sin >>> 2) + row + j] = Math.sin(angle);
      }
    }
  }
}
