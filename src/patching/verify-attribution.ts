import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import type { TokenIds } from "../model/tokens.js";
import * as act from "./activation-patching.js";
import type { AttributionKindName, AttributionRecord } from "./attribution-patching.js";
import type { Metric } from "./metrics.js";
import type { SweepOptions } from "./sweep-types.js";
import type { PatchResult } from "./result.js";
import { unravelIndex } from "../engine/tensor-shape.js";

/** The activation patching sweep each attribution kind estimates. */
const EXACT: Record<AttributionKindName, act.ActivationPatchSweep> = {
  resid_pre: act.getActPatchResidPre,
  resid_mid: act.getActPatchResidMid,
  resid_post: act.getActPatchResidPost,
  attn_out: act.getActPatchAttnOut,
  mlp_out: act.getActPatchMlpOut,
  attn_head_out_all_pos: act.getActPatchAttnHeadOutAllPos,
  attn_head_q_all_pos: act.getActPatchAttnHeadQAllPos,
  attn_head_k_all_pos: act.getActPatchAttnHeadKAllPos,
  attn_head_v_all_pos: act.getActPatchAttnHeadVAllPos,
  attn_head_pattern_all_pos: act.getActPatchAttnHeadPatternAllPos,
  attn_head_out_by_pos: act.getActPatchAttnHeadOutByPos,
  attn_head_q_by_pos: act.getActPatchAttnHeadQByPos,
  attn_head_k_by_pos: act.getActPatchAttnHeadKByPos,
  attn_head_v_by_pos: act.getActPatchAttnHeadVByPos,
  attn_head_pattern_by_pos: act.getActPatchAttnHeadPatternByPos,
};

/** One checked entry: its index in the result, the attribution estimate and the patched run's metric. */
export interface VerifiedEntry {
  index: number[];
  estimate: number;
  exact: number;
}

export interface Verification {
  /** The `top` entries with the largest |estimate - baseline|, largest first. */
  entries: VerifiedEntry[];
  /** Spearman rank correlation of estimate and exact over the checked entries (NaN for fewer than 2). */
  spearman: number;
  /** Largest |estimate - exact| over the checked entries. */
  maxAbsError: number;
}

/**
 * Checks an attribution result where it matters: runs its `top` largest entries (by
 * |estimate - baseline|) exactly with activation patching (planned, stacked; only those entries)
 * and returns estimate and exact side by side with their rank correlation. Estimates are first
 * order: this shows where they hold.
 *
 * @example
 * ```ts
 * const attr = getAttrPatchAttnHeadOutAllPos(model, corrupted, cleanCache, metric);
 * const check = await verifyAttribution(model, corrupted, cleanCache, metric, attr, { top: 10 });
 * check.spearman;   // e.g. 0.93
 * ```
 */
export async function verifyAttribution(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  metric: Metric, result: PatchResult<AttributionRecord>, options: SweepOptions & { top: number }): Promise<Verification> {
  const kind = result.options.kind;
  const exactSweep = EXACT[kind];
  if (exactSweep === undefined) throw new Error(`verifyAttribution: ${JSON.stringify(kind)} is not an attribution result`);
  const { top, ...sweep } = options;
  if (!Number.isInteger(top) || top < 1) throw new Error(`verifyAttribution: top must be a positive integer, got ${top}`);
  const scores = result.scores.data;
  const order = Array.from(scores.keys()).sort((a, b) => Math.abs(scores[b]! - result.baseline) - Math.abs(scores[a]! - result.baseline) || a - b);
  const chosen = order.slice(0, Math.min(top, order.length));
  const exact = await exactSweep(model, corruptedTokens, cleanCache, metric, { ...sweep, entries: chosen });
  const entries = chosen.map((flat) => ({ index: unravelIndex(flat, result.scores.shape), estimate: scores[flat]!, exact: exact.scores.data[flat]! }));
  const maxAbsError = entries.reduce((m, e) => Math.max(m, Math.abs(e.estimate - e.exact)), 0);
  return { entries, spearman: spearman(entries.map((e) => e.estimate), entries.map((e) => e.exact)), maxAbsError };
}

/** Spearman's ρ: Pearson correlation of the ranks (ties get their mean rank). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} and ${b.length} values`);
  if (a.length < 2) return NaN;
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (a.length + 1) / 2;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (ra[i]! - mean) * (rb[i]! - mean);
    da += (ra[i]! - mean) ** 2;
    db += (rb[i]! - mean) ** 2;
  }
  return da === 0 || db === 0 ? NaN : num / Math.sqrt(da * db);
}

function ranks(x: readonly number[]): number[] {
  const order = Array.from(x.keys()).sort((i, j) => x[i]! - x[j]!);
  const r = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]!] === x[order[i]!]) j++;
    for (let k = i; k <= j; k++) r[order[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

