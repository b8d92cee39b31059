import { Engine, type EngineOptions } from "../engine/engine.js";
import { GemmActivation } from "../engine/kernels.js";
import { Tensor } from "../engine/tensor.js";
import { assertFiniteWeights, loadSafetensorsWeights, readJsonConfig } from "../io/checkpoint.js";
import { openSource, type SourceInput } from "../io/source.js";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { ActivationCache } from "./activation-cache.js";
import type { HookedTransformerConfig } from "./config.js";
import { familyOf } from "./families/index.js";
import { checkWeightsFitMemory } from "./memory-fit.js";
import { processWeights, type ProcessOptions } from "./process-weights.js";
import {
  type WeightDtype, packedProduct, roundedWeights, freeTransposedWeights, freeWeights, unembedColumns, uploadRawProjections, uploadTransposedUnembed, uploadTransposedWeights, uploadWeights, type DevicePointers,
  type TransposedPointers,
} from "./device-weights.js";
import { gradientMemory } from "./activation-sizes.js";
import { assertDifferentiable, forwardBackward, type DifferentiableMetric } from "./gradients.js";
import { runForward } from "./forward.js";
import { assertHookName, hookNames, type HookFilter, type HookFn } from "./hook-points.js";
import { encodeBatch, singleToken, strTokens, type EncodedBatch, type ToTokensOptions } from "./text.js";
import { toMask, toTokenBatch, type TokenBatch, type TokenIds } from "./tokens.js";
import { checkWeights, type Weights } from "./weights.js";

/** What `forward` returns (TransformerLens's `return_type`). */
export type ForwardReturnType = "logits" | "loss" | "both" | "none";

export interface ForwardOptions {
  /** `logits` (default), `loss` (mean next-token cross-entropy), `both`, or `none`. */
  returnType?: ForwardReturnType;
  /**
   * With `loss`: one loss per predicted token, [batch, pos - 1], instead of the mean. With an
   * attention mask, a prediction counts only where both its position and the next are real
   * tokens (0 in the per-token loss elsewhere), as TransformerLens's `lm_cross_entropy_loss`.
   */
  lossPerToken?: boolean;
  /** Start at this block, from `residual` ([batch, pos, dModel]) instead of tokens. */
  startAtLayer?: number;
  /** The residual stream entering `startAtLayer`. */
  residual?: Tensor;
  /**
   * Advanced, with `residual`: it is block `startAtLayer`'s `hook_resid_mid` (the stream after that
   * block's attention), so the block starts at its second layer norm. Its attention, and its hooks
   * before `hook_resid_mid`, do not run.
   */
  startAfterAttention?: boolean;
  /** Run blocks before this index only and return the residual stream entering it (after the last block when it equals nLayers). */
  stopAtLayer?: number;
  /** [batch, pos] of 1 (token) and 0 (padding); padded keys are never attended to and position ids skip padding. */
  attentionMask?: readonly (readonly number[])[] | Tensor;
  /** Hooks for this call only, as TransformerLens `fwd_hooks`: [name or predicate, fn] pairs. */
  fwdHooks?: readonly (readonly [HookFilter, HookFn])[];
  /** Unembed only the last position of each row: logits are [batch, 1, dVocab] (saves the unembedding of the rest). */
  lastPositionOnly?: boolean;
  /**
   * Advanced: reuse the first `length` positions of an earlier run of the same tokens. Their keys
   * and values come from `keysValues(layer)` (each [batch or a divisor of it, pos, nKeyValueHeads, dHead],
   * e.g. a cache's `hook_k` (`hook_rot_k` with rotary embeddings) and `hook_v`; a smaller batch is
   * repeated cyclically), only positions
   * [length, pos) are computed, `residual` (with startAtLayer) covers only those, and hooks and
   * outputs see only those (a hook's `positionStart` is `length`).
   */
  keptPrefix?: { length: number; keysValues: (layer: number) => { k: Tensor; v: Tensor } };
  /**
   * Advanced, with lastPositionOnly: in the last block compute keys and values everywhere but the
   * rest only at each row's last position. Exact for the last position's logits; hooks of that
   * block after hook_v see one position. With returnType "none", `ln_final.hook_normalized` sees
   * that one position of each row (a caller that unembeds only some tokens reads it there).
   */
  pruneLastLayer?: boolean;
}

export interface ForwardResult {
  /** [batch, pos, dVocab] (absent for returnType "loss"/"none" and when stopping early). */
  logits?: Tensor;
  /** Mean loss, or [batch, pos - 1] with lossPerToken. */
  loss?: number | Tensor;
  /** With stopAtLayer: the residual stream [batch, pos, dModel] entering that block. */
  residual?: Tensor;
}

