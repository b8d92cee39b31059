import { beforeAll, describe, expect, it } from "vitest";
import {
  DEMO_BOS, DEMO_DIMS, buildInductionModelWeights, demoModelFiles, demoPrompts, loadDemoModel,
} from "../src/demo/induction-model.js";
import { Engine } from "../src/engine/engine.js";
import type { Tensor } from "../src/engine/tensor.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { configFromHfGpt2, convertGpt2Weights, getActPatchDirectPath, HookedTransformer, logitDiff } from "../src/index.js";
import { checkWeights } from "../src/model/weights.js";
import { maxAbsDiff } from "./helpers.js";

type Cache = ReturnType<HookedTransformer["runWithCache"]>["cache"];

const { nHeads: H } = DEMO_DIMS;
const PREV: [number, number] = [0, 2];
const INDUCTION: [number, number] = [1, 1];
/** What the builder's documentation says each head does. */
const ROLES = [["bos", "uniform", "prev", "self"], ["self", "induction", "bos", "uniform"]] as const;

const prompts = demoPrompts();
const metric = logitDiff(prompts);
const P = prompts.clean[0]!.length;
const n = (P - 1) / 2;

let engine: Engine;
let model: HookedTransformer;
let clean: { logits?: Tensor; cache: Cache };
let corrupted: { logits?: Tensor; cache: Cache };

beforeAll(async () => {
  engine = await Engine.create();
  model = await loadDemoModel({ engine });
  clean = model.runWithCache(prompts.clean);
  corrupted = model.runWithCache(prompts.corrupted);
});

/** pattern[b, h, q, k] of a cached [batch, nHeads, pos, pos] pattern. */
function at(pattern: Tensor, b: number, h: number, q: number, k: number): number {
  return pattern.data[((b * H + h) * P + q) * P + k]!;
}

