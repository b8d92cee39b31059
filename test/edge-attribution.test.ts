// The writer/reader edge graph and edge attribution (EAP, EAP-IG) against the PyTorch goldens of
// ../shared/reference/ATTRIBUTION.md, sections 3 and 4, on both model families.
import { beforeAll, describe, expect, it } from "vitest";
import { getEdgeAttrEap, getEdgeAttrEapIg } from "../src/circuits/edge-attribution.js";
import { evaluateCircuit } from "../src/circuits/circuit-run.js";
import { EdgeGraph } from "../src/circuits/edge-graph.js";
import { getEdgePatchExact } from "../src/circuits/edge-patching.js";
import { Engine } from "../src/engine/engine.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { gradientMemory } from "../src/model/activation-sizes.js";
import { logitDiff } from "../src/patching/metrics.js";
import { planSweep } from "../src/patching/plan-sweep.js";
import type { SweepPlanSummary } from "../src/patching/sweep-types.js";
import { expectGoldenScores, golden, referenceDir, type GoldenInputs, type GoldenScores } from "./reference.js";

interface GoldenEdges { writers: string[]; readers: string[]; no_path: number[] }

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ variant: "simd" });
});

describe.each(["tiny-gpt2-random", "tiny-llama-random"])("edges of %s", (name) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
  const load = () => HookedTransformer.fromPretrained(referenceDir(name), { engine, useSplitQkvInput: true, useHookMlpIn: true });

  it("the graph names, orders and masks writers and readers as the goldens", async () => {
    const model = await load();
    const want = golden<GoldenEdges>(name, "edges.json");
    const graph = new EdgeGraph(model.cfg);
    expect(graph.writers).toEqual(want.writers);
    expect(graph.readers).toEqual(want.readers);
    expect(Array.from(graph.edgeMask, (x) => 1 - x)).toEqual(want.no_path);
    model.dispose();
  });

  it("EAP and EAP-IG (5 steps) match the goldens", async () => {
    const model = await load();
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const eap = await getEdgeAttrEap(model, inputs.corrupted, clean, corrupted, metric);
    const wantEap = golden<GoldenScores>(name, "edge_eap.json");
    expect(eap.scores.shape).toEqual(wantEap.shape);
    expect(eap.baseline).toBeCloseTo(wantEap.corrupted_baseline, 4);
    expect(eap.clean).toBeCloseTo(wantEap.clean_baseline, 4);
    expectGoldenScores(eap.scores.data, wantEap, `${name} EAP`);
    // All five steps stacked in one pass by default; a budget that fits two copies takes three passes.
    const progress: number[] = [];
    const ig = await getEdgeAttrEapIg(model, inputs.corrupted, clean, corrupted, metric, { steps: 5, onProgress: (p) => progress.push(p.done) });
    expect(progress).toEqual([5]);
    expectGoldenScores(ig.scores.data, golden<GoldenScores>(name, "edge_eap_ig5.json"), `${name} EAP-IG`);
    const [B, P] = [inputs.corrupted.length, inputs.corrupted[0]!.length];
    const summed = 4 * new EdgeGraph(model.cfg).nReaders * B * P * model.cfg.dModel; // the reader gradients, held through the passes
    const twoCopies = gradientMemory(model.cfg, { batch: 2 * B, pos: P, lastPositionOnly: true, readerInputs: true }).peak + summed;
    const chunked: number[] = [];
    const ig2 = await getEdgeAttrEapIg(model, inputs.corrupted, clean, corrupted, metric,
      { steps: 5, memoryBudgetBytes: twoCopies, onProgress: (p) => chunked.push(p.done) });
    expect(chunked).toEqual([2, 4, 5]);
    expectGoldenScores(ig2.scores.data, golden<GoldenScores>(name, "edge_eap_ig5.json"), `${name} EAP-IG in three passes`);
    await expect(getEdgeAttrEapIg(model, inputs.corrupted, clean, corrupted, metric, { steps: 5, memoryBudgetBytes: 1000 }))
      .rejects.toThrow(/one gradient run of 2 × 8 tokens needs about \d+ bytes \(\d+ of them for the summed gradients\), more than memoryBudgetBytes \(1000\)/);
    model.dispose();
  });
});

