// Gradients against finite differences of the whole model: for every hook point, the directional
// derivative along a random u (central differences, Richardson-extrapolated) equals Σ grad · u. Unprocessed weights
// (LayerNorm and RMSNorm with their own weights), padded rows, both families.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff, logProb, type Metric } from "../src/patching/metrics.js";
import { randn } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { referenceDir } from "./reference.js";

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ variant: "simd" });
});

function checkEveryHook(model: HookedTransformer, tokens: number[][], metric: Metric, attentionMask?: number[][],
  skip: (name: string) => boolean = () => false): void {
  const { cache } = model.runWithCache(tokens, { inclBwd: true, metric, attentionMask });
  const eps = 1e-2;
  let seed = 11;
  for (const name of model.hookNames()) {
    if (skip(name)) continue;
    const act = cache.get(name);
    const u = randn(act.size, seed++);
    const shifted = (step: number) => metric(model.runWithHooks(tokens, {
      attentionMask,
      fwdHooks: [[name, (a: Tensor) => { for (let i = 0; i < a.size; i++) a.data[i]! += step * u[i]!; }]],
    }).logits!);
    // Central differences at steps ε and ε/2, extrapolated (Richardson) to cancel the ε² term.
    const central = (h: number) => (shifted(h) - shifted(-h)) / (2 * h);
    const fd = (4 * central(eps / 2) - central(eps)) / 3;
    const g = cache.get(`${name}_grad`);
    let analytic = 0;
    for (let i = 0; i < g.size; i++) {
      // -∞ scores (masked) carry no gradient and a shift leaves them -∞.
      if (Number.isFinite(act.data[i]!)) analytic += g.data[i]! * u[i]!;
    }
    expect(Math.abs(fd - analytic), `${name}: finite difference ${fd}, gradient ${analytic}`).toBeLessThanOrEqual(3e-3 * Math.max(1, Math.abs(analytic)));
  }
}

describe("gradients through changed split inputs against finite differences", () => {
  // A hook's change is a constant offset to the backward (the gradient passes through a hook point as
  // if its output were the activation), so the changes here add constants, which finite differences agree with.
  it.each(["gpt2", "llama"])("%s: forward hooks shift one head's q input and one key/value head's v input", async (family) => {
    const model = family === "gpt2"
      ? await HookedTransformer.fromPretrained(randomGpt2Files({ nLayer: 2, nHead: 3, nEmbd: 24, nPositions: 12, vocab: 40, seed: 7 }), { engine, processWeights: false })
      : await HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"), { engine });
    const D = model.cfg.dModel;
    // Each head reads its own changed copy: its own ln1 statistics, which the backward must recompute.
    model.addHook("blocks.1.hook_q_input", (a) => {
      const H = a.shape[2]!;
      for (let r = 0; r < a.size / (H * D); r++) for (let i = 0; i < D; i++) a.data[(r * H + 1) * D + i]! += 0.5 * Math.cos(3 * i + r);
    });
    model.addHook("blocks.0.hook_v_input", (a) => {
      const Hk = a.shape[2]!;
      for (let r = 0; r < a.size / (Hk * D); r++) for (let i = 0; i < D; i++) a.data[(r * Hk + 0) * D + i]! += 0.3 * Math.sin(i + r);
    });
    const tokens = [[1, 7, 3, 9, 2, 5], [4, 4, 8, 1, 0, 6]];
    // ln1's hooks of a layer whose heads read their own copies may look but not change (split path).
    checkEveryHook(model, tokens, logitDiff({ correct: [3, 8], incorrect: [5, 1] }), undefined, (name) => /^blocks\.[01]\.ln1\./.test(name));
    model.dispose();
  });
});

describe("gradients against finite differences at every hook point", () => {
  it.each(["tiny-gpt_neox-random", "tiny-gemma2-random", "tiny-qwen2-random", "tiny-llama3-random", "tiny-olmo-random", "tiny-mistral-random"])("%s (parallel attention + MLP and partial rotary; post-norms, soft-caps and GeGLU; q/k/v biases; Llama 3's rope scaling; a parameter-free LayerNorm; a sliding window), unprocessed", async (name) => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, processWeights: false });
    // Twelve positions: Mistral's window (6) cuts the later queries' keys.
    checkEveryHook(model, [[1, 7, 3, 9, 2, 5, 11, 4, 8, 13, 6, 2], [4, 4, 8, 1, 0, 6, 30, 2, 9, 9, 1, 3]], logitDiff({ correct: [3, 8], incorrect: [5, 1] }));
    model.dispose();
  });

  it("GPT-2 with its LayerNorm weights, per-head results, logit difference and log-probability", async () => {
    const files = randomGpt2Files({ nLayer: 2, nHead: 3, nEmbd: 24, nPositions: 12, vocab: 40, seed: 5 });
    const model = await HookedTransformer.fromPretrained(files, { engine, processWeights: false, useAttnResult: true });
    const tokens = [[1, 7, 3, 9, 2, 5], [4, 4, 8, 1, 0, 6]];
    checkEveryHook(model, tokens, logitDiff({ correct: [3, 8], incorrect: [5, 1] }));
    checkEveryHook(model, tokens, logProb({ correct: [3, 8] }));
  });

  it("GPT-2 with a left-padded row", async () => {
    const files = randomGpt2Files({ nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 12, vocab: 30, seed: 9 });
    const model = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
    checkEveryHook(model, [[0, 0, 5, 9, 2], [4, 4, 8, 1, 6]], logitDiff({ correct: [3, 8], incorrect: [5, 1] }),
      [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]);
  });

  it("split q/k/v inputs and hook_mlp_in (each head's own copy), GPT-2 and LLaMA", async () => {
    const files = randomGpt2Files({ nLayer: 2, nHead: 3, nEmbd: 24, nPositions: 12, vocab: 40, seed: 6 });
    const gpt2 = await HookedTransformer.fromPretrained(files, { engine, processWeights: false, useSplitQkvInput: true, useHookMlpIn: true });
    expect(gpt2.hookNames()).toContain("blocks.1.hook_q_input");
    expect(gpt2.hookNames()).toContain("blocks.0.hook_mlp_in");
    checkEveryHook(gpt2, [[1, 7, 3, 9, 2, 5], [4, 4, 8, 1, 0, 6]], logitDiff({ correct: [3, 8], incorrect: [5, 1] }));
    const llama = await HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    checkEveryHook(llama, [[0, 12, 50, 84, 60, 23], [73, 59, 77, 44, 11, 78]], logitDiff({ correct: [42, 78], incorrect: [47, 2] }));
    // A parallel MLP's hook_mlp_in is its copy of resid_pre.
    const neox = await HookedTransformer.fromPretrained(referenceDir("tiny-gpt_neox-random"), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    expect(neox.hookNames()).not.toContain("blocks.0.hook_resid_mid");
    checkEveryHook(neox, [[1, 7, 3, 9, 2, 5], [4, 4, 8, 1, 0, 6]], logitDiff({ correct: [3, 8], incorrect: [5, 1] }));
  });

  it("LLaMA (RMSNorm weights, rotary, grouped-query attention, SwiGLU), padded", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"), { engine, processWeights: false });
    expect(model.cfg.nKeyValueHeads).toBeLessThan(model.cfg.nHeads);
    checkEveryHook(model, [[0, 12, 50, 84, 60, 23], [73, 59, 77, 44, 11, 78]], logitDiff({ correct: [42, 78], incorrect: [47, 2] }),
      [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]);
  });
});
