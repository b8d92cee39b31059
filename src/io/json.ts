// JSON parsing for untrusted files: strict UTF-8, objects rebuilt with a null prototype,
// and keys that could reach Object.prototype through later copies refused outright.

import { ModelFormatError } from "./errors.js";

/** A parsed JSON object without a prototype: `obj.constructor` is `undefined`, never a function. */
export type JsonObject = { [key: string]: unknown };

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Decodes strict UTF-8 (no replacement characters), throwing a {@link ModelFormatError} naming `file`.
 *
 * @example
 * ```ts
 * decodeUtf8(new Uint8Array([0x68, 0x69]), "config.json");  // "hi"
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return fail(file, "not_utf8", "is not valid UTF-8");
  }
}

/** Whether `key` is one of the keys refused in untrusted JSON (`__proto__`, `constructor`, `prototype`). */
export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key);
}

/**
 * Parses untrusted JSON text into null-prototype objects.
 *
 * @param text - the JSON text
 * @param file - the file name used in error messages
 * @param options.allowAnyKey - accept `__proto__`/`constructor`/`prototype` as keys (still as own
 *   properties of null-prototype objects); for vocabularies, where such strings are ordinary tokens
 * @throws ModelFormatError `invalid_json` or `forbidden_key`
 * @example
 * ```ts
 * const cfg = parseJson('{"n_layer": 12}', "config.json") as JsonObject;
 * cfg.n_layer;  // 12
 * ```
 */
export function parseJson(text: string, file: string, options: { allowAnyKey?: boolean } = {}): unknown {
  const allowAnyKey = options.allowAnyKey ?? false;
  try {
    return JSON.parse(text, function (this: unknown, key: string, value: unknown) {
      if (!allowAnyKey && FORBIDDEN_KEYS.has(key)) {
        throw new ModelFormatError(file, "forbidden_key", `refuses the key ${JSON.stringify(key)}`);
      }
      return isPlainObject(value) ? toNullPrototype(value) : value;
    });
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    return fail(file, "invalid_json", `is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Parses untrusted JSON that must be an object (bytes or text), e.g. config.json.
 *
 * @throws ModelFormatError `not_utf8`, `invalid_json`, `forbidden_key` or `not_object`
 */
export function parseJsonObject(input: Uint8Array | string, file: string, options: { allowAnyKey?: boolean } = {}): JsonObject {
  const text = typeof input === "string" ? input : decodeUtf8(input, file);
  const value = parseJson(text, file, options);
  if (!isJsonObject(value)) return fail(file, "not_object", `must hold a JSON object, got ${describeJson(value)}`);
  return value;
}

/** Whether a parsed JSON value is an object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short description of a JSON value's type for error messages: `array`, `null`, `string`, ... */
export function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) !== null;
}

function toNullPrototype(value: Record<string, unknown>): JsonObject {
  const out = Object.create(null) as JsonObject;
  // Object.keys + defineProperty: a "__proto__" key (when allowed) stays an own data property.
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, { value: value[key], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function fail(file: string, code: "not_utf8" | "invalid_json" | "not_object", reason: string): never {
  throw new ModelFormatError(file, code, reason);
}
