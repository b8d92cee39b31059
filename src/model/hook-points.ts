import type { Tensor } from "../engine/tensor.js";
import { editDistance } from "../util/edit-distance.js";
import type { HookedTransformerConfig } from "./config.js";

/** What a hook function is told about where it runs. */
export interface HookPoint {
  /** Full TransformerLens name, e.g. `blocks.3.attn.hook_q`. */
  readonly name: string;
  /** The block index, or undefined for hooks outside the blocks (embed, ln_final). */
  readonly layer: number | undefined;
  /**
   * The sequence position of index 0 along the activation's position axis (the query axis
   * of scores and patterns). 0 in ordinary runs; larger inside planned patching sweeps, which
   * recompute only the positions a patch can change.
   */
  readonly positionStart: number;
}

/**
 * A hook sees the activation as a tensor (a view into the engine's memory: copy it
 * with `clone()` to keep it beyond the call). Returning a tensor of the same shape
 * replaces the activation; editing `activation.data` in place is also allowed.
 */
export type HookFn = (activation: Tensor, hook: HookPoint) => Tensor | void;

/** A hook name, or a predicate over names (as TransformerLens's `fwd_hooks`). */
export type HookFilter = string | ((name: string) => boolean);

/** One hook point of the forward pass, as the table below lists it. */
export interface HookSpec {
  /** The name inside its scope: a block's `attn.hook_q` is `blocks.{l}.attn.hook_q`. */
  readonly name: string;
  /** The activation's axes, TransformerLens's names (`pos` of queries for scores and patterns). */
  readonly axes: readonly string[];
  /** Whether a model with this config has the hook point (always, when absent). */
  readonly when?: (cfg: HookedTransformerConfig) => boolean;
}

const rotary = (cfg: HookedTransformerConfig) => cfg.positionalEmbeddingType === "rotary";

/**
 * The hook points before the first block, in forward order. The forward fires hooks by these
 * keys and {@link hookNames} lists them from the same table, so the two cannot disagree.
 */
export const EMBED_HOOKS = {
  embed: { name: "hook_embed", axes: ["batch", "pos", "d_model"] },
  posEmbed: { name: "hook_pos_embed", axes: ["batch", "pos", "d_model"], when: (cfg) => !rotary(cfg) },
} as const satisfies Record<string, HookSpec>;

/** The hook points of every block, in forward order (names relative to `blocks.{l}.`). */
export const BLOCK_HOOKS = {
  residPre: { name: "hook_resid_pre", axes: ["batch", "pos", "d_model"] },
  qInput: { name: "hook_q_input", axes: ["batch", "pos", "head_index", "d_model"], when: (cfg) => cfg.useSplitQkvInput === true },
  kInput: { name: "hook_k_input", axes: ["batch", "pos", "kv_head_index", "d_model"], when: (cfg) => cfg.useSplitQkvInput === true },
  vInput: { name: "hook_v_input", axes: ["batch", "pos", "kv_head_index", "d_model"], when: (cfg) => cfg.useSplitQkvInput === true },
  ln1Scale: { name: "ln1.hook_scale", axes: ["batch", "pos", "1"] },
  ln1Normalized: { name: "ln1.hook_normalized", axes: ["batch", "pos", "d_model"] },
  q: { name: "attn.hook_q", axes: ["batch", "pos", "head_index", "d_head"] },
  k: { name: "attn.hook_k", axes: ["batch", "pos", "kv_head_index", "d_head"] },
  v: { name: "attn.hook_v", axes: ["batch", "pos", "kv_head_index", "d_head"] },
  rotQ: { name: "attn.hook_rot_q", axes: ["batch", "pos", "head_index", "d_head"], when: rotary },
  rotK: { name: "attn.hook_rot_k", axes: ["batch", "pos", "kv_head_index", "d_head"], when: rotary },
  attnScores: { name: "attn.hook_attn_scores", axes: ["batch", "head_index", "query_pos", "key_pos"] },
  pattern: { name: "attn.hook_pattern", axes: ["batch", "head_index", "query_pos", "key_pos"] },
  z: { name: "attn.hook_z", axes: ["batch", "pos", "head_index", "d_head"] },
  result: { name: "attn.hook_result", axes: ["batch", "pos", "head_index", "d_model"], when: (cfg) => cfg.useAttnResult },
  // Gemma-2's post-norms: the RMS scale and the normalised write before its weight.
  ln1PostScale: { name: "ln1_post.hook_scale", axes: ["batch", "pos", "1"], when: (cfg) => cfg.postNorms === true },
  ln1PostNormalized: { name: "ln1_post.hook_normalized", axes: ["batch", "pos", "d_model"], when: (cfg) => cfg.postNorms === true },
  attnOut: { name: "hook_attn_out", axes: ["batch", "pos", "d_model"] },
  // Attention and MLP in parallel (GPT-NeoX) both read resid_pre: there is no resid_mid.
  residMid: { name: "hook_resid_mid", axes: ["batch", "pos", "d_model"], when: (cfg) => cfg.parallelAttnMlp !== true },
  mlpIn: { name: "hook_mlp_in", axes: ["batch", "pos", "d_model"], when: (cfg) => cfg.useHookMlpIn === true },
  ln2Scale: { name: "ln2.hook_scale", axes: ["batch", "pos", "1"] },
  ln2Normalized: { name: "ln2.hook_normalized", axes: ["batch", "pos", "d_model"] },
  mlpPre: { name: "mlp.hook_pre", axes: ["batch", "pos", "d_mlp"] },
  mlpPreLinear: { name: "mlp.hook_pre_linear", axes: ["batch", "pos", "d_mlp"], when: (cfg) => cfg.gatedMlp },
  mlpPost: { name: "mlp.hook_post", axes: ["batch", "pos", "d_mlp"] },
  ln2PostScale: { name: "ln2_post.hook_scale", axes: ["batch", "pos", "1"], when: (cfg) => cfg.postNorms === true },
  ln2PostNormalized: { name: "ln2_post.hook_normalized", axes: ["batch", "pos", "d_model"], when: (cfg) => cfg.postNorms === true },
  mlpOut: { name: "hook_mlp_out", axes: ["batch", "pos", "d_model"] },
  residPost: { name: "hook_resid_post", axes: ["batch", "pos", "d_model"] },
} as const satisfies Record<string, HookSpec>;

