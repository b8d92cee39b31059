import type { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookFn } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import type { Metric } from "../patching/metrics.js";
import { EdgeGraph, type EdgeRef } from "./edge-graph.js";

export interface CircuitEvaluation {
  /** The metric of the circuit's run. */
  metric: number;
  /** (metric − M(corrupted)) / (M(clean) − M(corrupted)). */
  faithfulness: number;
  /** The circuit's edges, as [writer, reader] names. */
  edges: [string, string][];
}

/**
 * Runs a circuit (ATTRIBUTION.md, section 5) on the corrupted tokens: every reader reads, from each
 * writer, that writer's output in this same run where the edge is in the circuit and its corrupted
 * output where it is not; the input writer's output in this run is the clean one, and every norm
 * is recomputed. So the clean input reaches the metric only through the circuit's edges:
 * all edges give M(clean), none gives M(corrupted). Each reader's own input is an on-demand hook
 * point (`hook_q_input`, ..., `hook_mlp_in`), so any model can run it.
 *
 * @example
 * ```ts
 * const { metric, faithfulness } = evaluateCircuit(model, corruptedTokens, cleanCache, corruptedCache, logitDiff(answers),
 *   [["a0.h2", "a1.h1<k>"], ["a1.h1", "logits"]]);
 * ```
 */
export function evaluateCircuit(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, edges: Iterable<EdgeRef>): CircuitEvaluation {
  const cfg = model.cfg;
  const graph = new EdgeGraph(cfg);
  const inCircuit = graph.edgeSet(edges);
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const tokens = Array.from({ length: batch.batch }, (_, b) => Array.from(batch.ids.subarray(b * batch.pos, (b + 1) * batch.pos)));
  const rows = batch.batch * batch.pos;
  const { nLayers: L, dModel: D, nHeads: H, dHead: d } = cfg;
  const need = (cache: ActivationCache, name: string): Tensor => {
    if (!cache.has(name)) throw new Error(`evaluateCircuit: the cache has no ${name}; run runWithCache without a namesFilter (or include it)`);
    return cache.get(name);
  };
  const baseline = checked(metric(model.forward(tokens).logits!), "the corrupted run");
  const clean = checked(metric(model.forward(tokens, { startAtLayer: L, residual: need(cleanCache, `blocks.${L - 1}.hook_resid_post`) }).logits!), "the clean run");

  // Each writer's output in this run minus its corrupted output, [rows * D], filled as the run reaches it.
  const shift = new Map<number, Float32Array>();
  const nR = graph.nReaders;
  // x~_v = x_v(run) − Σ over writers u → v outside the circuit of shift_u.
  const correct = (x: Float32Array, offset: number, stride: number, reader: number) => {
    for (let u = 0; u < graph.nWriters; u++) {
      const flat = u * nR + reader;
      if (!graph.edgeMask[flat] || inCircuit.has(flat)) continue;
      const s = shift.get(u);
      if (s === undefined) continue; // not written yet: it cannot reach this reader
      for (let r = 0; r < rows; r++) {
        const o = offset + r * stride;
        for (let i = 0; i < D; i++) x[o + i]! -= s[r * D + i]!;
      }
    }
  };
  const hooks: [string, HookFn][] = [];
  const embedClean = need(cleanCache, "hook_embed");
  const embedCorrupted = need(corruptedCache, "hook_embed");
  hooks.push(["hook_embed", (a) => {
    a.data.set(embedClean.data);
    shift.set(graph.writerIndex("input"), embedClean.data.map((x, i) => x - embedCorrupted.data[i]!));
  }]);
  for (let l = 0; l < L; l++) {
    for (const kind of ["q", "k", "v"] as const) {
      hooks.push([`blocks.${l}.hook_${kind}_input`, (a) => {
        const heads = a.shape[2]!;
        for (let h = 0; h < heads; h++) correct(a.data, h * D, heads * D, graph.readerIndex(`a${l}.h${h}<${kind}>`));
      }]);
    }
    const zCorrupted = need(corruptedCache, `blocks.${l}.attn.hook_z`).data;
    const wO = model.weights.get(`blocks.${l}.attn.W_O`)!.data;
    hooks.push([`blocks.${l}.attn.hook_z`, (z) => {
      for (let h = 0; h < H; h++) {
        // (z_run − z_corrupted)[:, :, h] @ W_O[h]
        const out = new Float32Array(rows * D);
        for (let r = 0; r < rows; r++) {
          for (let e = 0; e < d; e++) {
            const dz = z.data[(r * H + h) * d + e]! - zCorrupted[(r * H + h) * d + e]!;
            if (dz === 0) continue;
            for (let i = 0; i < D; i++) out[r * D + i]! += dz * wO[(h * d + e) * D + i]!;
          }
        }
        shift.set(graph.writerIndex(`a${l}.h${h}`), out);
      }
    }]);
    hooks.push([`blocks.${l}.hook_mlp_in`, (a) => correct(a.data, 0, D, graph.readerIndex(`m${l}`))]);
    const mlpCorrupted = need(corruptedCache, `blocks.${l}.hook_mlp_out`).data;
    hooks.push([`blocks.${l}.hook_mlp_out`, (a) => { shift.set(graph.writerIndex(`m${l}`), a.data.map((x, i) => x - mlpCorrupted[i]!)); }]);
  }
  hooks.push([`blocks.${L - 1}.hook_resid_post`, (a) => correct(a.data, 0, D, graph.readerIndex("logits"))]);
  const value = checked(metric(model.runWithHooks(tokens, { fwdHooks: hooks }).logits!), "the circuit's run");
  if (clean === baseline) throw new Error(`the clean and corrupted runs give the same metric (${clean}): faithfulness is undefined`);
  return { metric: value, faithfulness: (value - baseline) / (clean - baseline), edges: graph.edgesToJSON(inCircuit) };
}

function checked(value: number, run: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value} for ${run}; it must give finite numbers`);
  return value;
}
