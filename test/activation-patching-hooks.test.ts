// Every activation-patching function against a plain hook-based patch written here: run the
// corrupted tokens with one forward hook that copies the clean activation into the slice an
// entry names, and read the logit difference. The planned and naive strategies share the
// library's setters, so only an independent patch like this one can catch a setter on the
// wrong axis.
import { beforeAll, describe, expect, it } from "vitest";
import * as hl from "../src/index.js";
import type { ActivationPatchSweep, Engine, HookedTransformer, Tensor } from "../src/index.js";
import { golden, referenceDir, type GoldenInputs } from "./reference.js";
import { randomGpt2Files } from "./random-gpt2.js";

/** The axes of each activation, by meaning (TransformerLens's layouts). */
type ActAxis = "batch" | "pos" | "d" | "head" | "dest" | "src";
const LAYOUTS: Record<string, { hook: (layer: number) => string; axes: ActAxis[] }> = {
  resid_pre: { hook: (l) => `blocks.${l}.hook_resid_pre`, axes: ["batch", "pos", "d"] },
  resid_mid: { hook: (l) => `blocks.${l}.hook_resid_mid`, axes: ["batch", "pos", "d"] },
  attn_out: { hook: (l) => `blocks.${l}.hook_attn_out`, axes: ["batch", "pos", "d"] },
  mlp_out: { hook: (l) => `blocks.${l}.hook_mlp_out`, axes: ["batch", "pos", "d"] },
  z: { hook: (l) => `blocks.${l}.attn.hook_z`, axes: ["batch", "pos", "head", "d"] },
  q: { hook: (l) => `blocks.${l}.attn.hook_q`, axes: ["batch", "pos", "head", "d"] },
  k: { hook: (l) => `blocks.${l}.attn.hook_k`, axes: ["batch", "pos", "head", "d"] },
  v: { hook: (l) => `blocks.${l}.attn.hook_v`, axes: ["batch", "pos", "head", "d"] },
  pattern: { hook: (l) => `blocks.${l}.attn.hook_pattern`, axes: ["batch", "head", "dest", "src"] },
};

/** An entry's axes; "pos" of a pattern is its destination (query) position, as in TransformerLens. */
type IndexAxis = "layer" | "pos" | "head" | "dest" | "src";
type Part = [activation: keyof typeof LAYOUTS, index: IndexAxis[]];
const LP: IndexAxis[] = ["layer", "pos"];
const LH: IndexAxis[] = ["layer", "head"];
const LPH: IndexAxis[] = ["layer", "pos", "head"];
const heads = (index: IndexAxis[]): Part[] => [["z", index], ["q", index], ["k", index], ["v", index], ["pattern", index]];

const FAMILY: [string, ActivationPatchSweep, Part[]][] = [
  ["getActPatchResidPre", hl.getActPatchResidPre, [["resid_pre", LP]]],
  ["getActPatchResidMid", hl.getActPatchResidMid, [["resid_mid", LP]]],
  ["getActPatchAttnOut", hl.getActPatchAttnOut, [["attn_out", LP]]],
  ["getActPatchMlpOut", hl.getActPatchMlpOut, [["mlp_out", LP]]],
  ["getActPatchAttnHeadOutAllPos", hl.getActPatchAttnHeadOutAllPos, [["z", LH]]],
  ["getActPatchAttnHeadQAllPos", hl.getActPatchAttnHeadQAllPos, [["q", LH]]],
  ["getActPatchAttnHeadKAllPos", hl.getActPatchAttnHeadKAllPos, [["k", LH]]],
  ["getActPatchAttnHeadVAllPos", hl.getActPatchAttnHeadVAllPos, [["v", LH]]],
  ["getActPatchAttnHeadPatternAllPos", hl.getActPatchAttnHeadPatternAllPos, [["pattern", LH]]],
  ["getActPatchAttnHeadOutByPos", hl.getActPatchAttnHeadOutByPos, [["z", LPH]]],
  ["getActPatchAttnHeadQByPos", hl.getActPatchAttnHeadQByPos, [["q", LPH]]],
  ["getActPatchAttnHeadKByPos", hl.getActPatchAttnHeadKByPos, [["k", LPH]]],
  ["getActPatchAttnHeadVByPos", hl.getActPatchAttnHeadVByPos, [["v", LPH]]],
  ["getActPatchAttnHeadPatternByPos", hl.getActPatchAttnHeadPatternByPos, [["pattern", LPH]]],
  ["getActPatchAttnHeadPatternDestSrcPos", hl.getActPatchAttnHeadPatternDestSrcPos, [["pattern", ["layer", "head", "dest", "src"]]]],
  ["getActPatchAttnHeadAllPosEvery", hl.getActPatchAttnHeadAllPosEvery, heads(LH)],
  ["getActPatchAttnHeadByPosEvery", hl.getActPatchAttnHeadByPosEvery, heads(LPH)],
  ["getActPatchBlockEvery", hl.getActPatchBlockEvery, [["resid_pre", LP], ["attn_out", LP], ["mlp_out", LP]]],
];

