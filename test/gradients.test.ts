// Gradients at every hook point against PyTorch autograd (../shared/reference/ATTRIBUTION.md,
// section 1): both model families, the clean and the corrupted run, on the WASM and js engines.
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff } from "../src/patching/metrics.js";
import { golden, referenceDir, type GoldenInputs, type GoldenTensor } from "./reference.js";
import { maxAbsDiff } from "./helpers.js";

interface GoldenGrads { metric: number; tensors: Record<string, GoldenTensor> }

const MODELS = ["tiny-gpt2-random", "tiny-llama-random"] as const;

let engines: Engine[];
beforeAll(async () => {
  engines = [await Engine.create({ variant: "simd" }), Engine.createJs()];
});

describe.each(MODELS)("gradients of the logit difference, %s", (name) => {
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
  for (const run of ["clean", "corrupted"] as const) {
    it(`match autograd at every hook point (${run} run), within 1e-5 + 1e-3 × max |grad|`, async () => {
      const want = golden<GoldenGrads>(name, `grads_${run}_processed.json`);
      for (const engine of engines) {
        const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine, useAttnResult: true });
        const { cache, metric: value } = model.runWithCache(inputs[run], { inclBwd: true, metric, namesFilter: (n) => n.endsWith("_grad") });
        expect(value).toBeCloseTo(want.metric, 4);
        expect(cache.keys()).toEqual(model.hookNames().map((n) => `${n}_grad`));
        expect(cache.keys().sort()).toEqual(Object.keys(want.tensors).sort());
        for (const [hook, g] of Object.entries(want.tensors)) {
          const got = cache.get(hook);
          expect(got.shape, hook).toEqual(g.shape);
          const maxAbs = Math.max(...g.data.map(Math.abs));
          const tol = 1e-5 + 1e-3 * maxAbs;
          let worst = 0;
          for (let i = 0; i < g.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - g.data[i]!));
          expect(worst, `${hook} on ${engine.backend} (max |grad| ${maxAbs})`).toBeLessThanOrEqual(tol);
        }
        model.dispose();
      }
    });
  }
});

describe("gradients: bad input gets one clear error and leaves the model as it was", () => {
  const name = "tiny-gpt2-random";
  const inputs = golden<GoldenInputs>(name, "inputs.json");
  const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });

  it("refuses a metric without a gradient, saying how to add one", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]! });
    const plain = (logits: { data: Float32Array }) => logits.data[0]!;
    expect(() => model.runWithCache(inputs.clean, { inclBwd: true, metric: plain as never })).toThrow(/no gradient: add grad\(logits\)/);
    expect(() => model.runWithCache(inputs.clean, { inclBwd: true })).toThrow(/gradients need a metric/);
    expect(() => model.runWithHooks(inputs.clean, { bwdHooks: [["hook_embed", () => undefined]] })).toThrow(/gradients need a metric/);
    const wrongShape = Object.assign(plain, { grad: () => new Tensor(new Float32Array(3), [1, 1, 3]) });
    expect(() => model.runWithHooks(inputs.clean, { metric: wrongShape as never })).toThrow(/metric.grad returned \[1, 1, 3\]; it must return a Tensor with the logits' shape/);
    model.dispose();
  });

  it("names a wrong backward hook, the first non-finite gradient and unknown _grad names; the model stays usable bit for bit", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]! });
    const before = model.runWithCache(inputs.corrupted, { inclBwd: true, metric });
    const logitsBefore = model.forward(inputs.corrupted).logits!;
    expect(() => model.runWithHooks(inputs.corrupted, { metric, bwdHooks: [["blocks.1.attn.hook_z", () => new Tensor(new Float32Array(4), [2, 2])]] }))
      .toThrow(/backward hook on blocks.1.attn.hook_z returned shape \[2, 2\] but the gradient is \[2, 8, 4, 16\]/);
    const poison = () => new Tensor(new Float32Array(2 * 8 * 64).fill(NaN), [2, 8, 64]);
    expect(() => model.runWithHooks(inputs.corrupted, { metric, bwdHooks: [["blocks.1.hook_attn_out", poison]] }))
      .toThrow(/gradient at blocks.1.attn.hook_z is NaN at \[0, 0, 0, 0\]/);
    expect(() => model.runWithCache(inputs.corrupted, { inclBwd: true, metric, namesFilter: ["blocks.0.attn.hook_zz_grad"] }))
      .toThrow(/unknown hook name "blocks.0.attn.hook_zz_grad"; closest valid names: blocks.0.attn.hook_z_grad/);
    expect(() => model.runWithCache(inputs.corrupted, { inclBwd: true, metric, stopAtLayer: 1 })).toThrow(/stopAtLayer cannot be used/);
    const after = model.runWithCache(inputs.corrupted, { inclBwd: true, metric });
    expect(model.forward(inputs.corrupted).logits!.data).toEqual(logitsBefore.data);
    expect(after.cache.keys()).toEqual(before.cache.keys());
    for (const key of before.cache.keys()) expect(after.cache.get(key).data, key).toEqual(before.cache.get(key).data);
    model.dispose();
  });

  it("a backward hook's replacement flows upstream; addHook with dir bwd stays until resetHooks", async () => {
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]! });
    // Zeroing the gradient at resid_pre of block 1 zeroes it everywhere upstream (block 0 and the embeddings).
    model.addHook("blocks.1.hook_resid_pre", (g) => { g.data.fill(0); }, { dir: "bwd" });
    const cut = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: (n) => n.endsWith("_grad") }).cache;
    for (const key of cut.keys()) {
      const upstream = key.startsWith("blocks.0.") || key.startsWith("hook_");
      const g = cut.get(key).data;
      if (upstream || key === "blocks.1.hook_resid_pre_grad") expect(g.every((x) => x === 0), key).toBe(true);
    }
    // The hooks after it (downstream) still see gradients.
    expect(cut.get("blocks.1.hook_resid_mid_grad").data.some((x) => x !== 0)).toBe(true);
    model.resetHooks();
    const whole = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad"] }).cache;
    expect(whole.get("hook_embed_grad").data.some((x) => x !== 0)).toBe(true);
    expect(() => model.addHook("hook_embed", () => undefined, { dir: "up" as never })).toThrow(/dir must be "fwd" or "bwd"/);
    model.dispose();
  });
});

