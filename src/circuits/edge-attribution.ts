import type { Engine } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import type { Metric } from "../patching/metrics.js";
import { metricsFromResidual } from "../patching/final-metric.js";
import { PatchResult, type PerPromptRows } from "../patching/result.js";
import type { HookFn } from "../model/hook-points.js";
import { EdgeGraph } from "./edge-graph.js";
import { attentionBeforePostNorm, throughPostNorm } from "../patching/post-norm.js";
import { copiesWithinBudget, stackedMetric } from "./stacked-gradients.js";

const DEFAULT_BUDGET = 1024 * 1024 * 1024;

/** What an edge score result records: the method and the graph's axes. */
export interface EdgeScoreRecord {
  method: "eap" | "eap-ig";
  /** EAP-IG's number of interpolation steps. */
  steps?: number;
  writers: readonly string[];
  readers: readonly string[];
}

export interface EdgeAttrOptions {
  /** Called after each forward + backward pass with the runs (EAP-IG: steps) done so far. */
  onProgress?: (progress: { done: number; total: number }) => void;
  /**
   * Engine memory one forward + backward pass may take (default 1 GiB): EAP-IG stacks as many of
   * its steps along the batch axis as fit, in as few passes as that allows.
   */
  memoryBudgetBytes?: number;
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
 * With a metric that has `perPrompt` (the built-in ones) the result keeps each prompt's own scores
 * (`perPrompt`, [batch, n_writers, n_readers]) from the same passes: batch rows never mix, so row
 * b's gradient of the mean metric is 1/B of prompt b's own, and prompt b's score of an edge is
 * `M_b(corrupted) + B · Σ over row b of (a_u(clean) - a_u(corrupted)) · dM/dx_v`.
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
 * The steps are stacked along the batch axis, as many per pass as `memoryBudgetBytes` allows.
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
  const clean = finalMetrics(model, tokens, cleanCache, metric, "the clean run");

