import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { configFromHfGpt2, convertGpt2Weights, HookedTransformer, processWeights } from "../src/index.js";
import { allEngines, maxAbsDiff } from "./helpers.js";
import { golden, referenceDir, type GoldenInputs, type GoldenTensor } from "./reference.js";

function load(name: string) {
  const dir = referenceDir(name);
  const cfg = configFromHfGpt2(JSON.parse(readFileSync(`${dir}config.json`, "utf8")));
  const file = readSafetensors(new Uint8Array(readFileSync(`${dir}model.safetensors`)), "model.safetensors");
  return { cfg, weights: convertGpt2Weights(file.tensors, cfg) };
}

let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

for (const name of ["tiny-gpt2-random", "tiny-gpt2-random-f16"]) {
  describe(`${name} against PyTorch`, () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");

    it("unprocessed logits match within 1e-4 on every backend", () => {
      const { cfg, weights } = load(name);
      const want = golden(name, "logits_clean.json");
      for (const engine of engines) {
        const model = new HookedTransformer(cfg, weights, engine);
        const logits = model.forward(inputs.clean).logits!;
        expect(logits.shape).toEqual(want.shape);
        expect(maxAbsDiff(logits.data, want.data), engine.variant).toBeLessThan(1e-4);
        model.dispose();
      }
    });

    it("processed logits and cached activations match within 1e-4 on every backend", () => {
      const raw = load(name);
      const { cfg, weights } = processWeights(raw.cfg, raw.weights);
      const wantLogits = golden(name, "logits_clean_processed.json");
      for (const engine of engines) {
        const model = new HookedTransformer(cfg, weights, engine);
        for (const [run, tokens] of [["clean", inputs.clean], ["corrupted", inputs.corrupted]] as const) {
          const { logits, cache } = model.runWithCache(tokens);
          if (run === "clean") expect(maxAbsDiff(logits!.data, wantLogits.data), engine.variant).toBeLessThan(1e-4);
          const want = golden<{ tensors: Record<string, GoldenTensor> }>(name, `cache_${run}_processed.json`).tensors;
          for (const [hook, t] of Object.entries(want)) {
            const got = cache.get(hook);
            expect(got.shape, hook).toEqual(t.shape);
            expect(maxAbsDiff(got.data, t.data), `${engine.variant} ${run} ${hook}`).toBeLessThan(1e-4);
          }
        }
        model.dispose();
      }
    });
  });
}