export interface FromPretrainedOptions extends EngineOptions, ProcessOptions {
  /** Run on this engine instead of creating one. */
  engine?: Engine;
  /** Apply TransformerLens weight processing (default true; each step can also be switched off alone). */
  processWeights?: boolean;
  /** Compute `attn.hook_result` (per-head outputs, [batch, pos, nHeads, dModel]); costs memory. */
  useAttnResult?: boolean;
  /**
   * List each head's own copy of its input among the hook points: `blocks.l.hook_q_input`,
   * `hook_k_input`, `hook_v_input` (TransformerLens `use_split_qkv_input`). Without it they exist on
   * demand, when named exactly (see {@link HookedTransformer.hookNames}); the fused path runs in
   * every layer no hook watches.
   */
  useSplitQkvInput?: boolean;
  /** List the hook point `blocks.l.hook_mlp_in`, the MLP's own copy of resid_mid (TransformerLens `use_hook_mlp_in`; on demand without it). */
  useHookMlpIn?: boolean;
  /** Load the folder's tokenizer when it has one (default true); false works on token ids only. */
  tokenizer?: boolean;
  /**
   * Loads the `@huggingface/tokenizers` module for the folder's tokenizer; defaults to a dynamic
   * `import()` of the bare name. Pass one where bare imports do not resolve (a Web Worker, which
   * has no import map): `() => import("/vendor/tokenizers.mjs")`.
   */
  tokenizerLibrary?: () => Promise<unknown>;
  /** Refuse weights holding NaN or ±Infinity with a ModelFormatError naming the tensor (default true; one pass over the weights). */
  checkFinite?: boolean;
  /**
   * How the engine stores the weight matrices: `"f32"` (default), or `"f16"` / `"bf16"`, half the
   * memory (every block's matrices and W_U rounded once, products still accumulating in f32;
   * embeddings, norms, biases, activations, caches and gradients stay f32). f16 keeps 3 more
   * mantissa bits (errors about 8× smaller); bf16 keeps f32's range (f16 refuses a weight beyond ±65504).
   */
  dtype?: WeightDtype;
}

/** Token ids, or text (encoded with the model's tokenizer, BOS prepended, ragged batches padded and masked). */
export type ModelInput = TokenIds | string | readonly string[];

/** Options of a run that also takes gradients (see {@link HookedTransformer.runWithHooks}). */
export interface BackwardOptions {
  /**
   * Backward hooks for this call only, as TransformerLens `bwd_hooks`: each sees the gradient of
   * the metric at its hook point (same name and shape as the activation) and may return a
   * replacement (or edit it in place), which flows on upstream. Needs `metric`.
   */
  bwdHooks?: readonly (readonly [HookFilter, HookFn])[];
  /** The metric differentiated: one with a gradient (logitDiff, logProb, normalize(...), or your own with `grad`). */
  metric?: DifferentiableMetric;
  /**
   * Refuse, before any work, a gradient run whose memory (see `gradientMemory`: the activations
   * the backward keeps, the larger of the two arenas, and the transposed weights the model packs at
   * its first backward) would exceed this many bytes. Default: no limit.
   */
  memoryBudgetBytes?: number;
  /**
   * Stops the backward with an AbortError before its next block once aborted (e.g. from a hook, or
   * by a caller running several gradient runs); the model stays usable.
   */
  signal?: AbortSignal;
}

export interface RunWithHooksOptions extends ForwardOptions, BackwardOptions {}

export interface RunWithCacheOptions extends Omit<ForwardOptions, "returnType">, BackwardOptions {
  /** Which activations to keep: names, a predicate, or all (default). With inclBwd, `<name>_grad` names select gradients. */
  namesFilter?: string | readonly string[] | ((name: string) => boolean);
  /**
   * Also run the backward of `metric` and keep the gradient at every selected hook point as
   * `<hook name>_grad` (TransformerLens `incl_bwd`).
   */
  inclBwd?: boolean;
}

/** What `runWithCache` returns. */
export interface RunWithCacheResult {
  logits?: Tensor;
  residual?: Tensor;
  cache: ActivationCache;
  /** The metric's value, when gradients were taken. */
  metric?: number;
}

/**
 * A decoder-only transformer (GPT-2 or LLaMA family, see model/families/) with a
 * TransformerLens hook at every activation. Build one with `HookedTransformer.fromPretrained`
 * from a Hugging Face checkpoint, or with `create` from a config and TransformerLens-named weights.
 *
 * @example
 * ```ts
 * const model = await HookedTransformer.create(cfg, weights);
 * const logits = model.forward([[0, 5, 7]]).logits!;       // [1, 3, dVocab]
 * const { cache } = model.runWithCache([[0, 5, 7]]);
 * cache.get("blocks.0.attn.hook_pattern");                 // [1, nHeads, 3, 3]
 * model.runWithHooks([[0, 5, 7]], {
 *   fwdHooks: [["blocks.0.attn.hook_z", (z) => { z.data.fill(0); }]],   // ablate layer 0's heads
 * });
 * ```
 */
