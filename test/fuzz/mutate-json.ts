// Structure-aware JSON mutators: replace, delete, add, rename and duplicate keys anywhere in a
// document, with values that sit on validators' limits, then serialise — optionally with raw
// tokens that JSON.stringify cannot produce (1e999, -0, duplicate keys, deep nesting).

import type { Rng } from "./rng.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const FORBIDDEN_KEYS = ["__proto__", "constructor", "prototype"] as const;

const NUMBERS = [
  0, -0, 1, -1, 2, 3, 0.5, 1.5, -1.5, 1e-5, 1e-300, 5e-324, 768, 1 << 20, (1 << 20) + 1, 65_535, 65_536,
  2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e21, 1e308, -1e308, -(2 ** 53),
];

const STRINGS = [
  "", " ", "a", "F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "f32", "gpt2", "llama", "gelu_new", "relu",
  "__proto__", "constructor", "../model.safetensors", "/etc/passwd", "http://example.invalid/x", "C:\\x",
  "model-00001-of-00002.safetensors", "\u0000", "\ud800", "𝒳", "é", "%2e%2e/x", "a".repeat(2000),
];

/** Raw JSON tokens that JSON.stringify never writes but a file may hold. */
const RAW_TOKENS = ["1e999", "-1e999", "-0", "1.0", "1E2", "0.0000001", "123456789012345678901234567890", "[[[[[[[[]]]]]]]]", "{\"a\":{\"b\":{}}}"];

export interface JsonMutateOptions {
  /** Keys worth adding (field names of the format). */
  keys?: readonly string[];
  /** Values worth trying besides the generic ones. */
  values?: readonly Json[];
}

interface Raw {
  placeholders: Map<string, string>;
}

/** A placeholder string that serialisation swaps for raw JSON text. */
function raw(state: Raw, text: string): string {
  const key = `@@RAW${state.placeholders.size}@@`;
  state.placeholders.set(key, text);
  return key;
}

function randomValue(rng: Rng, state: Raw, options: JsonMutateOptions, depth = 0): Json {
  switch (rng.int(depth > 2 ? 6 : 9)) {
    case 0: return rng.pick(NUMBERS);
    case 1: return rng.chance(0.5) ? rng.pick(NUMBERS) * (rng.chance(0.5) ? -1 : 1) : rng.int(1000);
    case 2: return rng.pick(STRINGS);
    case 3: return rng.pick([null, true, false]);
    case 4: return options.values !== undefined && options.values.length > 0 ? structuredClone(rng.pick(options.values)) : rng.pick(STRINGS);
    case 5: return raw(state, rng.chance(0.8) ? rng.pick(RAW_TOKENS) : deepNesting(rng));
    case 6: return Array.from({ length: rng.pick([0, 1, 2, 3, 5, 100]) }, () => randomValue(rng, state, options, depth + 1));
    case 7: return {};
    default: {
      const obj: { [key: string]: Json } = Object.create(null);
      for (let n = rng.int(3); n > 0; n--) setKey(obj, randomKey(rng, options), randomValue(rng, state, options, depth + 1));
      return obj;
    }
  }
}

/** Deep nesting, balanced or not: a recursive parser or reviver could overflow the stack. */
function deepNesting(rng: Rng): string {
  const depth = rng.range(100, 20_000);
  return "[".repeat(depth) + (rng.chance(0.5) ? "]".repeat(depth) : "");
}

function randomKey(rng: Rng, options: JsonMutateOptions): string {
  const r = rng.int(10);
  if (r < 3) return rng.pick(FORBIDDEN_KEYS);
  if (r < 7 && options.keys !== undefined && options.keys.length > 0) return rng.pick(options.keys);
  return rng.pick(STRINGS);
}

/** Sets an own property, even `__proto__` (assignment would change the prototype instead). */
function setKey(obj: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Every object and array in the document, so an edit can land at any depth. */
function containers(value: Json, out: (Json[] | { [key: string]: Json })[] = []): (Json[] | { [key: string]: Json })[] {
  if (value !== null && typeof value === "object") {
    out.push(value);
    for (const child of Array.isArray(value) ? value : Object.values(value)) containers(child, out);
  }
  return out;
}

function editOnce(rng: Rng, doc: Json, state: Raw, options: JsonMutateOptions): Json {
  const nodes = containers(doc);
  if (nodes.length === 0 || rng.chance(0.03)) return randomValue(rng, state, options);
  const node = rng.pick(nodes);
  if (Array.isArray(node)) {
    const op = rng.int(5);
    if (op === 0 || node.length === 0) node.splice(rng.int(node.length + 1), 0, randomValue(rng, state, options));
    else if (op === 1) node.splice(rng.int(node.length), 1);
    else if (op === 2) node.push(...node.slice(0, rng.range(1, 3)));
    else node[rng.int(node.length)] = randomValue(rng, state, options);
    return doc;
  }
  const keys = Object.keys(node);
  const op = rng.int(6);
  if (op === 0 || keys.length === 0) setKey(node, randomKey(rng, options), randomValue(rng, state, options));
  else if (op === 1) delete node[rng.pick(keys)];
  else if (op === 2) {
    const from = rng.pick(keys);
    const value = node[from]!;
    delete node[from];
    setKey(node, randomKey(rng, options), value);
  } else if (op === 3) {
    // A duplicate key: JSON.parse keeps the last one, a careless validator might read the first.
    const key = rng.pick(keys);
    setKey(node, raw(state, JSON.stringify(key)), randomValue(rng, state, options));
  } else node[rng.pick(keys)] = randomValue(rng, state, options);
  return doc;
}

/**
 * Mutates a copy of `doc` with 1..n edits and returns the JSON text.
 * @example mutateJson(rng, { n_layer: 2 }, { keys: ["n_layer", "n_head"] })  // '{"n_layer":-1}'
 */
export function mutateJson(rng: Rng, doc: unknown, options: JsonMutateOptions = {}): string {
  const state: Raw = { placeholders: new Map() };
  let copy = structuredClone(doc) as Json;
  for (let n = rng.count(4); n > 0; n--) copy = editOnce(rng, copy, state, options);
  return serialise(copy, state);
}

function serialise(doc: Json, state: Raw): string {
  let text = JSON.stringify(doc) ?? "null";
  for (const [key, token] of state.placeholders) {
    // A placeholder used as a key becomes `"key":`; as a value, the raw token.
    text = text.split(`"${key}"`).join(token);
  }
  return text;
}
