// Loading refuses, from config.json alone, a model whose f32 weights cannot fit the 4 GiB of a
// WASM32 instance, naming the size it needs and what 16-bit storage would take.
import { describe, expect, it } from "vitest";
import { HookedTransformer, makeConfig } from "../src/index.js";
import { configFromHf } from "../src/model/families/index.js";
import { checkWeightsFitMemory, weightMemoryBytes } from "../src/model/memory-fit.js";

const GiB = 2 ** 30;
const encode = (json: object) => new TextEncoder().encode(JSON.stringify(json));

/** Llama-3.2-1B's config.json (its published sizes). */
const LLAMA_32_1B = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
  num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072, vocab_size: 128256,
  rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true, hidden_act: "silu",
  rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
};

describe("weights that cannot fit the WASM memory", () => {
  it("estimates the load's engine memory: the Qwen2.5-0.5B shape near the 2.88 GiB bench/llama.js measured", () => {
    const qwen = makeConfig({ nLayers: 24, dModel: 896, nHeads: 14, nKeyValueHeads: 2, dMlp: 4864, dVocab: 151936, nCtx: 32768,
      gatedMlp: true, actFn: "silu", normalizationType: "RMS", positionalEmbeddingType: "rotary" });
    const bytes = weightMemoryBytes(qwen);
    expect(bytes / GiB).toBeGreaterThan(2.7);
    expect(bytes / GiB).toBeLessThan(3.0);
    expect(() => checkWeightsFitMemory(qwen, "qwen")).not.toThrow();
  });

  it("fromPretrained refuses TinyLlama-1.1B as f32 before reading its safetensors, saying bf16 fits; Llama-3.2-1B too", async () => {
    const tiny = { ...LLAMA_32_1B, intermediate_size: 5632, num_hidden_layers: 22, num_key_value_heads: 4, vocab_size: 32000, rope_scaling: null };
    expect(weightMemoryBytes(configFromHf(tiny)) / GiB).toBeGreaterThan(4);
    expect(weightMemoryBytes(configFromHf(tiny), "bf16") / GiB).toBeLessThan(3);
    // No model.safetensors at all: the refusal comes first, from config.json.
    const load = HookedTransformer.fromPretrained({ "config.json": encode(tiny) });
    await expect(load).rejects.toThrow(RangeError);
    await expect(HookedTransformer.fromPretrained({ "config.json": encode(tiny) }))
      .rejects.toThrow(/its weights need about 4\.\d GiB of WASM memory as f32, more than the 4 GiB .*stored in 16 bits \(dtype: "f16" or "bf16", --dtype f16\) they would take about 2\.\d GiB, which fits/);
    // As bf16 it passes the check (and fails only for the missing safetensors).
    await expect(HookedTransformer.fromPretrained({ "config.json": encode(tiny) }, { dtype: "bf16" })).rejects.toThrow(/safetensors/);
    // Llama-3.2-1B: refused as f32, fits as bf16 (matrices converted a column block at a time).
    const cfg = configFromHf(LLAMA_32_1B);
    expect(() => checkWeightsFitMemory(cfg, "llama")).toThrow(/llama: its weights need about 6\.\d GiB of WASM memory as f32.*about 3\.\d GiB, which fits/);
    expect(weightMemoryBytes(cfg, "bf16") / GiB).toBeLessThan(3.6);
    expect(() => checkWeightsFitMemory(cfg, "llama", "bf16")).not.toThrow();
    // Folder sources are named in the message.
    await expect(HookedTransformer.fromPretrained("/nonexistent/Llama-3.2-1B")).rejects.toThrow(/config\.json/);
  });

  it("a shape too large even in 16 bits says so", () => {
    const huge = configFromHf({ ...LLAMA_32_1B, num_hidden_layers: 64, hidden_size: 4096, intermediate_size: 14336, head_dim: 128 });
    expect(() => checkWeightsFitMemory(huge, "big")).toThrow(/big: .*still too much/);
  });
});

describe("Gemma-2-2B's shape", () => {
  it("is refused from its config.json, too large even in 16 bits", () => {
    const json = {
      architectures: ["Gemma2ForCausalLM"], model_type: "gemma2", hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26,
      num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 8192, vocab_size: 256000,
      rms_norm_eps: 1e-6, rope_theta: 10000, query_pre_attn_scalar: 256, attn_logit_softcapping: 50, final_logit_softcapping: 30,
      sliding_window: 4096, hidden_activation: "gelu_pytorch_tanh", tie_word_embeddings: true,
    };
    const cfg = configFromHf(json);
    expect(weightMemoryBytes(cfg) / GiB).toBeGreaterThan(11);
    expect(() => checkWeightsFitMemory(cfg, "gemma-2-2b")).toThrow(/gemma-2-2b: its weights need about 1\d\.\d GiB .*stored in 16 bits \(f16 or bf16\) they would take about \d+\.\d GiB, still too much/);
  });
});
