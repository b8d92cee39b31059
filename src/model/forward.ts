import type { Engine } from "../engine/engine.js";
import { GemmActivation } from "../engine/kernels.js";
import { Tensor } from "../engine/tensor.js";
import type { ActFn, HookedTransformerConfig } from "./config.js";
import type { DevicePointers } from "./device-weights.js";
import type { HookFn } from "./hook-points.js";
import { rotaryTables } from "./rotary-tables.js";

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
 * One forward pass over the engine's memory. Each block's activations live in one set
 * of buffers reused by every block; a hook sees a view of the buffer it names, and
 * what it writes there (or returns) is what the rest of the pass reads.
 */
export function runForward(engine: Engine, cfg: HookedTransformerConfig, w: DevicePointers, plan: ForwardPlan): ForwardOutput {
  const { batch: B, pos: P, hooks } = plan;
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V, eps } = cfg;
  const rotary = cfg.positionalEmbeddingType === "rotary";
  const s0 = plan.posStart ?? 0;
  const n0 = P - s0; // positions computed per row (until the last block is pruned)
  const R0 = B * n0;
  const Hd = H * d;
  const Hkd = Hk * d;
  const k = engine.kernels;
  const hooked = (name: string) => hooks.has(name);
  const needScores = (l: number) => hooked(`blocks.${l}.attn.hook_attn_scores`) || hooked(`blocks.${l}.attn.hook_pattern`);
  let anyScores = false;
  for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) anyScores ||= needScores(l);
  const finishing = !plan.returnResidual;
  const prune = finishing && plan.unembed !== "all" && (plan.pruneLastLayer ?? false) && plan.stopAtLayer === cfg.nLayers && n0 > 1;
  const logitRows = !finishing || plan.unembed === "none" ? 0 : plan.unembed === "last" ? B : R0;

  // Allocate everything before the first kernel runs: growing memory later would detach hook views.
  const sizes = {
    resid: R0 * D, embed: R0 * D, posEmbed: rotary ? 0 : R0 * D, norm: R0 * D, scale: R0,
    q: R0 * Hd, k: R0 * Hkd, v: R0 * Hkd, z: R0 * Hd, attnOut: R0 * D,
    kFull: s0 > 0 ? B * P * Hkd : 0, vFull: s0 > 0 ? B * P * Hkd : 0,
    cos: rotary ? R0 * (d / 2) : 0, sin: rotary ? R0 * (d / 2) : 0,
    residLast: prune ? B * D : 0,
    result: cfg.useAttnResult ? R0 * H * D : 0,
    scores: anyScores ? B * H * n0 * P : 0, pattern: anyScores ? B * H * n0 * P : 0,
    pre: R0 * M, preLinear: cfg.gatedMlp ? R0 * M : 0, post: R0 * M, mlpOut: R0 * D, mask: plan.attentionMask ? B * P : 0, logits: logitRows * V,
  };
  const buf = {} as Record<keyof typeof sizes, number>;
  const allocated: number[] = [];
  try {
    for (const key of Object.keys(sizes) as (keyof typeof sizes)[]) {
      buf[key] = sizes[key] > 0 ? engine.alloc(sizes[key]) : 0;
      if (buf[key] !== 0) allocated.push(buf[key]);
    }

    const fire = (name: string, ptr: number, shape: number[], layer: number | undefined, positionStart: number) => {
      const fns = hooks.get(name);
      if (fns === undefined) return;
      const size = shape.reduce((a, b) => a * b, 1);
      for (const fn of fns) {
        const view = new Tensor(engine.view(ptr, size), shape);
        const ret = fn(view, { name, layer, positionStart });
        if (ret === undefined || ret === null) continue;
        if (!(ret instanceof Tensor)) throw new Error(`hook on ${name} returned ${typeof ret}; return a Tensor or nothing`);
        if (ret.shape.length !== shape.length || ret.shape.some((x, i) => x !== shape[i])) {
          throw new Error(`hook on ${name} returned shape [${ret.shape.join(", ")}] but the activation is [${shape.join(", ")}]`);
        }
        if (ret.data !== view.data) engine.heap().set(ret.data, ptr >>> 2);
      }
    };

    // Rows computed per sequence, their first position, and where their residual stream lives;
    // the pruned last block narrows these to each row's last position.
    let n = n0;
    let start = s0;
    let resid = buf.resid;
    const rows = () => B * n;

    const rms = cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre";
    // Whether buf.norm and buf.scale already hold the norm of resid the next normalize asks for
    // (the residual add before it ran fused with it, see addToResidual).
    let residNormalized = false;
    // Normalise x into buf.norm with the per-row scale (unless that is done), firing the two
    // hooks. A hook that changes the scale changes the normalised output, as in TransformerLens.
    const normalize = (x: number, prefix: string, layer: number | undefined) => {
      if (!residNormalized) {
        if (rms) k.rmsNorm(x, buf.norm, buf.scale, 0, rows(), D, eps);
        else k.layerNorm(x, buf.norm, buf.scale, 0, 0, rows(), D, eps);
      }
      residNormalized = false;
      const scaleName = `${prefix}.hook_scale`;
      if (hooked(scaleName)) {
        // Renormalised only if a hook changed the scale, so a hook that looks changes no bits.
        const before = engine.heap().slice(buf.scale >>> 2, (buf.scale >>> 2) + rows());
        fire(scaleName, buf.scale, [B, n, 1], layer, start);
        const after = engine.heap().subarray(buf.scale >>> 2, (buf.scale >>> 2) + rows());
        if (after.some((v, r) => !Object.is(v, before[r]))) renormalize(engine.heap(), x, buf.norm, buf.scale, rows(), D, rms);
      }
      fire(`${prefix}.hook_normalized`, buf.norm, [B, n, D], layer, start);
    };
    // resid += delta. When the next step normalises resid and no hook in `between` can see or
    // change it first, the norm runs in the same pass (addLayerNorm or addRmsNorm, the same bits
    // as the two kernels), and the next normalize only fires its hooks.
    const addToResidual = (delta: number, between: string[], normalizesNext: boolean) => {
      residNormalized = normalizesNext && !between.some(hooked);
      if (!residNormalized) k.add(resid, delta, resid, rows() * D);
      else if (rms) k.addRmsNorm(resid, delta, resid, buf.norm, buf.scale, 0, rows(), D, eps);
      else k.addLayerNorm(resid, delta, resid, buf.norm, buf.scale, 0, 0, rows(), D, eps);
    };
    // y[m, nOut] = act(x[m, kIn] (row stride lda) · W + bias) for a weight packed at upload.
    const linear = (x: number, lda: number, weight: number, y: number, bias: number, m: number, nOut: number, kIn: number,
      act: number = GemmActivation.none) => k.gemmPacked(x, lda, weight, y, nOut, bias, m, nOut, kIn, 0, 0, nOut, act);

    if (plan.attentionMask) engine.heap().set(plan.attentionMask, buf.mask >>> 2);

    const positionIds = rotary ? positions(plan) : undefined;
    // cos/sin [rows, d/2] of the rows at positions [first, first + count) of each sequence.
    const rotate = (x: number, heads: number, first: number, count: number) => {
      rotaryTables(engine.heap(), positionIds!, B, P, first, count, d, cfg.rotaryBase, buf.cos, buf.sin);
      k.rotary(x, x, buf.cos, buf.sin, B * count, heads, d);
    };

    if (plan.startAtLayer === 0 && !plan.startAfterAttention) {
      embed(engine.heap(), plan, s0, cfg, w, buf.embed, buf.posEmbed);
      fire("hook_embed", buf.embed, [B, n, D], undefined, start);
      if (rotary) {
        engine.heap().copyWithin(resid >>> 2, buf.embed >>> 2, (buf.embed >>> 2) + R0 * D);
      } else {
        fire("hook_pos_embed", buf.posEmbed, [B, n, D], undefined, start);
        k.add(buf.embed, buf.posEmbed, resid, R0 * D);
      }
    } else {
      engine.heap().set(plan.residual!, resid >>> 2);
    }

    for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) {
      const p = w.blocks[l]!;
      const b = `blocks.${l}.`;
      // Started at this block's resid_mid: its attention is the caller's (see ForwardPlan.startAfterAttention).
      if (!(l === plan.startAtLayer && plan.startAfterAttention)) {
        fire(`${b}hook_resid_pre`, resid, [B, n, D], l, start);

        normalize(resid, `${b}ln1`, l);
        linear(buf.norm, D, p.wk, buf.k, p.bk, rows(), Hkd, D);
        linear(buf.norm, D, p.wv, buf.v, p.bv, rows(), Hkd, D);
        const pruneHere = prune && l === cfg.nLayers - 1;
        // Queries of every computed position, or (pruned) of each row's last one: a strided operand.
        const qn = pruneHere ? 1 : n;
        const qStart = pruneHere ? P - 1 : start;
        if (pruneHere) linear(buf.norm + (n - 1) * D * 4, n * D, p.wq, buf.q, p.bq, B, Hd, D);
        else linear(buf.norm, D, p.wq, buf.q, p.bq, rows(), Hd, D);
        fire(`${b}attn.hook_q`, buf.q, [B, qn, H, d], l, qStart);
        fire(`${b}attn.hook_k`, buf.k, [B, n, Hk, d], l, start);
        fire(`${b}attn.hook_v`, buf.v, [B, n, Hk, d], l, start);
        if (rotary) {
          // In place: q and k are not read again before attention.
          rotate(buf.q, H, qStart, qn);
          fire(`${b}attn.hook_rot_q`, buf.q, [B, qn, H, d], l, qStart);
          rotate(buf.k, Hk, start, n);
          fire(`${b}attn.hook_rot_k`, buf.k, [B, n, Hk, d], l, start);
        }

        // Keys and values of the whole sequence: the kept prefix, then the computed positions.
        let kAll = buf.k;
        let vAll = buf.v;
        if (s0 > 0) {
          const kept = plan.prefix!(l);
          assemble(engine.heap(), kept.k, buf.k, buf.kFull, B, P, s0, Hkd);
          assemble(engine.heap(), kept.v, buf.v, buf.vFull, B, P, s0, Hkd);
          kAll = buf.kFull;
          vAll = buf.vFull;
        }
        if (needScores(l)) {
          k.attnScores(buf.q, kAll, buf.scores, buf.mask, B, qn, P, H, Hk, d, 1 / cfg.attnScale, 0, H);
          fire(`${b}attn.hook_attn_scores`, buf.scores, [B, H, qn, P], l, qStart);
          k.softmax(buf.scores, buf.pattern, B * H * qn, P);
          fire(`${b}attn.hook_pattern`, buf.pattern, [B, H, qn, P], l, qStart);
          k.attnApplyPattern(buf.pattern, vAll, buf.z, B, qn, P, H, Hk, d, 0, H);
        } else {
          k.attention(buf.q, kAll, vAll, buf.z, buf.mask, B, qn, P, H, Hk, d, 1 / cfg.attnScale, 0, H);
        }
        if (pruneHere) {
          // From here on only the last position of each row is computed.
          gatherLastRows(engine.heap(), resid, buf.residLast, B, n, D);
          resid = buf.residLast;
          n = 1;
          start = P - 1;
        }
        fire(`${b}attn.hook_z`, buf.z, [B, n, H, d], l, start);

        if (cfg.useAttnResult) {
          // result[:, h, :] = z[:, h, :] @ W_O[h]: one gemm per head, strided into [rows, H, D].
          for (let h = 0; h < H; h++) {
            k.gemm(buf.z + h * d * 4, Hd, p.woHeads + h * d * D * 4, D, buf.result + h * D * 4, H * D, 0, rows(), D, d, 0, 0);
          }
          fire(`${b}attn.hook_result`, buf.result, [B, n, H, D], l, start);
          sumHeads(engine.heap(), buf.result, p.bo, buf.attnOut, rows(), H, D);
        } else {
          linear(buf.z, Hd, p.wo, buf.attnOut, p.bo, rows(), D, Hd);
        }
        fire(`${b}hook_attn_out`, buf.attnOut, [B, n, D], l, start);
        addToResidual(buf.attnOut, [`${b}hook_resid_mid`], true);
      }
      fire(`${b}hook_resid_mid`, resid, [B, n, D], l, start);

      normalize(resid, `${b}ln2`, l);
      if (cfg.gatedMlp) {
        // post = act(x @ W_gate) * (x @ W_in) + b_in, as TransformerLens's gated MLP.
        linear(buf.norm, D, p.wgate, buf.pre, 0, rows(), M, D);
        fire(`${b}mlp.hook_pre`, buf.pre, [B, n, M], l, start);
        linear(buf.norm, D, p.win, buf.preLinear, 0, rows(), M, D);
        fire(`${b}mlp.hook_pre_linear`, buf.preLinear, [B, n, M], l, start);
        if (cfg.actFn !== "silu") throw new Error(`a gated MLP with ${cfg.actFn} is not supported`);
        k.swiglu(buf.pre, buf.preLinear, buf.post, rows() * M);
        k.addRow(buf.post, p.bin, buf.post, rows(), M);
      } else {
        const act = ACTIVATIONS[cfg.actFn];
        if (hooked(`${b}mlp.hook_pre`)) {
          linear(buf.norm, D, p.win, buf.pre, p.bin, rows(), M, D);
          fire(`${b}mlp.hook_pre`, buf.pre, [B, n, M], l, start);
          k[act.kernel](buf.pre, buf.post, rows() * M);
        } else {
          // No hook reads hook_pre: bias and activation in the product's own pass (the same bits).
          linear(buf.norm, D, p.win, buf.post, p.bin, rows(), M, D, act.fused);
        }
      }
      fire(`${b}mlp.hook_post`, buf.post, [B, n, M], l, start);
      linear(buf.post, M, p.wout, buf.mlpOut, p.bout, rows(), D, M);
      fire(`${b}hook_mlp_out`, buf.mlpOut, [B, n, D], l, start);
      // Next comes block l + 1's ln1 (after its hook_resid_pre) or, at the end, ln_final.
      const lastBlock = l + 1 === plan.stopAtLayer;
      addToResidual(buf.mlpOut, lastBlock ? [`${b}hook_resid_post`] : [`${b}hook_resid_post`, `blocks.${l + 1}.hook_resid_pre`],
        !lastBlock || finishing);
      fire(`${b}hook_resid_post`, resid, [B, n, D], l, start);
    }

    if (!finishing) return { residual: new Tensor(engine.download(resid, rows() * D), [B, n, D]) };
    normalize(resid, "ln_final", undefined);
    if (logitRows === 0) return {};
    if (plan.unembed === "last") {
      // Row b*n + n-1 of each sequence: a strided A operand, no gather.
      linear(buf.norm + (n - 1) * D * 4, n * D, w.wU, buf.logits, w.bU, B, V, D);
      return { logits: new Tensor(engine.download(buf.logits, B * V), [B, 1, V]) };
    }
    linear(buf.norm, D, w.wU, buf.logits, w.bU, rows(), V, D);
    return { logits: new Tensor(engine.download(buf.logits, rows() * V), [B, n, V]) };
  } finally {
    for (const ptr of allocated) engine.free(ptr);
  }
}

