import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { randn, RAGGED, relError, wasmEngines } from "./helpers.js";

const engines = await wasmEngines();
const js = Engine.createJs();
const SIZES = [...RAGGED, 768, 769, 3072];

type Unary = "geluNew" | "geluExact" | "silu";

function unary(engine: Engine, name: Unary, x: Float32Array): Float32Array {
  const p = engine.upload(x);
  const o = engine.alloc(x.length);
  engine.kernels[name](p, o, x.length);
  const out = engine.download(o, x.length);
  engine.free(p);
  engine.free(o);
  return out;
}

function softmax(engine: Engine, x: Float32Array, rows: number, n: number): Float32Array {
  const p = engine.upload(x);
  const o = engine.alloc(x.length);
  engine.kernels.softmax(p, o, rows, n);
  const out = engine.download(o, x.length);
  engine.free(p);
  engine.free(o);
  return out;
}

/** Evenly spaced values from lo to hi, both included. */
function linspace(lo: number, hi: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
}

/** Largest |a - b| / (|b| + floor) over elements: a per-element relative error. */
function pointwiseRel(a: Float32Array, b: Float32Array, floor: number): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** gelu_new in float64, with 1 + tanh(u) written as 2·sigmoid(2u) so it does not cancel in the tail. */
function geluNewF64(x: number): number {
  const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
  return x / (1 + Math.exp(-2 * u));
}

describe("gelu_new's negative tail against float64, by absolute error", () => {
  // Relative error means nothing where the value falls towards 0 (gelu_new(-5) ≈ -2.3e-7,
  // gelu_new(-6) ≈ -8e-11): the bound is 4e-6 relative plus 1e-12 absolute, so the absolute
  // term rules the far tail, and a kernel that flushes the tail to 0 too early (or cancels in
  // 1 + tanh) fails by orders of magnitude.
  const x = Float32Array.from([...linspace(-12, -3, 3001), -20, -88, -100, -1e4, -3.4e38]);
  for (const engine of [js, ...engines]) {
    it(`${engine.variant}: |ours - exact| <= 4e-6·|exact| + 1e-12 on [-12, -3] and far below, never positive`, () => {
      const ours = unary(engine, "geluNew", x);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < x.length; i++) {
        const exact = geluNewF64(x[i]!);
        const excess = Math.abs(ours[i]! - exact) - 4e-6 * Math.abs(exact);
        if (!(excess <= worst)) { worst = Number.isNaN(excess) ? Infinity : excess; at = x[i]!; }
        expect(ours[i]! <= 0, `gelu_new(${x[i]}) = ${ours[i]}`).toBe(true);
      }
      expect(worst, `absolute error beyond 4e-6 relative, worst at x = ${at}`).toBeLessThanOrEqual(1e-12);
    });
  }
});

describe("activation twins by hand", () => {
  it("gelu_new, exact gelu and silu at known points", () => {
    const x = new Float32Array([1, 0, -1, 2]);
    const gn = unary(js, "geluNew", x);
    expect(gn[0]).toBeCloseTo(0.841192, 6);
    expect(gn[1]).toBe(0);
    expect(gn[2]).toBeCloseTo(-0.158808, 6);
    expect(gn[3]).toBeCloseTo(1.9545977, 6);
    const ge = unary(js, "geluExact", x);
    expect(ge[0]).toBeCloseTo(0.8413447, 6);
    expect(ge[2]).toBeCloseTo(-0.1586553, 6);
    expect(ge[3]).toBeCloseTo(1.9544997, 6);
    const si = unary(js, "silu", x);
    expect(si[0]).toBeCloseTo(0.7310586, 6);
    expect(si[2]).toBeCloseTo(-0.2689414, 6);
  });

  it("softmax of a small row, with -Infinity entries and an all -Infinity row", () => {
    const x = new Float32Array([1, 2, 3, 0, -Infinity, 0, -Infinity, -Infinity, -Infinity]);
    const p = softmax(js, x, 3, 3);
    const expected = [0.09003057, 0.24472847, 0.66524096, 0.5, 0, 0.5, 0, 0, 0];
    expected.forEach((v, i) => expect(p[i]).toBeCloseTo(v, 7));
  });
});

