import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { randn, relError, wasmEngines } from "./helpers.js";

const js = Engine.createJs();
const engines = await wasmEngines();

function runRotary(engine: Engine, x: Float32Array, cos: Float32Array, sin: Float32Array, rows: number, heads: number, d: number, inPlace = false,
  rotated = d) {
  const px = engine.upload(x);
  const pc = engine.upload(cos);
  const ps = engine.upload(sin);
  const po = inPlace ? px : engine.alloc(x.length);
  engine.kernels.rotary(px, po, pc, ps, rows, heads, d, rotated);
  const out = engine.download(po, x.length);
  for (const p of new Set([px, pc, ps, po])) engine.free(p);
  return out;
}

describe("rotary", () => {
  it("twin: rotates each (i, i + d/2) pair by the row's angle", () => {
    const t = 0.3;
    // one row, one head, d = 4: pairs (0, 2) and (1, 3), angles t and 2t
    const out = runRotary(js, new Float32Array([1, 2, 0, 1]), new Float32Array([Math.cos(t), Math.cos(2 * t)]),
      new Float32Array([Math.sin(t), Math.sin(2 * t)]), 1, 1, 4);
    expect(out[0]).toBeCloseTo(Math.cos(t), 6);
    expect(out[2]).toBeCloseTo(Math.sin(t), 6);
    expect(out[1]).toBeCloseTo(2 * Math.cos(2 * t) - Math.sin(2 * t), 6);
    expect(out[3]).toBeCloseTo(Math.cos(2 * t) + 2 * Math.sin(2 * t), 6);
  });

  it("twin, partial (GPT-NeoX's rotary_pct): rotates (i, i + r/2) of the first r dimensions, copies the rest", () => {
    const t = 0.3;
    // one row, one head, d = 6, r = 2: the pair (0, 1) at angle t; 2..5 unchanged (also out of place).
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    const out = runRotary(js, x, new Float32Array([Math.cos(t)]), new Float32Array([Math.sin(t)]), 1, 1, 6, false, 2);
    expect(out[0]).toBeCloseTo(Math.cos(t) - 2 * Math.sin(t), 6);
    expect(out[1]).toBeCloseTo(2 * Math.cos(t) + Math.sin(t), 6);
    expect(Array.from(out.subarray(2))).toEqual([3, 4, 5, 6]);
  });

  for (const engine of engines) {
    for (const [rows, heads, d] of [[1, 1, 2], [3, 2, 6], [17, 4, 16], [7, 3, 18], [65, 12, 64], [5, 2, 130]] as const) {
      it(`${engine.variant} equals the twin: rows ${rows}, heads ${heads}, dHead ${d} (also in place)`, () => {
        const x = randn(rows * heads * d, rows + d);
        const angles = randn(rows * (d / 2), 7 + d, 3);
        const cos = angles.map(Math.cos);
        const sin = angles.map(Math.sin);
        const want = runRotary(js, x, cos, sin, rows, heads, d);
        expect(relError(runRotary(engine, x, cos, sin, rows, heads, d), want)).toBeLessThanOrEqual(1e-6);
        expect(relError(runRotary(engine, x, cos, sin, rows, heads, d, true), want)).toBeLessThanOrEqual(1e-6);
      });
    }
    for (const [rows, heads, d, r] of [[3, 2, 6, 2], [17, 4, 16, 4], [7, 3, 18, 10], [9, 5, 64, 16], [4, 2, 130, 66]] as const) {
      it(`${engine.variant} equals the twin, partial: rows ${rows}, heads ${heads}, dHead ${d}, rotated ${r} (also in place)`, () => {
        const x = randn(rows * heads * d, rows + d + r);
        const angles = randn(rows * (r / 2), 5 + r, 3);
        const cos = angles.map(Math.cos);
        const sin = angles.map(Math.sin);
        const want = runRotary(js, x, cos, sin, rows, heads, d, false, r);
        expect(relError(runRotary(engine, x, cos, sin, rows, heads, d, false, r), want)).toBeLessThanOrEqual(1e-6);
        expect(relError(runRotary(engine, x, cos, sin, rows, heads, d, true, r), want)).toBeLessThanOrEqual(1e-6);
        // The unrotated dimensions are the input's, bit for bit.
        const out = runRotary(engine, x, cos, sin, rows, heads, d, false, r);
        for (let i = 0; i < rows * heads; i++) expect(out.subarray(i * d + r, (i + 1) * d)).toEqual(x.subarray(i * d + r, (i + 1) * d));
      });
    }
  }
});