export class HookedTransformer {
  readonly cfg: Readonly<HookedTransformerConfig>;
  /** TransformerLens-named parameters, as used by the forward pass (processed if processing was applied). */
  readonly weights: ReadonlyMap<string, Tensor>;
  readonly engine: Engine;
  /** Text ↔ ids, when the checkpoint had tokenizer files (or one was set). */
  tokenizer: Tokenizer | undefined;
  private device: DevicePointers | undefined;
  /** The weights' transposes for the backward's products, packed at the first backward. */
  private deviceT: TransposedPointers | undefined;
  /** The listed hook names ({@link hookNames}). */
  private readonly names: readonly string[];
  /** The listed names and the on-demand ones (split q/k/v inputs, hook_mlp_in), in forward order. */
  private readonly allNames: readonly string[];
  private readonly persistent: [string, HookFn][] = [];
  private readonly persistentBwd: [string, HookFn][] = [];

  /** Uploads the weights to the engine. The weights must match the config exactly (names and shapes). */
  constructor(cfg: HookedTransformerConfig, weights: Weights, engine: Engine, tokenizer?: Tokenizer, options: { dtype?: WeightDtype } = {}) {
    checkWeights(cfg, weights);
    const dtype = options.dtype ?? "f32";
    this.cfg = Object.freeze({ ...cfg });
    // A 16-bit model's host weights are the rounded ones the engine holds, so host-side arithmetic agrees with it.
    const stored = dtype === "f32" ? weights : roundedWeights(weights, dtype);
    this.weights = stored;
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.names = Object.freeze(hookNames(cfg));
    this.allNames = Object.freeze(hookNames(cfg, { onDemand: true }));
    this.device = uploadWeights(engine, cfg, stored, dtype);
  }

  /** Like the constructor, creating an engine (WASM SIMD by default) when none is given. */
  static async create(cfg: HookedTransformerConfig, weights: Weights,
    options: { engine?: Engine; tokenizer?: Tokenizer; dtype?: WeightDtype } & EngineOptions = {}): Promise<HookedTransformer> {
    const engine = options.engine ?? await Engine.create(options);
    return new HookedTransformer(cfg, weights, engine, options.tokenizer, { dtype: options.dtype ?? "f32" });
  }

  /**
   * Loads a Hugging Face checkpoint of a supported family (see model/families: GPT-2, LLaMA (with
   * Llama 3 rope scaling), Qwen2, OLMo and Mistral; config.json + model.safetensors or a sharded index)
   * from a folder path, a URL, a hub repository (`{ repo, revision }`) or in-memory file bytes,
   * and applies TransformerLens's weight processing (foldLn, centerWritingWeights,
   * centerUnembed, foldValueBiases; all on by default, as `from_pretrained`).
   *
   * @example
   * ```ts
   * const model = await HookedTransformer.fromPretrained("./models/gpt2");
   * const raw = await HookedTransformer.fromPretrained("./models/gpt2", { processWeights: false });
   * ```
   */
  static async fromPretrained(source: SourceInput, options: FromPretrainedOptions = {}): Promise<HookedTransformer> {
    const files = openSource(source);
    const json = await readJsonConfig(files, "config.json");
    const family = familyOf(json);
    let cfg = family.configFromHf(json);
    // Judged from config.json alone: nothing is read or allocated for a model that cannot fit.
    // Named by its path or URL; bytes in memory have neither.
    const what = typeof source === "string" ? source : files.location === "memory" ? "the model" : files.location;
    checkWeightsFitMemory(cfg, what, options.dtype ?? "f32");
    if (options.useAttnResult) cfg = { ...cfg, useAttnResult: true };
    if (options.useSplitQkvInput) cfg = { ...cfg, useSplitQkvInput: true };
    if (options.useHookMlpIn) cfg = { ...cfg, useHookMlpIn: true };
    // Each stage's input is dropped as soon as the next holds the weights, so the host keeps as few
    // whole copies of a large model as it can (the checkpoint's, the processed, the 16-bit rounded).
    let weights = family.weightsFromHf(await loadFiniteWeights(files, options.checkFinite ?? true), cfg);
    if (options.processWeights ?? true) ({ cfg, weights } = processWeights(cfg, weights, options));
    const dtype = options.dtype ?? "f32";
    if (dtype !== "f32") weights = roundedWeights(weights, dtype); // the constructor then takes them as they are
    const tokenizer = (options.tokenizer ?? true) ? (await loadTokenizer(files, { importLibrary: options.tokenizerLibrary })) ?? undefined : undefined;
    return HookedTransformer.create(cfg, weights, { ...options, tokenizer });
  }

