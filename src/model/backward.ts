import type { Engine } from "../engine/engine.js";
import { GemmActivation, type Kernels } from "../engine/kernels.js";
import { Tensor } from "../engine/tensor.js";
import { unravelIndex } from "../engine/tensor-shape.js";
import { arenaLayout, backwardSizes, type BackwardBuffer } from "./activation-sizes.js";
import type { HookedTransformerConfig } from "./config.js";
import { packedProduct, type DevicePointers, type TransposedPointers } from "./device-weights.js";
import { BLOCK_HOOKS, blockHookName, EMBED_HOOKS, FINAL_HOOKS, type BlockHook, type HookFn } from "./hook-points.js";
import { positionIds } from "./forward-heap.js";
import { rotaryDim, rotaryDivisors, rotaryTables } from "./rotary-tables.js";

/**
 * The forward activations the backward reads, per block (all [batch, pos, ...] as the hooks give
 * them). The backward recomputes nothing: these are what it keeps from the forward.
 */
export function storedHookNames(cfg: HookedTransformerConfig): string[] {
  const rotary = cfg.positionalEmbeddingType === "rotary";
  const keys: BlockHook[] = ["ln1Scale", "ln1Normalized", rotary ? "rotQ" : "q", rotary ? "rotK" : "k", "v", "pattern",
    "ln2Scale", "ln2Normalized", "mlpPre"];
  if (cfg.gatedMlp) keys.push("mlpPreLinear");
  if (cfg.postNorms) keys.push("ln1PostScale", "ln1PostNormalized", "ln2PostScale", "ln2PostNormalized");
  // Soft-capped scores: their derivative needs the capped values.
  if (cfg.attnSoftcap !== undefined) keys.push("attnScores");
  const names: string[] = [];
  for (let l = 0; l < cfg.nLayers; l++) for (const key of keys) names.push(blockHookName(l, key));
  names.push(FINAL_HOOKS.lnFinalScale.name, FINAL_HOOKS.lnFinalNormalized.name);
  return names;
}

/** Everything one backward pass needs, already validated by the caller. */
export interface BackwardPlan {
  batch: number;
  pos: number;
  /** [batch * pos], 1 = real token, 0 = padding; absent = all real. */
  attentionMask?: Float32Array;
  /** The forward's activations named by {@link storedHookNames}: their copies in the engine's memory. */
  stored: ReadonlyMap<string, StoredActivation>;
  /** dMetric/dlogits [batch, pos, dVocab], or [batch, 1, dVocab] for a metric reading only each row's last position. */
  gradLogits: Tensor;
  /** Hook name → backward hook functions, in registration order. */
  hooks: ReadonlyMap<string, readonly HookFn[]>;
  /** Checked before each block's backward: an aborted signal stops the pass with an AbortError. */
  signal?: AbortSignal;
  /**
   * ln_final's output gradient at each row's last position [batch, dModel], when the metric reads
   * only a few logits there: computed from W_U's columns, and gradLogits is then not multiplied.
   */
  gradNormLast?: Float32Array;
}

/** The state of one backward pass: its arena and the pass's sizes. */
interface Run {
  readonly engine: Engine;
  readonly kernels: Kernels;
  /** The packed product that reads the transposed weights as they are stored (the model's dtype). */
  readonly productT: Kernels["gemmPacked"];
  readonly cfg: HookedTransformerConfig;
  readonly plan: BackwardPlan;
  readonly buf: Readonly<Record<BackwardBuffer, number>>;
  readonly batch: number;
  readonly pos: number;
  readonly rows: number;
  readonly centred: boolean;
}

/**
 * Reverse-mode differentiation of the metric through the whole forward pass, block by block in
 * reverse (each step the mirror of forward.ts's), giving every hook point the gradient of the
 * metric with respect to its activation. A backward hook sees that gradient as a view and may
 * replace it (return a tensor, or edit it in place); what it leaves flows on upstream.
 */
