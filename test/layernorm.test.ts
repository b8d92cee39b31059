import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { randn, RAGGED, relError, wasmEngines } from "./helpers.js";

const engines = await wasmEngines();
const js = Engine.createJs();
const EPS = 1e-5;

interface NormOut { out: Float32Array; scale: Float32Array }

// x: [rows, d] (+ optional w, b: [d]) -> layerNorm(x) through one engine
function layerNorm(engine: Engine, x: Float32Array, rows: number, d: number,
  w?: Float32Array, b?: Float32Array, eps = EPS): NormOut {
  const px = engine.upload(x);
  const pw = w ? engine.upload(w) : 0;
  const pb = b ? engine.upload(b) : 0;
  const po = engine.alloc(rows * d);
  const ps = engine.alloc(rows);
  engine.kernels.layerNorm(px, po, ps, pw, pb, rows, d, eps);
  const result = { out: engine.download(po, rows * d), scale: engine.download(ps, rows) };
  for (const p of [px, pw, pb, po, ps]) engine.free(p);
  return result;
}

function rmsNorm(engine: Engine, x: Float32Array, rows: number, d: number, w?: Float32Array): NormOut {
  const px = engine.upload(x);
  const pw = w ? engine.upload(w) : 0;
  const po = engine.alloc(rows * d);
  const ps = engine.alloc(rows);
  engine.kernels.rmsNorm(px, po, ps, pw, rows, d, EPS);
  const result = { out: engine.download(po, rows * d), scale: engine.download(ps, rows) };
  for (const p of [px, pw, po, ps]) engine.free(p);
  return result;
}

function addLayerNorm(engine: Engine, a: Float32Array, r: Float32Array, rows: number, d: number,
  w: Float32Array, b: Float32Array): NormOut & { resid: Float32Array } {
  const [pa, pr, pw, pb] = [a, r, w, b].map((t) => engine.upload(t)) as [number, number, number, number];
  const presid = engine.alloc(rows * d);
  const po = engine.alloc(rows * d);
  const ps = engine.alloc(rows);
  engine.kernels.addLayerNorm(pa, pr, presid, po, ps, pw, pb, rows, d, EPS);
  const result = {
    resid: engine.download(presid, rows * d), out: engine.download(po, rows * d), scale: engine.download(ps, rows),
  };
  for (const p of [pa, pr, pw, pb, presid, po, ps]) engine.free(p);
  return result;
}