  /**
   * Every hook name of this model, in forward order. With `{ onDemand: true }` also the hook points
   * it has when named exactly: each head's q/k/v input (`blocks.l.hook_q_input`, `hook_k_input`,
   * `hook_v_input`) and `blocks.l.hook_mlp_in`, listed by default only for a model created with
   * `useSplitQkvInput` / `useHookMlpIn` (TransformerLens's `use_split_qkv_input`, `use_hook_mlp_in`).
   * A hook, backward hook or cache filter naming one runs that layer's split path for the call; a
   * predicate selects among the listed names only.
   * @example
   * ```ts
   * model.hookNames().includes("blocks.0.hook_q_input");                   // false (without the option)
   * model.hookNames({ onDemand: true }).includes("blocks.0.hook_q_input"); // true
   * const { cache } = model.runWithCache(tokens, { namesFilter: ["blocks.0.hook_q_input"] }); // [batch, pos, H, d_model]
   * ```
   */
  hookNames(options: { onDemand?: boolean } = {}): string[] {
    return [...(options.onDemand ? this.allNames : this.names)];
  }

  /**
   * Adds a hook that stays until {@link resetHooks}; it runs before per-call hooks. With
   * `{ dir: "bwd" }` it is a backward hook: it sees the metric's gradient at its hook point in
   * every run that takes gradients, and may replace it.
   * @example
   * ```ts
   * model.addHook("blocks.0.hook_resid_post", (g) => { g.data.fill(0); }, { dir: "bwd" }); // stop gradients there
   * ```
   */
  addHook(filter: HookFilter, fn: HookFn, options: { dir?: "fwd" | "bwd" } = {}): void {
    const dir = options.dir ?? "fwd";
    if (dir !== "fwd" && dir !== "bwd") throw new Error(`addHook: dir must be "fwd" or "bwd", got ${JSON.stringify(dir)}`);
    if (typeof fn !== "function") throw new Error("addHook: the hook is not a function");
    for (const name of this.resolve(filter)) (dir === "fwd" ? this.persistent : this.persistentBwd).push([name, fn]);
  }

  /**
   * Whether a forward hook added with {@link addHook} watches any hook point the filter selects (every
   * hook point when it is omitted).
   * @example
   * ```ts
   * model.addHook("blocks.1.attn.hook_z", (z) => { z.data.fill(0); });
   * model.hasHooks((name) => name.startsWith("blocks.1.")); // true
   * model.hasHooks("blocks.0.attn.hook_z");                 // false
   * ```
   */
  hasHooks(filter: HookFilter = () => true): boolean {
    if (typeof filter === "string") assertHookName(filter, this.allNames);
    const selects = typeof filter === "string" ? (name: string) => name === filter : filter;
    return this.persistent.some(([name]) => selects(name));
  }

  /** Removes every hook added with {@link addHook}, forward and backward. */
  resetHooks(): void {
    this.persistent.length = 0;
    this.persistentBwd.length = 0;
  }

  /**
   * Runs the model on token ids.
   * @param tokens [batch, pos] ids (see {@link TokenIds}); ignored for their values when `startAtLayer` > 0
   *   (only their shape is used), so pass the same tokens as the run that made `residual`.
   */
  forward(input: ModelInput, options: ForwardOptions = {}): ForwardResult {
    let tokens: TokenIds;
    ({ tokens, options } = this.tokensOf(input, options));
    const returnType = options.returnType ?? "logits";
    if (!["logits", "loss", "both", "none"].includes(returnType)) {
      throw new Error(`forward: returnType must be "logits", "loss", "both" or "none", got ${JSON.stringify(returnType)}`);
    }
    const batch = toTokenBatch(tokens, this.cfg.dVocab, this.cfg.nCtx);
    const startAtLayer = this.layerOption("startAtLayer", options.startAtLayer, 0);
    const stopAtLayer = this.layerOption("stopAtLayer", options.stopAtLayer, this.cfg.nLayers);
    if (stopAtLayer < startAtLayer) throw new Error(`forward: stopAtLayer (${stopAtLayer}) is before startAtLayer (${startAtLayer})`);
    const kept = options.keptPrefix?.length ?? 0;
    if (!Number.isInteger(kept) || kept < 0 || kept >= batch.pos) {
      throw new Error(`forward: keptPrefix.length must be an integer in [0, ${batch.pos - 1}], got ${kept}`);
    }
    if (options.pruneLastLayer && !options.lastPositionOnly) throw new Error("forward: pruneLastLayer needs lastPositionOnly");
    const afterAttention = options.startAfterAttention ?? false;
    if (afterAttention && startAtLayer >= this.cfg.nLayers) {
      throw new Error(`forward: startAfterAttention needs startAtLayer below nLayers (${this.cfg.nLayers}), got ${startAtLayer}`);
    }
    if (afterAttention && this.cfg.parallelAttnMlp) throw new Error("forward: startAfterAttention: this model runs attention and MLP in parallel, so no block has a resid_mid to start from");
    const residual = startAtLayer > 0 || afterAttention ? this.residualInput(options.residual, batch, kept) : undefined;
    const hooks = this.collectHooks(this.persistent, options.fwdHooks ?? []);
    const wantLoss = returnType === "loss" || returnType === "both";
    if (wantLoss && options.lastPositionOnly) throw new Error("forward: a loss needs every position's logits; drop lastPositionOnly");
    const mask = options.attentionMask === undefined ? undefined : toMask(options.attentionMask, batch.batch, batch.pos);
    this.uploadRawProjectionsFor(hooks.keys());
    const out = runForward(this.engine, this.cfg, this.live(), {
      batch: batch.batch, pos: batch.pos, tokens: batch.ids, residual,
      attentionMask: mask,
      startAtLayer, startAfterAttention: afterAttention, stopAtLayer, returnResidual: options.stopAtLayer !== undefined, hooks,
      unembed: returnType === "none" ? "none" : options.lastPositionOnly ? "last" : "all",
      posStart: kept,
      prefix: kept > 0 ? this.prefixReader(options.keptPrefix!.keysValues, batch) : undefined,
      pruneLastLayer: options.pruneLastLayer ?? false,
    });
    if (options.stopAtLayer !== undefined) return { residual: out.residual };
    const result: ForwardResult = {};
    if (returnType === "logits" || returnType === "both") result.logits = out.logits;
    if (wantLoss) {
      result.loss = nextTokenLoss(out.logits!, batch, mask, options.lossPerToken ?? false);
    }
    return result;
  }

