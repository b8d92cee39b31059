import type { Engine } from "../engine/engine.js";
import { GemmActivation, type Kernels } from "../engine/kernels.js";
import { Tensor } from "../engine/tensor.js";
import { activationSizes, arenaLayout, type ActivationBuffer, type ForwardShape } from "./activation-sizes.js";
import type { ActFn, HookedTransformerConfig } from "./config.js";
import { packedProduct, type BlockPointers, type DevicePointers } from "./device-weights.js";
import { BLOCK_HOOKS, blockHookName, EMBED_HOOKS, FINAL_HOOKS, type BlockHook, type HookFn } from "./hook-points.js";
import { assemble, embed, gatherLastRows, positionIds, renormalize, sumHeads } from "./forward-heap.js";
import { rotaryDim, rotaryDivisors, rotaryTables } from "./rotary-tables.js";
import { layerWindow } from "./config.js";

/** Each MLP activation's own kernel, and its code for gemmPacked's fused activation. */
const ACTIVATIONS = {
  gelu_new: { kernel: "geluNew", fused: GemmActivation.geluNew },
  gelu: { kernel: "geluExact", fused: GemmActivation.gelu },
  silu: { kernel: "silu", fused: GemmActivation.silu },
} as const satisfies Record<ActFn, { kernel: string; fused: number }>;

/** Everything one forward pass needs, already validated by the caller. */
export interface ForwardPlan {
  batch: number;
  /** Sequence length, including any kept prefix. */
  pos: number;
  /** Token ids [batch * pos]; used when starting at layer 0. */
  tokens?: Int32Array;
  /** The residual stream entering block `startAtLayer` at positions [posStart, pos): [batch * (pos - posStart) * dModel]. */
  residual?: Float32Array;
  /** [batch * pos], 1 = real token, 0 = padding; absent = all real. */
  attentionMask?: Float32Array;
  startAtLayer: number;
  /** Blocks [startAtLayer, stopAtLayer) run. */
  stopAtLayer: number;
  /**
   * `residual` is block `startAtLayer`'s resid_mid (after its attention) rather than its resid_pre:
   * that block's attention and every hook before its `hook_resid_mid` are skipped.
   */
  startAfterAttention?: boolean;
  /** Return the residual stream after the last block run, instead of logits. */
  returnResidual: boolean;
  /** Resolved hook name → functions, in registration order. */
  hooks: ReadonlyMap<string, readonly HookFn[]>;
  /** Which positions are unembedded: all computed ones, only the last of each row, or none. */
  unembed: "all" | "last" | "none";
  /**
   * First position computed (default 0). Positions before it are an unchanged prefix whose keys
   * and values come from `prefix`; hooks then see only positions [posStart, pos).
   */
  posStart?: number;
  /**
   * Keys and values of block `layer` for every position [b, pos, nKvHeads, dHead]; the first posStart
   * are read. b may divide batch (stacked copies of one batch): row r reads kept row r % b.
   */
  prefix?: (layer: number) => { k: Float32Array; v: Float32Array };
  /**
   * In the last block, compute keys and values at every position but queries, the attention
   * output, the MLP and the final norm only at each row's last position (needs unembed "last" or
   * "none"; with "none", `ln_final.hook_normalized` is where the caller reads those positions).
   * Hooks of that block after the keys and values then see that one position.
   */
  pruneLastLayer?: boolean;
}

export interface ForwardOutput {
  /** [batch, computed positions, dVocab], or [batch, 1, dVocab] for unembed "last". */
  logits?: Tensor;
  /** [batch, computed positions, dModel] when the pass stopped before the end. */
  residual?: Tensor;
}

/**
 * The state of one forward pass: the activation arena (one allocation, sliced into named
 * buffers) and which rows of it are live. Every step below reads and advances it explicitly.
 */