describe("swiglu", () => {
  const run = (engine: Engine, gate: Float32Array, up: Float32Array) => {
    const pg = engine.upload(gate);
    const pu = engine.upload(up);
    engine.kernels.swiglu(pg, pu, pg, gate.length);
    const out = engine.download(pg, gate.length);
    engine.free(pg);
    engine.free(pu);
    return out;
  };
  it("twin: silu(gate) * up by hand", () => {
    const out = run(js, new Float32Array([0, 1, -2]), new Float32Array([5, 2, 3]));
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(2 / (1 + Math.exp(-1)), 6);
    expect(out[2]).toBeCloseTo((3 * -2) / (1 + Math.exp(2)), 6);
  });
  for (const engine of engines) {
    for (const n of [1, 3, 7, 17, 129, 769, 1536 * 3]) {
      it(`${engine.variant} equals the twin on ${n} elements`, () => {
        const gate = randn(n, n, 4);
        const up = randn(n, n + 1);
        expect(relError(run(engine, gate, up), run(js, gate, up))).toBeLessThanOrEqual(1e-5);
      });
    }
  }
});

describe("geglu (Gemma's gated MLP)", () => {
  const run = (engine: Engine, gate: Float32Array, up: Float32Array) => {
    const pg = engine.upload(gate);
    const pu = engine.upload(up);
    engine.kernels.geglu(pg, pu, pg, gate.length);
    const out = engine.download(pg, gate.length);
    engine.free(pg);
    engine.free(pu);
    return out;
  };
  it("twin: gelu_new(gate) * up by hand", () => {
    const out = run(js, new Float32Array([0, 1, -2]), new Float32Array([5, 2, 3]));
    const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(2 * gelu(1), 6);
    expect(out[2]).toBeCloseTo(3 * gelu(-2), 6);
  });
  for (const engine of engines) {
    for (const n of [1, 3, 7, 17, 129, 769, 1536 * 3]) {
      it(`${engine.variant} equals the twin on ${n} elements`, () => {
        const gate = randn(n, n, 4);
        const up = randn(n, n + 1);
        expect(relError(run(engine, gate, up), run(js, gate, up))).toBeLessThanOrEqual(1e-5);
      });
    }
  }
});

describe("softcap (Gemma-2's soft-capping)", () => {
  const run = (engine: Engine, x: Float32Array, cap: number) => {
    const px = engine.upload(x);
    engine.kernels.softcap(px, px, x.length, cap);
    const out = engine.download(px, x.length);
    engine.free(px);
    return out;
  };
  it("twin: cap · tanh(x / cap), -Infinity kept, large values saturate at ±cap", () => {
    const out = run(js, new Float32Array([0, 2, -7, -Infinity, 1e30, -1e30]), 5);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(5 * Math.tanh(0.4), 6);
    expect(out[2]).toBeCloseTo(5 * Math.tanh(-1.4), 6);
    expect(out[3]).toBe(-Infinity);
    expect(out[4]).toBe(5);
    expect(out[5]).toBe(-5);
  });
  for (const engine of engines) {
    for (const n of [1, 3, 7, 17, 129, 769, 4096 + 5]) {
      it(`${engine.variant} equals the twin on ${n} elements (with -Infinity and huge entries)`, () => {
        const x = randn(n, n + 3, 20);
        for (let i = 0; i < n; i += 5) x[i] = -Infinity;
        if (n > 2) { x[1] = 1e30; x[2] = -1e30; }
        const got = run(engine, x, 8);
        const want = run(js, x, 8);
        for (let i = 0; i < n; i++) {
          if (want[i] === -Infinity) expect(got[i]).toBe(-Infinity);
          else expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2e-6 * 8);
        }
      });
    }
  }
});
