// The metric of a run from its cached final residual stream: only ln_final and the unembedding run
// (at the last position when that is all the metric reads).
import type { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import type { Metric } from "./metrics.js";

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
  const { logits } = model.forward(tokens, { startAtLayer: model.cfg.nLayers, residual, lastPositionOnly: metric.positions === "last" });
  const value = metric(logits!);
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value} for ${run}; it must give finite numbers`);
  return value;
}
