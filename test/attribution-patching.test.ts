// Attribution patching (../shared/reference/ATTRIBUTION.md, section 2) against PyTorch goldens,
// and against its own definition computed independently from the gradient cache.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { ATTRIBUTION_KINDS, getAttrPatchAll, getAttrPatchAttnHeadOutAllPos, type AttributionKindName } from "../src/patching/attribution-patching.js";
import { getActPatchAttnHeadOutAllPos } from "../src/patching/activation-patching.js";
import { logitDiff } from "../src/patching/metrics.js";
import { spearman, verifyAttribution } from "../src/patching/verify-attribution.js";
import { expectGoldenScores, golden, referenceDir, type GoldenInputs, type GoldenScores } from "./reference.js";

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ variant: "simd" });
});

const KINDS = Object.keys(ATTRIBUTION_KINDS) as AttributionKindName[];

describe.each(["tiny-gpt2-random", "tiny-llama-random"])("attribution patching on %s", (name) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });

  it("every kind matches the goldens (one corrupted forward and backward for all)", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const { cache: clean } = model.runWithCache(inputs.clean);
    const results = getAttrPatchAll(model, inputs.corrupted, clean, metric, { kinds: KINDS });
    for (const kind of KINDS) {
      const want = golden<GoldenScores>(name, `attr_patch_${kind}.json`);
      const got = results[kind];
      expect(got.scores.shape, kind).toEqual(want.shape);
      expect(got.baseline, kind).toBeCloseTo(want.corrupted_baseline, 4);
      expect(got.clean, kind).toBeCloseTo(want.clean_baseline, 4);
      expect(got.op).toBe(`attr_patch_${kind}`);
      expectGoldenScores(got.scores.data, want, `${name} ${kind}`);
    }
    model.dispose();
  });

  it("has the shape of the activation patching it estimates, and equals its definition entry by entry", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const { cache: clean } = model.runWithCache(inputs.clean);
    const attr = getAttrPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric);
    const exact = await getActPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric);
    expect(attr.scores.shape).toEqual(exact.scores.shape);
    expect(attr.baseline).toBeCloseTo(exact.baseline, 5);
    expect(attr.clean).toBeCloseTo(exact.clean, 5);
    // The definition, by hand: M_corr + Σ_{b,p,d} (z_clean - z_corr)[b, p, h, d] · dM/dz_corr[b, p, h, d].
    const { cache: corr, metric: mCorr } = model.runWithCache(inputs.corrupted, { inclBwd: true, metric });
    const { nLayers: L, nHeads: H, dHead: d } = model.cfg;
    for (let l = 0; l < L; l++) {
      const zc = clean.get(`blocks.${l}.attn.hook_z`);
      const zr = corr.get(`blocks.${l}.attn.hook_z`);
      const g = corr.get(`blocks.${l}.attn.hook_z_grad`);
      for (let h = 0; h < H; h++) {
        let want = mCorr!;
        for (let row = 0; row < zc.shape[0]! * zc.shape[1]!; row++) {
          for (let e = 0; e < d; e++) {
            const i = (row * H + h) * d + e;
            want += (zc.data[i]! - zr.data[i]!) * g.data[i]!;
          }
        }
        expect(attr.scores.get(l, h)).toBeCloseTo(want, 4);
      }
    }
    model.dispose();
  });
});

describe("attribution patching: bad input", () => {
  it("names unknown kinds, missing clean activations and metrics without a gradient", async () => {
    const name = "tiny-gpt2-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const { cache: clean } = model.runWithCache(inputs.clean, { namesFilter: (n) => n.includes("resid") });
    expect(() => getAttrPatchAll(model, inputs.corrupted, clean, metric, { kinds: ["resid_pree" as never] })).toThrow(/unknown attribution kind "resid_pree"/);
    expect(() => getAttrPatchAll(model, inputs.corrupted, clean, metric, { kinds: ["attn_head_out_all_pos"] })).toThrow(/blocks.0.attn.hook_z/);
    const plain = Object.assign((l: never) => metric(l), { positions: "last" as const });
    expect(() => getAttrPatchAll(model, inputs.corrupted, clean, plain, { kinds: ["resid_pre"] })).toThrow(/no gradient/);
    model.dispose();
  });
});

describe("verifyAttribution", () => {
  it("runs the top entries exactly, equal to the full activation patching sweep there", async () => {
    const name = "tiny-llama-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const { cache: clean } = model.runWithCache(inputs.clean);
    const attr = getAttrPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric);
    const check = await verifyAttribution(model, inputs.corrupted, clean, metric, attr, { top: 5 });
    const full = await getActPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric);
    expect(check.entries).toHaveLength(5);
    const effect = (e: { estimate: number }) => Math.abs(e.estimate - attr.baseline);
    for (let i = 1; i < 5; i++) expect(effect(check.entries[i - 1]!)).toBeGreaterThanOrEqual(effect(check.entries[i]!));
    for (const e of check.entries) {
      expect(e.estimate).toBe(attr.scores.get(...(e.index as [number, number])));
      expect(e.exact).toBeCloseTo(full.scores.get(...(e.index as [number, number])), 5);
    }
    expect(check.maxAbsError).toBeCloseTo(Math.max(...check.entries.map((e) => Math.abs(e.estimate - e.exact))), 6);
    expect(check.spearman).toBeCloseTo(spearman(check.entries.map((e) => e.estimate), check.entries.map((e) => e.exact)), 6);
    // Only the chosen entries ran: the rest are NaN.
    const partial = await getActPatchAttnHeadOutAllPos(model, inputs.corrupted, clean, metric, { entries: [0, 3] });
    expect(Array.from(partial.scores.data).filter((x) => !Number.isNaN(x))).toHaveLength(2);
    model.dispose();
  });

  it("spearman ranks with ties and detects order", () => {
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    // Ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4]: ρ = 4.5 / sqrt(4.5 · 5).
    expect(spearman([1, 5, 5, 9], [1, 2, 3, 4])).toBeCloseTo(4.5 / Math.sqrt(4.5 * 5), 12);
    expect(spearman([1], [2])).toBeNaN();
  });
});
