import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import { getActName } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { checkBatch, needCached } from "./cache-access.js";
import type { Metric } from "./metrics.js";
import { planSweepPatches, summarize } from "./planner.js";
import { runSweep } from "./sweep-run.js";
import type { CorruptedRun, Patch, SweepOptions, SweepPlanSummary } from "./sweep-types.js";
import { PatchResult } from "./result.js";
import { unravelIndex } from "../engine/tensor-shape.js";
import { metricsFromResidual, metricsOf, perPromptBuffer } from "./final-metric.js";

/** Axes a patch index can range over, as TransformerLens's `index_axis_names`. */
export type IndexAxis = "layer" | "pos" | "head" | "dest_pos" | "src_pos";

/**
 * Writes the clean value into the corrupted activation at `index` (in place).
 * `corrupted` and `clean` have the activation's full shape, [batch, ...].
 */
export type PatchSetter = (corrupted: Tensor, clean: Tensor, index: readonly number[]) => void;

export interface GenericPatchOptions extends SweepOptions {
  /** Short activation name (`resid_pre`, `z`, `pattern`, ...) read with the index's layer, or a full hook name. */
  activationName: string;
  /** What each index axis means; the first must be `layer`. */
  indexAxes: readonly IndexAxis[];
  patchSetter: PatchSetter;
}

/**
 * TransformerLens's `generic_activation_patch`: for every index over `indexAxes`, run the
 * corrupted tokens with that slice of the activation set to its clean value, and record
 * the metric. The result has one axis per index axis.
 *
 * @example
 * ```ts
 * const r = await genericActivationPatch(model, corrupted, cleanCache, metric, {
 *   activationName: "resid_pre", indexAxes: ["layer", "pos"], patchSetter: layerPosPatchSetter,
 * });
 * r.scores; // [nLayers, pos]
 * ```
 */
export async function genericActivationPatch(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  metric: Metric, options: GenericPatchOptions): Promise<PatchResult> {
  return sweepParts(model, corruptedTokens, cleanCache, metric, `act_patch_${options.activationName}`, [genericPart(options)], options);
}

/** The plan of {@link genericActivationPatch} with these arguments, without running it (see {@link planSweep}). */
genericActivationPatch.plan = (model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  metric: Metric, options: GenericPatchOptions): SweepPlanSummary =>
  planParts(model, corruptedTokens, cleanCache, metric, `act_patch_${options.activationName}`, [genericPart(options)], options);

function genericPart(options: GenericPatchOptions): SweepPart {
  return { activation: options.activationName, axes: options.indexAxes, setter: options.patchSetter };
}

// ---- setters, as TransformerLens's (index = [layer, ...rest]) ----

/** corrupted[:, pos, ...] = clean[:, pos, ...]; index [layer, pos]. */
export const layerPosPatchSetter: PatchSetter = (c, k, [, pos]) => copyAt(c, k, { 1: pos! });
/** corrupted[:, :, head] = clean[:, :, head] for [batch, pos, head, d] vectors; index [layer, head]. */
export const layerHeadVectorPatchSetter: PatchSetter = (c, k, [, head]) => copyAt(c, k, { 2: head! });
/** corrupted[:, pos, head] = clean[:, pos, head]; index [layer, pos, head]. */
export const layerPosHeadVectorPatchSetter: PatchSetter = (c, k, [, pos, head]) => copyAt(c, k, { 1: pos!, 2: head! });
/** corrupted[:, head] = clean[:, head] for patterns [batch, head, dest, src]; index [layer, head]. */
export const layerHeadPatternPatchSetter: PatchSetter = (c, k, [, head]) => copyAt(c, k, { 1: head! });
/** corrupted[:, head, destPos] = clean[:, head, destPos]; index [layer, destPos, head]. */
export const layerHeadPosPatternPatchSetter: PatchSetter = (c, k, [, pos, head]) => copyAt(c, k, { 1: head!, 2: pos! });
/** corrupted[:, head, destPos, srcPos] = clean[...]; index [layer, head, destPos, srcPos]. */
export const layerHeadDestSrcPosPatternPatchSetter: PatchSetter = (c, k, [, head, dest, src]) => copyAt(c, k, { 1: head!, 2: dest!, 3: src! });

