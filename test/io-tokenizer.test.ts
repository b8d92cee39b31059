import { describe, expect, test } from "vitest";
import { MissingDependencyError, ModelFormatError, type ModelFormatCode } from "../src/io/errors.js";
import { bytesSource } from "../src/io/source.js";
import { loadTokenizer, tokenizerFromJson, type Tokenizer } from "../src/io/tokenizer.js";
import { gpt2ByteToUnicode } from "../src/io/tokenizer-files.js";

const enc = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

// A tiny GPT-2-style byte-level BPE: the 256 byte tokens, a few merges, <|endoftext|>.
const BYTES = gpt2ByteToUnicode();
const MERGES: Array<[string, string]> = [
  ["h", "e"],
  ["l", "l"],
  ["he", "ll"],
  ["hell", "o"],
  ["Ġ", "w"],
  ["o", "r"],
  ["Ġw", "or"],
  ["l", "d"],
  ["Ġwor", "ld"],
  ["Ġ", "t"],
  ["Ġt", "he"],
  ["i", "n"],
  ["Ã", "©"], // é is the two bytes C3 A9
];
// Null prototype, so "__proto__" and "constructor" are plain own keys, as JSON.parse makes them.
const VOCAB = Object.create(null) as Record<string, number>;
BYTES.forEach((ch, b) => (VOCAB[ch] = b));
for (const [a, b] of MERGES) VOCAB[a + b] ??= Object.keys(VOCAB).length;
// Strings that must stay ordinary tokens, not prototype keys.
VOCAB["constructor"] = Object.keys(VOCAB).length;
VOCAB["__proto__"] = Object.keys(VOCAB).length;
const EOT = "<|endoftext|>";
VOCAB[EOT] = Object.keys(VOCAB).length;
const VOCAB_SIZE = Object.keys(VOCAB).length;

const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) => ({ type: "ByteLevel", add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });

/** tokenizer.json as the Hugging Face library saves GPT-2's (merges in the older "a b" string form). */
const TOKENIZER_JSON = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [{ id: VOCAB[EOT], content: EOT, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: byteLevel(false, true),
  post_processor: byteLevel(true, false),
  decoder: byteLevel(true, true),
  model: {
    type: "BPE",
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: "",
    end_of_word_suffix: "",
    fuse_unk: false,
    byte_fallback: false,
    vocab: VOCAB,
    merges: MERGES.map(([a, b]) => `${a} ${b}`),
  },
};
const tokenizerJsonText = (json: unknown = TOKENIZER_JSON) => JSON.stringify(json);
const MERGES_TXT = `#version: 0.2\n${MERGES.map(([a, b]) => `${a} ${b}`).join("\n")}\n`;
const vocabJsonText = () => JSON.stringify(VOCAB);

const SAMPLES = ["hello world", "hello", " the world in hello", "héllo wörld 🙂\n\ttabs  and  spaces!", "", "the end" + EOT + "hello", "constructor __proto__ prototype", "\u0000\u00ff€"];

async function fromTokenizerJson(extra: Record<string, Uint8Array> = {}): Promise<Tokenizer> {
  const tokenizer = await loadTokenizer(bytesSource({ "tokenizer.json": enc(tokenizerJsonText()), ...extra }));
  expect(tokenizer).not.toBeNull();
  return tokenizer!;
}

async function expectFormatError(promise: Promise<unknown>, file: string, code: ModelFormatCode, mentions: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelFormatError);
  expect({ file: (error as ModelFormatError).file, code: (error as ModelFormatError).code }).toEqual({ file, code });
  expect((error as Error).message).toMatch(mentions);
}

describe("GPT-2 byte-to-unicode map", () => {
  test("printable bytes map to themselves, the rest to 256 and up, one-to-one", () => {
    expect(BYTES[0x21]).toBe("!");
    expect(BYTES[0x20]).toBe("Ġ");
    expect(BYTES[0x0a]).toBe("Ċ");
    expect(BYTES[0x00]).toBe("Ā");
    expect(BYTES[0x7f]).toBe("ġ"); // U+0121: the 34th unprintable byte
    expect(BYTES[0xa0]).toBe("ł");
    expect(BYTES[0xad]).toBe("Ń"); // the soft hyphen is the last one, U+0143
    expect(new Set(BYTES).size).toBe(256);
  });
});

