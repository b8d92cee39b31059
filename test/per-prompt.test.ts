// Per-prompt rows of patching results and their uncertainty: each prompt's row equals the sweep
// run on that prompt alone; standard errors, bootstrap intervals and permutation p-values against
// direct computations written here; a planted effect is significant and a null one is not.
import { beforeAll, describe, expect, it } from "vitest";
import { SeededRandom } from "../src/demo/random.js";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import {
  demoModelFiles, demoPrompts, getActPatchDirectPath, getActPatchResidPre, HookedTransformer, logitDiff, logProb, normalize,
  type Metric,
} from "../src/index.js";

let model: HookedTransformer;
beforeAll(async () => {
  model = await HookedTransformer.fromPretrained(demoModelFiles(), { engine: await Engine.create({ variant: "simd" }) });
});

const prompts = demoPrompts({ batch: 6 });
const answers = { correct: prompts.correct, incorrect: prompts.incorrect };
const row = (tokens: number[][], b: number) => [tokens[b]!];

describe("metrics per prompt", () => {
  it("logitDiff, logProb and normalize give one value per row, whose mean is the metric, bit for bit", () => {
    const logits = model.forward(prompts.clean).logits!;
    for (const m of [logitDiff(answers), logProb({ correct: prompts.correct }), normalize(logitDiff(answers), { clean: 9.5, corrupted: -9.5 })]) {
      const values = m.perPrompt!(logits);
      expect(values.length).toBe(6);
      let sum = 0;
      for (const v of values) sum += v;
      expect(Math.abs(sum / 6 - m(logits))).toBeLessThan(1e-12);
    }
  });
});

