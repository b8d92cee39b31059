// Tokenizer files are untrusted input like any other model file. This module validates
// tokenizer.json, and turns GPT-2's vocab.json + merges.txt into the equivalent tokenizer.json.

import { ModelFormatError } from "./errors.js";
import { describeJson, isForbiddenKey, isJsonObject, parseJsonObject, type JsonObject } from "./json.js";

/** Token ids must fit comfortably in an int32 (real vocabularies are < 2^18). */
const MAX_TOKEN_ID = 2 ** 31 - 1;

/**
 * GPT-2's byte-to-unicode table: byte `b` is written as the character `table[b]` in vocab.json.
 * Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256, 257, ...
 *
 * @example
 * ```ts
 * gpt2ByteToUnicode()[0x20];  // "Ġ" (U+0120): a space
 * gpt2ByteToUnicode()[0x41];  // "A"
 * ```
 */
export function gpt2ByteToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}

/**
 * Parses and validates a tokenizer.json: an object with a `model` object; for BPE models a `vocab`
 * of token → non-negative integer id and `merges` as `"a b"` strings or `[a, b]` pairs; and
 * `added_tokens` as `{id, content}` objects. Forbidden keys (`__proto__`, ...) are refused
 * everywhere except as vocabulary tokens, where they are ordinary strings.
 *
 * @throws ModelFormatError naming `file`
 */
export function parseTokenizerJson(bytes: Uint8Array, file = "tokenizer.json"): JsonObject {
  const json = parseJsonObject(bytes, file, { allowAnyKey: true });
  const model = json.model;
  if (!isJsonObject(model)) bad(file, `"model" must be an object, got ${describeJson(model)}`);
  checkKeys(json, file, model.vocab);
  if (model.type === "BPE" || (model.type === undefined && "merges" in model)) {
    const vocab = checkVocab(model.vocab, file, "model.vocab", Array.isArray(json.added_tokens) ? json.added_tokens.length : 0);
    checkMerges(model.merges, file);
    checkBpeOptions(model, file);
    if (usesByteLevel(json.pre_tokenizer) && model.byte_fallback !== true) checkByteTokens(vocab, file);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) bad(file, `"added_tokens" must be an array, got ${describeJson(added)}`);
  const vocabSize = isJsonObject(model.vocab) ? Object.keys(model.vocab).length : Array.isArray(model.vocab) ? model.vocab.length : 0;
  const maxId = idLimit(vocabSize + added.length);
  added.forEach((token, i) => {
    if (!isJsonObject(token) || typeof token.content !== "string" || !isTokenId(token.id) || token.id > maxId) {
      bad(file, `added_tokens[${i}] must be {"id": integer in [0, ${maxId}], "content": string, ...}`);
    }
  });
  json.added_tokens = added;
  return json;
}

/**
 * Builds the tokenizer.json of a GPT-2 byte-level BPE tokenizer from `vocab.json` and `merges.txt`,
 * as the Hugging Face converter does (`<|endoftext|>`, when in the vocabulary, becomes a special added token).
 *
 * @param vocabBytes - vocab.json: `{token: id}`
 * @param mergesText - merges.txt: an optional `#version` line, then one `a b` merge per line, highest priority first
 * @throws ModelFormatError naming `vocab.json` or `merges.txt` (with the line number)
 * @example
 * ```ts
 * const json = gpt2TokenizerJsonFromFiles(await source.readFile("vocab.json"), await source.readText("merges.txt"));
 * ```
 */
export function gpt2TokenizerJsonFromFiles(vocabBytes: Uint8Array, mergesText: string): JsonObject {
  const vocab = checkVocab(parseJsonObject(vocabBytes, "vocab.json", { allowAnyKey: true }), "vocab.json", "the vocabulary", 0);
  checkByteTokens(vocab, "vocab.json");
  const merges = parseMergesText(mergesText, vocab);
  const addedTokens: JsonObject[] = [];
  const eot = "<|endoftext|>";
  if (Object.prototype.hasOwnProperty.call(vocab, eot)) {
    addedTokens.push(plain({ id: vocab[eot], content: eot, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }));
  }
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean): JsonObject =>
    plain({ type: "ByteLevel", add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
  return plain({
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: plain({
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    }),
  });
}

function parseMergesText(text: string, vocab: JsonObject): string[][] {
  const merges: string[][] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line === "" || (i === 0 && line.startsWith("#version"))) return;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new ModelFormatError("merges.txt", "bad_tokenizer", `line ${i + 1} must be two tokens separated by one space, got ${JSON.stringify(line.slice(0, 80))}`);
    }
    const [a, b] = parts as [string, string];
    for (const token of [a, b, a + b]) {
      if (!Object.prototype.hasOwnProperty.call(vocab, token)) {
        throw new ModelFormatError("merges.txt", "bad_tokenizer", `line ${i + 1} uses ${JSON.stringify(token)}, which is not in vocab.json`);
      }
    }
    merges.push([a, b]);
  });
  return merges;
}