/** Position id of every token [batch * pos]: its index among the row's real tokens (padding skipped). */
function positions(plan: ForwardPlan): Int32Array {
  const { batch: B, pos: P } = plan;
  const ids = new Int32Array(B * P);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let p = 0; p < P; p++) {
      if (plan.attentionMask === undefined || plan.attentionMask[b * P + p] !== 0) seen++;
      ids[b * P + p] = Math.max(0, seen - 1);
    }
  }
  return ids;
}

/** full [B, P, Hd] = kept[b mod keptRows, 0:s] then computed [B, P - s, Hd]. */
function assemble(heap: Float32Array, kept: Float32Array, computed: number, full: number, B: number, P: number, s: number, Hd: number): void {
  const n = P - s;
  const keptRows = kept.length / (P * Hd);
  for (let b = 0; b < B; b++) {
    const dst = (full >>> 2) + b * P * Hd;
    const from = (b % keptRows) * P * Hd;
    heap.set(kept.subarray(from, from + s * Hd), dst);
    const src = (computed >>> 2) + b * n * Hd;
    heap.copyWithin(dst + s * Hd, src, src + n * Hd);
  }
}

/** out [B, D] = x [B, n, D] at position n - 1 of each row. */
function gatherLastRows(heap: Float32Array, x: number, out: number, B: number, n: number, D: number): void {
  for (let b = 0; b < B; b++) {
    const src = (x >>> 2) + (b * n + n - 1) * D;
    heap.copyWithin((out >>> 2) + b * D, src, src + D);
  }
}