interface Run {
  readonly engine: Engine;
  readonly kernels: Kernels;
  readonly cfg: HookedTransformerConfig;
  readonly plan: ForwardPlan;
  /** Byte pointer of each arena buffer (0 for buffers this pass does not use). */
  readonly buf: Readonly<Record<ActivationBuffer, number>>;
  readonly batch: number;
  /** Sequence length (keys of every query). */
  readonly pos: number;
  /** Each block's hook functions by hook key, looked up once per pass. */
  readonly blockHooks: readonly (Partial<Record<BlockHook, readonly HookFn[]>> | undefined)[];
  readonly rms: boolean;
  /** The packed product that reads the weights as they are stored (f32, bf16 or f16). */
  readonly product: Kernels["gemmPacked"];
  /** Positions computed per row, and the first of them (the pruned last block narrows both to the last position). */
  n: number;
  start: number;
  /** Byte pointer of the residual stream [batch, n, dModel]. */
  resid: number;
  /** buf.norm and buf.scale already hold the norm of `resid` the next normalize asks for (see addToResidual). */
  residNormalized: boolean;
}

/**
 * One forward pass over the engine's memory: embed, then for each block its attention and its
 * MLP, then the final norm and the unembedding. Each block's activations live in one arena
 * reused by every block; a hook sees a view of the buffer it names, and what it writes there
 * (or returns) is what the rest of the pass reads.
 */
export function runForward(engine: Engine, cfg: HookedTransformerConfig, w: DevicePointers, plan: ForwardPlan): ForwardOutput {
  const shape = forwardShape(cfg, plan);
  // One allocation before the first kernel runs: growing memory later would detach hook views.
  const sizes = activationSizes(cfg, shape);
  const layout = arenaLayout(sizes);
  const base = engine.alloc(layout.floats);
  try {
    const run = startRun(engine, cfg, plan, sizes, base, layout.offsets, packedProduct(engine.kernels, w.dtype));
    if (shape.embeds) embedTokens(run, w);
    else engine.heap().set(plan.residual!, run.resid >>> 2);
    if (plan.attentionMask) engine.heap().set(plan.attentionMask, run.buf.mask >>> 2);
    if (cfg.positionalEmbeddingType === "rotary") buildRotaryTables(run);

    for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) {
      const p = w.blocks[l]!;
      // Started at this block's resid_mid: its attention is the caller's (see ForwardPlan.startAfterAttention).
      if (!(l === plan.startAtLayer && plan.startAfterAttention)) attentionBlock(run, l, p);
      if (!cfg.parallelAttnMlp) fire(run, l, "residMid", run.resid, [run.batch, run.n, cfg.dModel], run.start);
      mlpBlock(run, l, p);
    }

    if (plan.returnResidual) {
      return { residual: new Tensor(engine.download(run.resid, rows(run) * cfg.dModel), [run.batch, run.n, cfg.dModel]) };
    }
    normalize(run, siteOutside(run, FINAL_HOOKS.lnFinalScale.name), siteOutside(run, FINAL_HOOKS.lnFinalNormalized.name));
    return plan.unembed === "none" ? {} : { logits: unembed(run, w) };
  } finally {
    engine.free(base);
  }
}

/** The pass's shape for the memory model (see activation-sizes.ts). */
export function forwardShape(cfg: HookedTransformerConfig, plan: ForwardPlan): ForwardShape {
  const posStart = plan.posStart ?? 0;
  const n = plan.pos - posStart;
  const finishing = !plan.returnResidual;
  const hookedAny = (...keys: BlockHook[]) => {
    for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) if (keys.some((key) => plan.hooks.has(blockHookName(l, key)))) return true;
    return false;
  };
  return {
    batch: plan.batch, pos: plan.pos, posStart,
    embeds: plan.startAtLayer === 0 && !plan.startAfterAttention,
    scores: hookedAny("attnScores", "pattern"),
    splitInputs: hookedAny("qInput", "kInput", "vInput"),
    // A parallel MLP reads its own copy of resid_pre (the stream goes on to take attn_out first).
    mlpIn: hookedAny("mlpIn") || cfg.parallelAttnMlp === true,
    pruneLastLayer: finishing && plan.unembed !== "all" && (plan.pruneLastLayer ?? false) && plan.stopAtLayer === cfg.nLayers && n > 1,
    attentionMask: plan.attentionMask !== undefined,
    logitRows: !finishing || plan.unembed === "none" ? 0 : plan.unembed === "last" ? plan.batch : plan.batch * n,
  };
}