// ---- the TransformerLens family ----

/** Options of the activation patching family. */
export interface ActPatchOptions extends SweepOptions {
  /**
   * Run only these entries (flat indices into the result, row-major); the others' scores are NaN.
   * How attribution results are checked on their top entries (see verifyAttribution).
   */
  entries?: readonly number[];
}

type SweepArgs = [model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache, metric: Metric, options?: ActPatchOptions];

/** An activation patching sweep; `.plan(...)` with the same arguments gives its plan without running it. */
export type ActivationPatchSweep = ((...args: SweepArgs) => Promise<PatchResult>) & { plan: (...args: SweepArgs) => SweepPlanSummary };

interface SweepPart {
  activation: string;
  axes: readonly IndexAxis[];
  setter: PatchSetter;
  /**
   * For the built-in setters: the activation's position axis (the query axis of patterns), which
   * a planned sweep may narrow to the positions it recomputes, and which index entry (if any) is
   * a position on it. Absent for user setters, which always see whole activations.
   */
  window?: { axis: 1 | 2; indexEntry?: number };
}

const byLayerPos = (activation: string): SweepPart =>
  ({ activation, axes: ["layer", "pos"], setter: layerPosPatchSetter, window: { axis: 1, indexEntry: 1 } });
const headAllPos = (activation: string): SweepPart =>
  ({ activation, axes: ["layer", "head"], setter: layerHeadVectorPatchSetter, window: { axis: 1 } });
const headByPos = (activation: string): SweepPart =>
  ({ activation, axes: ["layer", "pos", "head"], setter: layerPosHeadVectorPatchSetter, window: { axis: 1, indexEntry: 1 } });
const patternAllPos: SweepPart =
  { activation: "pattern", axes: ["layer", "head"], setter: layerHeadPatternPatchSetter, window: { axis: 2 } };
const patternByPos: SweepPart =
  { activation: "pattern", axes: ["layer", "pos", "head"], setter: layerHeadPosPatternPatchSetter, window: { axis: 2, indexEntry: 1 } };

function family(op: string, parts: SweepPart[]): ActivationPatchSweep {
  return Object.assign((...[model, corruptedTokens, cleanCache, metric, options = {}]: SweepArgs) =>
    sweepParts(model, corruptedTokens, cleanCache, metric, op, parts, options), {
    plan: (...[model, corruptedTokens, cleanCache, metric, options = {}]: SweepArgs) =>
      planParts(model, corruptedTokens, cleanCache, metric, op, parts, options),
  });
}

