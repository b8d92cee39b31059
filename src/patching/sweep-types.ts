// The types a sweep is described in, shared by the planner (planner.ts), the runner
// (sweep-run.ts) and the sweeps that build patches (activation-patching.ts, direct-path/).
import type { Tensor } from "../engine/tensor.js";
import type { HookPoint } from "../model/hook-points.js";

/** One change to an activation of the corrupted run. */
export interface PatchEdit {
  /** Full hook name, e.g. `blocks.2.attn.hook_k`. */
  hook: string;
  /**
   * Edits, in place, this patch's copy of the activation: [batch, ...] for the corrupted prompts.
   * A planned sweep may hand over only the positions it recomputes: the position axis (the query
   * axis of scores and patterns) then starts at `hook.positionStart`.
   */
  apply(activation: Tensor, hook: HookPoint): void;
}

/** One patched run of a sweep. */
export interface Patch {
  /** Flat index of this run's score in the result. */
  index: number;
  /** Names the patch in errors and progress, e.g. `src (0, 1) -> dst (2, 3) k`. */
  label: string;
  /** The first block the patch can change; a planned sweep starts there from the corrupted residual stream. */
  startLayer: number;
  /**
   * The first position the patch can change (default 0): a planned sweep reuses the corrupted
   * run before it and, since the metric reads only later positions, computes the last block only
   * where the metric reads. Leave it undefined for edits that need whole activations.
   */
  startPos?: number;
  edits: PatchEdit[];
  /**
   * For a patch whose edits change only some heads' attention in `startLayer` (keys, values and
   * queries of the other heads there are the corrupted run's): how many query heads it changes, and
   * the change it makes to that layer's `hook_attn_out` at positions [positionStart, pos) of each
   * row, [batch, pos - positionStart, dModel], called after `prepare`. A planned sweep then starts
   * from the corrupted `hook_resid_mid` plus this change and skips that layer's attention, unless a
   * hook of the model watches it; edits at the skipped hook points do not fire then, later ones do
   * (a patch of an MLP's input alone has `heads: 0` and a zero change).
   */
  attnOutDelta?: { heads: number; compute: (positionStart: number) => Float32Array };
  /**
   * Runs before the forward pass that carries this patch, outside any hook: the place to
   * compute patch values on the engine (allocating inside a hook could grow the memory and
   * detach the activation views the hook holds).
   */
  prepare?: () => void;
}

/** Where a running sweep is, as `onProgress` receives it. */
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
  /**
   * Upper bound on the activation memory of one stacked pass (default 1 GiB). A sweep whose single
   * patched run needs more is refused before it starts.
   */
  memoryBudgetBytes?: number;
  /** Called after each forward pass of the sweep. */
  onProgress?: (progress: SweepProgress) => void;
  /** Cancels the sweep: the promise rejects with an AbortError within one forward pass. */
  signal?: AbortSignal;
  /**
   * Called once when the sweep is aborted, before the promise rejects, with the scores finished so
   * far (flat, in the result's row-major layout) and `done[i] = 1` for each finished entry.
   */
  onPartial?: (partial: { scores: Float32Array; done: Uint8Array }) => void;
  /** Called once before the sweep runs, with its plan: the same numbers `planSweep` gives. */
  onPlan?: (plan: SweepPlanSummary) => void;
}

/** A planned sweep's plan without its patches: what it will compute and what it saves. */
export type SweepPlanSummary = Omit<SweepPlan, "passes"> & { passes: number };

/** What a planned sweep reuses from the corrupted run. */
export interface CorruptedRun {
  /** `blocks.l.hook_resid_pre` [batch, pos, dModel]. */
  residPre(layer: number): Tensor;
  /** Whether {@link keysValues} has the layer's keys and values (planning asks this without reading them). */
  hasKeysValues(layer: number): boolean;
  /** `blocks.l.attn.hook_k` / `hook_v`, or undefined when not cached (no prefix is then reused). */
  keysValues(layer: number): { k: Tensor; v: Tensor } | undefined;
  /** `blocks.l.hook_resid_mid` [batch, pos, dModel], where cached (patches with `attnOutDelta` start there). */
  residMid?(layer: number): Tensor | undefined;
}

/** One stacked forward pass of a planned sweep. */
export interface PlannedPass {
  startLayer: number;
  /** First recomputed position (earlier ones are the corrupted run's). */
  startPos: number;
  /** Whether the last block is computed only at the last position. */
  pruneLastLayer: boolean;
  /**
   * Whether the pass starts after `startLayer`'s attention, from the corrupted resid_mid plus each
   * patch's `attnOutDelta` (at the last layer with a last-position metric: only at the last position).
   */
  afterAttention: boolean;
  /** Whether only the last position is unembedded (the metric reads nothing else). */
  lastPositionOnly: boolean;
  /** The only vocabulary entries unembedded (the metric's declared tokens), or undefined for all. */
  unembedTokens?: Int32Array;
  patches: Patch[];
}

/** How a sweep will run, and what it saves over the naive loop. */
export interface SweepPlan {
  strategy: "planned" | "naive";
  /** Forward passes, in order (the naive loop: one per patch, each from layer 0 at every position). */
  passes: PlannedPass[];
  patches: number;
  /** Block evaluations summed over passes, each over the rows it computes (in units of one batch row × position). */
  layerTokenEvaluations: number;
  /** The same for the naive loop (every patch: every block, every position). */
  naiveLayerTokenEvaluations: number;
  /** Token positions recomputed, summed over passes and copies. */
  tokensRecomputed: number;
  /** Activation bytes of the largest pass. */
  peakMemoryBytes: number;
  /**
   * Floating-point operations of the matrix products the passes make: with the block weights, the
   * unembedding, and (where a pass skips its first layer's attention) the changed heads' W_O.
   */
  flops: number;
  /** The same for the naive loop. */
  naiveFlops: number;
  /** Estimated speedup over the naive loop: naiveFlops / flops. */
  estimatedSpeedup: number;
}