/** The run's state at the start: arena buffers at `base` + their offsets, and each block's hooks looked up once. */
function startRun(engine: Engine, cfg: HookedTransformerConfig, plan: ForwardPlan, sizes: Record<ActivationBuffer, number>,
  base: number, offsets: Record<ActivationBuffer, number>, product: Kernels["gemmPacked"]): Run {
  const buf = {} as Record<ActivationBuffer, number>;
  for (const key of Object.keys(offsets) as ActivationBuffer[]) buf[key] = sizes[key] > 0 ? base + 4 * offsets[key] : 0;
  const blockHooks: Run["blockHooks"][number][] = [];
  for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) {
    const found: Partial<Record<BlockHook, readonly HookFn[]>> = {};
    for (const key of Object.keys(BLOCK_HOOKS) as BlockHook[]) {
      const fns = plan.hooks.get(blockHookName(l, key));
      if (fns !== undefined) found[key] = fns;
    }
    blockHooks[l] = found;
  }
  const posStart = plan.posStart ?? 0;
  return {
    engine, kernels: engine.kernels, cfg, plan, buf, batch: plan.batch, pos: plan.pos, blockHooks,
    rms: cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre", product,
    n: plan.pos - posStart, start: posStart, resid: buf.resid, residNormalized: false,
  };
}

const rows = (run: Run) => run.batch * run.n;

// ---- hooks ----

/** A hook point with hooks on it in this pass. */
interface HookSite {
  readonly name: string;
  readonly layer: number | undefined;
  readonly fns: readonly HookFn[];
}

/** Block `layer`'s hook point `key`, or undefined when nothing is hooked there. */
function siteAt(run: Run, layer: number, key: BlockHook): HookSite | undefined {
  const fns = run.blockHooks[layer]?.[key];
  return fns === undefined ? undefined : { name: blockHookName(layer, key), layer, fns };
}

/** A hook point outside the blocks (embeddings, ln_final), or undefined when nothing is hooked there. */
function siteOutside(run: Run, name: string): HookSite | undefined {
  const fns = run.plan.hooks.get(name);
  return fns === undefined ? undefined : { name, layer: undefined, fns };
}

function hooked(run: Run, layer: number, key: BlockHook): boolean {
  return run.blockHooks[layer]?.[key] !== undefined;
}

/** Runs a block's hooks at `key` on the buffer at `ptr` [shape] (nothing when none is registered). */
function fire(run: Run, layer: number, key: BlockHook, ptr: number, shape: number[], positionStart: number): void {
  callHooks(run, siteAt(run, layer, key), ptr, shape, positionStart);
}

/** Each hook sees a view of the buffer; a tensor it returns is copied over the buffer. */
function callHooks(run: Run, site: HookSite | undefined, ptr: number, shape: number[], positionStart: number): void {
  if (site === undefined) return;
  const { name, layer } = site;
  const size = shape.reduce((a, b) => a * b, 1);
  for (const fn of site.fns) {
    const view = new Tensor(run.engine.view(ptr, size), shape);
    const ret = fn(view, { name, layer, positionStart });
    if (ret === undefined || ret === null) continue;
    if (!(ret instanceof Tensor)) throw new Error(`hook on ${name} returned ${typeof ret}; return a Tensor or nothing`);
    if (ret.shape.length !== shape.length || ret.shape.some((x, i) => x !== shape[i])) {
      throw new Error(`hook on ${name} returned shape [${ret.shape.join(", ")}] but the activation is [${shape.join(", ")}]`);
    }
    if (ret.data !== view.data) run.engine.heap().set(ret.data, ptr >>> 2);
  }
}

// ---- steps every block uses ----

/**
 * norm [rows, D] = the residual stream normalised (LayerNorm or RMSNorm without affine: the
 * upload folded w and b into the next product), with its per-row scale [rows]; then the norm's
 * two hooks. A hook that changes the scale changes the normalised output, as in TransformerLens.
 */