  /**
   * `forward` with hooks for this call only (TransformerLens `run_with_hooks`). With a `metric`
   * (and optionally `bwdHooks`) it also runs the backward of the metric, firing backward hooks
   * (per call and added with `{ dir: "bwd" }`) at every hook point, and returns the metric.
   *
   * @example
   * ```ts
   * const metric = logitDiff({ correct: [42], incorrect: [47] });
   * const grads = new Map<string, Tensor>();
   * model.runWithHooks(tokens, { metric, bwdHooks: [[(n) => n.endsWith("hook_z"), (g, h) => { grads.set(h.name, g.clone()); }]] });
   * ```
   */
  runWithHooks(tokens: ModelInput, options: RunWithHooksOptions = {}): ForwardResult & { metric?: number } {
    if (options.metric === undefined && options.bwdHooks === undefined) return this.forward(tokens, options);
    const { logits, metric } = this.withGradients(tokens, options, []);
    return { logits, metric };
  }

  /**
   * Runs the model and keeps a copy of every activation the filter selects
   * (TransformerLens `run_with_cache`). Cached values are taken after the hooks
   * of `fwdHooks` ran, so a patched run caches the patched activations.
   */
  runWithCache(tokens: ModelInput, options: RunWithCacheOptions = {}): RunWithCacheResult {
    const selected = this.selectNames(options.namesFilter, options.inclBwd ?? false);
    const store = new Map<string, Tensor>();
    const caching = (suffix: string): [string, HookFn][] => selected.filter((n) => n.endsWith(suffix) || suffix === "")
      .map((n) => suffix === "" ? n : n.slice(0, -suffix.length))
      .filter((name) => suffix !== "" || !name.endsWith("_grad"))
      .map((name) => [name, (act: Tensor) => { store.set(name + suffix, act.clone()); }]);
    const fwdCaching = caching("");
    // Forward order, whatever order the filter listed them in; each gradient after its activation.
    const ordered = () => this.allNames.flatMap((n) => [n, `${n}_grad`]).filter((n) => store.has(n)).map((n) => [n, store.get(n)!] as [string, Tensor]);
    if (options.inclBwd) {
      const { logits, metric } = this.withGradients(tokens, { ...options, fwdHooks: [...(options.fwdHooks ?? []), ...fwdCaching] }, caching("_grad"));
      return { logits, cache: new ActivationCache(ordered(), this), metric };
    }
    if (options.metric !== undefined || options.bwdHooks !== undefined) throw new Error("runWithCache: metric and bwdHooks need inclBwd: true");
    const { logits, residual } = this.forward(tokens, { ...options, returnType: "logits", fwdHooks: [...(options.fwdHooks ?? []), ...fwdCaching] });
    return { logits, residual, cache: new ActivationCache(ordered(), this) };
  }

  /**
   * Encodes text to padded token rows (BOS prepended by default, as TransformerLens).
   * @example
   * ```ts
   * model.toTokens("Hello world");          // [[50256, 15496, 995]]
   * ```
   */
  toTokens(input: string | readonly string[], options: ToTokensOptions = {}): number[][] {
    return this.toTokensWithMask(input, options).tokens;
  }

  /** {@link toTokens} with the attention mask that marks padding (pass it as `attentionMask`). */
  toTokensWithMask(input: string | readonly string[], options: ToTokensOptions = {}): EncodedBatch {
    return encodeBatch(this.needTokenizer("toTokens"), input, options);
  }

  /** Each token's text: `toStrTokens("Hi there")` gives `["<|endoftext|>", "Hi", " there"]`. */
  toStrTokens(input: string | readonly number[], options: ToTokensOptions = {}): string[] {
    const tokenizer = this.needTokenizer("toStrTokens");
    const ids = typeof input === "string" ? this.toTokens(input, options)[0]! : input;
    return strTokens(tokenizer, ids);
  }

