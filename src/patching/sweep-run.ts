// Running a sweep: the naive loop's one forward per patch, or the planned stacked passes from the
// corrupted run; the metric of every copy, progress reports and cancellation between passes.
import { Tensor } from "../engine/tensor.js";
import type { HookFn, HookPoint } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { Metric } from "./metrics.js";
import { planSweepPatches, summarize } from "./planner.js";
import type { CorruptedRun, Patch, PatchEdit, PlannedPass, SweepOptions } from "./sweep-types.js";
import { unembedColumns } from "./unembed-columns.js";

/**
 * Runs every patch on the corrupted tokens and writes metric(patched logits) to
 * `scores[patch.index]`, and, given `perPrompt` ([batch, scores.length]) and a metric with
 * `perPrompt`, each prompt's value to `perPrompt[b * scores.length + patch.index]`.
 */
export async function runSweep(
  model: HookedTransformer,
  tokens: readonly (readonly number[])[],
  patches: readonly Patch[],
  metric: Metric,
  corrupted: CorruptedRun,
  scores: Float32Array,
  options: SweepOptions = {},
  perPrompt?: Float32Array,
): Promise<void> {
  const plan = planSweepPatches(model, tokens, patches, metric, corrupted, options);
  const started = Date.now();
  let done = 0;
  const finished = new Uint8Array(scores.length); // 1 where scores[i] holds a finished run
  const report = async (n: number) => {
    done += n;
    const elapsedMs = Date.now() - started;
    options.onProgress?.({ done, total: patches.length, elapsedMs, etaMs: done > 0 ? (elapsedMs / done) * (patches.length - done) : undefined });
    await yieldToEventLoop();
    if (options.signal?.aborted) options.onPartial?.({ scores: scores.slice(), done: finished.slice() });
    throwIfAborted(options.signal);
  };
  throwIfAborted(options.signal);
  options.onPlan?.(summarize(plan));

  const record = (patch: Patch, logits: Tensor) => {
    const value = metric(logits);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      const hint = metric.tokens !== undefined && plan.strategy === "planned"
        ? ` (it declares tokens [${metric.tokens.join(", ")}], so every other token's logit it was given is NaN)` : "";
      throw new Error(`the metric returned ${value} for patch ${patch.label}; a sweep needs finite numbers${hint}`);
    }
    scores[patch.index] = value;
    finished[patch.index] = 1;
    if (perPrompt !== undefined) {
      const values = promptValues(metric, logits, tokens.length, `patch ${patch.label}`);
      values.forEach((v, b) => { perPrompt[b * scores.length + patch.index] = v; });
    }
  };

  if (plan.strategy === "naive") {
    for (const patch of patches) {
      patch.prepare?.();
      const fwdHooks = patch.edits.map((e) => [e.hook, ((act: Tensor, hook: HookPoint) => e.apply(act, hook)) as HookFn] as const);
      record(patch, model.forward(tokens, { fwdHooks }).logits!);
      await report(1);
    }
    return;
  }

  for (const pass of plan.passes) {
    for (const patch of pass.patches) patch.prepare?.();
    const logits = runStacked(model, tokens, pass, corrupted);
    const perCopy = logits.size / pass.patches.length;
    const copyShape = [tokens.length, ...logits.shape.slice(1)];
    pass.patches.forEach((patch, k) => record(patch, new Tensor(logits.data.subarray(k * perCopy, (k + 1) * perCopy), copyShape)));
    await report(pass.patches.length);
  }
}

