// The backward of whole blocks against float64 finite differences: a GPT-2 and a LLaMA block
// written here in float64 from the model's own (unprocessed) weights, independent of the library's kernels and
// twins. A backward hook puts a random r as the gradient at the block's output, so the gradient
// the backward gives at its input is Jᵀr; the float64 directional derivative of <r, block(x)>
// along random directions must match it.
import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { Tensor } from "../src/engine/tensor.js";
import { HookedTransformer } from "../src/model/hooked-transformer.js";
import { logitDiff } from "../src/patching/metrics.js";
import { randn } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { referenceDir } from "./reference.js";

type F64 = Float64Array;

/** One GPT-2 block in float64: x [P, D] (one row of the batch) -> resid_post [P, D]. */
function gpt2Block(model: HookedTransformer, layer: number, x: F64, P: number): F64 {
  const { dModel: D, nHeads: H, dHead: d, dMlp: M, eps } = model.cfg;
  const w = (name: string) => Float64Array.from(model.weights.get(`blocks.${layer}.${name}`)!.data);
  const [wq, wk, wv, wo] = ["attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O"].map(w) as [F64, F64, F64, F64];
  const [bq, bk, bv, bo] = ["attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O"].map(w) as [F64, F64, F64, F64];
  const [win, bin, wout, bout] = ["mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out"].map(w) as [F64, F64, F64, F64];
  const layerNorm = (v: F64, which: "ln1" | "ln2") => {
    const g = w(`${which}.w`);
    const b = w(`${which}.b`);
    const out = new Float64Array(P * D);
    for (let p = 0; p < P; p++) {
      let mean = 0;
      for (let i = 0; i < D; i++) mean += v[p * D + i]!;
      mean /= D;
      let sq = 0;
      for (let i = 0; i < D; i++) sq += (v[p * D + i]! - mean) ** 2;
      const scale = Math.sqrt(sq / D + eps);
      for (let i = 0; i < D; i++) out[p * D + i] = ((v[p * D + i]! - mean) / scale) * g[i]! + b[i]!;
    }
    return out;
  };
  // proj[p, h, e] = Σ_i n[p, i] W[h, i, e] + b[h, e]
  const project = (n: F64, W: F64, b: F64) => {
    const out = new Float64Array(P * H * d);
    for (let p = 0; p < P; p++) for (let h = 0; h < H; h++) for (let e = 0; e < d; e++) {
      let s = b[h * d + e]!;
      for (let i = 0; i < D; i++) s += n[p * D + i]! * W[(h * D + i) * d + e]!;
      out[(p * H + h) * d + e] = s;
    }
    return out;
  };
  const n1 = layerNorm(x, "ln1");
  const q = project(n1, wq, bq);
  const k = project(n1, wk, bk);
  const v = project(n1, wv, bv);
  const mid = Float64Array.from(x);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < P; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += q[(i * H + h) * d + e]! * k[(j * H + h) * d + e]!;
        scores.push(s / Math.sqrt(d));
      }
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const sum = ex.reduce((a, b) => a + b, 0);
      for (let e = 0; e < d; e++) {
        let z = 0;
        for (let j = 0; j <= i; j++) z += (ex[j]! / sum) * v[(j * H + h) * d + e]!;
        for (let o = 0; o < D; o++) mid[i * D + o]! += z * wo[(h * d + e) * D + o]!;
      }
    }
  }
  for (let p = 0; p < P; p++) for (let o = 0; o < D; o++) mid[p * D + o]! += bo[o]!;
  const n2 = layerNorm(mid, "ln2");
  const out = Float64Array.from(mid);
  for (let p = 0; p < P; p++) {
    for (let u = 0; u < M; u++) {
      let pre = bin[u]!;
      for (let i = 0; i < D; i++) pre += n2[p * D + i]! * win[i * M + u]!;
      const post = 0.5 * pre * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (pre + 0.044715 * pre ** 3)));
      for (let o = 0; o < D; o++) out[p * D + o]! += post * wout[u * D + o]!;
    }
    for (let o = 0; o < D; o++) out[p * D + o]! += bout[o]!;
  }
  return out;
}

