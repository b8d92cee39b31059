// Residual-stream analysis over a cached run, as TransformerLens's ActivationCache helpers:
// stacks of residual components, the cached layer-norm scaling, and direct logit attribution.
import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "./activation-cache.js";
import type { HookedTransformerConfig } from "./config.js";
import { hookNames } from "./hook-points.js";

/**
 * What the analysis helpers need from the model that produced a cache: its config and its
 * TransformerLens-named weights (`W_O`, `W_U`), plus a tokenizer lookup for string tokens.
 * A {@link HookedTransformer} is one.
 */
export interface CacheModel {
  readonly cfg: Readonly<HookedTransformerConfig>;
  readonly weights: ReadonlyMap<string, Tensor>;
  toSingleToken?(text: string): number;
}

/**
 * Positions to keep: one position (that dim is dropped, as TransformerLens's integer `Slice`),
 * `[start, end)` with Python slice rules (negative counts from the end), or all (`undefined`).
 */
export type PosSlice = number | readonly [start: number, end: number] | undefined;

/** Batch rows to keep, with the same rules as {@link PosSlice}. */
export type BatchSlice = PosSlice;

/** A stack of residual components [components, batch, pos, dModel] and one label per component. */
export interface LabelledStack {
  stack: Tensor;
  labels: string[];
}

export interface AccumulatedResidOptions {
  /** Also include `resid_mid` of every layer before `layer` (default false). */
  inclMid?: boolean;
  /** Include `resid_mid` of `layer` itself: the MLP's input rather than the attention's (default false). */
  mlpInput?: boolean;
  /**
   * Normalise the stack as the layer norm reading it would (default false). At the final layer
   * each component is normalised with its own statistics (a logit lens, as TransformerLens);
   * before it, with the cached scale of that layer (see {@link applyLnToStack}).
   */
  applyLn?: boolean;
  posSlice?: PosSlice;
}

export interface DecomposeResidOptions {
  /** Which sublayer outputs to include: `all` (default), `attn` or `mlp`. */
  mode?: "all" | "attn" | "mlp";
  /** Include `attn_out` of `layer` itself: decompose the MLP's input (default false). */
  mlpInput?: boolean;
  /** Apply the cached layer-norm scale of the layer that reads the stack (default false). */
  applyLn?: boolean;
  /** Include `embed` and `pos_embed` (default true). */
  inclEmbeds?: boolean;
  posSlice?: PosSlice;
}

export interface StackHeadResultsOptions {
  /** Apply the cached layer-norm scale of the layer that reads the stack (default false). */
  applyLn?: boolean;
  posSlice?: PosSlice;
}

export interface ApplyLnOptions {
  /** The positions the stack holds (already sliced); the cached scale is sliced to match. */
  posSlice?: PosSlice;
  /** Batch rows to take from the stack (when it has a batch dim) and from the cached scale. */
  batchSlice?: BatchSlice;
  /** Whether the stack has a batch dim after the components dim (default true). */
  hasBatchDim?: boolean;
  /** Read the scale of `ln2` (the MLP's input) instead of `ln1` (default false). */
  mlpInput?: boolean;
}

export interface LogitAttrsOptions {
  /** The positions the stack holds (already sliced); the cached final scale is sliced to match. */
  posSlice?: PosSlice;
  /** Batch rows to take from the stack and the cached scale. */
  batchSlice?: BatchSlice;
  /** Whether the stack has a batch dim after the components dim (default true). */
  hasBatchDim?: boolean;
}

/**
 * Token ids (or single-token strings, with a tokenizer): one for every row and position, one per
 * batch row `[batch]` (or per position when the length is not the batch size), or `[batch, pos]`.
 */
export type LogitTokens = number | string | readonly (number | string)[] | readonly (readonly (number | string)[])[];

/**
 * The residual stream at each layer boundary up to `layer` (undefined or -1: the last):
 * `resid_pre` of each layer (`{l}_pre`), with `inclMid` also `resid_mid` (`{l}_mid`), and the
 * final `resid_post` (`final_post`) when `layer` is nLayers.
 *
 * @example
 * ```ts
 * const { stack, labels } = accumulatedResid(cache, undefined, { applyLn: true, posSlice: -1 });
 * labels;       // ["0_pre", "1_pre", "final_post"]
 * stack.shape;  // [3, batch, dModel]
 * ```
 */
