import { Tensor } from "../engine/tensor.js";
import type { ActivationCache } from "../model/activation-cache.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { toTokenBatch, type TokenIds } from "../model/tokens.js";
import { kvName } from "../model/weights.js";
import { checkBatch, needCached } from "./cache-access.js";
import { engineAttention } from "./engine-attention.js";
import { engineRotary } from "./engine-rotary.js";
import { engineMatmul } from "./engine-matmul.js";
import type { Metric } from "./metrics.js";
import { planSweepPatches, summarize } from "./planner.js";
import { runSweep } from "./sweep-run.js";
import type { CorruptedRun, Patch, SweepOptions, SweepPlanSummary } from "./sweep-types.js";
import { PatchResult } from "./result.js";

/** Which input of the destination head receives the source head's output. */
export type DirectPathComponent = "q" | "k" | "v";

export interface DirectPathOptions extends SweepOptions {
  /** Query, key or value input of the destination heads. */
  component: DirectPathComponent;
  /**
   * `linear` (default, TransformerLens): add (delta / corrupted ln1 scale) @ W_c to the
   * destination's q/k/v, holding its layer-norm scale at the corrupted value.
   * `exact`: recompute the destination's layer norm on corrupted resid_pre + delta.
   */
  mode?: "linear" | "exact";
}

export interface DirectPathAllSourcesOptions extends DirectPathOptions {
  /**
   * Only these paths (a shard of the sweep): `[srcLayer, srcHead]` into every later layer, or
   * `[srcLayer, srcHead, dstLayer]` into one layer. Scores of the paths left out stay 0.
   */
  sources?: readonly (readonly [number, number, number?])[];
}

export interface DirectPathSingleOptions extends DirectPathOptions {
  srcLayer: number;
  srcHead: number;
}

/** What a direct path result records of its options (functions and signals left out). */
export interface DirectPathRecord {
  component: DirectPathComponent;
  mode: "linear" | "exact";
  strategy: "planned" | "naive";
  src?: [number, number];
  weights: string;
}

const warnedUnfolded = new WeakSet<object>();

/**
 * Direct path patching from one source head A = (srcLayer, srcHead) into the query, key
 * or value input of every later head B: only B's view of A changes from corrupted to
 * clean; every other component still reads the corrupted residual stream.
 * `scores[dl, dh]` is the metric of that run; entries with dl <= srcLayer have no causal
 * path, are 0 (as in TransformerLens) and are flagged in `noPath`.
 *
 * @example
 * ```ts
 * const { cache: clean } = model.runWithCache(cleanTokens);
 * const { cache: corrupted } = model.runWithCache(corruptedTokens);
 * const result = await getActPatchDirectPath(model, corruptedTokens, clean, corrupted,
 *   logitDiff({ correct, incorrect }), { srcLayer: 0, srcHead: 1, component: "k" });
 * result.scores;        // Tensor [nLayers, nHeads]
 * result.normalized();  // 0 = no effect, 1 = the whole clean effect
 * ```
 */
