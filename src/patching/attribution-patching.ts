import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import { getActName } from "../model/hook-points.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { checkBatch, needCached } from "./cache-access.js";
import type { Metric } from "./metrics.js";
import { metricsOf } from "./final-metric.js";
import { PatchResult, type PerPromptRows } from "./result.js";

/**
 * What one attribution kind estimates: the activation-patching entries over `axes` of activation
 * `activation` (short name, per layer). `keep` maps each result axis after `layer` to the
 * activation's axis it indexes; every other activation axis is summed over.
 */
interface AttributionKind {
  activation: string;
  /** Result axes after `layer`: [name, activation axis]. */
  keep: readonly (readonly ["pos" | "head", number])[];
}

/** The kinds of TransformerLens's attribution patching, named as the activation patching functions they estimate. */
export const ATTRIBUTION_KINDS = {
  resid_pre: { activation: "resid_pre", keep: [["pos", 1]] },
  resid_mid: { activation: "resid_mid", keep: [["pos", 1]] },
  resid_post: { activation: "resid_post", keep: [["pos", 1]] },
  attn_out: { activation: "attn_out", keep: [["pos", 1]] },
  mlp_out: { activation: "mlp_out", keep: [["pos", 1]] },
  attn_head_out_all_pos: { activation: "z", keep: [["head", 2]] },
  attn_head_q_all_pos: { activation: "q", keep: [["head", 2]] },
  attn_head_k_all_pos: { activation: "k", keep: [["head", 2]] },
  attn_head_v_all_pos: { activation: "v", keep: [["head", 2]] },
  attn_head_pattern_all_pos: { activation: "pattern", keep: [["head", 1]] },
  attn_head_out_by_pos: { activation: "z", keep: [["pos", 1], ["head", 2]] },
  attn_head_q_by_pos: { activation: "q", keep: [["pos", 1], ["head", 2]] },
  attn_head_k_by_pos: { activation: "k", keep: [["pos", 1], ["head", 2]] },
  attn_head_v_by_pos: { activation: "v", keep: [["pos", 1], ["head", 2]] },
  // Patterns [batch, head, dest, src]: by the destination (query) position.
  attn_head_pattern_by_pos: { activation: "pattern", keep: [["pos", 2], ["head", 1]] },
} as const satisfies Record<string, AttributionKind>;

export type AttributionKindName = keyof typeof ATTRIBUTION_KINDS;

/** What an attribution result records of how it was made. */
export interface AttributionRecord {
  kind: AttributionKindName;
  /** Always `attribution`: a first-order estimate, not a patched run. */
  method: "attribution";
}

/**
 * Attribution patching: every entry of an activation-patching sweep estimated to first order from
 * one corrupted forward and one backward pass,
 * `attr[e] = M(corrupted) + Σ over the entry's slice of (a_clean - a_corrupted) · dM/da (corrupted run)`.
 * One corrupted forward + backward serves every kind asked for. The results have the shapes of the
 * matching `getActPatch*` results; their `baseline` and `clean` are the two runs' metrics.
 *
 * With a metric that has `perPrompt` (the built-in ones), each result also keeps each prompt's own
 * estimate, from the same pass: batch rows never mix in a transformer, so row b's gradient of the
 * mean metric is 1/B of the gradient of prompt b's metric, and prompt b's estimate is
 * `M_b(corrupted) + B · Σ over row b's slice of (a_clean - a_corrupted) · dM/da`; their mean is the score.
 *
 * @example
 * ```ts
 * const { cache: clean } = model.runWithCache(cleanTokens);
 * const results = getAttrPatchAll(model, corruptedTokens, clean, logitDiff(answers), { kinds: ["resid_pre", "attn_head_out_all_pos"] });
 * results.attn_head_out_all_pos.scores;  // [nLayers, nHeads], estimates of getActPatchAttnHeadOutAllPos
 * ```
 */