/**
 * Ids may leave holes but stay within twice the number of tokens (vocabulary entries plus `extra`
 * added tokens) plus 1024: the library sizes tables by the largest id, so one id of 2^31 in a
 * small file would allocate gigabytes and take minutes.
 */
function checkVocab(vocab: unknown, file: string, what: string, extra: number): JsonObject {
  if (!isJsonObject(vocab)) bad(file, `${what} must be an object of token → id, got ${describeJson(vocab)}`);
  const tokens = Object.keys(vocab);
  const limit = idLimit(tokens.length + extra);
  for (const token of tokens) {
    const id = vocab[token];
    if (!isTokenId(id) || id > limit) {
      bad(file, `${what}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be integers in [0, ${limit}] (at most twice the number of tokens, plus 1024)`);
    }
  }
  return vocab;
}

/** The BPE model's affixes are strings and its switches booleans (the library concatenates and tests them as such). */
function checkBpeOptions(model: JsonObject, file: string): void {
  for (const key of ["continuing_subword_prefix", "end_of_word_suffix", "unk_token"]) {
    const v = model[key];
    if (v !== undefined && v !== null && typeof v !== "string") bad(file, `model.${key} must be a string or null, got ${describeJson(v)}`);
  }
  for (const key of ["fuse_unk", "byte_fallback", "ignore_merges"]) {
    const v = model[key];
    if (v !== undefined && v !== null && typeof v !== "boolean") bad(file, `model.${key} must be true or false, got ${describeJson(v)}`);
  }
}

/**
 * Byte-level BPE encodes any text only if all 256 byte tokens exist; without them the
 * library silently drops the pieces it cannot map, so a lacking vocabulary is refused up front.
 */
function checkByteTokens(vocab: JsonObject, file: string): void {
  const table = gpt2ByteToUnicode();
  for (let b = 0; b < 256; b++) {
    if (!Object.prototype.hasOwnProperty.call(vocab, table[b]!)) {
      bad(file, `the byte-level vocabulary lacks the token ${JSON.stringify(table[b])} for byte 0x${b.toString(16).padStart(2, "0")}`);
    }
  }
}

function usesByteLevel(preTokenizer: unknown): boolean {
  if (!isJsonObject(preTokenizer)) return false;
  if (preTokenizer.type === "ByteLevel") return true;
  const parts = preTokenizer.pretokenizers;
  return preTokenizer.type === "Sequence" && Array.isArray(parts) && parts.some(usesByteLevel);
}

function checkMerges(merges: unknown, file: string): void {
  if (!Array.isArray(merges)) bad(file, `model.merges must be an array, got ${describeJson(merges)}`);
  merges.forEach((merge, i) => {
    const ok =
      (typeof merge === "string" && merge.split(" ").length === 2) ||
      (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === "string" && typeof merge[1] === "string");
    if (!ok) bad(file, `model.merges[${i}] must be "a b" or ["a", "b"], got ${JSON.stringify(merge)?.slice(0, 80)}`);
  });
}

/** Refuses forbidden keys anywhere in the tree except among the vocabulary's tokens (iterative: no stack overflow on deep input). */
function checkKeys(root: JsonObject, file: string, vocab: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === "object" && item !== null) stack.push(item);
    } else if (isJsonObject(value)) {
      const isVocab = value === vocab;
      for (const key of Object.keys(value)) {
        if (!isVocab && isForbiddenKey(key)) {
          throw new ModelFormatError(file, "forbidden_key", `refuses the key ${JSON.stringify(key)}`);
        }
        const child = value[key];
        if (typeof child === "object" && child !== null) stack.push(child);
      }
    }
  }
}

function idLimit(tokens: number): number {
  return Math.min(MAX_TOKEN_ID, 2 * tokens + 1024);
}

function isTokenId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_TOKEN_ID;
}

function plain(fields: Record<string, unknown>): JsonObject {
  return Object.assign(Object.create(null) as JsonObject, fields);
}

function bad(file: string, reason: string): never {
  throw new ModelFormatError(file, "bad_tokenizer", reason);
}
