import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { supportsRelaxedSimd } from "../src/engine/wasm-loader.js";
import { allEngines, randn } from "./helpers.js";

const engines = await allEngines();
const wasmFile = (variant: string) => new URL(`../build/hooklens-${variant}.wasm`, import.meta.url);

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Float counts of one GPT-2-small forward at batch 2, pos 64 (residual, qkv, scores, pattern, mlp, logits...). */
const FORWARD_FLOATS = [
  128 * 768, 128, 128 * 768, 3 * 128 * 768, 2 * 12 * 64 * 64, 2 * 12 * 64 * 64, 128 * 768, 128 * 768,
  128 * 768, 128, 128 * 768, 128 * 3072, 128 * 3072, 128 * 768, 128 * 768, 2 * 50257, 17, 1,
];

for (const engine of engines) {
  describe(`engine ${engine.variant}: allocator`, () => {
    it("hands out 64-byte aligned, non-null, disjoint blocks and reuses freed ones", () => {
      const sizes = [1, 3, 16, 17, 1000];
      const ptrs = sizes.map((n) => engine.alloc(n));
      for (const p of ptrs) {
        expect(p).toBeGreaterThan(0);
        expect(p % 64).toBe(0);
      }
      const spans = ptrs.map((p, i) => [p, p + sizes[i]! * 4] as const).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
      engine.free(ptrs[2]!);
      expect(engine.alloc(16)).toBe(ptrs[2]); // same size fits the freed hole exactly
      for (const p of ptrs) engine.free(p);
      expect(engine.stats().liveBlocks).toBe(0);
      expect(engine.stats().bytesInUse).toBe(0);
    });

    it("coalesces neighbouring free blocks", () => {
      const a = engine.alloc(256);
      const b = engine.alloc(256);
      const c = engine.alloc(256); // keeps a and b away from the top
      expect(b).toBe(a + 1024);
      engine.free(a);
      engine.free(b);
      const merged = engine.alloc(512); // fits only if a and b became one span
      expect(merged).toBe(a);
      engine.free(merged);
      engine.free(c);
    });

    it("throws on a double free or an unknown pointer, and ignores 0", () => {
      const p = engine.alloc(10);
      engine.free(p);
      expect(() => engine.free(p)).toThrow(/double free/);
      expect(() => engine.free(p + 64)).toThrow(/not a live allocation/);
      const before = engine.stats();
      engine.free(0);
      expect(engine.stats()).toEqual(before);
      expect(() => engine.alloc(-1)).toThrow(/non-negative integer/);
    });

    it("upload / download round-trip, and a view is live", () => {
      const x = randn(1001, 3);
      const p = engine.upload(x);
      expect(bits(engine.download(p, x.length))).toEqual(bits(x));
      const view = engine.view(p, x.length);
      view[5] = 42;
      expect(engine.download(p, x.length)[5]).toBe(42);
      engine.kernels.add(p, p, p, x.length);
      expect(view[5]).toBe(84);
      engine.free(p);
    });

    it("views stay valid while the memory does not grow and are detached when it does", () => {
      engine.reserve(1 << 20);
      const before = engine.stats().memoryBytes;
      const p = engine.alloc(64);
      const view = engine.view(p, 64);
      const q = engine.alloc(1000); // fits in the reserve: no grow
      expect(engine.stats().memoryBytes).toBe(before);
      view[0] = 7;
      expect(view.length).toBe(64);
      expect(engine.download(p, 1)[0]).toBe(7);
      const big = engine.alloc(before / 4 + 1); // cannot fit: grows
      expect(engine.stats().memoryBytes).toBeGreaterThan(before);
      expect(view.length).toBe(0); // the old buffer is detached
      expect(engine.view(p, 64)[0]).toBe(7); // a fresh view sees the data
      for (const ptr of [p, q, big]) engine.free(ptr);
    });

    it("1,000 allocate/release cycles of forward-sized buffers keep memory flat after the first", () => {
      const x = randn(128 * 768, 1);
      let after: number | undefined;
      for (let cycle = 0; cycle < 1000; cycle++) {
        const ptrs = FORWARD_FLOATS.map((n) => engine.alloc(n));
        if (cycle % 100 === 0) {
          engine.heap().set(x, ptrs[0]! >>> 2);
          engine.kernels.addRow(ptrs[0]!, ptrs[0]!, ptrs[2]!, 1, 768);
        }
        // Release in an order unlike allocation so the free list fragments and must coalesce.
        for (let i = 0; i < ptrs.length; i += 2) engine.free(ptrs[i]!);
        for (let i = ptrs.length - 1; i >= 1; i -= 2) engine.free(ptrs[i]!);
        const bytes = engine.memory.buffer.byteLength;
        if (after === undefined) after = bytes;
        else expect(bytes).toBe(after);
      }
      expect(engine.stats().liveBlocks).toBe(0);
    });
  });
}

