// planSweep: the plan of a sweep without running it, equal to what the run reports and does.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import type { Tensor } from "../src/engine/tensor.js";
import type { Kernels } from "../src/engine/kernels.js";
import { HookedTransformer, type ForwardOptions } from "../src/model/hooked-transformer.js";
import * as patching from "../src/patching/activation-patching.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../src/patching/direct-path.js";
import { logitDiff, logProb } from "../src/patching/metrics.js";
import { planSweep } from "../src/patching/plan-sweep.js";
import type { SweepPlanSummary } from "../src/patching/planner.js";
import { maxAbsDiff, rng } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { golden, type GoldenInputs } from "./reference.js";
import { loadReference } from "./reference-model.js";

function tokens(batch: number, pos: number, vocab: number, seed: number): number[][] {
  const next = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => Math.floor(next() * vocab)));
}

/** A model on an engine whose GEMM calls are counted (2 flops per multiply-add). */
async function countingModel(files: Record<string, Uint8Array>) {
  const engine = await Engine.create();
  const counter = { flops: 0 };
  const kernels = engine.kernels;
  const gemm: Kernels["gemm"] = (...args) => {
    const [, , , , , , , m, n, k] = args;
    counter.flops += 2 * m * n * k;
    return kernels.gemm(...args);
  };
  Object.defineProperty(engine, "kernels", { value: { ...kernels, gemm } });
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
    // The late prompts differ from position 8: 4 of 12 positions per row, 3 rows.
    expect(latePlan.tokensRecomputed).toBe(latePlan.patches * 3 * 4);
    expect(earlyPlan.tokensRecomputed).toBe(earlyPlan.patches * 3 * 11);
    expect(latePlan.estimatedSpeedup).toBeGreaterThan(earlyPlan.estimatedSpeedup);
    // A budget of one copy per pass: one pass per patch, and the peak is one copy's activations.
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(late).cache;
    const one = planSweep(getActPatchDirectPathAllSources, model, late, cc, rc, metric,
      { component: "q", memoryBudgetBytes: latePlan.peakMemoryBytes / 20 });
    expect(one.passes).toBe(one.patches);
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
