import type { Engine } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import { runBackward, storedHookNames, type StoredActivation } from "./backward.js";
import type { HookedTransformerConfig } from "./config.js";
import type { DevicePointers, TransposedPointers } from "./device-weights.js";
import type { HookFn } from "./hook-points.js";

/**
 * A metric the backward can differentiate: logits [batch, pos, dVocab] (or [batch, 1, dVocab]
 * when it declares `positions: "last"`) to one number, and `grad(logits)`, dMetric/dlogits with
 * the logits' shape. The built-in `logitDiff`, `logProb` and `normalize(...)` have one.
 *
 * @example
 * ```ts
 * // mean logit of token 42 at the last position, and its gradient
 * const metric = Object.assign((logits: Tensor) => { ... }, {
 *   positions: "last" as const,
 *   grad: (logits: Tensor) => {
 *     const g = Tensor.zeros(logits.shape);
 *     for (let b = 0; b < logits.shape[0]!; b++) g.data[b * logits.shape[2]! + 42] = 1 / logits.shape[0]!;
 *     return g;
 *   },
 * });
 * ```
 */
export type DifferentiableMetric = ((logits: Tensor) => number) & {
  positions?: "last" | "all";
  grad?: (logits: Tensor) => Tensor;
};

/** What a forward + backward pass needs from the model (its private parts, handed over by it). */
export interface GradientModel {
  readonly cfg: Readonly<HookedTransformerConfig>;
  readonly engine: Engine;
  /** The model's forward, with per-call forward hooks. */
  forward(hooks: readonly (readonly [string, HookFn])[], lastPositionOnly: boolean): Tensor;
  device(): DevicePointers;
  /** The transposed weights, packed at the first backward and kept; W_Uᵀ too when `denseUnembed`. */
  transposed(denseUnembed: boolean): TransposedPointers;
  /** W_U's columns for these tokens as the forward multiplies by them, [tokens, dModel]. */
  unembedColumns(tokens: readonly number[]): Float32Array;
}

export interface ForwardBackwardResult {
  /** The forward's logits ([batch, 1, dVocab] for a last-position metric). */
  logits: Tensor;
  /** The metric of the forward. */
  metric: number;
}

/**
 * Runs the forward keeping what the backward reads, takes the metric and its gradient, and runs
 * the backward with `bwdHooks`. `fwdHooks` are part of the run differentiated: a hook that
 * changes an activation changes the values the backward reads downstream of it (the gradient
 * passes through the hook point as if the hook's output were the activation).
 */
export function forwardBackward(model: GradientModel, options: {
  batch: number;
  pos: number;
  attentionMask: Float32Array | undefined;
  fwdHooks: readonly (readonly [string, HookFn])[];
  bwdHooks: ReadonlyMap<string, readonly HookFn[]>;
  metric: DifferentiableMetric;
  signal?: AbortSignal;
  /** The split-input hook points some forward hook watches (their copies are kept for the backward). */
  watchedSplitInputs?: ReadonlySet<string>;
}): ForwardBackwardResult {
  const { metric } = options;
  assertDifferentiable(metric);
  const { engine } = model;
  // What the backward reads, copied within the engine's memory (never through JS arrays).
  const stored = new Map<string, StoredActivation>();
  const keepAs = (name: string): HookFn => (act: Tensor) => {
    // A hook sees a view of the engine's memory; the allocation may grow (and detach) it, so copy by offset.
    const from = act.data.buffer === engine.heap().buffer ? act.data.byteOffset >>> 2 : -1;
    const copy = { ptr: engine.alloc(act.size), floats: act.size };
    stored.set(name, copy);
    const heap = engine.heap();
    if (from >= 0) heap.copyWithin(copy.ptr >>> 2, from, from + act.size);
    else heap.set(act.data, copy.ptr >>> 2);
  };
  const keep: [string, HookFn][] = [
    ...storedHookNames(model.cfg).map((name): [string, HookFn] => [name, keepAs(name)]),
    ...splitInputKeeps(options.watchedSplitInputs ?? new Set(), keepAs),
  ];
  try {
    return differentiate(model, options, stored, keep);
  } finally {
    for (const { ptr } of stored.values()) engine.free(ptr);
  }
}