describe("edge graph: bad input", () => {
  it("names unknown writers and readers, refuses non-edges, round-trips JSON", () => {
    const graph = new EdgeGraph({ nLayers: 2, nHeads: 4, nKeyValueHeads: 2 });
    expect(graph.nWriters).toBe(1 + 2 * 5);
    expect(graph.nReaders).toBe(2 * (4 + 2 * 2 + 1) + 1);
    expect(() => graph.writerIndex("a0.h9")).toThrow(/unknown writer "a0.h9"; closest: a0.h0/);
    expect(() => graph.readerIndex("a1.h3<k>")).toThrow(/unknown reader "a1.h3<k>"/); // only 2 key/value heads
    expect(() => graph.edgeIndex(["m1", "a1.h0<q>"])).toThrow(/m1 -> a1.h0<q> is not an edge/);
    expect(graph.edgeIndex(["a0.h1", "m0"])).toEqual([2, 8]);
    expect(() => graph.edgeIndex(["m0", "m0"])).toThrow(/not an edge/);
    const set = graph.edgeSet([["input", "logits"], ["a0.h2", "a1.h1<v>"]]);
    expect(graph.edgesFromJSON(JSON.parse(JSON.stringify(graph.edgesToJSON(set))))).toEqual(set);
    expect(() => graph.edgesFromJSON([["input"]])).toThrow(/edges\[0\]: expected \[writer, reader\] names/);
  });

  it.each(["tiny-gpt2-random", "tiny-llama-random"])("%s without the split-input options has them on demand: the same EAP and exact scores; steps < 1 refused", async (name) => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const plain = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    expect(plain.hookNames()).not.toContain("blocks.0.hook_q_input");
    expect(plain.hookNames({ onDemand: true })).toContain("blocks.0.hook_q_input");
    const split = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    const scores = async (model: HookedTransformer) => {
      const clean = model.runWithCache(inputs.clean).cache;
      const corrupted = model.runWithCache(inputs.corrupted).cache;
      const eap = await getEdgeAttrEap(model, inputs.corrupted, clean, corrupted, metric);
      const exact = await getEdgePatchExact(model, inputs.corrupted, clean, corrupted, metric, { edges: [["a0.h1", "a1.h0<k>"], ["input", "m1"]] });
      return [eap.scores.data, exact.scores.data];
    };
    const [eapPlain, exactPlain] = await scores(plain);
    const [eapSplit, exactSplit] = await scores(split);
    expect(eapPlain).toEqual(eapSplit);
    expect(exactPlain).toEqual(exactSplit);
    expectGoldenScores(eapPlain!, golden<GoldenScores>(name, "edge_eap.json"), `${name} EAP on demand`);
    const c = plain.runWithCache(inputs.clean).cache;
    await expect(getEdgeAttrEapIg(plain, inputs.corrupted, c, c, metric, { steps: 0 })).rejects.toThrow(/steps must be an integer ≥ 1, got 0/);
    plain.dispose();
    split.dispose();
  });
});

describe.each(["tiny-gpt2-random", "tiny-llama-random"])("circuits of %s", (name) => {
  it("evaluateCircuit gives the goldens' metric and faithfulness for the top-n EAP-IG edges; all edges = clean, none = corrupted", async () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const want = golden<{ n: number[]; edges: [number, number][]; metric: number[]; faithfulness: number[]; clean_baseline: number; corrupted_baseline: number }>(name, "circuits.json");
    const tol = 1e-3 + 1e-3 * Math.max(...want.metric.map(Math.abs));
    want.n.forEach((n, i) => {
      const got = evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, want.edges.slice(0, n));
      expect(Math.abs(got.metric - want.metric[i]!), `${name} top ${n}`).toBeLessThanOrEqual(tol);
      expect(Math.abs(got.faithfulness - want.faithfulness[i]!), `${name} top ${n} faithfulness`).toBeLessThanOrEqual(1e-3);
      expect(got.edges).toHaveLength(n);
    });
    const none = evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, []);
    expect(none.metric).toBeCloseTo(want.corrupted_baseline, 4);
    const graph = new EdgeGraph(model.cfg);
    const all: [number, number][] = [];
    for (let i = 0; i < graph.nWriters; i++) for (let j = 0; j < graph.nReaders; j++) if (graph.isEdge(i, j)) all.push([i, j]);
    const every = evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, all);
    expect(every.metric).toBeCloseTo(want.clean_baseline, 3);
    expect(every.faithfulness).toBeCloseTo(1, 3);
    model.dispose();
  });
});

