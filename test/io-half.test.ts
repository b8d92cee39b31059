import { describe, expect, test } from "vitest";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../src/io/half.js";

/** mulberry32, seeded, so failures reproduce (kept local: test/helpers.ts pulls in the engine). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Independent references: half values from their definition in float64, rounding by search.

function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Positive finite halves in increasing order (bit patterns 0x0000..0x7bff are monotonic). */
const POSITIVE_HALVES = Array.from({ length: 0x7c00 }, (_, h) => halfValue(h));

function roundToHalfReference(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // Beyond max + half an ulp (65520) rounds to inf; 65520 itself is a tie that goes to even (inf).
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = POSITIVE_HALVES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE_HALVES[mid]! <= a) lo = mid;
    else hi = mid;
  }
  if (POSITIVE_HALVES[hi]! <= a) lo = hi;
  if (lo === POSITIVE_HALVES.length - 1) return sign | lo;
  const dLo = a - POSITIVE_HALVES[lo]!;
  const dHi = POSITIVE_HALVES[lo + 1]! - a;
  if (dLo < dHi) return sign | lo;
  if (dHi < dLo) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

function bitsOf(values: number[]): Float32Array {
  return new Float32Array(new Uint32Array(values).buffer);
}

describe("float16", () => {
  test("every half converts to its exact value", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = f16ToF32(all);
    const outBits = new Uint32Array(out.buffer);
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const expected = halfValue(h);
      const ok = Number.isNaN(expected)
        ? Number.isNaN(out[h]) && ((outBits[h]! >>> 13) & 0x3ff) === (h & 0x3ff) // NaN payload kept
        : Object.is(out[h], expected); // signed zeros included
      if (!ok) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  test("half → float32 → half is the identity (quiet NaNs included)", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const isSignalingNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 && (h & 0x200) === 0;
      if (back[h] !== (isSignalingNaN ? h | 0x200 : h)) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  test("rounding to nearest, ties to even, on hand-picked values", () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even is 1
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: even is the upper
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [65504, 0x7bff], // largest half
      [65519, 0x7bff],
      [65520, 0x7c00], // tie with the next (absent) step: rounds to inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24: even is 0
      [2 ** -25 * (1 + 2 ** -20), 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 units: even is 2
      [5 * 2 ** -25, 0x0002], // tie between 2 and 3 units: even is 2
      [2 ** -26, 0x0000],
      [2 ** -14 - 2 ** -25, 0x0400], // largest subnormal + half a unit: carries into the first normal
      [2 ** -14, 0x0400],
      [-0, 0x8000],
      [0, 0x0000],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    const out = f32ToF16(new Float32Array(cases.map(([x]) => x)));
    cases.forEach(([x, h], i) => expect({ x, h: out[i] }).toEqual({ x, h }));
    const nan = f32ToF16(bitsOf([0x7fc00000, 0xffc00000, 0x7f800001]));
    for (const h of nan) expect(Number.isNaN(halfValue(h))).toBe(true);
    expect(nan[1]! & 0x8000).toBe(0x8000);
  });

  test("random float32 values round like an exhaustive nearest-even search", () => {
    const next = rng(7);
    const bits = new Uint32Array(20000);
    for (let i = 0; i < bits.length; i++) {
      // Exponents concentrated around the half range so subnormals, normals and overflow all occur.
      const exp = 95 + Math.floor(next() * 60);
      let mant = Math.floor(next() * 0x800000);
      // Exact ties (half a half-ulp) are rare at random; force some at normal and subnormal scales.
      if (next() < 0.3) mant = (mant & ~0x1fff) | 0x1000;
      else if (next() < 0.2) mant = (mant >> 18) << 18 | (1 << 17);
      bits[i] = ((next() < 0.5 ? 0x80000000 : 0) | (exp << 23) | mant) >>> 0;
    }
    const values = new Float32Array(bits.buffer);
    const out = f32ToF16(values);
    expect(Array.from(out)).toEqual(Array.from(values, roundToHalfReference));
  });
});

describe("bfloat16", () => {
  const asFloat = (bits: number): number => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;

  function roundToBf16Reference(bits: number): number {
    const x = asFloat(bits);
    const lo = (bits & 0xffff0000) >>> 0; // truncation: toward zero
    const hi = (lo + 0x10000) >>> 0; // one bf16 step away from zero
    // Past the largest finite value the next step is inf, which rounding treats as 2^128.
    const hiValue = (hi & 0x7fffffff) === 0x7f800000 ? Math.sign(x) * 2 ** 128 : asFloat(hi);
    const dLo = Math.abs(x - asFloat(lo));
    const dHi = Math.abs(hiValue - x);
    if (dLo < dHi || (dLo === dHi && ((lo >>> 16) & 1) === 0)) return lo >>> 16;
    return hi >>> 16;
  }

  test("every bfloat16 converts exactly and back", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f32 = bf16ToF32(all);
    const f32Bits = new Uint32Array(f32.buffer);
    const back = f32ToBf16(f32);
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const isSignalingNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0 && (h & 0x40) === 0;
      if (f32Bits[h] !== (h << 16) >>> 0 || back[h] !== (isSignalingNaN ? h | 0x40 : h)) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  test("rounding to nearest, ties to even", () => {
    const cases: Array<[number, number]> = [
      [0x3f800000, 0x3f80], // 1
      [0x3f808000, 0x3f80], // tie, even stays
      [0x3f818000, 0x3f82], // tie, odd goes up
      [0x3f808001, 0x3f81],
      [0x3f807fff, 0x3f80],
      [0x00008000, 0x0000], // subnormal tie to even zero
      [0x00018000, 0x0002],
      [0x7f7fffff, 0x7f80], // float32 max rounds to inf
      [0x7f800000, 0x7f80],
      [0xff800000, 0xff80],
      [0x80000000, 0x8000],
    ];
    const out = f32ToBf16(bitsOf(cases.map(([b]) => b)));
    cases.forEach(([b, h], i) => expect({ b: b.toString(16), h: out[i] }).toEqual({ b: b.toString(16), h }));
    const nan = f32ToBf16(bitsOf([0x7f800001, 0xffc00000]));
    expect(nan[0]! & 0x7f80).toBe(0x7f80);
    expect(nan[0]! & 0x7f).not.toBe(0);
    expect(nan[1]).toBe(0xffc0);
  });

  test("random float32 values round to the nearest bfloat16, ties to even", () => {
    const next = rng(11);
    const bits = new Uint32Array(20000);
    for (let i = 0; i < bits.length; i++) {
      const exp = Math.floor(next() * 255); // all finite exponents
      // Low halves from a small set make exact ties frequent.
      const low = next() < 0.3 ? [0x8000, 0x7fff, 0x8001, 0][Math.floor(next() * 4)]! : Math.floor(next() * 0x10000);
      bits[i] = ((next() < 0.5 ? 0x80000000 : 0) | (exp << 23) | (Math.floor(next() * 0x80) << 16) | low) >>> 0;
    }
    const out = f32ToBf16(new Float32Array(bits.buffer));
    const expected = Array.from(bits, roundToBf16Reference);
    expect(Array.from(out)).toEqual(expected);
  });
});
