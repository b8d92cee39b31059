// Attention's backward over whole sequences (the forward's queries are all pos positions):
//   q, gq, gz: [batch, pos, nHeads, dHead]; k, v, gk, gv: [batch, pos, nKvHeads, dHead]
//   pattern, gPattern, gScores: [batch, nHeads, pos, pos]; keyMask: [batch, pos] (0 = padding) or 0.
// Query head h reads kv head h / g, g = nHeads / nKvHeads. Each kernel computes the query heads
// [h0, h1) and the kv heads [h0 / g, h1 / g) (h0, h1 multiples of g), so threads split by whole
// groups and never write the same kv row. A kv row's gradient sums over the queries of every head
// of its group: it is gathered column by column (one key at a time, accumulators in registers)
// rather than scattered query by query, so each output row is written once. SIMD runs over dHead.
import { scoreKeys } from "./dots";
import { madd, scaleRow } from "./simd";

// out: [dHead] += Σ_{j < n} w[j] · r_j, rows r + j*rStride (bytes), skipping j where mask[j] == 0
// (mask 0: none). A masked weight is dropped, not multiplied by 0, so a NaN there passes nothing.
function accumulateRows(w: usize, mask: usize, r: usize, rStride: usize, n: i32, dHead: i32, out: usize): void {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    let wv = v128.load(w + (<usize>j << 2));
    if (mask != 0) wv = v128.andnot(wv, f32x4.eq(v128.load(mask + (<usize>j << 2)), f32x4.splat(0)));
    const w0v = v128.shuffle<f32>(wv, wv, 0, 0, 0, 0);
    const w1v = v128.shuffle<f32>(wv, wv, 1, 1, 1, 1);
    const w2v = v128.shuffle<f32>(wv, wv, 2, 2, 2, 2);
    const w3v = v128.shuffle<f32>(wv, wv, 3, 3, 3, 3);
    const r0 = r + <usize>j * rStride;
    const r1 = r0 + rStride;
    const r2 = r1 + rStride;
    const r3 = r2 + rStride;
    let c: usize = 0;
    for (; c + 32 <= vEnd; c += 32) {
      const oc = out + c;
      let lo = v128.load(oc);
      let hi = v128.load(oc, 16);
      lo = madd(w0v, v128.load(r0 + c), lo);
      hi = madd(w0v, v128.load(r0 + c, 16), hi);
      lo = madd(w1v, v128.load(r1 + c), lo);
      hi = madd(w1v, v128.load(r1 + c, 16), hi);
      lo = madd(w2v, v128.load(r2 + c), lo);
      hi = madd(w2v, v128.load(r2 + c, 16), hi);
      lo = madd(w3v, v128.load(r3 + c), lo);
      hi = madd(w3v, v128.load(r3 + c, 16), hi);
      v128.store(oc, lo);
      v128.store(oc, hi, 16);
    }
    for (; c < vEnd; c += 16) {
      let acc = v128.load(out + c);
      acc = madd(w0v, v128.load(r0 + c), acc);
      acc = madd(w1v, v128.load(r1 + c), acc);
      acc = madd(w2v, v128.load(r2 + c), acc);
      acc = madd(w3v, v128.load(r3 + c), acc);
      v128.store(out + c, acc);
    }
    if (c < dEnd) {
      const w0 = f32x4.extract_lane(wv, 0);
      const w1 = f32x4.extract_lane(wv, 1);
      const w2 = f32x4.extract_lane(wv, 2);
      const w3 = f32x4.extract_lane(wv, 3);
      for (; c < dEnd; c += 4) {
        let acc = load<f32>(out + c);
        acc += w0 * load<f32>(r0 + c);
        acc += w1 * load<f32>(r1 + c);
        acc += w2 * load<f32>(r2 + c);
        acc += w3 * load<f32>(r3 + c);
        store<f32>(out + c, acc);
      }
    }
  }
  for (; j < n; j++) {
    if (mask != 0 && load<f32>(mask + (<usize>j << 2)) == 0) continue;
    const wj = load<f32>(w + (<usize>j << 2));
    const rj = r + <usize>j * rStride;
    const wv = f32x4.splat(wj);
    let c: usize = 0;
    for (; c < vEnd; c += 16) v128.store(out + c, madd(wv, v128.load(rj + c), v128.load(out + c)));
    for (; c < dEnd; c += 4) store<f32>(out + c, load<f32>(out + c) + wj * load<f32>(rj + c));
  }
}

