// The metric of a run from its cached final residual stream: only ln_final and the unembedding run
// (at the last position when that is all the metric reads).
import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import type { Metric } from "./metrics.js";
import type { PerPromptRows } from "./result.js";
import { promptValues } from "./sweep-run.js";

/**
 * metric(logits) of the run `cache` holds (its `blocks.{L-1}.hook_resid_post`), recomputing
 * ln_final and the unembedding only; `run` names it in the error for a non-finite metric.
 */
export function metricFromCache(model: HookedTransformer, tokens: TokenIds, cache: ActivationCache, metric: Metric, run: string): number {
  const name = `blocks.${model.cfg.nLayers - 1}.hook_resid_post`;
  if (!cache.has(name)) throw new Error(`the cache of ${run} has no ${name}; run runWithCache without a namesFilter (or include it)`);
  return metricFromResidual(model, tokens, cache.get(name), metric, run);
}

/** metric(logits) from a final residual stream [batch, pos, dModel]; see {@link metricFromCache}. */
export function metricFromResidual(model: HookedTransformer, tokens: TokenIds, residual: Tensor, metric: Metric, run: string): number {
  return metricsFromResidual(model, tokens, residual, metric, run).value;
}

/** The metric and, where the metric has `perPrompt`, each prompt's value, from a final residual stream. */
export function metricsFromResidual(model: HookedTransformer, tokens: TokenIds, residual: Tensor, metric: Metric, run: string):
  { value: number; perPrompt: Float64Array | undefined } {
  const { logits } = model.forward(tokens, { startAtLayer: model.cfg.nLayers, residual, lastPositionOnly: metric.positions === "last" });
  return metricsOf(metric, logits!, run);
}

/** The metric of logits and, where the metric has `perPrompt`, each prompt's value. */
export function metricsOf(metric: Metric, logits: Tensor, run: string): { value: number; perPrompt: Float64Array | undefined } {
  const value = metric(logits);
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value} for ${run}; it must give finite numbers`);
  return { value, perPrompt: metric.perPrompt === undefined ? undefined : promptValues(metric, logits, logits.shape[0]!, run) };
}

/**
 * The per-prompt rows of a sweep's result, when its metric gives them: the buffer runSweep fills
 * ([batch, n]) and, once it has, the rows.
 */
export function perPromptBuffer(metric: Metric, batch: number, n: number) {
  if (metric.perPrompt === undefined) return undefined;
  const scores = new Float32Array(batch * n);
  return {
    scores,
    rows: (shape: readonly number[], baseline: Float64Array | undefined, clean: Float64Array | undefined): PerPromptRows | undefined =>
      baseline === undefined || clean === undefined ? undefined : { scores: new Tensor(scores, [batch, ...shape]), baseline, clean },
  };
}
