// `hooklens patch act --kind KIND`: TransformerLens's get_act_patch_<KIND> names mapped to
// the camelCase functions, with the meaning of each axis of their results.

import * as act from "../patching/activation-patching.js";
import type { Axis } from "./grid.js";

type ActSweep = typeof act.getActPatchResidPre;

export interface ActKind {
  fn: ActSweep;
  axes: readonly Axis[];
}

const layer: Axis = { name: "layer" };
const pos: Axis = { name: "pos" };
const head: Axis = { name: "head" };
const headParts: Axis = { name: "patched", labels: ["output", "q", "k", "v", "pattern"] };
const blockParts: Axis = { name: "patched", labels: ["resid_pre", "attn_out", "mlp_out"] };

export const ACT_KINDS: Readonly<Record<string, ActKind>> = {
  resid_pre: { fn: act.getActPatchResidPre, axes: [layer, pos] },
  resid_mid: { fn: act.getActPatchResidMid, axes: [layer, pos] },
  resid_post: { fn: act.getActPatchResidPost, axes: [layer, pos] },
  attn_out: { fn: act.getActPatchAttnOut, axes: [layer, pos] },
  mlp_out: { fn: act.getActPatchMlpOut, axes: [layer, pos] },
  attn_head_out_all_pos: { fn: act.getActPatchAttnHeadOutAllPos, axes: [layer, head] },
  attn_head_q_all_pos: { fn: act.getActPatchAttnHeadQAllPos, axes: [layer, head] },
  attn_head_k_all_pos: { fn: act.getActPatchAttnHeadKAllPos, axes: [layer, head] },
  attn_head_v_all_pos: { fn: act.getActPatchAttnHeadVAllPos, axes: [layer, head] },
  attn_head_pattern_all_pos: { fn: act.getActPatchAttnHeadPatternAllPos, axes: [layer, head] },
  attn_head_out_by_pos: { fn: act.getActPatchAttnHeadOutByPos, axes: [layer, pos, head] },
  attn_head_q_by_pos: { fn: act.getActPatchAttnHeadQByPos, axes: [layer, pos, head] },
  attn_head_k_by_pos: { fn: act.getActPatchAttnHeadKByPos, axes: [layer, pos, head] },
  attn_head_v_by_pos: { fn: act.getActPatchAttnHeadVByPos, axes: [layer, pos, head] },
  attn_head_pattern_by_pos: { fn: act.getActPatchAttnHeadPatternByPos, axes: [layer, { name: "dest pos" }, head] },
  attn_head_pattern_dest_src_pos: { fn: act.getActPatchAttnHeadPatternDestSrcPos, axes: [layer, head, { name: "dest pos" }, { name: "src pos" }] },
  attn_head_all_pos_every: { fn: act.getActPatchAttnHeadAllPosEvery, axes: [headParts, layer, head] },
  attn_head_by_pos_every: { fn: act.getActPatchAttnHeadByPosEvery, axes: [headParts, layer, pos, head] },
  block_every: { fn: act.getActPatchBlockEvery, axes: [blockParts, layer, pos] },
};

export const ACT_KIND_NAMES = Object.keys(ACT_KINDS);
