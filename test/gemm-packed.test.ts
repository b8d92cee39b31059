import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { GemmActivation, packedBLength } from "../src/engine/kernels.js";
import { allEngines, randn, relError, RAGGED } from "./helpers.js";

// prepackB + gemmPacked: the packed layout is a contract shared by the WASM kernel and its twin,
// and a packed product must equal gemm bit for bit (WASM) so the model gives the same numbers
// whichever entry it calls.

interface Case { m: number; n: number; k: number; transB: number; bias: boolean; accumulate: number; seed: number }

interface Operands { a: number; b: number; bias: number; packed: number; before: Float32Array }

function upload(e: Engine, c: Case): Operands {
  const { m, n, k, transB } = c;
  const a = e.upload(randn(Math.max(m * k, 1), c.seed));
  const b = e.upload(randn(Math.max(k * n, 1), c.seed + 1));
  const bias = c.bias ? e.upload(randn(n, c.seed + 2)) : 0;
  const packed = e.alloc(Math.max(packedBLength(k, n), 1));
  e.kernels.prepackB(b, transB ? k : n, k, n, transB, packed);
  return { a, b, bias, packed, before: randn(m * n, c.seed + 3) };
}

function release(e: Engine, o: Operands): void {
  for (const p of [o.a, o.b, o.bias, o.packed]) e.free(p);
}

/** C from gemm, from one gemmPacked call, and from gemmPacked split into column ranges at multiples of 32. */
function products(e: Engine, c: Case): { plain: Float32Array; packed: Float32Array; split: Float32Array } {
  const { m, n, k, transB, accumulate } = c;
  const o = upload(e, c);
  const run = (f: (cp: number) => void) => {
    const cp = e.upload(o.before);
    f(cp);
    const out = e.download(cp, m * n);
    e.free(cp);
    return out;
  };
  const plain = run((cp) => e.kernels.gemm(o.a, k, o.b, transB ? k : n, cp, n, o.bias, m, n, k, transB, accumulate));
  const packed = run((cp) => e.kernels.gemmPacked(o.a, k, o.packed, cp, n, o.bias, m, n, k, accumulate, 0, n, 0));
  const split = run((cp) => {
    const cut = Math.min(n, 32 * Math.max(1, Math.floor(n / 64)));
    e.kernels.gemmPacked(o.a, k, o.packed, cp, n, o.bias, m, n, k, accumulate, cut, n, 0);
    e.kernels.gemmPacked(o.a, k, o.packed, cp, n, o.bias, m, n, k, accumulate, 0, cut, 0);
  });
  release(e, o);
  return { plain, packed, split };
}

function cases(): Case[] {
  const out: Case[] = [];
  let seed = 50;
  for (const m of [1, 3, 5, 17, 64]) {
    for (const n of [...RAGGED.filter((x) => x <= 100), 129, 768]) {
      for (const k of [1, 7, 64, 513, 769]) {
        out.push({ m, n, k, transB: seed % 2, bias: seed % 3 === 0, accumulate: seed % 5 === 0 ? 1 : 0, seed: seed++ });
      }
    }
  }
  return out;
}