export function accumulatedResid(cache: ActivationCache, layer?: number, options: AccumulatedResidOptions = {}): LabelledStack {
  const op = "accumulatedResid";
  const { cfg } = needModel(cache, op);
  const { inclMid = false, mlpInput = false, applyLn = false, posSlice } = options;
  const L = resolveLayer(op, layer, cfg.nLayers, mlpInput);
  const parts: Tensor[] = [];
  const labels: string[] = [];
  const take = (name: string, label: string): void => {
    parts.push(sliceDim(need(cache, op, name), 1, posSlice, "posSlice"));
    labels.push(label);
  };
  for (let l = 0; l <= L; l++) {
    if (l === cfg.nLayers) {
      take(`blocks.${l - 1}.hook_resid_post`, "final_post");
      break;
    }
    take(`blocks.${l}.hook_resid_pre`, `${l}_pre`);
    if ((inclMid && l < L) || (mlpInput && l === L)) take(`blocks.${l}.hook_resid_mid`, `${l}_mid`);
  }
  let stack = Tensor.stack(parts, 0);
  if (applyLn) {
    stack = L === cfg.nLayers
      ? normalizeEach(op, cfg, stack)
      : applyLnToStack(cache, stack, L, { posSlice, mlpInput });
  }
  return { stack, labels };
}

/**
 * The residual stream entering `layer` (undefined or -1: the unembedding) as the sum of what
 * wrote to it: `embed`, `pos_embed`, then `{l}_attn_out` and `{l}_mlp_out` of each layer before
 * `layer`. With `mode` "all" and the embeddings, the components sum to `resid_pre` of `layer`
 * (the final `resid_post` for the last).
 *
 * @example
 * ```ts
 * const { stack, labels } = decomposeResid(cache, 1);
 * labels;                // ["embed", "pos_embed", "0_attn_out", "0_mlp_out"]
 * stack.sum(0);          // == cache.get("blocks.1.hook_resid_pre")
 * ```
 */
export function decomposeResid(cache: ActivationCache, layer?: number, options: DecomposeResidOptions = {}): LabelledStack {
  const op = "decomposeResid";
  const model = needModel(cache, op);
  const { mode = "all", mlpInput = false, applyLn = false, inclEmbeds = true, posSlice } = options;
  if (mode !== "all" && mode !== "attn" && mode !== "mlp") {
    throw new Error(`${op}: mode must be "all", "attn" or "mlp", got ${JSON.stringify(mode)}`);
  }
  const L = resolveLayer(op, layer, model.cfg.nLayers, mlpInput);
  const parts: Tensor[] = [];
  const labels: string[] = [];
  const take = (name: string, label: string): void => {
    parts.push(sliceDim(need(cache, op, name), 1, posSlice, "posSlice"));
    labels.push(label);
  };
  if (inclEmbeds) {
    // Models without learned positions (rotary) have no hook_pos_embed to add.
    const points = hookNames(model.cfg);
    for (const [name, label] of [["hook_embed", "embed"], ["hook_pos_embed", "pos_embed"]] as const) {
      if (points.includes(name)) take(name, label);
    }
  }
  for (let l = 0; l < L; l++) {
    if (mode !== "mlp") take(`blocks.${l}.hook_attn_out`, `${l}_attn_out`);
    if (mode !== "attn") take(`blocks.${l}.hook_mlp_out`, `${l}_mlp_out`);
  }
  if (mlpInput && mode !== "mlp") take(`blocks.${L}.hook_attn_out`, `${L}_attn_out`);
  let stack = parts.length > 0 ? Tensor.stack(parts, 0) : emptyStack(cache, op, model.cfg.dModel, posSlice);
  if (applyLn) stack = applyLnToStack(cache, stack, L, { posSlice, mlpInput });
  return { stack, labels };
}

/**
 * Every attention head's output `z[:, :, h] @ W_O[h]` (without `b_O`) for the layers before
 * `layer` (undefined or -1: all), as components `L{l}H{h}`: [layer * nHeads, batch, pos, dModel].
 * Uses the cached `attn.hook_result` when present, else the cached `attn.hook_z` and the model's
 * `W_O`. A layer's heads plus `b_O` sum to its `hook_attn_out`.
 *
 * @example
 * ```ts
 * const { stack, labels } = stackHeadResults(cache, 1, { posSlice: -1 });
 * labels;       // ["L0H0", "L0H1", ...]
 * stack.shape;  // [nHeads, batch, dModel]
 * ```
 */
