// Models whose weight matrices the engine stores as bf16 (dtype: "bf16"): half the engine memory
// for the matrices, logits and patching scores within the documented distance of f32 storage on
// every Hugging Face-anchored reference checkpoint, planned sweeps equal to naive ones, on every backend.
import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { getActPatchDirectPath, getActPatchResidPre, HookedTransformer, logitDiff } from "../src/index.js";
import { allEngines, maxAbsDiff } from "./helpers.js";
import { golden, referenceDir, type GoldenInputs } from "./reference.js";

let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((a, b) => Math.max(a, Math.abs(b)), 0);

describe.each(["tiny-gpt2-random", "tiny-llama-random", "tiny-gpt_neox-random", "tiny-qwen2-random", "tiny-gemma2-random", "tiny-olmo-random"])("%s with bf16 weights", (name) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff(inputs);

  it("logits within 2% of the largest, activation and exact direct path scores within 5% (+0.01) of f32 storage; planned = naive", async () => {
    const f32 = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines.at(-1)! });
    const want = f32.forward(inputs.clean).logits!.data;
    const wantCache = { clean: f32.runWithCache(inputs.clean).cache, corrupted: f32.runWithCache(inputs.corrupted).cache };
    const wantResid = (await getActPatchResidPre(f32, inputs.corrupted, wantCache.clean, metric)).scores.data;
    const wantPath = (await getActPatchDirectPath(f32, inputs.corrupted, wantCache.clean, wantCache.corrupted, metric,
      { srcLayer: 0, srcHead: 1, component: "k", mode: "exact" })).scores.data;
    const f32Bytes = f32.engine.stats().bytesInUse;
    f32.dispose();
    for (const engine of engines) {
      const before = engine.stats().bytesInUse;
      const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, dtype: "bf16" });
      expect(model.devicePointers().dtype).toBe("bf16");
      if (engine === engines.at(-1)) expect(engine.stats().bytesInUse - before).toBeLessThan(0.75 * f32Bytes);
      const logits = model.forward(inputs.clean).logits!.data;
      expect(maxAbsDiff(logits, want), `${engine.variant} logits`).toBeLessThanOrEqual(0.02 * maxAbs(want));
      expect(maxAbsDiff(logits, want)).toBeGreaterThan(0); // the weights really are rounded
      const clean = model.runWithCache(inputs.clean).cache;
      const corrupted = model.runWithCache(inputs.corrupted).cache;
      const resid = (await getActPatchResidPre(model, inputs.corrupted, clean, metric)).scores.data;
      expect(maxAbsDiff(resid, wantResid), `${engine.variant} resid_pre`).toBeLessThanOrEqual(0.05 * maxAbs(wantResid) + 0.01);
      const paths = await Promise.all((["planned", "naive"] as const).map((strategy) =>
        getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 1, component: "k", mode: "exact", strategy })));
      expect(maxAbsDiff(paths[0]!.scores.data, wantPath), `${engine.variant} direct path`).toBeLessThanOrEqual(0.05 * maxAbs(wantPath) + 0.01);
      expect(maxAbsDiff(paths[0]!.scores.data, paths[1]!.scores.data)).toBeLessThanOrEqual(1e-4);
      model.dispose();
    }
  });
});

describe("dtype option", () => {
  it("refuses an unknown dtype by name", async () => {
    await expect(HookedTransformer.fromPretrained(referenceDir("tiny-gpt2-random"), { dtype: "f16" as never }))
      .rejects.toThrow(/dtype must be "f32" or "bf16", got "f16"/);
  });
});