describe("tokenizer from tokenizer.json", () => {
  test("merges apply: known words become single tokens", async () => {
    const tok = await fromTokenizerJson();
    expect(tok.encode("hello world")).toEqual([VOCAB.hello, VOCAB["Ġworld"]]);
    expect(tok.encode("the")).toEqual([VOCAB.t, VOCAB.he]); // no prefix space is added
    expect(tok.encode(" the")).toEqual([VOCAB["Ġthe"]]);
    expect(tok.encode("é")).toEqual([VOCAB["Ã©"]]);
    expect(tok.encode("A\n")).toEqual([VOCAB.A, VOCAB["Ċ"]]);
    expect(tok.encode(`x${EOT}`)).toEqual([VOCAB.x, VOCAB[EOT]]);
  });

  test("decode(encode(text)) is the text, for ASCII, Unicode, whitespace and special tokens", async () => {
    const tok = await fromTokenizerJson();
    for (const text of SAMPLES) expect(tok.decode(tok.encode(text))).toBe(text);
    // Every byte value survives, so the library's byte map agrees with ours.
    // Each lone character is one token per UTF-8 byte (é excepted: it has a merge), so the
    // library's byte map agrees with ours for every byte value.
    for (let cp = 0; cp < 0x800; cp += cp < 0x100 ? 1 : 37) {
      const text = String.fromCodePoint(cp);
      const ids = tok.encode(text);
      if (text !== "é") expect(ids).toEqual(Array.from(new TextEncoder().encode(text), (b) => VOCAB[BYTES[b]!]));
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode("\u00ad")).toEqual([VOCAB["Â"], VOCAB["Ń"]]); // soft hyphen = C2 AD in UTF-8
    expect(tok.decode([VOCAB.hello, VOCAB["Ġworld"], VOCAB[EOT]])).toBe(`hello world${EOT}`);
  });

  test("vocabulary accessors, size and BOS/EOS", async () => {
    const tok = await fromTokenizerJson();
    expect(tok.vocabSize).toBe(VOCAB_SIZE);
    expect(tok.bosTokenId).toBe(VOCAB[EOT]);
    expect(tok.eosTokenId).toBe(VOCAB[EOT]);
    expect(tok.idToToken!(VOCAB["Ġworld"]!)).toBe("Ġworld");
    expect(tok.tokenToId!("hello")).toBe(VOCAB.hello);
    expect(tok.tokenToId!("constructor")).toBe(VOCAB.constructor);
    expect(tok.tokenToId!("__proto__")).toBe(VOCAB.__proto__);
    expect(tok.tokenToId!("toString")).toBeUndefined();
  });

  test("BOS/EOS come from tokenizer_config.json, else config.json", async () => {
    const fromTokConfig = await fromTokenizerJson({ "tokenizer_config.json": enc({ bos_token: { content: "hello" }, eos_token: "Ġworld" }) });
    expect([fromTokConfig.bosTokenId, fromTokConfig.eosTokenId]).toEqual([VOCAB.hello, VOCAB["Ġworld"]]);
    const fromConfig = await fromTokenizerJson({ "config.json": enc({ bos_token_id: 3, eos_token_id: 4 }) });
    expect([fromConfig.bosTokenId, fromConfig.eosTokenId]).toEqual([3, 4]);
    const outOfRange = await fromTokenizerJson({ "config.json": enc({ bos_token_id: 1e9 }) });
    expect(outOfRange.bosTokenId).toBe(VOCAB[EOT]);
  });

  test("decode refuses ids outside the vocabulary and decodes [] to ''", async () => {
    const tok = await fromTokenizerJson();
    expect(tok.decode([])).toBe("");
    expect(() => tok.decode([1, VOCAB_SIZE])).toThrow(/ids\[1\] = \d+ is not a token id in \[0, \d+\)/);
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });

  test("ids that are unassigned in a vocabulary with holes are refused by decode", async () => {
    const withHole = Object.assign(Object.create(null) as Record<string, number>, VOCAB, { hello: VOCAB_SIZE + 3 });
    const tok = await tokenizerFromJson(JSON.stringify({ ...TOKENIZER_JSON, model: { ...TOKENIZER_JSON.model, vocab: withHole } }));
    expect(tok.vocabSize).toBe(VOCAB_SIZE + 4);
    expect(tok.encode("hello")).toEqual([VOCAB_SIZE + 3]);
    expect(tok.decode([VOCAB_SIZE + 3])).toBe("hello");
    expect(() => tok.decode([0, VOCAB.hello!])).toThrow(/ids\[1\] = \d+ is not a token id/);
  });

  test("tokenizerFromJson takes the file's text directly", async () => {
    const tok = await tokenizerFromJson(tokenizerJsonText());
    expect(tok.encode("hello world")).toEqual([VOCAB.hello, VOCAB["Ġworld"]]);
  });
});

