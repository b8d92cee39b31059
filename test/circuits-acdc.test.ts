// Circuits stacked in one pass (evaluateCircuits) against the goldens and one-at-a-time runs, and
// ACDC: against a plain edge-by-edge greedy walk written here, on the planted demo circuit, with
// progress, cancellation and bad input.
import { beforeAll, describe, expect, it } from "vitest";
import { acdc } from "../src/circuits/acdc.js";
import { evaluateCircuit, evaluateCircuits } from "../src/circuits/circuit-run.js";
import { EdgeGraph } from "../src/circuits/edge-graph.js";
import { Engine } from "../src/engine/engine.js";
import { demoModelFiles, demoPrompts } from "../src/index.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff } from "../src/patching/metrics.js";
import { golden, referenceDir, type GoldenInputs } from "./reference.js";

interface GoldenCircuits { n: number[]; edges: [number, number][]; metric: number[]; faithfulness: number[] }

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ variant: "simd" });
});

async function setUp(name: string) {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
  const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
  return { model, metric, tokens: inputs.corrupted, clean: model.runWithCache(inputs.clean).cache, corrupted: model.runWithCache(inputs.corrupted).cache };
}

describe.each(["tiny-gpt2-random", "tiny-llama-random"])("evaluateCircuits on %s", (name) => {
  it("stacks the goldens' top-n circuits in one pass, or one per pass under a small budget: the goldens' numbers, as one at a time", async () => {
    const { model, metric, tokens, clean, corrupted } = await setUp(name);
    const want = golden<GoldenCircuits>(name, "circuits.json");
    const circuits = want.n.map((n) => want.edges.slice(0, n));
    const stacked = evaluateCircuits(model, tokens, clean, corrupted, metric, circuits);
    const tol = 1e-3 + 1e-3 * Math.max(...want.metric.map(Math.abs));
    stacked.forEach((got, i) => {
      expect(Math.abs(got.metric - want.metric[i]!), `top ${want.n[i]}`).toBeLessThanOrEqual(tol);
      expect(got.edges).toHaveLength(want.n[i]!);
      const alone = evaluateCircuit(model, tokens, clean, corrupted, metric, circuits[i]!);
      expect(got.metric).toBeCloseTo(alone.metric, 5);
      expect(got.faithfulness).toBeCloseTo(alone.faithfulness, 5);
    });
    const onePerPass = evaluateCircuits(model, tokens, clean, corrupted, metric, circuits, { memoryBudgetBytes: 400_000 });
    onePerPass.forEach((got, i) => expect(got.metric).toBeCloseTo(stacked[i]!.metric, 5));
    expect(() => evaluateCircuits(model, tokens, clean, corrupted, metric, circuits, { memoryBudgetBytes: 1000 }))
      .toThrow(/a circuit run of 2 × 8 tokens needs about \d+ bytes, more than memoryBudgetBytes \(1000\)/);
    model.dispose();
  });
});

describe("acdc", () => {
  it("makes the decisions of a plain edge-by-edge greedy walk (tiny LLaMA), stacked or one trial per pass", async () => {
    const { model, metric, tokens, clean, corrupted } = await setUp("tiny-llama-random");
    const graph = new EdgeGraph(model.cfg);
    const full = evaluateCircuit(model, tokens, clean, corrupted, metric, allEdges(graph));
    const none = evaluateCircuit(model, tokens, clean, corrupted, metric, []);
    const threshold = 0.01 * Math.abs(full.metric - none.metric);
    // The reference: readers from the logits back, writers from the latest back, one circuit run per trial.
    const circuit = new Set(allEdges(graph).map(([u, v]) => `${graph.writers[u]}|${graph.readers[v]}`));
    let current = full.metric;
    const decisions: boolean[] = [];
    for (let v = graph.nReaders - 1; v >= 0; v--) {
      for (let u = graph.nWriters - 1; u >= 0; u--) {
        if (!graph.isEdge(u, v)) continue;
        const key = `${graph.writers[u]}|${graph.readers[v]}`;
        const without = [...circuit].filter((k) => k !== key).map((k) => k.split("|") as [string, string]);
        const m = evaluateCircuit(model, tokens, clean, corrupted, metric, without).metric;
        const removed = Math.abs(m - current) < threshold;
        decisions.push(removed);
        if (removed) {
          circuit.delete(key);
          current = m;
        }
      }
    }
    expect(decisions.filter(Boolean).length).toBeGreaterThan(0);
    expect(decisions.filter((x) => !x).length).toBeGreaterThan(0);
    for (const budget of [undefined, 400_000]) {
      const found = await acdc(model, tokens, clean, corrupted, metric, { threshold, memoryBudgetBytes: budget });
      expect(found.steps.map((s) => s.removed)).toEqual(decisions);
      expect(found.edges.map(([w, r]) => `${w}|${r}`).sort()).toEqual([...circuit].sort());
      expect(found.metric).toBeCloseTo(current, 4);
      expect(found.faithfulness).toBeCloseTo((current - none.metric) / (full.metric - none.metric), 4);
      expect(found.passes).toBeLessThanOrEqual(decisions.length + 1);
      if (budget === undefined) expect(found.passes).toBeLessThan(decisions.length); // trials were stacked
    }
    model.dispose();
  });

  it("keeps the planted previous-token → induction path of the demo model; reports progress; cancels; refuses a bad threshold", async () => {
    const model = await HookedTransformer.fromPretrained(demoModelFiles(), { engine });
    const { clean: cleanTokens, corrupted: tokens, correct, incorrect } = demoPrompts({ batch: 4 });
    const metric = logitDiff({ correct, incorrect });
    const clean = model.runWithCache(cleanTokens).cache;
    const corrupted = model.runWithCache(tokens).cache;
    const progress: number[] = [];
    const found = await acdc(model, tokens, clean, corrupted, metric, { threshold: 0.5, onProgress: (p) => progress.push(p.done) });
    const kept = found.edges.map(([w, r]) => `${w} -> ${r}`);
    for (const edge of ["input -> a0.h2<v>", "a0.h2 -> a1.h1<k>", "a1.h1 -> logits"]) expect(kept).toContain(edge);
    expect(kept.length).toBeLessThan(10);
    expect(found.faithfulness).toBeGreaterThan(0.8);
    expect(progress.at(-1)).toBe(found.steps.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const before = model.forward(tokens).logits!.data;
    const controller = new AbortController();
    await expect(acdc(model, tokens, clean, corrupted, metric, { threshold: 0.5, signal: controller.signal, onProgress: () => controller.abort() }))
      .rejects.toThrow(expect.objectContaining({ name: "AbortError" }));
    expect(model.forward(tokens).logits!.data).toEqual(before);
    for (const bad of [NaN, -1, Infinity]) {
      await expect(acdc(model, tokens, clean, corrupted, metric, { threshold: bad })).rejects.toThrow(/threshold must be a finite number ≥ 0/);
    }
    // Clean prompts against themselves: faithfulness has no meaning.
    await expect(acdc(model, cleanTokens, clean, clean, metric, { threshold: 0.5 })).rejects.toThrow(/same metric .*faithfulness is undefined/);
    model.dispose();
  });
});

function allEdges(graph: EdgeGraph): [number, number][] {
  const out: [number, number][] = [];
  for (let u = 0; u < graph.nWriters; u++) for (let v = 0; v < graph.nReaders; v++) if (graph.isEdge(u, v)) out.push([u, v]);
  return out;
}
