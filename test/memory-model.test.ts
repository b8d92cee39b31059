// One memory model: the forward allocates exactly the arena activationSizes describes, the
// allocator measures the peak, and (see the sweep tests below) a sweep stays under its plan.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { activationBytes } from "../src/model/activation-sizes.js";
import type { HookedTransformer } from "../src/model/hooked-transformer.js";
import { loadReference } from "./reference-model.js";

let engine: Engine;
let gpt2: HookedTransformer;
let llama: HookedTransformer;
beforeAll(async () => {
  engine = await Engine.create({ variant: "simd" });
  gpt2 = await loadReference("tiny-gpt2-random", engine);
  llama = await loadReference("tiny-llama-random", engine);
});

/** The most bytes the engine held at once during fn, above what it held before. */
function peakDuring(fn: () => void): number {
  const before = engine.stats().bytesInUse;
  engine.resetPeak();
  fn();
  expect(engine.stats().bytesInUse).toBe(before);
  return engine.stats().peakBytesInUse - before;
}

describe("the allocator's peak", () => {
  it("is the most bytes live at once, in 64-byte blocks, and restarts at resetPeak", () => {
    const before = engine.stats().bytesInUse;
    engine.resetPeak();
    const a = engine.alloc(10); // 40 bytes -> one 64-byte block
    const b = engine.alloc(100); // 400 -> 448
    engine.free(a);
    const c = engine.alloc(16); // 64
    expect(engine.stats().peakBytesInUse - before).toBe(64 + 448);
    engine.free(b);
    engine.free(c);
    engine.resetPeak();
    expect(engine.stats().peakBytesInUse).toBe(before);
  });
});

describe("the forward's arena", () => {
  const round = (bytes: number) => Math.ceil(bytes / 64) * 64;
  it("is the one allocation of a pass, the size activationSizes gives (GPT-2, every position, hooks on patterns)", () => {
    const cfg = gpt2.cfg;
    const tokens = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]];
    const pattern = [["blocks.1.attn.hook_pattern", () => undefined]] as const;
    const shape = { batch: 2, pos: 5, posStart: 0, embeds: true, scores: true, pruneLastLayer: false, attentionMask: false, logitRows: 10 };
    expect(peakDuring(() => gpt2.forward(tokens, { fwdHooks: pattern }))).toBe(round(activationBytes(cfg, shape)));
    expect(peakDuring(() => gpt2.forward(tokens))).toBe(round(activationBytes(cfg, { ...shape, scores: false })));
    expect(peakDuring(() => gpt2.forward(tokens, { lastPositionOnly: true })))
      .toBe(round(activationBytes(cfg, { ...shape, scores: false, logitRows: 2 })));
  });

  it("counts grouped key/value heads, the gated MLP, rotary tables, a kept prefix and a pruned last block (LLaMA)", () => {
    const cfg = llama.cfg;
    expect(cfg.nKeyValueHeads).toBeLessThan(cfg.nHeads);
    const tokens = [[1, 2, 3, 4, 5, 6], [6, 7, 8, 9, 10, 11]];
    const { cache } = llama.runWithCache(tokens);
    const keysValues = (l: number) => ({ k: cache.get(`blocks.${l}.attn.hook_rot_k`), v: cache.get(`blocks.${l}.attn.hook_v`) });
    const residual = cache.get("blocks.1.hook_resid_pre");
    const kept = residual.slice(1, 2, 6);
    const measured = peakDuring(() => llama.forward(tokens, {
      startAtLayer: 1, residual: kept, keptPrefix: { length: 2, keysValues }, lastPositionOnly: true, pruneLastLayer: true,
    }));
    const shape = { batch: 2, pos: 6, posStart: 2, embeds: false, scores: false, pruneLastLayer: true, attentionMask: false, logitRows: 2 };
    expect(measured).toBe(round(activationBytes(cfg, shape)));
    // The memory model is not a constant: each feature it names changes the size.
    expect(activationBytes(cfg, { ...shape, pruneLastLayer: false })).toBeLessThan(activationBytes(cfg, shape));
    expect(activationBytes(cfg, { ...shape, posStart: 0, embeds: true })).toBeGreaterThan(activationBytes(cfg, { ...shape, posStart: 0, embeds: false }));
    expect(activationBytes({ ...cfg, useAttnResult: true }, shape) - activationBytes(cfg, shape))
      .toBe(4 * Math.ceil((2 * 4 * cfg.nHeads * cfg.dModel) / 16) * 16);
  });
});