export function runBackward(engine: Engine, cfg: HookedTransformerConfig, w: DevicePointers, wT: TransposedPointers,
  plan: BackwardPlan): void {
  const shape = {
    batch: plan.batch, pos: plan.pos, logitRows: plan.gradNormLast !== undefined ? 0 : plan.gradLogits.shape[0]! * plan.gradLogits.shape[1]!,
    attentionMask: plan.attentionMask !== undefined,
    splitInputs: anyLayerHooked(cfg, plan, ["qInput", "kInput", "vInput"]) || [...plan.stored.keys()].some((n) => /\.hook_[qkv]_input$/.test(n)),
    mlpIn: anyLayerHooked(cfg, plan, ["mlpIn"]),
  };
  const sizes = backwardSizes(cfg, shape);
  const layout = arenaLayout(sizes);
  const base = engine.alloc(layout.floats);
  try {
    const buf = {} as Record<BackwardBuffer, number>;
    for (const key of Object.keys(sizes) as BackwardBuffer[]) buf[key] = sizes[key] > 0 ? base + 4 * layout.offsets[key] : 0;
    const run: Run = {
      engine, kernels: engine.kernels, productT: packedProduct(engine.kernels, wT.dtype), cfg, plan, buf, batch: plan.batch, pos: plan.pos, rows: plan.batch * plan.pos,
      centred: cfg.normalizationType === "LN" || cfg.normalizationType === "LNPre",
    };
    if (plan.attentionMask) engine.heap().set(plan.attentionMask, buf.mask >>> 2);
    if (cfg.positionalEmbeddingType === "rotary") buildInverseRotaryTables(run);

    unembedBackward(run, wT);
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      throwIfAborted(plan.signal, l);
      fire(run, blockHookName(l, "residPost"), l, buf.gResid, [run.batch, run.pos, cfg.dModel]);
      // In parallel, attn_out's gradient is resid_post's (the MLP's path reaches resid_pre directly).
      if (cfg.parallelAttnMlp) engine.heap().copyWithin(buf.gParallel >>> 2, buf.gResid >>> 2, (buf.gResid >>> 2) + run.rows * cfg.dModel);
      mlpBlockBackward(run, l, w, wT);
      if (!cfg.parallelAttnMlp) fire(run, blockHookName(l, "residMid"), l, buf.gResid, [run.batch, run.pos, cfg.dModel]);
      attentionBlockBackward(run, l, w, wT, cfg.parallelAttnMlp ? buf.gParallel : buf.gResid);
      fire(run, blockHookName(l, "residPre"), l, buf.gResid, [run.batch, run.pos, cfg.dModel]);
    }
    // resid_pre[0] = hook_embed (+ hook_pos_embed): each gets the residual stream's gradient.
    const D = cfg.dModel;
    const embedShape = [run.batch, run.pos, D];
    if (plan.hooks.has(EMBED_HOOKS.posEmbed.name) && cfg.positionalEmbeddingType !== "rotary") {
      engine.heap().copyWithin(buf.gDelta >>> 2, buf.gResid >>> 2, (buf.gResid >>> 2) + run.rows * D);
      fire(run, EMBED_HOOKS.posEmbed.name, undefined, buf.gDelta, embedShape);
    }
    fire(run, EMBED_HOOKS.embed.name, undefined, buf.gResid, embedShape);
  } finally {
    engine.free(base);
  }
}

/** Whether a backward hook watches one of these hook points in some block. */
function anyLayerHooked(cfg: HookedTransformerConfig, plan: BackwardPlan, keys: readonly BlockHook[]): boolean {
  for (let l = 0; l < cfg.nLayers; l++) if (keys.some((key) => plan.hooks.has(blockHookName(l, key)))) return true;
  return false;
}

function throwIfAborted(signal: AbortSignal | undefined, layer: number): void {
  if (!signal?.aborted) return;
  const e = new Error(`the backward was aborted (before block ${layer})`, { cause: signal.reason });
  e.name = "AbortError";
  throw e;
}

// ---- hooks and stored activations ----

