import type { Tensor } from "../engine/tensor.js";
import {
  accumulatedResid, applyLnToStack, decomposeResid, logitAttrs, stackHeadResults,
  type AccumulatedResidOptions, type ApplyLnOptions, type CacheModel, type DecomposeResidOptions,
  type LogitAttrsOptions, type LogitTokens, type StackHeadResultsOptions,
} from "./cache-analysis.js";
import { assertHookName, getActName } from "./hook-points.js";

type Labelled<O> = O & { returnLabels: true };
type Unlabelled<O> = O & { returnLabels?: false };

/**
 * The activations saved by `runWithCache`, by TransformerLens hook name. Tensors are
 * copies (ordinary Float32Arrays), so they outlive the forward pass.
 *
 * @example
 * ```ts
 * const { cache } = model.runWithCache(tokens);
 * cache.get("blocks.0.attn.hook_pattern"); // [batch, n_heads, pos, pos]
 * cache.get("q", 3);                       // blocks.3.attn.hook_q
 * cache.get("scale", 1, "ln2");            // blocks.1.ln2.hook_scale
 * ```
 */
export class ActivationCache {
  private readonly store: Map<string, Tensor>;
  /** The model the activations came from (config and weights), which the analysis helpers read. */
  readonly model: CacheModel | undefined;

  constructor(entries: Iterable<[string, Tensor]>, model?: CacheModel) {
    this.store = new Map(entries);
    this.model = model;
  }

  /** The activation by full name, or by short name and layer as {@link getActName} reads them. */
  get(name: string, layer?: number, layerType?: "ln1" | "ln2"): Tensor {
    const full = getActName(name, layer, layerType);
    const t = this.store.get(full);
    if (t === undefined) {
      if (this.store.size === 0) throw new Error(`cache has no entry "${full}": the cache is empty`);
      assertHookName(full, [...this.store.keys()]);
    }
    return t!;
  }

  /** Whether the cache holds this activation. */
  has(name: string, layer?: number, layerType?: "ln1" | "ln2"): boolean {
    return this.store.has(getActName(name, layer, layerType));
  }

  /** Cached hook names, in the order the forward pass produced them. */
  keys(): string[] {
    return [...this.store.keys()];
  }

  /** [name, tensor] pairs in forward order. */
  entries(): [string, Tensor][] {
    return [...this.store.entries()];
  }

  /** Number of cached activations. */
  get size(): number {
    return this.store.size;
  }

  /**
   * The residual stream at each layer boundary up to `layer` (undefined or -1: all, ending with
   * the final `resid_post`): [components, batch, pos, dModel], labels `0_pre`, `0_mid`, `final_post`.
   * With `applyLn`, a logit lens: each is normalised as the final layer norm would.
   * @example
   * ```ts
   * const [stack, labels] = cache.accumulatedResid(undefined, { applyLn: true, posSlice: -1, returnLabels: true });
   * const lens = stack.matmul(model.weights.get("unembed.W_U")!);   // [layers + 1, batch, dVocab]
   * ```
   */
  accumulatedResid(layer?: number, options?: Unlabelled<AccumulatedResidOptions>): Tensor;
  accumulatedResid(layer: number | undefined, options: Labelled<AccumulatedResidOptions>): [Tensor, string[]];
  accumulatedResid(layer?: number, options: AccumulatedResidOptions & { returnLabels?: boolean } = {}): Tensor | [Tensor, string[]] {
    const { stack, labels } = accumulatedResid(this, layer, options);
    return options.returnLabels === true ? [stack, labels] : stack;
  }

  /**
   * What wrote to the residual stream entering `layer` (undefined or -1: the unembedding):
   * `embed`, `pos_embed`, then `{l}_attn_out` / `{l}_mlp_out` per earlier layer; [components, batch, pos, dModel].
   * @example
   * ```ts
   * const [stack, labels] = cache.decomposeResid(undefined, { posSlice: -1, returnLabels: true });
   * const dla = cache.logitAttrs(stack, answers, wrongAnswers, { posSlice: -1 });   // [components, batch]
   * ```
   */
  decomposeResid(layer?: number, options?: Unlabelled<DecomposeResidOptions>): Tensor;
  decomposeResid(layer: number | undefined, options: Labelled<DecomposeResidOptions>): [Tensor, string[]];
  decomposeResid(layer?: number, options: DecomposeResidOptions & { returnLabels?: boolean } = {}): Tensor | [Tensor, string[]] {
    const { stack, labels } = decomposeResid(this, layer, options);
    return options.returnLabels === true ? [stack, labels] : stack;
  }

  /**
   * Each head's output `z @ W_O[h]` (no `b_O`) for the layers before `layer` (undefined or -1: all):
   * [layer * nHeads, batch, pos, dModel], labels `L0H0`, `L0H1`, ...
   * @example
   * ```ts
   * const [heads, labels] = cache.stackHeadResults(undefined, { posSlice: -1, returnLabels: true });
   * const perHead = cache.logitAttrs(heads, answers, wrongAnswers, { posSlice: -1 });
   * ```
   */
  stackHeadResults(layer?: number, options?: Unlabelled<StackHeadResultsOptions>): Tensor;
  stackHeadResults(layer: number | undefined, options: Labelled<StackHeadResultsOptions>): [Tensor, string[]];
  stackHeadResults(layer?: number, options: StackHeadResultsOptions & { returnLabels?: boolean } = {}): Tensor | [Tensor, string[]] {
    const { stack, labels } = stackHeadResults(this, layer, options);
    return options.returnLabels === true ? [stack, labels] : stack;
  }

  /**
   * Centres each vector of a residual stack and divides it by the cached scale of the layer norm
   * that reads it (`ln_final` for undefined, -1 or nLayers; else `blocks.{layer}.ln1`). Needs
   * folded layer norms (the `fromPretrained` default); cache-analysis.ts explains the choice.
   * @example
   * ```ts
   * cache.applyLnToStack(cache.decomposeResid()).sum(0);   // == cache.get("ln_final.hook_normalized")
   * ```
   */
  applyLnToStack(residualStack: Tensor, layer?: number, options: ApplyLnOptions = {}): Tensor {
    return applyLnToStack(this, residualStack, layer, options);
  }

  /**
   * Direct logit attribution of an (unscaled) residual stack: the final layer-norm scale is
   * applied, then each vector is dotted with `W_U[:, token]` (minus `W_U[:, incorrect]`).
   * Returns [components, batch, pos] (fewer dims when sliced).
   * @example
   * ```ts
   * const stack = cache.decomposeResid(undefined, { posSlice: -1 });
   * cache.logitAttrs(stack, [5, 9], [7, 2], { posSlice: -1 }).sum(0);   // logit differences per row
   * ```
   */
  logitAttrs(residualStack: Tensor, tokens: LogitTokens, incorrectTokens?: LogitTokens, options: LogitAttrsOptions = {}): Tensor {
    return logitAttrs(this, residualStack, tokens, incorrectTokens, options);
  }
}