describe("tokenizer from vocab.json + merges.txt", () => {
  test("gives the same ids and text as tokenizer.json", async () => {
    const fromJson = await fromTokenizerJson();
    const fromFiles = await loadTokenizer(bytesSource({ "vocab.json": enc(vocabJsonText()), "merges.txt": enc(MERGES_TXT) }));
    expect(fromFiles).not.toBeNull();
    for (const text of SAMPLES) {
      expect(fromFiles!.encode(text)).toEqual(fromJson.encode(text));
      expect(fromFiles!.decode(fromFiles!.encode(text))).toBe(text);
    }
    expect(fromFiles!.vocabSize).toBe(VOCAB_SIZE);
    expect(fromFiles!.bosTokenId).toBe(VOCAB[EOT]);
    expect(fromFiles!.tokenToId!("__proto__")).toBe(VOCAB.__proto__);
  });

  test("merges.txt without a #version line and with CRLF line ends works too", async () => {
    const merges = MERGES.map(([a, b]) => `${a} ${b}`).join("\r\n");
    const tok = await loadTokenizer(bytesSource({ "vocab.json": enc(vocabJsonText()), "merges.txt": enc(merges) }));
    expect(tok!.encode("hello world")).toEqual([VOCAB.hello, VOCAB["Ġworld"]]);
  });

  test("malformed vocab.json or merges.txt is refused naming the file (and the line)", async () => {
    const load = (vocab: string, merges: string) => loadTokenizer(bytesSource({ "vocab.json": enc(vocab), "merges.txt": enc(merges) }));
    await expectFormatError(load("[1]", MERGES_TXT), "vocab.json", "not_object", /got an array/);
    await expectFormatError(load('{"a": -1}', ""), "vocab.json", "bad_tokenizer", /token "a" has id -1/);
    await expectFormatError(load('{"a": "0"}', ""), "vocab.json", "bad_tokenizer", /token "a" has id "0"/);
    await expectFormatError(load(vocabJsonText(), "#version: 0.2\nh e\nh e l\n"), "merges.txt", "bad_tokenizer", /line 3 must be two tokens/);
    await expectFormatError(load(vocabJsonText(), "q z\n"), "merges.txt", "bad_tokenizer", /line 1 uses "qz", which is not in vocab.json/);
    await expectFormatError(load('{"a": 0, "b": 1}', ""), "vocab.json", "bad_tokenizer", /lacks the token "Ā" for byte 0x00/);
  });
});

describe("loading rules", () => {
  test("no tokenizer files: null, so the model runs on token ids", async () => {
    expect(await loadTokenizer(bytesSource({ "config.json": enc("{}") }))).toBeNull();
    expect(await loadTokenizer(bytesSource({ "vocab.json": enc(vocabJsonText()) }))).toBeNull();
  });

  test("without @huggingface/tokenizers: a clear error with the install command", async () => {
    const missing = Object.assign(new Error("Cannot find package '@huggingface/tokenizers'"), { code: "ERR_MODULE_NOT_FOUND" });
    const error = await loadTokenizer(bytesSource({ "tokenizer.json": enc(tokenizerJsonText()) }), { importLibrary: () => Promise.reject(missing) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingDependencyError);
    expect((error as Error).message).toMatch(/npm install @huggingface\/tokenizers/);
    expect((error as Error).cause).toBe(missing);
    const wrong = await tokenizerFromJson(tokenizerJsonText(), { importLibrary: async () => ({}) }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(MissingDependencyError);
  });

  test("malformed tokenizer.json is refused naming the file", async () => {
    const load = (text: string) => loadTokenizer(bytesSource({ "tokenizer.json": enc(text) }));
    const withModel = (model: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ ...TOKENIZER_JSON, model, ...extra });
    await expectFormatError(load("{"), "tokenizer.json", "invalid_json", /not valid JSON/);
    await expectFormatError(load("[]"), "tokenizer.json", "not_object", /got an array/);
    await expectFormatError(load(JSON.stringify({ added_tokens: [] })), "tokenizer.json", "bad_tokenizer", /"model" must be an object, got undefined|"model" must be an object/);
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, vocab: { a: -1 } })), "tokenizer.json", "bad_tokenizer", /token "a" has id -1/);
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, vocab: [] })), "tokenizer.json", "bad_tokenizer", /model.vocab must be an object/);
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, merges: "h e" })), "tokenizer.json", "bad_tokenizer", /model.merges must be an array/);
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, merges: [["h", "e", "x"]] })), "tokenizer.json", "bad_tokenizer", /model.merges\[0\]/);
    await expectFormatError(load(withModel(TOKENIZER_JSON.model, { added_tokens: [{ id: "1", content: "x" }] })), "tokenizer.json", "bad_tokenizer", /added_tokens\[0\]/);
    await expectFormatError(load(withModel(TOKENIZER_JSON.model, { added_tokens: {} })), "tokenizer.json", "bad_tokenizer", /"added_tokens" must be an array/);
    await expectFormatError(load(`{"__proto__": {"polluted": 1}, ${tokenizerJsonText().slice(1)}`), "tokenizer.json", "forbidden_key", /"__proto__"/);
    await expectFormatError(load(withModel(TOKENIZER_JSON.model, { decoder: { type: "ByteLevel", constructor: 1 } })), "tokenizer.json", "forbidden_key", /"constructor"/);
    await expectFormatError(load(withModel(TOKENIZER_JSON.model, { pre_tokenizer: { type: "NoSuchPreTokenizer" } })), "tokenizer.json", "bad_tokenizer", /cannot build a tokenizer/);
    const noSpace = Object.assign(Object.create(null) as Record<string, number>, VOCAB);
    delete noSpace["Ġ"];
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, vocab: noSpace })), "tokenizer.json", "bad_tokenizer", /lacks the token "Ġ" for byte 0x20/);
    const sequence = { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { String: " " }, behavior: "Isolated", invert: false }, byteLevel(false, true)] };
    await expectFormatError(load(withModel({ ...TOKENIZER_JSON.model, vocab: noSpace }, { pre_tokenizer: sequence })), "tokenizer.json", "bad_tokenizer", /byte 0x20/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
