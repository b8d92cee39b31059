// planSweep: the plan of a sweep without running it, equal to what the run reports and does.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor as TensorClass, type Tensor } from "../src/engine/tensor.js";
import { makeConfig } from "../src/model/config.js";
import { processWeights } from "../src/model/process-weights.js";
import { parameterShapes } from "../src/model/weights.js";
import type { Kernels } from "../src/engine/kernels.js";
import { HookedTransformer, type ForwardOptions } from "../src/model/hooked-transformer.js";
import * as patching from "../src/patching/activation-patching.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../src/patching/direct-path.js";
import { logitDiff, logProb } from "../src/patching/metrics.js";
import { planSweep } from "../src/patching/plan-sweep.js";
import { passBytesPerCopy } from "../src/patching/planner.js";
import type { SweepPlanSummary } from "../src/patching/sweep-types.js";
import { maxAbsDiff, randn, rng } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { golden, type GoldenInputs } from "./reference.js";
import { loadReference } from "./reference-model.js";

function tokens(batch: number, pos: number, vocab: number, seed: number): number[][] {
  const next = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => Math.floor(next() * vocab)));
}

/** A model on an engine whose GEMM calls (gemm and the weights' gemmPacked) are counted (2 flops per multiply-add). */
async function countingModel(files: Record<string, Uint8Array>) {
  const engine = await Engine.create();
  const counter = { flops: 0 };
  const kernels = engine.kernels;
  const gemm: Kernels["gemm"] = (...args) => {
    const [, , , , , , , m, n, k] = args;
    counter.flops += 2 * m * n * k;
    return kernels.gemm(...args);
  };
  const gemmPacked: Kernels["gemmPacked"] = (...args) => {
    const [, , , , , , m, , k, , j0, j1] = args;
    counter.flops += 2 * m * (j1 - j0) * k;
    return kernels.gemmPacked(...args);
  };
  Object.defineProperty(engine, "kernels", { value: { ...kernels, gemm, gemmPacked } });
  return { model: await HookedTransformer.fromPretrained(files, { engine }), counter };
}

