import { afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { makeConfig } from "../src/model/config.js";
import type { HookedTransformer } from "../src/model/hooked-transformer.js";
import { getActPatchDirectPath, getActPatchDirectPathAllSources } from "../src/patching/direct-path.js";
import { unfoldedLinearWarning } from "../src/patching/direct-path/setup.js";
import { logitDiff } from "../src/patching/metrics.js";
import { maxAbsDiff } from "./helpers.js";
import { expectGoldenScores, golden, type GoldenInputs, type GoldenScores } from "./reference.js";
import { loadReference } from "./reference-model.js";

let engine: Engine;
beforeAll(async () => { engine = await Engine.create(); });

for (const name of ["tiny-gpt2-random", "tiny-gpt2-random-f16"]) {
  describe(`direct path patching on ${name} against PyTorch`, () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff(inputs);
    let model: HookedTransformer;
    let clean: ReturnType<HookedTransformer["runWithCache"]>["cache"];
    let corrupted: typeof clean;
    beforeAll(async () => {
      model = await loadReference(name, engine);
      clean = model.runWithCache(inputs.clean).cache;
      corrupted = model.runWithCache(inputs.corrupted).cache;
    });

    for (const component of ["q", "k", "v"] as const) {
      for (const mode of ["linear", "exact"] as const) {
        for (const strategy of ["planned", "naive"] as const) {
          it(`source (0, 1), ${component}, ${mode}, ${strategy}`, async () => {
            const want = golden<GoldenScores>(name, `direct_path_src0.1_${component}_${mode}.json`);
            const result = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric,
              { srcLayer: 0, srcHead: 1, component, mode, strategy });
            expect(result.scores.shape).toEqual(want.shape);
            expectGoldenScores(result.scores.data, want, `${component} ${mode} ${strategy}`);
            expect(result.baseline).toBeCloseTo(want.corrupted_baseline, 4);
            expect(result.clean).toBeCloseTo(want.clean_baseline, 4);
            expect(Array.from(result.noPath!)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
          });
        }
      }
    }

    it("all sources, q, linear: matches PyTorch and each slice equals the single-source call", async () => {
      const want = golden<GoldenScores>(name, "direct_path_all_q_linear.json");
      const all = await getActPatchDirectPathAllSources(model, inputs.corrupted, clean, corrupted, metric, { component: "q" });
      expect(all.scores.shape).toEqual([3, 4, 3, 4]);
      expectGoldenScores(all.scores.data, want, "all q linear");
      for (const [sl, sh] of [[0, 0], [1, 3], [2, 2]] as const) {
        const single = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: sl, srcHead: sh, component: "q" });
        expect(Array.from(all.scores.select(0, sl).select(0, sh).data)).toEqual(Array.from(single.scores.data));
      }
      // A last-layer source has no path anywhere.
      expect(Array.from(all.scores.select(0, 2).data).every((x) => x === 0)).toBe(true);
    });
  });
}

