import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { HookedTransformer } from "../src/index.js";
import { allEngines, maxAbsDiff, rng } from "./helpers.js";
import { randomGpt2Files, type RandomGpt2Spec } from "./random-gpt2.js";

const SPEC: RandomGpt2Spec = { nLayer: 2, nHead: 4, nEmbd: 32, nPositions: 16, vocab: 50, seed: 7 };

function randomTokens(batch: number, pos: number, vocab: number, seed: number): number[][] {
  const next = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: pos }, () => Math.floor(next() * vocab)));
}

let js: Engine;
let wasm: Engine;
beforeAll(async () => {
  js = Engine.createJs();
  wasm = await Engine.create();
});

describe("the wasm backend against the js backend on random checkpoints", () => {
  const specs: RandomGpt2Spec[] = [
    SPEC,
    { nLayer: 1, nHead: 1, nEmbd: 8, nPositions: 5, vocab: 7, seed: 2 },
    { nLayer: 3, nHead: 3, nEmbd: 48, nPositions: 33, vocab: 130, nInner: 65, seed: 3 },
    { nLayer: 2, nHead: 6, nEmbd: 96, nPositions: 70, vocab: 257, seed: 4, prefixed: true },
  ];
  for (const spec of specs) {
    it(`agree on logits and every activation: ${JSON.stringify(spec)}`, async () => {
      const files = randomGpt2Files(spec);
      for (const processWeights of [false, true]) {
        const a = await HookedTransformer.fromPretrained(files, { engine: js, processWeights, useAttnResult: true });
        const b = await HookedTransformer.fromPretrained(files, { engine: wasm, processWeights, useAttnResult: true });
        const tokens = randomTokens(3, Math.min(spec.nPositions, 19), spec.vocab, spec.seed! + 100);
        const ra = a.runWithCache(tokens);
        const rb = b.runWithCache(tokens);
        const scale = Math.max(...ra.logits!.data.map(Math.abs));
        expect(maxAbsDiff(ra.logits!.data, rb.logits!.data) / scale).toBeLessThan(1e-5);
        expect(rb.cache.keys()).toEqual(a.hookNames());
        for (const name of ra.cache.keys()) {
          const x = ra.cache.get(name);
          const y = rb.cache.get(name);
          expect(y.shape, name).toEqual(x.shape);
          const finite = (v: number) => (Number.isFinite(v) ? v : -1e30);
          const m = Math.max(1e-6, ...x.data.map((v) => Math.abs(finite(v))));
          // A softmax multiplies its inputs' rounding by the scores' size (large with these random
          // weights), so the pattern gets twice the room of the other activations.
          const tolerance = name.endsWith("hook_pattern") ? 2e-5 : 1e-5;
          expect(maxAbsDiff(x.data.map(finite), y.data.map(finite)) / m, name).toBeLessThan(tolerance);
        }
        a.dispose();
        b.dispose();
      }
    });
  }
});