describe("planSweep", () => {
  const spec = { nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 16, vocab: 31, seed: 61 };
  const clean = tokens(3, 12, spec.vocab, 4);
  const late = clean.map((row, b) => row.map((t, p) => (p === 8 || (b === 1 && p === 10) ? (t + 3) % spec.vocab : t)));
  const early = clean.map((row, b) => row.map((t, p) => (p >= 1 && (p + b) % 2 === 0 ? (t + 3) % spec.vocab : t)));
  const metric = logitDiff({ correct: [1, 2, 3], incorrect: [4, 5, 6] });
  let model: HookedTransformer;
  let counter: { flops: number; counting: boolean };
  beforeAll(async () => { ({ model, counter } = await countingModel(randomGpt2Files(spec))); });

  it("gives the plan the run reports, and the run's matrix products are the plan's flops", async () => {
    for (const corrupted of [late, early]) {
      const cc = model.runWithCache(clean).cache;
      const rc = model.runWithCache(corrupted).cache;
      for (const component of ["q", "k", "v"] as const) {
        const counted: Record<string, number> = {};
        const plans: Record<string, SweepPlanSummary> = {};
        for (const strategy of ["naive", "planned"] as const) {
          const options = { srcLayer: 1, srcHead: 2, component, strategy };
          const plan = planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, options);
          const reported: SweepPlanSummary[] = [];
          counter.flops = 0;
          await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...options, onPlan: (p) => reported.push(p) });
          counted[strategy] = counter.flops;
          plans[strategy] = plan;
          expect(reported).toEqual([plan]);
          expect(plan.strategy).toBe(strategy);
          // Source layer 1 of 4: destinations in layers 2 and 3, 3 heads each.
          expect(plan.patches).toBe(6);
          expect(plan.naiveLayerTokenEvaluations).toBe(6 * 4 * 3 * 12);
          if (strategy === "naive") {
            expect(plan.passes).toBe(6);
            expect(plan.estimatedSpeedup).toBe(1);
          } else {
            expect(plan.estimatedSpeedup).toBeCloseTo(plan.naiveFlops / plan.flops, 12);
            expect(plan.estimatedSpeedup).toBeGreaterThan(1.5);
          }
        }
        // Both strategies compute the same patch values and baselines besides their passes, so the
        // planned run multiplies exactly its plan's flops more than that.
        const besidesPasses = counted["naive"]! - plans["naive"]!.flops;
        expect(besidesPasses).toBeGreaterThan(0);
        expect(counted["planned"]! - besidesPasses, component).toBe(plans["planned"]!.flops);
      }
    }
  });

  it("counts what the prompts allow: a late difference recomputes fewer positions than an early one", () => {
    const plans = [late, early].map((corrupted) => {
      const cc = model.runWithCache(clean).cache;
      const rc = model.runWithCache(corrupted).cache;
      return planSweep(getActPatchDirectPathAllSources, model, corrupted, cc, rc, metric, { component: "q" });
    });
    const [latePlan, earlyPlan] = plans as [SweepPlanSummary, SweepPlanSummary];
    // Every source into every later layer: 3 heads x (3 + 2 + 1) destination layers x 3 heads.
    expect(latePlan.patches).toBe(3 * 6 * 3);
    // The late prompts differ from position 8: 4 of 12 positions per row, 3 rows; the early ones
    // from position 1. Patches into the last layer (27: every source of layers 0-2 into 3 heads)
    // skip its attention and recompute only the last position.
    expect(latePlan.tokensRecomputed).toBe(27 * 3 * 1 + 27 * 3 * 4);
    expect(earlyPlan.tokensRecomputed).toBe(27 * 3 * 1 + 27 * 3 * 11);
    expect(latePlan.estimatedSpeedup).toBeGreaterThan(earlyPlan.estimatedSpeedup);
    // A budget of one 4-position copy per pass: one pass per such patch, four 1-position copies per pass.
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(late).cache;
    const fourPositions = passBytesPerCopy(model, 3, 12,
      { startLayer: 1, startPos: 8, pruneLastLayer: true, afterAttention: true, lastPositionOnly: true, unembedTokens: Int32Array.from(metric.tokens!) }, {});
    const onePosition = passBytesPerCopy(model, 3, 12,
      { startLayer: 3, startPos: 11, pruneLastLayer: false, afterAttention: true, lastPositionOnly: true, unembedTokens: Int32Array.from(metric.tokens!) }, {});
    expect(onePosition).toBeLessThan(fourPositions);
    const budget = fourPositions;
    const one = planSweep(getActPatchDirectPathAllSources, model, late, cc, rc, metric, { component: "q", memoryBudgetBytes: budget });
    expect(one.passes).toBe(27 + Math.ceil(27 / Math.floor(budget / onePosition)));
    expect(one.peakMemoryBytes).toBeLessThanOrEqual(budget);
    expect(one.flops).toBe(latePlan.flops);
  });

  it("plans activation patching without running the corrupted prompts, and matches the run", async () => {
    const cache = model.runWithCache(clean).cache;
    for (const fn of [patching.getActPatchResidPre, patching.getActPatchAttnHeadOutByPos, patching.getActPatchBlockEvery]) {
      let forwards = 0;
      const forward = model.forward.bind(model);
      model.forward = (input, options) => { if (options?.stopAtLayer !== 0) forwards++; return forward(input, options); };
      const plan = planSweep(fn, model, late, cache, metric, {});
      delete (model as { forward?: unknown }).forward; // back to the prototype's
      expect(forwards, fn.name).toBe(0);
      const reported: SweepPlanSummary[] = [];
      await fn(model, late, cache, metric, { onPlan: (p) => reported.push(p) });
      expect(reported).toEqual([plan]);
    }
    const generic = planSweep(patching.genericActivationPatch, model, late, cache, metric, {
      activationName: "resid_pre", indexAxes: ["layer", "pos"], patchSetter: patching.layerPosPatchSetter,
    });
    const named = planSweep(patching.getActPatchResidPre, model, late, cache, metric);
    // A user's setter sees whole activations, so nothing is windowed; the built-in one reuses the prefix.
    expect(generic.patches).toBe(named.patches);
    expect(generic.tokensRecomputed).toBe(generic.patches * 3 * 12);
    expect(named.tokensRecomputed).toBeLessThan(generic.tokensRecomputed);
    // A metric that reads every position gets no prefix reuse: every patch recomputes every position.
    const allPositions = Object.assign((logits: Tensor) => metric(logits), { positions: "all" as const });
    const plain = planSweep(patching.getActPatchResidPre, model, late, cache, allPositions);
    expect(plain.tokensRecomputed).toBe(plain.patches * 3 * 12);
  });

  it("unembeds only a metric's declared tokens, and a metric reading another token fails loudly", async () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(late).cache;
    const options = { srcLayer: 0, srcHead: 1, component: "v" as const };
    const declared = planSweep(getActPatchDirectPath, model, late, cc, rc, metric, options);
    const undeclared = Object.assign((logits: Tensor) => metric(logits), { positions: "last" as const });
    const full = planSweep(getActPatchDirectPath, model, late, cc, rc, undeclared, options);
    // logitDiff reads 6 of the 31 tokens: 3 rows x (31 - 6) columns x 2 x 24 flops less per patch.
    expect(full.flops - declared.flops).toBe(declared.patches * 3 * (31 - 6) * 2 * 24);
    const a = await getActPatchDirectPath(model, late, cc, rc, metric, options);
    const b = await getActPatchDirectPath(model, late, cc, rc, undeclared, options);
    expect(maxAbsDiff(a.scores.data, b.scores.data)).toBeLessThanOrEqual(1e-5);
    const wrong = Object.assign((logits: Tensor) => logits.data[7]!, { positions: "last" as const, tokens: [1] });
    await expect(getActPatchDirectPath(model, late, cc, rc, wrong, { ...options, strategy: "naive" })).resolves.toBeDefined();
    await expect(getActPatchDirectPath(model, late, cc, rc, wrong, options)).rejects.toThrow(/returned NaN .*declares tokens \[1\]/);
  });

  it("refuses what the run refuses, before any work", () => {
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(late).cache;
    expect(() => planSweep(getActPatchDirectPath, model, late, cc, rc, metric, { srcLayer: 4, srcHead: 0, component: "q" }))
      .toThrow(/srcLayer must be an integer in \[0, 3\], got 4/);
    expect(() => planSweep(getActPatchDirectPath, model, late, cc, rc, metric, { srcLayer: 0, srcHead: 0, component: "q", memoryBudgetBytes: 100 }))
      .toThrow(/more than memoryBudgetBytes \(100\)/);
    expect(() => planSweep(getActPatchDirectPath, model, late, cc, rc, metric,
      { srcLayer: 0, srcHead: 0, component: "q", strategy: "fast" as "naive" })).toThrow(/strategy must be "planned" or "naive"/);
    expect(() => planSweep((async () => undefined) as never, model)).toThrow(/must be a patching sweep function/);
  });
});

