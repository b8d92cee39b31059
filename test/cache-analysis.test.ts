import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { ActivationCache, HookedTransformer } from "../src/index.js";
import { rng } from "./helpers.js";
import { randomGpt2Files, type RandomGpt2Spec } from "./random-gpt2.js";

const SPEC: RandomGpt2Spec = { nLayer: 2, nHead: 4, nEmbd: 32, nPositions: 16, vocab: 50, seed: 21 };
const [B, P, D, H, V] = [3, 7, 32, 4, 50];

function randomTokens(batch: number, pos: number, vocab: number, seed: number): number[][] {
  const next = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => Math.floor(next() * vocab)));
}

/** Asserts equal shapes and max |a - b| ≤ tol · max(1, max |b|). */
function expectClose(a: Tensor, b: Tensor, tol = 1e-4): void {
  expect(a.shape).toEqual(b.shape);
  let diff = 0;
  let ref = 1;
  for (let i = 0; i < a.size; i++) {
    diff = Math.max(diff, Math.abs(a.data[i]! - b.data[i]!));
    ref = Math.max(ref, Math.abs(b.data[i]!));
  }
  expect(diff / ref).toBeLessThanOrEqual(tol);
}

const tokens = randomTokens(B, P, V, 5);
const answers = tokens.map((_, b) => (b * 7 + 3) % V);
const wrong = tokens.map((_, b) => (b * 11 + 20) % V);
let engine: Engine;
let model: HookedTransformer;
let cache: ActivationCache;
let logits: Tensor;

beforeAll(async () => {
  engine = await Engine.create();
  model = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine });
  const run = model.runWithCache(tokens);
  cache = run.cache;
  logits = run.logits!;
});

const W = (name: string): Tensor => model.weights.get(name)!;

