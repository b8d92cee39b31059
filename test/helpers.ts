import { Engine } from "../src/engine/engine.js";
import { supportsRelaxedSimd } from "../src/engine/wasm-loader.js";

/** Every engine this runtime can run: the js reference, the plain SIMD build and (where validated) the relaxed one. */
export async function allEngines(): Promise<Engine[]> {
  const engines = [Engine.createJs(), await Engine.create({ variant: "simd" })];
  if (supportsRelaxedSimd()) engines.push(await Engine.create({ variant: "relaxed" }));
  return engines;
}

/** The two WASM engines (simd, and relaxed where available). */
export async function wasmEngines(): Promise<Engine[]> {
  const engines = [await Engine.create({ variant: "simd" })];
  if (supportsRelaxedSimd()) engines.push(await Engine.create({ variant: "relaxed" }));
  return engines;
}

/** A small deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard-normal floats from a seeded generator. */
export function randn(n: number, seed: number, std = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** max |a - b| / max |b|: the error relative to the output's magnitude. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relError: lengths differ (${a.length} vs ${b.length})`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    maxRef = Math.max(maxRef, Math.abs(b[i]!));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

/** max |a - b| (NaN counts as Infinity). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Ragged sizes (not multiples of the SIMD width) plus a few block-sized ones. */
export const RAGGED = [1, 3, 7, 17, 65, 129] as const;