  // Reader gradients: one corrupted run (EAP), or the mean over the interpolated runs (EAP-IG),
  // stacked `copies` to a pass along the batch axis, summed in the engine's memory as
  // [n_readers, rows · dModel] (the right operand of the final product).
  const runs = steps === 0 ? 1 : steps;
  const budget = options.memoryBudgetBytes ?? DEFAULT_BUDGET;
  if (!(budget > 0)) throw new Error(`memoryBudgetBytes must be positive, got ${budget}`);
  const n = rows * D;
  const gradientBytes = 4 * graph.nReaders * n;
  const perPass = copiesWithinBudget(cfg, batch.batch, batch.pos, metric.positions === "last", runs, budget - gradientBytes, gradientBytes);
  let baseline = NaN;
  const embedClean = need(cleanCache, "hook_embed");
  const embedCorrupted = need(corruptedCache, "hook_embed");
  const { engine } = model;
  const gradients = engine.alloc(graph.nReaders * n);
  let sums: Float32Array;
  try {
    engine.heap().fill(0, gradients >>> 2, (gradients >>> 2) + graph.nReaders * n);
    for (let first = 1; first <= runs; first += perPass) {
      throwIfAborted(options.signal);
      const copies = Math.min(perPass, runs - first + 1);
      const alphas = Array.from({ length: copies }, (_, k) => steps === 0 ? 0 : (first + k) / steps);
      const fwdHooks = steps === 0 ? [] : [["hook_embed", (a: Tensor) => {
        const size = embedClean.size;
        alphas.forEach((alpha, k) => {
          for (let i = 0; i < size; i++) a.data[k * size + i] = embedCorrupted.data[i]! + alpha * (embedClean.data[i]! - embedCorrupted.data[i]!);
        });
      }] as const];
      const stacked = Array.from({ length: copies }, () => tokens).flat();
      // Each copy's metric weighs 1 / runs, so the sums over copies and passes are the mean gradient.
      const bwdHooks = readerGradientHooks(engine, graph, gradients, rows, D);
      const run = model.runWithHooks(stacked, { metric: stackedMetric(metric, copies, batch.batch, 1 / runs), fwdHooks, bwdHooks });
      if (steps === 0) baseline = run.metric!;
      options.onProgress?.({ done: first + copies - 1, total: runs });
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // One product per prompt (its rows · D slice): the per-prompt scores, summed for the score.
    sums = dotAllByPrompt(engine, deltas, gradients, graph.nReaders, n, batch.batch);
  } finally {
    engine.free(gradients);
  }
  const corrupted = finalMetrics(model, tokens, corruptedCache, metric, "the corrupted run");
  if (steps > 0) baseline = corrupted.value;

  const nR = graph.nReaders;
  const nE = graph.nWriters * nR;
  const B = batch.batch;
  const scores = new Float32Array(nE);
  const promptRows = corrupted.perPrompt === undefined || clean.perPrompt === undefined ? undefined : new Float32Array(B * nE);
  for (let i = 0; i < nE; i++) {
    if (!graph.edgeMask[i]) continue;
    let total = 0;
    for (let b = 0; b < B; b++) {
      total += sums[b * nE + i]!;
      if (promptRows !== undefined) promptRows[b * nE + i] = corrupted.perPrompt![b]! + B * sums[b * nE + i]!;
    }
    scores[i] = baseline + total;
  }
  const noPath = graph.edgeMask.map((x) => 1 - x);
  const record: EdgeScoreRecord = { method: steps === 0 ? "eap" : "eap-ig", writers: graph.writers, readers: graph.readers };
  if (steps > 0) record.steps = steps;
  const perPrompt: PerPromptRows | undefined = promptRows === undefined ? undefined
    : { scores: new Tensor(promptRows, [B, graph.nWriters, nR]), baseline: corrupted.perPrompt!, clean: clean.perPrompt! };
  return new PatchResult(steps === 0 ? "edge_eap" : "edge_eap_ig", new Tensor(scores, [graph.nWriters, nR]), baseline, clean.value, record,
    noPath, perPrompt);
}

/** A cached run's metric and (where the metric has `perPrompt`) each prompt's, from its final residual stream. */
function finalMetrics(model: HookedTransformer, tokens: number[][], cache: ActivationCache, metric: Metric, run: string) {
  const name = `blocks.${model.cfg.nLayers - 1}.hook_resid_post`;
  return metricsFromResidual(model, tokens, need(cache, name), metric, run);
}

/**
 * Each writer's clean − corrupted output [batch·pos·dModel]: embeddings, z_h · W_O[h] per head,
 * mlp_out. With post-norms (Gemma-2) a head's is the change of its layer's post-normed write when
 * only that head is switched to clean (see post-norm.ts); mlp_out is already post-normed.
 */
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
      if (model.cfg.postNorms) {
        const pre = attentionBeforePostNorm(model, w.layer, need(corrupted, `blocks.${w.layer}.attn.hook_z`).data, rows);
        writes = writes.map((write) => throughPostNorm(model, w.layer, pre, write, rows));
      }
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

/**
 * Backward hooks that add each reader's input gradient into its row of `gradients` (engine
 * memory, [n_readers, rows · D]), summed over the stacked copies of the batch (the gradient's batch
 * axis is copies × batch): split q/k/v inputs (one reader per head), hook_mlp_in, and the final
 * residual stream (the logits).
 */
function readerGradientHooks(engine: Engine, graph: EdgeGraph, gradients: number, rows: number, D: number): [string, HookFn][] {
  const L = graph.cfg.nLayers;
  const byHook = new Map<string, { reader: number; head: number }[]>();
  graph.readerNodes.forEach((v, j) => {
    const name = v.kind === "logits" ? `blocks.${L - 1}.hook_resid_post` : v.kind === "mlp" ? `blocks.${v.layer}.hook_mlp_in`
      : `blocks.${v.layer}.hook_${v.kind}_input`;
    const list = byHook.get(name) ?? [];
    list.push({ reader: j, head: v.kind === "logits" || v.kind === "mlp" ? 0 : v.head });
    byHook.set(name, list);
  });
  const add = engine.kernels.add;
  return [...byHook].map(([name, readers]) => [name, (g: Tensor) => {
    // g is a view of the engine's memory: add from it in place.
    const at = g.data.byteOffset;
    const heads = g.shape.length === 4 ? g.shape[2]! : 1;
    const copies = g.shape[0]! * g.shape[1]! / rows;
    for (const { reader, head } of readers) {
      const out = gradients + reader * rows * D * 4;
      for (let c = 0; c < copies; c++) {
        if (heads === 1) {
          add(out, at + c * rows * D * 4, out, rows * D);
          continue;
        }
        for (let r = 0; r < rows; r++) add(out + r * D * 4, at + ((c * rows + r) * heads + head) * D * 4, out + r * D * 4, D);
      }
    }
  }]);
}

/**
 * Per prompt p, out[p, i, j] = a[i] · b[j] over prompt p's slice (elements [p · n/prompts, (p+1) ·
 * n/prompts)) of vectors of length n, b's already in the engine's memory as [nB, n]: one product
 * a [nA, slice] · bᵀ per prompt, in chunks of a's vectors (~64 MiB at a time).
 */
function dotAllByPrompt(engine: Engine, a: readonly Float32Array[], b: number, nB: number, n: number, prompts: number): Float32Array {
  const slice = n / prompts;
  const chunk = Math.max(16, Math.floor((16 * 1024 * 1024) / a.length));
  const pa = engine.alloc(a.length * Math.min(chunk, slice));
  const pc = engine.alloc(prompts * a.length * nB);
  try {
    for (let p = 0; p < prompts; p++) {
      const out = pc + p * a.length * nB * 4;
      for (let start = p * slice; start < (p + 1) * slice; start += chunk) {
        const len = Math.min(chunk, (p + 1) * slice - start);
        const heap = engine.heap();
        a.forEach((x, i) => heap.set(x.subarray(start, start + len), (pa >>> 2) + i * len));
        engine.kernels.gemm(pa, len, b + start * 4, n, out, nB, 0, a.length, nB, len, 1, start === p * slice ? 0 : 1);
      }
    }
    return engine.download(pc, prompts * a.length * nB);
  } finally {
    engine.free(pa);
    engine.free(pc);
  }
}

function need(cache: ActivationCache, name: string): Tensor {
  if (!cache.has(name)) throw new Error(`the cache has no ${name}; run runWithCache without a namesFilter (or include it)`);
  return cache.get(name);
}


function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (signal.reason instanceof Error) throw signal.reason;
  const e = new Error("edge attribution was aborted");
  e.name = "AbortError";
  throw e;
}
