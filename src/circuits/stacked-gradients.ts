// Several gradient runs of the same prompts stacked along the batch axis (EAP-IG's interpolation
// steps): a metric over the stacked logits, and how many copies fit a memory budget.
import { Tensor } from "../engine/tensor.js";
import { gradientMemory } from "../model/activation-sizes.js";
import type { HookedTransformerConfig } from "../model/config.js";
import { assertDifferentiable } from "../model/gradients.js";
import type { Metric } from "../patching/metrics.js";

/**
 * `metric` over `copies` stacked copies of a batch of `batch` prompts: logits [copies · batch, ...]
 * → weight · Σ_k metric(copy k) (weight 1/copies by default: the mean), with its gradient (each
 * copy's own, times weight) and the metric's `positions` and `tokens`, so a stacked backward gives
 * every copy the gradient of its own metric, times weight.
 */
export function stackedMetric(metric: Metric, copies: number, batch: number, weight = 1 / copies): Metric & { grad: (logits: Tensor) => Tensor } {
  assertDifferentiable(metric);
  const grad = metric.grad as (logits: Tensor) => Tensor;
  const copyOf = (logits: Tensor, k: number) => {
    if (logits.shape[0] !== copies * batch) throw new Error(`stacked logits have ${logits.shape[0]} rows, expected ${copies} × ${batch}`);
    const size = logits.size / copies;
    return new Tensor(logits.data.subarray(k * size, (k + 1) * size), [batch, ...logits.shape.slice(1)]);
  };
  const fn = (logits: Tensor) => {
    let sum = 0;
    for (let k = 0; k < copies; k++) sum += metric(copyOf(logits, k));
    return sum * weight;
  };
  return Object.assign(fn, {
    positions: metric.positions, tokens: metric.tokens,
    grad: (logits: Tensor) => {
      const out = new Float32Array(logits.size);
      const size = logits.size / copies;
      for (let k = 0; k < copies; k++) {
        const g = grad(copyOf(logits, k));
        if (g.size !== size) throw new Error(`metric.grad returned ${g.size} values for a copy of ${size} logits`);
        for (let i = 0; i < size; i++) out[k * size + i] = g.data[i]! * weight;
      }
      return new Tensor(out, logits.shape);
    },
  });
}

/**
 * How many copies of a [batch, pos] gradient run (reader inputs hooked) one pass can stack within
 * `budgetBytes` of engine memory, at most `wanted`, besides `heldBytes` the caller holds through
 * the passes; throws when not even one fits.
 */
export function copiesWithinBudget(cfg: HookedTransformerConfig, batch: number, pos: number, lastPositionOnly: boolean,
  wanted: number, budgetBytes: number, heldBytes = 0): number {
  const bytes = (copies: number) => gradientMemory(cfg, { batch: copies * batch, pos, lastPositionOnly, readerInputs: true }).peak;
  if (bytes(1) > budgetBytes) {
    throw new Error(`one gradient run of ${batch} × ${pos} tokens needs about ${bytes(1) + heldBytes} bytes` +
      `${heldBytes > 0 ? ` (${heldBytes} of them for the summed gradients)` : ""}, more than memoryBudgetBytes ` +
      `(${budgetBytes + heldBytes}); raise the budget or score fewer prompts at once`);
  }
  let copies = 1;
  while (copies < wanted && bytes(copies + 1) <= budgetBytes) copies++;
  return copies;
}