describe("the gradient run's memory", () => {
  it("stays within gradientMemory's arenas on the engine, and a budget below it is refused before any work", async () => {
    const { gradientMemory } = await import("../src/model/activation-sizes.js");
    const { storedHookNames } = await import("../src/model/backward.js");
    const { logitDiff } = await import("../src/patching/metrics.js");
    for (const model of [gpt2, llama]) {
      const tokens = [[1, 2, 3, 4, 5, 6], [6, 7, 8, 9, 10, 11]];
      const metric = logitDiff({ correct: [3, 4], incorrect: [5, 6] });
      model.runWithHooks(tokens, { metric }); // packs the transposed weights
      const need = gradientMemory(model.cfg, { batch: 2, pos: 6, lastPositionOnly: true });
      const measured = peakDuring(() => model.runWithHooks(tokens, { metric }));
      // The stored copies live on the engine beside one arena at a time; each allocation rounds up to 64 bytes.
      const copies = storedHookNames(model.cfg).length;
      expect(measured).toBeGreaterThanOrEqual(need.stored);
      expect(measured).toBeLessThanOrEqual(need.peak + 64 * (copies + 1));
      expect(need.stored).toBeGreaterThan(4 * model.cfg.nLayers * 2 * model.cfg.nHeads * 36); // every block's 2 × H × 6 × 6 pattern at least
      expect(() => model.runWithHooks(tokens, { metric, memoryBudgetBytes: need.peak - 1 })).toThrow(/more than memoryBudgetBytes/);
      // A forward hook on a head's split input: its copies are kept for the backward, and counted.
      const watch: [string, () => void][] = [["blocks.1.hook_q_input", () => {}]];
      model.runWithHooks(tokens, { metric, fwdHooks: watch }); // uploads the unpacked W_Q/W_K/W_V
      const withCopies = gradientMemory(model.cfg, { batch: 2, pos: 6, lastPositionOnly: true, readerInputs: true, keptSplitHeads: model.cfg.nHeads });
      expect(withCopies.stored - need.stored).toBe(4 * 2 * 6 * model.cfg.dModel * model.cfg.nHeads);
      const measuredWithCopies = peakDuring(() => model.runWithHooks(tokens, { metric, fwdHooks: watch }));
      expect(measuredWithCopies).toBeGreaterThan(measured);
      expect(measuredWithCopies).toBeLessThanOrEqual(withCopies.peak + 64 * (copies + 2));
      expect(() => model.runWithHooks(tokens, { metric, fwdHooks: watch, memoryBudgetBytes: withCopies.peak - 1 })).toThrow(/more than memoryBudgetBytes/);
      expect(model.runWithHooks(tokens, { metric, memoryBudgetBytes: need.peak }).metric).toBe(model.runWithHooks(tokens, { metric }).metric);
    }
  });
});

describe("a sweep's memory stays under its plan", () => {
  it("activation patching of patterns, direct path from every source, with budgets that force chunking", async () => {
    const { getActPatchAttnHeadPatternAllPos, getActPatchResidPre, getActPatchDirectPathAllSources, logitDiff, planSweep, HookedTransformer } =
      await import("../src/index.js");
    // With hook_result, the forward holds every head's output too (the old estimate left it out).
    const withResult = await HookedTransformer.fromPretrained((await import("./reference.js")).referenceDir("tiny-gpt2-random"), { engine, useAttnResult: true });
    for (const model of [gpt2, llama, withResult]) {
      const clean = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14]];
      const corrupted = [[1, 2, 3, 9, 5, 6, 7], [8, 9, 10, 3, 12, 13, 14]];
      const metric = logitDiff({ correct: [3, 4], incorrect: [5, 6] });
      const cc = model.runWithCache(clean).cache;
      const rc = model.runWithCache(corrupted).cache;
      const sweeps = [
        [getActPatchAttnHeadPatternAllPos, (o: object) => getActPatchAttnHeadPatternAllPos(model, corrupted, cc, metric, o),
          (o: object) => planSweep(getActPatchAttnHeadPatternAllPos, model, corrupted, cc, metric, o)],
        [getActPatchResidPre, (o: object) => getActPatchResidPre(model, corrupted, cc, metric, o),
          (o: object) => planSweep(getActPatchResidPre, model, corrupted, cc, metric, o)],
        [getActPatchDirectPathAllSources, (o: object) => getActPatchDirectPathAllSources(model, corrupted, cc, rc, metric, { component: "k", ...o }),
          (o: object) => planSweep(getActPatchDirectPathAllSources, model, corrupted, cc, rc, metric, { component: "k", ...o })],
      ] as const;
      for (const [fn, run, plan] of sweeps) {
        const whole = plan({});
        // The largest budget below the whole plan's peak that still fits one copy: chunked passes.
        const chunking = [0.75, 0.5, 0.34].map((f) => f * whole.peakMemoryBytes)
          .find((b) => { try { return plan({ memoryBudgetBytes: b }).passes > whole.passes; } catch { return false; } });
        // resid_pre by position: each patch starts at its own position, a pass of its own.
        if (fn !== getActPatchResidPre) expect(chunking, "a budget that splits the passes").toBeDefined();
        for (const budget of chunking === undefined ? [undefined] : [undefined, chunking]) {
          const options = budget === undefined ? {} : { memoryBudgetBytes: budget };
          const planned = plan(options);
          // From the moment the sweep starts its passes (its baseline runs are not passes).
          let before = 0;
          await run({ ...options, onPlan: () => { before = engine.stats().bytesInUse; engine.resetPeak(); } });
          const measured = engine.stats().peakBytesInUse - before;
          const label = `${String(fn).slice(0, 0)}sweep ${sweeps.findIndex((s) => s[0] === fn)} on ${model.cfg.originalArchitecture}, budget ${budget}`;
          expect(measured, label).toBeGreaterThan(0);
          expect(measured, label).toBeLessThanOrEqual(planned.peakMemoryBytes);
          if (budget !== undefined) expect(planned.peakMemoryBytes).toBeLessThanOrEqual(budget);
        }
      }
    }
  });
});
