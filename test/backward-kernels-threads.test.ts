// The backward's kernels on a threaded engine: every split (rows, elements, batch entries, whole
// kv-head groups) must give the one-thread bits exactly, on shapes above the splitting thresholds.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { supportsRelaxedSimd } from "../src/engine/wasm-loader.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff } from "../src/patching/metrics.js";
import { randn } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";

const variant = supportsRelaxedSimd() ? "relaxed" : "simd";
let engines: Engine[];

beforeAll(async () => {
  engines = [await Engine.create({ variant }), await Engine.create({ variant, threads: 2 }), await Engine.create({ variant, threads: 3 })];
});

afterAll(() => {
  for (const e of engines.slice(1)) e.dispose();
});

const same = (x: Float32Array, y: Float32Array) =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

/**
 * Runs `call` on the 1-, 2- and 3-thread engines with the same inputs (random floats of the given
 * sizes, or the arrays given; the first `outputs` are read back) and expects the same bits from all.
 */
function expectSameOnAll(label: string, buffers: (number | Float32Array)[], outputs: number, call: (e: Engine, p: number[]) => void): void {
  const inputs = buffers.map((b, i) => (typeof b === "number" ? randn(b, 100 + i) : b));
  const results = engines.map((e) => {
    const ptrs = inputs.map((x) => e.upload(x));
    call(e, ptrs);
    const out = ptrs.slice(0, outputs).map((p, i) => e.download(p, inputs[i]!.length));
    for (const p of ptrs) e.free(p);
    return out;
  });
  for (const [t, r] of results.entries()) {
    for (const [i, got] of r.entries()) expect(same(got, results[0]![i]!), `${label}: output ${i} with ${t + 1} threads`).toBe(true);
  }
}

/** keyMask [batch, pos]: a third of batch 0 left-padded, every seventh key of the others masked. */
function keyMask(batch: number, pos: number): Float32Array {
  return new Float32Array(batch * pos).map((_, i) => (i < pos ? (i < pos / 3 ? 0 : 1) : i % 7 === 0 ? 0 : 1));
}

describe("backward kernels on threads", () => {
  it("the threaded engines run their threads", () => {
    expect(engines.map((e) => e.threads)).toEqual([1, 2, 3]);
  });

  it("norm gradients: the same bits split by rows", () => {
    const [rows, d] = [53, 769];
    for (const centred of [0, 1]) {
      expectSameOnAll(`normInputGrad centred ${centred}`, [rows * d, rows, rows * d, rows * d, rows], 2, (e, [gx, gScale, gNorm, norm, scale]) => {
        e.kernels.normScaleGrad(gNorm!, norm!, scale!, gScale!, rows, d);
        e.kernels.normInputGrad(gNorm!, norm!, scale!, gScale!, gx!, rows, d, centred);
      });
    }
  });

  it("activation and softmax gradients: the same bits split by elements and rows", () => {
    const n = 40_001;
    for (const name of ["geluNewGrad", "geluExactGrad", "siluGrad"] as const) {
      expectSameOnAll(name, [n, n, n], 1, (e, [out, pre, g]) => e.kernels[name](pre!, g!, out!, n));
    }
    expectSameOnAll("swigluGrad", [n, n, n, n, n], 2, (e, [gGate, gUp, gate, up, g]) => e.kernels.swigluGrad(gate!, up!, g!, gGate!, gUp!, n));
    expectSameOnAll("gegluGrad", [n, n, n, n, n], 2, (e, [gGate, gUp, gate, up, g]) => e.kernels.gegluGrad(gate!, up!, g!, gGate!, gUp!, n));
    const [rows, m] = [12 * 61, 61];
    expectSameOnAll("softmaxGrad", [rows * m, rows * m, rows * m], 1, (e, [out, p, g]) => e.kernels.softmaxGrad(p!, g!, out!, rows, m));
  });

  // By batch entries when there are at least two per thread, else by whole kv-head groups.
  it.each([
    [7, 33, 8, 2, 64], [2, 64, 12, 12, 64], [1, 97, 8, 2, 64], [3, 50, 6, 3, 40], [1, 70, 4, 1, 64],
  ])("attention gradients: the same bits, batch %i pos %i heads %i/%i dHead %i", (batch, pos, H, Hk, d) => {
    const q = batch * pos * H * d;
    const kv = batch * pos * Hk * d;
    const sc = batch * H * pos * pos;
    const scale = 1 / Math.sqrt(d);
    for (const masked of [false, true]) {
      expectSameOnAll(`attention backward${masked ? " masked" : ""}`, [sc, kv, q, kv, q, kv, sc, sc, q, kv, keyMask(batch, pos)], 5,
        (e, [gPattern, gv, gq, gk, gz, v, pattern, gScores, qp, k, mask]) => {
          e.kernels.patternAndValueGrad(gz!, v!, pattern!, gPattern!, gv!, batch, pos, H, Hk, d, 0, H);
          e.kernels.queryKeyGrad(gScores!, qp!, k!, masked ? mask! : 0, gq!, gk!, batch, pos, H, Hk, d, scale, 0, H);
        });
    }
  });

  it("a model's gradients at every hook point are the same bits with 1, 2 and 3 threads (split by batch and by heads)", async () => {
    const spec = { nLayer: 2, nHead: 4, nEmbd: 128, nPositions: 64, vocab: 301, seed: 7 };
    const models = await Promise.all(engines.map((engine) => HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine })));
    for (const [batch, pos] of [[6, 20], [1, 64]] as const) {
      const tokens = Array.from({ length: batch }, (_, b) => Array.from({ length: pos }, (_, p) => (b * 31 + p * 7) % spec.vocab));
      const metric = logitDiff({ correct: tokens.map((_, b) => b + 1), incorrect: tokens.map((_, b) => b + 10) });
      const caches = models.map((m) => m.runWithCache(tokens, { inclBwd: true, metric, namesFilter: (n) => n.endsWith("_grad") }).cache);
      const names = caches[0]!.keys();
      expect(names.length).toBeGreaterThan(20);
      for (const t of [1, 2]) {
        for (const name of names) expect(same(caches[t]!.get(name).data, caches[0]!.get(name).data), `${name}, ${batch}x${pos}, ${t + 1} threads`).toBe(true);
      }
    }
    for (const m of models) m.dispose();
  });
});
