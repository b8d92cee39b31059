import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { KERNEL_NAMES, packedBLength } from "../src/engine/kernels.js";
import { supportsRelaxedSimd } from "../src/engine/wasm-loader.js";
import { getActPatchDirectPath, HookedTransformer, logitDiff } from "../src/index.js";
import { randn } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";

// A threaded engine splits large kernel calls between its thread and helpers. Every split must
// give the single-threaded bits exactly, on shapes above the splitting thresholds and ragged ones.

const variant = supportsRelaxedSimd() ? "relaxed" : "simd";
let one: Engine;
let two: Engine;
let three: Engine;

beforeAll(async () => {
  one = await Engine.create({ variant });
  two = await Engine.create({ variant, threads: 2 });
  three = await Engine.create({ variant, threads: 3 });
});

afterAll(() => {
  two.dispose();
  three.dispose();
});

const same = (x: Float32Array, y: Float32Array) =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

/**
 * Runs `call` on each engine with the same random inputs (sizes in floats; the first `outputs`
 * buffers are read back) and expects every engine's outputs to equal the one-thread engine's.
 */
function expectSameOnAll(label: string, sizes: number[], outputs: number, call: (e: Engine, p: number[]) => void, seed = 1): void {
  const results = [one, two, three].map((e) => {
    const ptrs = sizes.map((n, i) => e.upload(randn(Math.max(n, 1), seed + i)));
    call(e, ptrs);
    const out = ptrs.slice(0, outputs).map((p, i) => e.download(p, sizes[i]!));
    for (const p of ptrs) e.free(p);
    return out;
  });
  for (const [t, r] of results.entries()) {
    for (const [i, got] of r.entries()) {
      if (!same(got, results[0]![i]!)) throw new Error(`${label}: output ${i} with ${[1, 2, 3][t]} threads differs from one thread`);
    }
  }
}

/**
 * Runs `body` and expects the helpers of the two- and three-thread engines to have done real
 * work in it: calls were split, into two chunks or more each, and helpers ran some of them.
 * The thread count alone says nothing about whether helpers ever claim a chunk. (Which thread
 * claims what is up to the scheduler: on a loaded machine one thread, the caller included, may
 * get none of a few calls, so each helper is checked on its own in a test of its own.)
 */
async function expectHelpersRan(label: string, body: () => void | Promise<void>): Promise<void> {
  const before = [two, three].map((e) => e.threadStats());
  await body();
  [two, three].forEach((e, i) => {
    const after = e.threadStats();
    const ran = after.chunks.map((n, t) => n - before[i]!.chunks[t]!);
    const jobs = after.jobs - before[i]!.jobs;
    expect(ran, `${label}: chunks per thread with ${e.threads} threads`).toHaveLength(e.threads);
    expect(jobs, `${label}: split calls with ${e.threads} threads`).toBeGreaterThan(0);
    expect(ran.slice(1).reduce((a, b) => a + b, 0), `${label}: chunks run by helpers of ${e.threads} threads (${ran.join(", ")})`).toBeGreaterThan(0);
    expect(ran.reduce((a, b) => a + b, 0), `${label}: chunks with ${e.threads} threads`).toBeGreaterThanOrEqual(2 * jobs);
  });
}