function differentiate(model: GradientModel, options: Parameters<typeof forwardBackward>[1],
  stored: ReadonlyMap<string, StoredActivation>, keep: readonly [string, HookFn][]): ForwardBackwardResult {
  const { metric } = options;
  const lastOnly = metric.positions === "last";
  const logits = model.forward([...options.fwdHooks, ...keep], lastOnly);
  const value = metric(logits);
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value}; gradients need a finite number`);
  let grad = metric.grad!(logits);
  if (!(grad instanceof Tensor) || grad.shape.length !== 3 || grad.shape.some((s, i) => s !== logits.shape[i])) {
    const got = grad instanceof Tensor ? `[${grad.shape.join(", ")}]` : typeof grad;
    throw new Error(`metric.grad returned ${got}; it must return a Tensor with the logits' shape [${logits.shape.join(", ")}]`);
  }
  const bad = grad.data.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new Error(`metric.grad returned ${grad.data[bad]} at flat index ${bad} of dMetric/dlogits`);
  const cap = model.cfg.finalSoftcap;
  if (cap !== undefined) {
    // Back through the final soft-cap y = c · tanh(x / c): dy/dx = 1 - (y / c)².
    const capped = grad.data.map((g, i) => (g === 0 ? 0 : g * (1 - (logits.data[i]! / cap) ** 2)));
    grad = new Tensor(capped, grad.shape);
  }
  const gradNormLast = sparseUnembedGrad(model, metric, grad);
  runBackward(model.engine, model.cfg, model.device(), model.transposed(gradNormLast === undefined), {
    batch: options.batch, pos: options.pos, attentionMask: options.attentionMask, stored, gradLogits: grad, hooks: options.bwdHooks,
    gradNormLast, signal: options.signal,
  });
  return { logits, metric: value };
}

/**
 * Where a forward hook watches a head's split input (and may change it), the backward needs each
 * copy as that layer's heads read it: these forward hooks (run after the user's) keep the copies in
 * the engine's memory under their hook names, and the backward then recomputes each head's own
 * ln1 from its copy (see backward.ts, splitInputsBackward).
 */
function splitInputKeeps(watched: ReadonlySet<string>, keep: (name: string) => HookFn): [string, HookFn][] {
  return [...watched].map((name) => [name, keep(name)]);
}

/**
 * For a last-position metric whose gradient lives on its declared tokens only (logitDiff's two
 * answers): ln_final's output gradient [batch, dModel] = Σ over those tokens of the gradient times
 * W_U's column, instead of a product with all of W_Uᵀ. Undefined when that does not apply.
 */
function sparseUnembedGrad(model: GradientModel, metric: DifferentiableMetric & { tokens?: readonly number[] }, grad: Tensor): Float32Array | undefined {
  const tokens = metric.tokens;
  if (metric.positions !== "last" || tokens === undefined || grad.shape[1] !== 1) return undefined;
  const [B, , V] = grad.shape as [number, number, number];
  const declared = new Uint8Array(V);
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= V) return undefined;
    declared[t] = 1;
  }
  for (let i = 0; i < grad.size; i++) if (grad.data[i] !== 0 && declared[i % V] === 0) return undefined;
  const D = model.cfg.dModel;
  const columns = model.unembedColumns(tokens);
  const out = new Float32Array(B * D);
  for (let b = 0; b < B; b++) {
    tokens.forEach((t, i) => {
      const g = grad.data[b * V + t]!;
      if (g === 0) return;
      for (let j = 0; j < D; j++) out[b * D + j]! += g * columns[i * D + j]!;
    });
  }
  return out;
}

/** Throws, saying how to fix it, unless the metric can give its gradient. */
export function assertDifferentiable(metric: DifferentiableMetric | undefined): asserts metric is DifferentiableMetric {
  if (typeof metric !== "function") throw new Error("gradients need a metric: pass { metric } (e.g. logitDiff({ correct, incorrect }))");
  if (typeof metric.grad !== "function") {
    throw new Error("this metric has no gradient: add grad(logits) returning dMetric/dlogits with the logits' shape " +
      "(Object.assign(metric, { grad })), or use logitDiff, logProb or normalize(...), which have one");
  }
}