export function stackHeadResults(cache: ActivationCache, layer?: number, options: StackHeadResultsOptions = {}): LabelledStack {
  const op = "stackHeadResults";
  const model = needModel(cache, op);
  const { applyLn = false, posSlice } = options;
  const L = resolveLayer(op, layer, model.cfg.nLayers, false);
  const parts: Tensor[] = [];
  const labels: string[] = [];
  for (let l = 0; l < L; l++) {
    parts.push(headResults(cache, model, l, posSlice));
    for (let h = 0; h < model.cfg.nHeads; h++) labels.push(`L${l}H${h}`);
  }
  let stack = parts.length > 0 ? Tensor.concat(parts, 0) : emptyStack(cache, op, model.cfg.dModel, posSlice);
  if (applyLn) stack = applyLnToStack(cache, stack, L, { posSlice });
  return { stack, labels };
}

/**
 * Scales a stack of residual components as the layer norm reading them would, with the scale
 * cached in this run: each vector is centred over dModel and divided by `ln_final.hook_scale`
 * (layer undefined, -1 or nLayers) or `blocks.{layer}.ln1.hook_scale` (`ln2` with `mlpInput`).
 * The scale is shared by all components, so the result is still a decomposition: the scaled
 * components sum to `hook_normalized` of that layer norm.
 *
 * This is the whole layer norm only when its weights are folded into the next layer
 * (normalization `LNPre`/`RMSPre`, the `fromPretrained` default); for unfolded models it throws
 * rather than return a stack that leaves out the norm's weight and bias. RMS norms are not centred.
 *
 * @example
 * ```ts
 * const { stack } = decomposeResid(cache);
 * const scaled = applyLnToStack(cache, stack);
 * scaled.sum(0);   // == cache.get("ln_final.hook_normalized")
 * ```
 */
export function applyLnToStack(cache: ActivationCache, residualStack: Tensor, layer?: number, options: ApplyLnOptions = {}): Tensor {
  const op = "applyLnToStack";
  const { cfg } = needModel(cache, op);
  const { posSlice, batchSlice, hasBatchDim = true, mlpInput = false } = options;
  const centre = foldedNorm(op, cfg);
  const L = resolveLayer(op, layer, cfg.nLayers, mlpInput);
  checkStack(op, residualStack, cfg.dModel, hasBatchDim ? 3 : 2);
  const scaleName = L === cfg.nLayers ? "ln_final.hook_scale" : `blocks.${L}.${mlpInput ? "ln2" : "ln1"}.hook_scale`;
  const stack = hasBatchDim ? sliceDim(residualStack, 1, batchSlice, "batchSlice") : residualStack;
  // [batch, pos, 1]: positions first, while the batch dim is still in front of them.
  let scale = sliceDim(need(cache, op, scaleName), 1, posSlice, "posSlice");
  scale = sliceDim(scale, 0, batchSlice, "batchSlice");
  if (!hasBatchDim && typeof batchSlice !== "number") {
    if (scale.shape[0] !== 1) {
      throw new Error(`${op}: a stack without a batch dim needs batchSlice to pick one row of the cached batch of ${scale.shape[0]}`);
    }
    scale = scale.select(0, 0);
  }
  const inner = stack.shape.slice(1, -1);
  const scaleInner = scale.shape.slice(0, -1);
  if (inner.length !== scaleInner.length || inner.some((n, i) => n !== scaleInner[i])) {
    throw new Error(`${op}: the stack's dims between components and dModel are [${inner.join(", ")}] but the cached ${scaleName} sliced by posSlice/batchSlice gives [${scaleInner.join(", ")}]; pass the posSlice/batchSlice the stack was made with`);
  }
  const centred = centre ? stack.sub(stack.mean(-1, { keepdim: true })) : stack;
  return centred.div(scale);
}

/**
 * Direct logit attribution: how much each component of a residual stack writes along the
 * unembedding direction `W_U[:, token]` (or `W_U[:, token] - W_U[:, incorrect]`), after the
 * cached final layer-norm scale (as TransformerLens, the stack is passed unscaled and
 * {@link applyLnToStack} is applied here). Returns [components, batch, pos] (dims dropped by the
 * slices are dropped here too). Summed over the components of `decomposeResid`, plus `b_U`, it
 * gives the logit of the token (or, without `b_U`, the logit difference).
 *
 * @example
 * ```ts
 * const { stack, labels } = decomposeResid(cache, undefined, { posSlice: -1 });
 * const attrs = logitAttrs(cache, stack, [5, 9], [7, 2], { posSlice: -1 });   // [components, batch]
 * ```
 */
