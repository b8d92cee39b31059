// Format-aware safetensors mutators: parse a valid file's header, edit its entries (keys,
// dtypes, shapes, offsets, metadata), and reassemble it with a correct, padded or lying length.

import { setLengthField } from "./mutate-bytes.js";
import { FORBIDDEN_KEYS, mutateJson } from "./mutate-json.js";
import type { Rng } from "./rng.js";

interface Entry {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
  [key: string]: unknown;
}

type Header = Record<string, unknown>;

const DTYPES = ["F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "f32", "", "F32 ", 32, null, ["F32"]];
const DIMS = [0, 1, 2, 3, -1, -2, 0.5, 1.5, 1e-9, 2 ** 20, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, "2", null, [2], true];
const OFFSETS = [0, 1, 2, 3, 4, 7, 8, -1, -8, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 1e308, "0", null, true];

/** Splits a file into its header object and data section; undefined when the seed is not a readable file. */
export function splitSafetensors(bytes: Uint8Array): { header: Header; data: Uint8Array } | undefined {
  if (bytes.length < 8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const n = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (8 + n > bytes.length) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Header;
    return { header, data: bytes.subarray(8 + n) };
  } catch {
    return undefined;
  }
}

/** Reassembles a file from header text and data; `lengthDelta` makes the length field lie. */
export function joinSafetensors(headerText: string, data: Uint8Array, options: { pad?: number; lengthDelta?: number } = {}): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const headerLength = json.length + (options.pad ?? 0);
  const out = new Uint8Array(8 + headerLength + data.length);
  setLengthField(out, Math.max(0, headerLength + (options.lengthDelta ?? 0)));
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  out.set(data, 8 + headerLength);
  return out;
}

