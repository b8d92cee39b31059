import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { allEngines, randn, relError, RAGGED } from "./helpers.js";

const TOL = 1e-5;

interface Case {
  m: number; n: number; k: number;
  transB?: number; accumulate?: number; bias?: boolean;
  /** Extra elements at the end of each row of A, B and C (leading dims larger than the width). */
  pad?: number;
  seed?: number;
}

interface Run {
  /** The whole C buffer, padding included. */
  out: Float32Array;
  /** C before the call. */
  before: Float32Array;
  ldc: number;
}

/** Uploads random operands, runs one gemm and returns C (and what C held before). */
function runGemm(engine: Engine, c: Case): Run {
  const { m, n, k } = c;
  const transB = c.transB ?? 0;
  const pad = c.pad ?? 0;
  const seed = c.seed ?? 1;
  const lda = k + pad;
  const ldb = (transB ? k : n) + pad;
  const ldc = n + pad;
  const bRows = transB ? n : k;
  const before = randn(m * ldc, seed + 2);
  const a = engine.upload(randn(Math.max(m * lda, 1), seed));
  const b = engine.upload(randn(Math.max(bRows * ldb, 1), seed + 1));
  const cp = engine.upload(before);
  const bias = c.bias ? engine.upload(randn(n, seed + 3)) : 0;
  engine.kernels.gemm(a, lda, b, ldb, cp, ldc, bias, m, n, k, transB, c.accumulate ?? 0);
  const out = engine.download(cp, m * ldc);
  for (const p of [a, b, cp, bias]) engine.free(p);
  return { out, before, ldc };
}

function label(c: Case): string {
  return `m=${c.m} n=${c.n} k=${c.k} transB=${c.transB ?? 0} acc=${c.accumulate ?? 0} bias=${c.bias ? 1 : 0} pad=${c.pad ?? 0}`;
}

/** Columns past n in each row of C must come back untouched. */
function expectPaddingKept(r: Run, c: Case): void {
  for (let i = 0; i < c.m; i++) {
    for (let j = c.n; j < r.ldc; j++) {
      if (r.out[i * r.ldc + j] !== r.before[i * r.ldc + j]) {
        throw new Error(`${label(c)}: C[${i}, ${j}] is past n but was overwritten`);
      }
    }
  }
}

let engines: Engine[];
let js: Engine;
let wasm: Engine[];

beforeAll(async () => {
  engines = await allEngines();
  js = engines[0]!;
  wasm = engines.slice(1);
});

describe("gemm: hand-computed", () => {
  // A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]] -> A·B = [[58,64],[139,154]]
  const A = new Float32Array([1, 2, 3, 4, 5, 6]);
  const B = new Float32Array([7, 8, 9, 10, 11, 12]);
  const BT = new Float32Array([7, 9, 11, 8, 10, 12]);
  const AB = [58, 64, 139, 154];

  function hand(engine: Engine, transB: number, bias: number[] | null, accumulate: number, c0: number[]): number[] {
    const a = engine.upload(A);
    const b = engine.upload(transB ? BT : B);
    const c = engine.upload(new Float32Array(c0));
    const bp = bias ? engine.upload(new Float32Array(bias)) : 0;
    engine.kernels.gemm(a, 3, b, transB ? 3 : 2, c, 2, bp, 2, 2, 3, transB, accumulate);
    const out = Array.from(engine.download(c, 4));
    for (const p of [a, b, c, bp]) engine.free(p);
    return out;
  }

  it("2×3 · 3×2 on every engine, plain, transposed, with bias and accumulating", () => {
    for (const e of engines) {
      expect(hand(e, 0, null, 0, [9, 9, 9, 9]), e.variant).toEqual(AB);
      expect(hand(e, 1, null, 0, [9, 9, 9, 9]), e.variant).toEqual(AB);
      expect(hand(e, 0, [1, -1], 0, [9, 9, 9, 9]), e.variant).toEqual([59, 63, 140, 153]);
      expect(hand(e, 1, [1, -1], 1, [1, 2, 3, 4]), e.variant).toEqual([60, 65, 143, 157]);
    }
  });

  it("k = 0 gives the bias, zeros, or leaves C plus the bias", () => {
    for (const e of engines) {
      const c = e.upload(new Float32Array([5, 6, 7, 8]));
      const bias = e.upload(new Float32Array([1, 2]));
      e.kernels.gemm(0, 0, 0, 0, c, 2, bias, 2, 2, 0, 0, 1);
      expect(Array.from(e.download(c, 4)), e.variant).toEqual([6, 8, 8, 10]);
      e.kernels.gemm(0, 0, 0, 0, c, 2, bias, 2, 2, 0, 1, 0);
      expect(Array.from(e.download(c, 4)), e.variant).toEqual([1, 2, 1, 2]);
      e.kernels.gemm(0, 0, 0, 0, c, 2, 0, 2, 2, 0, 0, 0);
      expect(Array.from(e.download(c, 4)), e.variant).toEqual([0, 0, 0, 0]);
      e.free(c);
      e.free(bias);
    }
  });
});