function normalize(run: Run, scaleSite: HookSite | undefined, normalizedSite: HookSite | undefined, x: number = run.resid): void {
  const { kernels, buf, cfg } = run;
  const D = cfg.dModel;
  if (!run.residNormalized) {
    if (run.rms) kernels.rmsNorm(x, buf.norm, buf.scale, 0, rows(run), D, cfg.eps);
    else kernels.layerNorm(x, buf.norm, buf.scale, 0, 0, rows(run), D, cfg.eps);
  }
  run.residNormalized = false;
  if (scaleSite !== undefined) {
    // Renormalised only if a hook changed the scale, so a hook that looks changes no bits.
    const heap = () => run.engine.heap();
    const before = heap().slice(buf.scale >>> 2, (buf.scale >>> 2) + rows(run));
    callHooks(run, scaleSite, buf.scale, [run.batch, run.n, 1], run.start);
    const after = heap().subarray(buf.scale >>> 2, (buf.scale >>> 2) + rows(run));
    if (after.some((v, r) => !Object.is(v, before[r]))) renormalize(heap(), x, buf.norm, buf.scale, rows(run), D, run.rms);
  }
  callHooks(run, normalizedSite, buf.norm, [run.batch, run.n, D], run.start);
}

/**
 * resid += delta [rows, D]. When the next step normalises resid and no hook in `between` can
 * see or change it first, the norm runs in the same pass (addLayerNorm or addRmsNorm, the same
 * bits as the two kernels), and the next normalize only fires its hooks.
 */
function addToResidual(run: Run, delta: number, between: readonly (HookSite | undefined)[], normalizesNext: boolean): void {
  const { kernels, buf, cfg, resid } = run;
  const n = rows(run) * cfg.dModel;
  run.residNormalized = normalizesNext && between.every((site) => site === undefined);
  if (!run.residNormalized) kernels.add(resid, delta, resid, n);
  else if (run.rms) kernels.addRmsNorm(resid, delta, resid, buf.norm, buf.scale, 0, rows(run), cfg.dModel, cfg.eps);
  else kernels.addLayerNorm(resid, delta, resid, buf.norm, buf.scale, 0, 0, rows(run), cfg.dModel, cfg.eps);
}

/** y [m, nOut] = act(x [m, kIn] (row stride lda) · W + bias), W packed at upload (as f32, bf16 or f16). */
function linear(run: Run, x: number, lda: number, weight: number, y: number, bias: number, m: number, nOut: number, kIn: number,
  act: number = GemmActivation.none): void {
  run.product(x, lda, weight, y, nOut, bias, m, nOut, kIn, 0, 0, nOut, act);
}

// ---- the steps, in forward order ----

/** resid [rows, D] = W_E[token] (+ W_pos[position id]), with hook_embed and hook_pos_embed. */
function embedTokens(run: Run, w: DevicePointers): void {
  const { buf, cfg, batch: B, n } = run;
  const D = cfg.dModel;
  const heap = run.engine.heap();
  embed(heap, run.plan, run.start, cfg, w, buf.embed, buf.posEmbed);
  callHooks(run, siteOutside(run, EMBED_HOOKS.embed.name), buf.embed, [B, n, D], run.start);
  if (buf.posEmbed === 0) {
    run.engine.heap().copyWithin(run.resid >>> 2, buf.embed >>> 2, (buf.embed >>> 2) + rows(run) * D);
  } else {
    callHooks(run, siteOutside(run, EMBED_HOOKS.posEmbed.name), buf.posEmbed, [B, n, D], run.start);
    run.kernels.add(buf.embed, buf.posEmbed, run.resid, rows(run) * D);
  }
}

/** cos/sin [rows, d/2] of every computed row (and of each row's last position for a pruned last block), once per pass. */
function buildRotaryTables(run: Run): void {
  const { buf, cfg, batch: B, pos: P } = run;
  const ids = positionIds(run.plan);
  const divisors = rotaryDivisors(cfg);
  rotaryTables(run.engine.heap(), ids, B, P, run.start, run.n, divisors, buf.cos, buf.sin);
  if (buf.cosLast !== 0) rotaryTables(run.engine.heap(), ids, B, P, P - 1, 1, divisors, buf.cosLast, buf.sinLast);
}