/** One LLaMA block in float64 (RMSNorm with its weight, rotary, grouped-query attention, SwiGLU). */
function llamaBlock(model: HookedTransformer, layer: number, x: F64, P: number): F64 {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, eps, rotaryBase } = model.cfg;
  const w = (name: string) => Float64Array.from(model.weights.get(`blocks.${layer}.${name}`)!.data);
  const kv = (name: string) => (Hk === H ? name : `_${name}`);
  const rms = (v: F64, which: "ln1" | "ln2") => {
    const g = w(`${which}.w`);
    const out = new Float64Array(P * D);
    for (let p = 0; p < P; p++) {
      let sq = 0;
      for (let i = 0; i < D; i++) sq += v[p * D + i]! ** 2;
      const scale = Math.sqrt(sq / D + eps);
      for (let i = 0; i < D; i++) out[p * D + i] = (v[p * D + i]! / scale) * g[i]!;
    }
    return out;
  };
  // proj[p, h, e] = Σ_i n[p, i] W[h, i, e] + b[h, e], then rotated by position p (rotate_half pairs e, e + d/2).
  const project = (n: F64, W: F64, b: F64, heads: number, rotate: boolean) => {
    const out = new Float64Array(P * heads * d);
    for (let p = 0; p < P; p++) for (let h = 0; h < heads; h++) {
      const row = new Float64Array(d);
      for (let e = 0; e < d; e++) {
        let s = b[h * d + e]!;
        for (let i = 0; i < D; i++) s += n[p * D + i]! * W[(h * D + i) * d + e]!;
        row[e] = s;
      }
      const half = d / 2;
      for (let e = 0; e < d; e++) {
        if (!rotate) { out[(p * heads + h) * d + e] = row[e]!; continue; }
        const angle = p / Math.pow(rotaryBase, (e % half) / half);
        const pair = e < half ? -row[e + half]! : row[e - half]!;
        out[(p * heads + h) * d + e] = row[e]! * Math.cos(angle) + pair * Math.sin(angle);
      }
    }
    return out;
  };
  const n1 = rms(x, "ln1");
  const q = project(n1, w("attn.W_Q"), w("attn.b_Q"), H, true);
  const k = project(n1, w(`attn.${kv("W_K")}`), w(`attn.${kv("b_K")}`), Hk, true);
  const v = project(n1, w(`attn.${kv("W_V")}`), w(`attn.${kv("b_V")}`), Hk, false);
  const wo = w("attn.W_O");
  const bo = w("attn.b_O");
  const mid = Float64Array.from(x);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / Hk));
    for (let i = 0; i < P; i++) {
      const scores: number[] = [];
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += q[(i * H + h) * d + e]! * k[(j * Hk + g) * d + e]!;
        scores.push(s / Math.sqrt(d));
      }
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const sum = ex.reduce((a, b) => a + b, 0);
      for (let e = 0; e < d; e++) {
        let z = 0;
        for (let j = 0; j <= i; j++) z += (ex[j]! / sum) * v[(j * Hk + g) * d + e]!;
        for (let o = 0; o < D; o++) mid[i * D + o]! += z * wo[(h * d + e) * D + o]!;
      }
    }
  }
  for (let p = 0; p < P; p++) for (let o = 0; o < D; o++) mid[p * D + o]! += bo[o]!;
  const n2 = rms(mid, "ln2");
  const [win, wgate, bin, wout, bout] = ["mlp.W_in", "mlp.W_gate", "mlp.b_in", "mlp.W_out", "mlp.b_out"].map(w) as [F64, F64, F64, F64, F64];
  const out = Float64Array.from(mid);
  for (let p = 0; p < P; p++) {
    for (let u = 0; u < M; u++) {
      let gate = 0;
      let up = 0;
      for (let i = 0; i < D; i++) {
        gate += n2[p * D + i]! * wgate[i * M + u]!;
        up += n2[p * D + i]! * win[i * M + u]!;
      }
      const post = (gate / (1 + Math.exp(-gate))) * up + bin[u]!;
      for (let o = 0; o < D; o++) out[p * D + o]! += post * wout[u * D + o]!;
    }
    for (let o = 0; o < D; o++) out[p * D + o]! += bout[o]!;
  }
  return out;
}

