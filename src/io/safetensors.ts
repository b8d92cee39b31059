// safetensors: an 8-byte little-endian header length N, N bytes of JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
// then the raw little-endian data; offsets are relative to the end of the header.
// Everything in the header is validated before any tensor memory is allocated.

import { ModelFormatError, type ModelFormatCode } from "./errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";
import { decodeUtf8, describeJson, isForbiddenKey, isJsonObject, parseJson, type JsonObject } from "./json.js";

/** The storage dtypes hooklens reads and writes. */
export type SafetensorsDtype = "F32" | "F16" | "BF16";

/** One tensor as loaded: its storage dtype, its shape and its values as float32. */
export interface LoadedTensor {
  /** The dtype the file stored it in (the data is always float32). */
  readonly dtype: SafetensorsDtype;
  /** Dimensions, row-major. */
  readonly shape: number[];
  /** Row-major values; F16/BF16 are converted exactly. */
  readonly data: Float32Array;
}

/** A parsed safetensors file: tensors by name (null prototype) and the `__metadata__` strings. */
export interface SafetensorsFile {
  /** Tensors by name; a null-prototype object, so any tensor name is safe to look up. */
  readonly tensors: Record<string, LoadedTensor>;
  /** The `__metadata__` string map (null prototype; empty when absent). */
  readonly metadata: Record<string, string>;
}

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /**
   * Always copy F32 data. By default an aligned F32 tensor is a view of `bytes` (no copy), so
   * editing the tensor edits the input buffer and the input stays alive as long as the tensor.
   */
  copy?: boolean;
}

/** The largest header accepted, as in the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const METADATA_KEY = "__metadata__";

interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses a safetensors file held in memory.
 *
 * Accepts F32, F16 and BF16 tensors (half floats are converted exactly to float32) and refuses
 * any malformed or hostile header with a {@link ModelFormatError} naming `file` and the problem,
 * before allocating anything beyond the header text.
 *
 * @param bytes - the whole file
 * @param file - the file name used in error messages
 * @example
 * ```ts
 * const { tensors } = readSafetensors(await source.readFile("model.safetensors"), "model.safetensors");
 * tensors["wte.weight"].shape;  // [50257, 768]
 * ```
 */
export function readSafetensors(bytes: Uint8Array, file: string, options: ReadSafetensorsOptions = {}): SafetensorsFile {
  if (bytes.length < 8) fail(file, "too_short", `is ${bytes.length} bytes long, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLength > MAX_HEADER_BYTES) {
    fail(file, "header_too_large", `declares a ${headerLength}-byte header, more than the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (8 + headerLength > bytes.length) {
    fail(file, "header_out_of_range", `declares a ${headerLength}-byte header but only ${bytes.length - 8} bytes follow the length`);
  }
  const header = parseHeader(bytes.subarray(8, 8 + headerLength), file);
  const dataStart = 8 + headerLength;
  const metadata = readMetadata(header, file);
  const entries = validateEntries(header, file, bytes.length - dataStart);

  const tensors = Object.create(null) as Record<string, LoadedTensor>;
  for (const entry of entries) {
    const data = decodeTensor(bytes, dataStart + entry.begin, entry, options.copy ?? false);
    tensors[entry.name] = { dtype: entry.dtype, shape: entry.shape, data };
  }
  return { tensors, metadata };
}

function parseHeader(headerBytes: Uint8Array, file: string): JsonObject {
  const text = decodeUtf8(headerBytes, file);
  const header = parseJson(text, file);
  if (!isJsonObject(header)) fail(file, "not_object", `header must be a JSON object, got ${describeJson(header)}`);
  return header;
}

function readMetadata(header: JsonObject, file: string): Record<string, string> {
  const metadata = Object.create(null) as Record<string, string>;
  const raw = header[METADATA_KEY];
  if (raw === undefined) return metadata;
  if (!isJsonObject(raw)) fail(file, "bad_metadata", `__metadata__ must be an object of strings, got ${describeJson(raw)}`);
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (typeof value !== "string") {
      fail(file, "bad_metadata", `__metadata__.${key} must be a string, got ${describeJson(value)}`);
    }
    metadata[key] = value;
  }
  return metadata;
}

function validateEntries(header: JsonObject, file: string, dataLength: number): Entry[] {
  const entries: Entry[] = [];
  for (const name of Object.keys(header)) {
    if (name === METADATA_KEY) continue;
    entries.push(validateEntry(name, header[name], file, dataLength));
  }
  // Sweep by start offset, remembering the furthest end so far: a long tensor can overlap a later one.
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  let reach: Entry | undefined;
  for (const cur of sorted) {
    if (reach !== undefined && cur.begin < reach.end) {
      fail(
        file,
        "overlapping_offsets",
        `tensors "${reach.name}" [${reach.begin}, ${reach.end}) and "${cur.name}" [${cur.begin}, ${cur.end}) overlap`,
      );
    }
    if (reach === undefined || cur.end > reach.end) reach = cur;
  }
  return entries;
}

