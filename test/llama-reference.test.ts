// The LLaMA-family path (RMSNorm, rotary, SwiGLU, grouped-query attention) against the PyTorch
// goldens of ../shared/reference/tiny-llama-random, through the real loader.
import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources, HookedTransformer, logitDiff, type ActivationCache } from "../src/index.js";
import { ModelFormatError } from "../src/io/errors.js";
import { configFromHfLlama, convertLlamaWeights } from "../src/index.js";
import * as patching from "../src/index.js";
import { allEngines, maxAbsDiff } from "./helpers.js";
import { expectGoldenScores, golden, referenceDir, type GoldenInputs, type GoldenScores, type GoldenTensor } from "./reference.js";

const NAME = "tiny-llama-random";
const inputs = golden<GoldenInputs>(NAME, "inputs.json");
const metric = logitDiff(inputs);


let engines: Engine[];
beforeAll(async () => { engines = await allEngines(); });

describe("tiny-llama-random against PyTorch", () => {
  it("unprocessed and processed logits match within 1e-4 on every backend; the cache matches", async () => {
    for (const engine of engines) {
      const raw = await HookedTransformer.fromPretrained(referenceDir(NAME), { engine, processWeights: false });
      expect(raw.cfg).toMatchObject({ nHeads: 4, nKeyValueHeads: 2, positionalEmbeddingType: "rotary", gatedMlp: true, normalizationType: "RMS" });
      const want = golden<GoldenTensor>(NAME, "logits_clean.json");
      expect(maxAbsDiff(raw.forward(inputs.clean).logits!.data, want.data), engine.variant).toBeLessThan(1e-4);
      raw.dispose();

      const model = await HookedTransformer.fromPretrained(referenceDir(NAME), { engine });
      expect(model.cfg.normalizationType).toBe("RMSPre");
      expect(model.cfg.processing).toEqual({ foldLn: true, centerWritingWeights: false, centerUnembed: true, foldValueBiases: true });
      for (const [run, tokens] of [["clean", inputs.clean], ["corrupted", inputs.corrupted]] as const) {
        const { logits, cache } = model.runWithCache(tokens);
        if (run === "clean") {
          const wantP = golden<GoldenTensor>(NAME, "logits_clean_processed.json");
          expect(maxAbsDiff(logits!.data, wantP.data), engine.variant).toBeLessThan(1e-4);
        }
        const tensors = golden<{ tensors: Record<string, GoldenTensor> }>(NAME, `cache_${run}_processed.json`).tensors;
        for (const [hook, t] of Object.entries(tensors)) {
          expect(cache.get(hook).shape, hook).toEqual(t.shape);
          expect(maxAbsDiff(cache.get(hook).data, t.data), `${engine.variant} ${run} ${hook}`).toBeLessThan(1e-4);
        }
      }
      model.dispose();
    }
  });

  it("has TransformerLens's GQA hooks and weights", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(NAME), { engine: engines[1]! });
    const names = model.hookNames();
    expect(names).toContain("blocks.0.attn.hook_rot_q");
    expect(names).toContain("blocks.2.mlp.hook_pre_linear");
    expect(names).not.toContain("hook_pos_embed");
    expect(model.weights.get("blocks.0.attn._W_K")!.shape).toEqual([2, 64, 16]);
    expect(model.weights.get("blocks.0.attn.W_Q")!.shape).toEqual([4, 64, 16]);
    expect(model.weights.get("blocks.0.mlp.W_gate")!.shape).toEqual([64, 128]);
    const { cache } = model.runWithCache(inputs.clean, { namesFilter: ["blocks.0.attn.hook_v", "blocks.0.attn.hook_rot_k", "blocks.0.mlp.hook_pre_linear"] });
    expect(cache.get("v", 0).shape).toEqual([2, 8, 2, 16]);
    expect(cache.get("rot_k", 0).shape).toEqual([2, 8, 2, 16]);
    expect(cache.get("pre_linear", 0).shape).toEqual([2, 8, 128]);
    model.dispose();
  });
});

