import { beforeAll, describe, expect, it, vi } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { getActPatchResidPre } from "../src/patching/activation-patching.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../src/patching/direct-path.js";
import { logitDiff, logProb, normalize, type Metric } from "../src/patching/metrics.js";
import { planSweep } from "../src/patching/plan-sweep.js";
import { maxAbsDiff, rng } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";

function tokens(batch: number, pos: number, vocab: number, seed: number): number[][] {
  const next = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => Math.floor(next() * vocab)));
}

let engine: Engine;
beforeAll(async () => { engine = await Engine.create(); });

describe("planned and naive sweeps agree on random models", () => {
  const specs = [
    { nLayer: 3, nHead: 4, nEmbd: 32, nPositions: 16, vocab: 40, seed: 21 },
    { nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 12, vocab: 31, seed: 22 },
  ];
  for (const spec of specs) {
    it(`direct path, every component and mode, several sources: ${spec.nLayer}x${spec.nHead}`, async () => {
      for (const processWeights of [true, false]) {
        const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
        const model = await HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine, processWeights });
        const clean = tokens(3, 7, spec.vocab, spec.seed);
        const corrupted = clean.map((row, b) => row.map((t, p) => (p % 3 === b % 3 ? (t + 5) % spec.vocab : t)));
        const metric = logitDiff({ correct: [1, 2, 3], incorrect: [4, 5, 6] });
        const cc = model.runWithCache(clean).cache;
        const rc = model.runWithCache(corrupted).cache;
        for (const component of ["q", "k", "v"] as const) {
          for (const mode of ["linear", "exact"] as const) {
            for (const [srcLayer, srcHead] of [[0, 0], [1, spec.nHead - 1]]) {
              const opts = { srcLayer: srcLayer!, srcHead: srcHead!, component, mode };
              const planned = await getActPatchDirectPath(model, corrupted, cc, rc, metric, opts);
              const naive = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...opts, strategy: "naive" });
              // A budget that splits the stacked passes must not change anything either.
              // 0.6 of the planned peak: its largest pass (several stacked copies) no longer fits in one.
              const oneCopy = 0.6 * planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, opts).peakMemoryBytes;
              expect(planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, { ...opts, memoryBudgetBytes: oneCopy }).passes)
                .toBeGreaterThan(planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, opts).passes);
              const chunked = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...opts, memoryBudgetBytes: oneCopy });
              expect(maxAbsDiff(planned.scores.data, naive.scores.data), `${component} ${mode}`).toBeLessThanOrEqual(1e-4);
              expect(maxAbsDiff(planned.scores.data, chunked.scores.data)).toBeLessThanOrEqual(1e-4);
              expect(Math.max(...Array.from(planned.scores.data, (s, i) => (planned.noPath![i] ? 0 : Math.abs(s - planned.baseline))))).toBeGreaterThan(1e-4);
            }
          }
        }
        // Linear mode on an unfolded model is TransformerLens's approximation: warned about once.
        expect(warn.mock.calls.length).toBe(processWeights ? 0 : 1);
        warn.mockRestore();
        model.dispose();
      }
    });
  }
});