describe("per-prompt rows of a sweep", () => {
  it("activation patching and direct path: prompt b's row is the sweep run on prompt b alone; baselines too", async () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    const metric = logitDiff(answers);
    const resid = await getActPatchResidPre(model, prompts.corrupted, clean, metric);
    const path = await getActPatchDirectPath(model, prompts.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 2, component: "k" });
    for (const result of [resid, path]) {
      const rows = result.perPrompt!;
      expect(rows.scores.shape).toEqual([6, ...result.scores.shape]);
      const n = result.scores.size;
      // Their mean is the score.
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let b = 0; b < 6; b++) sum += rows.scores.data[b * n + i]!;
        expect(sum / 6).toBeCloseTo(result.scores.data[i]!, 4);
      }
    }
    for (const b of [0, 3, 5]) {
      const one = { correct: [prompts.correct[b]!], incorrect: [prompts.incorrect[b]!] };
      const c1 = model.runWithCache(row(prompts.clean, b)).cache;
      const r1 = model.runWithCache(row(prompts.corrupted, b)).cache;
      const alone = await getActPatchResidPre(model, row(prompts.corrupted, b), c1, logitDiff(one));
      const n = alone.scores.size;
      for (let i = 0; i < n; i++) expect(resid.perPrompt!.scores.data[b * n + i]).toBeCloseTo(alone.scores.data[i]!, 4);
      expect(resid.perPrompt!.baseline[b]).toBeCloseTo(alone.baseline, 4);
      expect(resid.perPrompt!.clean[b]).toBeCloseTo(alone.clean, 4);
      const pathAlone = await getActPatchDirectPath(model, row(prompts.corrupted, b), c1, r1, logitDiff(one), { srcLayer: 0, srcHead: 2, component: "k" });
      for (let i = 0; i < pathAlone.scores.size; i++) expect(path.perPrompt!.scores.data[b * pathAlone.scores.size + i]).toBeCloseTo(pathAlone.scores.data[i]!, 4);
    }
  });

  it("stderr, bootstrapCi and permutationPValue match direct computations; the planted path is significant, a null head is not", async () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const corrupted = model.runWithCache(prompts.corrupted).cache;
    const r = await getActPatchDirectPath(model, prompts.corrupted, clean, corrupted, logitDiff(answers), { srcLayer: 0, srcHead: 2, component: "k" });
    const rows = r.perPrompt!;
    const [L, H] = r.scores.shape as [number, number];
    const at = (l: number, h: number) => l * H + h;
    const n = L * H;
    const values = (i: number) => Array.from({ length: 6 }, (_, b) => rows.scores.data[b * n + i]!);
    // Standard error: sample standard deviation over √B.
    const se = r.stderr();
    for (let i = 0; i < n; i++) {
      const v = values(i);
      const m = v.reduce((a, b) => a + b, 0) / 6;
      const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / 5);
      expect(se.data[i]).toBeCloseTo(sd / Math.sqrt(6), 5);
    }
    // Bootstrap: the same draws written out by hand.
    const { low, high } = r.bootstrapCi({ level: 0.9, samples: 200, seed: 7 });
    const random = new SeededRandom(7);
    const picks = Array.from({ length: 200 * 6 }, () => Math.floor(random.uniform() * 6));
    for (const i of [at(1, 1), at(1, 0)]) {
      const means = Array.from({ length: 200 }, (_, s) => picks.slice(s * 6, s * 6 + 6).reduce((a, b) => a + values(i)[b]!, 0) / 6).sort((a, b) => a - b);
      expect(low.data[i]).toBeCloseTo(means[Math.floor(0.05 * 199)]!, 5);
      expect(high.data[i]).toBeCloseTo(means[Math.ceil(0.95 * 199)]!, 5);
    }
    expect(r.bootstrapCi({ level: 0.9, samples: 200, seed: 7 }).low.data).toEqual(low.data); // deterministic for a seed
    // Permutation p-values: the sign-flip test written out.
    const p = r.permutationPValue({ samples: 500, seed: 3 });
    const flips = new SeededRandom(3);
    const signs = Array.from({ length: 500 * 6 }, () => (flips.uniform() < 0.5 ? -1 : 1));
    for (const i of [at(1, 1), at(1, 0)]) {
      const d = values(i).map((x, b) => x - rows.baseline[b]!);
      const observed = Math.abs(d.reduce((a, b) => a + b, 0) / 6);
      let extreme = 0;
      for (let s = 0; s < 500; s++) if (Math.abs(d.reduce((a, x, b) => a + signs[s * 6 + b]! * x, 0) / 6) >= observed * (1 - 1e-12)) extreme++;
      expect(p.data[i]).toBeCloseTo((1 + extreme) / 501, 6);
    }
    // The planted path 0.2 → 1.1 (k): every prompt moves the same way, so its interval excludes the
    // corrupted metric and its p-value is the smallest six prompts allow (2/64 of sign patterns).
    const planted = at(1, 1);
    expect(low.data[planted]).toBeGreaterThan(r.baseline);
    expect(p.data[planted]).toBeLessThan(0.06);
    // A head the path does not reach (0.2 → 1.0): no effect, p-value near one, interval around the baseline.
    const none = at(1, 0);
    expect(p.data[none]).toBeGreaterThan(0.3);
    expect(low.data[none]! - 1e-3).toBeLessThanOrEqual(r.baseline);
    expect(high.data[none]! + 1e-3).toBeGreaterThanOrEqual(r.baseline);
    // Per-prompt normalisation: each prompt by its own baseline and clean metric.
    const norm = r.normalized({ perPrompt: true });
    expect(norm.shape).toEqual([6, L, H]);
    for (let b = 0; b < 6; b++) {
      expect(norm.data[b * n + planted]).toBeCloseTo((rows.scores.data[b * n + planted]! - rows.baseline[b]!) / (rows.clean[b]! - rows.baseline[b]!), 5);
    }
  });

  it("bad input: a metric without perPrompt has no rows (and says so), a perPrompt of the wrong length is an error naming the patch", async () => {
    const clean = model.runWithCache(prompts.clean).cache;
    const base = logitDiff(answers);
    const plain = Object.assign((l: Tensor) => base(l), { positions: "last" as const }) as Metric;
    const r = await getActPatchResidPre(model, prompts.corrupted, clean, plain);
    expect(r.perPrompt).toBeUndefined();
    expect(() => r.stderr()).toThrow(/stderr: this result has no per-prompt rows \(its metric has no perPrompt\(logits\)/);
    const wrong = Object.assign((l: Tensor) => base(l), { positions: "last" as const, perPrompt: () => new Float64Array(3) }) as Metric;
    await expect(getActPatchResidPre(model, prompts.corrupted, clean, wrong)).rejects.toThrow(/metric\.perPrompt returned 3 values for .*it must give one number per prompt \(6\)/);
    const withRows = await getActPatchResidPre(model, prompts.corrupted, clean, base);
    expect(() => withRows.bootstrapCi({ level: 1.5 })).toThrow(/level must be in \(0, 1\), got 1.5/);
    expect(() => withRows.permutationPValue({ samples: 0 })).toThrow(/samples must be a positive integer, got 0/);
  });
});
