// SentencePiece-style BPE tokenizers (LLaMA, Llama 2, TinyLlama, Mistral): "▁" for spaces,
// byte fallback to <0xNN> tokens, <s>/</s> specials; loaded with the LLaMA reference
// checkpoint through fromPretrained, as a user's model folder would be.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, test } from "vitest";
import { HookedTransformer } from "../src/index.js";
import { referenceDir } from "./reference.js";

const enc = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const MODEL_DIR = referenceDir("tiny-llama-random");
const MODEL_FILES = {
  "config.json": new Uint8Array(readFileSync(`${MODEL_DIR}config.json`)),
  "model.safetensors": new Uint8Array(readFileSync(`${MODEL_DIR}model.safetensors`)),
};

// ids 0..2 are the specials and 3.. a few byte tokens, as in LLaMA's vocabulary (there all 256 bytes follow).
const SPECIALS = ["<unk>", "<s>", "</s>"];
const BYTE_TOKENS = [0x0a, 0xc3, 0xa9, 0xb6, 0xe2, 0x82, 0xac].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
const CHARS = ["▁", ..."abcdehilnorstw"];
const MERGES: Array<[string, string]> = [
  ["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["▁", "hello"],
  ["▁", "w"], ["o", "r"], ["▁w", "or"], ["l", "d"], ["▁wor", "ld"],
  ["▁", "t"], ["▁t", "he"], ["i", "n"], ["▁", "in"],
];
const VOCAB: Record<string, number> = {};
for (const token of [...SPECIALS, ...BYTE_TOKENS, ...CHARS]) VOCAB[token] = Object.keys(VOCAB).length;
for (const [a, b] of MERGES) VOCAB[a + b] ??= Object.keys(VOCAB).length;
const id = (token: string): number => {
  const value = VOCAB[token];
  if (value === undefined) throw new Error(`test vocabulary lacks ${token}`);
  return value;
};

const special = (content: string, i: number) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const SPM_DECODER = {
  type: "Sequence",
  decoders: [
    { type: "Replace", pattern: { String: "▁" }, content: " " },
    { type: "ByteFallback" },
    { type: "Fuse" },
    { type: "Strip", content: " ", start: 1, stop: 0 },
  ],
};

/**
 * A tokenizer.json as the Hugging Face converter writes LLaMA's: either the Llama 2 / TinyLlama
 * form (a Prepend + Replace normalizer) or the newer one (a Metaspace pre-tokenizer).
 */
function tokenizerJson(style: "normalizer" | "metaspace"): object {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map(special),
    normalizer: style === "normalizer"
      ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] }
      : null,
    pre_tokenizer: style === "metaspace" ? { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false } : null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: SPM_DECODER,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: VOCAB,
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
}

const TOKENIZER_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: { __type: "AddedToken", content: "<s>", lstrip: false, normalized: false, rstrip: false, single_word: false },
  eos_token: "</s>",
  unk_token: "<unk>",
  clean_up_tokenization_spaces: false,
  legacy: false,
  model_max_length: 2048,
  tokenizer_class: "LlamaTokenizer",
};

const SAMPLES = ["hello world", "the world in hello", "héllo wörld €\nthe end", "hello  world", "é"];

test("the test vocabulary fits the reference model's 100 ids", () => {
  expect(Object.keys(VOCAB).length).toBeLessThanOrEqual(100);
});