for (const engine of engines) {
  describe(`activations ${engine.variant} vs twin`, () => {
    for (const name of ["geluNew", "geluExact", "silu"] as const) {
      it.each(SIZES)(`${name} on n = %i random values`, (n) => {
        const x = randn(n, 100 + n, 3);
        expect(relError(unary(engine, name, x), unary(js, name, x))).toBeLessThanOrEqual(1e-5);
      });

      it(`${name} element by element over [-12, 12] and at extremes`, () => {
        const x = linspace(-12, 12, 4003);
        const ours = unary(engine, name, x);
        const ref = unary(js, name, x);
        expect(relError(ours, ref)).toBeLessThanOrEqual(1e-6);
        // Per element where the reference itself is accurate (the twin's 1 + tanh cancels below -5).
        const lo = name === "geluNew" ? -5 : -12;
        const keep = (a: Float32Array) => a.filter((_, i) => x[i]! >= lo);
        expect(pointwiseRel(keep(ours), keep(ref), 1e-30)).toBeLessThanOrEqual(3e-6);
        const big = new Float32Array([-1e4, -100, -88, -87, 87, 88, 100, 1e4, 1e-30, -1e-30, 1e-7, -0]);
        const b = unary(engine, name, big);
        const br = unary(js, name, big);
        for (let i = 0; i < big.length; i++) {
          expect(Number.isNaN(b[i])).toBe(false);
          expect(Math.abs(b[i]! - br[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(Math.abs(br[i]!), 1e-30));
        }
      });

      it(`${name} is deterministic and may write in place`, () => {
        const x = randn(1031, 7, 4);
        const a = unary(engine, name, x);
        const b = unary(engine, name, x);
        expect(bits(a)).toEqual(bits(b));
        const p = engine.upload(x);
        engine.kernels[name](p, p, x.length);
        expect(bits(engine.download(p, x.length))).toEqual(bits(a));
        engine.free(p);
      });
    }

    const shapes: [number, number][] = [[1, 1], [3, 3], [2, 7], [5, 17], [4, 65], [3, 129], [2, 768], [3, 769], [2, 3072], [1, 50257]];
    it.each(shapes)("softmax on [%i, %i]", (rows, n) => {
      const x = randn(rows * n, rows * 1000 + n, 4);
      expect(relError(softmax(engine, x, rows, n), softmax(js, x, rows, n))).toBeLessThanOrEqual(1e-5);
    });

    it("softmax with -Infinity entries, an all -Infinity row and large logits", () => {
      const n = 37;
      const x = randn(4 * n, 9, 30);
      for (let j = 0; j < n; j += 3) x[j] = -Infinity; // row 0: some masked
      x.fill(-Infinity, n, 2 * n); // row 1: all masked
      x[2 * n + 5] = 1e4; // row 2: one dominant logit
      const ours = softmax(engine, x, 4, n);
      expect(relError(ours, softmax(js, x, 4, n))).toBeLessThanOrEqual(1e-5);
      expect([...ours.subarray(n, 2 * n)]).toEqual(new Array(n).fill(0));
      expect(ours[2 * n + 5]).toBe(1);
      for (let j = 0; j < n; j += 3) expect(ours[j]).toBe(0);
      // Each row sums to 1 (the all-masked row to 0).
      for (const r of [0, 2, 3]) expect(ours.subarray(r * n, (r + 1) * n).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    });

    it("softmax is deterministic and may write in place", () => {
      const rows = 3;
      const n = 771;
      const x = randn(rows * n, 5, 3);
      const a = softmax(engine, x, rows, n);
      expect(bits(softmax(engine, x, rows, n))).toEqual(bits(a));
      const p = engine.upload(x);
      engine.kernels.softmax(p, p, rows, n);
      expect(bits(engine.download(p, x.length))).toEqual(bits(a));
      engine.free(p);
    });
  });
}