/** Mean over rows of logits[b, last, correct[b]] - logits[b, last, incorrect[b]], read straight from the data. */
function refLogitDiff(logits: Tensor, correct: readonly number[], incorrect: readonly number[]): number {
  const [B, P, V] = logits.shape as [number, number, number];
  let sum = 0;
  for (let b = 0; b < B; b++) {
    const row = (b * P + P - 1) * V;
    sum += logits.data[row + correct[b]!]! - logits.data[row + incorrect[b]!]!;
  }
  return sum / B;
}

/** Every activation of a clean run, copied out by a hook on every hook point. */
function captureAll(model: HookedTransformer, tokens: number[][]): Map<string, Tensor> {
  const store = new Map<string, Tensor>();
  model.runWithHooks(tokens, { fwdHooks: [[() => true, (act, point) => { store.set(point.name, act.clone()); }]] });
  return store;
}

/**
 * The metric of the corrupted run with `dst[i] = clean[i]` for every element i whose
 * coordinates take the given values on the given axes (the other axes run over everything).
 */
function hookPatched(model: HookedTransformer, corrupted: number[][], hook: string, clean: Tensor, fixed: Map<number, number>,
  answers: GoldenInputs): number {
  let fired = 0;
  const logits = model.runWithHooks(corrupted, {
    fwdHooks: [[hook, (act, point) => {
      fired++;
      expect(point.positionStart).toBe(0);
      expect(act.shape).toEqual(clean.shape);
      const shape = act.shape;
      for (let i = 0; i < act.size; i++) {
        let rest = i;
        let inSlice = true;
        for (let axis = shape.length - 1; axis >= 0; axis--) {
          const coord = rest % shape[axis]!;
          rest = Math.floor(rest / shape[axis]!);
          const want = fixed.get(axis);
          if (want !== undefined && coord !== want) { inSlice = false; break; }
        }
        if (inSlice) act.data[i] = clean.data[i]!;
      }
    }]],
  }).logits!;
  expect(fired, hook).toBe(1);
  return refLogitDiff(logits, answers.correct, answers.incorrect);
}

interface Entry { flat: number; ref: number; label: string }

/**
 * The hook-patched metric at every entry of a family member (or at `sample` of them, spread
 * over the whole range, with the first and last always in), with its expected shape.
 */
function referenceScores(model: HookedTransformer, answers: GoldenInputs, cleanActs: Map<string, Tensor>,
  parts: Part[], sample?: number): { shape: number[]; entries: Entry[] } {
  const { nLayers, nHeads, nKeyValueHeads } = model.cfg;
  const P = answers.corrupted[0]!.length;
  const partShapes = parts.map(([act, index]) => index.map((axis) => {
    if (axis === "layer") return nLayers;
    if (axis === "head") return act === "k" || act === "v" ? nKeyValueHeads : nHeads;
    return P;
  }));
  const partSize = partShapes[0]!.reduce((a, b) => a * b, 1);
  const shape = parts.length === 1 ? partShapes[0]! : [parts.length, ...partShapes[0]!];
  const total = parts.length * partSize;
  const flats = sample === undefined || sample >= total
    ? Array.from({ length: total }, (_, i) => i)
    : [...new Set(Array.from({ length: sample }, (_, i) => Math.round((i * (total - 1)) / (sample - 1))))];
  const entries = flats.map((flat) => {
    const which = Math.floor(flat / partSize);
    const [act, indexAxes] = parts[which]!;
    const dims = partShapes[which]!;
    const index: number[] = [];
    for (let i = dims.length - 1, r = flat % partSize; i >= 0; i--) { index[i] = r % dims[i]!; r = Math.floor(r / dims[i]!); }
    const layout = LAYOUTS[act]!;
    const fixed = new Map<number, number>();
    indexAxes.forEach((axis, i) => {
      if (axis === "layer") return;
      const actAxis: ActAxis = axis === "pos" && !layout.axes.includes("pos") ? "dest" : axis;
      const at = layout.axes.indexOf(actAxis);
      if (at < 0) throw new Error(`test table: ${act} has no ${axis} axis`);
      fixed.set(at, index[i]!);
    });
    const hook = layout.hook(index[0]!);
    const ref = hookPatched(model, answers.corrupted, hook, cleanActs.get(hook)!, fixed, answers);
    return { flat, ref, label: `${act} [${index.join(", ")}]` };
  });
  return { shape, entries };
}