/** [nLayers, pos]: patch `blocks.l.hook_resid_pre[:, p]`. */
export const getActPatchResidPre = family("act_patch_resid_pre", [byLayerPos("resid_pre")]);
/** [nLayers, pos]: patch `blocks.l.hook_resid_mid[:, p]`. */
export const getActPatchResidMid = family("act_patch_resid_mid", [byLayerPos("resid_mid")]);
/** [nLayers, pos]: patch `blocks.l.hook_resid_post[:, p]`. */
export const getActPatchResidPost = family("act_patch_resid_post", [byLayerPos("resid_post")]);
/** [nLayers, pos]: patch `blocks.l.hook_attn_out[:, p]`. */
export const getActPatchAttnOut = family("act_patch_attn_out", [byLayerPos("attn_out")]);
/** [nLayers, pos]: patch `blocks.l.hook_mlp_out[:, p]`. */
export const getActPatchMlpOut = family("act_patch_mlp_out", [byLayerPos("mlp_out")]);
/** [nLayers, nHeads]: patch head h's output (`hook_z[:, :, h]`) at every position. */
export const getActPatchAttnHeadOutAllPos = family("act_patch_attn_head_out_all_pos", [headAllPos("z")]);
/** [nLayers, nHeads]: patch `hook_q[:, :, h]`. */
export const getActPatchAttnHeadQAllPos = family("act_patch_attn_head_q_all_pos", [headAllPos("q")]);
/** [nLayers, nHeads]: patch `hook_k[:, :, h]`. */
export const getActPatchAttnHeadKAllPos = family("act_patch_attn_head_k_all_pos", [headAllPos("k")]);
/** [nLayers, nHeads]: patch `hook_v[:, :, h]`. */
export const getActPatchAttnHeadVAllPos = family("act_patch_attn_head_v_all_pos", [headAllPos("v")]);
/** [nLayers, nHeads]: patch `hook_pattern[:, h]`. */
export const getActPatchAttnHeadPatternAllPos = family("act_patch_attn_head_pattern_all_pos", [patternAllPos]);
/** [nLayers, pos, nHeads]: patch `hook_z[:, p, h]`. */
export const getActPatchAttnHeadOutByPos = family("act_patch_attn_head_out_by_pos", [headByPos("z")]);
/** [nLayers, pos, nHeads]: patch `hook_q[:, p, h]`. */
export const getActPatchAttnHeadQByPos = family("act_patch_attn_head_q_by_pos", [headByPos("q")]);
/** [nLayers, pos, nHeads]: patch `hook_k[:, p, h]`. */
export const getActPatchAttnHeadKByPos = family("act_patch_attn_head_k_by_pos", [headByPos("k")]);
/** [nLayers, pos, nHeads]: patch `hook_v[:, p, h]`. */
export const getActPatchAttnHeadVByPos = family("act_patch_attn_head_v_by_pos", [headByPos("v")]);
/** [nLayers, pos, nHeads]: patch `hook_pattern[:, h, p]` (destination position p). */
export const getActPatchAttnHeadPatternByPos = family("act_patch_attn_head_pattern_by_pos", [patternByPos]);
/** [nLayers, nHeads, pos, pos]: patch `hook_pattern[:, h, dest, src]`. */
export const getActPatchAttnHeadPatternDestSrcPos = family("act_patch_attn_head_pattern_dest_src_pos",
  [{ activation: "pattern", axes: ["layer", "head", "dest_pos", "src_pos"], setter: layerHeadDestSrcPosPatternPatchSetter,
    window: { axis: 2, indexEntry: 2 } }]);
/** [5, nLayers, nHeads]: output, q, k, v and pattern of each head, every position. */
export const getActPatchAttnHeadAllPosEvery = family("act_patch_attn_head_all_pos_every",
  [headAllPos("z"), headAllPos("q"), headAllPos("k"), headAllPos("v"), patternAllPos]);
/** [5, nLayers, pos, nHeads]: output, q, k, v and pattern of each head, by position. */
export const getActPatchAttnHeadByPosEvery = family("act_patch_attn_head_by_pos_every",
  [headByPos("z"), headByPos("q"), headByPos("k"), headByPos("v"), patternByPos]);
/** [3, nLayers, pos]: resid_pre, attn_out and mlp_out by layer and position. */
export const getActPatchBlockEvery = family("act_patch_block_every",
  [byLayerPos("resid_pre"), byLayerPos("attn_out"), byLayerPos("mlp_out")]);

/**
 * Runs one or more parts as one sweep (so their patches share stacked passes). One part
 * gives its own shape; several are stacked along a new leading axis, as the `...Every` functions.
 */
async function sweepParts(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache, metric: Metric,
  op: string, parts: readonly SweepPart[], options: ActPatchOptions): Promise<PatchResult> {
  const sweep = buildParts(model, corruptedTokens, cleanCache, metric, op, parts, options.entries);
  const baseline = metricsOf(metric, sweep.corruptedRun().logits!, "the corrupted run");
  const clean = metricsFromResidual(model, sweep.tokens, sweep.lastCleanResid, metric, "the clean run");
  const scores = new Float32Array(parts.length * sweep.partSize).fill(options.entries === undefined ? 0 : NaN);
  const rows = perPromptBuffer(metric, sweep.tokens.length, scores.length);
  rows?.scores.fill(options.entries === undefined ? 0 : NaN);
  await runSweep(model, sweep.tokens, sweep.patches, metric, sweep.corrupted, scores, options, rows?.scores);
  return new PatchResult(op, new Tensor(scores, sweep.shape), baseline.value, clean.value, { strategy: options.strategy ?? "planned" }, undefined,
    rows?.rows(sweep.shape, baseline.perPrompt, clean.perPrompt));
}