export async function getActPatchDirectPath(model: HookedTransformer, corruptedTokens: TokenIds,
  cleanCache: ActivationCache, corruptedCache: ActivationCache, metric: Metric,
  options: DirectPathSingleOptions): Promise<PatchResult<DirectPathRecord>> {
  const prepared = singleSource(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const { sweep } = prepared;
  const { nLayers: L } = model.cfg;
  const Hc = sweep.destHeads;
  const { scores, baseline, clean } = await runPrepared(model, prepared, metric, options);
  const noPath = new Uint8Array(L * Hc).map((_, i) => (Math.floor(i / Hc) <= options.srcLayer ? 1 : 0));
  return new PatchResult("direct_path", new Tensor(scores, [L, Hc]), baseline, clean,
    { ...sweep.record, src: [options.srcLayer, options.srcHead] }, noPath);
}

/** The plan of {@link getActPatchDirectPath} with these arguments, without running it (see {@link planSweep}). */
getActPatchDirectPath.plan = (model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathSingleOptions): SweepPlanSummary =>
  planPrepared(model, singleSource(model, corruptedTokens, cleanCache, corruptedCache, metric, options), metric, options);

function singleSource(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathSingleOptions): PreparedSweep {
  const { nLayers: L, nHeads: H } = model.cfg;
  checkIndex("srcLayer", options.srcLayer, L);
  checkIndex("srcHead", options.srcHead, H);
  const sweep = prepare(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const Hc = sweep.destHeads;
  const patches = sweep.patches([[options.srcLayer, options.srcHead]], (_s, dl, dh) => dl * Hc + dh);
  return { sweep, patches, size: L * Hc };
}

/**
 * {@link getActPatchDirectPath} for every source head at once: scores
 * [srcLayer, srcHead, dstLayer, dstHead], whose [sl, sh] slice is the single-source result.
 * Patches from all sources that enter the same destination layer share stacked passes.
 */
export async function getActPatchDirectPathAllSources(model: HookedTransformer, corruptedTokens: TokenIds,
  cleanCache: ActivationCache, corruptedCache: ActivationCache, metric: Metric,
  options: DirectPathAllSourcesOptions): Promise<PatchResult<DirectPathRecord>> {
  const prepared = allSources(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const { sweep } = prepared;
  const { nLayers: L, nHeads: H } = model.cfg;
  const Hc = sweep.destHeads;
  const { scores, baseline, clean } = await runPrepared(model, prepared, metric, options);
  const noPath = new Uint8Array(scores.length).map((_, i) => {
    const sl = Math.floor(i / (H * L * Hc));
    const dl = Math.floor(i / Hc) % L;
    return dl <= sl ? 1 : 0;
  });
  return new PatchResult("direct_path_all_sources", new Tensor(scores, [L, H, L, Hc]), baseline, clean,
    sweep.record, noPath);
}

/** The plan of {@link getActPatchDirectPathAllSources} with these arguments, without running it (see {@link planSweep}). */
getActPatchDirectPathAllSources.plan = (model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathAllSourcesOptions): SweepPlanSummary =>
  planPrepared(model, allSources(model, corruptedTokens, cleanCache, corruptedCache, metric, options), metric, options);

function allSources(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathAllSourcesOptions): PreparedSweep {
  const { nLayers: L, nHeads: H } = model.cfg;
  options.sources?.forEach(([sl, sh, dl], i) => {
    checkIndex(`sources[${i}][0] (source layer)`, sl, L);
    checkIndex(`sources[${i}][1] (source head)`, sh, H);
    if (dl !== undefined && (!Number.isInteger(dl) || dl <= sl || dl >= L)) {
      throw new Error(`sources[${i}][2] (destination layer) must be an integer in [${sl + 1}, ${L - 1}], got ${dl}`);
    }
  });
  const sweep = prepare(model, corruptedTokens, cleanCache, corruptedCache, metric, options);
  const Hc = sweep.destHeads;
  const sources: (readonly [number, number, number?])[] = [];
  if (options.sources) sources.push(...options.sources);
  else for (let sl = 0; sl < L; sl++) for (let sh = 0; sh < H; sh++) sources.push([sl, sh]);
  const patches = sweep.patches(sources, ([sl, sh], dl, dh) => ((sl * H + sh) * L + dl) * Hc + dh);
  return { sweep, patches, size: L * H * L * Hc };
}

/** A sweep ready to run or plan: its setup, its patches, and the number of scores they fill. */
type PreparedSweep = { sweep: ReturnType<typeof prepare>; patches: Patch[]; size: number };

/** Runs a prepared sweep: its scores and the two baselines. */
async function runPrepared(model: HookedTransformer, { sweep, patches, size }: PreparedSweep, metric: Metric,
  options: SweepOptions): Promise<{ scores: Float32Array; baseline: number; clean: number }> {
  const scores = new Float32Array(size);
  const [baseline, clean] = [sweep.baseline(), sweep.clean()];
  await runSweep(model, sweep.tokens, patches, metric, sweep.corruptedRun, scores, options);
  return { scores, baseline, clean };
}

/** The plan of a prepared sweep, nothing run. */
function planPrepared(model: HookedTransformer, { sweep, patches }: PreparedSweep, metric: Metric, options: SweepOptions): SweepPlanSummary {
  return summarize(planSweepPatches(model, sweep.tokens, patches, metric, sweep.corruptedRun, options));
}

/** Validates inputs and returns the sweep's patches for a list of sources, with the baselines (computed on demand). */
function prepare(model: HookedTransformer, corruptedTokens: TokenIds, cleanCache: ActivationCache,
  corruptedCache: ActivationCache, metric: Metric, options: DirectPathOptions) {
  const cfg = model.cfg;
  const { nLayers: L, nHeads: H, dHead: d, dModel: D } = cfg;
  const component = options.component;
  if (component !== "q" && component !== "k" && component !== "v") {
    throw new Error(`component must be "q", "k" or "v", got ${JSON.stringify(component)}`);
  }
  const mode = options.mode ?? "linear";
  if (mode !== "linear" && mode !== "exact") throw new Error(`mode must be "linear" or "exact", got ${JSON.stringify(mode)}`);
  // A query destination is a query head; a key or value destination is a key/value head, which
  // with grouped-query attention is shared by nHeads / nKeyValueHeads query heads.
  const Hc = component === "q" ? H : cfg.nKeyValueHeads;
  const weightName = component === "q" ? "W_Q" : kvName(cfg, component === "k" ? "W_K" : "W_V");
  const biasName = component === "q" ? "b_Q" : kvName(cfg, component === "k" ? "b_K" : "b_V");
  const rms = cfg.normalizationType === "RMS" || cfg.normalizationType === "RMSPre";
  if (typeof metric !== "function") throw new Error("metric must be a function from logits to a number");
  if (mode === "linear" && !cfg.processing.foldLn && !warnedUnfolded.has(model)) {
    warnedUnfolded.add(model);
    console.warn("hooklens: linear direct path patching assumes the layer norm is folded into the weights " +
      "(fromPretrained's default); this model's is not, so the linear scores use W_Q/W_K/W_V without ln1's weight and bias. " +
      "Use mode \"exact\" or load with foldLn.");
  }
  const batch = toTokenBatch(corruptedTokens, cfg.dVocab, cfg.nCtx);
  const { batch: B, pos: P } = batch;
  const R = B * P;
  const tokens = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * P, (b + 1) * P)));
  const cached = (cache: ActivationCache, which: string, name: string) => checkBatch(needCached(cache, which, name), name, B, P);
  const residPre = (l: number) => cached(corruptedCache, "corruptedCache", `blocks.${l}.hook_resid_pre`);
  const corruptedRun: CorruptedRun = {
    residPre,
    hasKeysValues: (l) => cachedKeysValues(model, corruptedCache, l, B, P) !== undefined,
    keysValues: (l) => cachedKeysValues(model, corruptedCache, l, B, P),
    residMid: (l) => cachedFitting(corruptedCache, `blocks.${l}.hook_resid_mid`, [B, P, D]),
  };
  // A destination's patch changes the attention of one query head (q) or of one key/value group's
  // heads (k, v) only; with the corrupted run's q, k, v and z of its layer cached, a planned sweep
  // recomputes just those heads there. A rotary model also needs the rotated q and k (hook_rot_q,
  // hook_rot_k): the patch enters before the rotation, the unpatched side is read rotated.
  const Hk = cfg.nKeyValueHeads;
  const group = H / Hk;
  const rotary = cfg.positionalEmbeddingType === "rotary";
  interface AttentionInputs { q: Float32Array; k: Float32Array; v: Float32Array; z: Float32Array; rotQ: Float32Array; rotK: Float32Array }
  const attnInputs = new Map<number, AttentionInputs | undefined>();
  const attentionInputs = (dl: number) => {
    if (!attnInputs.has(dl)) {
      const a = `blocks.${dl}.attn.`;
      const q = cachedFitting(corruptedCache, `${a}hook_q`, [B, P, H, d]);
      const k = cachedFitting(corruptedCache, `${a}hook_k`, [B, P, Hk, d]);
      const v = cachedFitting(corruptedCache, `${a}hook_v`, [B, P, Hk, d]);
      const z = cachedFitting(corruptedCache, `${a}hook_z`, [B, P, H, d]);
      const rotQ = rotary ? cachedFitting(corruptedCache, `${a}hook_rot_q`, [B, P, H, d]) : q;
      const rotK = rotary ? cachedFitting(corruptedCache, `${a}hook_rot_k`, [B, P, Hk, d]) : k;
      const ok = q && k && v && z && rotQ && rotK;
      attnInputs.set(dl, ok ? { q: q.data, k: k.data, v: v.data, z: z.data, rotQ: rotQ.data, rotK: rotK.data } : undefined);
    }
    return attnInputs.get(dl);
  };
  // The change of layer dl's attention output at positions [s, P), [B, P - s, D], when the patch
  // values `values` ([B * P, Hc * d], as patchValues) enter destination head dh.
  const attnOutDelta = (dl: number, dh: number, values: Float32Array, s: number): Float32Array => {
    const inputs = attentionInputs(dl)!;
    const n = P - s;
    const heads = component === "q" ? 1 : group; // query heads first..first+heads share key/value head g
    const first = component === "q" ? dh : dh * group;
    const g = Math.floor(first / group);
    // q [B, n, heads, d] at positions [s, P); k, v [B, P, 1, d] of key/value head g. The side the
    // patch enters is taken before rotary (and rotated below), the others as attention read them.
    const qSource = component === "q" ? inputs.q : inputs.rotQ;
    const kSource = component === "k" ? inputs.k : inputs.rotK;
    let q: Float32Array = new Float32Array(B * n * heads * d);
    let k: Float32Array = new Float32Array(B * P * d);
    const v = new Float32Array(B * P * d);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < P; p++) {
        const row = b * P + p;
        k.set(kSource.subarray((row * Hk + g) * d, (row * Hk + g + 1) * d), row * d);
        v.set(inputs.v.subarray((row * Hk + g) * d, (row * Hk + g + 1) * d), row * d);
        if (p >= s) q.set(qSource.subarray((row * H + first) * d, (row * H + first + heads) * d), (b * n + p - s) * heads * d);
      }
    }
    // The patch: on the queries the sweep recomputes, or on the keys or values of every position
    // (the recomputed queries read them all, including any the patch changes before s).
    const target = component === "q" ? q : component === "k" ? k : v;
    for (let b = 0; b < B; b++) {
      for (let p = component === "q" ? s : 0; p < P; p++) {
        const o = component === "q" ? (b * n + p - s) * heads * d : (b * P + p) * d;
        const from = ((b * P + p) * Hc + dh) * d;
        if (mode === "linear") for (let e = 0; e < d; e++) target[o + e]! += values[from + e]!;
        else for (let e = 0; e < d; e++) target[o + e] = values[from + e]!;
      }
    }
    if (rotary && component === "q") q = engineRotary(model.engine, q, B, n, heads, d, s, cfg.rotaryBase);
    if (rotary && component === "k") k = engineRotary(model.engine, k, B, P, 1, d, 0, cfg.rotaryBase);
    const z = engineAttention(model.engine, q, k, v, B, n, P, heads, 1, d, 1 / cfg.attnScale);
    // (z - corrupted z) of those heads @ their rows of W_O: every other head's output is unchanged.
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n; i++) {
        const o = (b * n + i) * heads * d;
        const from = ((b * P + s + i) * H + first) * d;
        for (let e = 0; e < heads * d; e++) z[o + e]! -= inputs.z[from + e]!;
      }
    }
    const WO = model.weights.get(`blocks.${dl}.attn.W_O`)!.data.subarray(first * d * D, (first + heads) * d * D); // [heads * d, D]
    return engineMatmul(model.engine, z, B * n, heads * d, WO, D);
  };
  const last = `blocks.${L - 1}.hook_resid_post`;
  const finalMetric = (cache: ActivationCache, which: string) =>
    metric(model.forward(tokens, { startAtLayer: L, residual: cached(cache, which, last), lastPositionOnly: metric.positions === "last" }).logits!);
  // Checked now (a missing activation is an error before any work); a sweep's run evaluates them, its plan does not.
  cached(corruptedCache, "corruptedCache", last);
  cached(cleanCache, "cleanCache", last);
  const baseline = () => finalMetric(corruptedCache, "corruptedCache");
  const clean = () => finalMetric(cleanCache, "cleanCache");

  // W_c of a destination layer as one [D, Hc*d] matrix, so a gemm gives every destination head.
  const wCache = new Map<number, { W: Float32Array; bias: Float32Array }>();
  const destWeights = (dl: number) => {
    let w = wCache.get(dl);
    if (w === undefined) {
      const src = model.weights.get(`blocks.${dl}.attn.${weightName}`)!.data; // [Hc, D, d]
      const W = new Float32Array(D * Hc * d);
      for (let h = 0; h < Hc; h++) for (let i = 0; i < D; i++) W.set(src.subarray((h * D + i) * d, (h * D + i + 1) * d), i * Hc * d + h * d);
      w = { W, bias: model.weights.get(`blocks.${dl}.attn.${biasName}`)!.data };
      wCache.set(dl, w);
    }
    return w;
  };

  // delta [R, D]: the clean minus corrupted residual write of the source head. Each of the
  // source's destination layers reads it once; it is dropped after the last.
  const deltas = new Map<string, { delta: Float32Array; uses: number }>();
  const deltaOf = (sl: number, sh: number): Float32Array => {
    const key = `${sl}.${sh}`;
    let entry = deltas.get(key);
    if (entry === undefined) {
      entry = { delta: computeDelta(sl, sh), uses: L - sl - 1 };
      deltas.set(key, entry);
    }
    if (--entry.uses === 0) deltas.delete(key);
    return entry.delta;
  };
  const computeDelta = (sl: number, sh: number): Float32Array => {
    const name = `blocks.${sl}.attn.hook_z`;
    const zc = cached(cleanCache, "cleanCache", name).data;
    const zr = cached(corruptedCache, "corruptedCache", name).data;
    const dz = new Float32Array(R * d);
    for (let r = 0; r < R; r++) {
      for (let e = 0; e < d; e++) dz[r * d + e] = zc[(r * H + sh) * d + e]! - zr[(r * H + sh) * d + e]!;
    }
    const WO = model.weights.get(`blocks.${sl}.attn.W_O`)!.data.subarray(sh * d * D, (sh + 1) * d * D); // [d, D]
    return engineMatmul(model.engine, dz, R, d, WO, D);
  };

  // The first position where the source head's z differs between the runs (P if nowhere).
  const firstDiff = new Map<string, number>();
  const firstDifference = (sl: number, sh: number): number => {
    const key = `${sl}.${sh}`;
    let f = firstDiff.get(key);
    if (f === undefined) {
      const name = `blocks.${sl}.attn.hook_z`;
      const zc = cached(cleanCache, "cleanCache", name).data;
      const zr = cached(corruptedCache, "corruptedCache", name).data;
      f = P;
      for (let b = 0; b < B; b++) {
        for (let p = 0; p < f; p++) {
          const o = ((b * P + p) * H + sh) * d;
          let same = true;
          for (let e = 0; e < d && same; e++) same = zc[o + e] === zr[o + e];
          if (!same) { f = p; break; }
        }
      }
      firstDiff.set(key, f);
    }
    return f;
  };

  // The destination layer's new q/k/v for every destination head, [R, Hc*d]: an increment
  // (linear) or a replacement (exact).
  const patchValues = (sl: number, sh: number, dl: number): Float32Array => {
    const delta = deltaOf(sl, sh);
    const { W, bias } = destWeights(dl);
    const x = new Float32Array(R * D);
    const lnW = model.weights.get(`blocks.${dl}.ln1.w`)?.data;
    if (mode === "linear") {
      const s = cached(corruptedCache, "corruptedCache", `blocks.${dl}.ln1.hook_scale`).data;
      // An unfolded RMSNorm's weight is part of the reading path (the reference's formula on
      // unprocessed weights); an unfolded LayerNorm is left out, as TransformerLens does (warned above).
      const scaleBy = rms ? lnW : undefined;
      for (let r = 0; r < R; r++) for (let i = 0; i < D; i++) x[r * D + i] = (delta[r * D + i]! / s[r]!) * (scaleBy?.[i] ?? 1);
      return engineMatmul(model.engine, x, R, D, W, Hc * d);
    }
    const resid = residPre(dl).data;
    for (let i = 0; i < R * D; i++) x[i] = resid[i]! + delta[i]!;
    normalizeRows(x, R, D, cfg.eps, rms, lnW, model.weights.get(`blocks.${dl}.ln1.b`)?.data);
    return engineMatmul(model.engine, x, R, D, W, Hc * d, bias);
  };

  const record: DirectPathRecord = {
    component, mode, strategy: options.strategy ?? "planned",
    weights: describeProcessing(model),
  };

  const patchesFor = (sources: readonly (readonly [number, number, number?])[],
    indexOf: (src: readonly [number, number, number?], dl: number, dh: number) => number): Patch[] => {
    // Patch values per (source, destination layer), shared by its Hc patches and dropped after the last.
    const live = new Map<string, { values: Float32Array; uses: number }>();
    const acquire = (sl: number, sh: number, dl: number) => {
      const key = `${sl}.${sh}.${dl}`;
      let entry = live.get(key);
      if (entry === undefined) {
        entry = { values: patchValues(sl, sh, dl), uses: Hc };
        live.set(key, entry);
      }
      if (--entry.uses === 0) live.delete(key);
      return entry.values;
    };
    const patches: Patch[] = [];
    for (const src of sources) {
      const [sl, sh, only] = src;
      for (let dl = sl + 1; dl < L; dl++) {
        if (only !== undefined && dl !== only) continue;
        for (let dh = 0; dh < Hc; dh++) {
          let values: Float32Array | undefined;
          patches.push({
            index: indexOf(src, dl, dh),
            label: `src (${sl}, ${sh}) -> dst (${dl}, ${dh}) ${component}`,
            startLayer: dl,
            // Before the first position where the source head's output differs, delta is zero.
            startPos: firstDifference(sl, sh),
            prepare: () => { values = acquire(sl, sh, dl); },
            attnOutDelta: attentionInputs(dl) === undefined ? undefined : {
              heads: component === "q" ? 1 : group,
              compute: (s) => {
                const delta = attnOutDelta(dl, dh, values!, s);
                values = undefined;
                return delta;
              },
            },
            edits: [{
              hook: `blocks.${dl}.attn.hook_${component}`,
              apply: (act, point) => {
                const a = act.data; // [B, n, Hc, d]: positions [positionStart, positionStart + n)
                const n = act.shape[1]!;
                const v = values!; // [B * P, Hc * d]
                for (let b = 0; b < B; b++) {
                  for (let i = 0; i < n; i++) {
                    const o = ((b * n + i) * Hc + dh) * d;
                    const from = ((b * P + point.positionStart + i) * Hc + dh) * d;
                    if (mode === "linear") for (let e = 0; e < d; e++) a[o + e]! += v[from + e]!;
                    else for (let e = 0; e < d; e++) a[o + e] = v[from + e]!;
                  }
                }
                values = undefined;
              },
            }],
          });
        }
      }
    }
    return patches;
  };
  return { baseline, clean, record, patches: patchesFor, destHeads: Hc, tokens, corruptedRun };
}