/**
 * Block `l`'s attention: resid_pre → ln1 → q, k, v (rotated) → causal attention → z → W_O →
 * attn_out, added to the residual stream. In a pruned last block, queries and everything after
 * them exist only at each row's last position.
 */
function attentionBlock(run: Run, l: number, p: BlockPointers): void {
  const { kernels, buf, cfg, batch: B, pos: P } = run;
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d } = cfg;
  const Hd = H * d;
  const Hkd = Hk * d;
  fire(run, l, "residPre", run.resid, [B, run.n, D], run.start);
  if (cfg.parallelAttnMlp) run.engine.heap().copyWithin(buf.mlpIn >>> 2, run.resid >>> 2, (run.resid >>> 2) + rows(run) * D);
  const pruneHere = buf.residLast !== 0 && l === cfg.nLayers - 1;
  const qn = pruneHere ? 1 : run.n;
  const qStart = pruneHere ? P - 1 : run.start;
  const split = buf.qInput !== 0 && (["qInput", "kInput", "vInput"] as const).some((key) => hooked(run, l, key));
  if (split) {
    splitInputProjections(run, l, p, pruneHere);
  } else {
    normalize(run, siteAt(run, l, "ln1Scale"), siteAt(run, l, "ln1Normalized"));
    // k, v: [B, n, Hk, d] at every computed position; q: [B, qn, H, d] (qn = 1 when pruned: a strided operand).
    linear(run, buf.norm, D, p.wk, buf.k, p.bk, rows(run), Hkd, D);
    linear(run, buf.norm, D, p.wv, buf.v, p.bv, rows(run), Hkd, D);
    if (pruneHere) linear(run, buf.norm + (run.n - 1) * D * 4, run.n * D, p.wq, buf.q, p.bq, B, Hd, D);
    else linear(run, buf.norm, D, p.wq, buf.q, p.bq, rows(run), Hd, D);
  }
  fire(run, l, "q", buf.q, [B, qn, H, d], qStart);
  fire(run, l, "k", buf.k, [B, run.n, Hk, d], run.start);
  fire(run, l, "v", buf.v, [B, run.n, Hk, d], run.start);
  if (cfg.positionalEmbeddingType === "rotary") {
    // In place: q and k are not read again before attention.
    kernels.rotary(buf.q, buf.q, pruneHere ? buf.cosLast : buf.cos, pruneHere ? buf.sinLast : buf.sin, B * qn, H, d, rotaryDim(cfg));
    fire(run, l, "rotQ", buf.q, [B, qn, H, d], qStart);
    kernels.rotary(buf.k, buf.k, buf.cos, buf.sin, rows(run), Hk, d, rotaryDim(cfg));
    fire(run, l, "rotK", buf.k, [B, run.n, Hk, d], run.start);
  }

  // Keys and values of the whole sequence [B, P, Hk, d]: the kept prefix, then the computed positions.
  let kAll = buf.k;
  let vAll = buf.v;
  if (buf.kFull !== 0) {
    const kept = run.plan.prefix!(l);
    const heap = run.engine.heap();
    assemble(heap, kept.k, buf.k, buf.kFull, B, P, run.start, Hkd);
    assemble(heap, kept.v, buf.v, buf.vFull, B, P, run.start, Hkd);
    kAll = buf.kFull;
    vAll = buf.vFull;
  }
  // z [B, qn, H, d] = softmax(q·kᵀ / attnScale, causal and padding masked) · v; scores and
  // pattern [B, H, qn, P] are materialised only when a hook reads them.
  if (hooked(run, l, "attnScores") || hooked(run, l, "pattern") || cfg.attnSoftcap !== undefined) {
    kernels.attnScores(buf.q, kAll, buf.scores, buf.mask, B, qn, P, H, Hk, d, 1 / cfg.attnScale, 0, H, layerWindow(cfg, l));
    // Soft-capping comes before the mask; masked scores stay -Infinity.
    if (cfg.attnSoftcap !== undefined) kernels.softcap(buf.scores, buf.scores, B * H * qn * P, cfg.attnSoftcap);
    fire(run, l, "attnScores", buf.scores, [B, H, qn, P], qStart);
    kernels.softmax(buf.scores, buf.pattern, B * H * qn, P);
    fire(run, l, "pattern", buf.pattern, [B, H, qn, P], qStart);
    kernels.attnApplyPattern(buf.pattern, vAll, buf.z, B, qn, P, H, Hk, d, 0, H);
  } else {
    kernels.attention(buf.q, kAll, vAll, buf.z, buf.mask, B, qn, P, H, Hk, d, 1 / cfg.attnScale, 0, H, layerWindow(cfg, l));
  }
  if (pruneHere) {
    // From here on only the last position of each row is computed.
    gatherLastRows(run.engine.heap(), run.resid, buf.residLast, B, run.n, D);
    // The parallel MLP's copy of resid_pre too, in place (row b*n + n-1 moves down to row b).
    if (cfg.parallelAttnMlp) gatherLastRows(run.engine.heap(), buf.mlpIn, buf.mlpIn, B, run.n, D);
    run.resid = buf.residLast;
    run.n = 1;
    run.start = P - 1;
  }
  fire(run, l, "z", buf.z, [B, run.n, H, d], run.start);

  // attn_out [B, n, D] = z · W_O + b_O, through per-head results when hook_result is computed.
  if (cfg.useAttnResult) {
    // result[:, h, :] = z[:, h, :] @ W_O[h]: one gemm per head, strided into [rows, H, D].
    for (let h = 0; h < H; h++) {
      kernels.gemm(buf.z + h * d * 4, Hd, p.woHeads + h * d * D * 4, D, buf.result + h * D * 4, H * D, 0, rows(run), D, d, 0, 0);
    }
    fire(run, l, "result", buf.result, [B, run.n, H, D], run.start);
    sumHeads(run.engine.heap(), buf.result, p.bo, buf.attnOut, rows(run), H, D);
  } else {
    linear(run, buf.z, Hd, p.wo, buf.attnOut, p.bo, rows(run), D, Hd);
  }
  // Gemma-2's post-attention norm, on the sum of every head.
  if (cfg.postNorms) postNorm(run, l, "ln1Post", buf.attnOut, p.ln1Post);
  fire(run, l, "attnOut", buf.attnOut, [B, run.n, D], run.start);
  // Next, the MLP normalises the stream (a parallel MLP normalises its copy of resid_pre instead).
  addToResidual(run, buf.attnOut, [siteAt(run, l, "residMid"), siteAt(run, l, "mlpIn")], !cfg.parallelAttnMlp);
}