function defineKey(obj: Header, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function entryNames(header: Header): string[] {
  return Object.keys(header).filter((k) => k !== "__metadata__");
}

type HeaderEdit = (rng: Rng, header: Header, dataLength: number) => void;

const EDITS: readonly [string, HeaderEdit][] = [
  ["dtype", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e) e.dtype = rng.pick(DTYPES);
  }],
  ["shape_dim", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e && Array.isArray(e.shape)) {
      if (e.shape.length === 0) e.shape.push(rng.pick(DIMS));
      else e.shape[rng.int(e.shape.length)] = rng.pick(DIMS);
    }
  }],
  ["shape_form", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e) e.shape = rng.pick<unknown>([[], [0], null, "[2,3]", {}, Array(rng.range(2, 200)).fill(1), Array(64).fill(2), [2 ** 26, 2 ** 26], [-1, -1]]);
  }],
  ["offsets", (rng, h, dataLength) => {
    const e = pickEntry(rng, h);
    if (!e) return;
    const o = Array.isArray(e.data_offsets) ? [...(e.data_offsets as unknown[])] : [0, 0];
    const i = rng.int(2);
    const r = rng.int(4);
    if (r === 0) o[i] = rng.pick(OFFSETS);
    else if (r === 1) o[i] = (o[i] as number) + rng.pick([-4, -2, -1, 1, 2, 4]);
    else if (r === 2) o[i] = dataLength + rng.range(-2, 2);
    else o.reverse();
    e.data_offsets = o;
  }],
  ["offsets_form", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e) e.data_offsets = rng.pick<unknown>([[], [0], [0, 0, 0], null, "0,4", { 0: 0, 1: 4 }, [[0], [4]]]);
  }],
  ["overlap", (rng, h) => {
    // Give one tensor another's offsets (same size) or shift it into its neighbour.
    const a = pickEntry(rng, h);
    const b = pickEntry(rng, h);
    if (a && b && Array.isArray(a.data_offsets) && Array.isArray(b.data_offsets)) {
      a.data_offsets = rng.chance(0.5) ? [...b.data_offsets] : (a.data_offsets as number[]).map((x) => x + 4);
    }
  }],
  ["inflate", (rng, h, dataLength) => {
    // A shape whose size is huge but whose offsets are consistent with it (up to the data's end).
    const e = pickEntry(rng, h);
    if (!e) return;
    const dims = rng.pick([[2 ** 20, 2 ** 20], [2 ** 30, 4], [2 ** 26, 2 ** 26, 2 ** 26], [dataLength], [dataLength / 4 + 1]]);
    e.shape = dims;
    const size = e.dtype === "F32" ? 4 : 2;
    e.data_offsets = [0, dims.reduce((a, b) => a * b, 1) * size];
  }],
  ["forbidden_key", (rng, h) => {
    const names = entryNames(h);
    const key = rng.pick(FORBIDDEN_KEYS);
    if (names.length > 0 && rng.chance(0.5)) {
      const from = rng.pick(names);
      const value = h[from];
      delete h[from];
      defineKey(h, key, value);
    } else {
      defineKey(h, key, rng.chance(0.5) ? { polluted: true } : { dtype: "F32", shape: [0], data_offsets: [0, 0] });
    }
  }],
  ["nested_forbidden", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e) defineKey(e as Header, rng.pick(FORBIDDEN_KEYS), { polluted: true });
  }],
  ["metadata", (rng, h) => {
    h.__metadata__ = rng.pick<unknown>([null, "x", 3, [], { a: 1 }, { a: null }, { a: ["x"] }, { a: "b", c: "d" }, {}, { __proto__x: "y" }]);
  }],
  ["entry_form", (rng, h) => {
    const names = entryNames(h);
    if (names.length === 0) return;
    h[rng.pick(names)] = rng.pick<unknown>([null, 0, "F32", [], [1, 2], {}, { dtype: "F32" }, { dtype: "F32", shape: [0] }]);
  }],
  ["drop_field", (rng, h) => {
    const e = pickEntry(rng, h);
    if (e) delete e[rng.pick(["dtype", "shape", "data_offsets"])];
  }],
  ["rename", (rng, h) => {
    const names = entryNames(h);
    if (names.length === 0) return;
    const from = rng.pick(names);
    const value = h[from];
    delete h[from];
    defineKey(h, rng.pick(["", " ", "a".repeat(5000), "\u0000", "é", "__metadata__", "toString", "hasOwnProperty", "valueOf", from + "x"]), value);
  }],
  ["many_entries", (rng, h) => {
    // Many zero-size tensors: the header is large but the data is not.
    for (let i = rng.range(100, 3000); i > 0; i--) h[`z.${i}`] = { dtype: "F32", shape: [0], data_offsets: [0, 0] };
  }],
];

function pickEntry(rng: Rng, header: Header): Entry | undefined {
  const names = entryNames(header);
  if (names.length === 0) return undefined;
  const e = header[rng.pick(names)];
  return e !== null && typeof e === "object" && !Array.isArray(e) ? (e as Entry) : undefined;
}

/** A header edit (or a generic JSON edit), reassembled with a length that is right, padded or wrong. */
export function mutateSafetensorsHeader(rng: Rng, seed: Uint8Array): Uint8Array {
  const parts = splitSafetensors(seed);
  if (parts === undefined) return seed.slice();
  const header = structuredClone(parts.header);
  let text: string;
  if (rng.chance(0.15)) {
    text = mutateJson(rng, header, { keys: ["dtype", "shape", "data_offsets", "__metadata__"], values: [[0, 4], [2, 3], "F32", "F16"] });
  } else {
    for (let n = rng.count(3); n > 0; n--) rng.pick(EDITS)[1](rng, header, parts.data.length);
    text = JSON.stringify(header);
  }
  let data = parts.data;
  if (rng.chance(0.1)) data = data.subarray(0, rng.int(data.length + 1));
  const pad = rng.chance(0.3) ? rng.range(0, 8) : 0;
  const lengthDelta = rng.chance(0.1) ? rng.pick([-2, -1, 1, 2, 8]) : 0;
  if (rng.chance(0.05)) text = rng.pick(["\ufeff", " ", "\n", "[", "x"]) + text;
  return joinSafetensors(text, data, { pad, lengthDelta });
}