export function logitAttrs(cache: ActivationCache, residualStack: Tensor, tokens: LogitTokens,
  incorrectTokens?: LogitTokens, options: LogitAttrsOptions = {}): Tensor {
  const op = "logitAttrs";
  const model = needModel(cache, op);
  const { posSlice, batchSlice, hasBatchDim = true } = options;
  let directions = tokenDirections(op, "tokens", model, tokens);
  if (incorrectTokens !== undefined) {
    const wrong = tokenDirections(op, "incorrectTokens", model, incorrectTokens);
    if (wrong.ndim !== directions.ndim || wrong.shape.some((n, i) => n !== directions.shape[i])) {
      throw new Error(`${op}: tokens and incorrectTokens must have the same shape, got [${directions.shape.slice(0, -1).join(", ")}] and [${wrong.shape.slice(0, -1).join(", ")}]`);
    }
    directions = directions.sub(wrong);
  }
  const scaled = applyLnToStack(cache, residualStack, model.cfg.nLayers, { posSlice, batchSlice, hasBatchDim });
  // One token per batch row reads every position of that row.
  if (hasBatchDim && typeof batchSlice !== "number" && scaled.ndim === 4 && directions.ndim === 2
    && directions.shape[0] === scaled.shape[1]) {
    directions = directions.unsqueeze(1);
  }
  let product: Tensor | undefined;
  try {
    product = scaled.mul(directions);
  } catch {
    product = undefined;
  }
  if (product === undefined || product.ndim !== scaled.ndim || product.shape.some((n, i) => n !== scaled.shape[i])) {
    throw new Error(`${op}: tokens of shape [${directions.shape.slice(0, -1).join(", ")}] do not fit a stack of shape [${scaled.shape.join(", ")}]; give one token, one per batch row, or one per [batch, pos] entry of the stack`);
  }
  return product.sum(-1);
}

// ---------------------------------------------------------------- helpers

function needModel(cache: ActivationCache, op: string): CacheModel {
  if (cache.model === undefined) {
    throw new Error(`${op}: this cache has no model (config and weights); use the cache runWithCache returns, or new ActivationCache(entries, model)`);
  }
  return cache.model;
}

function need(cache: ActivationCache, op: string, name: string): Tensor {
  if (!cache.has(name)) {
    throw new Error(`${op}: the cache has no "${name}"; run runWithCache with a namesFilter that keeps it (or none)`);
  }
  return cache.get(name);
}

/** undefined and -1 mean nLayers (the unembedding); `mlpInput` needs a block, so < nLayers. */
function resolveLayer(op: string, layer: number | undefined, nLayers: number, mlpInput: boolean): number {
  const L = layer === undefined || layer === -1 ? nLayers : layer;
  if (!Number.isInteger(L) || L < 0 || L > nLayers) {
    throw new Error(`${op}: layer must be an integer in [0, ${nLayers}] (or -1 / undefined for ${nLayers}), got ${layer}`);
  }
  if (mlpInput && L === nLayers) {
    throw new Error(`${op}: mlpInput needs a block's MLP, so layer must be below ${nLayers}, got ${layer ?? "undefined"}`);
  }
  return L;
}

/** Whether the (folded) norm centres; throws for norms that still carry a weight and bias. */
function foldedNorm(op: string, cfg: Readonly<HookedTransformerConfig>): boolean {
  if (cfg.normalizationType === "LNPre") return true;
  if (cfg.normalizationType === "RMSPre") return false;
  throw new Error(`${op}: the model's layer norms are not folded (normalizationType "${cfg.normalizationType}"), so the cached scale is not the whole norm; load it with foldLn (the fromPretrained default)`);
}

function sliceDim(t: Tensor, dim: number, slice: PosSlice, what: string): Tensor {
  if (slice === undefined) return t;
  if (typeof slice === "number") {
    if (!Number.isInteger(slice) || slice < -t.shape[dim]! || slice >= t.shape[dim]!) {
      throw new Error(`${what}: index must be an integer in [${-t.shape[dim]!}, ${t.shape[dim]!}), got ${slice}`);
    }
    return t.select(dim, slice);
  }
  if (!Array.isArray(slice) || slice.length !== 2 || !slice.every(Number.isInteger)) {
    throw new Error(`${what}: expected an index, [start, end) or undefined, got ${JSON.stringify(slice)}`);
  }
  return t.slice(dim, slice[0], slice[1]);
}

