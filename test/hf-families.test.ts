// The Hugging Face-anchored families of ../shared/reference (tiny-<arch>-random, goldens computed by
// transformers' own modeling classes) through the real loader: logits and the residual stream
// entering every layer (unprocessed), processed logits (centred over the vocabulary), activation
// patching and exact direct path patching from head 0.1, on every backend; and the export back to a
// Hugging Face checkpoint that loads to the same model.
import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import {
  getActPatchAttnHeadOutAllPos, getActPatchDirectPath, getActPatchResidPre, HookedTransformer, logitDiff,
} from "../src/index.js";
import { hfFiles } from "../src/model/families/index.js";
import { allEngines, maxAbsDiff } from "./helpers.js";
import { expectGoldenScores, golden, referenceDir, type GoldenInputs, type GoldenScores, type GoldenTensor } from "./reference.js";

interface GoldenHidden { shape: number[]; data: number[]; final_residual: { shape: number[]; data: number[] } }

let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

const within = (got: ArrayLike<number>, want: readonly number[], label: string) => {
  const tol = 1e-4 + 1e-5 * Math.max(...want.map(Math.abs));
  expect(maxAbsDiff(got, want), label).toBeLessThanOrEqual(tol);
};

describe.each([
  ["tiny-gpt_neox-random", "GPTNeoXForCausalLM"],
  ["tiny-gemma2-random", "Gemma2ForCausalLM"],
  ["tiny-qwen2-random", "Qwen2ForCausalLM"],
  ["tiny-llama3-random", "LlamaForCausalLM"],
  ["tiny-olmo-random", "OlmoForCausalLM"],
  ["tiny-mistral-random", "MistralForCausalLM"],
])("%s against Hugging Face", (name, architecture) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff(inputs);

  it("unprocessed logits and every layer's residual stream; processed logits centred over the vocabulary; on every backend", async () => {
    const logits = golden<GoldenTensor>(name, "logits_clean.json");
    const hidden = golden<GoldenHidden>(name, "hidden_states_clean.json");
    const [L, B, P, D] = hidden.shape as [number, number, number, number];
    for (const engine of engines) {
      const raw = await HookedTransformer.fromPretrained(referenceDir(name), { engine, processWeights: false });
      expect(raw.cfg.originalArchitecture).toBe(architecture);
      const names = [...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${L - 1}.hook_resid_post`];
      const { logits: got, cache } = raw.runWithCache(inputs.clean, { namesFilter: names });
      within(got!.data, logits.data, `${engine.variant} logits`);
      for (let l = 0; l < L; l++) within(cache.get(names[l]!).data, hidden.data.slice(l * B * P * D, (l + 1) * B * P * D), `${engine.variant} resid_pre ${l}`);
      within(cache.get(names[L]!).data, hidden.final_residual.data, `${engine.variant} final residual`);
      raw.dispose();

      const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
      const V = logits.shape[2]!;
      // Soft-capped logits are not centred (processing skips center_unembed for them).
      const centred = model.cfg.finalSoftcap !== undefined ? logits.data : logits.data.map((x, i) => {
        const row = Math.floor(i / V) * V;
        let mean = 0;
        for (let j = 0; j < V; j++) mean += logits.data[row + j]!;
        return x - mean / V;
      });
      within(model.forward(inputs.clean).logits!.data, centred, `${engine.variant} processed logits`);
      model.dispose();
    }
  });

  it("activation patching and exact direct path patching from head 0.1 match the goldens; the baselines too", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines.at(-1)! });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const baselines = golden<{ clean: number; corrupted: number }>(name, "baselines.json");
    const resid = await getActPatchResidPre(model, inputs.corrupted, clean, metric);
    expect(resid.clean).toBeCloseTo(baselines.clean, 4);
    expect(resid.baseline).toBeCloseTo(baselines.corrupted, 4);
    expectGoldenScores(resid.scores.data, golden<GoldenScores>(name, "act_patch_resid_pre.json"), `${name} resid_pre`);
    const heads = await getActPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric);
    expectGoldenScores(heads.scores.data, golden<GoldenScores>(name, "act_patch_attn_head_out_all_pos.json"), `${name} head outputs`);
    for (const component of ["q", "k", "v"] as const) {
      const want = golden<GoldenScores>(name, `direct_path_src0.1_${component}_exact.json`);
      for (const strategy of ["planned", "naive"] as const) {
        const got = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 1, component, mode: "exact", strategy });
        expect(got.scores.shape).toEqual(want.shape);
        expectGoldenScores(got.scores.data, want, `${name} direct path ${component} ${strategy}`);
      }
    }
    model.dispose();
  });

  it("two kernel threads give the same bits as one", async () => {
    const { Engine } = await import("../src/engine/engine.js");
    const [one, two] = [await Engine.create({ variant: "simd" }), await Engine.create({ variant: "simd", threads: 2 })];
    const logits = await Promise.all([one, two].map(async (engine) => {
      const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
      const out = model.forward(inputs.clean).logits!.data;
      model.dispose();
      return out;
    }));
    expect(logits[1]).toEqual(logits[0]);
    one.dispose();
    two.dispose();
  });

  it("exports to a Hugging Face checkpoint of its own architecture that loads to the same logits", async () => {
    const engine = engines.at(-1)!;
    const raw = await HookedTransformer.fromPretrained(referenceDir(name), { engine, processWeights: false });
    const files = hfFiles(raw.cfg, raw.weights);
    const config = JSON.parse(new TextDecoder().decode(files["config.json"]));
    expect(config.architectures).toEqual([architecture]);
    const again = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
    expect(again.forward(inputs.clean).logits!.data).toEqual(raw.forward(inputs.clean).logits!.data);
    raw.dispose();
    again.dispose();
  });
});

describe("tiny-gemma2-random: post-norm hooks and processing", () => {
  it("lists the post-norms' hook points; processing leaves soft-capped logits uncentred and refuses to centre them", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir("tiny-gemma2-random"), { engine: engines.at(-1)! });
    expect(model.hookNames()).toContain("blocks.1.ln1_post.hook_normalized");
    expect(model.hookNames()).toContain("blocks.1.ln2_post.hook_scale");
    expect(model.cfg.processing.centerUnembed).toBe(false);
    await expect(HookedTransformer.fromPretrained(referenceDir("tiny-gemma2-random"), { centerUnembed: true }))
      .rejects.toThrow(/centerUnembed would change this model's soft-capped logits/);
    model.dispose();
  });
});
