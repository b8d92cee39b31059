// The tokenizer adapter. Byte-level BPE comes from the optional peer dependency
// @huggingface/tokenizers, imported only when a tokenizer is loaded, so the core
// keeps zero runtime dependencies and a model works on token ids alone without it.

import { MissingDependencyError, ModelFormatError } from "./errors.js";
import { isJsonObject, parseJsonObject, type JsonObject } from "./json.js";
import type { ModelSource } from "./model-source.js";
import { gpt2TokenizerJsonFromFiles, parseTokenizerJson } from "./tokenizer-files.js";

/** Text ↔ token ids. */
export interface Tokenizer {
  /** Token ids of `text`, without BOS/EOS (the model's `toTokens` prepends BOS, as TransformerLens does). */
  encode(text: string): number[];
  /** The text of `ids` (special tokens included, spaces exactly as encoded). */
  decode(ids: readonly number[]): string;
  /** The vocabulary string of one id (GPT-2: byte-level form, e.g. `Ġthe`), or undefined. */
  idToToken?(id: number): string | undefined;
  /** The id of a vocabulary string, or undefined. */
  tokenToId?(token: string): number | undefined;
  /** One more than the largest token id. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, when the model defines one (GPT-2: `<|endoftext|>`). */
  readonly bosTokenId?: number;
  /** End-of-sequence id, when the model defines one. */
  readonly eosTokenId?: number;
}

/** Options of {@link loadTokenizer}. */
export interface LoadTokenizerOptions {
  /**
   * Loads the `@huggingface/tokenizers` module; defaults to a dynamic `import()`. Pass one where
   * dynamic imports of bare names do not work (e.g. `() => import("https://esm.sh/@huggingface/tokenizers")`).
   */
  importLibrary?: () => Promise<unknown>;
}

/** The part of the @huggingface/tokenizers Tokenizer that is used here. */
interface LibraryTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
type LibraryConstructor = new (tokenizer: object, config: object) => LibraryTokenizer;

const PACKAGE = "@huggingface/tokenizers";

/**
 * Loads the tokenizer of a model folder from `tokenizer.json`, or else from GPT-2's
 * `vocab.json` + `merges.txt`; `tokenizer_config.json` and `config.json`, when present, give
 * the BOS/EOS tokens. Returns `null` when the folder has no tokenizer files.
 *
 * @throws MissingDependencyError if `@huggingface/tokenizers` is not installed
 * @throws ModelFormatError naming the file for malformed tokenizer files
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer(openSource("./gpt2"));
 * tokenizer?.encode("Hello world");  // [15496, 995]
 * ```
 */
export async function loadTokenizer(source: ModelSource, options: LoadTokenizerOptions = {}): Promise<Tokenizer | null> {
  let json: JsonObject;
  let file: string;
  if (await source.exists("tokenizer.json")) {
    file = "tokenizer.json";
    json = parseTokenizerJson(await source.readFile(file), file);
  } else if ((await source.exists("vocab.json")) && (await source.exists("merges.txt"))) {
    file = "vocab.json";
    json = gpt2TokenizerJsonFromFiles(await source.readFile("vocab.json"), await source.readText("merges.txt"));
  } else {
    return null;
  }
  const tokenizerConfig = (await source.exists("tokenizer_config.json"))
    ? parseJsonObject(await source.readFile("tokenizer_config.json"), "tokenizer_config.json")
    : undefined;
  const modelConfig = (await source.exists("config.json")) ? parseJsonObject(await source.readFile("config.json"), "config.json") : undefined;
  const Library = await importTokenizerClass(options);
  return wrapTokenizer(Library, json, file, tokenizerConfig, modelConfig);
}

/**
 * Builds a {@link Tokenizer} from the text or bytes of a tokenizer.json (validated as in
 * {@link loadTokenizer}); for callers that hold the file themselves.
 *
 * @throws MissingDependencyError if `@huggingface/tokenizers` is not installed
 */