/** The plan of {@link sweepParts}: no patched run, and not the corrupted run either. */
function planParts(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache, metric: Metric,
  op: string, parts: readonly SweepPart[], options: ActPatchOptions): SweepPlanSummary {
  const sweep = buildParts(model, corruptedTokens, cleanCache, metric, op, parts, options.entries);
  return summarize(planSweepPatches(model, sweep.tokens, sweep.patches, metric, sweep.corrupted, options));
}

/** Validates a sweep's inputs and builds its patches; the corrupted run is made on first use. */
function buildParts(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache, metric: Metric,
  op: string, parts: readonly SweepPart[], entries?: readonly number[]) {
  if (typeof metric !== "function") throw new Error("metric must be a function from logits to a number");
  const cfg = model.cfg;
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  const tokens = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P)));
  const shapes = parts.map((part) => {
    if (part.axes[0] !== "layer") throw new Error(`indexAxes must start with "layer", got [${part.axes.join(", ")}]`);
    // Keys and values have nKeyValueHeads heads (fewer than nHeads with grouped-query attention).
    const kv = part.activation === "k" || part.activation === "v";
    const axisSize: Record<IndexAxis, number> = { layer: cfg.nLayers, pos: P, head: kv ? cfg.nKeyValueHeads : cfg.nHeads, dest_pos: P, src_pos: P };
    return part.axes.map((a) => {
      const n = axisSize[a];
      if (n === undefined) throw new Error(`unknown index axis ${JSON.stringify(a)} (layer, pos, head, dest_pos, src_pos)`);
      return n;
    });
  });
  const partSize = shapes[0]!.reduce((a, b) => a * b, 1);
  if (shapes.some((s) => s.join() !== shapes[0]!.join())) {
    throw new Error(`${op}: its parts have different shapes (${shapes.map((s) => `[${s.join(", ")}]`).join(", ")}); ` +
      "with grouped-query attention, patch k and v with their own functions");
  }

  // The corrupted run once: its residual stream, keys and values at every layer (where stacked
  // passes start, and the prefix they reuse) and its metric.
  const kept = /^blocks\.\d+\.(hook_resid_pre|attn\.hook_k|attn\.hook_rot_k|attn\.hook_v)$/;
  let corruptedRunMemo: ReturnType<HookedTransformer["runWithCache"]> | undefined;
  const corruptedRun = () => (corruptedRunMemo ??= model.runWithCache(tokens, { namesFilter: (name) => kept.test(name) }));
  const lastName = `blocks.${cfg.nLayers - 1}.hook_resid_post`;
  const lastCleanResid = checkBatch(needCached(cleanCache, "cleanCache", lastName), lastName, B, P);

  // Clean and corrupted activations agree before the first position where the token rows differ
  // (compared on the embeddings, which is all the corrupted run this needs).
  const firstDiff = firstDifference(checkBatch(needCached(cleanCache, "cleanCache", "blocks.0.hook_resid_pre"),
    "blocks.0.hook_resid_pre", B, P), model.forward(tokens, { stopAtLayer: 0 }).residual!);
  const total = parts.length * partSize;
  const wanted = entries === undefined ? undefined : new Set(entries);
  for (const e of entries ?? []) {
    if (!Number.isInteger(e) || e < 0 || e >= total) throw new Error(`${op}: entry ${e} is out of range; the result has ${total} entries`);
  }
  const windows = new Map<string, Tensor>();
  const patches: Patch[] = [];
  parts.forEach((part, which) => {
    const shape = shapes[which]!;
    for (let flat = 0; flat < partSize; flat++) {
      if (wanted !== undefined && !wanted.has(which * partSize + flat)) continue;
      const index = unravelIndex(flat, shape);
      const hook = getActName(part.activation, index[0]);
      const cleanAct = checkBatch(needCached(cleanCache, "cleanCache", hook), hook, B, P);
      const win = part.window;
      patches.push({
        index: which * partSize + flat,
        label: `${part.activation} [${index.join(", ")}]`,
        startLayer: index[0]!,
        startPos: win === undefined ? undefined : win.indexEntry === undefined ? firstDiff : index[win.indexEntry]!,
        edits: [{
          hook,
          apply: (act, point) => {
            const len = act.shape[win?.axis ?? 1]!;
            if (win === undefined || (point.positionStart === 0 && len === cleanAct.shape[win.axis])) {
              part.setter(act, cleanAct, index);
              return;
            }
            // The activation covers positions [positionStart, positionStart + len) only.
            const local = [...index];
            if (win.indexEntry !== undefined) {
              local[win.indexEntry] = index[win.indexEntry]! - point.positionStart;
              if (local[win.indexEntry]! < 0 || local[win.indexEntry]! >= len) return; // outside: changes nothing read
            }
            const key = `${hook}:${point.positionStart}:${len}`;
            let cleanWindow = windows.get(key);
            if (cleanWindow === undefined) {
              cleanWindow = cleanAct.slice(win.axis, point.positionStart, point.positionStart + len);
              windows.set(key, cleanWindow);
            }
            part.setter(act, cleanWindow, local);
          },
        }],
      });
    }
  });
  const corrupted: CorruptedRun = {
    residPre: (l) => corruptedRun().cache.get(`blocks.${l}.hook_resid_pre`),
    hasKeysValues: () => true, // the corrupted run keeps every layer's
    keysValues: (l) => ({
      k: corruptedRun().cache.get(`blocks.${l}.attn.${cfg.positionalEmbeddingType === "rotary" ? "hook_rot_k" : "hook_k"}`),
      v: corruptedRun().cache.get(`blocks.${l}.attn.hook_v`),
    }),
  };
  const shape = parts.length === 1 ? shapes[0]! : [parts.length, ...shapes[0]!];
  return { tokens, patches, corrupted, corruptedRun, lastCleanResid, partSize, shape };
}