describe("the unembedding's backward", () => {
  it("from W_U's columns for a metric declaring its tokens equals the dense product with W_Uᵀ", async () => {
    for (const name of MODELS) {
      const inputs = golden<GoldenInputs>(name, "inputs.json");
      const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]!, processWeights: false });
      const sparse = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
      // The same metric without its declared tokens: the backward multiplies by all of W_Uᵀ.
      const dense = Object.assign((l: Tensor) => sparse(l), { positions: "last" as const, grad: sparse.grad });
      const a = model.runWithCache(inputs.clean, { inclBwd: true, metric: sparse, namesFilter: ["hook_embed_grad", "ln_final.hook_normalized_grad"] }).cache;
      const b = model.runWithCache(inputs.clean, { inclBwd: true, metric: dense, namesFilter: ["hook_embed_grad", "ln_final.hook_normalized_grad"] }).cache;
      for (const key of a.keys()) {
        const x = a.get(key).data;
        const y = b.get(key).data;
        const scale = Math.max(...y.map(Math.abs));
        expect(scale, key).toBeGreaterThan(0);
        x.forEach((v, i) => expect(Math.abs(v - y[i]!), `${name} ${key} [${i}]`).toBeLessThanOrEqual(1e-5 * scale));
      }
      model.dispose();
    }
  });
});

describe("aborting a backward", () => {
  it("stops before the next block with an AbortError and leaves the model usable, bit for bit", async () => {
    const name = "tiny-llama-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]! });
    const before = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad"] }).cache.get("hook_embed_grad").data;
    const used = engines[0]!.stats().bytesInUse;
    const controller = new AbortController();
    const seen: string[] = [];
    expect(() => model.runWithHooks(inputs.clean, {
      metric, signal: controller.signal,
      bwdHooks: [[(n) => n.endsWith("hook_resid_post"), (_g, hook) => { seen.push(hook.name); controller.abort(); }]],
    })).toThrow(expect.objectContaining({ name: "AbortError", message: expect.stringMatching(/aborted \(before block 1\)/) }));
    expect(seen).toEqual([`blocks.${model.cfg.nLayers - 1}.hook_resid_post`]);
    expect(engines[0]!.stats().bytesInUse).toBe(used);
    const after = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad"] }).cache.get("hook_embed_grad").data;
    expect(after).toEqual(before);
    model.dispose();
  });
});