function checkStack(op: string, stack: Tensor, dModel: number, minDims: number): void {
  if (!(stack instanceof Tensor) || stack.ndim < minDims || stack.shape[stack.ndim - 1] !== dModel) {
    const shape = stack instanceof Tensor ? `[${stack.shape.join(", ")}]` : typeof stack;
    throw new Error(`${op}: residualStack must be [components, ${minDims === 3 ? "batch, " : ""}(pos,) ${dModel}], got ${shape}`);
  }
}

/** A stack of no components, shaped like the residual stream after the position slice. */
function emptyStack(cache: ActivationCache, op: string, dModel: number, posSlice: PosSlice): Tensor {
  const source = cache.has("hook_embed") ? "hook_embed" : "blocks.0.hook_resid_pre";
  const shape = sliceDim(need(cache, op, source), 1, posSlice, "posSlice").shape;
  return Tensor.zeros([0, ...shape.slice(0, -1), dModel]);
}

/** [nHeads, batch, pos, dModel] outputs of layer `l`'s heads, before b_O. */
function headResults(cache: ActivationCache, model: CacheModel, l: number, posSlice: PosSlice): Tensor {
  const headsFirst = (t: Tensor): Tensor => {
    const h = t.ndim - 2;
    return t.permute([h, ...t.shape.map((_, i) => i).filter((i) => i !== h)]);
  };
  const resultName = `blocks.${l}.attn.hook_result`;
  if (cache.has(resultName)) return headsFirst(sliceDim(cache.get(resultName), 1, posSlice, "posSlice"));
  const z = headsFirst(sliceDim(need(cache, "stackHeadResults", `blocks.${l}.attn.hook_z`), 1, posSlice, "posSlice"));
  const W_O = model.weights.get(`blocks.${l}.attn.W_O`);
  if (W_O === undefined) throw new Error(`stackHeadResults: the model has no weight "blocks.${l}.attn.W_O"`);
  const [H, dHead] = [z.shape[0]!, z.shape[z.ndim - 1]!];
  const rows = z.size / (H * dHead);
  // [H, rows, dHead] @ [H, dHead, dModel]: one product per head.
  const out = z.reshape([H, rows, dHead]).matmul(W_O);
  return out.reshape([...z.shape.slice(0, -1), model.cfg.dModel]);
}

/** LNPre/RMSPre with each component's own statistics: what the final norm does to it alone. */
function normalizeEach(op: string, cfg: Readonly<HookedTransformerConfig>, stack: Tensor): Tensor {
  const x = foldedNorm(op, cfg) ? stack.sub(stack.mean(-1, { keepdim: true })) : stack;
  const scale = x.mul(x).mean(-1, { keepdim: true }).add(cfg.eps).sqrt();
  return x.div(scale);
}

/** W_U columns of the tokens: [...tokensShape, dModel]. */
function tokenDirections(op: string, what: string, model: CacheModel, tokens: LogitTokens): Tensor {
  const W_U = model.weights.get("unembed.W_U");
  if (W_U === undefined) throw new Error(`${op}: the model has no weight "unembed.W_U"`);
  const [D, V] = [W_U.shape[0]!, W_U.shape[1]!];
  const toId = (t: number | string): number => {
    if (typeof t === "string") {
      if (model.toSingleToken === undefined) throw new Error(`${op}: ${what}: string tokens need a model with a tokenizer, got ${JSON.stringify(t)}`);
      return model.toSingleToken(t);
    }
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${op}: ${what}: token ids must be integers in [0, ${V}), got ${t}`);
    return t;
  };
  let ids: number[];
  let shape: number[];
  if (!Array.isArray(tokens)) {
    ids = [toId(tokens as number | string)];
    shape = [];
  } else if (tokens.length > 0 && Array.isArray(tokens[0])) {
    const rows = tokens as readonly (readonly (number | string)[])[];
    const width = rows[0]!.length;
    if (rows.some((r) => !Array.isArray(r) || r.length !== width)) {
      throw new Error(`${op}: ${what}: rows must all have ${width} tokens`);
    }
    ids = rows.flatMap((r) => r.map(toId));
    shape = [rows.length, width];
  } else {
    ids = (tokens as readonly (number | string)[]).map(toId);
    shape = [ids.length];
  }
  const out = new Float32Array(ids.length * D);
  ids.forEach((id, i) => {
    for (let d = 0; d < D; d++) out[i * D + d] = W_U.data[d * V + id]!;
  });
  return new Tensor(out, [...shape, D]);
}