describe("decomposeResid", () => {
  it("labels embed, pos_embed and each sublayer, and sums to the residual stream it decomposes", () => {
    const [stack, labels] = cache.decomposeResid(undefined, { returnLabels: true });
    expect(labels).toEqual(["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]);
    expect(stack.shape).toEqual([6, B, P, D]);
    expectClose(stack.sum(0), cache.get("blocks.1.hook_resid_post"));
    expectClose(cache.decomposeResid(-1).sum(0), cache.get("blocks.1.hook_resid_post"));
    expectClose(cache.decomposeResid(1).sum(0), cache.get("blocks.1.hook_resid_pre"));
    expectClose(cache.decomposeResid(0).sum(0), cache.get("blocks.0.hook_resid_pre"));
    expectClose(stack.select(0, 3), cache.get("blocks.0.hook_mlp_out"), 0);
  });

  it("selects sublayers by mode, leaves out the embeddings on request, and decomposes the MLP input", () => {
    expect(cache.decomposeResid(undefined, { mode: "attn", returnLabels: true })[1])
      .toEqual(["embed", "pos_embed", "0_attn_out", "1_attn_out"]);
    const [mlp, mlpLabels] = cache.decomposeResid(2, { mode: "mlp", inclEmbeds: false, returnLabels: true });
    expect(mlpLabels).toEqual(["0_mlp_out", "1_mlp_out"]);
    expectClose(mlp.select(0, 1), cache.get("blocks.1.hook_mlp_out"), 0);
    const [mid, midLabels] = cache.decomposeResid(1, { mlpInput: true, returnLabels: true });
    expect(midLabels).toEqual(["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out"]);
    expectClose(mid.sum(0), cache.get("blocks.1.hook_resid_mid"));
    const empty = cache.decomposeResid(0, { inclEmbeds: false, posSlice: -1 });
    expect(empty.shape).toEqual([0, B, D]);
  });

  it("slices positions and applies the layer norm of the layer that reads the stack", () => {
    const last = cache.decomposeResid(undefined, { posSlice: -1 });
    expect(last.shape).toEqual([6, B, D]);
    expectClose(last.sum(0), cache.get("blocks.1.hook_resid_post").select(1, -1));
    const range = cache.decomposeResid(undefined, { posSlice: [2, 5] });
    expectClose(range.sum(0), cache.get("blocks.1.hook_resid_post").slice(1, 2, 5));
    expectClose(cache.decomposeResid(undefined, { applyLn: true }).sum(0), cache.get("ln_final.hook_normalized"));
    expectClose(cache.decomposeResid(1, { applyLn: true, posSlice: [1, 4] }).sum(0),
      cache.get("blocks.1.ln1.hook_normalized").slice(1, 1, 4));
    expectClose(cache.decomposeResid(0, { mlpInput: true, applyLn: true }).sum(0), cache.get("blocks.0.ln2.hook_normalized"));
  });
});

describe("accumulatedResid", () => {
  it("stacks resid_pre of each layer and the final resid_post, with labels", () => {
    const [stack, labels] = cache.accumulatedResid(undefined, { returnLabels: true });
    expect(labels).toEqual(["0_pre", "1_pre", "final_post"]);
    expect(stack.shape).toEqual([3, B, P, D]);
    expectClose(stack.select(0, 2), cache.get("blocks.1.hook_resid_post"), 0);
    expectClose(stack.select(0, 1), cache.get("blocks.1.hook_resid_pre"), 0);
    expect(cache.accumulatedResid(undefined, { inclMid: true, returnLabels: true })[1])
      .toEqual(["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]);
    expect(cache.accumulatedResid(1, { inclMid: true, returnLabels: true })[1]).toEqual(["0_pre", "0_mid", "1_pre"]);
    expect(cache.accumulatedResid(1, { mlpInput: true, returnLabels: true })[1]).toEqual(["0_pre", "1_pre", "1_mid"]);
    expect(cache.accumulatedResid(0, { returnLabels: true })[1]).toEqual(["0_pre"]);
    const last = cache.accumulatedResid(undefined, { posSlice: -1 });
    expectClose(last.select(0, 2), cache.get("blocks.1.hook_resid_post").select(1, -1), 0);
  });

  it("applyLn: a logit lens at the end (each component normalised alone), the cached scale before", () => {
    const lens = cache.accumulatedResid(undefined, { applyLn: true, inclMid: true });
    expectClose(lens.select(0, 4), cache.get("ln_final.hook_normalized"));
    // Each component is normalised with its own statistics: zero mean, unit RMS (up to eps).
    const centred = lens.mean(-1);
    expect(Math.max(...centred.data.map(Math.abs))).toBeLessThan(1e-4);
    const rms = lens.mul(lens).mean(-1).sqrt();
    for (const r of rms.data) expect(r).toBeGreaterThan(0.98);
    const toLayer1 = cache.accumulatedResid(1, { applyLn: true });
    expectClose(toLayer1.select(0, 1), cache.get("blocks.1.ln1.hook_normalized"));
    const toMlp = cache.accumulatedResid(1, { applyLn: true, mlpInput: true, posSlice: 3 });
    expectClose(toMlp.select(0, 2), cache.get("blocks.1.ln2.hook_normalized").select(1, 3));
  });
});

describe("stackHeadResults", () => {
  it("labels every head and sums, with b_O, to each layer's hook_attn_out", () => {
    const [stack, labels] = cache.stackHeadResults(undefined, { returnLabels: true });
    expect(labels).toEqual(["L0H0", "L0H1", "L0H2", "L0H3", "L1H0", "L1H1", "L1H2", "L1H3"]);
    expect(stack.shape).toEqual([2 * H, B, P, D]);
    for (let l = 0; l < 2; l++) {
      const heads = stack.slice(0, l * H, (l + 1) * H).sum(0).add(W(`blocks.${l}.attn.b_O`));
      expectClose(heads, cache.get(`blocks.${l}.hook_attn_out`));
    }
    expect(cache.stackHeadResults(1, { returnLabels: true })[1]).toEqual(["L0H0", "L0H1", "L0H2", "L0H3"]);
    expect(cache.stackHeadResults(0, { posSlice: -1 }).shape).toEqual([0, B, D]);
  });

  it("matches a head computed by hand and the cached hook_result of a useAttnResult model", async () => {
    const z = cache.get("blocks.1.attn.hook_z");
    const WO = W("blocks.1.attn.W_O");
    const stack = cache.stackHeadResults(undefined, { posSlice: 4 });
    const [b, h] = [2, 3];
    const byHand = z.select(0, b).select(0, 4).select(0, h).matmul(WO.select(0, h));   // [dModel]
    expectClose(stack.select(0, H + h).select(0, b), byHand);

    const withResult = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine, useAttnResult: true });
    const other = withResult.runWithCache(tokens).cache;
    expect(other.has("blocks.0.attn.hook_result")).toBe(true);
    expectClose(other.stackHeadResults(undefined, { posSlice: [1, 6] }), cache.stackHeadResults(undefined, { posSlice: [1, 6] }));
    withResult.dispose();
  });

  it("applyLn uses the scale of the layer that reads the heads", () => {
    const scaled = cache.stackHeadResults(1, { applyLn: true, posSlice: -1 });
    const raw = cache.stackHeadResults(1, { posSlice: -1 });
    expectClose(scaled, cache.applyLnToStack(raw, 1, { posSlice: -1 }), 0);
  });
});

describe("applyLnToStack", () => {
  it("turns the final residual stream into ln_final.hook_normalized, and a stack into a decomposition of it", () => {
    const post = cache.get("blocks.1.hook_resid_post").unsqueeze(0);
    expectClose(cache.applyLnToStack(post).select(0, 0), cache.get("ln_final.hook_normalized"));
    expectClose(cache.applyLnToStack(post, 2).select(0, 0), cache.get("ln_final.hook_normalized"));
    const pre1 = cache.get("blocks.1.hook_resid_pre").unsqueeze(0);
    expectClose(cache.applyLnToStack(pre1, 1).select(0, 0), cache.get("blocks.1.ln1.hook_normalized"));
    // centerWritingWeights already centres what the model writes, so shift it to see the centring.
    expectClose(cache.applyLnToStack(post.add(5), undefined).select(0, 0), cache.get("ln_final.hook_normalized"));
    const mid0 = cache.get("blocks.0.hook_resid_mid").unsqueeze(0);
    expectClose(cache.applyLnToStack(mid0, 0, { mlpInput: true }).select(0, 0), cache.get("blocks.0.ln2.hook_normalized"));
  });

  it("slices the cached scale by posSlice and batchSlice, with or without a batch dim in the stack", () => {
    const normalized = cache.get("ln_final.hook_normalized");
    const stack = cache.decomposeResid(undefined, { posSlice: [2, 6] });
    expectClose(cache.applyLnToStack(stack, undefined, { posSlice: [2, 6] }).sum(0), normalized.slice(1, 2, 6));
    const rows = cache.applyLnToStack(stack, undefined, { posSlice: [2, 6], batchSlice: [1, 3] });
    expectClose(rows.sum(0), normalized.slice(0, 1, 3).slice(1, 2, 6));
    const one = cache.applyLnToStack(stack, undefined, { posSlice: [2, 6], batchSlice: 2 });
    expectClose(one.sum(0), normalized.select(0, 2).slice(0, 2, 6));
    const noBatch = stack.select(1, 2);   // [components, pos, dModel]
    expectClose(cache.applyLnToStack(noBatch, undefined, { posSlice: [2, 6], batchSlice: 2, hasBatchDim: false }), one);
  });
});

describe("logitAttrs", () => {
  it("components of the decomposition plus b_U give each position's logit of its token", () => {
    const stack = cache.decomposeResid();
    const next = tokens.map((row) => row.map((t) => (t + 1) % V));
    const attrs = cache.logitAttrs(stack, next);
    expect(attrs.shape).toEqual([6, B, P]);
    const total = attrs.sum(0);
    const bU = W("unembed.b_U");
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < P; p++) {
        const t = next[b]![p]!;
        expect(total.get(b, p) + bU.get(t)).toBeCloseTo(logits.get(b, p, t), 3);
      }
    }
  });

  it("equals the scaled stack dotted with W_U[:, token], for one token, one per row, and per position", () => {
    const stack = cache.decomposeResid(undefined, { posSlice: -1 });
    const scaled = cache.applyLnToStack(stack, undefined, { posSlice: -1 });   // [6, B, D]
    const column = (t: number): Tensor => W("unembed.W_U").select(1, t);
    const perRow = cache.logitAttrs(stack, answers, undefined, { posSlice: -1 });
    expect(perRow.shape).toEqual([6, B]);
    for (let b = 0; b < B; b++) expectClose(perRow.select(1, b), scaled.select(1, b).matmul(column(answers[b]!)));
    expectClose(cache.logitAttrs(stack, 9, undefined, { posSlice: -1 }), scaled.matmul(column(9)));
    // [batch] tokens on a full stack read every position of their row.
    const full = cache.logitAttrs(cache.decomposeResid(), answers);
    expect(full.shape).toEqual([6, B, P]);
    expectClose(full.select(2, P - 1), perRow);
  });

  it("with incorrectTokens gives the logit difference, whose sum over components is the model's", () => {
    const stack = cache.decomposeResid(undefined, { posSlice: -1 });
    const diff = cache.logitAttrs(stack, answers, wrong, { posSlice: -1 }).sum(0);
    const heads = cache.stackHeadResults(undefined, { posSlice: -1 });
    const headDiff = cache.logitAttrs(heads, answers, wrong, { posSlice: -1 });
    expect(headDiff.shape).toEqual([2 * H, B]);
    for (let b = 0; b < B; b++) {
      // Processing centres b_U but does not remove it: it is part of the logit difference.
      const bias = W("unembed.b_U").get(answers[b]!) - W("unembed.b_U").get(wrong[b]!);
      const want = logits.get(b, P - 1, answers[b]!) - logits.get(b, P - 1, wrong[b]!) - bias;
      expect(diff.get(b)).toBeCloseTo(want, 3);
    }
    const row = cache.logitAttrs(stack, answers[1]!, wrong[1]!, { posSlice: -1, batchSlice: 1 });
    expect(row.shape).toEqual([6]);
    expect(row.sum().item()).toBeCloseTo(diff.get(1), 4);
  });
});