/**
 * Layer norm (or RMS norm) of each row in place: centre (not for RMS), divide by
 * sqrt(mean square + eps), then w and b when the norm is not folded.
 */
function normalizeRows(x: Float32Array, rows: number, D: number, eps: number, rms: boolean, w?: Float32Array, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    if (!rms) for (let i = 0; i < D; i++) mean += x[o + i]!;
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[o + i]! - mean) ** 2;
    const scale = Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) {
      const y = (x[o + i]! - mean) / scale;
      x[o + i] = w ? y * w[i]! + (b ? b[i]! : 0) : y;
    }
  }
}

function describeProcessing(model: HookedTransformer): string {
  const p = model.cfg.processing;
  const steps = [p.foldLn && "fold_ln", p.centerWritingWeights && "center_writing_weights", p.centerUnembed && "center_unembed",
    p.foldValueBiases && "fold_value_biases"].filter(Boolean);
  return steps.length ? steps.join("+") : "unprocessed";
}

function checkIndex(name: string, value: number, size: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= size) {
    throw new Error(`${name} must be an integer in [0, ${size - 1}], got ${value}`);
  }
}

/** A cached activation of exactly this shape, or undefined. */
function cachedFitting(cache: ActivationCache, name: string, shape: readonly number[]): Tensor | undefined {
  if (!cache.has(name)) return undefined;
  const t = cache.get(name);
  return t.ndim === shape.length && t.shape.every((x, i) => x === shape[i]) ? t : undefined;
}

/**
 * The corrupted run's keys (after rotary, where the model has it) and values of a layer, when
 * the cache holds them for these tokens.
 */
export function cachedKeysValues(model: HookedTransformer, cache: ActivationCache, layer: number, batch: number, pos: number) {
  const kName = `blocks.${layer}.attn.${model.cfg.positionalEmbeddingType === "rotary" ? "hook_rot_k" : "hook_k"}`;
  const vName = `blocks.${layer}.attn.hook_v`;
  if (!cache.has(kName) || !cache.has(vName)) return undefined;
  const k = cache.get(kName);
  const v = cache.get(vName);
  if (k.shape[0] !== batch || k.shape[1] !== pos || v.shape[0] !== batch || v.shape[1] !== pos) return undefined;
  return { k, v };
}
