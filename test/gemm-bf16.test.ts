// bf16 weights: toBf16 rounds f32 to bf16 (nearest, ties to even, NaN kept) and gemmPacked16
// multiplies by a B packed as bf16, widening each element as it loads it. Its product must be
// gemmPacked's on the bf16-rounded B bit for bit (WASM), and the twin's within f32 rounding.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { GemmActivation, packedBLength } from "../src/engine/kernels.js";
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

describe("gemmPacked16", () => {
  for (const [m, n, k] of [[1, 8, 1], [3, 33, 7], [5, 100, 64], [17, 129, 513], [4, 768, 769], [64, 50, 300]] as const) {
    it(`is gemmPacked on the bf16-rounded B: ${m}×${k}·${k}×${n}, with bias, accumulate, gelu and a column split`, () => {
      const a = randn(m * k, m + n);
      const b = randn(k * n, k + 1);
      const bias = randn(n, 3);
      const before = randn(m * n, 4);
      const rounded = b.map((x) => widen(bf16Of(x)));
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
        e.kernels.toBf16(pf, p16, packedBLength(k, n));
        const run = (f: (c: number) => void) => {
          const c = e.upload(before);
          f(c);
          const out = e.download(c, m * n);
          e.free(c);
          return out;
        };
        for (const [accumulate, act] of [[0, GemmActivation.none], [1, GemmActivation.geluNew]] as const) {
          const want = run((c) => e.kernels.gemmPacked(pa, k, p32, c, n, pbias, m, n, k, accumulate, 0, n, act));
          const got = run((c) => e.kernels.gemmPacked16(pa, k, p16, c, n, pbias, m, n, k, accumulate, 0, n, act));
          if (e.backend === "wasm") expect(got, `${e.variant} acc ${accumulate}`).toEqual(want);
          else expect(relError(got, want)).toBeLessThanOrEqual(1e-6);
          const cut = Math.min(n, 32 * Math.max(1, Math.floor(n / 64)));
          const split = run((c) => {
            e.kernels.gemmPacked16(pa, k, p16, c, n, pbias, m, n, k, accumulate, cut, n, act);
            e.kernels.gemmPacked16(pa, k, p16, c, n, pbias, m, n, k, accumulate, 0, cut, act);
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
        e.kernels.toBf16(packed, p16, packedBLength(k, n));
        const pbias = e.upload(bias);
        const c = e.upload(before);
        e.kernels.gemmPacked16(pa, k, p16, c, n, pbias, m, n, k, 0, 0, n, GemmActivation.none);
        expect(relError(e.download(c, m * n), twin!)).toBeLessThanOrEqual(1e-5);
        for (const p of [pa, pw, packed, p16, pbias, c]) e.free(p);
      }
    });
  }
});

describe("packBf16 (a weight packed as bf16 a column block at a time)", () => {
  it("gives the bits of toBf16 on the whole packed matrix, for ragged widths and blocks", async () => {
    const { packBf16 } = await import("../src/model/device-weights.js");
    for (const e of engines) {
      for (const [k, n, chunk] of [[7, 100, 32], [513, 129, 64], [1100, 77, 32], [64, 768, 256]] as const) {
        const W = randn(k * n, k + n);
        const pw = e.upload(W);
        const packed = e.alloc(packedBLength(k, n));
        e.kernels.prepackB(pw, n, k, n, 0, packed);
        const whole = e.alloc(Math.ceil(packedBLength(k, n) / 2));
        e.kernels.toBf16(packed, whole, packedBLength(k, n));
        const want = new Uint16Array(e.heap().buffer, whole, packedBLength(k, n)).slice();
        const got = packBf16(e, W, k, n, chunk);
        expect(new Uint16Array(e.heap().buffer, got, packedBLength(k, n)).slice(), `${e.variant} ${k}×${n} by ${chunk}`).toEqual(want);
        for (const p of [pw, packed, whole, got]) e.free(p);
      }
    }
  });
});
