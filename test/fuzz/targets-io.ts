// Fuzz targets of the loading layer: the safetensors reader, the sharded index and loader,
// config.json, tokenizer files and the whole fromPretrained pipeline.

import fc from "fast-check";
import type { Engine } from "../../src/engine/engine.js";
import { ModelFormatError, ModelSourceError } from "../../src/io/errors.js";
import { loadSafetensorsWeights, parseShardIndex, type WeightMap } from "../../src/io/checkpoint.js";
import { parseJsonObject } from "../../src/io/json.js";
import { readSafetensors, type SafetensorsFile } from "../../src/io/safetensors.js";
import { bytesSource } from "../../src/io/source-bytes.js";
import { gpt2TokenizerJsonFromFiles, parseTokenizerJson } from "../../src/io/tokenizer-files.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { ConfigError } from "../../src/model/config.js";
import { configFromHfGpt2 } from "../../src/model/families/gpt2.js";
import { HookedTransformer } from "../../src/model/hooked-transformer.js";
import { mutateBytes } from "./mutate-bytes.js";
import { FORBIDDEN_KEYS, mutateJson } from "./mutate-json.js";
import { mutateSafetensorsHeader } from "./mutate-safetensors.js";
import { leavesFolder, specAcceptsHeader } from "./oracles.js";
import type { Rng } from "./rng.js";
import { previewBytes, type Target } from "./runner.js";
import { configSeeds, referenceSafetensorsSeeds, shardedSeed, smallSafetensorsSeeds, tinyGpt2Config, tinyGpt2Files, tokenizerSeed } from "./seeds.js";

/** Fixed slack of every memory bound: small typed arrays, DataViews, decoder state. */
export const MEMORY_SLACK = 64 * 1024;

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The label of a loader error, or undefined when the error is not one of the typed ones. */
export function ioLabel(e: unknown): string | undefined {
  if (e instanceof ModelFormatError && e.message.length > 0) return `ModelFormatError:${e.code}`;
  if (e instanceof ModelSourceError && e.message.length > 0) return `ModelSourceError:${e.code}`;
  if (e instanceof ConfigError && e.message.length > 0) return "ConfigError";
  return undefined;
}

