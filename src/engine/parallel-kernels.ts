// Kernels split between the engine's thread and its helper threads.
//
// Every split cuts the output into disjoint chunks that the threads claim one after another
// (thread-pool.ts) and compute with the very same kernel, and no output element depends on
// where the cuts fall or which thread computed it: GEMM columns are cut at multiples of 32
// (whole register-tile slivers) and rows anywhere (each row's sums run in the same order),
// attention between batch entries or, for fewer entries than threads can share, between query
// heads; row-wise kernels between rows and elementwise kernels anywhere (the activations give
// an element the same bits wherever it sits). So the results are bit for bit the same whatever
// the thread count. Calls too small to repay waking a helper run on the engine's thread alone.
import { KERNEL_NAMES, type Kernels } from "./kernels.js";
import type { ThreadPool } from "./thread-pool.js";

/** Below this many multiply-adds a GEMM runs on one thread (waking a helper costs ~10-50 µs). */
const MIN_GEMM_MACS = 1 << 18;
/** Below this many elements a row-wise or elementwise kernel runs on one thread. */
const MIN_ELEMENTS = 1 << 15;
/** GEMM column cuts fall on multiples of this (NB·NR of assembly/gemm.ts). */
const COLUMN_ALIGN = 32;
/** GEMM row cuts fall on multiples of this (MR), so only the last part has ragged rows. */
const ROW_ALIGN = 4;

/**
 * Chunks each thread may claim, on average, of one split call: more than one, so a thread that
 * gets less of the CPU (a shared machine) or wakes up late does less of the work.
 */
const CHUNKS_PER_THREAD = 4;

/**
 * Wraps a single-threaded kernel set so the heavy kernels run on `pool.size + 1` threads.
 * `base` must be the engine thread's own instance (the helpers run their own instances).
 * `chunksPerThread` is for measuring the chunking (1: one fixed share per thread).
 */