export function getAttrPatchAll<K extends AttributionKindName>(model: HookedTransformer, corruptedTokens: TokenIds,
  cleanCache: ActivationCache, metric: Metric, options: { kinds: readonly K[] }): Record<K, PatchResult<AttributionRecord>> {
  const kinds = [...new Set(options.kinds)];
  for (const kind of kinds) {
    if (!(kind in ATTRIBUTION_KINDS)) throw new Error(`unknown attribution kind ${JSON.stringify(kind)} (${Object.keys(ATTRIBUTION_KINDS).join(", ")})`);
  }
  if (kinds.length === 0) throw new Error("getAttrPatchAll: give at least one kind");
  const cfg = model.cfg;
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  const tokens = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P)));
  const hooks = new Set<string>();
  for (const kind of kinds) for (let l = 0; l < cfg.nLayers; l++) hooks.add(getActName(ATTRIBUTION_KINDS[kind].activation, l));
  for (const hook of hooks) checkBatch(needCached(cleanCache, "cleanCache", hook), hook, B, P);
  const lastName = `blocks.${cfg.nLayers - 1}.hook_resid_post`;
  const lastClean = checkBatch(needCached(cleanCache, "cleanCache", lastName), lastName, B, P);
  const clean = metricsOf(metric, model.forward(tokens, { startAtLayer: cfg.nLayers, residual: lastClean }).logits!, "the clean run");

  const names = [...hooks].flatMap((h) => [h, `${h}_grad`]);
  const { cache: corrupted, metric: baselineValue, logits } = model.runWithCache(tokens, { inclBwd: true, metric, namesFilter: names });
  const baseline = finite(baselineValue!, "the corrupted run");
  const baselineRows = metric.perPrompt === undefined ? undefined : metricsOf(metric, logits!, "the corrupted run").perPrompt;
  const results = {} as Record<K, PatchResult<AttributionRecord>>;
  for (const kind of kinds) {
    const spec: AttributionKind = ATTRIBUTION_KINDS[kind];
    const perLayer: Float64Array[] = [];
    let keptShape: number[] = [];
    for (let l = 0; l < cfg.nLayers; l++) {
      const hook = getActName(spec.activation, l);
      const slices = sliceSums(cleanCache.get(hook), corrupted.get(hook), corrupted.get(`${hook}_grad`), spec.keep);
      perLayer.push(slices.sums);
      keptShape = slices.keptShape;
    }
    // perLayer[l]: [B, kept] row sums; the score sums the rows, prompt b's estimate scales its own by B.
    const kept = keptShape.reduce((a, b) => a * b, 1);
    const scores = new Float32Array(cfg.nLayers * kept);
    const rows = baselineRows === undefined ? undefined : new Float32Array(B * scores.length);
    perLayer.forEach((sums, l) => {
      for (let i = 0; i < kept; i++) {
        let total = 0;
        for (let b = 0; b < B; b++) {
          total += sums[b * kept + i]!;
          if (rows !== undefined) rows[b * scores.length + l * kept + i] = baselineRows![b]! + B * sums[b * kept + i]!;
        }
        scores[l * kept + i] = baseline + total;
      }
    });
    const shape = [cfg.nLayers, ...keptShape];
    const perPrompt: PerPromptRows | undefined = rows === undefined || clean.perPrompt === undefined ? undefined
      : { scores: new Tensor(rows, [B, ...shape]), baseline: baselineRows!, clean: clean.perPrompt };
    results[kind] = new PatchResult(`attr_patch_${kind}`, new Tensor(scores, shape), baseline, clean.value, { kind, method: "attribution" }, undefined, perPrompt);
  }
  return results;
}

/**
 * Per batch row, Σ over everything but the batch and the kept axes of (clean - corrupted) · grad,
 * in float64, laid out [batch, kept axes in order] (every activation's axis 0 is the batch).
 */
