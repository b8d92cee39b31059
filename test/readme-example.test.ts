// The README's library example, run on the embedded demo model (token ids instead of text:
// the demo model has no tokenizer). If this breaks, the README is wrong.
import { expect, it } from "vitest";
import {
  HookedTransformer, demoModelFiles, demoPrompts, getActPatchDirectPath, getActPatchResidPre, logitDiff, planSweep,
} from "../src/index.js";

it("the README flow runs end to end", async () => {
  const model = await HookedTransformer.fromPretrained(demoModelFiles());
  const { clean, corrupted, correct, incorrect } = demoPrompts({ batch: 4 });

  const { logits, cache } = model.runWithCache(clean);
  expect(cache.get("blocks.1.attn.hook_q").shape).toEqual([4, 21, 4, 32]);
  expect(cache.get("pattern", 1).shape).toEqual([4, 4, 21, 21]);
  expect(cache.get("scale", 1, "ln2").shape).toEqual([4, 21, 1]);
  // Each pattern row is a causal distribution: sums to 1, nothing on later positions.
  const pattern = cache.get("pattern", 1);
  for (let row = 0; row < 4 * 4 * 21; row++) {
    const dest = row % 21;
    const weights = pattern.data.subarray(row * 21, (row + 1) * 21);
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(weights.subarray(dest + 1).every((w) => w === 0), `row ${row}`).toBe(true);
  }

  const ablated = model.runWithHooks(clean, {
    fwdHooks: [["blocks.0.attn.hook_z", (z) => { z.data.fill(0); }]],
  }).logits!;
  const metric = logitDiff({ correct, incorrect });
  expect(metric(ablated)).toBeLessThan(metric(logits!));

  const cleanCache = cache;
  const corruptedCache = model.runWithCache(corrupted).cache;
  const resid = await getActPatchResidPre(model, corrupted, cleanCache, metric);
  expect(resid.scores.shape).toEqual([2, 21]);
  expect(resid.baseline).toBeCloseTo(metric(model.forward(corrupted).logits!), 5);
  expect(resid.clean).toBeCloseTo(metric(logits!), 5);
  // At layer 0, a position where the prompts agree changes nothing; one where they differ does.
  let agreeing = 0;
  for (let p = 0; p < 21; p++) {
    const same = clean.every((row, b) => row[p] === corrupted[b]![p]);
    if (same) {
      agreeing++;
      expect(resid.scores.get(0, p), `position ${p}`).toBeCloseTo(resid.baseline, 5);
    }
  }
  expect(agreeing).toBeGreaterThan(0);
  expect(Math.max(...Array.from(resid.scores.data, (s) => Math.abs(s - resid.baseline)))).toBeGreaterThan(0.1);
  const plan = planSweep(getActPatchDirectPath, model, corrupted, cleanCache, corruptedCache, metric,
    { srcLayer: 0, srcHead: 2, component: "k" });
  expect(plan.patches).toBe(4);
  expect(plan.estimatedSpeedup).toBeGreaterThan(1);
  const progress: number[] = [];
  const path = await getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, {
    srcLayer: 0, srcHead: 2, component: "k", mode: "linear",
    onProgress: ({ done }) => progress.push(done),
  });
  expect(path.scores.shape).toEqual([2, 4]);
  expect(progress.at(-1)).toBe(4);
  const normalized = path.normalized();
  expect(normalized.get(1, 1)).toBeGreaterThan(0.9); // the planted induction head
  expect(Array.from(path.noPath!.slice(0, 4))).toEqual([1, 1, 1, 1]);
  expect(Array.from(path.scores.data.subarray(0, 4))).toEqual([0, 0, 0, 0]);
});

it("the README's gradients and attribution patching example gives the numbers it shows", async () => {
  const { getAttrPatchAll, verifyAttribution } = await import("../src/index.js");
  const model = await HookedTransformer.fromPretrained(demoModelFiles());
  const { clean, corrupted, correct, incorrect } = demoPrompts({ batch: 4 });
  const metric = logitDiff({ correct, incorrect });
  const { cache, metric: m } = model.runWithCache(corrupted, { inclBwd: true, metric });
  expect(cache.get("blocks.1.attn.hook_z_grad").shape).toEqual([4, 21, 4, 32]);
  expect(m).toBeCloseTo(metric(model.forward(corrupted).logits!), 4);
  const cleanCache = model.runWithCache(clean).cache;
  const { attn_head_out_all_pos: heads } = getAttrPatchAll(model, corrupted, cleanCache, metric, { kinds: ["attn_head_out_all_pos"] });
  expect(heads.normalized().toNested().map((row) => (row as number[]).map((x) => x.toFixed(2))))
    .toEqual([["-0.00", "0.00", "-0.08", "0.01"], ["-0.00", "0.75", "0.00", "-0.00"]]);
  const check = await verifyAttribution(model, corrupted, cleanCache, metric, heads, { top: 3 });
  expect(check.entries.map((e) => [e.index.join("."), e.estimate.toFixed(3), e.exact.toFixed(3)]))
    .toEqual([["1.1", "5.076", "9.909"], ["0.2", "-11.246", "9.887"], ["0.3", "-9.587", "-9.458"]]);
  expect(check.spearman.toFixed(2)).toBe("0.50");
});
