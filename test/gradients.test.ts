// Gradients at every hook point against PyTorch autograd (../shared/reference/ATTRIBUTION.md,
// section 1): both model families, the clean and the corrupted run, on the WASM and js engines.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff } from "../src/patching/metrics.js";
import { golden, referenceDir, type GoldenInputs, type GoldenTensor } from "./reference.js";

interface GoldenGrads { metric: number; tensors: Record<string, GoldenTensor> }

const MODELS = ["tiny-gpt2-random", "tiny-llama-random"] as const;

let engines: Engine[];
beforeAll(async () => {
  engines = [await Engine.create({ variant: "simd" }), Engine.createJs()];
});

describe.each(MODELS)("gradients of the logit difference, %s", (name) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
  for (const run of ["clean", "corrupted"] as const) {
    it(`match autograd at every hook point (${run} run), within 1e-5 + 1e-3 × max |grad|`, async () => {
      const want = golden<GoldenGrads>(name, `grads_${run}_processed.json`);
      for (const engine of engines) {
        const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useAttnResult: true });
        const { cache, metric: value } = model.runWithCache(inputs[run], { inclBwd: true, metric, namesFilter: (n) => n.endsWith("_grad") });
        expect(value).toBeCloseTo(want.metric, 4);
        expect(cache.keys()).toEqual(model.hookNames().map((n) => `${n}_grad`));
        expect(cache.keys().sort()).toEqual(Object.keys(want.tensors).sort());
        for (const [hook, g] of Object.entries(want.tensors)) {
          const got = cache.get(hook);
          expect(got.shape, hook).toEqual(g.shape);
          const maxAbs = Math.max(...g.data.map(Math.abs));
          const tol = 1e-5 + 1e-3 * maxAbs;
          let worst = 0;
          for (let i = 0; i < g.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - g.data[i]!));
          expect(worst, `${hook} on ${engine.backend} (max |grad| ${maxAbs})`).toBeLessThanOrEqual(tol);
        }
        model.dispose();
      }
    });
  }
});
