import { beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../src/engine/engine.js";
import { HookedTransformer, type HookFn } from "../src/index.js";
import { allEngines } from "./helpers.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { referenceDir } from "./reference.js";

// The forward fuses two steps when no hook can see between them: the residual add with the layer
// norm that follows it (addLayerNorm), and the MLP's bias and activation with its input product
// (gemmPacked's activation); and attention runs fused unless a hook reads scores or pattern. A
// hook at any point in between turns a fusion off there. Both ways must give the same bits, so
// a hook that only looks never changes a result.

let engines: Engine[];
beforeAll(async () => {
  engines = await allEngines();
});

const same = (x: Float32Array, y: Float32Array) =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

/** A random 3-layer GPT-2 whose config.json asks for `activation`. */
function files(activation: string): Record<string, Uint8Array> {
  const f = randomGpt2Files({ nLayer: 3, nHead: 4, nEmbd: 64, nPositions: 24, vocab: 97, seed: 21 });
  const config = JSON.parse(new TextDecoder().decode(f["config.json"]!));
  return { ...f, "config.json": new TextEncoder().encode(JSON.stringify({ ...config, activation_function: activation })) };
}

const look: HookFn = () => undefined;

/** Hook points that each sit between two fused steps, one at a time and all together. */
const BETWEEN = [
  ["blocks.0.mlp.hook_pre"],
  ["blocks.1.hook_resid_mid"],
  ["blocks.0.hook_resid_post"],
  ["blocks.2.hook_resid_pre"],
  ["blocks.2.hook_resid_post"],
  ["blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre", "blocks.2.mlp.hook_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid",
    "blocks.2.hook_resid_mid", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"],
];

describe("fused forward", () => {
  for (const activation of ["gelu_new", "gelu"]) {
    it(`gives the bits of the unfused steps (${activation}), on every backend`, async () => {
      const tokens = Array.from({ length: 3 }, (_, b) => Array.from({ length: 11 }, (_, p) => (b * 13 + p * 5) % 97));
      for (const engine of engines) {
        const model = await HookedTransformer.fromPretrained(files(activation), { engine });
        expect(model.cfg.actFn).toBe(activation);
        const fused = model.forward(tokens).logits!.data;
        for (const names of BETWEEN) {
          const hooked = model.runWithHooks(tokens, { fwdHooks: names.map((n) => [n, look] as const) }).logits!.data;
          expect(same(hooked, fused), `${engine.variant}, hooks on ${names.join(", ")}`).toBe(true);
        }
        // A hook that changes hook_pre must still be seen (the unfused path runs then).
        const zeroed = model.runWithHooks(tokens, { fwdHooks: [["blocks.1.mlp.hook_pre", (x) => { x.data.fill(0); }]] }).logits!.data;
        expect(same(zeroed, fused), engine.variant).toBe(false);
        model.dispose();
      }
    });
  }

  it("a hook that only looks changes no bits, at any hook point", async () => {
    const tokens = Array.from({ length: 2 }, (_, b) => Array.from({ length: 9 }, (_, p) => (b * 7 + p * 11) % 97));
    for (const engine of engines) {
      const model = await HookedTransformer.fromPretrained(files("gelu_new"), { engine });
      const plain = model.forward(tokens).logits!.data;
      for (const name of model.hookNames()) {
        const looked = model.runWithHooks(tokens, { fwdHooks: [[name, look]] }).logits!.data;
        expect(same(looked, plain), `${engine.variant}, a hook on ${name}`).toBe(true);
      }
      const all = model.runWithHooks(tokens, { fwdHooks: model.hookNames().map((n) => [n, look] as const) }).logits!.data;
      expect(same(all, plain), `${engine.variant}, a hook on every point`).toBe(true);
      model.dispose();
    }
  });

  it("a hook that only looks changes no bits in a LLaMA-family model (RMSNorm, rotary, SwiGLU, GQA)", async () => {
    const tokens = [[1, 5, 9, 2, 40, 7, 7, 3], [4, 4, 8, 1, 0, 2, 6, 9]];
    for (const engine of engines) {
      const model = await HookedTransformer.fromPretrained(referenceDir("tiny-llama-random"), { engine });
      expect(model.cfg.normalizationType).toBe("RMSPre");
      const plain = model.forward(tokens).logits!.data;
      for (const name of model.hookNames()) {
        const looked = model.runWithHooks(tokens, { fwdHooks: [[name, look]] }).logits!.data;
        expect(same(looked, plain), `${engine.variant}, a hook on ${name}`).toBe(true);
      }
      model.dispose();
    }
  });

  it("a cache of every hook holds what the fused forward computed", async () => {
    for (const engine of engines) {
      const model = await HookedTransformer.fromPretrained(files("gelu_new"), { engine });
      const tokens = [[5, 9, 2, 40, 7, 7, 1]];
      const { logits, cache } = model.runWithCache(tokens);
      expect(same(logits!.data, model.forward(tokens).logits!.data), `${engine.variant} logits`).toBe(true);
      // hook_post is gelu_new(hook_pre) and hook_resid_mid is hook_resid_pre + hook_attn_out, exactly.
      const pre = cache.get("blocks.1.mlp.hook_pre").data;
      const post = cache.get("blocks.1.mlp.hook_post").data;
      const ref = engine.upload(pre);
      engine.kernels.geluNew(ref, ref, pre.length);
      expect(same(engine.download(ref, pre.length), post), `${engine.variant} post`).toBe(true);
      engine.free(ref);
      const mid = cache.get("blocks.1.hook_resid_mid").data;
      const rp = cache.get("blocks.1.hook_resid_pre").data;
      const ao = cache.get("blocks.1.hook_attn_out").data;
      expect(mid.every((v, i) => v === Math.fround(rp[i]! + ao[i]!)), engine.variant).toBe(true);
      model.dispose();
    }
  });
});