describe("linear mode on weights whose norm is not folded", () => {
  let warn: MockInstance<typeof console.warn>;
  beforeEach(() => { warn = vi.spyOn(console, "warn").mockImplementation(() => {}); });
  afterEach(() => { warn.mockRestore(); });

  /** A reference checkpoint loaded without weight processing, and a direct path sweep from (0, 1) on its golden prompts. */
  async function unprocessed(name: string) {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const model = await loadReference(name, engine, false);
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const sweep = (component: "q" | "k" | "v", mode: "linear" | "exact" = "linear") =>
      getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, logitDiff(inputs), { srcLayer: 0, srcHead: 1, component, mode });
    return { model, sweep };
  }

  it("warns once on a GPT-2 (LayerNorm): its scores leave out ln1's weight and centring, unlike the folded model's", async () => {
    const name = "tiny-gpt2-random";
    const { model, sweep } = await unprocessed(name);
    const linear = await sweep("q");
    await sweep("v");
    expect(warn).toHaveBeenCalledTimes(1);
    const message = String(warn.mock.calls[0]![0]);
    expect(message).toContain("LayerNorm is not folded");
    expect(message).toContain("leaves out ln1's weight and the centring of delta");
    expect(message).toContain("Use mode \"exact\"");
    // What it says: these are not the linear scores of the folded model (PyTorch's, processed) ...
    const folded = golden<GoldenScores>(name, "direct_path_src0.1_q_linear.json");
    expect(maxAbsDiff(linear.scores.data, folded.scores)).toBeGreaterThan(0.01);
    // ... while exact mode gives the reference's numbers on unfolded weights too, and is not warned about.
    const exact = await sweep("q", "exact");
    expectGoldenScores(exact.scores.data, golden<GoldenScores>(name, "direct_path_src0.1_q_exact.json"), "unfolded q exact");
    expect(warn).toHaveBeenCalledTimes(1);
    model.dispose();
  });

  it("does not warn on a LLaMA (RMSNorm): its weight is applied, and the scores are the reference's linear ones", async () => {
    const name = "tiny-llama-random";
    const { model, sweep } = await unprocessed(name);
    expect(model.cfg.normalizationType).toBe("RMS");
    for (const component of ["q", "k", "v"] as const) {
      const got = await sweep(component);
      expectGoldenScores(got.scores.data, golden<GoldenScores>(name, `direct_path_src0.1_${component}_linear.json`), `unfolded ${component} linear`);
    }
    expect(warn).not.toHaveBeenCalled();
    model.dispose();
  });

  it("is described for every norm type: RMS never, a parameter-free LayerNorm without the weight", () => {
    const unfolded = { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false };
    const cfg = (normalizationType: "LN" | "LNPre" | "RMS" | "RMSPre", foldLn = false) =>
      makeConfig({ nLayers: 1, dModel: 8, nHeads: 2, dVocab: 5, nCtx: 4, normalizationType, processing: { ...unfolded, foldLn } });
    expect(unfoldedLinearWarning(cfg("LN"))).toContain("leaves out ln1's weight and the centring of delta");
    expect(unfoldedLinearWarning(cfg("LNPre"))).toContain("leaves out the centring of delta (");
    expect(unfoldedLinearWarning(cfg("RMS"))).toBeUndefined();
    expect(unfoldedLinearWarning(cfg("RMSPre"))).toBeUndefined();
    expect(unfoldedLinearWarning(cfg("LNPre", true))).toBeUndefined();
  });
});

describe("patch values on the engine's resident weights", () => {
  it("upload no copy of W_Q/W_K/W_V, except the model's own for linear mode on an unfolded LayerNorm", async () => {
    const name = "tiny-gpt2-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff(inputs);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const upload = vi.spyOn(engine, "upload");
    try {
      for (const processWeights of [true, false]) {
        const model = await loadReference(name, engine, processWeights);
        const { nLayers: L, nHeads: H, dModel: D, dHead: d } = model.cfg;
        const clean = model.runWithCache(inputs.clean).cache;
        const corrupted = model.runWithCache(inputs.corrupted).cache;
        for (const component of ["q", "k", "v"] as const) {
          // W_c of each layer as [D, H*d], the layout a product over every destination head multiplies by.
          const copies = Array.from({ length: L }, (_, l) => {
            const W = model.weights.get(`blocks.${l}.attn.W_${component.toUpperCase()}`)!.data; // [H, D, d]
            return Float32Array.from({ length: D * H * d }, (_, i) => W[(Math.floor(i / d) % H * D + Math.floor(i / (H * d))) * d + i % d]!);
          });
          for (const mode of ["linear", "exact"] as const) {
            upload.mockClear();
            const result = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 1, component, mode });
            expect(result.scores.data.some((x, i) => !result.noPath![i] && x !== result.baseline)).toBe(true);
            const copied = upload.mock.calls.some(([data]) => copies.some((W) => W.length === data.length && W.every((x, i) => x === data[i])));
            expect(copied, `${component} ${mode} ${processWeights ? "processed" : "unprocessed"}`).toBe(!processWeights && mode === "linear");
          }
        }
        model.dispose();
      }
    } finally {
      upload.mockRestore();
      warn.mockRestore();
    }
  });
});