describe("planSweep on the reference checkpoint", () => {
  it("matches the run's reported plan for every component", async () => {
    const engine = await Engine.create();
    const model = await loadReference("tiny-gpt2-random", engine);
    const inputs = golden<GoldenInputs>("tiny-gpt2-random", "inputs.json");
    const cc = model.runWithCache(inputs.clean).cache;
    const rc = model.runWithCache(inputs.corrupted).cache;
    for (const metric of [logitDiff(inputs), logProb(inputs)]) {
      for (const component of ["q", "k", "v"] as const) {
        const plan = planSweep(getActPatchDirectPathAllSources, model, inputs.corrupted, cc, rc, metric, { component });
        const reported: SweepPlanSummary[] = [];
        await getActPatchDirectPathAllSources(model, inputs.corrupted, cc, rc, metric, { component, onPlan: (p) => reported.push(p) });
        expect(reported).toEqual([plan]);
        // 3 layers, 4 heads: sources in layer 0 reach 2 layers, in layer 1 one.
        expect(plan.patches).toBe(4 * 2 * 4 + 4 * 1 * 4);
      }
    }
    model.dispose();
  });
});

describe("patches that skip the destination layer's attention", () => {
  const spec = { nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 16, vocab: 31, seed: 71 };
  const clean = tokens(3, 10, spec.vocab, 9);
  const corrupted = clean.map((row, b) => row.map((t, p) => (p === 5 || (b === 2 && p === 7) ? (t + 4) % spec.vocab : t)));
  const metric = logitDiff({ correct: [1, 2, 3], incorrect: [4, 5, 6] });

  it("give the naive loop's numbers, and the whole layer comes back when a hook watches it or resid_mid is not cached", async () => {
    const engine = await Engine.create();
    const model = await HookedTransformer.fromPretrained(randomGpt2Files(spec), { engine });
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    const noMid = model.runWithCache(corrupted, { namesFilter: (n) => !n.endsWith("hook_resid_mid") }).cache;
    for (const component of ["q", "k", "v"] as const) {
      for (const mode of ["linear", "exact"] as const) {
        const options = { srcLayer: 0, srcHead: 1, component, mode };
        const naive = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...options, strategy: "naive" });
        const skipping = planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, options);
        const planned = await getActPatchDirectPath(model, corrupted, cc, rc, metric, options);
        expect(maxAbsDiff(planned.scores.data, naive.scores.data), `${component} ${mode}`).toBeLessThanOrEqual(1e-5);
        // Without the corrupted resid_mid, every destination layer is computed whole: more work, same numbers.
        const whole = planSweep(getActPatchDirectPath, model, corrupted, cc, noMid, metric, options);
        expect(whole.flops).toBeGreaterThan(skipping.flops);
        const wholeRun = await getActPatchDirectPath(model, corrupted, cc, noMid, metric, options);
        expect(maxAbsDiff(wholeRun.scores.data, naive.scores.data)).toBeLessThanOrEqual(1e-5);
        // A hook on layer 2's attention: passes into layer 2 compute it (the hook fires), the others still skip theirs.
        let fired = 0;
        model.addHook("blocks.2.attn.hook_pattern", () => { fired++; });
        const hooked = planSweep(getActPatchDirectPath, model, corrupted, cc, rc, metric, options);
        const hookedRun = await getActPatchDirectPath(model, corrupted, cc, rc, metric, options);
        model.resetHooks();
        expect(hooked.flops).toBeGreaterThan(skipping.flops);
        expect(hooked.flops).toBeLessThan(whole.flops);
        expect(fired).toBeGreaterThan(0);
        expect(maxAbsDiff(hookedRun.scores.data, naive.scores.data)).toBeLessThanOrEqual(1e-5);
      }
    }
    model.dispose();
  });

  it("change a whole key/value group's heads with grouped-query attention", async () => {
    const engine = await Engine.create();
    const cfg = makeConfig({ nLayers: 3, dModel: 32, nHeads: 4, nKeyValueHeads: 2, dVocab: 31, nCtx: 16, dMlp: 64 });
    const weights = new Map<string, Tensor>();
    let seed = 3;
    for (const [name, shape] of parameterShapes(cfg)) {
      const data = randn(shape.reduce((a, b) => a * b, 1), seed++, 0.3);
      if (name.endsWith(".w")) for (let i = 0; i < data.length; i++) data[i]! += 1;
      weights.set(name, new TensorClass(data, shape));
    }
    const processed = processWeights(cfg, weights);
    const model = new HookedTransformer(processed.cfg, processed.weights, engine);
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    for (const component of ["q", "k", "v"] as const) {
      for (const mode of ["linear", "exact"] as const) {
        const options = { srcLayer: 0, srcHead: 3, component, mode };
        const planned = await getActPatchDirectPath(model, corrupted, cc, rc, metric, options);
        const naive = await getActPatchDirectPath(model, corrupted, cc, rc, metric, { ...options, strategy: "naive" });
        expect(planned.scores.shape).toEqual([3, component === "q" ? 4 : 2]);
        expect(maxAbsDiff(planned.scores.data, naive.scores.data), `${component} ${mode}`).toBeLessThanOrEqual(1e-5);
        expect(Math.max(...Array.from(planned.scores.data, (s, i) => (planned.noPath![i] ? 0 : Math.abs(s - planned.baseline))))).toBeGreaterThan(1e-3);
      }
    }
    model.dispose();
  });
});
