import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { assertFiniteWeights, expectTensor, loadSafetensorsWeights, readJsonConfig, stripPrefix } from "../src/io/checkpoint.js";
import { ModelFormatError, ModelSourceError, type ModelFormatCode } from "../src/io/errors.js";
import { writeSafetensors } from "../src/io/safetensors.js";
import { bytesSource, folderSource } from "../src/io/source.js";

const enc = (text: string) => new TextEncoder().encode(text);
const t = (shape: number[], ...values: number[]) => ({ shape, data: new Float32Array(values) });

const shardA = writeSafetensors({ "wte.weight": t([2, 2], 1, 2, 3, 4), "ln_f.bias": t([2], 5, 6) });
const shardB = writeSafetensors({ "h.0.attn.c_attn.weight": t([1, 3], 7, 8, 9) }, { dtype: "BF16" });
const index = (weightMap: unknown, extra: Record<string, unknown> = {}) =>
  enc(JSON.stringify({ metadata: { total_size: 36 }, weight_map: weightMap, ...extra }));
const goodMap = {
  "wte.weight": "model-00001-of-00002.safetensors",
  "ln_f.bias": "model-00001-of-00002.safetensors",
  "h.0.attn.c_attn.weight": "model-00002-of-00002.safetensors",
};

async function expectFormatError(promise: Promise<unknown>, file: string, code: ModelFormatCode, mentions: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelFormatError);
  const e = error as ModelFormatError;
  expect({ file: e.file, code: e.code }).toEqual({ file, code });
  expect(e.message).toMatch(mentions);
}

function sharded(weightMap: unknown, shards: Record<string, Uint8Array> = {}, extra?: Record<string, unknown>) {
  return bytesSource({
    "model.safetensors.index.json": index(weightMap, extra),
    "model-00001-of-00002.safetensors": shardA,
    "model-00002-of-00002.safetensors": shardB,
    ...shards,
  });
}