describe("GQA direct path patching on tiny-llama-random against PyTorch", () => {
  let model: HookedTransformer;
  let clean: ActivationCache;
  let corrupted: ActivationCache;
  beforeAll(async () => {
    model = await HookedTransformer.fromPretrained(referenceDir(NAME), { engine: engines[1]! });
    clean = model.runWithCache(inputs.clean).cache;
    corrupted = model.runWithCache(inputs.corrupted).cache;
  });

  for (const component of ["q", "k", "v"] as const) {
    for (const mode of ["linear", "exact"] as const) {
      it(`source (0, 1), ${component}, ${mode}: planned and naive`, async () => {
        const want = golden<GoldenScores>(NAME, `direct_path_src0.1_${component}_${mode}.json`);
        const scores: Float32Array[] = [];
        for (const strategy of ["planned", "naive"] as const) {
          const r = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 1, component, mode, strategy });
          expect(r.scores.shape).toEqual(want.shape);
          expectGoldenScores(r.scores.data, want, `${component} ${mode} ${strategy}`);
          expect(r.baseline).toBeCloseTo(want.corrupted_baseline, 4);
          expect(r.clean).toBeCloseTo(want.clean_baseline, 4);
          scores.push(r.scores.data);
        }
        // The planned sweep recomputes only the destination head's attention (rotating the
        // patched q or k itself); the naive loop runs whole forwards.
        expect(maxAbsDiff(scores[0]!, scores[1]!), `${component} ${mode}`).toBeLessThanOrEqual(1e-5);
      });
    }
  }

  for (const component of ["q", "k"] as const) {
    it(`all sources, ${component}, linear`, async () => {
      const want = golden<GoldenScores>(NAME, `direct_path_all_${component}_linear.json`);
      const r = await getActPatchDirectPathAllSources(model, inputs.corrupted, clean, corrupted, metric, { component });
      expect(r.scores.shape).toEqual(want.shape);
      expectGoldenScores(r.scores.data, want, `all ${component}`);
    });
  }

  it("unprocessed weights give the same direct path numbers (the RMSNorm weight is part of the path)", async () => {
    const raw = await HookedTransformer.fromPretrained(referenceDir(NAME), { engine: engines[1]!, processWeights: false });
    const c = raw.runWithCache(inputs.clean).cache;
    const r = raw.runWithCache(inputs.corrupted).cache;
    for (const mode of ["linear", "exact"] as const) {
      const want = golden<GoldenScores>(NAME, `direct_path_src0.1_v_${mode}.json`);
      const got = await getActPatchDirectPath(raw, inputs.corrupted, c, r, metric, { srcLayer: 0, srcHead: 1, component: "v", mode });
      expectGoldenScores(got.scores.data, want, `unprocessed v ${mode}`);
    }
    raw.dispose();
  });

  const cases = [
    ["act_patch_resid_pre.json", patching.getActPatchResidPre],
    ["act_patch_attn_head_out_all_pos.json", patching.getActPatchAttnHeadOutAllPos],
    ["act_patch_attn_head_out_by_pos.json", patching.getActPatchAttnHeadOutByPos],
  ] as const;
  for (const [file, fn] of cases) {
    it(`${file} matches PyTorch`, async () => {
      const want = golden<GoldenScores>(NAME, file);
      const r = await fn(model, inputs.corrupted, clean, metric);
      expect(r.scores.shape).toEqual(want.shape);
      expectGoldenScores(r.scores.data, want, file);
    });
  }

  it("k and v activation patching index key/value heads; the every-functions say why they refuse", async () => {
    const k = await patching.getActPatchAttnHeadKAllPos(model, inputs.corrupted, clean, metric);
    expect(k.scores.shape).toEqual([3, 2]);
    const naive = await patching.getActPatchAttnHeadVByPos(model, inputs.corrupted, clean, metric, { strategy: "naive" });
    const planned = await patching.getActPatchAttnHeadVByPos(model, inputs.corrupted, clean, metric);
    expect(planned.scores.shape).toEqual([3, 8, 2]);
    expect(maxAbsDiff(planned.scores.data, naive.scores.data)).toBeLessThanOrEqual(1e-5);
    await expect(patching.getActPatchAttnHeadAllPosEvery(model, inputs.corrupted, clean, metric)).rejects.toThrow(/patch k and v with their own functions/);
  });
});

describe("LLaMA config checks", () => {
  const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, vocab_size: 100 };
  it("refuses what it would compute differently, by name", () => {
    expect(() => configFromHfLlama({ ...base, mlp_bias: true })).toThrow(/mlp_bias/);
    expect(() => configFromHfLlama({ ...base, rope_scaling: { type: "linear", factor: 2 } }))
      .toThrow(/rope_scaling: rope scaling of rope_type "linear" \(llama3 is supported\) is not supported yet/);
    const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 48 };
    expect(() => configFromHfLlama({ ...base, rope_scaling: { ...llama3, factor: -1 } })).toThrow(/rope_scaling: factor must be a number > 0, got -1/);
    expect(() => configFromHfLlama({ ...base, rope_scaling: { ...llama3, high_freq_factor: 1 } })).toThrow(/high_freq_factor \(1\) must exceed low_freq_factor \(1\)/);
    expect(() => configFromHfLlama({ ...base, sliding_window: 4096 })).toThrow(/sliding_window/);
    expect(() => configFromHfLlama({ ...base, hidden_act: "gelu" })).toThrow(/hidden_act/);
    expect(() => configFromHfLlama({ ...base, num_key_value_heads: 3 })).toThrow(/does not divide num_attention_heads/);
    expect(configFromHfLlama(base)).toMatchObject({ dHead: 16, eps: 1e-6, rotaryBase: 10000 });
  });

  it("refuses MLP biases in the checkpoint with a typed error naming the tensor", () => {
    const cfg = configFromHfLlama(base);
    const raw = { "model.layers.0.mlp.gate_proj.bias": { shape: [128], data: new Float32Array(128) } };
    expect(() => convertLlamaWeights(raw, cfg)).toThrow(ModelFormatError);
    expect(() => convertLlamaWeights(raw, cfg)).toThrow(/gate_proj\.bias: MLP biases are not supported yet/);
  });

  it("Llama 3's rope scaling: the reference's frequencies for d = 16, θ = 500000, factor 8, N = 48", async () => {
    const { rotaryDivisors } = await import("../src/model/rotary-tables.js");
    const cfg = configFromHfLlama({ ...base, rope_theta: 500000,
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 48 } });
    const plain = rotaryDivisors({ ...cfg, rotaryScaling: undefined });
    const scaled = rotaryDivisors(cfg);
    expect(scaled[0]).toBe(plain[0]); // wavelength 6.3 < 12: kept
    const s = (48 / (2 * Math.PI * plain[1]!) - 1) / 3; // wavelength 32.4: interpolated
    expect(s).toBeCloseTo(0.16, 2);
    expect(1 / scaled[1]!).toBeCloseTo((1 - s) / (8 * plain[1]!) + s / plain[1]!, 15);
    for (let i = 2; i < 8; i++) expect(scaled[i]).toBe(plain[i]! * 8); // wavelength > 48: divided by the factor
  });
});
