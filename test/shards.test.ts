import { beforeAll, describe, expect, it } from "vitest";
import { Engine, type BackendName } from "../src/engine/engine.js";
import type { WasmVariant } from "../src/engine/wasm-loader.js";
import { getActPatchDirectPathAllSources, HookedTransformer, logitDiff } from "../src/index.js";
import {
  allUnits, fingerprint, mergeParts, parseShard, PART_FORMAT, splitUnits, unitId, unitIndices, type ShardPart,
} from "../src/cli/shards.js";
import { randomGpt2Files } from "./random-gpt2.js";

const SPEC = { nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 16, vocab: 37, seed: 21 };
const clean = [[1, 5, 9, 2, 7, 3, 11, 4], [2, 8, 6, 1, 9, 12, 3, 5]];
const corrupted = clean.map((row, b) => row.map((t, p) => (p === 2 + b ? (t + 13) % 37 : t)));
const metric = logitDiff({ correct: [3, 4], incorrect: [6, 7] });

async function setup(backend: BackendName, variant?: WasmVariant) {
  const engine = await Engine.create({ backend, variant });
  const model = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine });
  return { model, cc: model.runWithCache(clean).cache, rc: model.runWithCache(corrupted).cache };
}

describe("getActPatchDirectPathAllSources({ sources })", () => {
  const variants: [BackendName, WasmVariant | undefined][] = [["wasm", "simd"], ["wasm", "relaxed"], ["js", undefined]];
  for (const [backend, variant] of variants) {
    for (const mode of ["linear", "exact"] as const) {
      it(`unit by unit reproduces the whole sweep bit for bit (${variant ?? backend}, ${mode})`, async () => {
        const { model, cc, rc } = await setup(backend, variant);
        const whole = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k", mode });
        const L = model.cfg.nLayers;
        const pieced = new Float32Array(whole.scores.size);
        // Uneven shards, so the stacked passes differ in size from the whole sweep's.
        for (const shard of splitUnits(allUnits(L, model.cfg.nHeads), L, 5)) {
          const part = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k", mode, sources: shard });
          for (const u of shard) for (const i of unitIndices(u, whole.scores.shape)) pieced[i] = part.scores.data[i]!;
          expect(part.baseline).toBe(whole.baseline);
        }
        expect(Array.from(pieced)).toEqual(Array.from(whole.scores.data));
        // Something was patched: the scores are not all the baseline.
        expect(Array.from(whole.scores.data).filter((s, i) => !whole.noPath![i] && s !== whole.baseline).length).toBeGreaterThan(20);
      });
    }
  }

  it("[sl, sh] takes every later layer; entries left out stay 0", async () => {
    const { model, cc, rc } = await setup("wasm", "simd");
    const whole = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "q" });
    const part = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "q", sources: [[1, 2]] });
    const { nHeads: H, nLayers: L } = model.cfg;
    for (let i = 0; i < whole.scores.size; i++) {
      const sl = Math.floor(i / (H * L * H));
      const sh = Math.floor(i / (L * H)) % H;
      const dl = Math.floor(i / H) % L;
      expect(part.scores.data[i]).toBe(sl === 1 && sh === 2 && dl > 1 ? whole.scores.data[i] : 0);
    }
  });

  it("refuses bad sources, naming the entry", async () => {
    const { model, cc, rc } = await setup("wasm", "simd");
    const run = (sources: [number, number, number?][]) =>
      getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k", sources });
    await expect(run([[4, 0]])).rejects.toThrow(/sources\[0\]\[0\] \(source layer\) must be an integer in \[0, 3\], got 4/);
    await expect(run([[0, 0, 1], [0, 3]])).rejects.toThrow(/sources\[1\]\[1\] \(source head\)/);
    await expect(run([[2, 0, 2]])).rejects.toThrow(/sources\[0\]\[2\] \(destination layer\) must be an integer in \[3, 3\], got 2/);
  });
});