describe("errors", () => {
  it("name the missing cache entry, the model, and a bad layer", () => {
    const partial = model.runWithCache(tokens, { namesFilter: (n) => !n.endsWith("hook_attn_out") }).cache;
    expect(() => partial.decomposeResid()).toThrow(/decomposeResid: the cache has no "blocks\.0\.hook_attn_out"/);
    // The MLP outputs alone need no attention output: the same stack as from the whole cache.
    expectClose(partial.decomposeResid(undefined, { mode: "mlp" }), cache.decomposeResid(undefined, { mode: "mlp" }), 0);
    const noZ = model.runWithCache(tokens, { namesFilter: ["blocks.0.hook_resid_pre"] }).cache;
    expect(() => noZ.stackHeadResults()).toThrow(/stackHeadResults: the cache has no "blocks\.0\.attn\.hook_z"/);
    expect(() => noZ.applyLnToStack(Tensor.zeros([1, B, P, D]))).toThrow(/no "ln_final\.hook_scale"/);
    const bare = new ActivationCache(cache.entries());
    expect(() => bare.accumulatedResid()).toThrow(/accumulatedResid: this cache has no model/);
    for (const bad of [3, -2, 1.5]) {
      expect(() => cache.accumulatedResid(bad)).toThrow(`accumulatedResid: layer must be an integer in [0, 2] (or -1 / undefined for 2), got ${bad}`);
      expect(() => cache.stackHeadResults(bad)).toThrow(/stackHeadResults: layer must be an integer in \[0, 2\]/);
    }
    expect(() => cache.decomposeResid(undefined, { mlpInput: true })).toThrow(/mlpInput needs a block's MLP/);
    expect(() => cache.decomposeResid(undefined, { mode: "heads" as "all" })).toThrow(/mode must be "all", "attn" or "mlp"/);
    expect(() => cache.accumulatedResid(undefined, { posSlice: 9 })).toThrow(/posSlice: index must be an integer in \[-7, 7\), got 9/);
  });

  it("reject stacks, slices and tokens that do not fit, and unfolded layer norms", async () => {
    const stack = cache.decomposeResid(undefined, { posSlice: -1 });
    expect(() => cache.applyLnToStack(stack)).toThrow(/dims between components and dModel are \[3\] but the cached ln_final\.hook_scale .* gives \[3, 7\]/);
    expect(() => cache.applyLnToStack(Tensor.zeros([2, B, P, 5]))).toThrow(/residualStack must be \[components, batch, \(pos,\) 32\], got \[2, 3, 7, 5\]/);
    expect(() => cache.applyLnToStack(stack.select(1, 0), undefined, { posSlice: -1, hasBatchDim: false }))
      .toThrow(/needs batchSlice to pick one row of the cached batch of 3/);
    expect(() => cache.logitAttrs(stack, V, undefined, { posSlice: -1 })).toThrow(/logitAttrs: tokens: token ids must be integers in \[0, 50\), got 50/);
    expect(() => cache.logitAttrs(stack, answers, [1, 2], { posSlice: -1 })).toThrow(/tokens and incorrectTokens must have the same shape, got \[3\] and \[2\]/);
    expect(() => cache.logitAttrs(stack, [1, 2], undefined, { posSlice: -1 })).toThrow(/tokens of shape \[2\] do not fit a stack of shape \[6, 3, 32\]/);
    expect(() => cache.logitAttrs(stack, tokens, undefined, { posSlice: -1 })).toThrow(/tokens of shape \[3, 7\] do not fit/);

    const raw = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine, processWeights: false });
    const rawCache = raw.runWithCache(tokens).cache;
    expect(() => rawCache.decomposeResid(undefined, { applyLn: true })).toThrow(/layer norms are not folded \(normalizationType "LN"\)/);
    expect(() => rawCache.accumulatedResid(undefined, { applyLn: true })).toThrow(/not folded/);
    expect(rawCache.decomposeResid().sum(0).allClose(rawCache.get("blocks.1.hook_resid_post"), { atol: 1e-4, rtol: 1e-4 })).toBe(true);
    raw.dispose();
  });
});

