import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { logitDiff, type ActivationCache, type HookedTransformer } from "../src/index.js";
import * as patching from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";
import { expectGoldenScores, golden, type GoldenInputs, type GoldenScores } from "./reference.js";
import { loadReference } from "./reference-model.js";

let engine: Engine;
beforeAll(async () => { engine = await Engine.create(); });

for (const name of ["tiny-gpt2-random", "tiny-gpt2-random-f16"]) {
  describe(`activation patching on ${name}`, () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff(inputs);
    let model: HookedTransformer;
    let clean: ActivationCache;
    beforeAll(async () => {
      model = await loadReference(name, engine);
      clean = model.runWithCache(inputs.clean).cache;
    });

    const cases = [
      ["act_patch_resid_pre.json", patching.getActPatchResidPre],
      ["act_patch_attn_head_out_all_pos.json", patching.getActPatchAttnHeadOutAllPos],
      ["act_patch_attn_head_out_by_pos.json", patching.getActPatchAttnHeadOutByPos],
    ] as const;
    for (const [file, fn] of cases) {
      for (const strategy of ["planned", "naive"] as const) {
        it(`${file} matches PyTorch (${strategy})`, async () => {
          const want = golden<GoldenScores>(name, file);
          const result = await fn(model, inputs.corrupted, clean, metric, { strategy });
          expect(result.scores.shape).toEqual(want.shape);
          expectGoldenScores(result.scores.data, want, file);
          expect(result.baseline).toBeCloseTo(want.corrupted_baseline, 4);
          expect(result.clean).toBeCloseTo(want.clean_baseline, 4);
        });
      }
    }
  });
}

describe("the every-functions and genericActivationPatch", () => {
  const name = "tiny-gpt2-random";
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff(inputs);
  let model: HookedTransformer;
  let clean: ActivationCache;
  beforeAll(async () => {
    model = await loadReference(name, engine);
    clean = model.runWithCache(inputs.clean).cache;
  });

  it("the every-functions stack their single parts", async () => {
    const every = await patching.getActPatchBlockEvery(model, inputs.corrupted, clean, metric);
    const residPre = await patching.getActPatchResidPre(model, inputs.corrupted, clean, metric);
    const mlp = await patching.getActPatchMlpOut(model, inputs.corrupted, clean, metric);
    expect(maxAbsDiff(every.scores.select(0, 0).data, residPre.scores.data)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(every.scores.select(0, 2).data, mlp.scores.data)).toBeLessThanOrEqual(1e-5);
  });

  it("patching resid_pre at layer 0 with every position is the clean run; genericActivationPatch agrees with the named function", async () => {
    const generic = await patching.genericActivationPatch(model, inputs.corrupted, clean, metric, {
      activationName: "resid_pre", indexAxes: ["layer", "pos"], patchSetter: patching.layerPosPatchSetter,
    });
    const named = await patching.getActPatchResidPre(model, inputs.corrupted, clean, metric);
    expect(maxAbsDiff(generic.scores.data, named.scores.data)).toBe(0);
    // Positions where clean and corrupted tokens agree change nothing at layer 0.
    let agreeing = 0;
    for (let p = 0; p < 8; p++) {
      const same = inputs.clean.every((row, b) => row[p] === inputs.corrupted[b]![p]);
      if (same) {
        agreeing++;
        expect(named.scores.get(0, p)).toBeCloseTo(named.baseline, 4);
      }
    }
    expect(agreeing).toBeGreaterThan(0);
    // A user setter that copies the whole residual stream (no window: it sees whole activations)
    // makes every layer's patched run the clean run.
    const whole = await patching.genericActivationPatch(model, inputs.corrupted, clean, metric, {
      activationName: "resid_pre", indexAxes: ["layer"], patchSetter: (c, k) => { c.data.set(k.data); },
    });
    expect(whole.scores.shape).toEqual([3]);
    for (let l = 0; l < 3; l++) expect(Math.abs(whole.scores.get(l) - whole.clean), `layer ${l}`).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(whole.clean - whole.baseline)).toBeGreaterThan(0.1);
  });
});

describe("activation patching with a late difference plans to reuse the prefix", () => {
  // The numbers of these sweeps are checked against hook patches (and the naive loop) in
  // activation-patching-hooks.test.ts, on this same model and these prompts.
  it("every family member that spans positions is estimated well over 1.5x faster than the naive loop", async () => {
    const { randomGpt2Files } = await import("./random-gpt2.js");
    const model = await patching.HookedTransformer.fromPretrained(
      randomGpt2Files({ nLayer: 3, nHead: 2, nEmbd: 16, nPositions: 16, vocab: 29, seed: 77 }), { engine });
    const clean = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]];
    const corrupted = clean.map((row) => row.map((t, p) => (p === 8 ? (t + 13) % 29 : t)));
    const metric = logitDiff({ correct: [3, 4], incorrect: [5, 6] });
    const cache = model.runWithCache(clean).cache;
    const fns = {
      getActPatchBlockEvery: patching.getActPatchBlockEvery, getActPatchResidMid: patching.getActPatchResidMid,
      getActPatchAttnHeadAllPosEvery: patching.getActPatchAttnHeadAllPosEvery,
      getActPatchAttnHeadByPosEvery: patching.getActPatchAttnHeadByPosEvery,
      getActPatchAttnHeadPatternDestSrcPos: patching.getActPatchAttnHeadPatternDestSrcPos,
    };
    for (const [name, fn] of Object.entries(fns)) {
      const plan = fn.plan(model, corrupted, cache, metric);
      expect(plan.strategy, name).toBe("planned");
      expect(plan.estimatedSpeedup, name).toBeGreaterThan(1.5);
      // onPlan hands a running sweep the same plan.
      if (name === "getActPatchResidMid") {
        let seen: number | undefined;
        await fn(model, corrupted, cache, metric, { onPlan: (p) => { seen = p.estimatedSpeedup; } });
        expect(seen).toBe(plan.estimatedSpeedup);
      }
    }
    model.dispose();
  });
});
