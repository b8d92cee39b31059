import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { foldLn, HookedTransformer, processWeights } from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";

const files = randomGpt2Files({ nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 8, vocab: 23, seed: 9 });
const tokens = [[1, 5, 9, 3, 22, 0], [4, 4, 8, 15, 2, 7]];

let raw: HookedTransformer;
let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
  raw = await HookedTransformer.fromPretrained(files, { engine, processWeights: false });
});

/** Logits minus their mean over the vocabulary: what centring the unembedding leaves. */
function centred(data: Float32Array, V: number): Float32Array {
  const out = data.slice();
  for (let r = 0; r < out.length; r += V) {
    let m = 0;
    for (let i = 0; i < V; i++) m += out[r + i]!;
    m /= V;
    for (let i = 0; i < V; i++) out[r + i]! -= m;
  }
  return out;
}

describe("weight processing", () => {
  it("each step and all together leave logit differences and softmax unchanged", async () => {
    const base = raw.forward(tokens).logits!;
    const steps = [
      { foldLn: true, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
      { foldLn: false, centerWritingWeights: false, centerUnembed: true, foldValueBiases: false },
      { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: true },
      { foldLn: true, centerWritingWeights: true, centerUnembed: false, foldValueBiases: false },
      {},
    ];
    for (const step of steps) {
      const m = await HookedTransformer.fromPretrained(files, { engine, ...step });
      const logits = m.forward(tokens).logits!;
      expect(maxAbsDiff(centred(logits.data, 23), centred(base.data, 23)), JSON.stringify(step)).toBeLessThan(1e-4);
      expect(maxAbsDiff(logits.softmax(-1).data, base.softmax(-1).data), JSON.stringify(step)).toBeLessThan(1e-5);
      m.dispose();
    }
  });

  it("processed logits are the unprocessed ones minus their mean over the vocabulary", async () => {
    const m = await HookedTransformer.fromPretrained(files, { engine });
    const logits = m.forward(tokens).logits!;
    expect(maxAbsDiff(logits.data, centred(raw.forward(tokens).logits!.data, 23))).toBeLessThan(1e-4);
    expect(m.cfg.normalizationType).toBe("LNPre");
    expect(m.cfg.processing).toEqual({ foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true });
    expect(m.weights.has("blocks.0.ln1.w")).toBe(false);
    // fold_value_biases zeroes b_V; centring makes every writing weight mean-free over d_model.
    expect([...m.weights.get("blocks.1.attn.b_V")!.data].every((x) => x === 0)).toBe(true);
    const WE = m.weights.get("embed.W_E")!;
    expect(Math.abs(WE.mean(-1).max().item())).toBeLessThan(1e-6);
    m.dispose();
  });

  it("the residual stream of a processed model is the unprocessed one minus its mean", async () => {
    const m = await HookedTransformer.fromPretrained(files, { engine });
    const a = raw.runWithCache(tokens, { namesFilter: ["blocks.1.hook_resid_pre", "blocks.1.ln1.hook_scale", "blocks.1.attn.hook_pattern"] }).cache;
    const b = m.runWithCache(tokens, { namesFilter: ["blocks.1.hook_resid_pre", "blocks.1.ln1.hook_scale", "blocks.1.attn.hook_pattern"] }).cache;
    const resid = a.get("resid_pre", 1);
    expect(maxAbsDiff(b.get("resid_pre", 1).data, resid.sub(resid.mean(-1, { keepdim: true })).data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(b.get("scale", 1, "ln1").data, a.get("scale", 1, "ln1").data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(b.get("pattern", 1).data, a.get("pattern", 1).data)).toBeLessThan(1e-5);
    m.dispose();
  });

  it("refuses to fold twice and leaves its inputs unchanged", () => {
    const w0 = raw.weights.get("blocks.0.attn.W_Q")!.data.slice();
    const once = processWeights(raw.cfg, new Map(raw.weights));
    expect(raw.weights.get("blocks.0.attn.W_Q")!.data).toEqual(w0);
    expect(() => foldLn(once.cfg, once.weights)).toThrow(/already folded/);
  });
});
