import { Engine, type EngineOptions } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import { assertFiniteWeights, loadSafetensorsWeights, readJsonConfig } from "../io/checkpoint.js";
import { openSource, type SourceInput } from "../io/source.js";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { ActivationCache } from "./activation-cache.js";
import { configFromHf, type HookedTransformerConfig } from "./config.js";
import { convertGpt2Weights } from "./gpt2-weights.js";
import { convertLlamaWeights } from "./llama-weights.js";
import { processWeights, type ProcessOptions } from "./process-weights.js";
import { freeWeights, uploadWeights, type DevicePointers } from "./device-weights.js";
import { runForward } from "./forward.js";
import { assertHookName, hookNames, type HookFilter, type HookFn } from "./hook-points.js";
import { encodeBatch, singleToken, strTokens, type EncodedBatch, type ToTokensOptions } from "./text.js";
import { toMask, toTokenBatch, type TokenBatch, type TokenIds } from "./tokens.js";
import { checkWeights, type Weights } from "./weights.js";

/** What `forward` returns. */
export type ReturnType = "logits" | "loss" | "both" | "none";

export interface ForwardOptions {
  /** `logits` (default), `loss` (mean next-token cross-entropy), `both`, or `none`. */
  returnType?: ReturnType;
  /** With `loss`: one loss per predicted token, [batch, pos - 1], instead of the mean. */
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
  /** Load the folder's tokenizer when it has one (default true); false works on token ids only. */
  tokenizer?: boolean;
  /** Refuse weights holding NaN or ±Infinity with a ModelFormatError naming the tensor (default true; one pass over the weights). */
  checkFinite?: boolean;
}

/** Token ids, or text (encoded with the model's tokenizer, BOS prepended, ragged batches padded and masked). */
export type ModelInput = TokenIds | string | readonly string[];

export interface RunWithCacheOptions extends Omit<ForwardOptions, "returnType"> {
  /** Which activations to keep: names, a predicate, or all (default). */
  namesFilter?: string | readonly string[] | ((name: string) => boolean);
}