describe("gemm: wasm against the js twin", () => {
  function compare(cases: Case[]): void {
    for (const c of cases) {
      const ref = runGemm(js, c);
      expectPaddingKept(ref, c);
      for (const e of wasm) {
        const got = runGemm(e, c);
        expectPaddingKept(got, c);
        const err = relError(got.out, ref.out);
        if (!(err <= TOL)) throw new Error(`${e.variant} ${label(c)}: relative error ${err} > ${TOL}`);
      }
    }
  }

  it("ragged m, n, k in every combination of the ragged sizes, both transB", () => {
    const cases: Case[] = [];
    let seed = 10;
    for (const m of RAGGED) {
      for (const n of RAGGED) {
        for (const k of [...RAGGED, 769]) {
          if (m * n * k > 2e6) continue;
          cases.push({ m, n, k, transB: seed % 2, bias: seed % 3 === 0, seed: seed++ });
        }
      }
    }
    compare(cases);
  });

  it("sizes that straddle the register tile and cache blocks", () => {
    const cases: Case[] = [];
    let seed = 1000;
    for (const m of [4, 5, 8, 63, 64, 65, 130, 259]) {
      for (const [n, k] of [[8, 256], [15, 257], [16, 512], [33, 600], [136, 769]] as const) {
        for (const transB of [0, 1]) cases.push({ m, n, k, transB, bias: true, seed: seed++ });
      }
    }
    compare(cases);
  });

  it("accumulate into C, with and without bias, both transB", () => {
    const cases: Case[] = [];
    for (const transB of [0, 1]) {
      for (const bias of [false, true]) {
        cases.push({ m: 17, n: 129, k: 300, transB, bias, accumulate: 1, seed: 7 });
        cases.push({ m: 65, n: 33, k: 769, transB, bias, accumulate: 1, seed: 8 });
      }
    }
    compare(cases);
  });

  it("leading dims larger than the width leave the padding alone", () => {
    compare([
      { m: 7, n: 17, k: 65, pad: 3, bias: true },
      { m: 65, n: 129, k: 300, pad: 5, transB: 1, accumulate: 1 },
      { m: 33, n: 40, k: 513, pad: 16, bias: true, accumulate: 1 },
      { m: 9, n: 24, k: 7, pad: 1, transB: 1, bias: true },
    ]);
  });

  it("GPT-2 sizes: 64×768·768×3072 with bias, 16×3072·(768×3072)ᵀ", () => {
    compare([
      { m: 64, n: 3072, k: 768, bias: true, seed: 21 },
      { m: 16, n: 768, k: 3072, transB: 1, accumulate: 1, seed: 22 },
    ]);
  });
});

describe("gemm: reproducibility", () => {
  it("the same call twice gives identical bits", () => {
    for (const e of wasm) {
      for (const c of [{ m: 65, n: 129, k: 769, bias: true }, { m: 130, n: 33, k: 600, transB: 1 }]) {
        const first = runGemm(e, c).out;
        const second = runGemm(e, c).out;
        expect(Buffer.from(second.buffer).equals(Buffer.from(first.buffer)), `${e.variant} ${label(c)}`).toBe(true);
      }
    }
  });

  it("the relaxed and plain builds agree within tolerance", () => {
    expect(wasm.map((e) => e.variant)).toEqual(["simd", "relaxed"]);
    const [plain, relaxed] = wasm as [Engine, Engine];
    for (const c of [{ m: 64, n: 768, k: 768, bias: true }, { m: 17, n: 65, k: 3072, transB: 1 }]) {
      expect(relError(runGemm(relaxed, c).out, runGemm(plain, c).out), label(c)).toBeLessThanOrEqual(TOL);
    }
  });
});

describe("gemm: operands above 2 GiB", () => {
  it("gives the same bits as the same call low in memory", () => {
    const HIGH = 2 ** 31;
    for (const e of wasm) {
      const [m, n, k] = [33, 70, 130];
      const data = [randn(m * k, 51), randn(n * k, 52), randn(m * n, 53), randn(n, 54)];
      const call = (ptrs: number[]): Float32Array => {
        const [a, b, c, bias] = ptrs as [number, number, number, number];
        e.kernels.gemm(a, k, b, k, c, n, bias, m, n, k, 1, 1);
        return e.download(c, m * n);
      };
      const lowPtrs = data.map((d) => e.upload(d));
      const low = call(lowPtrs);
      // Fill memory up to 2 GiB (untouched pages stay virtual), then take only blocks above it.
      const held = [e.alloc(Math.max(0, HIGH - e.stats().memoryBytes) / 4 + 1024)];
      const highPtrs = data.map((d) => {
        let p = e.upload(d);
        while (p >>> 0 < HIGH) { held.push(p); p = e.upload(d); }
        return p;
      });
      const high = call(highPtrs);
      expect(Buffer.from(high.buffer).equals(Buffer.from(low.buffer)), e.variant).toBe(true);
      for (const p of [...lowPtrs, ...highPtrs, ...held]) e.free(p);
    }
  });
});