/**
 * Writes W_E[token] and W_pos[position id] rows for positions [s, pos) of each sequence;
 * padded rows get position ids that skip padding.
 */
function embed(heap: Float32Array, plan: ForwardPlan, s: number, cfg: HookedTransformerConfig, w: DevicePointers, out: number, outPos: number): void {
  const { batch: B, pos: P } = plan;
  const D = cfg.dModel;
  const n = P - s;
  const tokens = plan.tokens!;
  for (let b = 0; b < B; b++) {
    let seen = 0; // real tokens so far in this row
    for (let p = 0; p < P; p++) {
      const r = b * P + p;
      const real = plan.attentionMask === undefined || plan.attentionMask[r] !== 0;
      if (real) seen++;
      if (p < s) continue;
      const row = b * n + p - s;
      const posId = Math.max(0, seen - 1);
      const tokenSrc = (w.wE >>> 2) + tokens[r]! * D;
      heap.copyWithin((out >>> 2) + row * D, tokenSrc, tokenSrc + D);
      if (w.wPos === 0) continue; // rotary models add no positional embedding
      const posSrc = (w.wPos >>> 2) + posId * D;
      heap.copyWithin((outPos >>> 2) + row * D, posSrc, posSrc + D);
    }
  }
}

/** norm = (x - mean) / scale (or x / scale for RMS), with the scale a hook may have changed. */
function renormalize(heap: Float32Array, x: number, norm: number, scale: number, rows: number, D: number, rms: boolean): void {
  for (let r = 0; r < rows; r++) {
    const xi = (x >>> 2) + r * D;
    const ni = (norm >>> 2) + r * D;
    let mean = 0;
    if (!rms) {
      for (let i = 0; i < D; i++) mean += heap[xi + i]!;
      mean /= D;
    }
    const s = heap[(scale >>> 2) + r]!;
    for (let i = 0; i < D; i++) heap[ni + i] = (heap[xi + i]! - mean) / s;
  }
}

/** attnOut[r, :] = sum_h result[r, h, :] + bO. */
function sumHeads(heap: Float32Array, result: number, bO: number, attnOut: number, rows: number, H: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = (attnOut >>> 2) + r * D;
    for (let i = 0; i < D; i++) heap[o + i] = heap[(bO >>> 2) + i]!;
    for (let h = 0; h < H; h++) {
      const src = (result >>> 2) + (r * H + h) * D;
      for (let i = 0; i < D; i++) heap[o + i]! += heap[src + i]!;
    }
  }
}
