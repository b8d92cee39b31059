import type { Engine } from "../engine/engine.js";
import { Tensor } from "../engine/tensor.js";
import type { HookedTransformerConfig } from "./config.js";
import type { DevicePointers } from "./device-weights.js";
import type { HookFn } from "./hook-points.js";

/** Everything one forward pass needs, already validated by the caller. */
export interface ForwardPlan {
  batch: number;
  pos: number;
  /** Token ids [batch * pos]; used when starting at layer 0. */
  tokens?: Int32Array;
  /** The residual stream entering block `startAtLayer` [batch * pos * dModel]; used when startAtLayer > 0. */
  residual?: Float32Array;
  /** [batch * pos], 1 = real token, 0 = padding; absent = all real. */
  attentionMask?: Float32Array;
  startAtLayer: number;
  /** Blocks [startAtLayer, stopAtLayer) run. */
  stopAtLayer: number;
  /** Return the residual stream after the last block run, instead of logits. */
  returnResidual: boolean;
  /** Resolved hook name → functions, in registration order. */
  hooks: ReadonlyMap<string, readonly HookFn[]>;
  /** Which positions are unembedded: all of them, only the last of each row, or none. */
  unembed: "all" | "last" | "none";
}

export interface ForwardOutput {
  /** [batch, pos, dVocab], or [batch, 1, dVocab] for unembed "last". */
  logits?: Tensor;
  /** [batch, pos, dModel] when the pass stopped before the end. */
  residual?: Tensor;
}

/**
 * One forward pass over the engine's memory. Each block's activations live in one set
 * of buffers reused by every block; a hook sees a view of the buffer it names, and
 * what it writes there (or returns) is what the rest of the pass reads.
 */