/** The hook points after the last block, in forward order. */
export const FINAL_HOOKS = {
  lnFinalScale: { name: "ln_final.hook_scale", axes: ["batch", "pos", "1"] },
  lnFinalNormalized: { name: "ln_final.hook_normalized", axes: ["batch", "pos", "d_model"] },
} as const satisfies Record<string, HookSpec>;

export type EmbedHook = keyof typeof EMBED_HOOKS;
export type BlockHook = keyof typeof BLOCK_HOOKS;
export type FinalHook = keyof typeof FINAL_HOOKS;

/** The full name of a block's hook point: `blockHookName(3, "q")` is `blocks.3.attn.hook_q`. */
export function blockHookName(layer: number, hook: BlockHook): string {
  return `blocks.${layer}.${BLOCK_HOOKS[hook].name}`;
}

/**
 * Every hook point of a model, in the order the forward pass reaches them. With `onDemand`, also
 * the ones a model without `useSplitQkvInput` / `useHookMlpIn` has on demand: each head's own
 * q/k/v input and `hook_mlp_in`. They cost memory and time whenever they exist, so they are not
 * listed by default; a hook, a backward hook or a cache filter that names one exactly switches
 * that layer's pass to the split path, and the fused path runs wherever nobody does.
 */
export function hookNames(cfg: HookedTransformerConfig, options: { onDemand?: boolean } = {}): string[] {
  if (options.onDemand) cfg = { ...cfg, useSplitQkvInput: true, useHookMlpIn: true };
  const has = (spec: HookSpec) => spec.when === undefined || spec.when(cfg);
  const names: string[] = Object.values(EMBED_HOOKS).filter(has).map((spec) => spec.name);
  const inBlock = (Object.keys(BLOCK_HOOKS) as BlockHook[]).filter((key) => has(BLOCK_HOOKS[key]));
  for (let l = 0; l < cfg.nLayers; l++) for (const key of inBlock) names.push(blockHookName(l, key));
  names.push(...Object.values(FINAL_HOOKS).filter(has).map((spec) => spec.name));
  return names;
}

const ATTN = new Set(["q", "k", "v", "rot_q", "rot_k", "z", "pattern", "attn_scores", "result"]);
const MLP = new Set(["pre", "pre_linear", "post"]);
const BLOCK = new Set(["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "q_input", "k_input", "v_input", "mlp_in"]);
const ALIASES: Record<string, string> = { attn: "pattern", scores: "attn_scores", mlp_pre: "pre", mlp_post: "post" };

/**
 * The full hook name from a short one, as TransformerLens's `utils.get_act_name`.
 *
 * @example
 * ```ts
 * getActName("q", 3);               // "blocks.3.attn.hook_q"
 * getActName("resid_pre", 0);       // "blocks.0.hook_resid_pre"
 * getActName("scale", 1, "ln2");    // "blocks.1.ln2.hook_scale"
 * getActName("scale");              // "ln_final.hook_scale"
 * ```
 */
export function getActName(name: string, layer?: number, layerType?: "ln1" | "ln2" | "attn" | "mlp"): string {
  if (name.includes(".") || name.startsWith("hook_")) return name;
  const short = ALIASES[name] ?? name;
  if (short === "embed" || short === "pos_embed") return `hook_${short}`;
  if (layer === undefined) {
    if (short === "scale" || short === "normalized") return `ln_final.hook_${short}`;
    throw new Error(`getActName: "${name}" needs a layer index`);
  }
  if (!Number.isInteger(layer) || layer < 0) throw new Error(`getActName: layer must be a non-negative integer, got ${layer}`);
  const b = `blocks.${layer}.`;
  if (ATTN.has(short)) return `${b}attn.hook_${short}`;
  if (MLP.has(short)) return `${b}mlp.hook_${short}`;
  if (BLOCK.has(short)) return `${b}hook_${short}`;
  if (short === "scale" || short === "normalized") {
    if (layerType !== "ln1" && layerType !== "ln2") throw new Error(`getActName: "${name}" in a block needs layerType "ln1" or "ln2"`);
    return `${b}${layerType}.hook_${short}`;
  }
  throw new Error(`getActName: unknown activation name "${name}"`);
}

/** Throws for an unknown hook name, listing the closest valid names. */
export function assertHookName(name: string, valid: readonly string[]): void {
  if (valid.includes(name)) return;
  const closest = [...valid]
    .map((v) => [v, editDistance(name, v)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, 3)
    .map(([v]) => v);
  throw new Error(`unknown hook name "${name}"; closest valid names: ${closest.join(", ")}`);
}