describe("reusing the unchanged prefix and pruning the last block", () => {
  const spec = { nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 16, vocab: 31, seed: 41 };
  it("give the naive loop's numbers when the prompts differ late, and say so in the plan", async () => {
    const model = await HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine });
    const clean = tokens(4, 14, spec.vocab, 8);
    const corrupted = clean.map((row, b) => row.map((t, p) => (p === 10 || (b === 2 && p === 12) ? (t + 7) % spec.vocab : t)));
    const metric = logitDiff({ correct: [1, 2, 3, 4], incorrect: [5, 6, 7, 8] });
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    for (const component of ["q", "k", "v"] as const) {
      for (const mode of ["linear", "exact"] as const) {
        const plans: { layerTokenEvaluations: number; naiveLayerTokenEvaluations: number; estimatedSpeedup: number }[] = [];
        const opts = { srcLayer: 0, srcHead: 2, component, mode };
        const planned = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...opts, onPlan: (p) => plans.push(p) });
        const naive = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...opts, strategy: "naive" });
        expect(maxAbsDiff(planned.scores.data, naive.scores.data), `${component} ${mode}`).toBeLessThanOrEqual(1e-5);
        // Positions 0..9 are reused and the last block runs on one position per row.
        expect(plans).toHaveLength(1);
        const perDst = (l: number) => (4 - l - 1) * 4 * 4 + 4; // (blocks before the last) x 4 rows x 4 positions + 4 last positions
        expect(plans[0]!.layerTokenEvaluations).toBe(3 * (perDst(1) + perDst(2) + perDst(3)));
        expect(plans[0]!.estimatedSpeedup).toBeGreaterThan(4);
      }
    }
    // All sources: the same, with several sources per stacked pass.
    const all = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k" });
    const allNaive = await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k", strategy: "naive" });
    expect(maxAbsDiff(all.scores.data, allNaive.scores.data)).toBeLessThanOrEqual(1e-5);
    // Without cached keys and values, nothing is reused, and the numbers are the same.
    const noKV = model.runWithCache(corrupted, { namesFilter: (n) => !n.endsWith("hook_k") && !n.endsWith("hook_v") }).cache;
    const plain = await getActPatchDirectPath(model, corrupted, cc, noKV, metric, { srcLayer: 0, srcHead: 2, component: "q" });
    const withKV = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { srcLayer: 0, srcHead: 2, component: "q" });
    expect(maxAbsDiff(plain.scores.data, withKV.scores.data)).toBeLessThanOrEqual(1e-5);
    // Keys and values cached for some layers only: no prefix is reused where any later layer lacks them.
    const someKV = model.runWithCache(corrupted, { namesFilter: (n) => !n.startsWith("blocks.3.attn.hook_k") }).cache;
    const partial = await getActPatchDirectPath(model, corrupted, cc, someKV, metric, { srcLayer: 0, srcHead: 2, component: "q" });
    expect(maxAbsDiff(partial.scores.data, withKV.scores.data)).toBeLessThanOrEqual(1e-5);
    model.dispose();
  });
});