export function runForward(engine: Engine, cfg: HookedTransformerConfig, w: DevicePointers, plan: ForwardPlan): ForwardOutput {
  const { batch: B, pos: P, hooks } = plan;
  const { dModel: D, nHeads: H, dHead: d, dMlp: M, dVocab: V, eps } = cfg;
  const R = B * P;
  const Hd = H * d;
  const k = engine.kernels;
  const hooked = (name: string) => hooks.has(name);
  const needScores = (l: number) => hooked(`blocks.${l}.attn.hook_attn_scores`) || hooked(`blocks.${l}.attn.hook_pattern`);
  let anyScores = false;
  for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) anyScores ||= needScores(l);
  const finishing = !plan.returnResidual;
  const logitRows = !finishing || plan.unembed === "none" ? 0 : plan.unembed === "last" ? B : R;

  // Allocate everything before the first kernel runs: growing memory later would detach hook views.
  const sizes = {
    resid: R * D, embed: R * D, posEmbed: R * D, norm: R * D, scale: R,
    q: R * Hd, k: R * Hd, v: R * Hd, z: R * Hd, attnOut: R * D,
    result: cfg.useAttnResult ? R * H * D : 0,
    scores: anyScores ? B * H * P * P : 0, pattern: anyScores ? B * H * P * P : 0,
    pre: R * M, post: R * M, mlpOut: R * D, mask: plan.attentionMask ? R : 0, logits: logitRows * V,
  };
  const buf = {} as Record<keyof typeof sizes, number>;
  const allocated: number[] = [];
  try {
    for (const key of Object.keys(sizes) as (keyof typeof sizes)[]) {
      buf[key] = sizes[key] > 0 ? engine.alloc(sizes[key]) : 0;
      if (buf[key] !== 0) allocated.push(buf[key]);
    }

    const fire = (name: string, ptr: number, shape: number[], layer: number | undefined) => {
      const fns = hooks.get(name);
      if (fns === undefined) return;
      const n = shape.reduce((a, b) => a * b, 1);
      for (const fn of fns) {
        const view = new Tensor(engine.view(ptr, n), shape);
        const ret = fn(view, { name, layer });
        if (ret === undefined || ret === null) continue;
        if (!(ret instanceof Tensor)) throw new Error(`hook on ${name} returned ${typeof ret}; return a Tensor or nothing`);
        if (ret.shape.length !== shape.length || ret.shape.some((s, i) => s !== shape[i])) {
          throw new Error(`hook on ${name} returned shape [${ret.shape.join(", ")}] but the activation is [${shape.join(", ")}]`);
        }
        if (ret.data !== view.data) engine.heap().set(ret.data, ptr >>> 2);
      }
    };

    // Normalise x into buf.norm with the per-row scale, firing the two hooks. A hook that
    // changes the scale changes the normalised output, as in TransformerLens.
    const normalize = (x: number, prefix: string, layer: number | undefined) => {
      const rms = cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre";
      if (rms) k.rmsNorm(x, buf.norm, buf.scale, 0, R, D, eps);
      else k.layerNorm(x, buf.norm, buf.scale, 0, 0, R, D, eps);
      const scaleName = `${prefix}.hook_scale`;
      if (hooked(scaleName)) {
        fire(scaleName, buf.scale, [B, P, 1], layer);
        renormalize(engine.heap(), x, buf.norm, buf.scale, R, D, rms);
      }
      fire(`${prefix}.hook_normalized`, buf.norm, [B, P, D], layer);
    };

    if (plan.attentionMask) engine.heap().set(plan.attentionMask, buf.mask >>> 2);

    if (plan.startAtLayer === 0) {
      embed(engine.heap(), plan, cfg, w, buf.embed, buf.posEmbed);
      fire("hook_embed", buf.embed, [B, P, D], undefined);
      fire("hook_pos_embed", buf.posEmbed, [B, P, D], undefined);
      k.add(buf.embed, buf.posEmbed, buf.resid, R * D);
    } else {
      engine.heap().set(plan.residual!, buf.resid >>> 2);
    }

    for (let l = plan.startAtLayer; l < plan.stopAtLayer; l++) {
      const p = w.blocks[l]!;
      const b = `blocks.${l}.`;
      fire(`${b}hook_resid_pre`, buf.resid, [B, P, D], l);

      normalize(buf.resid, `${b}ln1`, l);
      k.gemm(buf.norm, D, p.wq, Hd, buf.q, Hd, p.bq, R, Hd, D, 0, 0);
      k.gemm(buf.norm, D, p.wk, Hd, buf.k, Hd, p.bk, R, Hd, D, 0, 0);
      k.gemm(buf.norm, D, p.wv, Hd, buf.v, Hd, p.bv, R, Hd, D, 0, 0);
      fire(`${b}attn.hook_q`, buf.q, [B, P, H, d], l);
      fire(`${b}attn.hook_k`, buf.k, [B, P, H, d], l);
      fire(`${b}attn.hook_v`, buf.v, [B, P, H, d], l);

      if (needScores(l)) {
        k.attnScores(buf.q, buf.k, buf.scores, buf.mask, B, P, P, H, H, d, 1 / cfg.attnScale);
        fire(`${b}attn.hook_attn_scores`, buf.scores, [B, H, P, P], l);
        k.softmax(buf.scores, buf.pattern, B * H * P, P);
        fire(`${b}attn.hook_pattern`, buf.pattern, [B, H, P, P], l);
        k.attnApplyPattern(buf.pattern, buf.v, buf.z, B, P, P, H, H, d);
      } else {
        k.attention(buf.q, buf.k, buf.v, buf.z, buf.mask, B, P, P, H, H, d, 1 / cfg.attnScale);
      }
      fire(`${b}attn.hook_z`, buf.z, [B, P, H, d], l);

      if (cfg.useAttnResult) {
        // result[:, h, :] = z[:, h, :] @ W_O[h]: one gemm per head, strided into [R, H, D].
        for (let h = 0; h < H; h++) {
          k.gemm(buf.z + h * d * 4, Hd, p.wo + h * d * D * 4, D, buf.result + h * D * 4, H * D, 0, R, D, d, 0, 0);
        }
        fire(`${b}attn.hook_result`, buf.result, [B, P, H, D], l);
        sumHeads(engine.heap(), buf.result, p.bo, buf.attnOut, R, H, D);
      } else {
        k.gemm(buf.z, Hd, p.wo, D, buf.attnOut, D, p.bo, R, D, Hd, 0, 0);
      }
      fire(`${b}hook_attn_out`, buf.attnOut, [B, P, D], l);
      k.add(buf.resid, buf.attnOut, buf.resid, R * D);
      fire(`${b}hook_resid_mid`, buf.resid, [B, P, D], l);

      normalize(buf.resid, `${b}ln2`, l);
      k.gemm(buf.norm, D, p.win, M, buf.pre, M, p.bin, R, M, D, 0, 0);
      fire(`${b}mlp.hook_pre`, buf.pre, [B, P, M], l);
      if (cfg.actFn === "gelu_new") k.geluNew(buf.pre, buf.post, R * M);
      else if (cfg.actFn === "gelu") k.geluExact(buf.pre, buf.post, R * M);
      else k.silu(buf.pre, buf.post, R * M);
      fire(`${b}mlp.hook_post`, buf.post, [B, P, M], l);
      k.gemm(buf.post, M, p.wout, D, buf.mlpOut, D, p.bout, R, D, M, 0, 0);
      fire(`${b}hook_mlp_out`, buf.mlpOut, [B, P, D], l);
      k.add(buf.resid, buf.mlpOut, buf.resid, R * D);
      fire(`${b}hook_resid_post`, buf.resid, [B, P, D], l);
    }

    if (!finishing) return { residual: new Tensor(engine.download(buf.resid, R * D), [B, P, D]) };
    normalize(buf.resid, "ln_final", undefined);
    if (logitRows === 0) return {};
    if (plan.unembed === "last") {
      // Row b*P + P-1 of each sequence: a strided A operand, no gather.
      k.gemm(buf.norm + (P - 1) * D * 4, P * D, w.wU, V, buf.logits, V, w.bU, B, V, D, 0, 0);
      return { logits: new Tensor(engine.download(buf.logits, B * V), [B, 1, V]) };
    }
    k.gemm(buf.norm, D, w.wU, V, buf.logits, V, w.bU, R, V, D, 0, 0);
    return { logits: new Tensor(engine.download(buf.logits, R * V), [B, P, V]) };
  } finally {
    for (const ptr of allocated) engine.free(ptr);
  }
}

/** Writes W_E[token] and W_pos[position id] rows; padded rows get position ids that skip padding. */
function embed(heap: Float32Array, plan: ForwardPlan, cfg: HookedTransformerConfig, w: DevicePointers, out: number, outPos: number): void {
  const { batch: B, pos: P } = plan;
  const D = cfg.dModel;
  const tokens = plan.tokens!;
  for (let b = 0; b < B; b++) {
    let seen = 0; // real tokens so far in this row
    for (let p = 0; p < P; p++) {
      const r = b * P + p;
      const real = plan.attentionMask === undefined || plan.attentionMask[r] !== 0;
      if (real) seen++;
      const posId = Math.max(0, seen - 1);
      const tokenSrc = (w.wE >>> 2) + tokens[r]! * D;
      heap.copyWithin((out >>> 2) + r * D, tokenSrc, tokenSrc + D);
      const posSrc = (w.wPos >>> 2) + posId * D;
      heap.copyWithin((outPos >>> 2) + r * D, posSrc, posSrc + D);
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
