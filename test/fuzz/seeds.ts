// Valid inputs the mutators start from: small safetensors files of every dtype and layout,
// the reference checkpoints, a sharded checkpoint, configs, prompts, tokenizers and a model
// folder for the CLI.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensors, type SafetensorsDtype, type TensorToWrite } from "../../src/io/safetensors.js";
import { gpt2ByteToUnicode } from "../../src/io/tokenizer-files.js";
import { REFERENCE_ROOT } from "../reference-root.js";
import { Rng } from "./rng.js";

function tensor(rng: Rng, shape: number[]): TensorToWrite {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rng.u32() / 2 ** 32 - 0.5) * 4;
  return { shape, data };
}

/** Small valid safetensors files: each dtype, metadata, scalars, empty tensors, many tensors. */
export function smallSafetensorsSeeds(): Uint8Array[] {
  const rng = new Rng(7);
  const seeds: Uint8Array[] = [];
  for (const dtype of ["F32", "F16", "BF16"] as SafetensorsDtype[]) {
    seeds.push(writeSafetensors({ "wte.weight": tensor(rng, [4, 3]), "ln_f.bias": tensor(rng, [3]) }, { dtype }));
    seeds.push(writeSafetensors({ a: tensor(rng, [2, 3, 4]), b: tensor(rng, []), c: tensor(rng, [0, 5]), d: tensor(rng, [1]) }, { dtype, metadata: { format: "pt", note: "x" } }));
  }
  const many: Record<string, TensorToWrite> = {};
  for (let i = 0; i < 24; i++) many[`h.${i}.w`] = tensor(rng, [rng.range(0, 3), rng.range(1, 5)]);
  seeds.push(writeSafetensors(many));
  seeds.push(writeSafetensors({}));
  seeds.push(writeSafetensors({}, { metadata: { format: "pt" } }));
  return seeds;
}

/** The reference checkpoints (F32 and F16 GPT-2, a Llama). */
export function referenceSafetensorsSeeds(): Uint8Array[] {
  return ["tiny-gpt2-random", "tiny-gpt2-random-f16", "tiny-llama-random"]
    .map((name) => new Uint8Array(readFileSync(`${REFERENCE_ROOT}${name}/model.safetensors`)));
}

/** A sharded checkpoint: index + two shards. */
export function shardedSeed(): Record<string, Uint8Array> {
  const rng = new Rng(11);
  const one = { "wte.weight": tensor(rng, [4, 3]), "wpe.weight": tensor(rng, [2, 3]) };
  const two = { "ln_f.weight": tensor(rng, [3]), "ln_f.bias": tensor(rng, [3]) };
  const weightMap: Record<string, string> = {};
  for (const k of Object.keys(one)) weightMap[k] = "model-00001-of-00002.safetensors";
  for (const k of Object.keys(two)) weightMap[k] = "model-00002-of-00002.safetensors";
  return {
    "model.safetensors.index.json": new TextEncoder().encode(JSON.stringify({ metadata: { total_size: 104 }, weight_map: weightMap })),
    "model-00001-of-00002.safetensors": writeSafetensors(one),
    "model-00002-of-00002.safetensors": writeSafetensors(two),
  };
}

/** A tiny GPT-2 config, as Hugging Face writes it. */
export function tinyGpt2Config(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["GPT2LMHeadModel"], model_type: "gpt2", n_layer: 1, n_head: 2, n_embd: 8, n_positions: 8, n_ctx: 8,
    n_inner: null, vocab_size: 11, layer_norm_epsilon: 1e-5, activation_function: "gelu_new", scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false, tie_word_embeddings: true, torch_dtype: "float32", ...overrides,
  };
}

/** config.json seeds: the tiny GPT-2, the reference ones and a Llama (refused as a GPT-2). */
export function configSeeds(): unknown[] {
  const seeds: unknown[] = [tinyGpt2Config(), tinyGpt2Config({ n_inner: 20, activation_function: "gelu", scale_attn_weights: false })];
  for (const name of ["tiny-gpt2-random", "tiny-llama-random"]) seeds.push(JSON.parse(readFileSync(`${REFERENCE_ROOT}${name}/config.json`, "utf8")));
  return seeds;
}

interface Gpt2Spec { layers: number; vocab: number; ctx: number; dMlp: number; dtype?: SafetensorsDtype; seed: number }