function sliceSums(clean: Tensor, corrupted: Tensor, grad: Tensor, keep: AttributionKind["keep"]): { sums: Float64Array; keptShape: number[] } {
  const shape = corrupted.shape;
  const keptShape = keep.map(([, axis]) => shape[axis]!);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const keptSize = keptShape.reduce((a, b) => a * b, 1);
  const keptStrides = keptShape.map((_, i) => keptShape.slice(i + 1).reduce((a, b) => a * b, 1));
  const sums = new Float64Array(shape[0]! * keptSize);
  for (let i = 0; i < corrupted.size; i++) {
    let out = Math.floor(i / strides[0]!) * keptSize;
    keep.forEach(([, axis], k) => { out += (Math.floor(i / strides[axis]!) % shape[axis]!) * keptStrides[k]!; });
    const delta = clean.data[i]! - corrupted.data[i]!;
    // Masked attention entries are 0 in both runs (and -∞ scores never reach here): nothing to add.
    if (delta !== 0) sums[out]! += delta * grad.data[i]!;
  }
  return { sums, keptShape };
}

function finite(value: number, run: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`the metric returned ${value} for ${run}; it must give finite numbers`);
  return value;
}

type AttrArgs = [model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache, metric: Metric];

/** One kind as its own function, as the activation patching family is. */
function attrKind(kind: AttributionKindName) {
  return (...[model, corruptedTokens, cleanCache, metric]: AttrArgs): PatchResult<AttributionRecord> =>
    getAttrPatchAll(model, corruptedTokens, cleanCache, metric, { kinds: [kind] })[kind];
}

/** [nLayers, pos]: estimates of {@link getActPatchResidPre}. */
export const getAttrPatchResidPre = attrKind("resid_pre");
/** [nLayers, pos]: estimates of {@link getActPatchResidMid}. */
export const getAttrPatchResidMid = attrKind("resid_mid");
/** [nLayers, pos]: estimates of patching `blocks.l.hook_resid_post[:, p]`. */
export const getAttrPatchResidPost = attrKind("resid_post");
/** [nLayers, pos]: estimates of {@link getActPatchAttnOut}. */
export const getAttrPatchAttnOut = attrKind("attn_out");
/** [nLayers, pos]: estimates of {@link getActPatchMlpOut}. */
export const getAttrPatchMlpOut = attrKind("mlp_out");
/** [nLayers, nHeads]: estimates of {@link getActPatchAttnHeadOutAllPos}. */
export const getAttrPatchAttnHeadOutAllPos = attrKind("attn_head_out_all_pos");
/** [nLayers, nHeads]: estimates of {@link getActPatchAttnHeadQAllPos}. */
export const getAttrPatchAttnHeadQAllPos = attrKind("attn_head_q_all_pos");
/** [nLayers, nKeyValueHeads]: estimates of {@link getActPatchAttnHeadKAllPos}. */
export const getAttrPatchAttnHeadKAllPos = attrKind("attn_head_k_all_pos");
/** [nLayers, nKeyValueHeads]: estimates of {@link getActPatchAttnHeadVAllPos}. */
export const getAttrPatchAttnHeadVAllPos = attrKind("attn_head_v_all_pos");
/** [nLayers, nHeads]: estimates of {@link getActPatchAttnHeadPatternAllPos}. */
export const getAttrPatchAttnHeadPatternAllPos = attrKind("attn_head_pattern_all_pos");
/** [nLayers, pos, nHeads]: estimates of {@link getActPatchAttnHeadOutByPos}. */
export const getAttrPatchAttnHeadOutByPos = attrKind("attn_head_out_by_pos");
/** [nLayers, pos, nHeads]: estimates of {@link getActPatchAttnHeadQByPos}. */
export const getAttrPatchAttnHeadQByPos = attrKind("attn_head_q_by_pos");
/** [nLayers, pos, nKeyValueHeads]: estimates of {@link getActPatchAttnHeadKByPos}. */
export const getAttrPatchAttnHeadKByPos = attrKind("attn_head_k_by_pos");
/** [nLayers, pos, nKeyValueHeads]: estimates of {@link getActPatchAttnHeadVByPos}. */
export const getAttrPatchAttnHeadVByPos = attrKind("attn_head_v_by_pos");
/** [nLayers, pos, nHeads]: estimates of {@link getActPatchAttnHeadPatternByPos} (destination position). */
export const getAttrPatchAttnHeadPatternByPos = attrKind("attn_head_pattern_by_pos");