/** One forward pass over K stacked copies of the corrupted batch, copy k carrying patch k. */
function runStacked(model: HookedTransformer, tokens: readonly (readonly number[])[], pass: PlannedPass, corrupted: CorruptedRun): Tensor {
  const B = tokens.length;
  const P = tokens[0]!.length;
  const { startLayer, startPos: s, patches } = pass;
  const K = patches.length;
  const stackedTokens = Array.from({ length: K * B }, (_, r) => tokens[r % B]!);
  let residual: Tensor | undefined;
  if (startLayer > 0 || pass.afterAttention) {
    // The corrupted residual stream at positions [s, P) of each row, repeated for each copy; after
    // the attention, plus each copy's change to it.
    const r = pass.afterAttention ? corrupted.residMid!(startLayer)! : corrupted.residPre(startLayer);
    const D = r.shape[2]!;
    const n = P - s;
    const data = new Float32Array(K * B * n * D);
    for (let row = 0; row < K * B; row++) {
      const b = row % B;
      data.set(r.data.subarray((b * P + s) * D, (b + 1) * P * D), row * n * D);
    }
    if (pass.afterAttention) {
      patches.forEach((patch, k) => {
        const delta = patch.attnOutDelta!.compute(s); // [B, n, D]
        const o = k * B * n * D;
        for (let i = 0; i < delta.length; i++) data[o + i]! += delta[i]!;
      });
    }
    residual = new Tensor(data, [K * B, n, D]);
  }
  // One hook per hook name; it hands each copy its own [B, ...] slice.
  const byHook = new Map<string, [number, PatchEdit][]>();
  // A pass after the attention starts past the edits of its start layer's attention (they do not
  // fire: attnOutDelta stands for them); later ones, such as that layer's hook_mlp_in, do.
  patches.forEach((patch, k) => {
    for (const edit of patch.edits) {
      const list = byHook.get(edit.hook) ?? [];
      list.push([k, edit]);
      byHook.set(edit.hook, list);
    }
  });
  const fwdHooks = [...byHook].map(([hook, edits]) => [hook, ((act: Tensor, point: HookPoint) => {
    const per = act.size / K;
    const shape = [B, ...act.shape.slice(1)];
    for (const [k, edit] of edits) edit.apply(new Tensor(act.data.subarray(k * per, (k + 1) * per), shape), point);
  }) as HookFn] as const);
  const keptPrefix = s > 0
    ? { length: s, keysValues: (layer: number) => corrupted.keysValues(layer)! }
    : undefined;
  const columns = pass.unembedTokens;
  if (columns === undefined) {
    return model.forward(stackedTokens, {
      startAtLayer: startLayer, startAfterAttention: pass.afterAttention, residual, fwdHooks, lastPositionOnly: pass.lastPositionOnly,
      keptPrefix, pruneLastLayer: pass.pruneLastLayer,
    }).logits!;
  }
  // Only the metric's tokens are unembedded, from the final norm's output at each row's last position.
  const D = model.cfg.dModel;
  const last = new Float32Array(K * B * D);
  const readLast = (act: Tensor) => {
    const n = act.shape[1]!;
    for (let row = 0; row < K * B; row++) last.set(act.data.subarray(((row + 1) * n - 1) * D, (row + 1) * n * D), row * D);
  };
  model.forward(stackedTokens, {
    startAtLayer: startLayer, startAfterAttention: pass.afterAttention, residual,
    fwdHooks: [...fwdHooks, ["ln_final.hook_normalized", readLast]], returnType: "none",
    lastPositionOnly: true, keptPrefix, pruneLastLayer: pass.pruneLastLayer,
  });
  return unembedColumns(model, last, K * B, columns);
}

/** metric.perPrompt(logits), checked: one finite number per prompt. */
export function promptValues(metric: Metric, logits: Tensor, batch: number, run: string): Float64Array {
  if (typeof metric.perPrompt !== "function") throw new Error("the metric has no perPrompt(logits): per-prompt results need one value per batch row");
  const values: unknown = metric.perPrompt(logits);
  if (!(values instanceof Float64Array || values instanceof Float32Array || Array.isArray(values)) || values.length !== batch) {
    const got = values === null || typeof values !== "object" ? String(values) : `${(values as { length?: number }).length} values`;
    throw new Error(`metric.perPrompt returned ${got} for ${run}; it must give one number per prompt (${batch})`);
  }
  const list = Array.from(values as ArrayLike<unknown>);
  const bad = list.findIndex((x) => typeof x !== "number" || !Number.isFinite(x));
  if (bad >= 0) throw new Error(`metric.perPrompt returned ${String(list[bad])} for prompt ${bad} of ${run}; it must give finite numbers`);
  return Float64Array.from(list as number[]);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : makeAbortError();
  }
}

function makeAbortError(): Error {
  if (typeof DOMException === "function") return new DOMException("the sweep was aborted", "AbortError");
  const e = new Error("the sweep was aborted");
  e.name = "AbortError";
  return e;
}