/**
 * A GPT-2-style transformer with a TransformerLens hook at every activation.
 * Build one with `HookedTransformer.fromPretrained` (see model/from-pretrained.ts) or
 * from a config and TransformerLens-named weights.
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
  private readonly names: readonly string[];
  private readonly persistent: [string, HookFn][] = [];

  /** Uploads the weights to the engine. The weights must match the config exactly (names and shapes). */
  constructor(cfg: HookedTransformerConfig, weights: Weights, engine: Engine, tokenizer?: Tokenizer) {
    checkWeights(cfg, weights);
    this.cfg = Object.freeze({ ...cfg });
    this.weights = weights;
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.names = Object.freeze(hookNames(cfg));
    this.device = uploadWeights(engine, cfg, weights);
  }

  /** Like the constructor, creating an engine (WASM SIMD by default) when none is given. */
  static async create(cfg: HookedTransformerConfig, weights: Weights,
    options: { engine?: Engine; tokenizer?: Tokenizer } & EngineOptions = {}): Promise<HookedTransformer> {
    const engine = options.engine ?? await Engine.create(options);
    return new HookedTransformer(cfg, weights, engine, options.tokenizer);
  }

  /**
   * Loads a Hugging Face GPT-2 or LLaMA-family checkpoint (config.json + model.safetensors or a sharded index)
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
    let cfg = configFromHf(await readJsonConfig(files, "config.json"));
    if (options.useAttnResult) cfg = { ...cfg, useAttnResult: true };
    const raw = await loadSafetensorsWeights(files);
    if (options.checkFinite ?? true) assertFiniteWeights(raw);
    let weights = cfg.positionalEmbeddingType === "rotary" ? convertLlamaWeights(raw, cfg) : convertGpt2Weights(raw, cfg);
    if (options.processWeights ?? true) ({ cfg, weights } = processWeights(cfg, weights, options));
    const tokenizer = (options.tokenizer ?? true) ? (await loadTokenizer(files)) ?? undefined : undefined;
    return HookedTransformer.create(cfg, weights, { ...options, tokenizer });
  }

  /** Every hook name of this model, in forward order. */
  hookNames(): string[] {
    return [...this.names];
  }

  /** Adds a hook that stays until {@link resetHooks}; it runs before per-call hooks. */
  addHook(filter: HookFilter, fn: HookFn): void {
    for (const name of this.resolve(filter)) this.persistent.push([name, fn]);
  }

  /**
   * Whether a hook added with {@link addHook} watches any hook point the filter selects (every
   * hook point when it is omitted).
   * @example
   * ```ts
   * model.addHook("blocks.1.attn.hook_z", (z) => { z.data.fill(0); });
   * model.hasHooks((name) => name.startsWith("blocks.1.")); // true
   * model.hasHooks("blocks.0.attn.hook_z");                 // false
   * ```
   */
  hasHooks(filter: HookFilter = () => true): boolean {
    const names = new Set(this.resolve(filter));
    return this.persistent.some(([name]) => names.has(name));
  }

  /** Removes every hook added with {@link addHook}. */
  resetHooks(): void {
    this.persistent.length = 0;
  }

  /**
   * Runs the model on token ids.
   * @param tokens [batch, pos] ids (see {@link TokenIds}); ignored for their values when `startAtLayer` > 0
   *   (only their shape is used), so pass the same tokens as the run that made `residual`.
   */
  forward(input: ModelInput, options: ForwardOptions = {}): ForwardResult {
    let tokens: TokenIds;
    if (typeof input === "string" || (Array.isArray(input) && typeof input[0] === "string")) {
      const encoded = this.toTokensWithMask(input as string | readonly string[]);
      tokens = encoded.tokens;
      const ragged = encoded.attentionMask.some((row) => row.includes(0));
      if (ragged && options.attentionMask === undefined) options = { ...options, attentionMask: encoded.attentionMask };
    } else {
      tokens = input as TokenIds;
    }
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
    const residual = startAtLayer > 0 || afterAttention ? this.residualInput(options.residual, batch, kept) : undefined;
    const hooks = this.collectHooks(options.fwdHooks ?? []);
    const wantLoss = returnType === "loss" || returnType === "both";
    if (wantLoss && options.lastPositionOnly) throw new Error("forward: a loss needs every position's logits; drop lastPositionOnly");
    const out = runForward(this.engine, this.cfg, this.live(), {
      batch: batch.batch, pos: batch.pos, tokens: batch.ids, residual,
      attentionMask: options.attentionMask === undefined ? undefined : toMask(options.attentionMask, batch.batch, batch.pos),
      startAtLayer, startAfterAttention: afterAttention, stopAtLayer, returnResidual: options.stopAtLayer !== undefined, hooks,
      unembed: returnType === "none" ? "none" : options.lastPositionOnly ? "last" : "all",
      posStart: kept,
      prefix: kept > 0 ? this.prefixReader(options.keptPrefix!.keysValues, batch) : undefined,
      pruneLastLayer: options.pruneLastLayer ?? false,
    });
    if (options.stopAtLayer !== undefined) return { residual: out.residual };
    const result: ForwardResult = {};
    if (returnType === "logits" || returnType === "both") result.logits = out.logits;
    if (wantLoss) result.loss = nextTokenLoss(out.logits!, batch, options.lossPerToken ?? false);
    return result;
  }

  /** `forward` with hooks for this call only (TransformerLens `run_with_hooks`). */
  runWithHooks(tokens: ModelInput, options: ForwardOptions = {}): ForwardResult {
    return this.forward(tokens, options);
  }

  /**
   * Runs the model and keeps a copy of every activation the filter selects
   * (TransformerLens `run_with_cache`). Cached values are taken after the hooks
   * of `fwdHooks` ran, so a patched run caches the patched activations.
   */
  runWithCache(tokens: ModelInput, options: RunWithCacheOptions = {}): { logits?: Tensor; residual?: Tensor; cache: ActivationCache } {
    const selected = this.selectNames(options.namesFilter);
    const store = new Map<string, Tensor>();
    const caching: [string, HookFn][] = selected.map((name) => [name, (act: Tensor) => { store.set(name, act.clone()); }]);
    const { logits, residual } = this.forward(tokens, { ...options, returnType: "logits", fwdHooks: [...(options.fwdHooks ?? []), ...caching] });
    // Forward order, whatever order the filter listed them in.
    const ordered = this.names.filter((n) => store.has(n)).map((n) => [n, store.get(n)!] as [string, Tensor]);
    return { logits, residual, cache: new ActivationCache(ordered, this) };
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

  /** Frees the weights in the engine's memory; the model cannot run afterwards. */
  dispose(): void {
    if (this.device === undefined) return;
    freeWeights(this.engine, this.device);
    this.device = undefined;
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

  private resolve(filter: HookFilter): string[] {
    if (typeof filter === "string") {
      assertHookName(filter, this.names);
      return [filter];
    }
    if (typeof filter !== "function") throw new Error(`hook filter must be a hook name or a predicate, got ${typeof filter}`);
    return this.names.filter((n) => filter(n));
  }

  private collectHooks(perCall: readonly (readonly [HookFilter, HookFn])[]): Map<string, HookFn[]> {
    const hooks = new Map<string, HookFn[]>();
    const add = (name: string, fn: HookFn) => {
      if (typeof fn !== "function") throw new Error(`the hook for ${name} is not a function`);
      const list = hooks.get(name);
      if (list) list.push(fn); else hooks.set(name, [fn]);
    };
    for (const [name, fn] of this.persistent) add(name, fn);
    for (const entry of perCall) {
      if (!Array.isArray(entry) || entry.length !== 2) throw new Error("fwdHooks entries must be [name or predicate, fn] pairs");
      for (const name of this.resolve(entry[0])) add(name, entry[1]);
    }
    return hooks;
  }

  private selectNames(filter: RunWithCacheOptions["namesFilter"]): string[] {
    if (filter === undefined) return [...this.names];
    if (typeof filter === "function") return this.names.filter((n) => filter(n));
    const list = typeof filter === "string" ? [filter] : filter;
    for (const n of list) assertHookName(n, this.names);
    return [...list];
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

/** Cross-entropy of predicting token p+1 from position p. */
function nextTokenLoss(logits: Tensor, batch: TokenBatch, perToken: boolean): number | Tensor {
  const { batch: B, pos: P, ids } = batch;
  if (P < 2) throw new Error("forward: a loss needs at least two positions");
  const V = logits.shape[2]!;
  const losses = new Float32Array(B * (P - 1));
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P - 1; p++) {
      const row = logits.data.subarray((b * P + p) * V, (b * P + p + 1) * V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) max = Math.max(max, row[i]!);
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(row[i]! - max);
      losses[b * (P - 1) + p] = Math.log(sum) + max - row[ids[b * P + p + 1]!]!;
    }
  }
  if (perToken) return new Tensor(losses, [B, P - 1]);
  return losses.reduce((a, x) => a + x, 0) / losses.length;
}