describe("engine creation", () => {
  it("the test runtime validates relaxed SIMD, so every suite runs both WASM builds", () => {
    // test/vitest.config.ts starts Node with --experimental-wasm-relaxed-simd; without it, the
    // suites that loop over wasmEngines() would quietly test one build only.
    expect(supportsRelaxedSimd()).toBe(true);
  });

  it("picks the requested variant", async () => {
    const simd = await Engine.create({ variant: "simd" });
    expect(simd.backend).toBe("wasm");
    expect(simd.variant).toBe("simd");
    if (supportsRelaxedSimd()) {
      expect((await Engine.create({ variant: "relaxed" })).variant).toBe("relaxed");
      expect((await Engine.create()).variant).toBe("relaxed");
    } else {
      await expect(Engine.create({ variant: "relaxed" })).rejects.toThrow(/relaxed/);
      expect((await Engine.create()).variant).toBe("simd");
    }
    const js = await Engine.create({ backend: "js" });
    expect([js.backend, js.variant]).toEqual(["js", "js"]);
    await expect(Engine.create({ variant: "avx" as never })).rejects.toThrow(/variant must be/);
    await expect(Engine.create({ backend: "gpu" as never })).rejects.toThrow(/backend must be/);
  });

  it("loads from bytes and from a compiled module, and refuses a module of the other variant", async () => {
    const bytes = await readFile(wasmFile("simd"));
    const fromBytes = await Engine.create({ variant: "simd", wasm: bytes });
    const module = new WebAssembly.Module(bytes);
    const fromModule = Engine.fromModule(module, "simd");
    const viaCreate = await Engine.create({ variant: "simd", wasm: module });
    const x = randn(35, 2);
    const results = [fromBytes, fromModule, viaCreate].map((e) => {
      const p = e.upload(x);
      e.kernels.softmax(p, p, 5, 7);
      return e.download(p, 35);
    });
    expect(bits(results[1]!)).toEqual(bits(results[0]!));
    expect(bits(results[2]!)).toEqual(bits(results[0]!));
    expect(results[0]!.subarray(0, 7).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    expect(() => Engine.fromModule(module, "relaxed")).toThrow(/simd build, but variant "relaxed"/);
    if (supportsRelaxedSimd()) {
      const relaxed = new WebAssembly.Module(await readFile(wasmFile("relaxed")));
      expect(Engine.fromModule(relaxed, "relaxed").variant).toBe("relaxed");
      expect(() => Engine.fromModule(relaxed, "simd")).toThrow(/relaxed build, but variant "simd"/);
    }
  });

  it("rejects a module that is not a hooklens build", () => {
    // (module (memory (export "memory") 1))
    const bare = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 2, 0]);
    expect(() => Engine.fromModule(new WebAssembly.Module(bare), "simd")).toThrow(/lacks the export "gemm"/);
  });
});

describe("kernels on buffers above 2 GiB", () => {
  for (const engine of engines) {
    it(`${engine.variant}: the same bits at high addresses as at low ones`, () => {
      const [rows, d, pos, heads, dHead] = [3, 37, 9, 2, 5];
      const x = randn(rows * d, 1, 3);
      const q = randn(pos * heads * dHead, 2);
      const kv = randn(pos * heads * dHead, 3);
      const run = () => {
        const px = engine.upload(x);
        const po = engine.alloc(rows * d);
        const ps = engine.alloc(rows);
        const pq = engine.upload(q);
        const pk = engine.upload(kv);
        const pz = engine.alloc(q.length);
        const pf = engine.alloc(q.length);
        const pScores = engine.alloc(heads * pos * pos);
        engine.kernels.layerNorm(px, po, ps, 0, 0, rows, d, 1e-5);
        engine.kernels.geluNew(po, po, rows * d);
        engine.kernels.softmax(po, po, rows, d);
        engine.kernels.addRow(po, px, po, 1, d);
        engine.kernels.attnScores(pq, pk, pScores, 0, 1, pos, pos, heads, heads, dHead, 0.5, 0, heads);
        engine.kernels.softmax(pScores, pScores, heads * pos, pos);
        engine.kernels.attnApplyPattern(pScores, pk, pz, 1, pos, pos, heads, heads, dHead, 0, heads);
        engine.kernels.attention(pq, pk, pk, pf, 0, 1, pos, pos, heads, heads, dHead, 0.5, 0, heads);
        const out = { ptr: px, o: engine.download(po, rows * d), s: engine.download(ps, rows), z: engine.download(pz, q.length), f: engine.download(pf, q.length) };
        for (const p of [px, po, ps, pq, pk, pz, pf, pScores]) engine.free(p);
        return out;
      };
      const low = run();
      const filler = engine.alloc(2 ** 29 + 2 ** 20); // 2 GiB + 4 MiB of floats below everything else
      const high = run();
      expect(low.ptr).toBeLessThan(2 ** 31);
      expect(high.ptr).toBeGreaterThan(2 ** 31);
      for (const key of ["o", "s", "z", "f"] as const) expect(bits(high[key])).toEqual(bits(low[key]));
      expect(low.o.every((v) => Number.isFinite(v))).toBe(true);
      engine.free(filler);
    });
  }
});