const same = (x: Float32Array, y: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
const label = (c: Case) => `m=${c.m} n=${c.n} k=${c.k} transB=${c.transB} bias=${c.bias} acc=${c.accumulate}`;

let js: Engine;
let wasm: Engine[];

beforeAll(async () => {
  const engines = await allEngines();
  js = engines[0]!;
  wasm = engines.slice(1);
});

describe("prepackB", () => {
  it("writes the same packed layout in WASM as its twin, zero columns past n", () => {
    for (const c of cases().filter((_, i) => i % 3 === 0)) {
      const packedOf = (e: Engine) => {
        const o = upload(e, c);
        const out = e.download(o.packed, packedBLength(c.k, c.n));
        release(e, o);
        return out;
      };
      const ref = packedOf(js);
      for (const e of wasm) expect(same(packedOf(e), ref), `${e.variant} ${label(c)}`).toBe(true);
    }
  });

  it("holds k rows of n rounded up to 8 columns", () => {
    expect(packedBLength(768, 3072)).toBe(768 * 3072);
    expect(packedBLength(769, 1)).toBe(769 * 8);
    expect(packedBLength(3, 50257)).toBe(3 * 50264);
  });
});

describe("gemmPacked", () => {
  it("equals gemm bit for bit on WASM, whole and split by columns, on ragged shapes", () => {
    for (const e of wasm) {
      for (const c of cases()) {
        const r = products(e, c);
        if (!same(r.packed, r.plain)) throw new Error(`${e.variant} ${label(c)}: gemmPacked differs from gemm`);
        if (!same(r.split, r.plain)) throw new Error(`${e.variant} ${label(c)}: split gemmPacked differs from gemm`);
      }
    }
  });

  it("the twin agrees with the twin gemm, and WASM with the twin", () => {
    for (const c of cases().filter((_, i) => i % 7 === 0)) {
      const ref = products(js, c);
      expect(relError(ref.packed, ref.plain), label(c)).toBeLessThanOrEqual(1e-6);
      expect(relError(ref.split, ref.plain), label(c)).toBeLessThanOrEqual(1e-6);
      for (const e of wasm) expect(relError(products(e, c).packed, ref.plain), `${e.variant} ${label(c)}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it("a tall A over several row blocks and a wide transposed B over several K blocks both match", () => {
    for (const c of [
      { m: 341, n: 77, k: 800, transB: 0, bias: true, accumulate: 1, seed: 901 },
      { m: 9, n: 1000, k: 1100, transB: 1, bias: true, accumulate: 0, seed: 902 },
    ]) {
      const ref = products(js, c);
      for (const e of wasm) {
        const r = products(e, c);
        expect(same(r.packed, r.plain), `${e.variant} ${label(c)} packed`).toBe(true);
        expect(same(r.split, r.plain), `${e.variant} ${label(c)} split`).toBe(true);
        expect(relError(r.plain, ref.plain), `${e.variant} ${label(c)}`).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it("a fused activation gives the bits of the product followed by the activation's own kernel", () => {
    const kinds = [
      { act: GemmActivation.geluNew, name: "geluNew" },
      { act: GemmActivation.gelu, name: "geluExact" },
      { act: GemmActivation.silu, name: "silu" },
    ] as const;
    const shapes = cases().filter((_, i) => i % 5 === 0);
    for (const e of [js, ...wasm]) {
      for (const [i, c] of shapes.entries()) {
        const { act, name } = kinds[i % kinds.length]!;
        const { m, n, k, accumulate } = c;
        const o = upload(e, c);
        const separate = e.upload(o.before);
        e.kernels.gemmPacked(o.a, k, o.packed, separate, n, o.bias, m, n, k, accumulate, 0, n, GemmActivation.none);
        e.kernels[name](separate, separate, m * n);
        // Fused, and fused in two column ranges (as threads split it).
        const fused = e.upload(o.before);
        e.kernels.gemmPacked(o.a, k, o.packed, fused, n, o.bias, m, n, k, accumulate, 0, n, act);
        const cut = Math.min(n, 32 * Math.max(1, Math.floor(n / 64)));
        const halves = e.upload(o.before);
        e.kernels.gemmPacked(o.a, k, o.packed, halves, n, o.bias, m, n, k, accumulate, cut, n, act);
        e.kernels.gemmPacked(o.a, k, o.packed, halves, n, o.bias, m, n, k, accumulate, 0, cut, act);
        const [want, got, split] = [separate, fused, halves].map((p) => e.download(p, m * n));
        for (const p of [separate, fused, halves]) e.free(p);
        release(e, o);
        if (!same(got!, want!)) throw new Error(`${e.variant} ${label(c)} ${name}: fused differs`);
        if (!same(split!, want!)) throw new Error(`${e.variant} ${label(c)} ${name}: fused and split differs`);
      }
    }
  });

  it("refuses an unknown activation before writing anything (the twin says which; WASM traps)", () => {
    for (const e of [js, ...wasm]) {
      for (const act of [7, -1]) {
        const c = e.upload(new Float32Array([1, 2, 3, 4]));
        const message = e.backend === "js" ? new RegExp(`gemmPacked: unknown activation ${act}`) : /unreachable/;
        expect(() => e.kernels.gemmPacked(0, 0, 0, c, 2, 0, 2, 2, 0, 0, 0, 2, act), `${e.variant} ${act}`).toThrow(message);
        expect(Array.from(e.download(c, 4)), `${e.variant} ${act}`).toEqual([1, 2, 3, 4]);
        e.free(c);
      }
    }
  });

  it("k = 0 writes the bias (or adds it) to the asked columns only", () => {
    for (const e of [js, ...wasm]) {
      const bias = e.upload(new Float32Array([1, 2, 3]));
      const c = e.upload(new Float32Array([10, 10, 10, 20, 20, 20]));
      e.kernels.gemmPacked(0, 0, 0, c, 3, bias, 2, 3, 0, 1, 0, 3, 0);
      expect(Array.from(e.download(c, 6)), e.variant).toEqual([11, 12, 13, 21, 22, 23]);
      e.free(bias);
      e.free(c);
    }
  });
});