describe("hooks", () => {
  let model: HookedTransformer;
  const tokens = randomTokens(2, 6, SPEC.vocab, 11);
  beforeAll(async () => { model = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine: wasm }); });

  it("fire once each, in forward order, with TransformerLens shapes", () => {
    const seen: [string, readonly number[]][] = [];
    model.runWithHooks(tokens, { fwdHooks: [[() => true, (t, h) => { seen.push([h.name, t.shape]); }]] });
    expect(seen.map(([n]) => n)).toEqual(model.hookNames());
    const shape = Object.fromEntries(seen);
    expect(shape["hook_embed"]).toEqual([2, 6, 32]);
    expect(shape["blocks.1.ln1.hook_scale"]).toEqual([2, 6, 1]);
    expect(shape["blocks.1.attn.hook_q"]).toEqual([2, 6, 4, 8]);
    expect(shape["blocks.0.attn.hook_attn_scores"]).toEqual([2, 4, 6, 6]);
    expect(shape["blocks.0.attn.hook_pattern"]).toEqual([2, 4, 6, 6]);
    expect(shape["blocks.0.attn.hook_z"]).toEqual([2, 6, 4, 8]);
    expect(shape["blocks.0.mlp.hook_post"]).toEqual([2, 6, 128]);
    expect(shape["ln_final.hook_normalized"]).toEqual([2, 6, 32]);
  });

  it("see causal -Infinity scores and patterns whose rows sum to one", () => {
    const { cache } = model.runWithCache(tokens, { namesFilter: ["blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern"] });
    const scores = cache.get("attn_scores", 0);
    const pattern = cache.get("pattern", 0);
    expect(scores.data[1]).toBe(-Infinity); // query 0, key 1
    expect(pattern.data[1]).toBe(0);
    for (let r = 0; r < 2 * 4 * 6; r++) {
      const row = pattern.data.subarray(r * 6, r * 6 + 6);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it("replace an activation by returning a tensor, or by editing it in place, with the same effect", () => {
    const clean = model.forward(tokens).logits!;
    const zeroReturn = model.runWithHooks(tokens, { fwdHooks: [["blocks.1.attn.hook_z", (z) => Tensor.zeros(z.shape)]] }).logits!;
    const zeroInPlace = model.runWithHooks(tokens, { fwdHooks: [["blocks.1.attn.hook_z", (z) => { z.data.fill(0); }]] }).logits!;
    expect(maxAbsDiff(zeroReturn.data, zeroInPlace.data)).toBe(0);
    expect(maxAbsDiff(clean.data, zeroReturn.data)).toBeGreaterThan(1e-3);
    // The same ablation by hand: with z = 0 the attention output is b_O alone.
    const cacheAbl = model.runWithCache(tokens, { fwdHooks: [["blocks.1.attn.hook_z", (z) => { z.data.fill(0); }]], namesFilter: ["blocks.1.hook_attn_out"] }).cache;
    const bO = model.weights.get("blocks.1.attn.b_O")!.data;
    const attnOut = cacheAbl.get("attn_out", 1).data;
    for (let i = 0; i < attnOut.length; i++) expect(attnOut[i]).toBeCloseTo(bO[i % 32]!, 5);
  });

  it("a hook returning the wrong shape or a non-tensor is an error naming the hook", () => {
    expect(() => model.runWithHooks(tokens, { fwdHooks: [["blocks.0.hook_resid_pre", () => Tensor.zeros([1, 2])]] }))
      .toThrow(/blocks\.0\.hook_resid_pre returned shape \[1, 2\] but the activation is \[2, 6, 32\]/);
    expect(() => model.runWithHooks(tokens, { fwdHooks: [["blocks.0.hook_resid_pre", (() => 3) as never]] }))
      .toThrow(/blocks\.0\.hook_resid_pre returned number/);
  });

  it("an exception thrown in a hook reaches the caller and leaves the model usable, bit for bit", () => {
    const before = model.forward(tokens).logits!;
    const used = wasm.stats().bytesInUse;
    expect(() => model.runWithHooks(tokens, { fwdHooks: [["blocks.1.mlp.hook_pre", () => { throw new Error("boom"); }]] })).toThrow("boom");
    expect(wasm.stats().bytesInUse).toBe(used);
    const after = model.forward(tokens).logits!;
    expect(after.data).toEqual(before.data);
  });

  it("unknown hook names are refused with the closest valid names", () => {
    expect(() => model.runWithHooks(tokens, { fwdHooks: [["blocks.0.attn.hook_qq", () => {}]] }))
      .toThrow(/unknown hook name "blocks\.0\.attn\.hook_qq"; closest valid names: blocks\.0\.attn\.hook_q/);
    expect(() => model.runWithCache(tokens, { namesFilter: ["blocks.9.hook_resid_pre"] })).toThrow(/unknown hook name/);
  });

  it("persistent hooks run until resetHooks", () => {
    let calls = 0;
    model.addHook("blocks.0.hook_resid_pre", () => { calls++; });
    model.forward(tokens);
    model.forward(tokens);
    model.resetHooks();
    model.forward(tokens);
    expect(calls).toBe(2);
  });

  it("changing hook_scale changes hook_normalized as in TransformerLens", () => {
    const base = model.runWithCache(tokens, { namesFilter: ["blocks.0.ln1.hook_normalized"] }).cache.get("blocks.0.ln1.hook_normalized");
    const doubled = model.runWithCache(tokens, {
      namesFilter: ["blocks.0.ln1.hook_normalized"],
      fwdHooks: [["blocks.0.ln1.hook_scale", (s) => { for (let i = 0; i < s.size; i++) s.data[i]! *= 2; }]],
    }).cache.get("blocks.0.ln1.hook_normalized");
    for (let i = 0; i < base.size; i++) expect(doubled.data[i]).toBeCloseTo(base.data[i]! / 2, 5);
  });
});

describe("forward options and input checks", () => {
  let model: HookedTransformer;
  const tokens = randomTokens(2, 7, SPEC.vocab, 5);
  beforeAll(async () => { model = await HookedTransformer.fromPretrained(randomGpt2Files(SPEC), { engine: wasm }); });

  it("stopAtLayer then startAtLayer reproduces the full pass", () => {
    const full = model.forward(tokens).logits!;
    for (let l = 0; l <= 2; l++) {
      const { residual } = model.forward(tokens, { stopAtLayer: l });
      const { cache } = model.runWithCache(tokens, { namesFilter: l < 2 ? [`blocks.${l}.hook_resid_pre`] : ["blocks.1.hook_resid_post"] });
      expect(maxAbsDiff(residual!.data, cache.entries()[0]![1].data)).toBe(0);
      const resumed = model.forward(tokens, { startAtLayer: l, residual }).logits!;
      expect(maxAbsDiff(resumed.data, full.data)).toBe(0);
    }
  });

  it("loss is the mean next-token cross-entropy of the logits", () => {
    const { logits, loss } = model.forward(tokens, { returnType: "both" });
    const perToken = model.forward(tokens, { returnType: "loss", lossPerToken: true }).loss as Tensor;
    expect(perToken.shape).toEqual([2, 6]);
    const lp = logits!.logSoftmax(-1);
    let sum = 0;
    for (let b = 0; b < 2; b++) for (let p = 0; p < 6; p++) {
      const want = -lp.get(b, p, tokens[b]![p + 1]!);
      expect(perToken.get(b, p)).toBeCloseTo(want, 4);
      sum += want;
    }
    expect(loss as number).toBeCloseTo(sum / 12, 4);
  });

  it("a masked loss counts only predictions of a real token from a real token", () => {
    // Row 0 right-padded after 4 real tokens, row 1 left-padded before 5: 3 + 4 predictions count.
    const padded = [[...tokens[0]!.slice(0, 4), 0, 0, 0], [0, 0, ...tokens[1]!.slice(0, 5)]];
    const mask = [[1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1]];
    const { logits, loss } = model.forward(padded, { attentionMask: mask, returnType: "both" });
    const perToken = model.forward(padded, { attentionMask: mask, returnType: "loss", lossPerToken: true }).loss as Tensor;
    const lp = logits!.logSoftmax(-1);
    let sum = 0;
    let counted = 0;
    for (let b = 0; b < 2; b++) for (let p = 0; p < 6; p++) {
      const real = mask[b]![p] === 1 && mask[b]![p + 1] === 1;
      const want = real ? -lp.get(b, p, padded[b]![p + 1]!) : 0;
      expect(perToken.get(b, p)).toBeCloseTo(want, 4);
      if (real) { sum += want; counted++; }
    }
    expect(counted).toBe(7);
    expect(loss as number).toBeCloseTo(sum / 7, 4);
    // The padded rows' mean loss is each real row's own loss, weighted by its predictions.
    const alone0 = model.forward([tokens[0]!.slice(0, 4)], { returnType: "loss" }).loss as number;
    const alone1 = model.forward([tokens[1]!.slice(0, 5)], { returnType: "loss" }).loss as number;
    expect(loss as number).toBeCloseTo((3 * alone0 + 4 * alone1) / 7, 4);
    expect(() => model.forward([[1, 2, 3]], { attentionMask: [[1, 0, 1]], returnType: "loss" })).toThrow(/no two consecutive real tokens/);
  });

  it("left padding with an attention mask gives the unpadded row's logits", () => {
    const short = tokens[0]!.slice(0, 5);
    const alone = model.forward([short]).logits!;
    const padded = [[0, 0, ...short], tokens[1]!];
    const mask = [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]];
    const logits = model.forward(padded, { attentionMask: mask }).logits!;
    const V = SPEC.vocab;
    expect(maxAbsDiff(logits.data.subarray(2 * V, 7 * V), alone.data)).toBeLessThan(1e-4);
    const second = model.forward([tokens[1]!]).logits!;
    expect(maxAbsDiff(logits.data.subarray(7 * V), second.data)).toBeLessThan(1e-4);
  });

  it("right padding leaves the real tokens' logits unchanged", () => {
    const short = tokens[0]!.slice(0, 4);
    const alone = model.forward([short]).logits!;
    const logits = model.forward([[...short, 0, 0, 0]], { attentionMask: [[1, 1, 1, 1, 0, 0, 0]] }).logits!;
    expect(maxAbsDiff(logits.data.subarray(0, 4 * SPEC.vocab), alone.data)).toBeLessThan(1e-4);
  });

  it("refuses bad token ids, lengths and options with messages that name them", () => {
    expect(() => model.forward([[1, 2, 50]])).toThrow(/id 50 at row 0, position 2 is out of range \[0, 50\)/);
    expect(() => model.forward([[1, -1]])).toThrow(/id -1/);
    expect(() => model.forward([[1.5]])).toThrow(/id 1.5/);
    expect(() => model.forward([new Array(17).fill(1)])).toThrow(/17 positions exceed the model's context of 16/);
    expect(() => model.forward([[1, 2], [3]])).toThrow(/row 1 has 1 tokens but row 0 has 2/);
    expect(() => model.forward([])).toThrow(/empty/);
    expect(() => model.forward([[1, 2]], { stopAtLayer: 3 })).toThrow(/stopAtLayer must be an integer in \[0, 2\], got 3/);
    expect(() => model.forward([[1, 2]], { startAtLayer: 1 })).toThrow(/needs the residual/);
    expect(() => model.forward([[1, 2]], { attentionMask: [[1, 2]] })).toThrow(/entry \[0, 1\] is 2/);
    expect(() => model.forward([[1, 2]], { returnType: "probs" as never })).toThrow(/returnType/);
  });

  it("repeated forwards keep the engine's memory flat", () => {
    model.forward(tokens);
    const bytes = wasm.memory.buffer.byteLength;
    const used = wasm.stats().bytesInUse;
    for (let i = 0; i < 50; i++) model.runWithCache(tokens);
    expect(wasm.memory.buffer.byteLength).toBe(bytes);
    expect(wasm.stats().bytesInUse).toBe(used);
  });
});