/**
 * x [rows, D] = rmsNorm(x) · w in place, through `norm` (the norm's buffers are free here: the
 * products that read ln1 or ln2 have run), firing the post-norm's scale and normalized hooks.
 */
function postNorm(run: Run, l: number, which: "ln1Post" | "ln2Post", x: number, w: number): void {
  const { buf, cfg } = run;
  const D = cfg.dModel;
  run.residNormalized = false;
  normalize(run, siteAt(run, l, `${which}Scale`), siteAt(run, l, `${which}Normalized`), x);
  const heap = run.engine.heap();
  const X = x >>> 2;
  const N = buf.norm >>> 2;
  const W = w >>> 2;
  for (let r = 0; r < rows(run); r++) for (let i = 0; i < D; i++) heap[X + r * D + i] = heap[N + r * D + i]! * heap[W + i]!;
}

/**
 * Split q/k/v inputs (a hook watches hook_q_input, hook_k_input or hook_v_input): each head's
 * copy of resid_pre goes through the hooks, then its own ln1 and its own columns of W_Q, W_K or
 * W_V. ln1's hooks see the shared resid_pre's norm and may look but not change it.
 */
function splitInputProjections(run: Run, l: number, p: BlockPointers, pruneHere: boolean): void {
  const { buf, cfg, batch: B, n } = run;
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d } = cfg;
  const heap = () => run.engine.heap();
  const scaleSite = siteAt(run, l, "ln1Scale");
  const normSite = siteAt(run, l, "ln1Normalized");
  if (scaleSite === undefined && normSite === undefined) {
    run.residNormalized = false; // a fused norm before this block is not read
  } else {
    normalize(run, undefined, undefined);
    const before = heap().slice(buf.norm >>> 2, (buf.norm >>> 2) + rows(run) * D);
    const beforeScale = heap().slice(buf.scale >>> 2, (buf.scale >>> 2) + rows(run));
    callHooks(run, scaleSite, buf.scale, [B, n, 1], run.start);
    callHooks(run, normSite, buf.norm, [B, n, D], run.start);
    const same = (a: Float32Array, ptr: number) => a.every((v, i) => Object.is(v, heap()[(ptr >>> 2) + i]));
    if (!same(before, buf.norm) || !same(beforeScale, buf.scale)) {
      throw new Error(`blocks.${l}.ln1: with split q/k/v inputs, ln1's hooks may look but not change; hook blocks.${l}.hook_q_input, ` +
        "hook_k_input or hook_v_input instead");
    }
  }
  const inputs = [
    { key: "qInput", copy: buf.qInput, heads: H, w: p.wqRaw, bias: p.bq, out: buf.q, lastOnly: pruneHere },
    { key: "kInput", copy: buf.kInput, heads: Hk, w: p.wkRaw, bias: p.bk, out: buf.k, lastOnly: false },
    { key: "vInput", copy: buf.vInput, heads: Hk, w: p.wvRaw, bias: p.bv, out: buf.v, lastOnly: false },
  ] as const;
  for (const input of inputs) {
    // copy [B, n, heads, D]: resid_pre once per head.
    for (let r = 0; r < rows(run); r++) {
      for (let h = 0; h < input.heads; h++) {
        heap().copyWithin((input.copy >>> 2) + (r * input.heads + h) * D, (run.resid >>> 2) + r * D, (run.resid >>> 2) + (r + 1) * D);
      }
    }
    fire(run, l, input.key, input.copy, [B, n, input.heads, D], run.start);
  }
  for (const input of inputs) {
    const width = input.heads * d;
    // The pruned last block's queries: each row's last position only.
    const m = input.lastOnly ? B : rows(run);
    for (let h = 0; h < input.heads; h++) {
      // headNorm [m, D] = ln1(head h's copy); out[:, h] = headNorm · W[:, h*d:(h+1)*d] + b[h*d:(h+1)*d].
      for (let i = 0; i < m; i++) {
        const r = input.lastOnly ? i * n + n - 1 : i;
        const src = (input.copy >>> 2) + (r * input.heads + h) * D;
        heap().copyWithin((buf.headNorm >>> 2) + i * D, src, src + D);
      }
      if (run.rms) run.kernels.rmsNorm(buf.headNorm, buf.headNorm, buf.headScale, 0, m, D, cfg.eps);
      else run.kernels.layerNorm(buf.headNorm, buf.headNorm, buf.headScale, 0, 0, m, D, cfg.eps);
      run.kernels.gemm(buf.headNorm, D, input.w + h * d * 4, width, input.out + h * d * 4, width, input.bias + h * d * 4, m, d, D, 0, 0);
    }
  }
}