/** config.json + model.safetensors of a GPT-2 with d_model 8, 2 heads and random weights. */
export function gpt2Files(spec: Gpt2Spec): Record<string, Uint8Array> {
  const rng = new Rng(spec.seed);
  const { vocab: V, ctx: P, dMlp: M } = spec;
  const D = 8;
  const t: Record<string, TensorToWrite> = {
    "wte.weight": tensor(rng, [V, D]), "wpe.weight": tensor(rng, [P, D]),
    "ln_f.weight": tensor(rng, [D]), "ln_f.bias": tensor(rng, [D]),
  };
  for (let l = 0; l < spec.layers; l++) {
    Object.assign(t, {
      [`h.${l}.ln_1.weight`]: tensor(rng, [D]), [`h.${l}.ln_1.bias`]: tensor(rng, [D]),
      [`h.${l}.attn.c_attn.weight`]: tensor(rng, [D, 3 * D]), [`h.${l}.attn.c_attn.bias`]: tensor(rng, [3 * D]),
      [`h.${l}.attn.c_proj.weight`]: tensor(rng, [D, D]), [`h.${l}.attn.c_proj.bias`]: tensor(rng, [D]),
      [`h.${l}.ln_2.weight`]: tensor(rng, [D]), [`h.${l}.ln_2.bias`]: tensor(rng, [D]),
      [`h.${l}.mlp.c_fc.weight`]: tensor(rng, [D, M]), [`h.${l}.mlp.c_fc.bias`]: tensor(rng, [M]),
      [`h.${l}.mlp.c_proj.weight`]: tensor(rng, [M, D]), [`h.${l}.mlp.c_proj.bias`]: tensor(rng, [D]),
    });
  }
  const config = tinyGpt2Config({ n_layer: spec.layers, n_positions: P, n_ctx: P, n_inner: M, vocab_size: V });
  return {
    "config.json": new TextEncoder().encode(JSON.stringify(config)),
    "model.safetensors": writeSafetensors(t, { dtype: spec.dtype ?? "F32" }),
  };
}

/** The 1-layer GPT-2 (vocab 11, ctx 8) the load pipeline is fuzzed with. */
export function tinyGpt2Files(dtype: SafetensorsDtype = "F32"): Record<string, Uint8Array> {
  return gpt2Files({ layers: 1, vocab: 11, ctx: 8, dMlp: 32, dtype, seed: 3 });
}

/** A byte-level BPE tokenizer.json over the 256 byte symbols plus a few merges and <|endoftext|>. */
export function tokenizerSeed(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  gpt2ByteToUnicode().forEach((ch, b) => { vocab[ch] = b; });
  const merges = [["a", "b"], ["ab", "c"], ["Ġ", "a"], ["x", "y"]];
  for (const [a, b] of merges) vocab[a! + b!] ??= Object.keys(vocab).length;
  const eos = Object.keys(vocab).length;
  vocab["<|endoftext|>"] = eos;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0", truncation: null, padding: null, normalizer: null,
    added_tokens: [{ id: eos, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
}

/** Prompts-file seeds for a model of vocabulary `vocab` and context `ctx`: ids, texts and ragged forms. */
export function promptsSeeds(vocab: number, ctx: number): unknown[] {
  const rng = new Rng(5);
  const row = (n: number) => Array.from({ length: n }, () => rng.int(vocab));
  const n = Math.min(ctx, 6);
  return [
    { clean: [row(n), row(n)], corrupted: [row(n), row(n)], correct: [1, 2], incorrect: [3, 4] },
    { clean: [row(n)], corrupted: [row(n)], correct: [0], incorrect: [vocab - 1] },
    { clean: ["abc abc", "xy ab"], corrupted: ["abc aby", "xy xy"], correct: [" a", "c"], incorrect: ["b", 3] },
    { clean: ["ab", "abc ab xy"] },
    { clean: [row(n)] },
  ];
}

/**
 * A model folder for the CLI: the tiny GPT-2 with a tokenizer whose vocabulary it covers,
 * written once under `dir`. Returns its path.
 */
export function writeCliModel(dir: string): string {
  const folder = join(dir, "model");
  mkdirSync(folder, { recursive: true });
  const tokenizer = tokenizerSeed();
  const vocabSize = Object.keys((tokenizer.model as { vocab: object }).vocab).length;
  const files = gpt2Files({ layers: 2, vocab: vocabSize, ctx: 16, dMlp: 16, seed: 9 });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(folder, name), bytes);
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(tokenizer));
  return folder;
}
