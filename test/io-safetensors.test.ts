import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { ModelFormatError, type ModelFormatCode } from "../src/io/errors.js";
import { f16ToF32, f32ToF16 } from "../src/io/half.js";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { stripPrefix } from "../src/io/checkpoint.js";
import { REFERENCE_ROOT } from "./reference-root.js";

const REFERENCE = REFERENCE_ROOT.slice(0, -1);
const FILE = "bad.safetensors";

function referenceFile(folder: string): Uint8Array {
  return new Uint8Array(readFileSync(`${REFERENCE}/${folder}/model.safetensors`));
}

/** A safetensors file from a header (object or raw text) and data, with an optional forged header length. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectFormatError(bytes: Uint8Array, code: ModelFormatCode, mentions: RegExp): ModelFormatError {
  let caught: unknown;
  try {
    readSafetensors(bytes, FILE);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ModelFormatError);
  const error = caught as ModelFormatError;
  expect({ code: error.code, file: error.file }).toEqual({ code, file: FILE });
  expect(error.message.startsWith(`${FILE}: `)).toBe(true);
  expect(error.message).toMatch(mentions);
  return error;
}

const f32Entry = (shape: number[], begin: number, end: number) => ({ dtype: "F32", shape, data_offsets: [begin, end] });

describe("reference checkpoints", () => {
  const f32 = readSafetensors(referenceFile("tiny-gpt2-random"), "model.safetensors");
  const f16 = readSafetensors(referenceFile("tiny-gpt2-random-f16"), "model.safetensors");

  test("both files hold the same GPT-2 tensors, F16 ones under the transformer. prefix", () => {
    const f32Names = Object.keys(f32.tensors).sort();
    const f16Names = Object.keys(f16.tensors).map((n) => stripPrefix(n, "transformer.")).sort();
    expect(f16Names).toEqual(f32Names);
    expect(Object.keys(f16.tensors).every((n) => n.startsWith("transformer."))).toBe(true);
    expect(f32.tensors["wte.weight"]!.shape).toEqual([100, 64]);
    expect(f32.tensors["wpe.weight"]!.shape).toEqual([32, 64]);
    expect(f32.tensors["h.0.attn.c_attn.weight"]!.shape).toEqual([64, 192]);
    expect(f32.tensors["h.2.mlp.c_fc.weight"]!.shape).toEqual([64, 256]);
    expect(f32.tensors["wte.weight"]!.dtype).toBe("F32");
    expect(f16.tensors["transformer.wte.weight"]!.dtype).toBe("F16");
    expect(f16.metadata.format).toBe("pt");
    expect(Object.getPrototypeOf(f32.tensors)).toBeNull();
  });

  test("F16 values are the F32 values rounded to half precision", () => {
    for (const [name, t32] of Object.entries(f32.tensors)) {
      const t16 = f16.tensors[`transformer.${name}`]!;
      expect(t16.shape).toEqual(t32.shape);
      expect(t16.data.length).toBe(t32.data.length);
      // Exactly the nearest half ...
      expect(Array.from(t16.data)).toEqual(Array.from(f16ToF32(f32ToF16(t32.data))));
      // ... and, independently of our converter, within half an ulp of half precision.
      const outside = Array.from(t32.data).filter((a, i) => !(Math.abs(t16.data[i]! - a) <= Math.abs(a) * 2 ** -11 + 2 ** -25));
      expect(outside).toEqual([]);
    }
    // A value that is not representable in half precision really was rounded.
    const w = f32.tensors["h.0.attn.c_attn.weight"]!.data;
    expect(Array.from(w).some((v, i) => v !== f16.tensors["transformer.h.0.attn.c_attn.weight"]!.data[i])).toBe(true);
  });

  test("F32 data is read without copying when aligned, copied on request or when unaligned", () => {
    const bytes = referenceFile("tiny-gpt2-random");
    const viewed = readSafetensors(bytes, "m").tensors["ln_f.bias"]!.data;
    expect(viewed.buffer).toBe(bytes.buffer);
    const copied = readSafetensors(bytes, "m", { copy: true }).tensors["ln_f.bias"]!.data;
    expect(copied.buffer).not.toBe(bytes.buffer);
    expect(Array.from(copied)).toEqual(Array.from(viewed));
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const unaligned = readSafetensors(shifted.subarray(1), "m").tensors["ln_f.bias"]!.data;
    expect(Array.from(unaligned)).toEqual(Array.from(viewed));
  });
});

describe("writer → reader", () => {
  const values = new Float32Array([0, -0, 1, -2.5, 0.1, 3.4028234663852886e38, 1e-40, -1e-45, Infinity, -Infinity, NaN, 65504]);

  test("F32 round-trips every value bit for bit, with metadata and odd shapes", () => {
    const bytes = writeSafetensors(
      { a: { shape: [3, 4], data: values }, scalar: { shape: [], data: new Float32Array([7]) }, empty: { shape: [0, 5], data: new Float32Array(0) } },
      { metadata: { format: "pt", note: "hooklens" } },
    );
    const file = readSafetensors(bytes, "x.safetensors");
    expect(new Uint32Array(file.tensors.a!.data.slice().buffer)).toEqual(new Uint32Array(values.slice().buffer));
    expect(file.tensors.a!.shape).toEqual([3, 4]);
    expect(file.tensors.scalar).toMatchObject({ shape: [], dtype: "F32" });
    expect(Array.from(file.tensors.scalar!.data)).toEqual([7]);
    expect(file.tensors.empty!.shape).toEqual([0, 5]);
    expect(file.tensors.empty!.data.length).toBe(0);
    expect({ ...file.metadata }).toEqual({ format: "pt", note: "hooklens" });
  });

  test("the header is space-padded to 8 bytes and tensors are laid out in order", () => {
    const bytes = writeSafetensors({ x: { shape: [1], data: new Float32Array([1]) }, y: { shape: [2], data: new Float32Array([2, 3]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header).toMatch(/^\{.*\} *$/);
    expect(JSON.parse(header)).toEqual({ x: f32Entry([1], 0, 4), y: f32Entry([2], 4, 12) });
    expect(bytes.length).toBe(8 + n + 12);
  });

  test("F16 and BF16 round-trip representable values exactly", () => {
    const halfExact = new Float32Array([0, -0, 1, -2, 0.5, 65504, 2 ** -24, -(2 ** -14), 1 + 2 ** -10, Infinity, -Infinity, NaN]);
    const back16 = readSafetensors(writeSafetensors({ t: { shape: [12], data: halfExact } }, { dtype: "F16" }), "h").tensors.t!;
    expect(back16.dtype).toBe("F16");
    expect(Array.from(back16.data)).toEqual(Array.from(halfExact));
    expect(Object.is(back16.data[1], -0)).toBe(true);
    const bfExact = new Float32Array([0, -0, 1, -2, 3.3895313892515355e38, 2 ** -133, 1 + 2 ** -7, -(2 ** 100), Infinity, NaN]);
    const backBf = readSafetensors(writeSafetensors({ t: { shape: [2, 5], data: bfExact } }, { dtype: "BF16" }), "b").tensors.t!;
    expect(backBf.dtype).toBe("BF16");
    expect(backBf.shape).toEqual([2, 5]);
    expect(Array.from(backBf.data)).toEqual(Array.from(bfExact));
  });

  test("F16 and BF16 writing rounds to nearest even, including subnormals, overflow and NaN", () => {
    const input = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 65520, 65519, -(2 ** -26), NaN]);
    const f16 = readSafetensors(writeSafetensors({ t: { shape: [8], data: input } }, { dtype: "F16" }), "h").tensors.t!.data;
    expect(Array.from(f16)).toEqual([1, 1 + 2 ** -9, 0, 2 * 2 ** -24, Infinity, 65504, -0, NaN]);
    expect(Object.is(f16[6], -0)).toBe(true);
    const bfInput = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4028234663852886e38, 1 + 2 ** -8 + 2 ** -20, NaN]);
    const bf = readSafetensors(writeSafetensors({ t: { shape: [5], data: bfInput } }, { dtype: "BF16" }), "b").tensors.t!.data;
    expect(Array.from(bf)).toEqual([1, 1 + 2 ** -6, Infinity, 1 + 2 ** -7, NaN]);
  });

  test("random tensors survive a write → read cycle in every dtype within its rounding", () => {
    let seed = 1;
    const data = new Float32Array(1000).map(() => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 8);
    for (const [dtype, ulp] of [["F32", 0], ["F16", 2 ** -11], ["BF16", 2 ** -8]] as const) {
      const back = readSafetensors(writeSafetensors({ w: { shape: [10, 100], data } }, { dtype }), "r").tensors.w!.data;
      const outside = Array.from(data).filter((a, i) => !(Math.abs(back[i]! - a) <= Math.abs(a) * ulp));
      expect(outside).toEqual([]);
    }
  });

  test("the writer refuses shape/data mismatches and reserved names", () => {
    expect(() => writeSafetensors({ t: { shape: [2, 2], data: new Float32Array(3) } })).toThrow(/"t" has shape \[2, 2\] but 3 values/);
    expect(() => writeSafetensors({ t: { shape: [-1], data: new Float32Array(0) } })).toThrow(TypeError);
    expect(() => writeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } })).toThrow(/reserved/);
    expect(() => writeSafetensors(JSON.parse('{"__proto__": {"shape": [1], "data": 0}}'))).toThrow(/reserved/);
    expect(() => writeSafetensors({}, { dtype: "F64" as never })).toThrow(/F32, F16 or BF16/);
  });
});

describe("malformed files are refused with a typed error naming the file and the problem", () => {
  const data8 = new Uint8Array(8);

  test("shorter than the 8-byte length", () => {
    expectFormatError(new Uint8Array(5), "too_short", /5 bytes long/);
    expectFormatError(new Uint8Array(0), "too_short", /0 bytes/);
  });

  test("header length beyond the file or the 100 MB limit", () => {
    expectFormatError(rawFile("{}", data8, 1000n), "header_out_of_range", /1000-byte header.*only 10 bytes/);
    expectFormatError(rawFile("{}", data8, 200_000_000n), "header_too_large", /200000000-byte header.*limit/);
    expectFormatError(rawFile("{}", data8, 2n ** 60n), "header_too_large", /limit/);
    expectFormatError(rawFile("{}", data8, 2n ** 64n - 1n), "header_too_large", /limit/);
  });

  test("header that is not UTF-8, not JSON or not an object", () => {
    const notUtf8 = rawFile("{}");
    notUtf8[9] = 0xff;
    expectFormatError(notUtf8, "not_utf8", /not valid UTF-8/);
    expectFormatError(rawFile('{"a": '), "invalid_json", /not valid JSON/);
    expectFormatError(rawFile("{}garbage"), "invalid_json", /not valid JSON/);
    expectFormatError(rawFile("[1, 2]"), "not_object", /header must be a JSON object, got an array/);
    expectFormatError(rawFile("null"), "not_object", /got null/);
    expectFormatError(rawFile('"x"'), "not_object", /got a string/);
  });

  test("__proto__, constructor and prototype keys, at any depth, without polluting prototypes", () => {
    expectFormatError(rawFile('{"__proto__": {"polluted": "yes"}}'), "forbidden_key", /"__proto__"/);
    expectFormatError(rawFile({ constructor: f32Entry([2], 0, 8) }, data8), "forbidden_key", /"constructor"/);
    expectFormatError(rawFile({ t: { ...f32Entry([2], 0, 8), prototype: 1 } }, data8), "forbidden_key", /"prototype"/);
    expectFormatError(rawFile('{"__metadata__": {"__proto__": "x"}}'), "forbidden_key", /"__proto__"/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("__metadata__ must be an object of strings", () => {
    expectFormatError(rawFile({ __metadata__: [] }), "bad_metadata", /__metadata__ must be an object of strings, got an array/);
    expectFormatError(rawFile({ __metadata__: { format: 1 } }), "bad_metadata", /__metadata__.format must be a string, got a number/);
    expect({ ...readSafetensors(rawFile({ __metadata__: { a: "b" } }), FILE).metadata }).toEqual({ a: "b" });
  });

  test("entries lacking dtype, shape or data_offsets, or with wrong types", () => {
    expectFormatError(rawFile({ t: 5 }), "bad_entry", /tensor "t" must be an object, got a number/);
    expectFormatError(rawFile({ t: { shape: [2], data_offsets: [0, 8] } }, data8), "bad_entry", /"t" has no string "dtype"/);
    expectFormatError(rawFile({ t: { dtype: 1, shape: [2], data_offsets: [0, 8] } }, data8), "bad_entry", /"dtype"/);
    expectFormatError(rawFile({ t: { dtype: "F32", data_offsets: [0, 8] } }, data8), "bad_entry", /"t" has no "shape" array/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, data8), "bad_entry", /"shape" array \(got a string\)/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: [2] } }, data8), "bad_entry", /"data_offsets" as \[begin, end\]/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: [2], data_offsets: [0, 4, 8] } }, data8), "bad_entry", /data_offsets/);
  });

  test("dtypes other than F32, F16 and BF16 are named", () => {
    expectFormatError(rawFile({ t: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, data8), "unknown_dtype", /"t" has dtype "I64"; only F32, F16 and BF16/);
    expectFormatError(rawFile({ t: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, data8), "unknown_dtype", /"F64"/);
    expectFormatError(rawFile({ t: { dtype: "f32", shape: [2], data_offsets: [0, 8] } }, data8), "unknown_dtype", /"f32"/);
  });

  test("shapes with negative, fractional, non-number or overflowing sizes", () => {
    expectFormatError(rawFile({ t: f32Entry([-2], 0, 8) }, data8), "bad_shape", /shape \[-2\]; sizes must be non-negative integers/);
    expectFormatError(rawFile({ t: f32Entry([1.5], 0, 8) }, data8), "bad_shape", /\[1.5\]/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: ["2"], data_offsets: [0, 8] } }, data8), "bad_shape", /\["2"\]/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: [null], data_offsets: [0, 8] } }, data8), "bad_shape", /\[null\]/);
    expectFormatError(rawFile({ t: f32Entry([2 ** 53], 0, 8) }, data8), "bad_shape", /sizes must be non-negative integers/);
    expectFormatError(rawFile({ t: f32Entry([2 ** 30, 2 ** 30, 2 ** 30], 0, 8) }, data8), "bad_shape", /overflows/);
    expectFormatError(rawFile('{"t": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 8]}}', data8), "bad_shape", /non-negative integers/);
  });

  test("offsets that are malformed, reversed, out of range, overlapping, mis-sized or unaligned", () => {
    expectFormatError(rawFile({ t: f32Entry([0], -4, 0) }, data8), "bad_offsets", /both must be non-negative integers/);
    expectFormatError(rawFile({ t: f32Entry([1], 0.5, 4.5) }, data8), "bad_offsets", /non-negative integers/);
    expectFormatError(rawFile({ t: { dtype: "F32", shape: [1], data_offsets: ["0", "4"] } }, data8), "bad_offsets", /non-negative integers/);
    expectFormatError(rawFile({ t: f32Entry([1], 8, 4) }, data8), "bad_offsets", /\[8, 4\] with begin > end/);
    expectFormatError(rawFile({ t: f32Entry([4], 0, 16) }, data8), "offsets_out_of_range", /ends at data offset 16 but the data section is 8 bytes/);
    expectFormatError(rawFile({ t: f32Entry([2 ** 40], 0, 2 ** 42) }, data8), "offsets_out_of_range", /data section is 8 bytes/);
    expectFormatError(rawFile({ t: f32Entry([3], 0, 8) }, data8), "size_mismatch", /spans 8 bytes but shape \[3\] of F32 needs 12/);
    expectFormatError(rawFile({ t: { dtype: "F16", shape: [2, 2], data_offsets: [0, 4] } }, data8), "size_mismatch", /F16 needs 8/);
    expectFormatError(rawFile({ t: f32Entry([1], 2, 6) }, data8), "unaligned_offsets", /starts at data offset 2, not a multiple of 4 \(F32\)/);
    expectFormatError(rawFile({ t: { dtype: "BF16", shape: [1], data_offsets: [3, 5] } }, data8), "unaligned_offsets", /multiple of 2/);
    const data16 = new Uint8Array(16);
    expectFormatError(rawFile({ a: f32Entry([2], 0, 8), b: f32Entry([2], 4, 12) }, data16), "overlapping_offsets", /"a" \[0, 8\) and "b" \[4, 12\) overlap/);
    expectFormatError(rawFile({ a: f32Entry([4], 0, 16), b: f32Entry([1], 4, 8), c: f32Entry([1], 8, 12) }, data16), "overlapping_offsets", /overlap/);
    expectFormatError(rawFile({ a: f32Entry([2], 0, 8), b: f32Entry([2], 0, 8) }, data16), "overlapping_offsets", /overlap/);
  });

  test("valid edge cases are accepted: empty tensors, gaps, trailing data", () => {
    const file = readSafetensors(
      rawFile({ e: f32Entry([0], 4, 4), a: f32Entry([1], 0, 4), b: { dtype: "F16", shape: [2], data_offsets: [8, 12] } }, new Uint8Array(16)),
      FILE,
    );
    expect(Object.keys(file.tensors).sort()).toEqual(["a", "b", "e"]);
    expect(Array.from(file.tensors.b!.data)).toEqual([0, 0]);
  });

  test("a huge declared tensor is refused from the header alone, without allocating it", () => {
    const before = process.memoryUsage().arrayBuffers;
    expectFormatError(rawFile({ t: f32Entry([2 ** 26, 2 ** 20], 0, 2 ** 48) }, data8), "offsets_out_of_range", /data section/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });

  test("every truncation of a valid file is refused with a typed error", () => {
    const valid = writeSafetensors({ a: { shape: [3], data: new Float32Array([1, 2, 3]) }, b: { shape: [2], data: new Float32Array([4, 5]) } }, { dtype: "F16" });
    for (let n = 0; n < valid.length; n++) {
      expect(() => readSafetensors(valid.subarray(0, n), FILE)).toThrow(ModelFormatError);
    }
    expect(Array.from(readSafetensors(valid, FILE).tensors.a!.data)).toEqual([1, 2, 3]);
  });
});