describe.each(["tiny-gpt2-random", "tiny-llama-random"])("exact edge patching on %s", (name) => {
  it("every edge, exact and linear, planned and naive, matches the goldens", async () => {
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    for (const mode of ["exact", "linear"] as const) {
      const want = golden<GoldenScores>(name, `edge_exact_${mode}.json`);
      for (const strategy of ["planned", "naive"] as const) {
        let announced: SweepPlanSummary | undefined;
        const got = await getEdgePatchExact(model, inputs.corrupted, clean, corrupted, metric, { mode, strategy, onPlan: (p) => { announced = p; } });
        expect(got.scores.shape).toEqual(want.shape);
        // planSweep gives the plan the run announced, without running it.
        const plan = planSweep(getEdgePatchExact, model, inputs.corrupted, clean, corrupted, metric, { mode, strategy });
        expect(plan).toEqual(announced);
        expect(plan.patches).toBe(new EdgeGraph(model.cfg).edgeMask.reduce((a, b) => a + b, 0));
        if (strategy === "planned") expect(plan.layerTokenEvaluations).toBeLessThan(plan.naiveLayerTokenEvaluations);
        else expect(plan.passes).toBe(plan.patches);
        expectGoldenScores(got.scores.data, want, `${name} ${mode} ${strategy}`);
      }
    }
    model.dispose();
  });
});

describe("direct path patching is the head → q/k/v block of exact edge patching", () => {
  it.each([["tiny-gpt2-random", "k"], ["tiny-gpt2-random", "v"], ["tiny-llama-random", "q"], ["tiny-gpt_neox-random", "k"], ["tiny-gemma2-random", "v"]] as const)("%s, %s, both modes", async (name, component) => {
    const { getActPatchDirectPath } = await import("../src/index.js");
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const graph = new EdgeGraph(model.cfg);
    for (const mode of ["exact", "linear"] as const) {
      const path = await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric, { srcLayer: 0, srcHead: 1, component, mode });
      const edges = await getEdgePatchExact(model, inputs.corrupted, clean, corrupted, metric, {
        mode, edges: Array.from({ length: path.scores.size }, (_, i) => [i, 0] as const)
          .filter(([i]) => Math.floor(i / path.scores.shape[1]!) > 0)
          .map(([i]) => ["a0.h1", `a${Math.floor(i / path.scores.shape[1]!)}.h${i % path.scores.shape[1]!}<${component}>`] as [string, string]),
      });
      for (let l = 1; l < model.cfg.nLayers; l++) {
        for (let h = 0; h < path.scores.shape[1]!; h++) {
          const edge = edges.scores.get(graph.writerIndex("a0.h1"), graph.readerIndex(`a${l}.h${h}<${component}>`));
          expect(edge, `${mode} 0.1 -> ${l}.${h} ${component}`).toBeCloseTo(path.scores.get(l, h), 4);
        }
      }
    }
    model.dispose();
  });
});