/** Runs the backward hooks at `name` on the gradient at `ptr` [shape]; a returned tensor replaces it. */
function fire(run: Run, name: string, layer: number | undefined, ptr: number, shape: number[]): void {
  const size = shape.reduce((a, b) => a * b, 1);
  assertFinite(run, name, ptr, shape, size);
  const fns = run.plan.hooks.get(name);
  if (fns === undefined) return;
  for (const fn of fns) {
    const view = new Tensor(run.engine.view(ptr, size), shape);
    const ret = fn(view, { name, layer, positionStart: 0 });
    if (ret === undefined || ret === null) continue;
    if (!(ret instanceof Tensor)) throw new Error(`backward hook on ${name} returned ${typeof ret}; return a Tensor or nothing`);
    if (ret.shape.length !== shape.length || ret.shape.some((x, i) => x !== shape[i])) {
      throw new Error(`backward hook on ${name} returned shape [${ret.shape.join(", ")}] but the gradient is [${shape.join(", ")}]`);
    }
    if (ret.data !== view.data) run.engine.heap().set(ret.data, ptr >>> 2);
  }
}

/** Throws at the first hook point (in backward order) whose gradient holds NaN or ±Infinity, naming the entry. */
function assertFinite(run: Run, name: string, ptr: number, shape: number[], size: number): void {
  const i = run.kernels.firstNonFinite(ptr, size);
  if (i < 0) return;
  const x = run.engine.heap()[(ptr >>> 2) + i]!;
  throw new Error(`backward: the gradient at ${name} is ${x} at [${unravelIndex(i, shape).join(", ")}], the first hook point (going backward) ` +
    "where a non-finite gradient appears");
}

function fireBlock(run: Run, l: number, key: BlockHook, ptr: number, shape: number[]): void {
  fire(run, blockHookName(l, key), l, ptr, shape);
}

/** A forward activation the backward reads, kept in the engine's memory: `floats` floats at byte pointer `ptr`. */
export interface StoredActivation {
  ptr: number;
  floats: number;
}

/** Copies a stored forward activation into the arena buffer `ptr`. */
function load(run: Run, name: string, ptr: number): void {
  const t = run.plan.stored.get(name);
  if (t === undefined) throw new Error(`backward: the forward did not keep ${name}`);
  run.engine.heap().copyWithin(ptr >>> 2, t.ptr >>> 2, (t.ptr >>> 2) + t.floats);
}

/** g_in [m, kOut] (+)= g_out [m, nIn] · Wᵀ, with Wᵀ packed once (see uploadTransposedWeights). */
function linearBackward(run: Run, gOut: number, ld: number, weightT: number, gIn: number, m: number, nIn: number, kOut: number,
  accumulate: boolean): void {
  run.productT(gOut, ld, weightT, gIn, nIn, 0, m, nIn, kOut, accumulate ? 1 : 0, 0, nIn, GemmActivation.none);
}

/**
 * A norm's backward between its two hooks: gNorm (the gradient at hook_normalized, already
 * fired) gives the gradient at hook_scale (fired), and both give the input's, added to `into`
 * (the residual stream's gradient by default).
 */
function normBackward(run: Run, scaleName: string, layer: number | undefined, into: number = run.buf.gResid): void {
  const { buf, cfg, rows } = run;
  run.kernels.normScaleGrad(buf.gNorm, buf.sNorm, buf.sScale, buf.gScale, rows, cfg.dModel);
  fire(run, scaleName, layer, buf.gScale, [run.batch, run.pos, 1]);
  run.kernels.normInputGrad(buf.gNorm, buf.sNorm, buf.sScale, buf.gScale, into, rows, cfg.dModel, run.centred ? 1 : 0);
}

/**
 * Through a post-norm (Gemma-2) y = x̂ · w, x̂ = x / s: gDelta holds y's gradient on entry and x's
 * on return; the norm's hooks see x̂'s and s's gradients.
 */
function postNormBackward(run: Run, l: number, which: "ln1Post" | "ln2Post", w: number): void {
  const { buf, cfg, rows } = run;
  const D = cfg.dModel;
  const heap = run.engine.heap();
  const G = buf.gDelta >>> 2;
  const N = buf.gNorm >>> 2;
  const W = w >>> 2;
  for (let r = 0; r < rows; r++) for (let i = 0; i < D; i++) heap[N + r * D + i] = heap[G + r * D + i]! * heap[W + i]!;
  fireBlock(run, l, `${which}Normalized`, buf.gNorm, [run.batch, run.pos, D]);
  load(run, blockHookName(l, `${which}Normalized`), buf.sNorm);
  load(run, blockHookName(l, `${which}Scale`), buf.sScale);
  run.engine.heap().fill(0, G, G + rows * D);
  normBackward(run, blockHookName(l, `${which}Scale`), l, buf.gDelta);
}

