// 16-bit weights: toBf16 / toF16 round f32 to bf16 / IEEE half (nearest, ties to even, NaN kept),
// and gemmPacked16 / gemmPackedF16 multiply by a B packed in that format, widening each group as
// they load it. Their product must be gemmPacked's on the rounded B bit for bit (WASM), and the
// twin's within f32 rounding.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { GemmActivation, packedBLength, type Kernels } from "../src/engine/kernels.js";
import { f16BitsToF32Bits, f32BitsToF16Bits } from "../src/io/half.js";
import { allEngines, randn, relError } from "./helpers.js";

let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

/** bf16 bits of an f32 by hand: round to nearest, ties to even. */
function bf16Of(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
const widen = (h: number) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
const f32Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const widenF16 = (h: number) => new Float32Array(new Uint32Array([f16BitsToF32Bits(h)]).buffer)[0]!;

/** One 16-bit format: its rounding kernel, its product, and the host's rounding and widening. */
interface Format { name: "bf16" | "f16"; round: keyof Kernels & ("toBf16" | "toF16"); product: keyof Kernels & ("gemmPacked16" | "gemmPackedF16");
  bitsOf: (x: number) => number; widen: (h: number) => number }
const FORMATS: Format[] = [
  { name: "bf16", round: "toBf16", product: "gemmPacked16", bitsOf: bf16Of, widen },
  { name: "f16", round: "toF16", product: "gemmPackedF16", bitsOf: (x) => f32BitsToF16Bits(f32Bits(x)), widen: widenF16 },
];

function toBf16(e: Engine, x: Float32Array): Uint16Array {
  const px = e.upload(x);
  const out = e.alloc(Math.ceil(x.length / 2) + 1);
  e.kernels.toBf16(px, out, x.length);
  const halves = new Uint16Array(e.heap().buffer, out, x.length).slice();
  e.free(px);
  e.free(out);
  return halves;
}

describe("toBf16", () => {
  it("rounds to nearest with ties to even, keeps infinities and NaN, on every backend", () => {
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1). 1 + 3·2^-8 ties up to 1 + 2^-6.
    const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 1e-40, Infinity, -Infinity, NaN, 3.3895314e38, 65504]);
    for (const e of engines) {
      const got = toBf16(e, x);
      x.forEach((v, i) => expect(got[i], `${e.variant} ${v}`).toBe(bf16Of(v)));
      expect(widen(got[1]!)).toBe(1);
      expect(widen(got[2]!)).toBe(1 + 2 ** -6);
      expect(Number.isNaN(widen(got[7]!))).toBe(true);
      expect(widen(got[5]!)).toBe(Infinity);
    }
  });
});

describe("toF16", () => {
  it("rounds to nearest with ties to even; overflow to ±inf, subnormals and NaN kept, on every backend", () => {
    // 1 + 2^-11 ties between 1 and 1 + 2^-10: to even (1). 65519 rounds down to 65504, 65520 up to inf.
    // 2^-24 is the smallest subnormal; 2^-25 ties to even zero; 3·2^-26 rounds up to 2^-24.
    const x = new Float32Array([1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -2.5, 65504, 65519, 65520, -1e6, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-3, -0, Infinity, NaN, 1e-40]);
    for (const e of engines) {
      const px = e.upload(x);
      const out = e.alloc(x.length);
      e.kernels.toF16(px, out, x.length);
      const got = new Uint16Array(e.heap().buffer, out, x.length).slice();
      x.forEach((v, i) => expect(got[i], `${e.variant} ${v}`).toBe(f32BitsToF16Bits(f32Bits(v))));
      expect([widenF16(got[1]!), widenF16(got[2]!), widenF16(got[5]!), widenF16(got[6]!), widenF16(got[8]!), widenF16(got[9]!), widenF16(got[10]!)])
        .toEqual([1, 1 + 2 ** -9, 65504, Infinity, 2 ** -24, 0, 2 ** -24]);
      expect(Number.isNaN(widenF16(got[14]!))).toBe(true);
      e.free(px);
      e.free(out);
    }
  });

  it("gemmPackedF16 widens every half exactly: an identity A gives back the f16 values, subnormals, zeros, infinities and NaN included", () => {
    const values = [0, -0, 1, -1, 2 ** -24, -(2 ** -24), 1023 * 2 ** -24, 2 ** -14, 65504, -65504, Infinity, -Infinity, NaN, 0.1, -3.14159, 1e-5];
    const n = values.length;
    const k = 8; // B [k, n]: each row the values, shifted
    const b = new Float32Array(k * n).map((_, i) => values[(i + Math.floor(i / n)) % n]!);
    const identity = new Float32Array(k * k).map((_, i) => (i % (k + 1) === 0 ? 1 : 0));
    for (const e of engines) {
      const pb = e.upload(b);
      const packed = e.alloc(packedBLength(k, n));
      e.kernels.prepackB(pb, n, k, n, 0, packed);
      const p16 = e.alloc(packedBLength(k, n));
      e.kernels.toF16(packed, p16, packedBLength(k, n));
      const pa = e.upload(identity);
      const c = e.alloc(k * n);
      e.kernels.gemmPackedF16(pa, k, p16, c, n, 0, k, n, k, 0, 0, n, GemmActivation.none);
      const got = e.download(c, k * n);
      // 1·x + 0·(others) is exact; a column holding ±inf or NaN elsewhere gets 0·inf = NaN, as f32 would (toF16's test covers those values).
      const finiteColumn = (j: number) => Array.from({ length: k }, (_, r) => b[r * n + j]!).every(Number.isFinite);
      let checked = 0;
      got.forEach((v, i) => {
        if (!finiteColumn(i % n)) return;
        const want = widenF16(f32BitsToF16Bits(f32Bits(b[i]!)));
        expect(Object.is(v + 0, want + 0), `${e.variant} [${i}] ${v} vs ${want}`).toBe(true); // + 0: the sum of -0 and +0 products is +0
        checked++;
      });
      expect(checked).toBeGreaterThanOrEqual(40);
      for (const p of [pb, packed, p16, pa, c]) e.free(p);
    }
  });
});

