// Per-prompt rows of the gradient-based results (attribution patching, EAP, EAP-IG) and of circuit
// evaluation (evaluateCircuit, discovery, ACDC): prompt b's row equals the same computation on
// prompt b alone, the rows' mean is the result, and the faithfulness interval equals a bootstrap
// written out here.
import { beforeAll, describe, expect, it } from "vitest";
import { SeededRandom } from "../src/demo/random.js";
import { Engine } from "../src/engine/engine.js";
import {
  acdc, demoModelFiles, demoPrompts, evaluateCircuit, faithfulnessCi, getAttrPatchAll, getEdgeAttrEap, getEdgeAttrEapIg, HookedTransformer,
  logitDiff, type PatchResult,
} from "../src/index.js";

let model: HookedTransformer;
beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(demoModelFiles(), { engine: await Engine.create({ variant: "simd" }) });
});

const B = 4;
const prompts = demoPrompts({ batch: B });
const answers = { correct: prompts.correct, incorrect: prompts.incorrect };
const alone = (b: number) => ({
  clean: model.runWithCache([prompts.clean[b]!]).cache,
  corrupted: model.runWithCache([prompts.corrupted[b]!]).cache,
  tokens: [prompts.corrupted[b]!],
  metric: logitDiff({ correct: [prompts.correct[b]!], incorrect: [prompts.incorrect[b]!] }),
});

/** Rows [B, ...shape] average to the scores, and row b equals `single(b)`'s scores (and baselines). */
function expectRows(result: PatchResult<object>, single: (b: number) => PatchResult<object>, digits = 4): void {
  const rows = result.perPrompt!;
  const n = result.scores.size;
  expect(rows.scores.shape).toEqual([B, ...result.scores.shape]);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let b = 0; b < B; b++) sum += rows.scores.data[b * n + i]!;
    expect(sum / B).toBeCloseTo(result.scores.data[i]!, 4);
  }
  for (const b of [0, B - 1]) {
    const one = single(b);
    for (let i = 0; i < n; i++) expect(rows.scores.data[b * n + i]).toBeCloseTo(one.scores.data[i]!, digits);
    expect(rows.baseline[b]).toBeCloseTo(one.baseline, 5);
    expect(rows.clean[b]).toBeCloseTo(one.clean, 5);
  }
}

describe("per-prompt rows of gradient-based results", () => {
  it("attribution patching: prompt b's estimates are the attribution run on prompt b alone", () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const kinds = ["resid_pre", "attn_head_out_all_pos", "attn_head_pattern_by_pos"] as const;
    const all = getAttrPatchAll(model, prompts.corrupted, clean, logitDiff(answers), { kinds });
    const singles = new Map<number, ReturnType<typeof getAttrPatchAll<(typeof kinds)[number]>>>();
    const single = (b: number) => {
      if (!singles.has(b)) { const a = alone(b); singles.set(b, getAttrPatchAll(model, a.tokens, a.clean, a.metric, { kinds })); }
      return singles.get(b)!;
    };
    for (const kind of kinds) expectRows(all[kind], (b) => single(b)[kind]);
  });

  it("EAP and EAP-IG: prompt b's edge scores are the run on prompt b alone", async () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    const eap = await getEdgeAttrEap(model, prompts.corrupted, clean, corrupted, logitDiff(answers));
    expect(eap.perPrompt!.scores.shape).toEqual([B, ...eap.scores.shape]);
    const eapAlone = new Map<number, PatchResult<object>>();
    const igAlone = new Map<number, PatchResult<object>>();
    for (const b of [0, B - 1]) {
      const a = alone(b);
      eapAlone.set(b, await getEdgeAttrEap(model, a.tokens, a.clean, a.corrupted, a.metric));
      igAlone.set(b, await getEdgeAttrEapIg(model, a.tokens, a.clean, a.corrupted, a.metric, { steps: 3 }));
    }
    expectRows(eap, (b) => eapAlone.get(b)!);
    const ig = await getEdgeAttrEapIg(model, prompts.corrupted, clean, corrupted, logitDiff(answers), { steps: 3 });
    expectRows(ig, (b) => igAlone.get(b)!);
    // No-path entries stay 0 in every row.
    const n = eap.scores.size;
    for (let i = 0; i < n; i++) if (eap.noPath![i]) for (let b = 0; b < B; b++) expect(eap.perPrompt!.scores.data[b * n + i]).toBe(0);
  });
});

describe("per-prompt rows of circuits", () => {
  const edges: [string, string][] = [["input", "a0.h2<v>"], ["a0.h2", "a1.h1<k>"], ["a1.h1", "logits"], ["input", "a1.h1<q>"], ["input", "a1.h1<v>"]];

  it("evaluateCircuit keeps each prompt's metric (= the circuit run on that prompt alone); faithfulnessCi is the bootstrap of the ratio of means", () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    const ev = evaluateCircuit(model, prompts.corrupted, clean, corrupted, logitDiff(answers), edges);
    const rows = ev.perPrompt!;
    expect(rows.metric.length).toBe(B);
    expect(rows.metric.reduce((a, b) => a + b, 0) / B).toBeCloseTo(ev.metric, 5);
    for (const b of [0, 2]) {
      const a = alone(b);
      const one = evaluateCircuit(model, a.tokens, a.clean, a.corrupted, a.metric, edges);
      expect(rows.metric[b]).toBeCloseTo(one.metric, 4);
      expect(one.perPrompt!.baseline[0]).toBeCloseTo(rows.baseline[b]!, 5);
      expect(one.perPrompt!.clean[0]).toBeCloseTo(rows.clean[b]!, 5);
    }
    // The interval, written out: the same resampled prompt sets as bootstrapCi.
    const { low, high } = faithfulnessCi(ev, { level: 0.8, samples: 300, seed: 11 });
    const random = new SeededRandom(11);
    const picks = Array.from({ length: 300 * B }, () => Math.floor(random.uniform() * B));
    const ratios: number[] = [];
    for (let s = 0; s < 300; s++) {
      const set = picks.slice(s * B, (s + 1) * B);
      const mean = (x: Float64Array) => set.reduce((acc, p) => acc + x[p]!, 0);
      const den = mean(rows.clean) - mean(rows.baseline);
      if (den !== 0) ratios.push((mean(rows.metric) - mean(rows.baseline)) / den);
    }
    ratios.sort((a, b) => a - b);
    expect(low).toBeCloseTo(ratios[Math.floor(0.1 * (ratios.length - 1))]!, 9);
    expect(high).toBeCloseTo(ratios[Math.ceil(0.9 * (ratios.length - 1))]!, 9);
    expect(low).toBeLessThanOrEqual(ev.faithfulness + 1e-9);
    expect(high).toBeGreaterThanOrEqual(ev.faithfulness - 1e-9);
    expect(() => faithfulnessCi({}, {})).toThrow(/faithfulnessCi: this evaluation has no per-prompt rows/);
    expect(() => faithfulnessCi(ev, { samples: 1.5 })).toThrow(/samples must be a positive integer, got 1.5/);
  });

  it("ACDC keeps the kept circuit's per-prompt metrics", async () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    const found = await acdc(model, prompts.corrupted, clean, corrupted, logitDiff(answers), { threshold: 0.05 });
    const again = evaluateCircuit(model, prompts.corrupted, clean, corrupted, logitDiff(answers), found.edges);
    for (let b = 0; b < B; b++) expect(found.perPrompt!.metric[b]).toBeCloseTo(again.perPrompt!.metric[b]!, 4);
    expect(found.perPrompt!.baseline).toEqual(again.perPrompt!.baseline);
  });
});
