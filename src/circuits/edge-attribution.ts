import type { Engine } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import type { Metric } from "../patching/metrics.js";
import { PatchResult } from "../patching/result.js";
import { EdgeGraph } from "./edge-graph.js";

/** What an edge score result records: the method and the graph's axes. */
export interface EdgeScoreRecord {
  method: "eap" | "eap-ig";
  /** EAP-IG's number of interpolation steps. */
  steps?: number;
  writers: readonly string[];
  readers: readonly string[];
}

export interface EdgeAttrOptions {
  /** Called after each forward + backward pass (EAP-IG makes `steps` of them). */
  onProgress?: (progress: { done: number; total: number }) => void;
  /** Cancels between passes: the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

/**
 * Edge attribution patching (ATTRIBUTION.md, section 4): every edge u → v scored by
 * `M(corrupted) + Σ (a_u(clean) - a_u(corrupted)) · dM/dx_v`, with x_v reader v's own copy of its
 * input, from one forward and one backward pass of the corrupted run. `[n_writers, n_readers]`
 * scores; pairs that are not edges are 0 and flagged in `noPath`. Each reader's own input is an
 * on-demand hook point (`hook_q_input`, ..., `hook_mlp_in`), so any model can run it.
 *
 * @example
 * ```ts
 * const model = await HookedTransformer.fromPretrained(dir);
 * const clean = model.runWithCache(cleanTokens).cache;
 * const corrupted = model.runWithCache(corruptedTokens).cache;
 * const eap = await getEdgeAttrEap(model, corruptedTokens, clean, corrupted, logitDiff(answers));
 * eap.scores;  // [n_writers, n_readers]; eap.options.writers / readers name the axes
 * ```
 */
export async function getEdgeAttrEap(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: EdgeAttrOptions = {}): Promise<PatchResult<EdgeScoreRecord>> {
  return edgeAttribution(model, corruptedTokens, cleanCache, corruptedCache, metric, 0, options);
}

/**
 * EAP-IG ("integrated gradients over the input"): as {@link getEdgeAttrEap}, with each reader's
 * gradient averaged over `steps` corrupted runs whose input writer is moved k/steps of the way to
 * the clean one (k = 1..steps). Compare results of the same `steps` only: the sum converges slowly.
 */
export async function getEdgeAttrEapIg(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: EdgeAttrOptions & { steps: number }): Promise<PatchResult<EdgeScoreRecord>> {
  const { steps } = options;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`getEdgeAttrEapIg: steps must be an integer ≥ 1, got ${steps}`);
  return edgeAttribution(model, corruptedTokens, cleanCache, corruptedCache, metric, steps, options);
}