// ---- the steps, in reverse forward order ----

/** logits = ln_final(resid) · W_U + b_U: gResid = ln_final's backward of gLogits · W_Uᵀ. */
function unembedBackward(run: Run, wT: TransposedPointers): void {
  const { buf, cfg, batch: B, pos: P } = run;
  const { dModel: D, dVocab: V } = cfg;
  const heap = run.engine.heap();
  const g = run.plan.gradLogits;
  heap.fill(0, buf.gNorm >>> 2, (buf.gNorm >>> 2) + run.rows * D);
  const last = run.plan.gradNormLast;
  if (last !== undefined) {
    for (let b = 0; b < B; b++) heap.set(last.subarray(b * D, (b + 1) * D), (buf.gNorm >>> 2) + (b * P + P - 1) * D);
  } else if (g.shape[1] === P) {
    heap.set(g.data, buf.gLogits >>> 2);
    linearBackward(run, buf.gLogits, V, wT.wUT, buf.gNorm, run.rows, D, V, false);
  } else {
    // Only each row's last position has a gradient: B rows, written with row stride P·D.
    heap.set(g.data, buf.gLogits >>> 2);
    run.productT(buf.gLogits, V, wT.wUT, buf.gNorm + (P - 1) * D * 4, P * D, 0, B, D, V, 0, 0, D, GemmActivation.none);
  }
  fire(run, FINAL_HOOKS.lnFinalNormalized.name, undefined, buf.gNorm, [B, P, D]);
  load(run, FINAL_HOOKS.lnFinalNormalized.name, buf.sNorm);
  load(run, FINAL_HOOKS.lnFinalScale.name, buf.sScale);
  heap.fill(0, buf.gResid >>> 2, (buf.gResid >>> 2) + run.rows * D);
  normBackward(run, FINAL_HOOKS.lnFinalScale.name, undefined);
}

/**
 * Block l's MLP backward: gResid (the gradient at resid_post) flows both past the MLP and, as
 * the gradient of mlp_out, through W_out, the activation, W_in (and W_gate) and ln2 into resid_mid.
 */
function mlpBlockBackward(run: Run, l: number, w: DevicePointers, wT: TransposedPointers): void {
  const { buf, cfg, batch: B, pos: P, rows } = run;
  const { dModel: D, dMlp: M } = cfg;
  const t = wT.blocks[l]!;
  const heap = () => run.engine.heap();
  heap().copyWithin(buf.gDelta >>> 2, buf.gResid >>> 2, (buf.gResid >>> 2) + rows * D);
  fireBlock(run, l, "mlpOut", buf.gDelta, [B, P, D]);
  if (cfg.postNorms) postNormBackward(run, l, "ln2Post", w.blocks[l]!.ln2Post);
  linearBackward(run, buf.gDelta, D, t.woutT, buf.gPost, rows, M, D, false);
  fireBlock(run, l, "mlpPost", buf.gPost, [B, P, M]);
  load(run, blockHookName(l, "mlpPre"), buf.sPre);
  if (cfg.gatedMlp) {
    // post = silu(pre) · pre_linear + b_in.
    load(run, blockHookName(l, "mlpPreLinear"), buf.sPreLinear);
    run.kernels[cfg.actFn === "gelu_new" ? "gegluGrad" : "swigluGrad"](buf.sPre, buf.sPreLinear, buf.gPost, buf.gPre, buf.gPreLinear, rows * M);
    fireBlock(run, l, "mlpPreLinear", buf.gPreLinear, [B, P, M]);
    fireBlock(run, l, "mlpPre", buf.gPre, [B, P, M]);
    linearBackward(run, buf.gPre, M, t.wgateT, buf.gNorm, rows, D, M, false);
    linearBackward(run, buf.gPreLinear, M, t.winT, buf.gNorm, rows, D, M, true);
  } else {
    const grad = cfg.actFn === "gelu_new" ? "geluNewGrad" : cfg.actFn === "gelu" ? "geluExactGrad" : "siluGrad";
    run.kernels[grad](buf.sPre, buf.gPost, buf.gPre, rows * M);
    fireBlock(run, l, "mlpPre", buf.gPre, [B, P, M]);
    linearBackward(run, buf.gPre, M, t.winT, buf.gNorm, rows, D, M, false);
  }
  fireBlock(run, l, "ln2Normalized", buf.gNorm, [B, P, D]);
  load(run, blockHookName(l, "ln2Normalized"), buf.sNorm);
  load(run, blockHookName(l, "ln2Scale"), buf.sScale);
  if (run.plan.hooks.has(blockHookName(l, "mlpIn"))) {
    // ln2 read hook_mlp_in, a copy of resid_mid: its gradient, once its hooks ran, joins the residual stream's.
    heap().fill(0, buf.gIn >>> 2, (buf.gIn >>> 2) + rows * D);
    normBackward(run, blockHookName(l, "ln2Scale"), l, buf.gIn);
    fireBlock(run, l, "mlpIn", buf.gIn, [B, P, D]);
    run.kernels.add(buf.gResid, buf.gIn, buf.gResid, rows * D);
  } else {
    normBackward(run, blockHookName(l, "ln2Scale"), l);
  }
}