  /** The text of token ids (one row) or of each row of a batch. */
  toString(ids: readonly number[]): string;
  toString(ids: readonly (readonly number[])[]): string[];
  toString(ids?: readonly number[] | readonly (readonly number[])[]): string | string[] {
    if (ids === undefined) return `HookedTransformer(${this.cfg.originalArchitecture}, ${this.cfg.nLayers} layers, d_model ${this.cfg.dModel})`;
    const tokenizer = this.needTokenizer("toString");
    if (ids.length > 0 && Array.isArray(ids[0])) return (ids as readonly (readonly number[])[]).map((row) => tokenizer.decode(row));
    return tokenizer.decode(ids as readonly number[]);
  }

  /** The id of a text that is exactly one token; throws otherwise. */
  toSingleToken(text: string): number {
    return singleToken(this.needTokenizer("toSingleToken"), text);
  }

  private needTokenizer(op: string): Tokenizer {
    if (this.tokenizer === undefined) throw new Error(`${op}: this model has no tokenizer (its folder had no tokenizer.json or vocab.json + merges.txt); pass token ids instead`);
    return this.tokenizer;
  }

  /**
   * The unembedding on its own (TransformerLens's `model.unembed`): logits `x · W_U + b_U` of
   * residual vectors that are already normalized (`ln_final.hook_normalized`, or a stack passed
   * through `cache.applyLnToStack`), then the final soft-cap when the model has one. Runs on the
   * engine's packed W_U, so it costs what the forward pass's unembedding costs (the logit lens
   * of every layer and position of GPT-2 small takes one product, not a JS loop over 50257 columns).
   *
   * @param normalized - [..., dModel]
   * @returns [..., dVocab]
   * @throws Error if the last dim is not dModel
   * @example
   * ```ts
   * const { cache } = model.runWithCache(tokens);
   * const stack = cache.accumulatedResid(undefined, { applyLn: true }); // [layers + 1, batch, pos, dModel]
   * const lens = model.unembed(stack);                                  // [layers + 1, batch, pos, dVocab]
   * ```
   */
  unembed(normalized: Tensor): Tensor {
    const { dModel: D, dVocab: V } = this.cfg;
    if (!(normalized instanceof Tensor) || normalized.ndim < 1 || normalized.shape.at(-1) !== D) {
      throw new Error(`unembed: expected a tensor [..., dModel = ${D}], got ${normalized instanceof Tensor ? `[${normalized.shape.join(", ")}]` : typeof normalized}`);
    }
    const w = this.live();
    const rows = normalized.data.length / D;
    const out = [...normalized.shape.slice(0, -1), V];
    if (rows === 0) return new Tensor(new Float32Array(0), out);
    const engine = this.engine;
    const x = engine.upload(normalized.data);
    const y = engine.alloc(rows * V);
    try {
      packedProduct(engine.kernels, w.dtype)(x, D, w.wU, y, V, w.bU, rows, V, D, 0, 0, V, GemmActivation.none);
      if (this.cfg.finalSoftcap !== undefined) engine.kernels.softcap(y, y, rows * V, this.cfg.finalSoftcap);
      return new Tensor(engine.download(y, rows * V), out);
    } finally {
      engine.free(x);
      engine.free(y);
    }
  }

  /** Frees the weights in the engine's memory; the model cannot run afterwards. */
  dispose(): void {
    if (this.device === undefined) return;
    freeWeights(this.engine, this.device);
    this.device = undefined;
    if (this.deviceT !== undefined) freeTransposedWeights(this.engine, this.deviceT);
    this.deviceT = undefined;
  }

  /**
   * The engine pointers of the weights the forward pass multiplies by, for library code that
   * runs products on them instead of uploading copies (the patching sweeps). They are the
   * layouts of `device-weights.ts`: matrices packed by `prepackB`, and a norm that is not folded
   * (normalizationType `LN` or `RMS`) has its weight and bias folded into the matrices that read
   * it, so they can differ from {@link weights}. Read only; valid until {@link dispose}.
   * @internal
   */
  devicePointers(): DevicePointers {
    return this.live();
  }

  private live(): DevicePointers {
    if (this.device === undefined) throw new Error("this model was disposed");
    return this.device;
  }

  /** A name (listed or on demand) or a predicate over the listed names. */
  private resolve(filter: HookFilter): string[] {
    if (typeof filter === "string") {
      assertHookName(filter, this.allNames);
      return [filter];
    }
    if (typeof filter !== "function") throw new Error(`hook filter must be a hook name or a predicate, got ${typeof filter}`);
    return this.names.filter((n) => filter(n));
  }