/** What a successful read must satisfy whatever the input: consistent tensors in null-prototype maps. */
function checkTensors(tensors: WeightMap, inputBytes: number, factor: number): string | undefined {
  if (Object.getPrototypeOf(tensors) !== null) return "the tensor map has a prototype";
  let bytes = 0;
  for (const name of Object.keys(tensors)) {
    if ((FORBIDDEN_KEYS as readonly string[]).includes(name)) return `accepted the tensor name ${name}`;
    const t = tensors[name]!;
    if (!["F32", "F16", "BF16"].includes(t.dtype)) return `tensor ${name} has dtype ${t.dtype}`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor ${name} has shape ${JSON.stringify(t.shape)}`;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== numel) return `tensor ${name} has ${t.data.length} values for shape [${t.shape}]`;
    // Views of the input cost nothing; owned arrays are what the reader allocated.
    bytes += t.data.byteLength;
  }
  if (bytes > factor * inputBytes + MEMORY_SLACK) return `returned ${bytes} bytes of tensors from ${inputBytes} input bytes`;
  return undefined;
}

function checkFile(file: SafetensorsFile, inputBytes: number): string | undefined {
  if (Object.getPrototypeOf(file.metadata) !== null) return "the metadata map has a prototype";
  for (const v of Object.values(file.metadata)) if (typeof v !== "string") return "a metadata value is not a string";
  return checkTensors(file.tensors, inputBytes, 2);
}

interface ReadInput { bytes: Uint8Array; copy: boolean }

function readerTarget(name: string, weight: number, mutate: (rng: Rng, seed: Uint8Array) => Uint8Array): Target<ReadInput> {
  const small = smallSafetensorsSeeds();
  const reference = referenceSafetensorsSeeds();
  return {
    name,
    weight,
    generate(rng) {
      const pool = reference.length > 0 && rng.chance(0.08) ? reference : small;
      return { bytes: mutate(rng, rng.pick(pool)), copy: rng.chance(0.3) };
    },
    run: ({ bytes, copy }) => readSafetensors(bytes, "model.safetensors", { copy }),
    classify: (e) => (e instanceof ModelFormatError && e.file === "model.safetensors" ? ioLabel(e) : undefined),
    check: ({ bytes }, value) => checkFile(value as SafetensorsFile, bytes.length),
    // Half floats widen to float32 (2x), and unaligned half data is first copied to aligned 16-bit words (1x).
    memoryBound: ({ bytes }) => 3 * bytes.length + MEMORY_SLACK,
    describe: ({ bytes, copy }) => `copy=${copy} ${previewBytes(bytes)}`,
  };
}

export const safetensorsBytes = (): Target<ReadInput> => readerTarget("safetensors/bytes", 18, mutateBytes);
export const safetensorsHeader = (): Target<ReadInput> => readerTarget("safetensors/header", 22, mutateSafetensorsHeader);

interface HeaderCase { header: Record<string, unknown>; dataLength: number }

const headerArbitrary: fc.Arbitrary<HeaderCase> = (() => {
  const dim = fc.oneof(
    { weight: 6, arbitrary: fc.nat(6) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e308) },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 3 }), fc.constant(null)) },
  );
  const offset = fc.oneof({ weight: 6, arbitrary: fc.nat(160) }, { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 53, "4", null)) });
  const entry = fc.record({
    dtype: fc.oneof({ weight: 8, arbitrary: fc.constantFrom("F32", "F16", "BF16") }, { weight: 1, arbitrary: fc.constantFrom("F64", "I8", "U8", "f16", "", 1) }),
    shape: fc.oneof({ weight: 9, arbitrary: fc.array(dim, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(null, "2", {}) }),
    data_offsets: fc.oneof({ weight: 9, arbitrary: fc.tuple(offset, offset) }, { weight: 1, arbitrary: fc.constantFrom([], [0], [0, 0, 0], null) }),
  });
  const name = fc.oneof({ weight: 9, arbitrary: fc.string({ maxLength: 8 }) }, { weight: 1, arbitrary: fc.constantFrom(...FORBIDDEN_KEYS, "__metadata__") });
  const metadata = fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 3 }), fc.constantFrom(null, 3, "x", { a: 1 }));
  return fc.record({
    header: fc.tuple(fc.dictionary(name, entry, { maxKeys: 5 }), fc.option(metadata)).map(([entries, meta]) => {
      const header = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(entries)) Object.defineProperty(header, k, { value: entries[k], enumerable: true, writable: true, configurable: true });
      if (meta !== null) header.__metadata__ = meta;
      return header;
    }),
    dataLength: fc.nat(192),
  });
})();

function buildFile({ header, dataLength }: HeaderCase): Uint8Array {
  const json = encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLength);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  for (let i = 8 + json.length; i < out.length; i++) out[i] = (i * 37) & 0xff;
  return out;
}

/** Property: the reader accepts a header exactly when the safetensors rules (re-stated in oracles.ts) accept it. */
export function safetensorsProperty(): Target<HeaderCase> {
  return {
    name: "safetensors/property",
    weight: 10,
    arbitrary: headerArbitrary,
    run: (input) => readSafetensors(buildFile(input), "model.safetensors"),
    classify: ioLabel,
    check(input, value) {
      const why = specAcceptsHeader(input.header, input.dataLength);
      if (why !== undefined) return `accepted a header the rules refuse (${why})`;
      return checkFile(value as SafetensorsFile, buildFile(input).length);
    },
    checkRefusal(input) {
      return specAcceptsHeader(input.header, input.dataLength) === undefined ? "refused a header the rules accept" : undefined;
    },
    memoryBound: (input) => 4 * (JSON.stringify(input.header).length + input.dataLength) + MEMORY_SLACK,
    describe: (input) => `${JSON.stringify(input.header)} + ${input.dataLength} data bytes`,
  };
}

const UNSAFE_NAMES = ["../model.safetensors", "/etc/passwd", "a/../../b", "http://evil.invalid/x.safetensors", "//evil/x", "C:\\x", "a\\..\\b",
  "%2e%2e/x", "./x", "a//b", "", "x?y", "x#y", "\u0000x", "model-00001-of-00002.safetensors", "sub/ok.safetensors"];

/** Sharded index mutations: weight_map entries that leave the folder, wrong types, forbidden keys. */
export function indexMutate(): Target<Uint8Array> {
  const seed = JSON.parse(decode(shardedSeed()["model.safetensors.index.json"]!));
  return {
    name: "index/mutate",
    weight: 8,
    generate(rng) {
      const text = mutateJson(rng, seed, { keys: ["weight_map", "metadata", "total_size", "wte.weight"], values: [...UNSAFE_NAMES, { a: "x.safetensors" }] });
      const bytes = encode(text);
      return rng.chance(0.15) ? mutateBytes(rng, bytes) : bytes;
    },
    run: (bytes) => parseShardIndex(bytes, "model.safetensors.index.json"),
    classify: ioLabel,
    check(_bytes, value) {
      for (const [tensor, shard] of value as Map<string, string>) {
        if (leavesFolder(shard)) return `accepted the shard ${JSON.stringify(shard)} for ${tensor}`;
      }
      return undefined;
    },
    memoryBound: (bytes) => 2 * bytes.length + MEMORY_SLACK,
    describe: (bytes) => previewBytes(bytes, 300),
  };
}

/** Property: whatever names a weight_map holds, every accepted one stays inside the folder and the URL base. */
export function indexProperty(): Target<Record<string, string>> {
  const segment = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("..", ".", "", "a", "x.safetensors", "%2e%2e", "%2f", "\\", "C:", "http:", "~", "?x", "#y", "\u0000", " ", "..%2f", "…", "．．") },
    { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  );
  const name = fc.oneof(fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join("/")), fc.string({ maxLength: 12 }), fc.constantFrom(...UNSAFE_NAMES));
  return {
    name: "index/property",
    weight: 6,
    arbitrary: fc.dictionary(fc.string({ maxLength: 6 }), name, { minKeys: 1, maxKeys: 4 }),
    run: (weightMap) => parseShardIndex(encode(JSON.stringify({ weight_map: weightMap })), "model.safetensors.index.json"),
    classify: ioLabel,
    check(_map, value) {
      for (const [, shard] of value as Map<string, string>) if (leavesFolder(shard)) return `accepted the shard ${JSON.stringify(shard)}`;
      return undefined;
    },
    memoryBound: (map) => 4 * JSON.stringify(map).length + MEMORY_SLACK,
    describe: (map) => JSON.stringify(map),
  };
}

/** The sharded loader end to end over in-memory files, one of which is damaged. */
export function shardedLoad(): Target<Record<string, Uint8Array>> {
  const seed = shardedSeed();
  const names = Object.keys(seed);
  const total = (files: Record<string, Uint8Array>) => Object.values(files).reduce((a, b) => a + b.length, 0);
  return {
    name: "sharded/load",
    weight: 6,
    generate(rng) {
      const files = { ...seed };
      const victim = rng.pick(names);
      if (victim.endsWith(".json")) {
        files[victim] = encode(mutateJson(rng, JSON.parse(decode(seed[victim]!)), { keys: ["weight_map"], values: [...UNSAFE_NAMES, ...names] }));
      } else {
        files[victim] = rng.chance(0.5) ? mutateSafetensorsHeader(rng, seed[victim]!) : mutateBytes(rng, seed[victim]!);
      }
      if (rng.chance(0.05)) delete files[rng.pick(names)];
      return files;
    },
    // The source hands out a copy of each file it reads, hence the memory bound of 3x (copy, then half floats widened).
    run: (files) => loadSafetensorsWeights(bytesSource(files)),
    classify: ioLabel,
    check: (files, value) => checkTensors(value as WeightMap, total(files), 2),
    memoryBound: (files) => 3 * total(files) + MEMORY_SLACK,
    describe: (files) => Object.entries(files).map(([k, v]) => `${k}: ${previewBytes(v, 160)}`).join(" | "),
  };
}

/** What a config that configFromHfGpt2 accepted must satisfy. */
function checkConfig(value: unknown): string | undefined {
  const cfg = value as ReturnType<typeof configFromHfGpt2>;
  for (const k of ["nLayers", "dModel", "nHeads", "dHead", "dMlp", "dVocab", "nCtx"] as const) {
    const v = cfg[k];
    // Each size read from the file is at most 2^20; dMlp defaults to 4 × n_embd.
    if (!Number.isSafeInteger(v) || v <= 0 || v > (k === "dMlp" ? 4 : 1) * 2 ** 20) return `${k} = ${v}`;
  }
  if (cfg.nHeads * cfg.dHead !== cfg.dModel) return `nHeads ${cfg.nHeads} × dHead ${cfg.dHead} ≠ dModel ${cfg.dModel}`;
  if (!(cfg.eps > 0 && cfg.eps < 1)) return `eps = ${cfg.eps}`;
  if (!["gelu_new", "gelu", "silu"].includes(cfg.actFn)) return `actFn = ${cfg.actFn}`;
  if (!(cfg.attnScale > 0 && Number.isFinite(cfg.attnScale))) return `attnScale = ${cfg.attnScale}`;
  if (typeof cfg.originalArchitecture !== "string") return "originalArchitecture is not a string";
  return undefined;
}

const CONFIG_KEYS = ["n_layer", "n_head", "n_embd", "n_positions", "n_ctx", "n_inner", "vocab_size", "layer_norm_epsilon",
  "activation_function", "model_type", "architectures", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"];

/** config.json mutations, parsed as the loader does (bytes → null-prototype JSON → config). */
export function configMutate(): Target<Uint8Array> {
  const seeds = configSeeds();
  return {
    name: "config/mutate",
    weight: 8,
    generate(rng) {
      const bytes = encode(mutateJson(rng, rng.pick(seeds), { keys: CONFIG_KEYS, values: [64, 12, 50257, 1024, 3072, "gpt2", "gelu_new"] }));
      return rng.chance(0.1) ? mutateBytes(rng, bytes) : bytes;
    },
    run: (bytes) => configFromHfGpt2(parseJsonObject(bytes, "config.json")),
    classify: ioLabel,
    check: (_bytes, value) => checkConfig(value),
    memoryBound: (bytes) => 2 * bytes.length + MEMORY_SLACK,
    describe: (bytes) => previewBytes(bytes, 400),
  };
}

/** Property: any object of config-like fields either becomes a consistent config or a ConfigError. */
export function configProperty(): Target<Record<string, unknown>> {
  const value = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -4, max: 70 }) },
    { weight: 2, arbitrary: fc.constantFrom(0, 2 ** 20, 2 ** 20 + 1, 2 ** 31, 2 ** 53, 1e308, 0.5, 1e-5, null, "gpt2", "gelu_new", "silu", "relu", true, false) },
    { weight: 1, arbitrary: fc.oneof(fc.double(), fc.string({ maxLength: 5 }), fc.array(fc.nat(3), { maxLength: 2 })) },
  );
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of CONFIG_KEYS) record[k] = fc.oneof({ weight: 1, arbitrary: value }, { weight: 3, arbitrary: fc.constant(undefined) });
  const tinyConfig = tinyGpt2Config();
  return {
    name: "config/property",
    weight: 6,
    // A valid config with any subset of its fields replaced, so both outcomes are common.
    arbitrary: fc.record(record).map((fields) => {
      const json: Record<string, unknown> = { ...tinyConfig };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) json[k] = v;
      return json;
    }),
    run: (json) => configFromHfGpt2(json),
    classify: (e) => (e instanceof ConfigError ? "ConfigError" : undefined),
    check(json, value) {
      const wrong = checkConfig(value);
      if (wrong !== undefined) return wrong;
      const embd = json["n_embd"] as number;
      const heads = json["n_head"] as number;
      if (embd % heads !== 0) return `accepted n_embd ${embd} with n_head ${heads}`;
      return undefined;
    },
    memoryBound: () => MEMORY_SLACK,
    describe: (json) => JSON.stringify(json),
  };
}

const TOKENIZER_KEYS = ["model", "vocab", "merges", "added_tokens", "type", "pre_tokenizer", "byte_fallback", "id", "content", "decoder", "normalizer"];

/** tokenizer.json mutations through validation and the tokenizer library (when installed). */
export function tokenizerMutate(): Target<Uint8Array> {
  const seed = tokenizerSeed();
  return {
    name: "tokenizer/json",
    weight: 5,
    generate(rng) {
      const bytes = encode(mutateJson(rng, seed, { keys: TOKENIZER_KEYS, values: ["BPE", "WordPiece", "a b", ["a", "b"], { id: 1, content: "x" }, "Ġ"] }));
      return rng.chance(0.1) ? mutateBytes(rng, bytes) : bytes;
    },
    async run(bytes) {
      parseTokenizerJson(bytes);
      const tokenizer = await tokenizerFromJson(bytes);
      return tokenizer.encode("ab abc xy");
    },
    classify: ioLabel,
    // The tokenizer library keeps ~100 KiB of tables of its own whatever the file.
    memoryBound: (bytes) => 8 * bytes.length + 4 * MEMORY_SLACK,
    describe: (bytes) => previewBytes(bytes, 300),
  };
}

/** vocab.json + merges.txt mutations (GPT-2's older tokenizer files). */
export function tokenizerFiles(): Target<{ vocab: Uint8Array; merges: string }> {
  const vocab = (tokenizerSeed().model as { vocab: Record<string, number> }).vocab;
  const merges = "#version: 0.2\na b\nab c\nĠ a\nx y\n";
  return {
    name: "tokenizer/vocab-merges",
    weight: 3,
    generate(rng) {
      if (rng.chance(0.5)) return { vocab: encode(mutateJson(rng, vocab, { keys: ["a", "ab", "<|endoftext|>"], values: [0, 255, 256, -1] })), merges };
      return { vocab: encode(JSON.stringify(vocab)), merges: decode(mutateBytes(rng, encode(merges))) };
    },
    run: ({ vocab, merges }) => gpt2TokenizerJsonFromFiles(vocab, merges),
    classify: ioLabel,
    memoryBound: ({ vocab, merges }) => 2 * (vocab.length + merges.length) + MEMORY_SLACK,
    describe: ({ vocab, merges }) => `${previewBytes(vocab, 200)} merges ${JSON.stringify(merges.slice(0, 100))}`,
  };
}

/**
 * fromPretrained end to end on in-memory files of a 1-layer GPT-2 with one file damaged: a typed
 * error, or a model that is then disposed; the engine's memory is back to its level either way.
 */
export function pretrainedMutate(engine: Engine): Target<Record<string, Uint8Array>> {
  const seeds = [tinyGpt2Files("F32"), tinyGpt2Files("F16"), tinyGpt2Files("BF16")];
  const level = engine.stats().bytesInUse;
  const total = (files: Record<string, Uint8Array>) => Object.values(files).reduce((a, b) => a + b.length, 0);
  return {
    name: "pretrained/load",
    weight: 8,
    generate(rng) {
      const files = { ...rng.pick(seeds) };
      const r = rng.int(10);
      if (r < 3) files["config.json"] = encode(mutateJson(rng, JSON.parse(decode(files["config.json"]!)), { keys: CONFIG_KEYS, values: [1, 2, 8, 11, 16, 32] }));
      else if (r < 7) files["model.safetensors"] = mutateSafetensorsHeader(rng, files["model.safetensors"]!);
      else files["model.safetensors"] = mutateBytes(rng, files["model.safetensors"]!);
      return files;
    },
    async run(files) {
      const model = await HookedTransformer.fromPretrained(files, { engine, tokenizer: false, processWeights: true });
      model.dispose();
      return model;
    },
    classify: ioLabel,
    check: (_files, value) => (value instanceof HookedTransformer ? undefined : "fromPretrained returned something else"),
    // The source copies each file, weights widen to float32, and processing writes a processed copy of each weight.
    memoryBound: (files) => 6 * total(files) + MEMORY_SLACK,
    after: () => {
      const now = engine.stats().bytesInUse;
      return now === level ? undefined : `engine bytesInUse ${now}, was ${level} before the case`;
    },
    describe: (files) => Object.entries(files).map(([k, v]) => `${k}: ${previewBytes(v, 200)}`).join(" | "),
  };
}
