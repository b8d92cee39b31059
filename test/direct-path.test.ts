import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import type { HookedTransformer } from "../src/model/hooked-transformer.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../src/patching/direct-path.js";
import { logitDiff } from "../src/patching/metrics.js";
import { expectGoldenScores, golden, type GoldenInputs, type GoldenScores } from "./reference.js";
import { loadReference } from "./reference-model.js";


let engine: Engine;
beforeAll(async () => { engine = await Engine.create(); });

for (const name of ["tiny-gpt2-random", "tiny-gpt2-random-f16"]) {
  describe(`direct path patching on ${name} against PyTorch`, () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff(inputs);
    let model: HookedTransformer;
    let clean: ReturnType<HookedTransformer["runWithCache"]>["cache"];
    let corrupted: typeof clean;
    beforeAll(async () => {
      model = await loadReference(name, engine);
      clean = model.runWithCache(inputs.clean).cache;
      corrupted = model.runWithCache(inputs.corrupted).cache;
    });

    for (const component of ["q", "k", "v"] as const) {
      for (const mode of ["linear", "exact"] as const) {
        for (const strategy of ["planned", "naive"] as const) {
          it(`source (0, 1), ${component}, ${mode}, ${strategy}`, async () => {
            const want = golden<GoldenScores>(name, `direct_path_src0.1_${component}_${mode}.json`);
            const result = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric,
              { srcLayer: 0, srcHead: 1, component, mode, strategy });
            expect(result.scores.shape).toEqual(want.shape);
            expectGoldenScores(result.scores.data, want, `${component} ${mode} ${strategy}`);
            expect(result.baseline).toBeCloseTo(want.corrupted_baseline, 4);
            expect(result.clean).toBeCloseTo(want.clean_baseline, 4);
            expect(Array.from(result.noPath!)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
          });
        }
      }
    }

    it("all sources, q, linear: matches PyTorch and each slice equals the single-source call", async () => {
      const want = golden<GoldenScores>(name, "direct_path_all_q_linear.json");
      const all = await getActPatchDirectPathAllSources(model, inputs.corrupted, clean, corrupted, metric, { component: "q" });
      expect(all.scores.shape).toEqual([3, 4, 3, 4]);
      expectGoldenScores(all.scores.data, want, "all q linear");
      for (const [sl, sh] of [[0, 0], [1, 3], [2, 2]] as const) {
        const single = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: sl, srcHead: sh, component: "q" });
        expect(Array.from(all.scores.select(0, sl).select(0, sh).data)).toEqual(Array.from(single.scores.data));
      }
      // A last-layer source has no path anywhere.
      expect(Array.from(all.scores.select(0, 2).data).every((x) => x === 0)).toBe(true);
    });
  });
}
