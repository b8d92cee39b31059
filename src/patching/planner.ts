import { Tensor } from "../engine/tensor.js";
import type { HookFn } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { Metric } from "./metrics.js";

/** One change to an activation of the corrupted run. */
export interface PatchEdit {
  /** Full hook name, e.g. `blocks.2.attn.hook_k`. */
  hook: string;
  /** Edits, in place, this patch's copy of the activation: [batch, ...] for the corrupted prompts. */
  apply(activation: Tensor): void;
}

/** One patched run of a sweep. */
export interface Patch {
  /** Flat index of this run's score in the result. */
  index: number;
  /** Names the patch in errors and progress, e.g. `src (0, 1) -> dst (2, 3) k`. */
  label: string;
  /** The first block the patch can change; a planned sweep starts there from the corrupted residual stream. */
  startLayer: number;
  edits: PatchEdit[];
  /**
   * Runs before the forward pass that carries this patch, outside any hook: the place to
   * compute patch values on the engine (allocating inside a hook could grow the memory and
   * detach the activation views the hook holds).
   */
  prepare?: () => void;
}

export interface SweepProgress {
  /** Patched runs finished. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Estimated time to finish, once a run has finished. */
  etaMs: number | undefined;
}

/** Options every sweep accepts. */
export interface SweepOptions {
  /**
   * `planned` (default): patches are grouped by the layer they start at, stacked along the
   * batch axis and run from the cached corrupted residual stream at that layer, unembedding
   * only the positions the metric reads. `naive`: one full forward pass per patch, as
   * TransformerLens runs it; kept as the reference the planned sweep is tested against.
   */
  strategy?: "planned" | "naive";
  /** Upper bound on the activation memory of one stacked pass (default 256 MiB). */
  memoryBudgetBytes?: number;
  /** Called after each forward pass of the sweep. */
  onProgress?: (progress: SweepProgress) => void;
  /** Cancels the sweep: the promise rejects with an AbortError within one forward pass. */
  signal?: AbortSignal;
}

const DEFAULT_BUDGET = 256 * 1024 * 1024;

/**
 * Runs every patch on the corrupted tokens and writes metric(patched logits) to
 * `scores[patch.index]`. `startResidual(l)` gives the corrupted run's `blocks.l.hook_resid_pre`.
 */
export async function runSweep(
  model: HookedTransformer,
  tokens: readonly (readonly number[])[],
  patches: readonly Patch[],
  metric: Metric,
  startResidual: (layer: number) => Tensor,
  scores: Float32Array,
  options: SweepOptions = {},
): Promise<void> {
  const strategy = options.strategy ?? "planned";
  if (strategy !== "planned" && strategy !== "naive") throw new Error(`strategy must be "planned" or "naive", got ${JSON.stringify(strategy)}`);
  const budget = options.memoryBudgetBytes ?? DEFAULT_BUDGET;
  if (!(budget > 0)) throw new Error(`memoryBudgetBytes must be positive, got ${budget}`);
  const started = Date.now();
  let done = 0;
  const report = async (n: number) => {
    done += n;
    const elapsedMs = Date.now() - started;
    options.onProgress?.({ done, total: patches.length, elapsedMs, etaMs: done > 0 ? (elapsedMs / done) * (patches.length - done) : undefined });
    await yieldToEventLoop();
    throwIfAborted(options.signal);
  };
  throwIfAborted(options.signal);

  const record = (patch: Patch, logits: Tensor) => {
    const value = metric(logits);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new Error(`the metric returned ${value} for patch ${patch.label}; a sweep needs finite numbers`);
    }
    scores[patch.index] = value;
  };

  if (strategy === "naive") {
    for (const patch of patches) {
      patch.prepare?.();
      const fwdHooks = patch.edits.map((e) => [e.hook, ((act: Tensor) => e.apply(act)) as HookFn] as const);
      record(patch, model.forward(tokens, { fwdHooks }).logits!);
      await report(1);
    }
    return;
  }

  const B = tokens.length;
  const P = tokens[0]!.length;
  const copiesPerPass = Math.max(1, Math.floor(budget / (B * P * bytesPerRow(model, P))));
  const lastOnly = metric.positions === "last";
  for (const group of groupByStart(patches)) {
    for (let first = 0; first < group.patches.length; first += copiesPerPass) {
      const chunk = group.patches.slice(first, first + copiesPerPass);
      for (const patch of chunk) patch.prepare?.();
      const logits = runStacked(model, tokens, chunk, group.startLayer, startResidual, lastOnly);
      const perCopy = logits.size / chunk.length;
      const copyShape = [B, ...logits.shape.slice(1)];
      chunk.forEach((patch, k) => record(patch, new Tensor(logits.data.subarray(k * perCopy, (k + 1) * perCopy), copyShape)));
      await report(chunk.length);
    }
  }
}

/** One forward pass over K stacked copies of the corrupted batch, copy k carrying patch k. */
function runStacked(model: HookedTransformer, tokens: readonly (readonly number[])[], chunk: readonly Patch[],
  startLayer: number, startResidual: (layer: number) => Tensor, lastOnly: boolean): Tensor {
  const B = tokens.length;
  const K = chunk.length;
  const stackedTokens = Array.from({ length: K * B }, (_, r) => tokens[r % B]!);
  let residual: Tensor | undefined;
  if (startLayer > 0) {
    const r = startResidual(startLayer);
    const data = new Float32Array(K * r.size);
    for (let k = 0; k < K; k++) data.set(r.data, k * r.size);
    residual = new Tensor(data, [K * B, ...r.shape.slice(1)]);
  }
  // One hook per hook name; it hands each copy its own [B, ...] slice.
  const byHook = new Map<string, [number, PatchEdit][]>();
  chunk.forEach((patch, k) => {
    for (const edit of patch.edits) {
      const list = byHook.get(edit.hook) ?? [];
      list.push([k, edit]);
      byHook.set(edit.hook, list);
    }
  });
  const fwdHooks = [...byHook].map(([hook, edits]) => [hook, ((act: Tensor) => {
    const per = act.size / K;
    const shape = [B, ...act.shape.slice(1)];
    for (const [k, edit] of edits) edit.apply(new Tensor(act.data.subarray(k * per, (k + 1) * per), shape));
  }) as HookFn] as const);
  return model.forward(stackedTokens, { startAtLayer: startLayer, residual, fwdHooks, lastPositionOnly: lastOnly }).logits!;
}

/** Patches grouped by start layer (ascending), keeping their order within a group. */
function groupByStart(patches: readonly Patch[]): { startLayer: number; patches: Patch[] }[] {
  const groups = new Map<number, Patch[]>();
  for (const p of patches) {
    const list = groups.get(p.startLayer) ?? [];
    list.push(p);
    groups.set(p.startLayer, list);
  }
  return [...groups].sort((a, b) => a[0] - b[0]).map(([startLayer, list]) => ({ startLayer, patches: list }));
}

/** Activation bytes one batch row needs in a forward pass (the stacked pass's buffers scale with it). */
function bytesPerRow(model: HookedTransformer, pos: number): number {
  const { dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V } = model.cfg;
  // resid, embed, pos embed, norm, attn out, mlp out, the JS residual copy; q, k, v, z; pre, post;
  // scores and pattern when hooked; logits of one position per row.
  return 4 * (7 * D + 4 * H * d + 2 * M + 2 * H * pos + V / pos);
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