describe("gradients of a model with split q/k/v inputs", () => {
  it("take gradients through a forward hook that changes a head's copy; caching the copies changes nothing", async () => {
    const name = "tiny-gpt2-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const model = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]!, useSplitQkvInput: true });
    const plain = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad", "blocks.1.hook_k_input_grad"] }).cache;
    const cached = model.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad", "blocks.1.hook_k_input", "blocks.1.hook_k_input_grad"] }).cache;
    expect(cached.get("blocks.1.hook_k_input").shape).toEqual([2, 8, 4, 64]);
    expect(cached.get("hook_embed_grad").data).toEqual(plain.get("hook_embed_grad").data);
    expect(cached.get("blocks.1.hook_k_input_grad").data).toEqual(plain.get("blocks.1.hook_k_input_grad").data);
    const change: [string, (a: Tensor) => void] = ["blocks.1.hook_q_input", (a) => { a.data[a.size - 1]! += 1; }]; // a last-position query
    const changed = model.runWithHooks(inputs.clean, { metric, fwdHooks: [change] });
    expect(changed.metric).toBe(metric(model.forward(inputs.clean, { fwdHooks: [change] }).logits!));
    expect(changed.metric).not.toBe(model.runWithHooks(inputs.clean, { metric }).metric);
    model.dispose();
  });
});

describe("split q/k/v inputs and hook_mlp_in on demand", () => {
  it("a model without the options has them when named exactly: the same activations and gradients as one with them", async () => {
    const name = "tiny-llama-random";
    const inputs = golden<GoldenInputs>(name, "inputs.json");
    const metric = logitDiff({ correct: inputs.correct, incorrect: inputs.incorrect });
    const plain = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]! });
    const split = await HookedTransformer.fromPretrained(referenceDir(name), { engine: engines[0]!, useSplitQkvInput: true, useHookMlpIn: true });
    expect(plain.hookNames()).not.toContain("blocks.1.hook_v_input");
    expect(split.hookNames()).toContain("blocks.1.hook_v_input");
    expect(plain.hookNames({ onDemand: true })).toEqual(split.hookNames());
    // Predicates select among the listed names only: caching "everything in block 1" stays cheap.
    const listed = plain.runWithCache(inputs.clean, { namesFilter: (n) => n.startsWith("blocks.1.") }).cache;
    expect(listed.keys().some((n) => /_input$|mlp_in$/.test(n))).toBe(false);
    const names = ["blocks.1.hook_q_input", "blocks.1.hook_v_input", "blocks.0.hook_mlp_in",
      "blocks.1.hook_q_input_grad", "blocks.1.hook_v_input_grad", "blocks.0.hook_mlp_in_grad", "hook_embed_grad"];
    const a = plain.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: names });
    const b = split.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: names });
    expect(a.metric).toBe(b.metric);
    for (const n of names) expect(a.cache.get(n).data, n).toEqual(b.cache.get(n).data);
    expect(a.cache.get("blocks.1.hook_v_input").shape).toEqual([2, 8, plain.cfg.nKeyValueHeads, plain.cfg.dModel]);
    // Every head's copy of q's input is resid_pre, and the heads' gradients sum to what flows through the fused path.
    const resid = plain.runWithCache(inputs.clean, { namesFilter: ["blocks.1.hook_resid_pre"] }).cache.get("blocks.1.hook_resid_pre");
    const q = a.cache.get("blocks.1.hook_q_input");
    const D = plain.cfg.dModel, H = plain.cfg.nHeads;
    for (let i = 0; i < q.size; i++) expect(q.data[i]).toBe(resid.data[Math.floor(i / (H * D)) * D + (i % D)]);
    const fused = plain.runWithCache(inputs.clean, { inclBwd: true, metric, namesFilter: ["hook_embed_grad"] }).cache.get("hook_embed_grad");
    expect(maxAbsDiff(a.cache.get("hook_embed_grad").data, fused.data), "hook_embed_grad, split vs fused backward").toBeLessThan(1e-5);
    // A hook added by exact name works the same way.
    let seen: number[] | undefined;
    plain.addHook("blocks.0.hook_k_input", (act) => { seen = act.shape; });
    plain.forward(inputs.clean);
    expect(seen).toEqual([2, 8, plain.cfg.nKeyValueHeads, plain.cfg.dModel]);
    plain.resetHooks();
    expect(() => plain.runWithCache(inputs.clean, { namesFilter: ["blocks.1.hook_q_inptu"] })).toThrow(/closest valid names: blocks.1.hook_q_input/);
    plain.dispose();
    split.dispose();
  });
});