describe("whole GPT-2 blocks against float64 finite differences", () => {
  it.each([0, 1])("block %i: the backward's Jᵀr matches the float64 directional derivatives of <r, block(x)>", async (layer) => {
    const files = randomGpt2Files({ nLayer: 2, nHead: 3, nEmbd: 24, nPositions: 12, vocab: 40, seed: 21 });
    const model = await HookedTransformer.fromPretrained(files, { engine: await Engine.create({ variant: "simd" }), processWeights: false });
    const tokens = [[3, 17, 5, 9, 30, 2, 11]];
    const P = 7;
    const D = model.cfg.dModel;
    const r = randn(P * D, 5 + layer);
    const metric = logitDiff({ correct: [1], incorrect: [2] });
    const { cache } = model.runWithCache(tokens, {
      inclBwd: true, metric,
      // The gradient at the block's output is r; what reaches its input is then Jᵀr.
      bwdHooks: [[`blocks.${layer}.hook_resid_post`, () => new Tensor(Float32Array.from(r), [1, P, D])]],
      namesFilter: [`blocks.${layer}.hook_resid_pre`, `blocks.${layer}.hook_resid_pre_grad`, `blocks.${layer}.hook_resid_post`],
    });
    const x = Float64Array.from(cache.get(`blocks.${layer}.hook_resid_pre`).data);
    const g = cache.get(`blocks.${layer}.hook_resid_pre_grad`).data;
    // The float64 block reproduces the library's forward (to float32 rounding).
    const y = gpt2Block(model, layer, x, P);
    const yLib = cache.get(`blocks.${layer}.hook_resid_post`).data;
    y.forEach((v, i) => expect(Math.abs(v - yLib[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    const phi = (z: F64) => gpt2Block(model, layer, z, P).reduce((s, v, i) => s + v * r[i]!, 0);
    for (let trial = 0; trial < 3; trial++) {
      const u = randn(P * D, 100 + trial);
      const eps = 1e-5;
      const shift = (sign: number) => x.map((v, i) => v + sign * eps * u[i]!);
      const fd = (phi(shift(1)) - phi(shift(-1))) / (2 * eps);
      const analytic = g.reduce((s, v, i) => s + v * u[i]!, 0);
      expect(Math.abs(fd - analytic), `block ${layer}, direction ${trial}: ${fd} vs ${analytic}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(fd)));
    }
    model.dispose();
  });
});

describe("whole LLaMA blocks against float64 finite differences", () => {
  it.each([0, 2])("block %i (RMSNorm, rotary, grouped-query attention, SwiGLU)", async (layer) => {
    const model = await HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"),
      { engine: await Engine.create({ variant: "simd" }), processWeights: false });
    expect(model.cfg.nKeyValueHeads).toBeLessThan(model.cfg.nHeads);
    const tokens = [[12, 50, 84, 60, 23, 80]];
    const P = 6;
    const D = model.cfg.dModel;
    const r = randn(P * D, 9 + layer);
    const { cache } = model.runWithCache(tokens, {
      inclBwd: true, metric: logitDiff({ correct: [1], incorrect: [2] }),
      bwdHooks: [[`blocks.${layer}.hook_resid_post`, () => new Tensor(Float32Array.from(r), [1, P, D])]],
      namesFilter: [`blocks.${layer}.hook_resid_pre`, `blocks.${layer}.hook_resid_pre_grad`, `blocks.${layer}.hook_resid_post`],
    });
    const x = Float64Array.from(cache.get(`blocks.${layer}.hook_resid_pre`).data);
    const g = cache.get(`blocks.${layer}.hook_resid_pre_grad`).data;
    const y = llamaBlock(model, layer, x, P);
    const yLib = cache.get(`blocks.${layer}.hook_resid_post`).data;
    y.forEach((v, i) => expect(Math.abs(v - yLib[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    const phi = (z: F64) => llamaBlock(model, layer, z, P).reduce((s, v, i) => s + v * r[i]!, 0);
    for (let trial = 0; trial < 3; trial++) {
      const u = randn(P * D, 200 + trial);
      const eps = 1e-5;
      const fd = (phi(x.map((v, i) => v + eps * u[i]!)) - phi(x.map((v, i) => v - eps * u[i]!))) / (2 * eps);
      const analytic = g.reduce((s, v, i) => s + v * u[i]!, 0);
      expect(Math.abs(fd - analytic), `block ${layer}, direction ${trial}: ${fd} vs ${analytic}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(fd)));
    }
    model.dispose();
  });
});