/** Mean over rows and the given query positions of the attention from q to target(q). */
function meanAttention(cache: Cache, layer: number, head: number, queries: number[], target: (q: number) => number): number {
  const pattern = cache.get(`blocks.${layer}.attn.hook_pattern`);
  let sum = 0;
  for (let b = 0; b < prompts.clean.length; b++) for (const q of queries) sum += at(pattern, b, head, q, target(q));
  return sum / (prompts.clean.length * queries.length);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const secondHalf = range(n + 1, P);

function argmaxLast(logits: Tensor, b: number): number {
  const [, pos, V] = logits.shape as [number, number, number];
  const row = logits.data.subarray((b * pos + pos - 1) * V, (b * pos + pos) * V);
  return row.indexOf(Math.max(...row));
}

describe("demo model weights", () => {
  it("are deterministic: two builds give identical bits, and identical files", () => {
    const a = buildInductionModelWeights();
    const b = buildInductionModelWeights();
    expect(a.cfg).toEqual(b.cfg);
    expect([...a.weights.keys()]).toEqual([...b.weights.keys()]);
    for (const [name, t] of a.weights) {
      const u = b.weights.get(name)!;
      expect(u.shape, name).toEqual(t.shape);
      expect(Buffer.from(u.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
    const [f, g] = [demoModelFiles(), demoModelFiles()];
    expect(Buffer.from(f["model.safetensors"]!).equals(Buffer.from(g["model.safetensors"]!))).toBe(true);
  });

  it("are an unprocessed GPT-2 checkpoint of at least 2 layers x 4 heads with non-trivial LayerNorms", () => {
    const { cfg, weights, planted } = buildInductionModelWeights();
    expect(cfg.normalizationType).toBe("LN");
    expect(cfg.nLayers).toBeGreaterThanOrEqual(2);
    expect(cfg.nHeads).toBeGreaterThanOrEqual(4);
    expect(cfg.nHeads * cfg.dHead).toBe(cfg.dModel);
    expect(planted).toEqual({ prevTokenHead: PREV, inductionHead: INDUCTION });
    checkWeights(cfg, weights);
    expect(weights.get("unembed.b_U")!.data.every((x) => x === 0)).toBe(true);
    for (const name of ["blocks.0.ln1.w", "blocks.1.ln2.w", "ln_final.w"]) {
      const w = weights.get(name)!.data;
      expect(Math.max(...w) - Math.min(...w), name).toBeGreaterThan(0.1);
    }
    for (const [name, t] of weights) expect(t.data.every(Number.isFinite), name).toBe(true);
  });
});

describe("demo prompts", () => {
  it("repeat a sequence (clean) and resample the first half with s_n planted in it (corrupted)", () => {
    const { clean: c, corrupted: k, correct, incorrect } = demoPrompts({ batch: 5, halfLength: 9, seed: 7 });
    expect(c.length).toBe(5);
    for (let b = 0; b < 5; b++) {
      const s = c[b]!.slice(1, 10);
      const t = k[b]!.slice(1, 10);
      expect(c[b]!.length).toBe(19);
      expect(c[b]![0]).toBe(DEMO_BOS);
      expect(k[b]![0]).toBe(DEMO_BOS);
      expect(c[b]!.slice(10)).toEqual(s);
      expect(k[b]!.slice(10)).toEqual(s);
      expect(new Set(s).size).toBe(9);
      expect(new Set(t).size).toBe(9);
      expect(s.includes(DEMO_BOS) || t.includes(DEMO_BOS)).toBe(false);
      expect(t.filter((x) => s.includes(x))).toEqual([s[8]]);
      const i = t.indexOf(s[8]!);
      expect(i).toBeLessThan(8);
      expect(correct[b]).toBe(s[0]);
      expect(incorrect[b]).toBe(t[i + 1]);
      expect(c[b]!.every((x) => Number.isInteger(x) && x >= 0 && x < DEMO_DIMS.dVocab)).toBe(true);
    }
  });

  it("are deterministic per seed and differ across seeds", () => {
    expect(demoPrompts({ seed: 3 })).toEqual(demoPrompts({ seed: 3 }));
    expect(demoPrompts({ seed: 3 }).clean).not.toEqual(demoPrompts({ seed: 4 }).clean);
    expect(prompts.clean.length).toBeGreaterThanOrEqual(4);
    expect(n).toBeGreaterThanOrEqual(8);
  });

  it("reject impossible options, naming them", () => {
    expect(() => demoPrompts({ halfLength: 16 })).toThrow(/halfLength/);
    expect(() => demoPrompts({ halfLength: 1 })).toThrow(/halfLength/);
    expect(() => demoPrompts({ batch: 0 })).toThrow(/batch/);
    expect(() => demoPrompts({ seed: 0.5 })).toThrow(/seed/);
  });
});

describe("the planted induction circuit", () => {
  it("predicts the repeated token on clean rows and the corrupted continuation on corrupted rows", () => {
    const cleanMetric = metric(clean.logits!);
    const corruptedMetric = metric(corrupted.logits!);
    expect(cleanMetric).toBeGreaterThan(5);
    expect(corruptedMetric).toBeLessThan(-5);
    for (let b = 0; b < prompts.clean.length; b++) {
      expect(argmaxLast(clean.logits!, b), `clean row ${b}`).toBe(prompts.correct[b]);
      expect(argmaxLast(corrupted.logits!, b), `corrupted row ${b}`).toBe(prompts.incorrect[b]);
    }
  });

  it("has a layer-0 head attending to the previous token", () => {
    expect(meanAttention(clean.cache, PREV[0], PREV[1], range(1, P), (q) => q - 1)).toBeGreaterThan(0.95);
    expect(meanAttention(corrupted.cache, PREV[0], PREV[1], range(1, P), (q) => q - 1)).toBeGreaterThan(0.95);
  });

  it("has a layer-1 head attending to the token after the earlier occurrence on the clean second half", () => {
    expect(meanAttention(clean.cache, INDUCTION[0], INDUCTION[1], secondHalf, (q) => q - n + 1)).toBeGreaterThan(0.9);
    // On the corrupted last position the earlier s_n sits in the resampled half, one before the predicted token.
    const pattern = corrupted.cache.get("blocks.1.attn.hook_pattern");
    for (let b = 0; b < prompts.corrupted.length; b++) {
      const target = prompts.corrupted[b]!.indexOf(prompts.incorrect[b]!, 1);
      expect(at(pattern, b, INDUCTION[1], P - 1, target)).toBeGreaterThan(0.9);
    }
  });

  it("has other heads that do other things (BOS, self, near-uniform), none of them induction or previous-token", () => {
    ROLES.forEach((roles, layer) => roles.forEach((role, head) => {
      if (role === "prev" || role === "induction") return;
      const label = `L${layer}H${head} (${role})`;
      const prev = meanAttention(clean.cache, layer, head, range(2, P), (q) => q - 1);
      const induction = meanAttention(clean.cache, layer, head, secondHalf, (q) => q - n + 1);
      expect(prev, label).toBeLessThan(0.3);
      expect(induction, label).toBeLessThan(0.3);
      const queries = range(1, P);
      if (role === "bos") expect(meanAttention(clean.cache, layer, head, queries, () => 0), label).toBeGreaterThan(0.9);
      if (role === "self") expect(meanAttention(clean.cache, layer, head, queries, (q) => q), label).toBeGreaterThan(0.9);
      if (role === "uniform") {
        // Near 1/(q+1) everywhere: no key gets more than three times its uniform share.
        const pattern = clean.cache.get(`blocks.${layer}.attn.hook_pattern`);
        for (const q of queries) for (let k = 0; k <= q; k++) expect(at(pattern, 0, head, q, k), label).toBeLessThan(3 / (q + 1));
      }
      // Alive: the head writes something.
      const z = clean.cache.get(`blocks.${layer}.attn.hook_z`); // [batch, pos, nHeads, dHead]
      const d = DEMO_DIMS.dHead;
      let sq = 0;
      for (let bp = 0; bp < z.data.length / (H * d); bp++) for (let e = 0; e < d; e++) sq += z.data[(bp * H + head) * d + e]! ** 2;
      expect(Math.sqrt(sq / (z.data.length / (H * d))), label).toBeGreaterThan(0.1);
    }));
  });

  it("is causal: ablating the previous-token head breaks induction, ablating another layer-0 head does not", () => {
    const ablate = (head: number) => metric(model.runWithHooks(prompts.clean, {
      fwdHooks: [["blocks.0.attn.hook_z", (z: Tensor) => {
        const d = DEMO_DIMS.dHead;
        for (let bp = 0; bp < z.data.length / (H * d); bp++) z.data.fill(0, (bp * H + head) * d, (bp * H + head + 1) * d);
      }]],
    }).logits!);
    const full = metric(clean.logits!);
    expect(ablate(PREV[1])).toBeLessThan(0.2 * full);
    for (const other of [0, 1, 3]) expect(ablate(other), `L0H${other}`).toBeGreaterThan(0.8 * full);
  });

  it("gives the same logit differences and patterns unprocessed, and on the js engine", async () => {
    const raw = await loadDemoModel({ engine, processWeights: false });
    const rawClean = raw.runWithCache(prompts.clean, { namesFilter: (name) => name.endsWith("hook_pattern") });
    expect(Math.abs(metric(rawClean.logits!) - metric(clean.logits!))).toBeLessThan(1e-3);
    for (const l of [0, 1]) {
      const name = `blocks.${l}.attn.hook_pattern`;
      expect(maxAbsDiff(rawClean.cache.get(name).data, clean.cache.get(name).data), name).toBeLessThan(1e-4);
    }
    const js = await loadDemoModel({ engine: Engine.createJs() });
    expect(maxAbsDiff(js.forward(prompts.clean).logits!.data, clean.logits!.data)).toBeLessThan(1e-3);
  });
});

describe("direct path patching from the previous-token head into keys", () => {
  for (const mode of ["linear", "exact"] as const) {
    it(`ranks the planted induction head first by a clear margin (${mode})`, async () => {
      const result = await getActPatchDirectPath(model, prompts.corrupted, clean.cache, corrupted.cache, metric,
        { srcLayer: PREV[0], srcHead: PREV[1], component: "k", mode });
      expect(result.baseline).toBeCloseTo(metric(corrupted.logits!), 4);
      expect(result.clean).toBeCloseTo(metric(clean.logits!), 4);
      const normalized = result.normalized().data;
      const planted = normalized[INDUCTION[0] * H + INDUCTION[1]]!;
      const others = Array.from(normalized).filter((_, i) => i !== INDUCTION[0] * H + INDUCTION[1]);
      const nextBest = Math.max(...others.map(Math.abs));
      expect(planted).toBeGreaterThan(0.8);
      expect(planted).toBeLessThan(1.2);
      expect(planted).toBeGreaterThan(2 * nextBest);
      expect(nextBest).toBeLessThan(0.1);
      // Queries of the induction head read the current token, not the source head's output.
      const q = await getActPatchDirectPath(model, prompts.corrupted, clean.cache, corrupted.cache, metric,
        { srcLayer: PREV[0], srcHead: PREV[1], component: "q", mode });
      expect(Math.max(...Array.from(q.normalized().data, Math.abs))).toBeLessThan(0.1);
    });
  }
});

describe("demo model files", () => {
  it("are a Hugging Face GPT-2 checkpoint that converts back to the same weights, bit for bit", () => {
    const files = demoModelFiles();
    const config = JSON.parse(new TextDecoder().decode(files["config.json"]!)) as Record<string, unknown>;
    expect(config).toMatchObject({ model_type: "gpt2", n_layer: 2, n_head: 4, n_embd: 128, vocab_size: 64, n_positions: 32 });
    const cfg = configFromHfGpt2(config);
    const { cfg: built, weights } = buildInductionModelWeights();
    expect(cfg).toEqual(built);
    const converted = convertGpt2Weights(readSafetensors(files["model.safetensors"]!, "model.safetensors").tensors, cfg);
    expect([...converted.keys()].sort()).toEqual([...weights.keys()].sort());
    for (const [name, t] of weights) {
      expect(converted.get(name)!.shape, name).toEqual(t.shape);
      expect(maxAbsDiff(converted.get(name)!.data, t.data), name).toBe(0);
    }
  });

  it("load through fromPretrained into a model with the same logits", async () => {
    const loaded = await HookedTransformer.fromPretrained(demoModelFiles(), { engine });
    expect(maxAbsDiff(loaded.forward(prompts.clean).logits!.data, clean.logits!.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(loaded.forward(prompts.corrupted).logits!.data, corrupted.logits!.data)).toBeLessThan(1e-5);
  });
});