/** The README's "same numbers (tested to 1e-5)"; the largest difference seen is ~5e-7. */
const TOL = 1e-5;

function expectMatches(got: hl.PatchResult, want: { shape: number[]; entries: Entry[] }, label: string, baseline: number): void {
  expect(got.scores.shape, label).toEqual(want.shape);
  expect(got.baseline, label).toBeCloseTo(baseline, 5);
  for (const e of want.entries) {
    expect(Math.abs(got.scores.data[e.flat]! - e.ref), `${label} ${e.label}: ${got.scores.data[e.flat]} vs hook patch ${e.ref}`)
      .toBeLessThanOrEqual(TOL);
  }
  // Entries must differ among themselves well beyond the tolerance, or a patch of the wrong
  // slice could not be told from the right one.
  const refs = want.entries.map((e) => e.ref);
  expect(Math.max(...refs) - Math.min(...refs), label).toBeGreaterThan(100 * TOL);
}

function familyAgainstHooks(title: string, load: (engine: Engine) => Promise<HookedTransformer>, answers: () => GoldenInputs,
  opts: { sample?: number; gqa?: boolean } = {}): void {
  describe(title, () => {
    let model: HookedTransformer;
    let cleanCache: hl.ActivationCache;
    let cleanActs: Map<string, Tensor>;
    let baseline: number;
    beforeAll(async () => {
      model = await load(await hl.Engine.create());
      cleanCache = model.runWithCache(answers().clean).cache;
      cleanActs = captureAll(model, answers().clean);
      baseline = refLogitDiff(model.runWithHooks(answers().corrupted).logits!, answers().correct, answers().incorrect);
    });

    for (const [name, fn, parts] of FAMILY) {
      const kvHeads = parts.some(([act, index]) => (act === "k" || act === "v") && index.includes("head"));
      if (opts.gqa && kvHeads && parts.length > 1) {
        it(`${name} refuses grouped-query attention's unequal head counts`, async () => {
          const a = answers();
          await expect(fn(model, a.corrupted, cleanCache, hl.logitDiff(a))).rejects.toThrow(/different shapes .*grouped-query/);
        });
        continue;
      }
      it(`${name}, planned and naive, equals a plain hook patch at each entry`, async () => {
        const a = answers();
        const want = referenceScores(model, a, cleanActs, parts, opts.sample);
        const scores: Float32Array[] = [];
        for (const strategy of ["planned", "naive"] as const) {
          const got = await fn(model, a.corrupted, cleanCache, hl.logitDiff(a), { strategy });
          expectMatches(got, want, `${name} (${strategy})`, baseline);
          scores.push(got.scores.data);
        }
        // Every entry, sampled or not: the planned sweep gives the naive loop's numbers.
        let worst = 0;
        for (let i = 0; i < scores[0]!.length; i++) worst = Math.max(worst, Math.abs(scores[0]![i]! - scores[1]![i]!));
        expect(worst, `${name}: planned vs naive`).toBeLessThanOrEqual(TOL);
      });
    }
  });
}

familyAgainstHooks("activation patching on tiny-gpt2-random against hook patches", (engine) =>
  hl.HookedTransformer.fromPretrained(referenceDir("tiny-gpt2-random"), { engine }), () => golden<GoldenInputs>("tiny-gpt2-random", "inputs.json"),
{ sample: 200 });

familyAgainstHooks("activation patching on tiny-llama-random (rotary, RMSNorm, grouped-query attention) against hook patches", (engine) =>
  hl.HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"), { engine }), () => golden<GoldenInputs>("tiny-llama-random", "inputs.json"),
{ sample: 64, gqa: true });

// The tokens differ only from position 8 on, so planned sweeps reuse the corrupted prefix and
// hand setters a window of positions (the setters then see local indices).
const late: GoldenInputs = (() => {
  const clean = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]];
  const corrupted = clean.map((row) => row.map((t, p) => (p === 8 ? (t + 13) % 29 : t)));
  return { clean, corrupted, correct: [3, 4], incorrect: [5, 6] };
})();
familyAgainstHooks("activation patching with a late difference (prefix reuse, position windows) against hook patches", (engine) =>
  hl.HookedTransformer.fromPretrained(randomGpt2Files({ nLayer: 3, nHead: 2, nEmbd: 16, nPositions: 16, vocab: 29, seed: 77 }), { engine }),
() => late, { sample: 96 });