/**
 * Block l's attention backward: gResid (the gradient at resid_mid) flows past the attention and
 * `attnOutGrad` (gResid itself, or resid_post's gradient when attention and MLP run in parallel),
 * as attn_out's gradient, through W_O (per head when hook_result exists), the pattern, the
 * softmax, the scores, rotary, W_Q/W_K/W_V and ln1 into resid_pre.
 */
function attentionBlockBackward(run: Run, l: number, w: DevicePointers, wT: TransposedPointers, attnOutGrad: number): void {
  const { buf, cfg, batch: B, pos: P, rows } = run;
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d } = cfg;
  const Hd = H * d;
  const Hkd = Hk * d;
  const t = wT.blocks[l]!;
  const heap = () => run.engine.heap();
  const rotary = cfg.positionalEmbeddingType === "rotary";
  heap().copyWithin(buf.gDelta >>> 2, attnOutGrad >>> 2, (attnOutGrad >>> 2) + rows * D);
  fireBlock(run, l, "attnOut", buf.gDelta, [B, P, D]);
  if (cfg.postNorms) postNormBackward(run, l, "ln1Post", w.blocks[l]!.ln1Post);
  if (cfg.useAttnResult) {
    // attn_out = Σ_h result[:, :, h] + b_O: each head's result gets attn_out's gradient.
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < H; h++) heap().copyWithin((buf.gResult >>> 2) + (r * H + h) * D, (buf.gDelta >>> 2) + r * D, (buf.gDelta >>> 2) + (r + 1) * D);
    }
    fireBlock(run, l, "result", buf.gResult, [B, P, H, D]);
    // gz[:, h] = gResult[:, h] · W_O[h]ᵀ (W_O[h]: [d, D], unpacked, read transposed).
    const woHeads = w.blocks[l]!.woHeads;
    for (let h = 0; h < H; h++) {
      run.kernels.gemm(buf.gResult + h * D * 4, H * D, woHeads + h * d * D * 4, D, buf.gz + h * d * 4, Hd, 0, rows, d, D, 1, 0);
    }
  } else {
    linearBackward(run, buf.gDelta, D, t.woT, buf.gz, rows, Hd, D, false);
  }
  fireBlock(run, l, "z", buf.gz, [B, P, H, d]);

  load(run, blockHookName(l, "v"), buf.sV);
  load(run, blockHookName(l, "pattern"), buf.sPattern);
  run.kernels.patternAndValueGrad(buf.gz, buf.sV, buf.sPattern, buf.gPattern, buf.gv, B, P, H, Hk, d, 0, H);
  fireBlock(run, l, "pattern", buf.gPattern, [B, H, P, P]);
  run.kernels.softmaxGrad(buf.sPattern, buf.gPattern, buf.gScores, B * H * P, P);
  fireBlock(run, l, "attnScores", buf.gScores, [B, H, P, P]);
  if (cfg.attnSoftcap !== undefined) {
    // Through the soft-cap y = c · tanh(s / c): dy/ds = 1 - (y / c)², zero where the mask made y -Infinity.
    load(run, blockHookName(l, "attnScores"), buf.gPattern);
    const heap = run.engine.heap();
    const c = cfg.attnSoftcap;
    const G = buf.gScores >>> 2;
    const Y = buf.gPattern >>> 2;
    for (let i = 0; i < B * H * P * P; i++) {
      const y = heap[Y + i]!;
      heap[G + i] = y === -Infinity ? 0 : heap[G + i]! * (1 - (y / c) * (y / c));
    }
  }
  load(run, blockHookName(l, rotary ? "rotQ" : "q"), buf.sQ);
  load(run, blockHookName(l, rotary ? "rotK" : "k"), buf.sK);
  run.kernels.queryKeyGrad(buf.gScores, buf.sQ, buf.sK, buf.mask, buf.gq, buf.gk, B, P, H, Hk, d, 1 / cfg.attnScale, 0, H);
  if (rotary) {
    // The rotation's transpose is the rotation by minus the angle (sin negated).
    fireBlock(run, l, "rotQ", buf.gq, [B, P, H, d]);
    run.kernels.rotary(buf.gq, buf.gq, buf.cos, buf.sinNeg, rows, H, d, rotaryDim(cfg));
    fireBlock(run, l, "rotK", buf.gk, [B, P, Hk, d]);
    run.kernels.rotary(buf.gk, buf.gk, buf.cos, buf.sinNeg, rows, Hk, d, rotaryDim(cfg));
  }
  fireBlock(run, l, "v", buf.gv, [B, P, Hk, d]);
  fireBlock(run, l, "k", buf.gk, [B, P, Hk, d]);
  fireBlock(run, l, "q", buf.gq, [B, P, H, d]);
  // The split path where a backward hook watches a head's input, or a forward hook did (and may have changed it).
  const split = (["qInput", "kInput", "vInput"] as const).some((key) => run.plan.hooks.has(blockHookName(l, key)) ||
    run.plan.stored.has(blockHookName(l, key)));
  // With split inputs the fused gradient of ln1's output only feeds ln1's own hooks (to look at).
  const lookedAt = (["ln1Normalized", "ln1Scale"] as const).some((key) => run.plan.hooks.has(blockHookName(l, key)));
  if (!split || lookedAt) {
    linearBackward(run, buf.gq, Hd, t.wqT, buf.gNorm, rows, D, Hd, false);
    linearBackward(run, buf.gk, Hkd, t.wkT, buf.gNorm, rows, D, Hkd, true);
    linearBackward(run, buf.gv, Hkd, t.wvT, buf.gNorm, rows, D, Hkd, true);
  }
  load(run, blockHookName(l, "ln1Normalized"), buf.sNorm);
  load(run, blockHookName(l, "ln1Scale"), buf.sScale);
  if (split) {
    splitInputsBackward(run, l, w, lookedAt);
    return;
  }
  fireBlock(run, l, "ln1Normalized", buf.gNorm, [B, P, D]);
  normBackward(run, blockHookName(l, "ln1Scale"), l);
}