/**
 * Block `l`'s MLP: ln2 → W_in (and W_gate) → activation → W_out → mlp_out, added to the
 * residual stream, then hook_resid_post.
 */
function mlpBlock(run: Run, l: number, p: BlockPointers): void {
  const { kernels, buf, cfg, batch: B } = run;
  const { dModel: D, dMlp: M } = cfg;
  const mlpIn = siteAt(run, l, "mlpIn");
  if (cfg.parallelAttnMlp) {
    // Its copy of resid_pre, taken before attention.
    callHooks(run, mlpIn, buf.mlpIn, [B, run.n, D], run.start);
    normalize(run, siteAt(run, l, "ln2Scale"), siteAt(run, l, "ln2Normalized"), buf.mlpIn);
  } else if (mlpIn !== undefined && buf.mlpIn !== 0) {
    // The MLP reads its own copy of resid_mid, which the hook may change; the residual stream keeps resid_mid.
    run.engine.heap().copyWithin(buf.mlpIn >>> 2, run.resid >>> 2, (run.resid >>> 2) + rows(run) * D);
    callHooks(run, mlpIn, buf.mlpIn, [B, run.n, D], run.start);
    normalize(run, siteAt(run, l, "ln2Scale"), siteAt(run, l, "ln2Normalized"), buf.mlpIn);
  } else {
    normalize(run, siteAt(run, l, "ln2Scale"), siteAt(run, l, "ln2Normalized"));
  }
  // post [B, n, M]
  if (cfg.gatedMlp) {
    // post = act(x @ W_gate) * (x @ W_in) + b_in, as TransformerLens's gated MLP (the family adapter allows silu only).
    linear(run, buf.norm, D, p.wgate, buf.pre, 0, rows(run), M, D);
    fire(run, l, "mlpPre", buf.pre, [B, run.n, M], run.start);
    linear(run, buf.norm, D, p.win, buf.preLinear, 0, rows(run), M, D);
    fire(run, l, "mlpPreLinear", buf.preLinear, [B, run.n, M], run.start);
    if (cfg.actFn === "gelu_new") kernels.geglu(buf.pre, buf.preLinear, buf.post, rows(run) * M);
    else kernels.swiglu(buf.pre, buf.preLinear, buf.post, rows(run) * M);
    kernels.addRow(buf.post, p.bin, buf.post, rows(run), M);
  } else {
    const act = ACTIVATIONS[cfg.actFn];
    if (hooked(run, l, "mlpPre")) {
      linear(run, buf.norm, D, p.win, buf.pre, p.bin, rows(run), M, D);
      fire(run, l, "mlpPre", buf.pre, [B, run.n, M], run.start);
      kernels[act.kernel](buf.pre, buf.post, rows(run) * M);
    } else {
      // No hook reads hook_pre: bias and activation in the product's own pass (the same bits).
      linear(run, buf.norm, D, p.win, buf.post, p.bin, rows(run), M, D, act.fused);
    }
  }
  fire(run, l, "mlpPost", buf.post, [B, run.n, M], run.start);
  linear(run, buf.post, M, p.wout, buf.mlpOut, p.bout, rows(run), D, M);
  if (cfg.postNorms) postNorm(run, l, "ln2Post", buf.mlpOut, p.ln2Post);
  fire(run, l, "mlpOut", buf.mlpOut, [B, run.n, D], run.start);
  // Next comes block l + 1's ln1 (after its hook_resid_pre) or, at the end, ln_final (unless the pass returns the residual).
  const lastBlock = l + 1 === run.plan.stopAtLayer;
  const residPost = siteAt(run, l, "residPost");
  addToResidual(run, buf.mlpOut, lastBlock ? [residPost] : [residPost, siteAt(run, l + 1, "residPre")],
    !lastBlock || !run.plan.returnResidual);
  fire(run, l, "residPost", run.resid, [B, run.n, D], run.start);
}

/** ln_final, then logits [B, n or 1, V] = norm · W_U + b_U at every computed position or each row's last. */
function unembed(run: Run, w: DevicePointers): Tensor {
  const { buf, cfg, batch: B, n } = run;
  const { dModel: D, dVocab: V } = cfg;
  if (run.plan.unembed === "last") {
    // Row b*n + n-1 of each sequence: a strided A operand, no gather.
    linear(run, buf.norm + (n - 1) * D * 4, n * D, w.wU, buf.logits, w.bU, B, V, D);
    if (cfg.finalSoftcap !== undefined) run.kernels.softcap(buf.logits, buf.logits, B * V, cfg.finalSoftcap);
    return new Tensor(run.engine.download(buf.logits, B * V), [B, 1, V]);
  }
  linear(run, buf.norm, D, w.wU, buf.logits, w.bU, rows(run), V, D);
  if (cfg.finalSoftcap !== undefined) run.kernels.softcap(buf.logits, buf.logits, rows(run) * V, cfg.finalSoftcap);
  return new Tensor(run.engine.download(buf.logits, rows(run) * V), [B, n, V]);
}