/** The first position where two [batch, pos, ...] activations differ anywhere in the batch (pos if nowhere). */
function firstDifference(a: Tensor, b: Tensor): number {
  const [B, P] = a.shape as [number, number];
  const per = a.size / (B * P);
  let first = P;
  for (let r = 0; r < B; r++) {
    for (let p = 0; p < first; p++) {
      const o = (r * P + p) * per;
      for (let i = 0; i < per; i++) {
        if (a.data[o + i] !== b.data[o + i]) { first = p; break; }
      }
    }
  }
  return first;
}


/** dst[...] = src[...] wherever the axes in `fixed` take the given values (both of one shape). */
function copyAt(dst: Tensor, src: Tensor, fixed: Record<number, number>): void {
  if (dst.shape.join() !== src.shape.join()) {
    throw new Error(`patch: the clean activation [${src.shape.join(", ")}] and the corrupted one [${dst.shape.join(", ")}] differ in shape`);
  }
  const shape = dst.shape;
  for (const [axis, i] of Object.entries(fixed)) {
    const n = shape[Number(axis)]!;
    if (!(i >= 0 && i < n)) throw new Error(`patch: index ${i} is out of range for axis ${axis} of size ${n}`);
  }
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  // Innermost run of free axes copied as one block.
  let inner = shape.length;
  while (inner > 0 && !((inner - 1) in fixed)) inner--;
  const block = strides[inner - 1] ?? dst.size;
  const walk = (axis: number, offset: number) => {
    if (axis === inner) {
      dst.data.set(src.data.subarray(offset, offset + block), offset);
      return;
    }
    if (axis in fixed) walk(axis + 1, offset + fixed[axis]! * strides[axis]!);
    else for (let i = 0; i < shape[axis]!; i++) walk(axis + 1, offset + i * strides[axis]!);
  };
  walk(0, 0);
}