describe("sweep properties", () => {
  const spec = { nLayer: 3, nHead: 2, nEmbd: 16, nPositions: 10, vocab: 20, seed: 5 };
  let model: HookedTransformer;
  const clean = tokens(2, 6, 20, 1);
  const corrupted = tokens(2, 6, 20, 2);
  const metric = logitDiff({ correct: [3, 4], incorrect: [5, 6] });
  beforeAll(async () => { model = await HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine }); });

  it("clean == corrupted gives the baseline everywhere, and no-path entries are exactly 0", async () => {
    const cache = model.runWithCache(clean).cache;
    for (const mode of ["linear", "exact"] as const) {
      const r = await getActPatchDirectPathAllSources(model, clean, cache, cache, metric, { component: "k", mode });
      for (let i = 0; i < r.scores.size; i++) {
        if (r.noPath![i]) expect(r.scores.data[i]).toBe(0);
        else expect(r.scores.data[i]).toBeCloseTo(r.baseline, 4);
      }
    }
  });

  it("results carry baseline, clean, normalized() and the options", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    const r = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { srcLayer: 0, srcHead: 1, component: "v", mode: "exact" });
    expect(r.baseline).toBeCloseTo(metric(model.forward(corrupted).logits!), 4);
    expect(r.clean).toBeCloseTo(metric(model.forward(clean).logits!), 4);
    const n = r.normalized();
    expect(n.get(2, 0)).toBeCloseTo((r.scores.get(2, 0) - r.baseline) / (r.clean - r.baseline), 5);
    expect(n.get(0, 0)).toBe(0);
    expect(r.options).toMatchObject({ component: "v", mode: "exact", strategy: "planned", src: [0, 1] });
    const json = r.toJSON();
    expect(json["shape"]).toEqual([3, 2]);
    expect((json["noPath"] as boolean[]).slice(0, 3)).toEqual([true, true, false]);
  });

  it("reports progress and can be aborted mid-sweep with an AbortError", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    const seen: number[] = [];
    await getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, {
      component: "q", strategy: "naive", onProgress: (p) => { seen.push(p.done); expect(p.total).toBe(12); },
    });
    expect(seen.at(-1)).toBe(12);
    const controller = new AbortController();
    const used = engine.stats().bytesInUse;
    const run = getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, {
      component: "q", strategy: "naive", onProgress: (p) => { if (p.done === 2) controller.abort(); },
      signal: controller.signal,
    });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    expect(engine.stats().bytesInUse).toBe(used);
    // The model still works after the abort.
    const again = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { srcLayer: 0, srcHead: 0, component: "q" });
    expect(again.scores.shape).toEqual([3, 2]);
  });

  it("a NaN metric stops the sweep with an error naming the patch", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    let calls = 0;
    const bad: Metric = (logits: Tensor) => (++calls > 3 ? NaN : metric(logits));
    await expect(getActPatchDirectPath(model, corrupted, cc, rc, bad, { srcLayer: 0, srcHead: 0, component: "q", strategy: "naive" }))
      .rejects.toThrow(/metric returned NaN for patch src \(0, 0\) -> dst \(1, 1\) q/);
    await expect(getActPatchResidPre(model, corrupted, cc, () => NaN)).rejects.toThrow(/metric returned NaN for the corrupted run/);
  });

  it("a sweep whose single patched run exceeds the memory budget is refused before it starts", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    let progressed = false;
    await expect(getActPatchDirectPath(model, corrupted, cc, rc, metric, {
      srcLayer: 0, srcHead: 0, component: "q", memoryBudgetBytes: 1000, onProgress: () => { progressed = true; },
    })).rejects.toThrow(/a patched run needs about \d+ bytes .*more than memoryBudgetBytes \(1000\)/);
    expect(progressed).toBe(false);
  });

  it("bad options are refused with messages that name them", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    const call = (o: object) => getActPatchDirectPath(model, corrupted, cc, rc, metric, { srcLayer: 0, srcHead: 0, component: "q", ...o });
    await expect(call({ srcLayer: 3 })).rejects.toThrow(/srcLayer must be an integer in \[0, 2\], got 3/);
    await expect(call({ srcHead: -1 })).rejects.toThrow(/srcHead must be an integer in \[0, 1\], got -1/);
    await expect(call({ component: "x" })).rejects.toThrow(/component must be "q", "k" or "v"/);
    await expect(call({ mode: "fast" })).rejects.toThrow(/mode must be "linear" or "exact"/);
    const partial = model.runWithCache(clean, { namesFilter: ["blocks.0.hook_resid_pre"] }).cache;
    await expect(getActPatchDirectPath(model, corrupted, partial, rc, metric, { srcLayer: 0, srcHead: 0, component: "q" }))
      .rejects.toThrow(/cleanCache lacks blocks\.2\.hook_resid_post/);
    const longer = model.runWithCache(tokens(2, 7, 20, 3)).cache;
    await expect(getActPatchDirectPath(model, corrupted, longer, rc, metric, { srcLayer: 0, srcHead: 0, component: "q" }))
      .rejects.toThrow(/does not fit 6 positions/);
  });

  it("built-in metrics: logProb, normalize, and answer ids are checked", () => {
    const logits = Tensor.from([[[0, Math.log(3)], [Math.log(1), Math.log(3)]]]);
    expect(logProb({ correct: [1] })(logits)).toBeCloseTo(Math.log(3 / 4), 6);
    expect(logitDiff({ correct: [1], incorrect: [0] })(logits)).toBeCloseTo(Math.log(3), 6);
    const n = normalize(logitDiff({ correct: [1], incorrect: [0] }), { clean: 2 * Math.log(3), corrupted: 0 });
    expect(n(logits)).toBeCloseTo(0.5, 6);
    expect(n.positions).toBe("last");
    expect(() => logitDiff({ correct: [5], incorrect: [0] })(logits)).toThrow(/answer id 5 is out of range \[0, 2\)/);
    expect(() => logitDiff({ correct: [1, 2], incorrect: [0] })).toThrow(/2 correct but 1 incorrect/);
  });
});