// out: [dHead] += Σ_{i < n} w[i * wStride] · x_i, rows x + i*xStride (bytes); zero weights (the
// causal triangle of a pattern column) are skipped. 32 floats of out stay in registers per pass.
function accumulateColumn(w: usize, wStride: usize, x: usize, xStride: usize, n: i32, dHead: i32, out: usize): void {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  let c: usize = 0;
  for (; c + 128 <= vEnd; c += 128) {
    const o = out + c;
    let a0 = v128.load(o);
    let a1 = v128.load(o, 16);
    let a2 = v128.load(o, 32);
    let a3 = v128.load(o, 48);
    let a4 = v128.load(o, 64);
    let a5 = v128.load(o, 80);
    let a6 = v128.load(o, 96);
    let a7 = v128.load(o, 112);
    for (let i = 0; i < n; i++) {
      const wi = load<f32>(w + <usize>i * wStride);
      if (wi == 0) continue;
      const wv = f32x4.splat(wi);
      const xi = x + <usize>i * xStride + c;
      a0 = madd(wv, v128.load(xi), a0);
      a1 = madd(wv, v128.load(xi, 16), a1);
      a2 = madd(wv, v128.load(xi, 32), a2);
      a3 = madd(wv, v128.load(xi, 48), a3);
      a4 = madd(wv, v128.load(xi, 64), a4);
      a5 = madd(wv, v128.load(xi, 80), a5);
      a6 = madd(wv, v128.load(xi, 96), a6);
      a7 = madd(wv, v128.load(xi, 112), a7);
    }
    v128.store(o, a0);
    v128.store(o, a1, 16);
    v128.store(o, a2, 32);
    v128.store(o, a3, 48);
    v128.store(o, a4, 64);
    v128.store(o, a5, 80);
    v128.store(o, a6, 96);
    v128.store(o, a7, 112);
  }
  for (; c < vEnd; c += 16) {
    let a = v128.load(out + c);
    for (let i = 0; i < n; i++) {
      const wi = load<f32>(w + <usize>i * wStride);
      if (wi == 0) continue;
      a = madd(f32x4.splat(wi), v128.load(x + <usize>i * xStride + c), a);
    }
    v128.store(out + c, a);
  }
  for (; c < dEnd; c += 4) {
    let a = load<f32>(out + c);
    for (let i = 0; i < n; i++) {
      const wi = load<f32>(w + <usize>i * wStride);
      if (wi == 0) continue;
      a += wi * load<f32>(x + <usize>i * xStride + c);
    }
    store<f32>(out + c, a);
  }
}


/**
 * gPattern[b, h, i, j] = gz[b, i, h] · v[b, j, kv(h)] for every key j (z is linear in all of them,
 * masked or not); gv[b, j, kv] = Σ over the group's heads h and queries i of pattern[b, h, i, j] ·
 * gz[b, i, h] (overwritten).
 */
export function patternAndValueGrad(gz: usize, v: usize, pattern: usize, gPattern: usize, gv: usize,
  batch: i32, pos: i32, nHeads: i32, nKvHeads: i32, dHead: i32, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const qStride = <usize>nHeads * <usize>dHead << 2;
  const kvStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  const rowBytes = <usize>pos << 2;
  for (let b = 0; b < batch; b++) {
    const gzb = gz + <usize>b * <usize>pos * qStride;
    const vb = v + <usize>b * <usize>pos * kvStride;
    const gvb = gv + <usize>b * <usize>pos * kvStride;
    for (let h = h0; h < h1; h++) {
      const vh = vb + <usize>(h / group) * headBytes;
      const gph = gPattern + (<usize>b * <usize>nHeads + <usize>h) * <usize>pos * rowBytes;
      for (let i = 0; i < pos; i++) {
        scoreKeys(gzb + <usize>i * qStride + <usize>h * headBytes, vh, kvStride, pos, dHead, 1, gph + <usize>i * rowBytes);
      }
    }
    for (let kv = h0 / group; kv < h1 / group; kv++) {
      for (let j = 0; j < pos; j++) {
        const o = gvb + <usize>j * kvStride + <usize>kv * headBytes;
        memory.fill(o, 0, headBytes);
        for (let h = kv * group; h < (kv + 1) * group; h++) {
          const column = pattern + (<usize>b * <usize>nHeads + <usize>h) * <usize>pos * rowBytes + (<usize>j << 2);
          accumulateColumn(column, rowBytes, gzb + <usize>h * headBytes, qStride, pos, dHead, o);
        }
      }
    }
  }
}

/**
 * gq = scale · gScores · k and gk = scale · gScoresᵀ · q (summed over the group's heads), over the
 * keys each query sees: j <= i and keyMask[b, j] != 0; the others were -∞ in the forward and pass
 * nothing, whatever gScores holds there. Both overwritten.
 */
export function queryKeyGrad(gScores: usize, q: usize, k: usize, keyMask: usize, gq: usize, gk: usize,
  batch: i32, pos: i32, nHeads: i32, nKvHeads: i32, dHead: i32, scale: f32, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const qStride = <usize>nHeads * <usize>dHead << 2;
  const kvStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  const rowBytes = <usize>pos << 2;
  for (let b = 0; b < batch; b++) {
    const qb = q + <usize>b * <usize>pos * qStride;
    const gqb = gq + <usize>b * <usize>pos * qStride;
    const kb = k + <usize>b * <usize>pos * kvStride;
    const gkb = gk + <usize>b * <usize>pos * kvStride;
    const mb = keyMask == 0 ? <usize>0 : keyMask + <usize>b * rowBytes;
    for (let h = h0; h < h1; h++) {
      const kh = kb + <usize>(h / group) * headBytes;
      const gsh = gScores + (<usize>b * <usize>nHeads + <usize>h) * <usize>pos * rowBytes;
      for (let i = 0; i < pos; i++) {
        const o = gqb + <usize>i * qStride + <usize>h * headBytes;
        memory.fill(o, 0, headBytes);
        accumulateRows(gsh + <usize>i * rowBytes, mb, kh, kvStride, i + 1, dHead, o);
        scaleRow(o, dHead, scale);
      }
    }
    for (let kv = h0 / group; kv < h1 / group; kv++) {
      for (let j = 0; j < pos; j++) {
        const o = gkb + <usize>j * kvStride + <usize>kv * headBytes;
        memory.fill(o, 0, headBytes);
        if (mb != 0 && load<f32>(mb + (<usize>j << 2)) == 0) continue;
        for (let h = kv * group; h < (kv + 1) * group; h++) {
          // Column j from query j down (the queries that see key j).
          const column = gScores + ((<usize>b * <usize>nHeads + <usize>h) * <usize>pos + <usize>j) * rowBytes + (<usize>j << 2);
          accumulateColumn(column, rowBytes, qb + <usize>j * qStride + <usize>h * headBytes, qStride, pos - j, dHead, o);
        }
        scaleRow(o, dHead, scale);
      }
    }
  }
}