function addRmsNorm(engine: Engine, a: Float32Array, r: Float32Array, rows: number, d: number,
  w?: Float32Array): NormOut & { resid: Float32Array } {
  const [pa, pr] = [a, r].map((t) => engine.upload(t)) as [number, number];
  const pw = w ? engine.upload(w) : 0;
  const presid = engine.alloc(rows * d);
  const po = engine.alloc(rows * d);
  const ps = engine.alloc(rows);
  engine.kernels.addRmsNorm(pa, pr, presid, po, ps, pw, rows, d, EPS);
  const result = {
    resid: engine.download(presid, rows * d), out: engine.download(po, rows * d), scale: engine.download(ps, rows),
  };
  for (const p of [pa, pr, pw, presid, po, ps]) engine.free(p);
  return result;
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

describe("layernorm twins by hand", () => {
  it("layerNorm of [1, 2, 3, 4]", () => {
    // mean 2.5, biased var 1.25
    const s = Math.sqrt(1.25 + EPS);
    const { out, scale } = layerNorm(js, new Float32Array([1, 2, 3, 4]), 1, 4);
    expect(scale[0]).toBeCloseTo(s, 6);
    [-1.5, -0.5, 0.5, 1.5].forEach((v, i) => expect(out[i]).toBeCloseTo(v / s, 6));
    const affine = layerNorm(js, new Float32Array([1, 2, 3, 4]), 1, 4,
      new Float32Array([2, 2, 1, 1]), new Float32Array([0, 1, 0, -1]));
    [-3 / s, -1 / s + 1, 0.5 / s, 1.5 / s - 1].forEach((v, i) => expect(affine.out[i]).toBeCloseTo(v, 6));
    const biasOnly = layerNorm(js, new Float32Array([1, 2, 3, 4]), 1, 4, undefined, new Float32Array([1, 1, 1, 1]));
    expect(biasOnly.out[0]).toBeCloseTo(1 - 1.5 / s, 6);
  });

  it("rmsNorm of [1, 2, 3, 4] and addLayerNorm of two halves", () => {
    const s = Math.sqrt(7.5 + EPS); // mean of squares = 30 / 4
    const r = rmsNorm(js, new Float32Array([1, 2, 3, 4]), 1, 4, new Float32Array([1, 2, 1, 1]));
    expect(r.scale[0]).toBeCloseTo(s, 6);
    [1 / s, 4 / s, 3 / s, 4 / s].forEach((v, i) => expect(r.out[i]).toBeCloseTo(v, 6));
    const one = new Float32Array([1, 1, 1, 1]);
    const zero = new Float32Array(4);
    const fused = addLayerNorm(js, new Float32Array([0.5, 1, 1.5, 2]), new Float32Array([0.5, 1, 1.5, 2]), 1, 4, one, zero);
    expect([...fused.resid]).toEqual([1, 2, 3, 4]);
    expect(fused.out).toEqual(layerNorm(js, new Float32Array([1, 2, 3, 4]), 1, 4).out);
  });
});

const SHAPES: [number, number][] = [
  ...RAGGED.map((d): [number, number] => [3, d]), [5, 8], [2, 16], [7, 64], [4, 768], [3, 769], [2, 3072],
];

for (const engine of engines) {
  describe(`layernorm ${engine.variant} vs twin`, () => {
    it.each(SHAPES)("layerNorm on [%i, %i], every affine combination", (rows, d) => {
      const x = randn(rows * d, rows * 7 + d, 2);
      const w = randn(d, d + 1, 0.5);
      const b = randn(d, d + 2, 0.5);
      for (const [ww, bb] of [[w, b], [w, undefined], [undefined, b], [undefined, undefined]] as const) {
        const ours = layerNorm(engine, x, rows, d, ww, bb);
        const ref = layerNorm(js, x, rows, d, ww, bb);
        expect(relError(ours.out, ref.out)).toBeLessThanOrEqual(1e-5);
        expect(relError(ours.scale, ref.scale)).toBeLessThanOrEqual(1e-6);
      }
    });

    it("layerNorm keeps its precision under a large common offset (two-pass statistics)", () => {
      const rows = 4;
      const d = 768;
      const x = randn(rows * d, 3, 1).map((v) => v + 300);
      const ours = layerNorm(engine, x, rows, d);
      const ref = layerNorm(js, x, rows, d);
      expect(relError(ours.out, ref.out)).toBeLessThanOrEqual(1e-5);
    });

    it.each(SHAPES)("rmsNorm on [%i, %i], with and without w", (rows, d) => {
      const x = randn(rows * d, rows * 11 + d, 3);
      const w = randn(d, d + 5);
      for (const ww of [w, undefined]) {
        const ours = rmsNorm(engine, x, rows, d, ww);
        const ref = rmsNorm(js, x, rows, d, ww);
        expect(relError(ours.out, ref.out)).toBeLessThanOrEqual(1e-5);
        expect(relError(ours.scale, ref.scale)).toBeLessThanOrEqual(1e-6);
      }
    });

    it.each(SHAPES)("addLayerNorm on [%i, %i] equals add then layerNorm", (rows, d) => {
      const a = randn(rows * d, d, 2);
      const r = randn(rows * d, d + 9, 2);
      const w = randn(d, 1);
      const b = randn(d, 2);
      const ours = addLayerNorm(engine, a, r, rows, d, w, b);
      const ref = addLayerNorm(js, a, r, rows, d, w, b);
      expect(ours.resid).toEqual(ref.resid); // an f32 add rounds the same everywhere
      expect(relError(ours.out, ref.out)).toBeLessThanOrEqual(1e-5);
      expect(relError(ours.scale, ref.scale)).toBeLessThanOrEqual(1e-6);
      // Same kernel, unfused: identical bits.
      const unfused = layerNorm(engine, ours.resid, rows, d, w, b);
      expect(bits(unfused.out)).toEqual(bits(ours.out));
      expect(bits(unfused.scale)).toEqual(bits(ours.scale));
    });

    it.each(SHAPES)("addRmsNorm on [%i, %i] equals add then rmsNorm", (rows, d) => {
      const a = randn(rows * d, d + 3, 2);
      const r = randn(rows * d, d + 4, 2);
      const w = randn(d, 5);
      for (const ww of [w, undefined]) {
        const ours = addRmsNorm(engine, a, r, rows, d, ww);
        const ref = addRmsNorm(js, a, r, rows, d, ww);
        expect(ours.resid).toEqual(ref.resid);
        expect(relError(ours.out, ref.out)).toBeLessThanOrEqual(1e-5);
        expect(relError(ours.scale, ref.scale)).toBeLessThanOrEqual(1e-6);
        const unfused = rmsNorm(engine, ours.resid, rows, d, ww);
        expect(bits(unfused.out)).toEqual(bits(ours.out));
        expect(bits(unfused.scale)).toEqual(bits(ours.scale));
        const twinUnfused = rmsNorm(js, ref.resid, rows, d, ww);
        expect(twinUnfused.out).toEqual(ref.out);
      }
    });

    it("writes in place (out = x, resid = a, out = resid) and is deterministic", () => {
      const rows = 5;
      const d = 771;
      const x = randn(rows * d, 42, 3);
      const w = randn(d, 43);
      const b = randn(d, 44);
      const first = layerNorm(engine, x, rows, d, w, b);
      const second = layerNorm(engine, x, rows, d, w, b);
      expect(bits(second.out)).toEqual(bits(first.out));
      expect(bits(second.scale)).toEqual(bits(first.scale));

      const [px, pw, pb] = [x, w, b].map((t) => engine.upload(t)) as [number, number, number];
      const ps = engine.alloc(rows);
      engine.kernels.layerNorm(px, px, ps, pw, pb, rows, d, EPS);
      expect(bits(engine.download(px, rows * d))).toEqual(bits(first.out));

      const r = randn(rows * d, 45);
      const a = randn(rows * d, 46);
      const expected = addLayerNorm(engine, a, r, rows, d, w, b);
      const pa = engine.upload(a);
      const pr = engine.upload(r);
      engine.kernels.addLayerNorm(pa, pr, pa, pa, ps, pw, pb, rows, d, EPS);
      expect(bits(engine.download(pa, rows * d))).toEqual(bits(expected.out));
      expect(bits(engine.download(ps, rows))).toEqual(bits(expected.scale));
      for (const p of [px, pw, pb, ps, pa, pr]) engine.free(p);
    });

    it("rows that are constant give out = b and scale = sqrt(eps)", () => {
      const d = 19;
      const x = new Float32Array(2 * d).fill(3.25);
      const b = randn(d, 8);
      const { out, scale } = layerNorm(engine, x, 2, d, randn(d, 9), b);
      expect([...out.subarray(0, d)]).toEqual([...b]);
      expect(scale[1]).toBeCloseTo(Math.sqrt(EPS), 7);
    });
  });
}