function validateEntry(name: string, raw: unknown, file: string, dataLength: number): Entry {
  const where = `tensor "${name}"`;
  if (isForbiddenKey(name)) fail(file, "forbidden_key", `refuses the tensor name ${JSON.stringify(name)}`);
  if (!isJsonObject(raw)) fail(file, "bad_entry", `${where} must be an object, got ${describeJson(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string") fail(file, "bad_entry", `${where} has no string "dtype" (got ${describeJson(dtype)})`);
  if (!Array.isArray(shape)) fail(file, "bad_entry", `${where} has no "shape" array (got ${describeJson(shape)})`);
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(file, "bad_entry", `${where} needs "data_offsets" as [begin, end] (got ${describeJson(offsets)})`);
  }
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
    fail(file, "unknown_dtype", `${where} has dtype ${JSON.stringify(dtype)}; only F32, F16 and BF16 are supported`);
  }
  const numel = checkShape(shape, file, where);
  const [begin, end] = offsets as unknown[];
  if (!isIndex(begin) || !isIndex(end)) {
    fail(file, "bad_offsets", `${where} has data_offsets ${JSON.stringify(offsets)}; both must be non-negative integers`);
  }
  if (begin > end) fail(file, "bad_offsets", `${where} has data_offsets [${begin}, ${end}] with begin > end`);
  if (end > dataLength) {
    fail(file, "offsets_out_of_range", `${where} ends at data offset ${end} but the data section is ${dataLength} bytes`);
  }
  const size = DTYPE_SIZE[dtype];
  if (end - begin !== numel * size) {
    fail(
      file,
      "size_mismatch",
      `${where} spans ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${numel * size}`,
    );
  }
  if (begin % size !== 0) fail(file, "unaligned_offsets", `${where} starts at data offset ${begin}, not a multiple of ${size} (${dtype})`);
  return { name, dtype, shape: shape as number[], begin, end };
}

function checkShape(shape: unknown[], file: string, where: string): number {
  let numel = 1;
  for (const dim of shape) {
    if (!isIndex(dim)) fail(file, "bad_shape", `${where} has shape ${JSON.stringify(shape)}; sizes must be non-negative integers`);
    numel *= dim;
    if (numel > Number.MAX_SAFE_INTEGER) fail(file, "bad_shape", `${where} has shape ${JSON.stringify(shape)} whose size overflows`);
  }
  return numel;
}

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function decodeTensor(bytes: Uint8Array, start: number, entry: Entry, copy: boolean): Float32Array {
  const count = (entry.end - entry.begin) / DTYPE_SIZE[entry.dtype];
  const offset = bytes.byteOffset + start;
  if (entry.dtype === "F32") {
    if (LITTLE_ENDIAN && offset % 4 === 0) {
      const view = new Float32Array(bytes.buffer, offset, count);
      return copy ? view.slice() : view;
    }
    const out = new Float32Array(count);
    const dv = new DataView(bytes.buffer, offset, count * 4);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  let halves: Uint16Array;
  if (LITTLE_ENDIAN && offset % 2 === 0) {
    halves = new Uint16Array(bytes.buffer, offset, count);
  } else {
    halves = new Uint16Array(count);
    const dv = new DataView(bytes.buffer, offset, count * 2);
    for (let i = 0; i < count; i++) halves[i] = dv.getUint16(i * 2, true);
  }
  return entry.dtype === "F16" ? f16ToF32(halves) : bf16ToF32(halves);
}

/** A tensor to write: row-major float32 values and their shape. */
export interface TensorToWrite {
  /** Dimensions, row-major; their product must equal `data.length`. */
  readonly shape: readonly number[];
  /** The values. */
  readonly data: Float32Array;
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Storage dtype of every tensor; F16/BF16 round to nearest, ties to even. Default F32. */
  dtype?: SafetensorsDtype;
  /** String metadata stored as `__metadata__`. */
  metadata?: Record<string, string>;
}

/**
 * Serialises tensors as a safetensors file, in the order of `tensors`' keys.
 *
 * The header is padded with spaces so the data starts 8-byte aligned, as the reference writer does.
 *
 * @throws TypeError if a name is reserved (`__metadata__`, `__proto__`, ...) or a shape does not match its data
 * @example
 * ```ts
 * const bytes = writeSafetensors({ "wte.weight": { shape: [2, 3], data: new Float32Array(6) } }, { dtype: "F16" });
 * readSafetensors(bytes, "out.safetensors").tensors["wte.weight"].dtype;  // "F16"
 * ```
 */
export function writeSafetensors(tensors: Record<string, TensorToWrite>, options: WriteSafetensorsOptions = {}): Uint8Array {
  const dtype = options.dtype ?? "F32";
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") throw new TypeError(`writeSafetensors: dtype must be F32, F16 or BF16, got ${String(dtype)}`);
  const size = DTYPE_SIZE[dtype];
  const header = Object.create(null) as Record<string, unknown>;
  if (options.metadata !== undefined) {
    const metadata = Object.create(null) as Record<string, string>;
    for (const [key, value] of Object.entries(options.metadata)) {
      if (typeof value !== "string") throw new TypeError(`writeSafetensors: metadata.${key} must be a string, got ${typeof value}`);
      metadata[key] = value;
    }
    header[METADATA_KEY] = metadata;
  }
  const names = Object.keys(tensors);
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY || isForbiddenKey(name)) throw new TypeError(`writeSafetensors: tensor name ${JSON.stringify(name)} is reserved`);
    const { shape, data } = tensors[name]!;
    const numel = shape.reduce((a, b) => a * b, 1);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || numel !== data.length) {
      throw new TypeError(`writeSafetensors: tensor "${name}" has shape [${shape.join(", ")}] but ${data.length} values`);
    }
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + numel * size] };
    offset += numel * size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const name of names) {
    const { data } = tensors[name]!;
    at = writeData(out, view, at, data, dtype);
  }
  return out;
}

function writeData(out: Uint8Array, view: DataView, at: number, data: Float32Array, dtype: SafetensorsDtype): number {
  if (dtype === "F32") {
    if (LITTLE_ENDIAN) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    else for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i]!, true);
    return at + data.length * 4;
  }
  const halves = dtype === "F16" ? f32ToF16(data) : f32ToBf16(data);
  for (let i = 0; i < halves.length; i++) view.setUint16(at + 2 * i, halves[i]!, true);
  return at + halves.length * 2;
}

function fail(file: string, code: ModelFormatCode, reason: string): never {
  throw new ModelFormatError(file, code, reason);
}