describe("loadSafetensorsWeights", () => {
  test("a single model.safetensors wins over an index", async () => {
    const source = bytesSource({ "model.safetensors": writeSafetensors({ x: t([1], 42) }), "model.safetensors.index.json": enc("not json") });
    const weights = await loadSafetensorsWeights(source);
    expect(Object.keys(weights)).toEqual(["x"]);
    expect(Object.getPrototypeOf(weights)).toBeNull();
    expect(Array.from(weights.x!.data)).toEqual([42]);
  });

  test("sharded checkpoints are merged from their index (bytes source and folder)", async () => {
    const check = (weights: Awaited<ReturnType<typeof loadSafetensorsWeights>>) => {
      expect(Object.keys(weights).sort()).toEqual(["h.0.attn.c_attn.weight", "ln_f.bias", "wte.weight"]);
      expect(Array.from(weights["wte.weight"]!.data)).toEqual([1, 2, 3, 4]);
      expect(weights["wte.weight"]!.shape).toEqual([2, 2]);
      expect(Array.from(weights["h.0.attn.c_attn.weight"]!.data)).toEqual([7, 8, 9]);
      expect(weights["h.0.attn.c_attn.weight"]!.dtype).toBe("BF16");
      expect(Object.getPrototypeOf(weights)).toBeNull();
    };
    check(await loadSafetensorsWeights(sharded(goodMap)));

    const dir = await mkdtemp(join(tmpdir(), "hooklens-shards-"));
    try {
      await writeFile(join(dir, "model.safetensors.index.json"), index(goodMap));
      await writeFile(join(dir, "model-00001-of-00002.safetensors"), shardA);
      await writeFile(join(dir, "model-00002-of-00002.safetensors"), shardB);
      check(await loadSafetensorsWeights(folderSource(dir)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("weights never alias the caller's bytes unless shared, and copy: true detaches them anyway", async () => {
    const bytes = writeSafetensors({ x: t([2], 1, 2) });
    const loaded = await loadSafetensorsWeights(bytesSource({ "model.safetensors": bytes }));
    loaded.x!.data[0] = 99; // e.g. in-place weight processing
    expect(Array.from((await loadSafetensorsWeights(bytesSource({ "model.safetensors": bytes }))).x!.data)).toEqual([1, 2]);
    const shared = await loadSafetensorsWeights(bytesSource({ "model.safetensors": bytes }, { share: true }));
    expect(shared.x!.data.buffer).toBe(bytes.buffer);
    const copied = await loadSafetensorsWeights(bytesSource({ "model.safetensors": bytes }, { share: true }), { copy: true });
    expect(copied.x!.data.buffer).not.toBe(bytes.buffer);
  });

  test("shard names that leave the folder or URL base are refused, naming the index", async () => {
    for (const shard of ["../model.safetensors", "a/../../b.safetensors", "/etc/passwd", "http://evil.example/m.safetensors", "//evil.example/m.safetensors", "C:\\m.safetensors", "sub\\m.safetensors", "%2e%2e/m.safetensors", "", "./m.safetensors"]) {
      await expectFormatError(
        loadSafetensorsWeights(sharded({ ...goodMap, "wte.weight": shard })),
        "model.safetensors.index.json",
        "unsafe_path",
        new RegExp(`weight_map\\["wte.weight"\\] = .* is refused: the name`),
      );
    }
  });

  test("malformed indexes are refused, naming the index and the problem", async () => {
    const file = "model.safetensors.index.json";
    const only = (bytes: Uint8Array) => bytesSource({ [file]: bytes });
    await expectFormatError(loadSafetensorsWeights(only(enc("{oops"))), file, "invalid_json", /not valid JSON/);
    await expectFormatError(loadSafetensorsWeights(only(enc("[]"))), file, "not_object", /got an array/);
    await expectFormatError(loadSafetensorsWeights(only(enc('{"weight_map": {"__proto__": "x"}}'))), file, "forbidden_key", /"__proto__"/);
    await expectFormatError(loadSafetensorsWeights(sharded(["a"])), file, "bad_index", /"weight_map" must be an object.*got an array/);
    await expectFormatError(loadSafetensorsWeights(sharded(undefined)), file, "bad_index", /"weight_map" must be an object/);
    await expectFormatError(loadSafetensorsWeights(sharded({ "wte.weight": 3 })), file, "bad_index", /weight_map\["wte.weight"\] must be a file name, got a number/);
    await expectFormatError(loadSafetensorsWeights(sharded({})), file, "bad_index", /lists no tensors/);
    await expectFormatError(loadSafetensorsWeights(sharded(goodMap, {}, { metadata: "x" })), file, "bad_index", /"metadata" must be an object/);
  });

  test("a tensor missing from its shard, or stored in two shards, is refused naming the shard", async () => {
    await expectFormatError(
      loadSafetensorsWeights(sharded({ ...goodMap, "wpe.weight": "model-00002-of-00002.safetensors" })),
      "model-00002-of-00002.safetensors",
      "missing_tensor",
      /lacks tensor "wpe.weight" that model.safetensors.index.json places in it/,
    );
    await expectFormatError(
      loadSafetensorsWeights(sharded(goodMap, { "model-00002-of-00002.safetensors": writeSafetensors({ "h.0.attn.c_attn.weight": t([1], 1), "wte.weight": t([1], 2) }) })),
      "model-00002-of-00002.safetensors",
      "duplicate_tensor",
      /"wte.weight" that model-00001-of-00002.safetensors holds too/,
    );
  });

  test("a missing or malformed shard names the shard", async () => {
    const missing = bytesSource({ "model.safetensors.index.json": index(goodMap), "model-00001-of-00002.safetensors": shardA });
    const error = await loadSafetensorsWeights(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSourceError);
    expect((error as ModelSourceError).file).toBe("model-00002-of-00002.safetensors");
    await expectFormatError(
      loadSafetensorsWeights(sharded(goodMap, { "model-00002-of-00002.safetensors": shardB.subarray(0, 20) })),
      "model-00002-of-00002.safetensors",
      "header_out_of_range",
      /header/,
    );
  });

  test("neither file: a not_found error naming both", async () => {
    const error = await loadSafetensorsWeights(bytesSource({})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSourceError);
    expect((error as ModelSourceError).code).toBe("not_found");
    expect((error as Error).message).toMatch(/neither model.safetensors nor model.safetensors.index.json is in memory/);
  });
});

describe("readJsonConfig", () => {
  test("returns null-prototype objects", async () => {
    const config = await readJsonConfig(bytesSource({ "config.json": enc('{"n_layer": 2, "nested": {"a": [1, {"b": 2}]}}') }));
    expect(config.n_layer).toBe(2);
    expect(Object.getPrototypeOf(config)).toBeNull();
    const nested = config.nested as { a: [number, object] };
    expect(Object.getPrototypeOf(nested)).toBeNull();
    expect(Object.getPrototypeOf(nested.a[1])).toBeNull();
    expect(config.constructor).toBeUndefined();
    expect(config.toString).toBeUndefined();
  });

  test("invalid, non-object, non-UTF-8 or polluting configs are typed errors naming the file", async () => {
    const read = (text: string | Uint8Array, name = "config.json") =>
      readJsonConfig(bytesSource({ [name]: typeof text === "string" ? enc(text) : text }), name);
    await expectFormatError(read("{\"n_layer\": }"), "config.json", "invalid_json", /config.json: is not valid JSON/);
    await expectFormatError(read("[1]"), "config.json", "not_object", /must hold a JSON object, got an array/);
    await expectFormatError(read("12"), "config.json", "not_object", /got a number/);
    await expectFormatError(read(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), "config.json", "not_utf8", /UTF-8/);
    await expectFormatError(read('{"a": {"constructor": {"prototype": {"x": 1}}}}'), "config.json", "forbidden_key", /"prototype"|"constructor"/);
    await expectFormatError(read('{"__proto__": {"polluted": 1}}', "generation_config.json"), "generation_config.json", "forbidden_key", /"__proto__"/);
    await expectFormatError(read("[".repeat(200000)), "config.json", "invalid_json", /not valid JSON/);
    // Deep but valid nesting ends in a typed error too, never a stack overflow escaping.
    const deep = await read(`{"a": ${"[".repeat(500000)}${"]".repeat(500000)}}`).then(
      () => "parsed",
      (e: unknown) => (e instanceof ModelFormatError ? e.code : e),
    );
    expect(["parsed", "invalid_json"]).toContain(deep);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const missing = await readJsonConfig(bytesSource({})).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ModelSourceError);
    expect((missing as ModelSourceError).file).toBe("config.json");
  });
});

describe("name helpers", () => {
  test("stripPrefix", () => {
    expect(stripPrefix("transformer.wte.weight", "transformer.")).toBe("wte.weight");
    expect(stripPrefix("wte.weight", "transformer.")).toBe("wte.weight");
    expect(stripPrefix("lm_head.weight", "transformer.")).toBe("lm_head.weight");
  });

  test("expectTensor checks presence and shape against the config", async () => {
    const weights = await loadSafetensorsWeights(sharded(goodMap));
    expect(expectTensor(weights, "wte.weight", [2, 2]).data[3]).toBe(4);
    expect(() => expectTensor(weights, "wpe.weight", [2, 2])).toThrow(/model.safetensors: has no tensor "wpe.weight"/);
    expect(() => expectTensor(weights, "wte.weight", [100, 64])).toThrow(/"wte.weight" has shape \[2, 2\], expected \[100, 64\] from config.json/);
    expect(() => expectTensor(weights, "toString", [1])).toThrow(ModelFormatError);
    const wrongShape = (() => {
      try {
        return expectTensor(weights, "ln_f.bias", [3], "model-00001-of-00002.safetensors");
      } catch (e) {
        return e;
      }
    })();
    expect(wrongShape).toMatchObject({ code: "shape_mismatch", file: "model-00001-of-00002.safetensors" });
  });

  test("assertFiniteWeights names the tensor and element holding NaN or Infinity", async () => {
    const weights = await loadSafetensorsWeights(sharded(goodMap));
    expect(() => assertFiniteWeights(weights)).not.toThrow();
    for (const bad of [NaN, Infinity, -Infinity]) {
      weights["ln_f.bias"]!.data[1] = bad;
      expect(() => assertFiniteWeights(weights, "model-00001-of-00002.safetensors")).toThrow(
        new RegExp(`model-00001-of-00002.safetensors: tensor "ln_f.bias" \\[2\\] holds ${bad} at flat index 1`),
      );
    }
  });
});
