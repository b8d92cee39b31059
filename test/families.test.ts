// The family adapters and their registry: model_type dispatch and refusals (against every
// reference checkpoint's config.json), HF -> TL -> HF round trips bit for bit, exported models that
// load back to the PyTorch logits, and the config rules the forward relies on.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { readSafetensors, type LoadedTensor } from "../src/io/safetensors.js";
import { checkConfig, ConfigError, makeConfig, type HookedTransformerConfig } from "../src/model/config.js";
import {
  configFromHf, configFromHfGpt2, configFromHfLlama, familyFor, familyOf, FAMILIES, gemma2, gpt2, gptNeox, hfFiles, llama, type ModelFamily,
} from "../src/model/families/index.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { processWeights } from "../src/model/process-weights.js";
import { parameterShapes, type Weights } from "../src/model/weights.js";
import { maxAbsDiff, randn } from "./helpers.js";
import { golden, referenceDir, type GoldenInputs, type GoldenTensor } from "./reference.js";

/** A reference checkpoint's parsed config.json and its tensors as stored. */
function checkpoint(name: string): { json: Record<string, unknown>; tensors: Record<string, LoadedTensor> } {
  const dir = referenceDir(name);
  return {
    json: JSON.parse(readFileSync(`${dir}config.json`, "utf8")) as Record<string, unknown>,
    tensors: readSafetensors(new Uint8Array(readFileSync(`${dir}model.safetensors`)), "model.safetensors").tensors,
  };
}

/** Index of the first element whose float32 bits differ (NaN payloads and -0 count), or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.findIndex((v, i) => v !== y[i]);
}

/** Tensors keyed by name without GPT-2's save_pretrained prefix. */
function unprefixed<T>(tensors: Record<string, T>): Map<string, T> {
  return new Map(Object.entries(tensors).map(([k, t]) => [k.replace(/^transformer\./, ""), t]));
}

let engine: Engine;
beforeAll(async () => { engine = await Engine.create(); });

describe("gpt_neox config.json", () => {
  const json = () => ({ ...checkpoint("tiny-gpt_neox-random").json });
  it("reads Pythia's fields: partial rotary, parallel residual, exact gelu, untied embed_out", () => {
    const cfg = configFromHf(json());
    expect(cfg).toMatchObject({ rotaryDim: 4, parallelAttnMlp: true, actFn: "gelu", normalizationType: "LN", dHead: 16, rotaryBase: 10000 });
    expect(configFromHf({ ...json(), use_parallel_residual: false }).parallelAttnMlp).toBeUndefined();
    expect(configFromHf({ ...json(), rotary_pct: 1 }).rotaryDim).toBeUndefined();
  });
  it("refuses what it would compute differently, by field", () => {
    expect(() => configFromHf({ ...json(), rope_scaling: { type: "linear", factor: 2 } })).toThrow(/config\.json: rope_scaling: rope scaling for GPT-NeoX is not supported yet/);
    expect(() => configFromHf({ ...json(), tie_word_embeddings: true })).toThrow(/tie_word_embeddings: a tied GPT-NeoX embedding/);
    expect(() => configFromHf({ ...json(), rotary_pct: 0.1 })).toThrow(/rotary_pct: rotates int\(16 × 0\.1\) = 1 dimensions/);
    expect(() => configFromHf({ ...json(), hidden_act: "relu" })).toThrow(/hidden_act: activation "relu" is not supported yet/);
  });
});