describe("model.unembed: the unembedding alone, on the engine's packed W_U", () => {
  it("turns ln_final.hook_normalized into the forward's logits: processed, unprocessed, bf16, and soft-capped Gemma-2", async () => {
    const { referenceDir } = await import("./reference.js");
    const cases: Array<[string, HookedTransformer]> = [
      ["processed GPT-2", model],
      ["unprocessed GPT-2 (ln_final's weight folded into the device W_U)", await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine, processWeights: false })],
      ["bf16 GPT-2", await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine, dtype: "bf16" })],
      ["Gemma-2 (final soft-cap)", await HookedTransformer.fromPretrained(referenceDir("tiny-gemma2-random"), { engine })],
    ];
    for (const [name, m] of cases) {
      const ids = tokens.map((row) => row.map((t) => t % m.cfg.dVocab));
      const { logits: expected, cache: c } = m.runWithCache(ids);
      const got = m.unembed(c.get("ln_final.hook_normalized")!);
      expect(got.shape, name).toEqual(expected!.shape);
      expectClose(got, expected!, 1e-5);
      if (m !== model) m.dispose();
    }
  });

  it("unembeds an accumulated-residual stack of any leading shape; the last entry is the model's logits", () => {
    const stack = cache.accumulatedResid(undefined, { applyLn: true });
    const lens = model.unembed(stack);
    expect(lens.shape).toEqual([SPEC.nLayer + 1, B, P, V]);
    expectClose(lens.select(0, SPEC.nLayer), logits, 1e-4);
    // One row by hand: the normalized residual · W_U + b_U.
    const row = stack.select(0, 1).select(0, 2).select(0, 4);
    const byHand = row.unsqueeze(0).matmul(model.weights.get("unembed.W_U")!).add(model.weights.get("unembed.b_U")!).squeeze(0);
    expectClose(lens.select(0, 1).select(0, 2).select(0, 4), byHand, 1e-5);
  });

  it("refuses a tensor whose last dim is not dModel, naming the shape", () => {
    expect(() => model.unembed(new Tensor(new Float32Array(6), [2, 3]))).toThrow(/\[\.\.\., dModel = 32\], got \[2, 3\]/);
  });
});