export function parallelKernels(base: Kernels, pool: ThreadPool, chunksPerThread = CHUNKS_PER_THREAD): Kernels {
  const threads = pool.size + 1;
  const index = Object.fromEntries(KERNEL_NAMES.map((name, i) => [name, i])) as Record<keyof Kernels, number>;

  /**
   * Runs `run` on this thread alone when the call is too small (`worthIt` false) or can't be cut;
   * otherwise cuts [0, count) into chunks, on multiples of `align`, that the threads claim in
   * turn, running chunk [s, e) as `name(...partArgs(s, e))`. partArgs must be affine in s and e
   * (pointers and counts that move with the cut), which lets the helpers derive every chunk's
   * arguments from three vectors.
   */
  const split = (name: keyof Kernels, count: number, align: number, worthIt: boolean, run: () => void,
    partArgs: (s: number, e: number) => number[]): void => {
    const units = Math.ceil(count / align);
    if (!worthIt || units < 2) {
      run();
      return;
    }
    const chunk = Math.ceil(units / Math.min(units, threads * chunksPerThread)) * align;
    const at00 = partArgs(0, 0);
    const at01 = partArgs(0, 1);
    const at11 = partArgs(1, 1);
    const perEnd = at01.map((x, j) => x - at00[j]!);
    const perStart = at11.map((x, j) => x - at01[j]!);
    const kernel = base[name] as (...a: number[]) => void;
    pool.share({ kernel: index[name], total: count, chunk, base: at00, perStart, perEnd },
      (s, e) => kernel(...partArgs(s, e)));
  };

  const kernels: Kernels = { ...base };

  // GEMMs: by columns when there are enough for every thread, else by rows.
  // The packed products (f32, bf16 or f16 B), cut the same way: by columns when there are enough for every thread, else by rows.
  const packedProduct = (name: "gemmPacked" | "gemmPacked16" | "gemmPackedF16"): Kernels["gemmPacked"] => (a, lda, packed, c, ldc, bias, m, n, k, accumulate, j0, j1, act) => {
    const width = j1 - j0;
    const run = () => base[name](a, lda, packed, c, ldc, bias, m, n, k, accumulate, j0, j1, act);
    const worthIt = m * width * k >= MIN_GEMM_MACS;
    if (width >= COLUMN_ALIGN * threads) {
      split(name, width, COLUMN_ALIGN, worthIt, run, (s, e) => [a, lda, packed, c, ldc, bias, m, n, k, accumulate, j0 + s, j0 + e, act]);
    } else {
      split(name, m, ROW_ALIGN, worthIt, run, (s, e) => [a + s * lda * 4, lda, packed, c + s * ldc * 4, ldc, bias, e - s, n, k, accumulate, j0, j1, act]);
    }
  };
  kernels.gemmPacked = packedProduct("gemmPacked");
  kernels.gemmPacked16 = packedProduct("gemmPacked16");
  kernels.gemmPackedF16 = packedProduct("gemmPackedF16");

  kernels.gemm = (a, lda, b, ldb, c, ldc, bias, m, n, k, transB, accumulate) => {
    const run = () => base.gemm(a, lda, b, ldb, c, ldc, bias, m, n, k, transB, accumulate);
    const worthIt = m * n * k >= MIN_GEMM_MACS;
    if (n >= COLUMN_ALIGN * threads) {
      split("gemm", n, COLUMN_ALIGN, worthIt, run, (s, e) => [a, lda, transB ? b + s * ldb * 4 : b + s * 4, ldb,
        c + s * 4, ldc, bias === 0 ? 0 : bias + s * 4, m, e - s, k, transB, accumulate]);
    } else {
      split("gemm", m, ROW_ALIGN, worthIt, run, (s, e) => [a + s * lda * 4, lda, b, ldb, c + s * ldc * 4, ldc, bias, e - s, n, k, transB, accumulate]);
    }
  };

  // Attention: cut between batch entries when there are enough of them, else between query
  // heads (a single long sequence). Per batch entry: q, z: qLen·H·d; k, v: kLen·Hk·d;
  // scores, pattern: H·qLen·kLen; keyMask: kLen.
  const attentionWorthIt = (batch: number, qLen: number, kLen: number, nHeads: number, dHead: number) =>
    batch * nHeads * qLen * kLen * dHead >= MIN_GEMM_MACS;
  const byBatch = (batch: number) => batch >= 2 * threads;
  kernels.attention = (q, k, v, z, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window) => {
    const worthIt = attentionWorthIt(batch, qLen, kLen, h1 - h0, dHead);
    const run = () => base.attention(q, k, v, z, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window);
    if (byBatch(batch)) {
      const qStride = qLen * nHeads * dHead * 4;
      const kvStride = kLen * nKvHeads * dHead * 4;
      split("attention", batch, 1, worthIt, run, (s, e) => [q + s * qStride, k + s * kvStride, v + s * kvStride, z + s * qStride,
        keyMask === 0 ? 0 : keyMask + s * kLen * 4, e - s, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window]);
    } else {
      split("attention", h1 - h0, 1, worthIt, run,
        (s, e) => [q, k, v, z, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0 + s, h0 + e, window]);
    }
  };
  kernels.attnScores = (q, k, scores, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window) => {
    const worthIt = attentionWorthIt(batch, qLen, kLen, h1 - h0, dHead);
    const run = () => base.attnScores(q, k, scores, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window);
    if (byBatch(batch)) {
      split("attnScores", batch, 1, worthIt, run, (s, e) => [q + s * qLen * nHeads * dHead * 4, k + s * kLen * nKvHeads * dHead * 4,
        scores + s * nHeads * qLen * kLen * 4, keyMask === 0 ? 0 : keyMask + s * kLen * 4,
        e - s, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0, h1, window]);
    } else {
      split("attnScores", h1 - h0, 1, worthIt, run,
        (s, e) => [q, k, scores, keyMask, batch, qLen, kLen, nHeads, nKvHeads, dHead, scale, h0 + s, h0 + e, window]);
    }
  };
  kernels.attnApplyPattern = (pattern, v, z, batch, qLen, kLen, nHeads, nKvHeads, dHead, h0, h1) => {
    const worthIt = attentionWorthIt(batch, qLen, kLen, h1 - h0, dHead);
    const run = () => base.attnApplyPattern(pattern, v, z, batch, qLen, kLen, nHeads, nKvHeads, dHead, h0, h1);
    if (byBatch(batch)) {
      split("attnApplyPattern", batch, 1, worthIt, run, (s, e) => [pattern + s * nHeads * qLen * kLen * 4, v + s * kLen * nKvHeads * dHead * 4,
        z + s * qLen * nHeads * dHead * 4, e - s, qLen, kLen, nHeads, nKvHeads, dHead, h0, h1]);
    } else {
      split("attnApplyPattern", h1 - h0, 1, worthIt, run,
        (s, e) => [pattern, v, z, batch, qLen, kLen, nHeads, nKvHeads, dHead, h0 + s, h0 + e]);
    }
  };

  // Row-wise kernels: cut between rows.
  const byRows = (name: keyof Kernels, rows: number, width: number, run: () => void, partArgs: (s: number, e: number) => number[]) =>
    split(name, rows, 1, rows * width >= MIN_ELEMENTS, run, partArgs);
  kernels.layerNorm = (x, out, scale, w, b, rows, d, eps) => byRows("layerNorm", rows, d,
    () => base.layerNorm(x, out, scale, w, b, rows, d, eps),
    (s, e) => [x + s * d * 4, out + s * d * 4, scale === 0 ? 0 : scale + s * 4, w, b, e - s, d, eps]);
  kernels.rmsNorm = (x, out, scale, w, rows, d, eps) => byRows("rmsNorm", rows, d,
    () => base.rmsNorm(x, out, scale, w, rows, d, eps),
    (s, e) => [x + s * d * 4, out + s * d * 4, scale === 0 ? 0 : scale + s * 4, w, e - s, d, eps]);
  kernels.addLayerNorm = (a, r, resid, out, scale, w, b, rows, d, eps) => byRows("addLayerNorm", rows, d,
    () => base.addLayerNorm(a, r, resid, out, scale, w, b, rows, d, eps),
    (s, e) => [a + s * d * 4, r + s * d * 4, resid + s * d * 4, out + s * d * 4, scale === 0 ? 0 : scale + s * 4, w, b, e - s, d, eps]);
  kernels.addRmsNorm = (a, r, resid, out, scale, w, rows, d, eps) => byRows("addRmsNorm", rows, d,
    () => base.addRmsNorm(a, r, resid, out, scale, w, rows, d, eps),
    (s, e) => [a + s * d * 4, r + s * d * 4, resid + s * d * 4, out + s * d * 4, scale === 0 ? 0 : scale + s * 4, w, e - s, d, eps]);
  kernels.softmax = (x, out, rows, n) => byRows("softmax", rows, n,
    () => base.softmax(x, out, rows, n), (s, e) => [x + s * n * 4, out + s * n * 4, e - s, n]);
  kernels.rotary = (x, out, cos, sin, rows, nHeads, dHead, rotated) => byRows("rotary", rows, nHeads * dHead,
    () => base.rotary(x, out, cos, sin, rows, nHeads, dHead, rotated),
    (s, e) => [x + s * nHeads * dHead * 4, out + s * nHeads * dHead * 4, cos + s * (rotated / 2) * 4, sin + s * (rotated / 2) * 4,
      e - s, nHeads, dHead, rotated]);

  // Elementwise activations (transcendental, so worth a second thread): cut anywhere; cuts on
  // multiples of 16 keep each part's vectors 64-byte aligned when the whole is.
  const elementwise = (name: keyof Kernels, n: number, run: () => void, partArgs: (s: number, e: number) => number[]) =>
    split(name, n, 16, n >= MIN_ELEMENTS, run, partArgs);
  const unary = (name: "geluNew" | "geluExact" | "silu") => (x: number, out: number, n: number) =>
    elementwise(name, n, () => base[name](x, out, n), (s, e) => [x + s * 4, out + s * 4, e - s]);
  kernels.geluNew = unary("geluNew");
  kernels.geluExact = unary("geluExact");
  kernels.silu = unary("silu");
  kernels.swiglu = (gate, up, out, n) => elementwise("swiglu", n, () => base.swiglu(gate, up, out, n),
    (s, e) => [gate + s * 4, up + s * 4, out + s * 4, e - s]);
  kernels.geglu = (gate, up, out, n) => elementwise("geglu", n, () => base.geglu(gate, up, out, n),
    (s, e) => [gate + s * 4, up + s * 4, out + s * 4, e - s]);
  kernels.softcap = (x, out, n, cap) => elementwise("softcap", n, () => base.softcap(x, out, n, cap),
    (s, e) => [x + s * 4, out + s * 4, e - s, cap]);

  // The backward's norms (row-wise) and activations (elementwise), cut as the forward's are.
  kernels.normScaleGrad = (gNorm, norm, scale, gScale, rows, d) => byRows("normScaleGrad", rows, d,
    () => base.normScaleGrad(gNorm, norm, scale, gScale, rows, d),
    (s, e) => [gNorm + s * d * 4, norm + s * d * 4, scale + s * 4, gScale + s * 4, e - s, d]);
  kernels.normInputGrad = (gNorm, norm, scale, gScale, gx, rows, d, centred) => byRows("normInputGrad", rows, d,
    () => base.normInputGrad(gNorm, norm, scale, gScale, gx, rows, d, centred),
    (s, e) => [gNorm + s * d * 4, norm + s * d * 4, scale + s * 4, gScale + s * 4, gx + s * d * 4, e - s, d, centred]);
  kernels.softmaxGrad = (pattern, gPattern, gScores, rows, n) => byRows("softmaxGrad", rows, n,
    () => base.softmaxGrad(pattern, gPattern, gScores, rows, n),
    (s, e) => [pattern + s * n * 4, gPattern + s * n * 4, gScores + s * n * 4, e - s, n]);
  const unaryGrad = (name: "geluNewGrad" | "geluExactGrad" | "siluGrad") => (pre: number, gPost: number, gPre: number, n: number) =>
    elementwise(name, n, () => base[name](pre, gPost, gPre, n), (s, e) => [pre + s * 4, gPost + s * 4, gPre + s * 4, e - s]);
  kernels.geluNewGrad = unaryGrad("geluNewGrad");
  kernels.geluExactGrad = unaryGrad("geluExactGrad");
  kernels.siluGrad = unaryGrad("siluGrad");
  kernels.gegluGrad = (gate, up, gPost, gGate, gUp, n) => elementwise("gegluGrad", n,
    () => base.gegluGrad(gate, up, gPost, gGate, gUp, n),
    (s, e) => [gate + s * 4, up + s * 4, gPost + s * 4, gGate + s * 4, gUp + s * 4, e - s]);
  kernels.swigluGrad = (gate, up, gPost, gGate, gUp, n) => elementwise("swigluGrad", n,
    () => base.swigluGrad(gate, up, gPost, gGate, gUp, n),
    (s, e) => [gate + s * 4, up + s * 4, gPost + s * 4, gGate + s * 4, gUp + s * 4, e - s]);

  // The attention backward: cut between batch entries, or between whole kv-head groups (a kv
  // head's gradient sums over its group's query heads, so a group never straddles two chunks).
  // Per batch entry: q, gq, gz: pos·H·d; k, v, gk, gv: pos·Hk·d; pattern and gradients: H·pos²; keyMask: pos.
  kernels.patternAndValueGrad = (gz, v, pattern, gPattern, gv, batch, pos, nHeads, nKvHeads, dHead, h0, h1) => {
    const worthIt = attentionWorthIt(batch, pos, pos, h1 - h0, dHead);
    const run = () => base.patternAndValueGrad(gz, v, pattern, gPattern, gv, batch, pos, nHeads, nKvHeads, dHead, h0, h1);
    const q = pos * nHeads * dHead * 4;
    const kv = pos * nKvHeads * dHead * 4;
    const sc = nHeads * pos * pos * 4;
    if (byBatch(batch)) {
      split("patternAndValueGrad", batch, 1, worthIt, run, (s, e) => [gz + s * q, v + s * kv, pattern + s * sc, gPattern + s * sc,
        gv + s * kv, e - s, pos, nHeads, nKvHeads, dHead, h0, h1]);
    } else {
      split("patternAndValueGrad", h1 - h0, nHeads / nKvHeads, worthIt, run,
        (s, e) => [gz, v, pattern, gPattern, gv, batch, pos, nHeads, nKvHeads, dHead, h0 + s, h0 + e]);
    }
  };
  kernels.queryKeyGrad = (gScores, q, k, keyMask, gq, gk, batch, pos, nHeads, nKvHeads, dHead, scale, h0, h1) => {
    const worthIt = attentionWorthIt(batch, pos, pos, h1 - h0, dHead);
    const run = () => base.queryKeyGrad(gScores, q, k, keyMask, gq, gk, batch, pos, nHeads, nKvHeads, dHead, scale, h0, h1);
    const qs = pos * nHeads * dHead * 4;
    const kv = pos * nKvHeads * dHead * 4;
    const sc = nHeads * pos * pos * 4;
    if (byBatch(batch)) {
      split("queryKeyGrad", batch, 1, worthIt, run, (s, e) => [gScores + s * sc, q + s * qs, k + s * kv,
        keyMask === 0 ? 0 : keyMask + s * pos * 4, gq + s * qs, gk + s * kv, e - s, pos, nHeads, nKvHeads, dHead, scale, h0, h1]);
    } else {
      split("queryKeyGrad", h1 - h0, nHeads / nKvHeads, worthIt, run,
        (s, e) => [gScores, q, k, keyMask, gq, gk, batch, pos, nHeads, nKvHeads, dHead, scale, h0 + s, h0 + e]);
    }
  };

  return kernels;
}