describe("the registry dispatches model_type once, and refuses what no family reads", () => {
  it("sends each supported reference config to its family", () => {
    expect(familyOf(checkpoint("tiny-gpt2-random").json)).toBe(gpt2);
    expect(familyOf(checkpoint("tiny-gpt2-random-f16").json)).toBe(gpt2);
    expect(familyOf(checkpoint("tiny-llama-random").json)).toBe(llama);
    expect(familyOf({ ...checkpoint("tiny-mistral-random").json })).toBe(llama);
    expect(familyOf(checkpoint("tiny-qwen2-random").json)).toBe(llama);
    expect(familyOf(checkpoint("tiny-llama3-random").json)).toBe(llama);
    expect(familyOf(checkpoint("tiny-olmo-random").json)).toBe(llama);
    expect(familyOf(checkpoint("tiny-gpt_neox-random").json)).toBe(gptNeox);
    expect(familyOf(checkpoint("tiny-gemma2-random").json)).toBe(gemma2);
    // Early GPT-2 config.json files have no model_type.
    const { model_type: _, ...legacy } = checkpoint("tiny-gpt2-random").json;
    expect(familyOf(legacy)).toBe(gpt2);
    expect(FAMILIES.flatMap((f) => Object.keys(f.modelTypes))).toEqual(["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "olmo", "gemma2"]);
  });

  it("refuses a model_type no family reads, by name, in configFromHf and in fromPretrained", async () => {
    const json = { ...checkpoint("tiny-gemma2-random").json, model_type: "gemma3" };
    const why = /config\.json: model_type: "gemma3" is not supported \(supported: gpt2, gpt_neox, llama, mistral, qwen2, olmo, gemma2\)/;
    expect(() => configFromHf(json)).toThrow(ConfigError);
    expect(() => configFromHf(json)).toThrow(why);
    await expect(HookedTransformer.fromPretrained({ "config.json": new TextEncoder().encode(JSON.stringify(json)) }, { engine })).rejects.toThrow(why);
  });

  it("refuses a model_type that is not a string, and a config of the other family in each reader", () => {
    expect(() => familyOf({ model_type: 7 })).toThrow(/model_type: 7 is not supported \(supported: gpt2, gpt_neox, llama, mistral, qwen2, olmo, gemma2\)/);
    expect(() => familyOf({ model_type: "toString" })).toThrow(/"toString" is not supported/);
    expect(() => configFromHfLlama(checkpoint("tiny-gpt2-random").json)).toThrow(/model_type: expected "llama" or "mistral" or "qwen2" or "olmo" for the llama family, got "gpt2"/);
    expect(() => configFromHfGpt2(checkpoint("tiny-llama-random").json)).toThrow(/model_type: expected "gpt2" for the gpt2 family, got "llama"/);
    expect(() => configFromHfLlama(checkpoint("tiny-gpt_neox-random").json)).toThrow(/model_type: .* got "gpt_neox"/);
  });

  it("familyFor judges a config by its flags, processed or not, and says why none fits", () => {
    const llamaCfg = configFromHf(checkpoint("tiny-llama-random").json);
    expect(familyFor(llamaCfg)).toBe(llama);
    expect(familyFor({ ...llamaCfg, normalizationType: "RMSPre" })).toBe(llama);
    expect(familyFor(makeConfig({ nLayers: 1, dModel: 8, nHeads: 2, dVocab: 10, nCtx: 4 }))).toBe(gpt2);
    const rotaryLn = makeConfig({ nLayers: 1, dModel: 8, nHeads: 2, dVocab: 10, nCtx: 4, positionalEmbeddingType: "rotary" });
    expect(() => familyFor(rotaryLn)).toThrow(ConfigError);
    expect(() => familyFor(rotaryLn)).toThrow(/config: family: no supported family can hold this config \(gpt2: positionalEmbeddingType is "rotary".*; llama: normalizationType is "LN"/);
  });
});

/** HF tensors -> TL -> HF: the same names and the same bits; the exported config.json reads back to the same config. */
function expectRoundTrip(name: string, family: ModelFamily) {
  const { json, tensors } = checkpoint(name);
  const cfg = family.configFromHf(json);
  const { config, tensors: exported } = family.toHf(cfg, family.weightsFromHf(tensors, cfg));
  const before = unprefixed(tensors);
  const after = unprefixed(exported);
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [key, t] of before) {
    expect(after.get(key)!.shape, key).toEqual(t.shape);
    expect(firstBitDifference(after.get(key)!.data, t.data), key).toBe(-1);
  }
  expect(configFromHf(config)).toEqual(cfg);
  return { json, config };
}

describe("HF -> TransformerLens -> HF round trips bit for bit", () => {
  it("tiny-gpt2-random (tied, no prefix) and tiny-gpt2-random-f16 (prefixed, f16 values)", () => {
    const { config } = expectRoundTrip("tiny-gpt2-random", gpt2);
    expect(config).toMatchObject({ model_type: "gpt2", architectures: ["GPT2LMHeadModel"], tie_word_embeddings: true, n_inner: 256 });
    expectRoundTrip("tiny-gpt2-random-f16", gpt2);
  });

  it("tiny-llama-random (grouped-query attention, tied)", () => {
    const { json, config } = expectRoundTrip("tiny-llama-random", llama);
    for (const key of ["model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
      "attention_bias", "mlp_bias", "tie_word_embeddings", "vocab_size"]) {
      expect(config[key], key).toEqual(json[key]);
    }
  });

  it("an untied lm_head survives for both families, and a Mistral stays a Mistral with no window", () => {
    for (const [name, family, vocab, width] of [["tiny-gpt2-random", gpt2, 100, 64], ["tiny-llama-random", llama, 100, 64]] as const) {
      const { json, tensors } = checkpoint(name);
      const lmHead = { dtype: "F32", shape: [vocab, width], data: randn(vocab * width, 5, 0.3) } as const;
      const cfg = family.configFromHf(json);
      const out = family.toHf(cfg, family.weightsFromHf({ ...tensors, "lm_head.weight": lmHead }, cfg));
      expect(out.config["tie_word_embeddings"], name).toBe(false);
      expect(firstBitDifference(out.tensors["lm_head.weight"]!.data, lmHead.data), name).toBe(-1);
    }
    const { json, tensors } = checkpoint("tiny-llama-random");
    const mistralJson = { ...json, model_type: "mistral", architectures: ["MistralForCausalLM"], sliding_window: null };
    const cfg = configFromHf(mistralJson);
    const { config } = llama.toHf(cfg, llama.weightsFromHf(tensors, cfg));
    expect(config).toMatchObject({ model_type: "mistral", architectures: ["MistralForCausalLM"], sliding_window: null });
    expect(configFromHf(config)).toEqual(cfg);
  });
});

describe("a model exported and loaded again computes the same logits", () => {
  for (const name of ["tiny-gpt2-random", "tiny-llama-random"]) {
    it(`${name}: the same bits as before export, and PyTorch's logits unprocessed and processed`, async () => {
      const inputs = golden<GoldenInputs>(name, "inputs.json");
      const raw = await HookedTransformer.fromPretrained(referenceDir(name), { engine, processWeights: false });
      const files = hfFiles(raw.cfg, raw.weights);
      const again = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
      expect(again.cfg).toEqual(raw.cfg);
      const logits = again.forward(inputs.clean).logits!;
      expect(firstBitDifference(logits.data, raw.forward(inputs.clean).logits!.data)).toBe(-1);
      expect(maxAbsDiff(logits.data, golden<GoldenTensor>(name, "logits_clean.json").data)).toBeLessThan(1e-4);
      const processed = await HookedTransformer.fromPretrained(files, { engine });
      expect(maxAbsDiff(processed.forward(inputs.clean).logits!.data, golden<GoldenTensor>(name, "logits_clean_processed.json").data)).toBeLessThan(1e-4);
      for (const m of [raw, again, processed]) m.dispose();
    });
  }

  it("a hand-built LLaMA (untied, GQA, random RMSNorm weights, head_dim != dModel / nHeads)", async () => {
    const cfg = makeConfig({
      nLayers: 2, dModel: 24, nHeads: 4, nKeyValueHeads: 2, dHead: 8, dMlp: 40, dVocab: 29, nCtx: 16, eps: 1e-6,
      positionalEmbeddingType: "rotary", rotaryBase: 500, normalizationType: "RMS", gatedMlp: true, actFn: "silu",
      originalArchitecture: "LlamaForCausalLM",
    });
    let seed = 11;
    const weights: Weights = new Map();
    for (const [name, shape] of parameterShapes(cfg)) {
      const size = shape.reduce((a, b) => a * b, 1);
      const isBias = /\._?b_\w+$/.test(name);
      const data = isBias ? new Float32Array(size) : randn(size, seed++, name.endsWith(".w") ? 0.2 : 0.4);
      if (name.endsWith(".w")) for (let i = 0; i < size; i++) data[i]! += 1;
      weights.set(name, new Tensor(data, shape));
    }
    const tokens = [[3, 17, 8, 28, 0, 5, 5, 21], [9, 1, 14, 14, 2, 26, 7, 11]];
    const built = new HookedTransformer(cfg, weights, engine);
    const files = hfFiles(cfg, weights);
    expect(JSON.parse(new TextDecoder().decode(files["config.json"]!))).toMatchObject({ head_dim: 8, hidden_size: 24, tie_word_embeddings: false });
    const loaded = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
    expect(loaded.cfg).toEqual(cfg);
    expect(firstBitDifference(loaded.forward(tokens).logits!.data, built.forward(tokens).logits!.data)).toBe(-1);
    built.dispose();
    loaded.dispose();
  });
});

describe("importers name the tensor that is missing or misshapen", () => {
  it("GPT-2 (either name form) and LLaMA", () => {
    const g = checkpoint("tiny-gpt2-random");
    const gCfg = configFromHf(g.json);
    const { "h.1.mlp.c_fc.bias": _, ...withoutBias } = g.tensors;
    expect(() => gpt2.weightsFromHf(withoutBias, gCfg)).toThrow(/model\.safetensors: missing tensor h\.1\.mlp\.c_fc\.bias \(or transformer\.h\.1\.mlp\.c_fc\.bias\)/);
    const badHead = { ...g.tensors, "lm_head.weight": { dtype: "F32", shape: [64, 100], data: new Float32Array(6400) } } as const;
    expect(() => gpt2.weightsFromHf(badHead, gCfg)).toThrow(/lm_head\.weight has shape \[64, 100\] but config\.json implies \[100, 64\]/);
    const l = checkpoint("tiny-llama-random");
    const lCfg = configFromHf(l.json);
    const narrowKv = { ...l.tensors, "model.layers.2.self_attn.k_proj.weight": { dtype: "F32", shape: [64, 64], data: new Float32Array(4096) } } as const;
    expect(() => llama.weightsFromHf(narrowKv, lCfg, "shard-2.safetensors"))
      .toThrow(/shard-2\.safetensors: model\.layers\.2\.self_attn\.k_proj\.weight has shape \[64, 64\] but config\.json implies \[32, 64\]/);
  });
});

describe("exporters refuse what their checkpoints cannot hold", () => {
  const load = (name: string) => {
    const { json, tensors } = checkpoint(name);
    const cfg = configFromHf(json);
    return { cfg, weights: familyOf(json).weightsFromHf(tensors, cfg) };
  };
  const withChanged = (weights: Weights, name: string) => {
    const out = new Map(weights);
    const t = weights.get(name)!.clone();
    t.data[0] = 0.5;
    out.set(name, t);
    return out;
  };

  it("processed weights, by normalizationType", () => {
    for (const name of ["tiny-gpt2-random", "tiny-llama-random"]) {
      const { cfg, weights } = load(name);
      const processed = processWeights(cfg, weights);
      expect(() => hfFiles(processed.cfg, processed.weights), name).toThrow(/cfg\.normalizationType must be "(LN|RMS)" \(unprocessed weights\), got "(LNPre|RMSPre)"/);
    }
  });

  it("a bias with no tensor in the family's checkpoints, by parameter name", () => {
    const g = load("tiny-gpt2-random");
    expect(() => hfFiles(g.cfg, withChanged(g.weights, "unembed.b_U"))).toThrow(/gpt2 export: unembed\.b_U must be all zeros/);
    const l = load("tiny-llama-random");
    for (const bias of ["blocks.2.mlp.b_out", "unembed.b_U"]) {
      expect(() => hfFiles(l.cfg, withChanged(l.weights, bias))).toThrow(new RegExp(`llama export: ${bias.replace(/\./g, "\\.")} must be all zeros`));
    }
  });

  it("attention biases: LLaMA writes all four (attention_bias), Qwen2 its q/k/v and no o_proj, Mistral none", async () => {
    const l = load("tiny-llama-random");
    const biased = withChanged(l.weights, "blocks.1.attn._b_V");
    const files = hfFiles(l.cfg, biased);
    expect(JSON.parse(new TextDecoder().decode(files["config.json"])).attention_bias).toBe(true);
    const again = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
    expect(again.weights.get("blocks.1.attn._b_V")!.data).toEqual(biased.get("blocks.1.attn._b_V")!.data);
    again.dispose();
    const q = load("tiny-qwen2-random");
    expect(() => hfFiles(q.cfg, withChanged(q.weights, "blocks.0.attn.b_O"))).toThrow(/blocks\.0\.attn\.b_O: a Qwen2ForCausalLM checkpoint has no o_proj bias/);
    const mistral = { ...l.cfg, originalArchitecture: "MistralForCausalLM" };
    expect(() => hfFiles(mistral, withChanged(l.weights, "blocks.0.attn.b_Q"))).toThrow(/MistralForCausalLM checkpoint has no attention biases/);
  });

  it("weights that do not match the config, and a config of another family", () => {
    const l = load("tiny-llama-random");
    const missing = new Map(l.weights);
    missing.delete("blocks.1.mlp.W_gate");
    expect(() => llama.toHf(l.cfg, missing)).toThrow(/missing parameter blocks\.1\.mlp\.W_gate/);
    expect(() => gpt2.toHf(l.cfg, l.weights)).toThrow(/gpt2 export: positionalEmbeddingType is "rotary"/);
  });
});

describe("the config rules the forward relies on", () => {
  const base = { nLayers: 1, dModel: 16, nHeads: 4, dVocab: 10, nCtx: 8 };

  it("makeConfig refuses impossible combinations with a ConfigError naming the field", () => {
    const refused: [Partial<HookedTransformerConfig>, RegExp][] = [
      [{ gatedMlp: true, actFn: "gelu" }, /config: actFn: a gated MLP needs "silu" \(SwiGLU\) or "gelu_new" \(GeGLU\), got "gelu"/],
      [{ attnSoftcap: -1 }, /config: attnSoftcap: expected a finite number > 0, got -1/],
      [{ attnTypes: ["local", "global"] }, /config: attnTypes: expected one "global" or "local" per layer \(1\)/],
      [{ attnTypes: ["local"] }, /config: attnTypes: "local" layers need slidingWindow/],
      [{ postNorms: true }, /config: postNorms: post-norms are RMSNorms/],
      [{ positionalEmbeddingType: "rotary", dHead: 3 }, /config: dHead: rotary embeddings rotate pairs of dimensions, so dHead must be even, got 3/],
      [{ positionalEmbeddingType: "rotary", rotaryBase: 1 }, /config: rotaryBase: expected a finite number > 1, got 1/],
      [{ nKeyValueHeads: 3 }, /config: nKeyValueHeads: must divide nHeads \(4\), got 3/],
      [{ actFn: "relu" as never }, /config: actFn: expected one of "gelu_new", "gelu", "silu", got "relu"/],
      [{ normalizationType: "layer" as never }, /config: normalizationType: expected one of "LN", "LNPre", "RMS", "RMSPre", got "layer"/],
      [{ positionalEmbeddingType: "alibi" as never }, /positionalEmbeddingType: expected one of "standard", "rotary", got "alibi"/],
      [{ eps: 0 }, /config: eps: expected a finite number > 0, got 0/],
      [{ attnScale: Number.NaN }, /config: attnScale: expected a finite number > 0, got NaN/],
      [{ dMlp: 0 }, /config: dMlp: expected a positive integer/],
    ];
    for (const [partial, why] of refused) {
      expect(() => makeConfig({ ...base, ...partial }), JSON.stringify(partial)).toThrow(ConfigError);
      expect(() => makeConfig({ ...base, ...partial }), JSON.stringify(partial)).toThrow(why);
    }
    expect(makeConfig({ ...base, gatedMlp: true, actFn: "silu", positionalEmbeddingType: "rotary" })).toMatchObject({ dHead: 4, dMlp: 64 });
  });

  it("every adapter's config passes checkConfig, and HookedTransformer refuses an impossible one before any forward", () => {
    for (const name of ["tiny-gpt2-random", "tiny-llama-random"]) {
      const cfg = configFromHf(checkpoint(name).json);
      expect(checkConfig(cfg)).toBe(cfg);
    }
    const { json, tensors } = checkpoint("tiny-llama-random");
    const cfg = configFromHf(json);
    const weights = llama.weightsFromHf(tensors, cfg);
    expect(() => new HookedTransformer({ ...cfg, actFn: "gelu" }, weights, engine)).toThrow(/actFn: a gated MLP needs "silu"/);
  });
});
