import { Tensor } from "../engine/tensor.js";
import { checkConfig, type HookedTransformerConfig } from "./config.js";

/** TransformerLens parameter name → tensor, e.g. `blocks.0.attn.W_Q` → [n_heads, d_model, d_head]. */
export type Weights = Map<string, Tensor>;

/**
 * The TransformerLens name of a key/value weight or bias: `W_K`, or `_W_K` with grouped-query
 * attention, where TransformerLens keeps the [nKeyValueHeads, ...] form under the underscored name.
 */
export function kvName(cfg: Pick<HookedTransformerConfig, "nHeads" | "nKeyValueHeads">, name: "W_K" | "W_V" | "b_K" | "b_V"): string {
  return cfg.nKeyValueHeads === cfg.nHeads ? name : `_${name}`;
}

/** The parameters a config needs, with their TransformerLens shapes. Norm weights exist only while unfolded. */
export function parameterShapes(cfg: HookedTransformerConfig): Map<string, number[]> {
  const { nLayers, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, nCtx } = cfg;
  const shapes = new Map<string, number[]>();
  const hasNormWeights = cfg.normalizationType === "LN" || cfg.normalizationType === "RMS";
  const hasNormBias = cfg.normalizationType === "LN";
  const norm = (name: string) => {
    if (hasNormWeights) shapes.set(`${name}.w`, [D]);
    if (hasNormBias) shapes.set(`${name}.b`, [D]);
  };
  shapes.set("embed.W_E", [V, D]);
  if (cfg.positionalEmbeddingType === "standard") shapes.set("pos_embed.W_pos", [nCtx, D]);
  for (let l = 0; l < nLayers; l++) {
    const p = `blocks.${l}.`;
    norm(`${p}ln1`);
    norm(`${p}ln2`);
    shapes.set(`${p}attn.W_Q`, [H, D, d]);
    shapes.set(`${p}attn.b_Q`, [H, d]);
    shapes.set(`${p}attn.${kvName(cfg, "W_K")}`, [Hk, D, d]);
    shapes.set(`${p}attn.${kvName(cfg, "b_K")}`, [Hk, d]);
    shapes.set(`${p}attn.${kvName(cfg, "W_V")}`, [Hk, D, d]);
    shapes.set(`${p}attn.${kvName(cfg, "b_V")}`, [Hk, d]);
    shapes.set(`${p}attn.W_O`, [H, d, D]);
    shapes.set(`${p}attn.b_O`, [D]);
    if (cfg.gatedMlp) shapes.set(`${p}mlp.W_gate`, [D, M]);
    shapes.set(`${p}mlp.W_in`, [D, M]);
    shapes.set(`${p}mlp.b_in`, [M]);
    shapes.set(`${p}mlp.W_out`, [M, D]);
    shapes.set(`${p}mlp.b_out`, [D]);
    // Post-norms act on every head's sum: never folded, so always present.
    if (cfg.postNorms) {
      shapes.set(`${p}ln1_post.w`, [D]);
      shapes.set(`${p}ln2_post.w`, [D]);
    }
  }
  norm("ln_final");
  shapes.set("unembed.W_U", [D, V]);
  shapes.set("unembed.b_U", [V]);
  return shapes;
}

/**
 * Checks that the forward can run a config with these weights: the config passes `checkConfig`,
 * and every parameter it needs is present with its shape, and no other.
 *
 * @throws ConfigError for an impossible config; Error naming the parameter when a weight is missing,
 * unexpected or of the wrong shape
 * @example
 * ```ts
 * checkWeights(cfg, weights);   // as HookedTransformer's constructor does
 * ```
 */
export function checkWeights(cfg: HookedTransformerConfig, weights: ReadonlyMap<string, Tensor>): void {
  checkConfig(cfg);
  const expected = parameterShapes(cfg);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`weights: missing parameter ${name} (expected shape [${shape.join(", ")}])`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`weights: ${name} has shape [${t.shape.join(", ")}] but the config needs [${shape.join(", ")}]`);
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) throw new Error(`weights: unexpected parameter ${name} for this config (normalization ${cfg.normalizationType})`);
  }
}

/** A deep copy of a weights map (processing works on copies so a caller's map is never changed). */
export function cloneWeights(weights: Weights): Weights {
  return new Map([...weights].map(([k, t]) => [k, t.clone()]));
}
