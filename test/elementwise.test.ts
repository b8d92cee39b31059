import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { allEngines, randn, RAGGED } from "./helpers.js";

const engines = await allEngines();
const SIZES = [...RAGGED, 769, 3072];

// Uploads inputs, allocates outputs, runs `call(inputPtrs, outputPtrs)` and returns the downloaded outputs.
function run(engine: Engine, inputs: Float32Array[], outSizes: number[],
  call: (ins: number[], outs: number[]) => void): Float32Array[] {
  const ins = inputs.map((x) => engine.upload(x));
  const outs = outSizes.map((n) => engine.alloc(n));
  call(ins, outs);
  const result = outs.map((p, i) => engine.download(p, outSizes[i]!));
  for (const p of [...ins, ...outs]) engine.free(p);
  return result;
}

describe("elementwise twins by hand", () => {
  const js = Engine.createJs();
  it("add, addRow", () => {
    const a = new Float32Array([1, 2, 3]);
    const b = new Float32Array([10, 20, 30]);
    expect([...run(js, [a, b], [3], ([x, y], [o]) => js.kernels.add(x!, y!, o!, 3))[0]!]).toEqual([11, 22, 33]);
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    const row = new Float32Array([100, 200, 300]);
    expect([...run(js, [x, row], [6], ([p, r], [o]) => js.kernels.addRow(p!, r!, o!, 2, 3))[0]!])
      .toEqual([101, 202, 303, 104, 205, 306]);
  });
});

// An f32 sum rounds once in both backends, so WASM and twin agree bit for bit.
for (const engine of engines.filter((e) => e.backend === "wasm")) {
  const js = Engine.createJs();
  describe(`elementwise ${engine.variant} vs twin`, () => {
    it.each(SIZES)("firstNonFinite finds the same first NaN or ±Infinity as the twin for n = %i", (n) => {
      const x = randn(n, n + 7);
      const find = (e: Engine, data: Float32Array) => {
        const p = e.upload(data);
        const i = e.kernels.firstNonFinite(p, n);
        e.free(p);
        return i;
      };
      expect(find(engine, x)).toBe(-1);
      expect(find(js, x)).toBe(-1);
      // Every position (the unrolled blocks, the tail), each kind, with a later one that must not win.
      for (const at of new Set([0, Math.floor(n / 3), n - 17, n - 1].filter((i) => i >= 0))) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          const y = x.slice();
          y[at] = bad;
          if (at + 5 < n) y[at + 5] = NaN;
          expect(find(engine, y), `${bad} at ${at}`).toBe(at);
          expect(find(js, y)).toBe(at);
        }
      }
      const big = x.slice();
      big[n - 1] = 3.4e38; // finite, near the largest f32
      expect(find(engine, big)).toBe(-1);
    });

    it.each(SIZES)("add agrees exactly for n = %i", (n) => {
      const a = randn(n, n);
      const b = randn(n, n + 1, 3);
      const ours = run(engine, [a, b], [n], ([x, y], [o]) => engine.kernels.add(x!, y!, o!, n))[0]!;
      expect(ours).toEqual(run(js, [a, b], [n], ([x, y], [o]) => js.kernels.add(x!, y!, o!, n))[0]!);
      // Sanity against plain JS on one element so a twin bug cannot hide behind agreement.
      expect(ours[n - 1]).toBe(Math.fround(a[n - 1]! + b[n - 1]!));
    });

    it.each([[1, 1], [3, 7], [5, 17], [4, 768], [2, 769]])("addRow agrees exactly for [%i, %i]", (rows, n) => {
      const x = randn(rows * n, rows);
      const row = randn(n, n);
      const ours = run(engine, [x, row], [rows * n], ([p, r], [o]) => engine.kernels.addRow(p!, r!, o!, rows, n))[0]!;
      const ref = run(js, [x, row], [rows * n], ([p, r], [o]) => js.kernels.addRow(p!, r!, o!, rows, n))[0]!;
      expect(ours).toEqual(ref);
      expect(ours[(rows - 1) * n]).toBe(Math.fround(x[(rows - 1) * n]! + row[0]!));
    });

    it("out may alias an input", () => {
      const n = 67;
      const a = randn(n, 1);
      const b = randn(n, 2);
      const pa = engine.upload(a);
      const pb = engine.upload(b);
      engine.kernels.add(pa, pb, pa, n);
      engine.kernels.add(pa, pa, pa, n);
      engine.kernels.addRow(pa, pb, pb, 1, n);
      const got = engine.download(pb, n);
      for (let i = 0; i < n; i++) expect(got[i]).toBe(Math.fround(Math.fround(Math.fround(a[i]! + b[i]!) * 2) + b[i]!));
      engine.free(pa);
      engine.free(pb);
    });
  });
}