  /** Hook name → functions: the persistent ones, then the per-call ones, each in order. */
  private collectHooks(persistent: readonly [string, HookFn][], perCall: readonly (readonly [HookFilter, HookFn])[]): Map<string, HookFn[]> {
    const hooks = new Map<string, HookFn[]>();
    const add = (name: string, fn: HookFn) => {
      if (typeof fn !== "function") throw new Error(`the hook for ${name} is not a function`);
      const list = hooks.get(name);
      if (list) list.push(fn); else hooks.set(name, [fn]);
    };
    for (const [name, fn] of persistent) add(name, fn);
    for (const entry of perCall) {
      if (!Array.isArray(entry) || entry.length !== 2) throw new Error("fwdHooks entries must be [name or predicate, fn] pairs");
      for (const name of this.resolve(entry[0])) add(name, entry[1]);
    }
    return hooks;
  }

  /** The cached names a filter selects: hook names, and with gradients also `<hook name>_grad` names. */
  private selectNames(filter: RunWithCacheOptions["namesFilter"], grads: boolean): string[] {
    const withGrads = (names: readonly string[]) => grads ? names.flatMap((n) => [n, `${n}_grad`]) : [...names];
    const all = withGrads(this.names);
    if (filter === undefined) return all;
    if (typeof filter === "function") return all.filter((n) => filter(n));
    const list = typeof filter === "string" ? [filter] : filter;
    const valid = withGrads(this.allNames);
    for (const n of list) assertHookName(n, valid);
    return [...list];
  }

  /** Text is encoded (ragged rows padded, with their attention mask); ids pass through. */
  private tokensOf<O extends ForwardOptions>(input: ModelInput, options: O): { tokens: TokenIds; options: O } {
    if (typeof input === "string" || (Array.isArray(input) && typeof input[0] === "string")) {
      const encoded = this.toTokensWithMask(input as string | readonly string[]);
      const ragged = encoded.attentionMask.some((row) => row.includes(0));
      if (ragged && options.attentionMask === undefined) options = { ...options, attentionMask: encoded.attentionMask };
      return { tokens: encoded.tokens, options };
    }
    return { tokens: input as TokenIds, options };
  }

  /** Forward + backward of options.metric with every backward hook (added, per call, then `extraBwd`). */
  private withGradients(input: ModelInput, options: RunWithHooksOptions, extraBwd: readonly [string, HookFn][]) {
    assertDifferentiable(options.metric);
    for (const key of ["startAtLayer", "stopAtLayer", "startAfterAttention", "keptPrefix", "pruneLastLayer", "lastPositionOnly"] as const) {
      if (options[key] !== undefined && options[key] !== false) throw new Error(`gradients run the whole model at every position; ${key} cannot be used with them`);
    }
    if (options.returnType !== undefined && options.returnType !== "logits") throw new Error("gradients return logits and the metric; drop returnType");
    const { tokens, options: opts } = this.tokensOf(input, options);
    const batch = toTokenBatch(tokens, this.cfg.dVocab, this.cfg.nCtx);
    const mask = opts.attentionMask === undefined ? undefined : toMask(opts.attentionMask, batch.batch, batch.pos);
    const bwd = this.collectHooks(this.persistentBwd, [...(opts.bwdHooks ?? []), ...extraBwd]);
    this.uploadRawProjectionsFor(bwd.keys());
    const fwdUser = opts.fwdHooks ?? [];
    const fwdWatched = new Set(this.collectHooks(this.persistent, fwdUser).keys());
    if (opts.memoryBudgetBytes !== undefined) {
      if (!(opts.memoryBudgetBytes > 0)) throw new Error(`memoryBudgetBytes must be positive, got ${opts.memoryBudgetBytes}`);
      const readerInputs = [...bwd.keys(), ...fwdWatched].some((name) => /\.hook_([qkv]_input|mlp_in)$/.test(name));
      const keptSplitHeads = [...fwdWatched].filter((name) => /\.hook_[qkv]_input$/.test(name))
        .reduce((n, name) => n + (name.endsWith("hook_q_input") ? this.cfg.nHeads : this.cfg.nKeyValueHeads), 0);
      const need = gradientMemory(this.cfg, {
        batch: batch.batch, pos: batch.pos, lastPositionOnly: opts.metric!.positions === "last", readerInputs, keptSplitHeads,
        weightBytes: this.live().dtype === "f32" ? 4 : 2,
      });
      const metric = opts.metric as DifferentiableMetric & { tokens?: readonly number[] };
      const dense = !(metric.positions === "last" && metric.tokens !== undefined);
      const weightsToPack = (this.deviceT === undefined ? need.transposedWeights : 0) +
        (dense && (this.deviceT?.wUT ?? 0) === 0 ? need.transposedUnembed : 0);
      const total = need.peak + weightsToPack;
      if (total > opts.memoryBudgetBytes) {
        throw new Error(`gradients of ${batch.batch} × ${batch.pos} tokens need about ${total} bytes (kept activations ${need.stored}, ` +
          `arena ${Math.max(need.forwardArena, need.backwardArena)}` +
          `${weightsToPack > 0 ? `, transposed weights ${weightsToPack}` : ""}), more than memoryBudgetBytes ` +
          `(${opts.memoryBudgetBytes}); raise the budget or take gradients of fewer prompts at once`);
      }
    }
    const watchedSplitInputs = new Set([...fwdWatched].filter((name) => /\.hook_[qkv]_input$/.test(name)));
    return forwardBackward({
      cfg: this.cfg, engine: this.engine,
      forward: (hooks, lastPositionOnly) => this.forward(tokens, {
        attentionMask: opts.attentionMask, lastPositionOnly, fwdHooks: [...fwdUser, ...hooks],
      }).logits!,
      device: () => this.live(),
      transposed: (denseUnembed) => {
        const dtype = this.live().dtype;
        this.deviceT ??= uploadTransposedWeights(this.engine, this.cfg, this.weights, dtype);
        if (denseUnembed && this.deviceT.wUT === 0) this.deviceT.wUT = uploadTransposedUnembed(this.engine, this.cfg, this.weights, dtype);
        return this.deviceT;
      },
      unembedColumns: (tokens) => unembedColumns(this.cfg, this.weights, tokens),
    }, { batch: batch.batch, pos: batch.pos, attentionMask: mask, fwdHooks: [], bwdHooks: bwd, metric: opts.metric!, signal: opts.signal,
      watchedSplitInputs });
  }