describe("shard planning", () => {
  it("units cover every causal path once; ids are stable", () => {
    const units = allUnits(4, 3);
    expect(units.length).toBe(3 * (3 + 2 + 1));
    expect(new Set(units.map(unitId)).size).toBe(units.length);
    expect(units.slice(0, 4).map(unitId)).toEqual(["0.0>1", "0.1>1", "0.2>1", "0.0>2"]);
  });

  it("splits into N contiguous shards of balanced work, the same every time", () => {
    const L = 12;
    const units = allUnits(L, 12);
    for (const n of [1, 2, 3, 7, 16]) {
      const shards = splitUnits(units, L, n);
      expect(shards.flat()).toEqual(units);
      expect(splitUnits(units, L, n)).toEqual(shards);
      const work = shards.map((s) => s.reduce((a, u) => a + L - u[2], 0));
      const total = work.reduce((a, b) => a + b, 0);
      for (const w of work) expect(Math.abs(w - total / n)).toBeLessThanOrEqual(12); // within one unit's cost
    }
  });

  it("parses i/N and refuses the rest", () => {
    expect(parseShard("2/8")).toEqual({ index: 2, count: 8 });
    for (const bad of ["0/4", "5/4", "1/0", "x", "1-4"]) expect(() => parseShard(bad)).toThrow(/--shard must be i\/N/);
  });

  it("the fingerprint changes with the weights, the prompts and the options", async () => {
    const { model } = await setup("wasm", "simd");
    const prompts = { clean, corrupted, correct: [3, 4], incorrect: [6, 7] };
    const options = { component: "k", mode: "linear" };
    const base = fingerprint({ weights: model.weights, prompts, options });
    expect(fingerprint({ weights: model.weights, prompts, options: { ...options } })).toBe(base);
    expect(fingerprint({ weights: model.weights, prompts: { ...prompts, correct: [3, 5] }, options })).not.toBe(base);
    expect(fingerprint({ weights: model.weights, prompts, options: { ...options, mode: "exact" } })).not.toBe(base);
    const other = await HookedTransformer.fromPretrained(randomGpt2Files({ ...SPEC, seed: 22 }), { engine: model.engine });
    expect(fingerprint({ weights: other.weights, prompts, options })).not.toBe(base);
  });
});

describe("mergeParts", () => {
  const shape = [3, 2, 3, 2];
  const L = 3;
  const units = allUnits(L, 2);
  const full = Array.from({ length: 36 }, (_, i) => (i % 7) - 3 + i / 100);
  const part = (index: number, count: number, fp = "f".repeat(64)): ShardPart => {
    const mine = splitUnits(units, L, count)[index - 1]!;
    const scores = new Array<number>(36).fill(0);
    for (const u of mine) for (const i of unitIndices(u, shape)) scores[i] = full[i]!;
    return {
      format: PART_FORMAT, shard: { index, count, units: mine.map(unitId) }, fingerprint: fp,
      describes: { model: "m", prompts: "p", options: { component: "k" } },
      result: { op: "direct_path_all_sources", shape, scores, baseline: -3, clean: 4, normalized: null, options: { component: "k" } },
    };
  };

  it("puts the parts back together, in any order", () => {
    const merged = mergeParts([3, 1, 2].map((i) => ({ name: `p${i}`, part: part(i, 3) })));
    for (const u of units) for (const i of unitIndices(u, shape)) expect(merged.scores.data[i]).toBe(Math.fround(full[i]!));
  });

  it("refuses a part from another sweep, a missing, a repeated or a mixed-split part", () => {
    expect(() => mergeParts([{ name: "a", part: part(1, 2) }, { name: "b", part: part(2, 2, "0".repeat(64)) }]))
      .toThrow(/b is from a different sweep than a/);
    expect(() => mergeParts([{ name: "a", part: part(1, 3) }, { name: "c", part: part(3, 3) }])).toThrow(/missing shard 2\/3/);
    expect(() => mergeParts([{ name: "a", part: part(1, 2) }, { name: "a2", part: part(1, 2) }])).toThrow(/shard 1\/2 given twice/);
    expect(() => mergeParts([{ name: "a", part: part(1, 2) }, { name: "b", part: part(2, 3) }])).toThrow(/of 2 shards/);
    expect(() => mergeParts([{ name: "x", part: { format: "nope" } as unknown as ShardPart }])).toThrow(/not a hooklens shard part/);
  });
});