for (const format of FORMATS) describe(format.product, () => {
  for (const [m, n, k] of [[1, 8, 1], [3, 33, 7], [5, 100, 64], [17, 129, 513], [4, 768, 769], [64, 50, 300]] as const) {
    it(`is gemmPacked on the ${format.name}-rounded B: ${m}×${k}·${k}×${n}, with bias, accumulate, gelu and a column split`, () => {
      const a = randn(m * k, m + n);
      const b = randn(k * n, k + 1);
      const bias = randn(n, 3);
      const before = randn(m * n, 4);
      const rounded = b.map((x) => format.widen(format.bitsOf(x)));
      let twin: Float32Array | undefined;
      for (const e of engines) {
        const pa = e.upload(a);
        const pbias = e.upload(bias);
        const packedOf = (w: Float32Array) => {
          const pw = e.upload(w);
          const packed = e.alloc(packedBLength(k, n));
          e.kernels.prepackB(pw, n, k, n, 0, packed);
          e.free(pw);
          return packed;
        };
        const p32 = packedOf(rounded);
        const pf = packedOf(b);
        const p16 = e.alloc(Math.ceil(packedBLength(k, n) / 2) + 1);
        e.kernels[format.round](pf, p16, packedBLength(k, n));
        const run = (f: (c: number) => void) => {
          const c = e.upload(before);
          f(c);
          const out = e.download(c, m * n);
          e.free(c);
          return out;
        };
        for (const [accumulate, act] of [[0, GemmActivation.none], [1, GemmActivation.geluNew]] as const) {
          const want = run((c) => e.kernels.gemmPacked(pa, k, p32, c, n, pbias, m, n, k, accumulate, 0, n, act));
          const got = run((c) => e.kernels[format.product](pa, k, p16, c, n, pbias, m, n, k, accumulate, 0, n, act));
          if (e.backend === "wasm") expect(got, `${e.variant} acc ${accumulate}`).toEqual(want);
          else expect(relError(got, want)).toBeLessThanOrEqual(1e-6);
          const cut = Math.min(n, 32 * Math.max(1, Math.floor(n / 64)));
          const split = run((c) => {
            e.kernels[format.product](pa, k, p16, c, n, pbias, m, n, k, accumulate, cut, n, act);
            e.kernels[format.product](pa, k, p16, c, n, pbias, m, n, k, accumulate, 0, cut, act);
          });
          expect(split).toEqual(got);
          if (e.backend === "js" && accumulate === 0) twin = got;
        }
        for (const p of [pa, pbias, p32, pf, p16]) e.free(p);
      }
      // The WASM kernels agree with the twin within f32 rounding.
      for (const e of engines.filter((x) => x.backend === "wasm")) {
        const pa = e.upload(a);
        const pw = e.upload(b);
        const packed = e.alloc(packedBLength(k, n));
        e.kernels.prepackB(pw, n, k, n, 0, packed);
        const p16 = e.alloc(Math.ceil(packedBLength(k, n) / 2) + 1);
        e.kernels[format.round](packed, p16, packedBLength(k, n));
        const pbias = e.upload(bias);
        const c = e.upload(before);
        e.kernels[format.product](pa, k, p16, c, n, pbias, m, n, k, 0, 0, n, GemmActivation.none);
        expect(relError(e.download(c, m * n), twin!)).toBeLessThanOrEqual(1e-5);
        for (const p of [pa, pw, packed, p16, pbias, c]) e.free(p);
      }
    });
  }
});

for (const format of FORMATS) describe(`pack16 (a weight packed as ${format.name} a column block at a time)`, () => {
  it(`gives the bits of ${format.round} on the whole packed matrix, for ragged widths and blocks`, async () => {
    const { pack16 } = await import("../src/model/device-weights.js");
    for (const e of engines) {
      for (const [k, n, chunk] of [[7, 100, 32], [513, 129, 64], [1100, 77, 32], [64, 768, 256]] as const) {
        const W = randn(k * n, k + n);
        const pw = e.upload(W);
        const packed = e.alloc(packedBLength(k, n));
        e.kernels.prepackB(pw, n, k, n, 0, packed);
        const whole = e.alloc(Math.ceil(packedBLength(k, n) / 2));
        e.kernels[format.round](packed, whole, packedBLength(k, n));
        const want = new Uint16Array(e.heap().buffer, whole, packedBLength(k, n)).slice();
        const got = pack16(e, W, k, n, format.name, chunk);
        expect(new Uint16Array(e.heap().buffer, got, packedBLength(k, n)).slice(), `${e.variant} ${k}×${n} by ${chunk}`).toEqual(want);
        for (const p of [pw, packed, whole, got]) e.free(p);
      }
    }
  });
});