  /** The split q/k/v inputs' unpacked W_Q/W_K/W_V, uploaded at the first pass that hooks one. */
  private uploadRawProjectionsFor(hooked: Iterable<string>): void {
    for (const name of hooked) {
      if (/\.hook_[qkv]_input$/.test(name)) return uploadRawProjections(this.engine, this.cfg, this.weights, this.live());
    }
  }

  private layerOption(name: string, value: number | undefined, fallback: number): number {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 0 || value > this.cfg.nLayers) {
      throw new Error(`forward: ${name} must be an integer in [0, ${this.cfg.nLayers}], got ${value}`);
    }
    return value;
  }

  /** Checks the kept keys and values of each layer; a smaller batch (stacked copies) is read cyclically by the forward. */
  private prefixReader(keysValues: (layer: number) => { k: Tensor; v: Tensor }, batch: TokenBatch) {
    const { nKeyValueHeads: H, dHead: d } = this.cfg;
    return (layer: number) => {
      const kv = keysValues(layer);
      const check = (t: Tensor, which: string) => {
        const rows = t.shape[0]!;
        if (t.ndim !== 4 || t.shape[1] !== batch.pos || t.shape[2] !== H || t.shape[3] !== d || batch.batch % rows !== 0) {
          throw new Error(`forward: keptPrefix ${which} of layer ${layer} has shape [${t.shape.join(", ")}]; ` +
            `expected [b, ${batch.pos}, ${H}, ${d}] with b dividing ${batch.batch}`);
        }
        return t.data;
      };
      return { k: check(kv.k, "k"), v: check(kv.v, "v") };
    };
  }

  private residualInput(residual: Tensor | undefined, batch: TokenBatch, kept: number): Float32Array {
    const shape = [batch.batch, batch.pos - kept, this.cfg.dModel];
    if (!(residual instanceof Tensor)) throw new Error("forward: startAtLayer > 0 needs the residual option ([batch, pos, dModel])");
    if (residual.ndim !== 3 || residual.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`forward: residual has shape [${residual.shape.join(", ")}] but the tokens need [${shape.join(", ")}]`);
    }
    return residual.data;
  }
}

/**
 * Cross-entropy of predicting token p+1 from position p, over the predictions whose position
 * and target are both real tokens (mask [batch * pos], absent: all real).
 */
function nextTokenLoss(logits: Tensor, batch: TokenBatch, mask: Float32Array | undefined, perToken: boolean): number | Tensor {
  const { batch: B, pos: P, ids } = batch;
  if (P < 2) throw new Error("forward: a loss needs at least two positions");
  const V = logits.shape[2]!;
  const losses = new Float32Array(B * (P - 1));
  let counted = 0;
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P - 1; p++) {
      if (mask !== undefined && (mask[b * P + p] === 0 || mask[b * P + p + 1] === 0)) continue;
      const row = logits.data.subarray((b * P + p) * V, (b * P + p + 1) * V);
      const loss = logSumExp(row) - row[ids[b * P + p + 1]!]!;
      losses[b * (P - 1) + p] = loss;
      sum += loss;
      counted++;
    }
  }
  if (perToken) return new Tensor(losses, [B, P - 1]);
  if (counted === 0) throw new Error("forward: the attention mask leaves no prediction to take a loss over (no two consecutive real tokens)");
  return sum / counted;
}

/** log(sum(exp(x))), shifted by the maximum so no exp overflows. */
function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return Math.log(sum) + max;
}

/** The checkpoint's tensors, checked for NaN and ±Infinity when asked. */
async function loadFiniteWeights(files: ReturnType<typeof openSource>, checkFinite: boolean): Promise<Awaited<ReturnType<typeof loadSafetensorsWeights>>> {
  const raw = await loadSafetensorsWeights(files);
  if (checkFinite) assertFiniteWeights(raw);
  return raw;
}