async function edgeAttribution(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, steps: number, options: EdgeAttrOptions): Promise<PatchResult<EdgeScoreRecord>> {
  const cfg = model.cfg;
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const tokens = Array.from({ length: batch.batch }, (_, b) => Array.from(batch.ids.subarray(b * batch.pos, (b + 1) * batch.pos)));
  const graph = new EdgeGraph(cfg);
  const rows = batch.batch * batch.pos;
  const D = cfg.dModel;
  const deltas = writerDeltas(model, graph, cleanCache, corruptedCache, rows);
  const clean = finite(metric(model.forward(tokens, { startAtLayer: cfg.nLayers, residual: need(cleanCache, `blocks.${cfg.nLayers - 1}.hook_resid_post`) }).logits!), "the clean run");

  // Reader gradients: one corrupted run (EAP), or the mean over the interpolated runs (EAP-IG).
  const readerNames = readerGradientNames(cfg.nLayers);
  const gradients = graph.readers.map(() => new Float32Array(rows * D));
  const runs = steps === 0 ? 1 : steps;
  let baseline = NaN;
  const embedClean = need(cleanCache, "hook_embed");
  const embedCorrupted = need(corruptedCache, "hook_embed");
  for (let k = 1; k <= runs; k++) {
    throwIfAborted(options.signal);
    const alpha = steps === 0 ? 0 : k / steps;
    const fwdHooks = alpha === 0 ? [] : [["hook_embed", (a: Tensor) => {
      for (let i = 0; i < a.size; i++) a.data[i] = embedCorrupted.data[i]! + alpha * (embedClean.data[i]! - embedCorrupted.data[i]!);
    }] as const];
    const run = model.runWithCache(tokens, { inclBwd: true, metric, fwdHooks, namesFilter: readerNames });
    if (k === 1 && steps === 0) baseline = run.metric!;
    addReaderGradients(graph, run.cache, gradients, rows, D, 1 / runs);
    options.onProgress?.({ done: k, total: runs });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (steps > 0) baseline = finite(metric(model.forward(tokens).logits!), "the corrupted run");

  const sums = dotAll(model.engine, deltas, gradients, rows * D);
  const nR = graph.nReaders;
  const scores = new Float32Array(graph.nWriters * nR);
  for (let i = 0; i < scores.length; i++) scores[i] = graph.edgeMask[i] ? baseline + sums[i]! : 0;
  const noPath = graph.edgeMask.map((x) => 1 - x);
  const record: EdgeScoreRecord = { method: steps === 0 ? "eap" : "eap-ig", writers: graph.writers, readers: graph.readers };
  if (steps > 0) record.steps = steps;
  return new PatchResult(steps === 0 ? "edge_eap" : "edge_eap_ig", new Tensor(scores, [graph.nWriters, nR]), baseline, clean, record, noPath);
}

/** Each writer's clean − corrupted output [batch·pos·dModel]: embeddings, z_h · W_O[h] per head, mlp_out. */
export function writerDeltas(model: HookedTransformer, graph: EdgeGraph, clean: ActivationCache, corrupted: ActivationCache, rows: number): Float32Array[] {
  const diff = (name: string) => {
    const a = need(clean, name);
    const b = need(corrupted, name);
    if (a.size !== b.size) throw new Error(`${name}: clean [${a.shape}] and corrupted [${b.shape}] differ`);
    return a.data.map((x, i) => x - b.data[i]!);
  };
  const headWrites = new Map<number, Float32Array[]>();
  return graph.writerNodes.map((w) => {
    if (w.kind === "input") {
      const out = diff("hook_embed");
      if (clean.has("hook_pos_embed")) diff("hook_pos_embed").forEach((x, i) => { out[i]! += x; });
      return out;
    }
    if (w.kind === "mlp") return diff(`blocks.${w.layer}.hook_mlp_out`);
    let writes = headWrites.get(w.layer);
    if (writes === undefined) {
      writes = headOutputs(model, diff(`blocks.${w.layer}.attn.hook_z`), w.layer, rows);
      headWrites.set(w.layer, writes);
    }
    return writes[w.head]!;
  });
}

/** Each head's write dz[:, :, h] @ W_O[h] [rows, D] for one layer's dz [rows, H, d], on the engine's gemm. */
function headOutputs(model: HookedTransformer, dz: Float32Array, layer: number, rows: number): Float32Array[] {
  const { engine } = model;
  const { dModel: D, nHeads: H, dHead: d } = model.cfg;
  const pz = engine.upload(dz);
  const pw = engine.upload(model.weights.get(`blocks.${layer}.attn.W_O`)!.data); // [H * d, D]
  const out = engine.alloc(rows * D);
  try {
    return Array.from({ length: H }, (_, h) => {
      engine.kernels.gemm(pz + h * d * 4, H * d, pw + h * d * D * 4, D, out, D, 0, rows, D, d, 0, 0);
      return engine.download(out, rows * D);
    });
  } finally {
    engine.free(pz);
    engine.free(pw);
    engine.free(out);
  }
}

/** The hook gradients reader inputs are: split q/k/v inputs, hook_mlp_in, and the final residual stream. */
function readerGradientNames(L: number): string[] {
  const names: string[] = [];
  for (let l = 0; l < L; l++) names.push(`blocks.${l}.hook_q_input_grad`, `blocks.${l}.hook_k_input_grad`, `blocks.${l}.hook_v_input_grad`, `blocks.${l}.hook_mlp_in_grad`);
  names.push(`blocks.${L - 1}.hook_resid_post_grad`);
  return names;
}

/** gradients[reader] += scale · dM/dx_reader, read out of the cache's gradients. */
function addReaderGradients(graph: EdgeGraph, cache: ActivationCache, gradients: Float32Array[], rows: number, D: number, scale: number): void {
  graph.readerNodes.forEach((v, j) => {
    const out = gradients[j]!;
    if (v.kind === "logits" || v.kind === "mlp") {
      const name = v.kind === "mlp" ? `blocks.${v.layer}.hook_mlp_in_grad` : `blocks.${graph.cfg.nLayers - 1}.hook_resid_post_grad`;
      const g = cache.get(name).data;
      for (let i = 0; i < out.length; i++) out[i]! += scale * g[i]!;
      return;
    }
    const g = cache.get(`blocks.${v.layer}.hook_${v.kind}_input_grad`);
    const heads = g.shape[2]!;
    for (let r = 0; r < rows; r++) {
      const src = (r * heads + v.head) * D;
      for (let i = 0; i < D; i++) out[r * D + i]! += scale * g.data[src + i]!;
    }
  });
}

/**
 * out[i, j] = a[i] · b[j] for every pair, vectors of length n: one product on the engine,
 * a [nA, n] · bᵀ, in chunks of the vectors so a chunk of both sides stays within ~64 MiB.
 */
function dotAll(engine: Engine, a: readonly Float32Array[], b: readonly Float32Array[], n: number): Float32Array {
  const chunk = Math.max(16, Math.floor((16 * 1024 * 1024) / (a.length + b.length)));
  const pa = engine.alloc(a.length * chunk);
  const pb = engine.alloc(b.length * chunk);
  const pc = engine.alloc(a.length * b.length);
  try {
    for (let start = 0; start < n; start += chunk) {
      const len = Math.min(chunk, n - start);
      const heap = engine.heap();
      a.forEach((x, i) => heap.set(x.subarray(start, start + len), (pa >>> 2) + i * len));
      b.forEach((x, j) => heap.set(x.subarray(start, start + len), (pb >>> 2) + j * len));
      engine.kernels.gemm(pa, len, pb, len, pc, b.length, 0, a.length, b.length, len, 1, start === 0 ? 0 : 1);
    }
    return engine.download(pc, a.length * b.length);
  } finally {
    engine.free(pa);
    engine.free(pb);
    engine.free(pc);
  }
}

function need(cache: ActivationCache, name: string): Tensor {
  if (!cache.has(name)) throw new Error(`the cache has no ${name}; run runWithCache without a namesFilter (or include it)`);
  return cache.get(name);
}

function finite(value: number, run: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value} for ${run}; it must give finite numbers`);
  return value;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (signal.reason instanceof Error) throw signal.reason;
  const e = new Error("edge attribution was aborted");
  e.name = "AbortError";
  throw e;
}