/**
 * Split q/k/v inputs: each head's own copy of resid_pre went through its own ln1 and its own
 * columns of W_Q, W_K or W_V, so its gradient is that path's alone (ATTRIBUTION.md's reader
 * gradients). Each is fired at hook_q_input / hook_k_input / hook_v_input, then all join the
 * residual stream's. ln1's hooks see the sum over every head's path (what flows through the
 * shared norm) and may look but not change it.
 */
function splitInputsBackward(run: Run, l: number, w: DevicePointers, lookedAt: boolean): void {
  const { buf, cfg, batch: B, pos: P, rows } = run;
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d } = cfg;
  const heap = () => run.engine.heap();
  const look = (key: "ln1Normalized" | "ln1Scale", ptr: number, shape: number[]) => {
    if (!run.plan.hooks.has(blockHookName(l, key))) return;
    const before = heap().slice(ptr >>> 2, (ptr >>> 2) + shape.reduce((a, b) => a * b, 1));
    fireBlock(run, l, key, ptr, shape);
    if (!before.every((v, i) => Object.is(v, heap()[(ptr >>> 2) + i]))) {
      throw new Error(`blocks.${l}.${BLOCK_HOOKS[key].name}: with split q/k/v inputs, ln1's backward hooks may look but not change; ` +
        `hook blocks.${l}.hook_q_input, hook_k_input or hook_v_input instead`);
    }
  };
  if (lookedAt) {
    look("ln1Normalized", buf.gNorm, [B, P, D]);
    run.kernels.normScaleGrad(buf.gNorm, buf.sNorm, buf.sScale, buf.gScale, rows, D);
    look("ln1Scale", buf.gScale, [B, P, 1]);
  }

  const p = w.blocks[l]!;
  const inputs = [
    { key: "qInput", g: buf.gq, heads: H, w: p.wqRaw },
    { key: "kInput", g: buf.gk, heads: Hk, w: p.wkRaw },
    { key: "vInput", g: buf.gv, heads: Hk, w: p.wvRaw },
  ] as const;
  for (const input of inputs) {
    const width = input.heads * d;
    // The copies as the heads read them, where a forward hook watched them (and may have changed them).
    const copies = run.plan.stored.get(blockHookName(l, input.key));
    for (let h = 0; h < input.heads; h++) {
      // gNorm of head h's copy = g[:, h] · W[:, h*d:(h+1)*d]ᵀ; its ln1 backward, with the shared ln1's statistics
      // or, where the copy was kept, with its own (recomputed as the forward computed them).
      run.kernels.gemm(input.g + h * d * 4, width, input.w + h * d * 4, width, buf.gNorm, D, 0, rows, D, d, 1, 0);
      let [norm, scale] = [buf.sNorm, buf.sScale];
      if (copies !== undefined) {
        for (let r = 0; r < rows; r++) {
          const src = (copies.ptr >>> 2) + (r * input.heads + h) * D;
          heap().copyWithin((buf.sHeadNorm >>> 2) + r * D, src, src + D);
        }
        if (run.centred) run.kernels.layerNorm(buf.sHeadNorm, buf.sHeadNorm, buf.sHeadScale, 0, 0, rows, D, cfg.eps);
        else run.kernels.rmsNorm(buf.sHeadNorm, buf.sHeadNorm, buf.sHeadScale, 0, rows, D, cfg.eps);
        [norm, scale] = [buf.sHeadNorm, buf.sHeadScale];
      }
      run.kernels.normScaleGrad(buf.gNorm, norm, scale, buf.gScale, rows, D);
      heap().fill(0, buf.gIn >>> 2, (buf.gIn >>> 2) + rows * D);
      run.kernels.normInputGrad(buf.gNorm, norm, scale, buf.gScale, buf.gIn, rows, D, run.centred ? 1 : 0);
      for (let r = 0; r < rows; r++) {
        heap().copyWithin((buf.gSplit >>> 2) + (r * input.heads + h) * D, (buf.gIn >>> 2) + r * D, (buf.gIn >>> 2) + (r + 1) * D);
      }
    }
    fireBlock(run, l, input.key, buf.gSplit, [B, P, input.heads, D]);
    // Every head's copy was resid_pre: their gradients sum into it.
    for (let r = 0; r < rows; r++) {
      const out = buf.gResid + r * D * 4;
      for (let h = 0; h < input.heads; h++) run.kernels.add(out, buf.gSplit + (r * input.heads + h) * D * 4, out, D);
    }
  }
}

/** cos and -sin [rows, d/2] of every position, for rotating gradients back. */
function buildInverseRotaryTables(run: Run): void {
  const { buf, cfg, batch: B, pos: P } = run;
  const ids = positionIds({ batch: B, pos: P, attentionMask: run.plan.attentionMask });
  const heap = run.engine.heap();
  rotaryTables(heap, ids, B, P, 0, P, rotaryDivisors(cfg), buf.cos, buf.sinNeg);
  const n = run.rows * (cfg.dHead / 2);
  for (let i = 0; i < n; i++) heap[(buf.sinNeg >>> 2) + i] = -heap[(buf.sinNeg >>> 2) + i]!;
}
