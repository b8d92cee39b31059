// Faults mid-run (issue 7): a throwing hook, an aborted sweep, a download that fails part way,
// and non-finite weights. After each, the model and engine must be as if nothing had happened.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoModelFiles, demoPrompts, loadDemoModel } from "../src/demo/induction-model.js";
import { Engine } from "../src/engine/engine.js";
import { ModelFormatError, ModelSourceError } from "../src/io/errors.js";
import { splitSafetensors } from "./fuzz/mutate-safetensors.js";
import { getActPatchDirectPathAllSources, HookedTransformer, logitDiff, planSweep } from "../src/index.js";

let engine: Engine;
let model: HookedTransformer;
const prompts = demoPrompts({ batch: 4, halfLength: 6 });
const metric = logitDiff(prompts);

beforeAll(async () => {
  engine = await Engine.create();
  model = await loadDemoModel({ engine });
});

/** Bit-for-bit equality of two float arrays (NaN-safe, -0 ≠ 0). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe("a hook that throws mid-forward", () => {
  it("reaches the caller; the engine's memory is back and the next run is bit-identical", () => {
    const reference = model.forward(prompts.clean).logits!.data.slice();
    const level = engine.stats().bytesInUse;
    const boom = new Error("hook failed");
    for (const hook of ["blocks.0.attn.hook_pattern", "blocks.1.mlp.hook_post", "blocks.1.hook_resid_post", "ln_final.hook_normalized"]) {
      // The hook first scribbles over the activation view (in linear memory), then throws.
      const run = () => model.runWithHooks(prompts.clean, { fwdHooks: [[hook, (act) => { act.data.fill(Number.NaN); throw boom; }]] });
      expect(run, hook).toThrow(boom);
      expect(engine.stats().bytesInUse, hook).toBe(level);
      expect(sameBits(model.forward(prompts.clean).logits!.data, reference), hook).toBe(true);
    }
  });

  it("in runWithCache and in a persistent hook too", () => {
    const reference = model.runWithCache(prompts.corrupted).logits!.data.slice();
    const level = engine.stats().bytesInUse;
    expect(() => model.runWithCache(prompts.corrupted, { fwdHooks: [["blocks.1.attn.hook_z", () => { throw new RangeError("late"); }]] })).toThrow("late");
    model.addHook("blocks.0.hook_resid_mid", () => { throw new TypeError("persistent"); });
    try {
      expect(() => model.forward(prompts.corrupted)).toThrow("persistent");
    } finally {
      model.resetHooks();
    }
    expect(engine.stats().bytesInUse).toBe(level);
    const { logits } = model.runWithCache(prompts.corrupted);
    expect(sameBits(logits!.data, reference)).toBe(true);
  });
});

describe("an aborted sweep", () => {
  const run = (options: Parameters<typeof getActPatchDirectPathAllSources>[5]) => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    return getActPatchDirectPathAllSources(model, prompts.corrupted, clean, corrupted, metric, options);
  };

  for (const strategy of ["planned", "naive"] as const) {
    it(`${strategy}: rejects with an AbortError within one pass, frees its memory, and hands over the finished scores`, async () => {
      // A budget of a quarter of the planned sweep's single pass: four passes.
      const clean = model.runWithCache(prompts.clean).cache;
      const corrupted = model.runWithCache(prompts.corrupted).cache;
      const budget = planSweep(getActPatchDirectPathAllSources, model, prompts.corrupted, clean, corrupted, metric, { component: "k" }).peakMemoryBytes / 4;
      expect(planSweep(getActPatchDirectPathAllSources, model, prompts.corrupted, clean, corrupted, metric,
        { component: "k", memoryBudgetBytes: budget }).passes).toBe(4);
      const full = await run({ component: "k", strategy, memoryBudgetBytes: budget });
      const level = engine.stats().bytesInUse;
      const controller = new AbortController();
      let passes = 0;
      let passesAfterAbort = 0;
      let partial: { scores: Float32Array; done: Uint8Array } | undefined;
      const aborted = run({
        component: "k", strategy, memoryBudgetBytes: budget, signal: controller.signal,
        onProgress: () => {
          passes++;
          if (controller.signal.aborted) passesAfterAbort++;
          if (passes === 2) controller.abort();
        },
        onPartial: (p) => { partial = p; },
      });
      await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
      expect(passesAfterAbort).toBe(0);
      expect(engine.stats().bytesInUse).toBe(level);
      // The entries finished before the abort equal the full run's, bit for bit; the rest are unfinished.
      expect(partial).toBeDefined();
      const done = partial!.done.reduce((a, b) => a + b, 0);
      expect(done).toBeGreaterThan(0);
      expect(done).toBeLessThan(full.scores.size);
      const finished = (x: Float32Array) => x.filter((_, i) => partial!.done[i] === 1);
      expect(sameBits(finished(partial!.scores), finished(full.scores.data))).toBe(true);
      // The model still gives the same result afterwards.
      const again = await run({ component: "k", strategy, memoryBudgetBytes: budget });
      expect(sameBits(again.scores.data, full.scores.data)).toBe(true);
    });
  }

  it("an abort from a timer lands between passes; an already aborted signal runs nothing", async () => {
    const level = engine.stats().bytesInUse;
    const controller = new AbortController();
    let passes = 0;
    let passesAfterAbort = 0;
    const started = run({
      component: "q", strategy: "naive", signal: controller.signal,
      onProgress: () => { passes++; if (controller.signal.aborted) passesAfterAbort++; },
    });
    setTimeout(() => controller.abort(), 5);
    await expect(started).rejects.toMatchObject({ name: "AbortError" });
    expect(passesAfterAbort).toBeLessThanOrEqual(1);
    expect(engine.stats().bytesInUse).toBe(level);

    let progressed = 0;
    await expect(run({ component: "q", signal: AbortSignal.abort(), onProgress: () => { progressed++; } })).rejects.toMatchObject({ name: "AbortError" });
    expect(progressed).toBe(0);
  });
});

describe("a model URL that fails mid-download", () => {
  const files = demoModelFiles();
  let server: Server;
  let base: string;

  beforeAll(async () => {
    // /<mode>/<file>: "ok" serves every file; other modes break model.safetensors.
    server = createServer((req, res) => {
      const [, mode, name] = (req.url ?? "").split("/");
      const body = files[name ?? ""];
      if (body === undefined) return void res.writeHead(404).end();
      const broken = name === "model.safetensors" ? mode : "ok";
      if (broken === "404") return void res.writeHead(404, "Not Found").end();
      if (broken === "500") return void res.writeHead(500, "Internal Server Error").end("boom");
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(body.length) });
      if (req.method === "HEAD") return void res.end();
      if (broken === "cut") {
        // Half the body, then the connection drops.
        res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
        return;
      }
      if (broken === "short") {
        // A body that ends early with a clean close (FIN, not a reset): shorter than content-length.
        res.write(body.subarray(0, 1000), () => res.socket?.end());
        return;
      }
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("a healthy server loads the demo model", async () => {
    const loaded = await HookedTransformer.fromPretrained(`${base}/ok/`, { engine });
    expect(sameBits(loaded.forward(prompts.clean).logits!.data, model.forward(prompts.clean).logits!.data)).toBe(true);
    loaded.dispose();
  });

  for (const [mode, code, pattern] of [
    ["404", "not_found", /model\.safetensors/],
    ["500", "http_error", /model\.safetensors: .*HTTP 500/],
    ["cut", "truncated", /model\.safetensors: .*(broke off|ended) after \d+ of \d+ bytes/],
    ["short", "truncated", /model\.safetensors: .*after \d+ of \d+ bytes/],
  ] as const) {
    it(`${mode}: a ModelSourceError naming model.safetensors, and no model`, async () => {
      const level = engine.stats().bytesInUse;
      let loaded: HookedTransformer | undefined;
      const error = await HookedTransformer.fromPretrained(`${base}/${mode}/`, { engine }).then((m) => { loaded = m; }, (e: unknown) => e);
      expect(loaded).toBeUndefined();
      expect(error).toBeInstanceOf(ModelSourceError);
      expect((error as ModelSourceError).file).toBe("model.safetensors");
      expect((error as ModelSourceError).code).toBe(code);
      expect((error as Error).message).toMatch(pattern);
      expect(engine.stats().bytesInUse).toBe(level);
    });
  }
});

describe("NaN or Inf in the weights", () => {
  /** The demo checkpoint with `value` written into element `at` of `tensor`. */
  function poisoned(tensor: string, at: number, value: number): Record<string, Uint8Array> {
    const files = demoModelFiles();
    const bytes = files["model.safetensors"]!.slice();
    const { header, data } = splitSafetensors(bytes)!;
    const [begin] = (header[tensor] as { data_offsets: [number, number] }).data_offsets;
    const dataStart = bytes.length - data.length;
    new DataView(bytes.buffer).setFloat32(dataStart + begin + 4 * at, value, true);
    return { ...files, "model.safetensors": bytes };
  }

  for (const [tensor, value] of [["transformer.h.1.attn.c_attn.weight", Number.NaN], ["transformer.wpe.weight", Infinity], ["transformer.ln_f.bias", -Infinity]] as const) {
    it(`${value} in ${tensor} is refused at load time, naming the tensor`, async () => {
      const level = engine.stats().bytesInUse;
      const load = HookedTransformer.fromPretrained(poisoned(tensor, 3, value), { engine });
      await expect(load).rejects.toBeInstanceOf(ModelFormatError);
      await expect(load).rejects.toMatchObject({ code: "non_finite", file: "model.safetensors" });
      await expect(load).rejects.toThrow(new RegExp(`tensor "${tensor.replace(/\./g, "\\.")}" .* holds ${value} at flat index 3`));
      expect(engine.stats().bytesInUse).toBe(level);
    });
  }

  it("checkFinite: false loads them anyway (the caller asked for it)", async () => {
    const loaded = await HookedTransformer.fromPretrained(poisoned("transformer.ln_f.bias", 0, Number.NaN), { engine, checkFinite: false, processWeights: false });
    expect(Number.isNaN(loaded.forward(prompts.clean).logits!.data[0])).toBe(true);
    loaded.dispose();
  });
});