export async function tokenizerFromJson(
  tokenizerJson: string | Uint8Array,
  options: LoadTokenizerOptions & { tokenizerConfig?: JsonObject } = {},
): Promise<Tokenizer> {
  const bytes = typeof tokenizerJson === "string" ? new TextEncoder().encode(tokenizerJson) : tokenizerJson;
  const json = parseTokenizerJson(bytes, "tokenizer.json");
  const Library = await importTokenizerClass(options);
  return wrapTokenizer(Library, json, "tokenizer.json", options.tokenizerConfig, undefined);
}

async function importTokenizerClass(options: LoadTokenizerOptions): Promise<LibraryConstructor> {
  let module: unknown;
  try {
    module = await (options.importLibrary ?? (() => import("@huggingface/tokenizers")))();
  } catch (e) {
    throw new MissingDependencyError(PACKAGE, "Loading a tokenizer", { cause: e });
  }
  const Tokenizer = (module as { Tokenizer?: unknown } | null)?.Tokenizer;
  if (typeof Tokenizer !== "function") {
    throw new MissingDependencyError(PACKAGE, "Loading a tokenizer (the loaded module has no Tokenizer class)");
  }
  return Tokenizer as LibraryConstructor;
}

function wrapTokenizer(
  Library: LibraryConstructor,
  json: JsonObject,
  file: string,
  tokenizerConfig: JsonObject | undefined,
  modelConfig: JsonObject | undefined,
): Tokenizer {
  let lib: LibraryTokenizer;
  try {
    lib = new Library(json, libraryConfig(tokenizerConfig));
  } catch (e) {
    throw new ModelFormatError(file, "bad_tokenizer", `cannot build a tokenizer (${(e as Error).message})`);
  }
  let vocabSize = 0;
  for (const id of lib.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  const special = (key: "bos" | "eos"): number | undefined => {
    const fromTokenizer = specialTokenId(lib, tokenizerConfig?.[`${key}_token`]);
    if (fromTokenizer !== undefined) return fromTokenizer;
    const fromModel = modelConfig?.[`${key}_token_id`];
    if (typeof fromModel === "number" && Number.isInteger(fromModel) && fromModel >= 0 && fromModel < vocabSize) return fromModel;
    return lib.token_to_id("<|endoftext|>"); // GPT-2 uses it for both, with no tokenizer_config entry
  };
  const bosTokenId = special("bos");
  const eosTokenId = special("eos");
  return {
    vocabSize,
    ...(bosTokenId === undefined ? {} : { bosTokenId }),
    ...(eosTokenId === undefined ? {} : { eosTokenId }),
    encode: (text) => {
      if (typeof text !== "string") throw new TypeError(`encode: text must be a string, got ${typeof text}`);
      return lib.encode(text, { add_special_tokens: false }).ids;
    },
    decode: (ids) => {
      ids.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize || lib.id_to_token(id) === undefined) {
          throw new RangeError(`decode: ids[${i}] = ${id} is not a token id in [0, ${vocabSize})`);
        }
      });
      if (ids.length === 0) return "";
      return lib.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    },
    idToToken: (id) => lib.id_to_token(id),
    tokenToId: (token) => lib.token_to_id(token),
  };
}

/** Only the tokenizer_config fields the library reads, type-checked, so a hostile config cannot reach it. */
function libraryConfig(config: JsonObject | undefined): object {
  const out: Record<string, unknown> = {};
  if (config === undefined) return out;
  for (const key of ["clean_up_tokenization_spaces", "remove_space", "do_lowercase_and_remove_accent"]) {
    if (typeof config[key] === "boolean") out[key] = config[key];
  }
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra) && extra.every((t) => typeof t === "string")) out.additional_special_tokens = extra;
  return out;
}

function specialTokenId(lib: LibraryTokenizer, value: unknown): number | undefined {
  const content = isJsonObject(value) ? value.content : value;
  return typeof content === "string" ? lib.token_to_id(content) : undefined;
}
