// What a direct path sweep reads of the clean and corrupted runs' caches: activations checked
// against the corrupted prompts, what the planner reuses of the corrupted run, the attention
// inputs of a destination layer, and the two runs' unpatched metrics.
import type { Tensor } from "../../engine/tensor.js";
import type { ActivationCache } from "../../model/activation-cache.js";
import { checkBatch, needCached } from "../cache-access.js";
import { memoize } from "../memo.js";
import { metricsFromResidual } from "../final-metric.js";
import type { Metric } from "../metrics.js";
import type { CorruptedRun } from "../sweep-types.js";
import type { DirectPathSetup } from "./setup.js";

/**
 * The corrupted run's attention of one layer as it was computed, flat: q, rotQ, z
 * [batch, pos, nHeads, dHead]; k, rotK, v [batch, pos, nKeyValueHeads, dHead]. rotQ and rotK are
 * after rotary (q and k themselves on a model without it).
 */
export interface AttentionInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  z: Float32Array;
  rotQ: Float32Array;
  rotK: Float32Array;
}

/** The cached activations a direct path sweep reads. */
export interface DirectPathCaches {
  /** A clean activation; throws when it is not cached or does not fit the corrupted prompts. */
  clean(name: string): Tensor;
  /** The same for the corrupted run. */
  corrupted(name: string): Tensor;
  /** What a planned sweep reuses of the corrupted run. */
  corruptedRun: CorruptedRun;
  /**
   * A layer's corrupted attention inputs, when all are cached with their full shapes: the
   * destination-layer shortcut (attn-out-delta.ts) needs them, and is not offered otherwise.
   */
  attentionInputs(layer: number): AttentionInputs | undefined;
  /**
   * The metric of the unpatched corrupted run (`baseline`) and of the clean run, from their final
   * residual streams, and each prompt's where the metric gives them.
   */
  baselines(): { baseline: number; clean: number; perPrompt?: { baseline: Float64Array; clean: Float64Array } };
}

/**
 * Reads the two caches for a sweep over `setup`'s prompts. The final residual streams the
 * baselines need are checked now, so a missing activation is an error before any work.
 */
export function directPathCaches(setup: DirectPathSetup, cleanCache: ActivationCache, corruptedCache: ActivationCache,
  metric: Metric): DirectPathCaches {
  const { model, batch: B, pos: P, tokens } = setup;
  const { nLayers: L, nHeads: H, nKeyValueHeads: Hk, dHead: d, dModel: D } = model.cfg;
  const rotary = model.cfg.positionalEmbeddingType === "rotary";
  const clean = (name: string) => checkBatch(needCached(cleanCache, "cleanCache", name), name, B, P);
  const corrupted = (name: string) => checkBatch(needCached(corruptedCache, "corruptedCache", name), name, B, P);
  const fitting = (name: string, shape: readonly number[]) => cachedFitting(corruptedCache, name, shape);

  const attentionInputs = memoize((layer: number): AttentionInputs | undefined => {
    const a = `blocks.${layer}.attn.`;
    const q = fitting(`${a}hook_q`, [B, P, H, d]);
    const k = fitting(`${a}hook_k`, [B, P, Hk, d]);
    const v = fitting(`${a}hook_v`, [B, P, Hk, d]);
    const z = fitting(`${a}hook_z`, [B, P, H, d]);
    const rotQ = rotary ? fitting(`${a}hook_rot_q`, [B, P, H, d]) : q;
    const rotK = rotary ? fitting(`${a}hook_rot_k`, [B, P, Hk, d]) : k;
    const ok = q && k && v && z && rotQ && rotK;
    return ok ? { q: q.data, k: k.data, v: v.data, z: z.data, rotQ: rotQ.data, rotK: rotK.data } : undefined;
  });

  // Keys after rotary, where the model has it: what attention reads, and what a kept prefix reuses.
  const keysValues = (layer: number) => {
    const k = fitting(`blocks.${layer}.attn.${rotary ? "hook_rot_k" : "hook_k"}`, [B, P, Hk, d]);
    const v = fitting(`blocks.${layer}.attn.hook_v`, [B, P, Hk, d]);
    return k && v ? { k, v } : undefined;
  };

  const last = `blocks.${L - 1}.hook_resid_post`;
  const finalMetrics = (residual: Tensor, run: string) => metricsFromResidual(model, tokens, residual, metric, run);
  // Checked now, so a missing activation is an error before any work; a run evaluates the baselines, a plan does not.
  corrupted(last);
  clean(last);

  return {
    clean,
    corrupted,
    corruptedRun: {
      residPre: (l) => corrupted(`blocks.${l}.hook_resid_pre`),
      hasKeysValues: (l) => keysValues(l) !== undefined,
      keysValues,
      // Attention and MLP in parallel: no block has a resid_mid to start after.
      residMid: (l) => (model.cfg.parallelAttnMlp ? undefined : fitting(`blocks.${l}.hook_resid_mid`, [B, P, D])),
    },
    attentionInputs,
    baselines: () => {
      const b = finalMetrics(corrupted(last), "the corrupted run");
      const c = finalMetrics(clean(last), "the clean run");
      return {
        baseline: b.value, clean: c.value,
        ...(b.perPrompt && c.perPrompt ? { perPrompt: { baseline: b.perPrompt, clean: c.perPrompt } } : {}),
      };
    },
  };
}

/** A cached activation of exactly this shape, or undefined. */
function cachedFitting(cache: ActivationCache, name: string, shape: readonly number[]): Tensor | undefined {
  if (!cache.has(name)) return undefined;
  const t = cache.get(name);
  return t.ndim === shape.length && t.shape.every((x, i) => x === shape[i]) ? t : undefined;
}