describe("threaded engine", () => {
  it("runs the asked number of threads in Node", () => {
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(three.threads).toBe(3);
    expect(two.threadsNote).toBeUndefined();
    expect(one.threadStats()).toEqual({ jobs: 0, chunks: [0] });
  });

  it("refuses a thread count that is not an integer from 1 to 64", async () => {
    for (const threads of [0, 1.5, 65, Number.NaN]) {
      await expect(Engine.create({ threads }), String(threads)).rejects.toThrow(/threads must be an integer from 1 to 64/);
    }
  });

  it("a single-memory kernel module with threads: 2 runs on one thread and says why", async () => {
    const { defaultWasmUrl } = await import("../src/engine/wasm-loader.js");
    const { readFile } = await import("node:fs/promises");
    const e = await Engine.create({ variant, threads: 2, wasm: await readFile(defaultWasmUrl(variant)) });
    expect(e.threads).toBe(1);
    expect(e.threadsNote).toMatch(/not the shared-memory \(-mt\) build/);
    const x = e.upload(new Float32Array([1, 2, 3, 4]));
    e.kernels.add(x, x, x, 4);
    expect(Array.from(e.download(x, 4))).toEqual([2, 4, 6, 8]);
  });

  it("gemm and gemmPacked: the same bits split by columns and by rows", () => expectHelpersRan("gemm", () => {
    for (const [m, n, k, transB] of [[64, 768, 300, 0], [37, 1000, 129, 1], [300, 40, 513, 0], [9, 50257 % 4099, 70, 0], [130, 33, 1025, 1]] as const) {
      expectSameOnAll(`gemm ${m}x${n}x${k}`, [m * n, m * k, k * n, n], 1, (e, [c, a, b, bias]) => {
        e.kernels.gemm(a!, k, b!, transB ? k : n, c!, n, bias!, m, n, k, transB, 1);
      });
      expectSameOnAll(`gemmPacked ${m}x${n}x${k}`, [m * n, m * k, k * n, n, packedBLength(k, n)], 1, (e, [c, a, b, bias, packed]) => {
        e.kernels.prepackB(b!, transB ? k : n, k, n, transB, packed!);
        e.kernels.gemmPacked(a!, k, packed!, c!, n, bias!, m, n, k, 0, 0, n, 0);
      });
    }
  }));

  it("attention, scores and pattern: the same bits split by batch or by heads", () => expectHelpersRan("attention", () => {
    const [batch, qLen, kLen, H, Hk, d] = [5, 13, 29, 4, 2, 64];
    const q = batch * qLen * H * d;
    const kv = batch * kLen * Hk * d;
    const sc = batch * H * qLen * kLen;
    expectSameOnAll("attention", [q, q, kv, kv, batch * kLen], 1, (e, [z, qp, k, v]) => {
      e.kernels.attention(qp!, k!, v!, z!, 0, batch, qLen, kLen, H, Hk, d, 0.125, 0, H);
    });
    expectSameOnAll("attnScores + softmax + attnApplyPattern", [sc, q, sc, q, kv, kv], 3, (e, [scores, z, pattern, qp, k, v]) => {
      e.kernels.attnScores(qp!, k!, scores!, 0, batch, qLen, kLen, H, Hk, d, 0.125, 0, H);
      e.kernels.softmax(scores!, pattern!, batch * H * qLen, kLen);
      e.kernels.attnApplyPattern(pattern!, v!, z!, batch, qLen, kLen, H, Hk, d, 0, H);
    });
    // One long sequence: cut between query heads instead (GQA: heads of one group may land on
    // different threads).
    const [qLen1, H1, Hk1] = [97, 6, 2];
    const q1 = qLen1 * H1 * d;
    const kv1 = qLen1 * Hk1 * d;
    const sc1 = H1 * qLen1 * qLen1;
    expectSameOnAll("attention, one sequence", [q1, q1, kv1, kv1], 1, (e, [z, qp, k, v]) => {
      e.kernels.attention(qp!, k!, v!, z!, 0, 1, qLen1, qLen1, H1, Hk1, d, 0.125, 0, H1);
    });
    expectSameOnAll("scores + pattern, one sequence", [sc1, q1, sc1, q1, kv1, kv1], 3, (e, [scores, z, pattern, qp, k, v]) => {
      e.kernels.attnScores(qp!, k!, scores!, 0, 1, qLen1, qLen1, H1, Hk1, d, 0.125, 0, H1);
      e.kernels.softmax(scores!, pattern!, H1 * qLen1, qLen1);
      e.kernels.attnApplyPattern(pattern!, v!, z!, 1, qLen1, qLen1, H1, Hk1, d, 0, H1);
    });
    // Sliding windows reach every thread's share (split by batch, and by heads).
    expectSameOnAll("attention, window 7", [q, q, kv, kv], 1, (e, [z, qp, k, v]) => {
      e.kernels.attention(qp!, k!, v!, z!, 0, batch, qLen, kLen, H, Hk, d, 0.125, 0, H, 7);
    });
    expectSameOnAll("scores, window 7", [sc, q, kv], 1, (e, [scores, qp, k]) => {
      e.kernels.attnScores(qp!, k!, scores!, 0, batch, qLen, kLen, H, Hk, d, 0.125, 0, H, 7);
    });
    expectSameOnAll("attention, one sequence, window 11", [q1, q1, kv1, kv1], 1, (e, [z, qp, k, v]) => {
      e.kernels.attention(qp!, k!, v!, z!, 0, 1, qLen1, qLen1, H1, Hk1, d, 0.125, 0, H1, 11);
    });
  }));

  it("norms, activations and rotary: the same bits split by rows and elements", () => expectHelpersRan("norms", () => {
    const [rows, d] = [67, 768];
    expectSameOnAll("layerNorm", [rows * d, rows, rows * d, d, d], 2, (e, [out, scale, x, w, b]) => {
      e.kernels.layerNorm(x!, out!, scale!, w!, b!, rows, d, 1e-5);
    });
    expectSameOnAll("rmsNorm", [rows * d, rows, rows * d, d], 2, (e, [out, scale, x, w]) => {
      e.kernels.rmsNorm(x!, out!, scale!, w!, rows, d, 1e-5);
    });
    expectSameOnAll("addLayerNorm", [rows * d, rows * d, rows, rows * d, rows * d], 3, (e, [resid, out, scale, a, r]) => {
      e.kernels.addLayerNorm(a!, r!, resid!, out!, scale!, 0, 0, rows, d, 1e-5);
    });
    expectSameOnAll("addRmsNorm", [rows * d, rows * d, rows, rows * d, rows * d, d], 3, (e, [resid, out, scale, a, r, w]) => {
      e.kernels.addRmsNorm(a!, r!, resid!, out!, scale!, w!, rows, d, 1e-5);
    });
    expectSameOnAll("softmax", [rows * 1001, rows * 1001], 1, (e, [out, x]) => e.kernels.softmax(x!, out!, rows, 1001));
    const n = 3 * 40961;
    for (const name of ["geluNew", "geluExact", "silu"] as const) {
      expectSameOnAll(name, [n, n], 1, (e, [out, x]) => e.kernels[name](x!, out!, n));
    }
    expectSameOnAll("swiglu", [n, n, n], 1, (e, [out, g, u]) => e.kernels.swiglu(g!, u!, out!, n));
    expectSameOnAll("geglu", [n, n, n], 1, (e, [out, g, u]) => e.kernels.geglu(g!, u!, out!, n));
    expectSameOnAll("softcap", [n, n], 1, (e, [out, x]) => e.kernels.softcap(x!, out!, n, 5));
    expectSameOnAll("rotary", [rows * 8 * 64, rows * 8 * 64, rows * 32, rows * 32], 1, (e, [out, x, cos, sin]) => {
      e.kernels.rotary(x!, out!, cos!, sin!, rows, 8, 64, 64);
    });
    expectSameOnAll("rotary (partial)", [rows * 8 * 64, rows * 8 * 64, rows * 10, rows * 10], 1, (e, [out, x, cos, sin]) => {
      e.kernels.rotary(x!, out!, cos!, sin!, rows, 8, 64, 20);
    });
  }));

  it("a model's logits, cache and a planned sweep are the same bits with 1, 2 and 3 threads", () => expectHelpersRan("model", async () => {
    const spec = { nLayer: 3, nHead: 4, nEmbd: 128, nPositions: 32, vocab: 301, seed: 5 };
    const models = await Promise.all([one, two, three].map((engine) => HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine })));
    const clean = Array.from({ length: 6 }, (_, b) => Array.from({ length: 20 }, (_, p) => (b * 31 + p * 7) % spec.vocab));
    const corrupted = clean.map((row) => row.map((t, p) => (p === 12 ? (t + 5) % spec.vocab : t)));
    const metric = logitDiff({ correct: [1, 2, 3, 4, 5, 6], incorrect: [7, 8, 9, 10, 11, 12] });
    const outs = [];
    for (const model of models) {
      const { logits, cache } = model.runWithCache(clean);
      const rc = model.runWithCache(corrupted).cache;
      const sweep = await getActPatchDirectPath(model, corrupted, cache, rc, metric, { srcLayer: 0, srcHead: 1, component: "q", mode: "exact" });
      outs.push({ logits: logits!.data, resid: cache.get("blocks.2.hook_resid_post").data, pattern: cache.get("blocks.1.attn.hook_pattern").data, scores: sweep.scores.data });
    }
    for (const t of [1, 2]) {
      for (const key of ["logits", "resid", "pattern", "scores"] as const) {
        expect(same(outs[t]![key], outs[0]![key]), `${key} with ${t + 1} threads`).toBe(true);
      }
    }
  }));

  it("every helper runs chunks of split calls", () => {
    // Large GEMMs until each helper of the three-thread engine has run chunks: a helper that
    // never claims one (not woken, or dead) fails here after 300 calls.
    const [m, n, k] = [64, 768, 256];
    const [a, b, c] = [three.upload(randn(m * k, 1)), three.upload(randn(k * n, 2)), three.alloc(m * n)];
    const before = three.threadStats();
    let ran: number[] = [];
    for (let call = 0; call < 300; call++) {
      three.kernels.gemm(a, k, b, n, c, n, 0, m, n, k, 0, 0);
      ran = three.threadStats().chunks.map((x, t) => x - before.chunks[t]!);
      if (Math.min(...ran.slice(1)) > 0) break;
    }
    for (const p of [a, b, c]) three.free(p);
    expect(ran, "chunks per thread").toHaveLength(3);
    expect(Math.min(...ran.slice(1)), `chunks per thread (${ran.join(", ")})`).toBeGreaterThan(0);
  });

  it("shares a call's chunks so that every chunk runs exactly once, whoever claims it", () => {
    // add(x, x, x, n) in place, cut into 1000 chunks of 7 elements (the last shorter): an element
    // doubled twice, or not at all, would show. The same pool serves the next call at once.
    const pool = (three as unknown as { pool: import("../src/engine/thread-pool.js").ThreadPool }).pool;
    const addIndex = KERNEL_NAMES.indexOf("add");
    const single = (three as unknown as { singleKernels: import("../src/engine/kernels.js").Kernels }).singleKernels;
    // This thread's chunks are slowed down (0.1 ms each), so helpers that run at all claim some
    // of a long job's (which ones is up to the scheduler: a helper still asleep may get none);
    // the stats account for every chunk, each on the thread that ran it.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (const total of [6995, 7000, 1]) {
      const x = three.upload(Float32Array.from({ length: total }, (_, i) => i + 1));
      const before = three.threadStats();
      let here = 0;
      pool.share({ kernel: addIndex, total, chunk: 7, base: [x, x, x, 0], perStart: [4, 4, 4, -1], perEnd: [0, 0, 0, 1] },
        (s, e) => { here++; Atomics.wait(pause, 0, 0, 0.1); single.add(x + 4 * s, x + 4 * s, x + 4 * s, e - s); });
      const got = three.download(x, total);
      three.free(x);
      expect(got.every((v, i) => v === 2 * (i + 1)), `total ${total}`).toBe(true);
      const after = three.threadStats();
      const ran = after.chunks.map((n, t) => n - before.chunks[t]!);
      expect(after.jobs - before.jobs).toBe(1);
      expect(ran[0], `total ${total}: this thread's chunks`).toBe(here);
      expect(ran.reduce((a, b) => a + b, 0), `total ${total}: all chunks`).toBe(Math.ceil(total / 7));
      if (total > 1000) expect(ran[1]! + ran[2]!, `total ${total}: the helpers' chunks (${ran.join(", ")})`).toBeGreaterThan(0);
    }
  });

  it("a kernel that traps on a helper throws a clear error and the engine keeps working", () => {
    const beyond = two.memory.buffer.byteLength + 4096;
    expect(() => two.kernels.gemmPacked(beyond, 768, beyond, beyond, 768, 0, 64, 768, 768, 0, 0, 768, 0)).toThrow();
    expect(() => two.kernels.gemmPacked(beyond, 768, beyond, beyond, 768, 0, 64, 768, 768, 0, 0, 768, 0))
      .toThrow(/gemmPacked failed on a helper thread: memory access out of bounds/);
    expectSameOnAll("gemm after a trap", [64 * 768, 64 * 300, 300 * 768], 1, (e, [c, a, b]) => {
      e.kernels.gemm(a!, 300, b!, 768, c!, 768, 0, 64, 768, 300, 0, 0);
    });
  });

  it("starts helpers when Node runs the caller as an ES module from --input-type=module", async () => {
    // Workers inherit --input-type, which once made the helper's source fail to start (no require).
    const { execFileSync } = await import("node:child_process");
    const { pathToFileURL } = await import("node:url");
    const dist = pathToFileURL(new URL("../dist/index.js", import.meta.url).pathname).href;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e",
      `import { Engine } from ${JSON.stringify(dist)}; const e = await Engine.create({ threads: 2 }); console.log(e.threads, e.threadsNote ?? ""); e.dispose();`],
    { encoding: "utf8" });
    expect(out.trim()).toBe("2");
  });

  it("an engine dropped without dispose() has its helper threads stopped once collected", async () => {
    const { readdirSync } = await import("node:fs");
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, "the test config runs Node with --expose-gc").toBeTypeOf("function");
    const threads = () => readdirSync("/proc/self/task").length;
    const before = threads();
    // (Counting threads here would be flaky: a helper of an engine disposed earlier may still be exiting.)
    for (let i = 0; i < 3; i++) expect((await Engine.create({ variant, threads: 2 })).threads).toBe(2);
    for (let i = 0; i < 20 && threads() > before; i++) {
      gc!();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it("dispose stops the helpers and leaves a working one-thread engine", async () => {
    const e = await Engine.create({ variant, threads: 2 });
    const n = 64 * 768; // above the size a threaded engine splits
    const x = e.upload(randn(n, 3));
    const out = e.alloc(n);
    e.kernels.geluNew(x, out, n);
    expect(e.threadStats().jobs).toBe(1);
    const before = e.download(out, n);
    e.dispose();
    expect(e.threads).toBe(1);
    expect(e.threadStats()).toEqual({ jobs: 0, chunks: [0] });
    e.kernels.geluNew(x, out, n);
    expect(same(e.download(out, n), before)).toBe(true);
    expect(e.threadStats().jobs).toBe(0);
  });
});