for (const style of ["normalizer", "metaspace"] as const) {
  describe(`SentencePiece-style BPE (${style}) through fromPretrained`, () => {
    let model: HookedTransformer;
    beforeAll(async () => {
      model = await HookedTransformer.fromPretrained({
        ...MODEL_FILES,
        "tokenizer.json": enc(tokenizerJson(style)),
        "tokenizer_config.json": enc(TOKENIZER_CONFIG),
      });
    });

    test("loads with BOS <s> = 1 and EOS </s> = 2", () => {
      expect(model.tokenizer).toBeDefined();
      expect(model.tokenizer!.bosTokenId).toBe(1);
      expect(model.tokenizer!.eosTokenId).toBe(2);
      expect(model.tokenizer!.vocabSize).toBe(Object.keys(VOCAB).length);
    });

    test("toTokens prepends BOS and applies the merges, with ▁ marking word starts", () => {
      expect(model.toTokens("hello world")).toEqual([[1, id("▁hello"), id("▁world")]]);
      expect(model.toTokens("the world", { prependBos: false })).toEqual([[id("▁the"), id("▁world")]]);
      expect(model.tokenizer!.encode("in the")).toEqual([id("▁in"), id("▁the")]);
    });

    test("characters outside the vocabulary fall back to their UTF-8 bytes, or <unk> without byte tokens", () => {
      expect(model.tokenizer!.encode("é")).toEqual([id("▁"), id("<0xC3>"), id("<0xA9>")]);
      expect(model.tokenizer!.encode("w€")).toEqual([id("▁w"), id("<0xE2>"), id("<0x82>"), id("<0xAC>")]);
      expect(model.tokenizer!.encode("a\nb")).toEqual([id("▁"), id("a"), id("<0x0A>"), id("b")]);
      // 'x' is neither a vocabulary character nor are its bytes present: one <unk>, as LLaMA's tokenizer does.
      expect(model.tokenizer!.encode("x")).toEqual([id("▁"), 0]);
    });

    test("decode(encode(text)) is the text, non-ASCII characters included", () => {
      for (const text of SAMPLES) expect(model.tokenizer!.decode(model.tokenizer!.encode(text)), text).toBe(text);
      // Through the model: toString of a row that starts with BOS keeps the special token, as Hugging Face's decode.
      const row = model.toTokens("héllo world")[0]!;
      expect(model.toString(row)).toBe("<s> héllo world");
      expect(model.toString(row.slice(1))).toBe("héllo world");
    });

    test("toStrTokens gives each token's text (word-start spaces stripped, lone bytes as U+FFFD)", () => {
      expect(model.toStrTokens("hello world")).toEqual(["<s>", "hello", "world"]);
      expect(model.toStrTokens("the é")).toEqual(["<s>", "the", "", "\uFFFD", "\uFFFD"]);
      expect(model.toSingleToken("world")).toBe(id("▁world"));
    });

    test("a forward on text equals the forward on its token ids, and batches pad with EOS", () => {
      const text = "hello world in the é";
      const tokens = model.toTokens(text);
      expect(tokens[0]!.length).toBe(8);
      const fromText = model.forward(text).logits!;
      const fromIds = model.forward(tokens).logits!;
      expect(fromText.shape).toEqual([1, 8, 100]);
      expect(Array.from(fromText.data)).toEqual(Array.from(fromIds.data));
      expect(fromText.data.every(Number.isFinite)).toBe(true);
      const { tokens: batch, attentionMask } = model.toTokensWithMask(["hello world", "the"]);
      expect(batch).toEqual([[1, id("▁hello"), id("▁world")], [1, id("▁the"), 2]]);
      expect(attentionMask).toEqual([[1, 1, 1], [1, 1, 0]]);
    });
  });
}

test("without tokenizer_config.json, BOS and EOS come from config.json's bos_token_id and eos_token_id", async () => {
  const config = JSON.parse(new TextDecoder().decode(MODEL_FILES["config.json"])) as Record<string, unknown>;
  // Point them at other tokens, so the test tells config.json from a guess by name.
  const files = { ...MODEL_FILES, "config.json": enc({ ...config, bos_token_id: 2, eos_token_id: 1 }), "tokenizer.json": enc(tokenizerJson("metaspace")) };
  const model = await HookedTransformer.fromPretrained(files);
  expect(model.tokenizer!.bosTokenId).toBe(2);
  expect(model.tokenizer!.eosTokenId).toBe(1);
  expect(model.toTokens("hello")).toEqual([[2, id("▁hello")]]);
});

test("tokenizerLibrary supplies the tokenizer module (as a Web Worker without an import map must); a failing one is named", async () => {
  const files = { ...MODEL_FILES, "tokenizer.json": enc(tokenizerJson("metaspace")) };
  let calls = 0;
  const model = await HookedTransformer.fromPretrained(files, { tokenizerLibrary: () => { calls++; return import("@huggingface/tokenizers"); } });
  expect(calls).toBe(1);
  expect(model.toTokens("hello")[0]!.slice(1)).toEqual([id("▁hello")]);
  await expect(HookedTransformer.fromPretrained(files, { tokenizerLibrary: () => Promise.reject(new Error("404 /vendor/tokenizers.mjs")) }))
    .rejects.toThrow(/@huggingface\/tokenizers/);
});
