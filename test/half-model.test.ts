// Models whose weight matrices the engine stores in 16 bits (dtype "bf16" or "f16"): half the
// engine memory for the matrices, logits and patching scores within the documented distance of f32
// storage on every Hugging Face-anchored reference checkpoint, planned sweeps equal to naive ones,
// on every backend. f16 (10 mantissa bits) must also be closer to f32 than bf16 (7) is.
import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { getActPatchDirectPath, getActPatchResidPre, HookedTransformer, logitDiff, type Tensor } from "../src/index.js";
import { allEngines, maxAbsDiff } from "./helpers.js";
import { golden, referenceDir, type GoldenInputs } from "./reference.js";

let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((a, b) => Math.max(a, Math.abs(b)), 0);

const FAMILIES = ["tiny-gpt2-random", "tiny-llama-random", "tiny-gpt_neox-random", "tiny-qwen2-random", "tiny-gemma2-random", "tiny-olmo-random"];
/** The largest logit error of each 16-bit storage, by checkpoint: f16's must come out below bf16's. */
const logitError: Record<string, Partial<Record<"bf16" | "f16", number>>> = {};

describe.each(FAMILIES.flatMap((name) => (["bf16", "f16"] as const).map((dtype) => [name, dtype] as const)))("%s with %s weights", (name, dtype) => {
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
      const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, dtype });
      expect(model.devicePointers().dtype).toBe(dtype);
      if (engine === engines.at(-1)) expect(engine.stats().bytesInUse - before).toBeLessThan(0.75 * f32Bytes);
      const logits = model.forward(inputs.clean).logits!.data;
      expect(maxAbsDiff(logits, want), `${engine.variant} logits`).toBeLessThanOrEqual(0.02 * maxAbs(want));
      expect(maxAbsDiff(logits, want)).toBeGreaterThan(0); // the weights really are rounded
      if (engine === engines.at(-1)) (logitError[name] ??= {})[dtype] = maxAbsDiff(logits, want);
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

describe("f16 against bf16", () => {
  it("f16's logits are closer to f32's than bf16's on every checkpoint (3 more mantissa bits)", () => {
    for (const name of FAMILIES) {
      const e = logitError[name]!;
      expect(e.f16, name).toBeLessThan(e.bf16!);
    }
  });
});

describe("dtype option", () => {
  it("refuses an unknown dtype by name", async () => {
    await expect(HookedTransformer.fromPretrained(referenceDir("tiny-gpt2-random"), { dtype: "fp8" as never }))
      .rejects.toThrow(/dtype must be "f32", "bf16" or "f16", got "fp8"/);
  });

  it("refuses f16 for a weight beyond f16's range, naming it and pointing to bf16", async () => {
    const { roundedWeights } = await import("../src/model/device-weights.js");
    const { Tensor } = await import("../src/index.js");
    const weights = new Map([["blocks.0.attn.W_Q", new Tensor(new Float32Array([1, -70000, 3, 4]), [1, 2, 2])], ["blocks.0.ln1.w", new Tensor(new Float32Array([1e9]), [1])]]);
    expect(() => roundedWeights(weights, "f16")).toThrow(/blocks\.0\.attn\.W_Q\[1\] = -70000 is beyond f16's range \(±65504\).*use dtype "bf16"/);
    const ok = roundedWeights(new Map([["blocks.0.attn.W_Q", new Tensor(new Float32Array([65519, 0.1]), [2])]]), "f16");
    expect(Array.from(ok.get("blocks.0.attn.W_Q")!.data)).toEqual([65504, Math.fround(0.0999755859375)]);
    expect(roundedWeights(weights, "bf16").get("blocks.0.ln1.w")).toBe(weights.get("blocks.0.ln1.w")); // norms and vectors are not rounded, nor copied
    // Rounding what is already rounded copies nothing (fromPretrained rounds before the constructor does).
    for (const dtype of ["bf16", "f16"] as const) {
      const once = roundedWeights(new Map([["blocks.0.mlp.W_in", new Tensor(new Float32Array([0.1, -2.7, 3e-6, 1]), [2, 2])]]), dtype);
      const twice = roundedWeights(once, dtype);
      expect(twice.get("blocks.0.mlp.W_in")).toBe(once.get("blocks.0.mlp.W_in"));
      // A map of another origin whose values are already rounded (a 16-bit checkpoint) shares its tensors too.
      expect(roundedWeights(new Map(once), dtype).get("blocks.0.mlp.W_in")).toBe(once.get("blocks.0.mlp.W_in"));
    }
  });
});

describe("gradients of 16-bit models", () => {
  it.each(["bf16", "f16"] as const)("%s: the backward reads 16-bit transposes and gives an f32 model of the rounded weights' gradients, bit for bit; a dense metric packs W_Uᵀ in 16 bits too", async (dtype) => {
    const engine = engines.find((e) => e.backend === "wasm")!;
    const name = "tiny-llama-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff(inputs);
    const half = await HookedTransformer.fromPretrained(referenceDir(name), { engine, dtype });
    // The host copy of a 16-bit model holds the rounded matrices: an f32 model of them computes the same function.
    const f32 = await HookedTransformer.create(half.cfg, half.weights, { engine });
    const grads = (m: HookedTransformer) => {
      const before = engine.stats().bytesInUse;
      const { cache, metric: value } = m.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: (n) => n.endsWith("_grad") });
      return { cache, value, transposedBytes: engine.stats().bytesInUse - before };
    };
    const want = grads(f32);
    const got = grads(half);
    expect(got.value).toBe(want.value);
    expect(got.cache.keys()).toEqual(want.cache.keys());
    for (const key of got.cache.keys()) expect(Array.from(got.cache.get(key).data), key).toEqual(Array.from(want.cache.get(key).data));
    // The first backward packed the transposed block matrices: half the bytes of f32's.
    expect(got.transposedBytes).toBeGreaterThan(0);
    expect(got.transposedBytes).toBeLessThan(0.6 * want.transposedBytes);
    // A metric over every logit reads W_Uᵀ: packed in 16 bits, and still the f32 model's gradient.
    // The same metric without its declared tokens: the backward then reads every logit.
    const dense = Object.assign((logits: Tensor) => metric(logits), { positions: metric.positions, grad: (logits: Tensor) => metric.grad!(logits) });
    const denseGrad = (m: HookedTransformer) => m.runWithCache(inputs.clean, { inclBwd: true, metric: dense, namesFilter: ["blocks.0.hook_resid_pre_grad"] }).cache.get("blocks.0.hook_resid_pre_grad");
    expect(Array.from(denseGrad(half).data)).toEqual(Array.from(denseGrad(f32).data));
    half.dispose();
    f32.dispose();
  });
});