describe("discoverCircuit on the embedded demo model", () => {
  it("EAP-IG with verification finds the planted circuit: input → 0.2's values, 0.2 → 1.1's keys, 1.1 → logits", async () => {
    const { demoModelFiles, demoPrompts } = await import("../src/index.js");
    const { discoverCircuit, faithfulnessCurve } = await import("../src/circuits/discover.js");
    const model = await HookedTransformer.fromPretrained(demoModelFiles(), { engine, useSplitQkvInput: true, useHookMlpIn: true });
    const { clean, corrupted, correct, incorrect } = demoPrompts({ batch: 4 });
    const metric = logitDiff({ correct, incorrect });
    const c = model.runWithCache(clean).cache;
    const r = model.runWithCache(corrupted).cache;
    const stages = new Set<string>();
    const found = await discoverCircuit(model, corrupted, c, r, metric, { method: "eap-ig", steps: 5, verify: 20, onProgress: (p) => stages.add(p.stage) });
    expect([...stages]).toEqual(["rank", "verify", "circuit"]);
    expect(found.edges.map((e) => `${e.writer} -> ${e.reader}`).sort()).toEqual(["a0.h2 -> a1.h1<k>", "a1.h1 -> logits", "input -> a0.h2<v>"]);
    expect(found.reachedTarget).toBe(true);
    expect(found.faithfulness).toBeGreaterThan(0.8);
    for (const e of found.edges) expect(e.exact).toBeGreaterThan(found.baseline + 0.9 * (found.clean - found.baseline));
    // The curve it chose on is what faithfulnessCurve gives for the same ranking.
    const graph = new EdgeGraph(model.cfg);
    const ranking = found.edges.map((e) => [graph.writerIndex(e.writer), graph.readerIndex(e.reader)] as const);
    const [point] = faithfulnessCurve(model, corrupted, c, r, metric, ranking, [3]);
    expect(point!.faithfulness).toBeCloseTo(found.faithfulness, 6);
    await expect(discoverCircuit(model, corrupted, c, r, metric, { method: "acdc" as never })).rejects.toThrow(/method must be "eap" or "eap-ig"/);
    await expect(discoverCircuit(model, corrupted, c, r, metric, { method: "eap", target: 1.5 })).rejects.toThrow(/target must be in \(0, 1\]/);
    // Clean prompts against themselves: both runs give the same metric, so faithfulness has no meaning.
    await expect(discoverCircuit(model, clean, c, c, metric, { method: "eap" })).rejects.toThrow(/same metric .*faithfulness is undefined/);
    expect(() => faithfulnessCurve(model, corrupted, c, r, metric, ranking, [4])).toThrow(/n = 4 is outside \[0, 3\]/);
    model.dispose();
  });
});

describe("edges of a parallel attention + MLP model (tiny-gpt_neox-random)", () => {
  const name = "tiny-gpt_neox-random";
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });

  it("an MLP reads only earlier layers' heads; all edges give the clean run, none the corrupted one", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const graph = new EdgeGraph(model.cfg);
    expect(graph.isEdge(graph.writerIndex("a1.h0"), graph.readerIndex("m1"))).toBe(false);
    expect(graph.isEdge(graph.writerIndex("a0.h3"), graph.readerIndex("m1"))).toBe(true);
    expect(graph.isEdge(graph.writerIndex("m0"), graph.readerIndex("a1.h2<v>"))).toBe(true);
    expect(() => graph.edgeSet([["a1.h0", "m1"]])).toThrow(/not an edge/);
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const baselines = golden<{ clean: number; corrupted: number }>(name, "baselines.json");
    expect(evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, []).metric).toBeCloseTo(baselines.corrupted, 4);
    const all: [number, number][] = [];
    for (let i = 0; i < graph.nWriters; i++) for (let j = 0; j < graph.nReaders; j++) if (graph.isEdge(i, j)) all.push([i, j]);
    expect(evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, all).metric).toBeCloseTo(baselines.clean, 3);
    model.dispose();
  });

  it("head → MLP edges: exact patching is the run with only hook_mlp_in shifted; EAP is the first-order term at hook_mlp_in", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const { dModel: D, dHead: d, nHeads: H } = model.cfg;
    // a0.h1's write clean − corrupted [B·P, D]: dz[:, :, 1] @ W_O[0][1].
    const zc = clean.get("blocks.0.attn.hook_z").data;
    const zr = corrupted.get("blocks.0.attn.hook_z").data;
    const wO = model.weights.get("blocks.0.attn.W_O")!.data;
    const rows = zc.length / (H * d);
    const delta = new Float32Array(rows * D);
    for (let r = 0; r < rows; r++) {
      for (let e = 0; e < d; e++) {
        const dz = zc[(r * H + 1) * d + e]! - zr[(r * H + 1) * d + e]!;
        for (let i = 0; i < D; i++) delta[r * D + i]! += dz * wO[(1 * d + e) * D + i]!;
      }
    }
    const shifted = model.runWithHooks(inputs.corrupted, {
      fwdHooks: [["blocks.1.hook_mlp_in", (x) => { for (let i = 0; i < x.data.length; i++) x.data[i]! += delta[i]!; }]],
    }).logits!;
    const exact = await getEdgePatchExact(model, inputs.corrupted, clean, corrupted, metric, { mode: "exact", edges: [["a0.h1", "m1"]] });
    const graph = new EdgeGraph(model.cfg);
    expect(exact.scores.get(graph.writerIndex("a0.h1"), graph.readerIndex("m1"))).toBeCloseTo(metric(shifted), 4);
    const grad = model.runWithCache(inputs.corrupted, { inclBwd: true, metric, namesFilter: ["blocks.1.hook_mlp_in_grad"] });
    const g = grad.cache.get("blocks.1.hook_mlp_in_grad").data;
    let first = grad.metric!;
    for (let i = 0; i < g.length; i++) first += delta[i]! * g[i]!;
    const eap = await getEdgeAttrEap(model, inputs.corrupted, clean, corrupted, metric);
    expect(eap.scores.get(graph.writerIndex("a0.h1"), graph.readerIndex("m1"))).toBeCloseTo(first, 4);
    model.dispose();
  });
});

