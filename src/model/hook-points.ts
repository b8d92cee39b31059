import type { Tensor } from "../engine/tensor.js";
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

/** Every hook point of a model, in the order the forward pass reaches them. */
export function hookNames(cfg: HookedTransformerConfig): string[] {
  const rotary = cfg.positionalEmbeddingType === "rotary";
  const names = rotary ? ["hook_embed"] : ["hook_embed", "hook_pos_embed"];
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}.`;
    names.push(`${b}hook_resid_pre`, `${b}ln1.hook_scale`, `${b}ln1.hook_normalized`,
      `${b}attn.hook_q`, `${b}attn.hook_k`, `${b}attn.hook_v`);
    if (rotary) names.push(`${b}attn.hook_rot_q`, `${b}attn.hook_rot_k`);
    names.push(`${b}attn.hook_attn_scores`, `${b}attn.hook_pattern`, `${b}attn.hook_z`);
    if (cfg.useAttnResult) names.push(`${b}attn.hook_result`);
    names.push(`${b}hook_attn_out`, `${b}hook_resid_mid`, `${b}ln2.hook_scale`, `${b}ln2.hook_normalized`, `${b}mlp.hook_pre`);
    if (cfg.gatedMlp) names.push(`${b}mlp.hook_pre_linear`);
    names.push(`${b}mlp.hook_post`, `${b}hook_mlp_out`, `${b}hook_resid_post`);
  }
  names.push("ln_final.hook_scale", "ln_final.hook_normalized");
  return names;
}

const ATTN = new Set(["q", "k", "v", "rot_q", "rot_k", "z", "pattern", "attn_scores", "result"]);
const MLP = new Set(["pre", "pre_linear", "post"]);
const BLOCK = new Set(["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"]);
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

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
