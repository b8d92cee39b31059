import { Tensor } from "../engine/tensor.js";

/**
 * A patching metric: logits [batch, pos, dVocab] to one number. A metric may declare
 * `positions: "last"` when it reads only the last position of each row; a sweep then
 * unembeds only that position and hands it logits [batch, 1, dVocab]. A last-position metric
 * may also declare `tokens`, the only vocabulary entries (logit columns) it reads: a planned
 * sweep then unembeds only those, and the other entries of the logits it hands over are NaN
 * (so a metric that reads an undeclared token fails loudly instead of reading a wrong value).
 * A metric with `grad` (dMetric/dlogits, the logits' shape) can be differentiated: gradients,
 * attribution patching. The built-in metrics have one.
 */
export type Metric = ((logits: Tensor) => number) & {
  positions?: "last" | "all";
  tokens?: readonly number[];
  grad?: (logits: Tensor) => Tensor;
  /**
   * The metric of each batch row ([batch] values; the metric is their mean): what a sweep keeps
   * per prompt (`PatchResult.perPrompt`). The built-in metrics have it.
   */
  perPrompt?: (logits: Tensor) => Float64Array;
};

/**
 * Mean over the batch of `logits[b, last, correct[b]] - logits[b, last, incorrect[b]]`:
 * the logit difference TransformerLens demos use. Unchanged by weight processing.
 *
 * @example
 * ```ts
 * const metric = logitDiff({ correct: [42, 78], incorrect: [47, 2] });
 * metric(model.forward(tokens).logits!);
 * ```
 */
export function logitDiff(answers: { correct: readonly number[]; incorrect: readonly number[] }): Metric {
  const { correct, incorrect } = answers;
  if (correct.length !== incorrect.length) {
    throw new Error(`logitDiff: ${correct.length} correct but ${incorrect.length} incorrect answers; give one of each per row`);
  }
  const perPrompt = (logits: Tensor) => {
    const [B, P, V] = checkLogits("logitDiff", logits, correct.length);
    const out = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      const row = (b * P + P - 1) * V;
      out[b] = logits.data[row + checkId("logitDiff", correct[b]!, V)]! - logits.data[row + checkId("logitDiff", incorrect[b]!, V)]!;
    }
    return out;
  };
  const fn = (logits: Tensor) => mean(perPrompt(logits));
  // d/dlogits: +1/B at each row's correct answer, -1/B at its incorrect one (last position).
  const grad = (logits: Tensor) => {
    const [B, P, V] = checkLogits("logitDiff", logits, correct.length);
    const g = new Float32Array(B * P * V);
    for (let b = 0; b < B; b++) {
      const row = (b * P + P - 1) * V;
      g[row + checkId("logitDiff", correct[b]!, V)]! += 1 / B;
      g[row + checkId("logitDiff", incorrect[b]!, V)]! -= 1 / B;
    }
    return new Tensor(g, [B, P, V]);
  };
  return Object.assign(fn, { positions: "last" as const, tokens: [...new Set([...correct, ...incorrect])], grad, perPrompt });
}

/** Mean over the batch of the log-probability of `correct[b]` at the last position. */
export function logProb(answers: { correct: readonly number[] }): Metric {
  const { correct } = answers;
  const perPrompt = (logits: Tensor) => {
    const [B, P, V] = checkLogits("logProb", logits, correct.length);
    const out = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      const row = logits.data.subarray((b * P + P - 1) * V, (b * P + P) * V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) max = Math.max(max, row[i]!);
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(row[i]! - max);
      out[b] = row[checkId("logProb", correct[b]!, V)]! - max - Math.log(z);
    }
    return out;
  };
  const fn = (logits: Tensor) => mean(perPrompt(logits));
  // d/dlogits of log softmax(x)[c] is onehot(c) - softmax(x), over B rows: at each row's last position.
  const grad = (logits: Tensor) => {
    const [B, P, V] = checkLogits("logProb", logits, correct.length);
    const g = new Float32Array(B * P * V);
    for (let b = 0; b < B; b++) {
      const at = (b * P + P - 1) * V;
      const row = logits.data.subarray(at, at + V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) max = Math.max(max, row[i]!);
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(row[i]! - max);
      for (let i = 0; i < V; i++) g[at + i] = -Math.exp(row[i]! - max) / z / B;
      g[at + checkId("logProb", correct[b]!, V)]! += 1 / B;
    }
    return new Tensor(g, [B, P, V]);
  };
  return Object.assign(fn, { positions: "last" as const, grad, perPrompt });
}

/**
 * Rescales a metric so the corrupted run scores 0 and the clean run 1.
 * @example
 * ```ts
 * const m = normalize(logitDiff(answers), { clean: 4.67, corrupted: -1.99 });
 * ```
 */
export function normalize(metric: Metric, baselines: { clean: number; corrupted: number }): Metric {
  const { clean, corrupted } = baselines;
  if (!Number.isFinite(clean) || !Number.isFinite(corrupted) || clean === corrupted) {
    throw new Error(`normalize: clean (${clean}) and corrupted (${corrupted}) must be finite and differ`);
  }
  const fn = (logits: Tensor) => (metric(logits) - corrupted) / (clean - corrupted);
  const inner = metric.grad;
  const grad = inner === undefined ? undefined : (logits: Tensor) => {
    const g = inner(logits).clone();
    for (let i = 0; i < g.data.length; i++) g.data[i] = g.data[i]! / (clean - corrupted);
    return g;
  };
  const inner2 = metric.perPrompt;
  const perPrompt = inner2 === undefined ? undefined : (logits: Tensor) => inner2(logits).map((x) => (x - corrupted) / (clean - corrupted));
  return Object.assign(fn, { positions: metric.positions, tokens: metric.tokens, grad, perPrompt });
}

/** The mean of xs, summed in order. */
function mean(xs: Float64Array): number {
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

function checkLogits(name: string, logits: Tensor, batch: number): [number, number, number] {
  if (logits.ndim !== 3) throw new Error(`${name}: expected logits [batch, pos, dVocab], got [${logits.shape.join(", ")}]`);
  const [B, P, V] = logits.shape as [number, number, number];
  if (B !== batch) throw new Error(`${name}: logits have batch ${B} but ${batch} answers were given`);
  return [B, P, V];
}

function checkId(name: string, id: number, V: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${name}: answer id ${id} is out of range [0, ${V})`);
  return id;
}