describe("edges of a model with post-norms (tiny-gemma2-random)", () => {
  const name = "tiny-gemma2-random";
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });

  it("a head's write is its layer's post-normed write with only that head switched: exact and EAP scores of a head → MLP edge; all edges = clean, none = corrupted", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine });
    const clean = model.runWithCache(inputs.clean).cache;
    const corrupted = model.runWithCache(inputs.corrupted).cache;
    const { nHeads: H, dHead: d } = model.cfg;
    // The definition, by brute force: the corrupted run with head 1 of layer 0 switched to clean, its hook_attn_out minus the corrupted one.
    const zc = clean.get("blocks.0.attn.hook_z").data;
    let mixed: Float32Array | undefined;
    model.runWithHooks(inputs.corrupted, {
      fwdHooks: [
        ["blocks.0.attn.hook_z", (z) => { for (let r = 0; r < z.size / (H * d); r++) for (let e = 0; e < d; e++) z.data[(r * H + 1) * d + e] = zc[(r * H + 1) * d + e]!; }],
        ["blocks.0.hook_attn_out", (a) => { mixed = a.data.slice(); }],
      ],
    });
    const base = corrupted.get("blocks.0.hook_attn_out").data;
    const delta = mixed!.map((x, i) => x - base[i]!);
    const shifted = model.runWithHooks(inputs.corrupted, {
      fwdHooks: [["blocks.1.hook_mlp_in", (x) => { for (let i = 0; i < x.data.length; i++) x.data[i]! += delta[i]!; }]],
    }).logits!;
    const graph = new EdgeGraph(model.cfg);
    const exact = await getEdgePatchExact(model, inputs.corrupted, clean, corrupted, metric, { mode: "exact", edges: [["a0.h1", "m1"]] });
    expect(exact.scores.get(graph.writerIndex("a0.h1"), graph.readerIndex("m1"))).toBeCloseTo(metric(shifted), 4);
    const grad = model.runWithCache(inputs.corrupted, { inclBwd: true, metric, namesFilter: ["blocks.1.hook_mlp_in_grad"] });
    const g = grad.cache.get("blocks.1.hook_mlp_in_grad").data;
    let first = grad.metric!;
    for (let i = 0; i < g.length; i++) first += delta[i]! * g[i]!;
    const eap = await getEdgeAttrEap(model, inputs.corrupted, clean, corrupted, metric);
    expect(eap.scores.get(graph.writerIndex("a0.h1"), graph.readerIndex("m1"))).toBeCloseTo(first, 4);

    const baselines = golden<{ clean: number; corrupted: number }>(name, "baselines.json");
    expect(evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, []).metric).toBeCloseTo(baselines.corrupted, 4);
    const all: [number, number][] = [];
    for (let i = 0; i < graph.nWriters; i++) for (let j = 0; j < graph.nReaders; j++) if (graph.isEdge(i, j)) all.push([i, j]);
    expect(evaluateCircuit(model, inputs.corrupted, clean, corrupted, metric, all).metric).toBeCloseTo(baselines.clean, 3);
    model.dispose();
  });
});
