// Causal multi-head / grouped-query attention over
//   q: [batch, qLen, nHeads, dHead], k, v: [batch, kLen, nKvHeads, dHead], z: [batch, qLen, nHeads, dHead]
//   scores, pattern: [batch, nHeads, qLen, kLen]; keyMask: [batch, kLen] (1 attend, 0 padding) or 0.
// The queries are the last qLen of the kLen positions (qLen < kLen when a prefix's keys and
// values were kept from an earlier run): query i sits at position kLen - qLen + i.
// Query head h reads kv head h / (nHeads / nKvHeads). Each kernel computes the query heads
// [h0, h1) only (0, nHeads for all), so threads can share one sequence by heads. SIMD runs
// over dHead; keys are taken four at a time so each q (or z) vector load serves four keys.
import { madd, hsum, fillRow, scaleRow } from "./simd";
import { expShiftedSum } from "./activations";
import { scoreRow, SCORE_ROW_BYTES } from "./scratch";

// One row of scores for the fused kernel; longer rows are processed in chunks of this many
// keys with an online-softmax rescale between chunks. A multiple of 4, so the four-key
// grouping (and hence every score's bits) is the same as in attnScores.
const CHUNK: i32 = 4096;
if (<usize>(CHUNK << 2) > SCORE_ROW_BYTES) ERROR("attention's CHUNK outgrew its scratch row in scratch.ts");

// [a0, a1, a2, a3] -> [sum(a0), sum(a1), sum(a2), sum(a3)] in four shuffles and three adds
// (four separate horizontal sums would cost twelve lane extracts).
// @ts-ignore: decorator
@inline function sum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
}

// q: [dHead], keys k + j*kStride (bytes), j < n -> out: [n] = (q · k_j) * scale; returns max(out)
function scoreKeys(q: usize, k: usize, kStride: usize, n: i32, dHead: i32, scale: f32, out: usize): f32 {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  const sv = f32x4.splat(scale);
  let mv = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const k0 = k + <usize>j * kStride;
    const k1 = k0 + kStride;
    const k2 = k1 + kStride;
    const k3 = k2 + kStride;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let c: usize = 0;
    for (; c + 32 <= vEnd; c += 32) {
      const qa = v128.load(q + c);
      const qb = v128.load(q + c, 16);
      const p0 = k0 + c;
      const p1 = k1 + c;
      const p2 = k2 + c;
      const p3 = k3 + c;
      a0 = madd(qb, v128.load(p0, 16), madd(qa, v128.load(p0), a0));
      a1 = madd(qb, v128.load(p1, 16), madd(qa, v128.load(p1), a1));
      a2 = madd(qb, v128.load(p2, 16), madd(qa, v128.load(p2), a2));
      a3 = madd(qb, v128.load(p3, 16), madd(qa, v128.load(p3), a3));
    }
    for (; c < vEnd; c += 16) {
      const qv = v128.load(q + c);
      a0 = madd(qv, v128.load(k0 + c), a0);
      a1 = madd(qv, v128.load(k1 + c), a1);
      a2 = madd(qv, v128.load(k2 + c), a2);
      a3 = madd(qv, v128.load(k3 + c), a3);
    }
    let dots = sum4(a0, a1, a2, a3);
    if (c < dEnd) {
      let s0: f32 = 0;
      let s1: f32 = 0;
      let s2: f32 = 0;
      let s3: f32 = 0;
      for (; c < dEnd; c += 4) {
        const qs = load<f32>(q + c);
        s0 += qs * load<f32>(k0 + c);
        s1 += qs * load<f32>(k1 + c);
        s2 += qs * load<f32>(k2 + c);
        s3 += qs * load<f32>(k3 + c);
      }
      dots = f32x4.add(dots, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(s0), 1, s1), 2, s2), 3, s3));
    }
    const scores = f32x4.mul(dots, sv);
    v128.store(out + (<usize>j << 2), scores);
    mv = f32x4.max(mv, scores);
  }
  let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; j < n; j++) {
    const kj = k + <usize>j * kStride;
    let a = f32x4.splat(0);
    let c: usize = 0;
    for (; c < vEnd; c += 16) a = madd(v128.load(q + c), v128.load(kj + c), a);
    let s = hsum(a);
    for (; c < dEnd; c += 4) s += load<f32>(q + c) * load<f32>(kj + c);
    const score = s * scale;
    store<f32>(out + (<usize>j << 2), score);
    m = max(m, score);
  }
  return m;
}

// z: [dHead] += sum over j < n of p[j] * v_j, v_j at v + j*vStride (bytes)
function accumulateValues(p: usize, v: usize, vStride: usize, n: i32, dHead: i32, z: usize): void {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const pj = p + (<usize>j << 2);
    const w0 = load<f32>(pj);
    const w1 = load<f32>(pj, 4);
    const w2 = load<f32>(pj, 8);
    const w3 = load<f32>(pj, 12);
    const v0 = v + <usize>j * vStride;
    const v1 = v0 + vStride;
    const v2 = v1 + vStride;
    const v3 = v2 + vStride;
    const w0v = f32x4.splat(w0);
    const w1v = f32x4.splat(w1);
    const w2v = f32x4.splat(w2);
    const w3v = f32x4.splat(w3);
    let c: usize = 0;
    for (; c + 32 <= vEnd; c += 32) {
      const zc = z + c;
      const p0 = v0 + c;
      const p1 = v1 + c;
      const p2 = v2 + c;
      const p3 = v3 + c;
      let lo = v128.load(zc);
      let hi = v128.load(zc, 16);
      lo = madd(w0v, v128.load(p0), lo);
      hi = madd(w0v, v128.load(p0, 16), hi);
      lo = madd(w1v, v128.load(p1), lo);
      hi = madd(w1v, v128.load(p1, 16), hi);
      lo = madd(w2v, v128.load(p2), lo);
      hi = madd(w2v, v128.load(p2, 16), hi);
      lo = madd(w3v, v128.load(p3), lo);
      hi = madd(w3v, v128.load(p3, 16), hi);
      v128.store(zc, lo);
      v128.store(zc, hi, 16);
    }
    for (; c < vEnd; c += 16) {
      let acc = v128.load(z + c);
      acc = madd(w0v, v128.load(v0 + c), acc);
      acc = madd(w1v, v128.load(v1 + c), acc);
      acc = madd(w2v, v128.load(v2 + c), acc);
      acc = madd(w3v, v128.load(v3 + c), acc);
      v128.store(z + c, acc);
    }
    for (; c < dEnd; c += 4) {
      let acc = load<f32>(z + c);
      acc += w0 * load<f32>(v0 + c);
      acc += w1 * load<f32>(v1 + c);
      acc += w2 * load<f32>(v2 + c);
      acc += w3 * load<f32>(v3 + c);
      store<f32>(z + c, acc);
    }
  }
  for (; j < n; j++) {
    const w = load<f32>(p + (<usize>j << 2));
    const vj = v + <usize>j * vStride;
    const wv = f32x4.splat(w);
    let c: usize = 0;
    for (; c < vEnd; c += 16) v128.store(z + c, madd(wv, v128.load(vj + c), v128.load(z + c)));
    for (; c < dEnd; c += 4) store<f32>(z + c, load<f32>(z + c) + w * load<f32>(vj + c));
  }
}

// Trailing zero weights of p: [n] (the causal upper triangle) add exactly nothing: the count
// of weights up to the last nonzero one.
function weightedLength(p: usize, n: i32): i32 {
  while (n >= 4 && !v128.any_true(v128.load(p + (<usize>(n - 4) << 2)))) n -= 4;
  while (n > 0 && load<f32>(p + (<usize>(n - 1) << 2)) == 0) n--;
  return n;
}

// x: [n] = 0
function zeroRow(x: usize, n: i32): void {
  memory.fill(x, 0, <usize>n << 2);
}

// scores: [n] -> -Infinity where keyMask[j] == 0; returns the max of what is left
function maskAndMax(scores: usize, keyMask: usize, n: i32): f32 {
  let m: f32 = -Infinity;
  for (let j = 0; j < n; j++) {
    const p = scores + (<usize>j << 2);
    if (load<f32>(keyMask + (<usize>j << 2)) == 0) store<f32>(p, -Infinity);
    else m = max(m, load<f32>(p));
  }
  return m;
}

/** Scores = q·kᵀ * scale, -Infinity where key j is after the query or keyMask[b, j] == 0. */
export function attnScores(q: usize, k: usize, scores: usize, keyMask: usize,
  batch: i32, qLen: i32, kLen: i32, nHeads: i32, nKvHeads: i32, dHead: i32, scale: f32, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const offset = kLen - qLen;
  const qStride = <usize>nHeads * <usize>dHead << 2;
  const kStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  const rowBytes = <usize>kLen << 2;
  for (let b = 0; b < batch; b++) {
    const qb = q + <usize>b * <usize>qLen * qStride;
    const kb = k + <usize>b * <usize>kLen * kStride;
    const mb = keyMask == 0 ? <usize>0 : keyMask + <usize>b * rowBytes;
    for (let h = h0; h < h1; h++) {
      const kh = kb + <usize>(h / group) * headBytes;
      const sh = scores + (<usize>b * <usize>nHeads + <usize>h) * <usize>qLen * rowBytes;
      for (let i = 0; i < qLen; i++) {
        const row = sh + <usize>i * rowBytes;
        const n = offset + i + 1; // keys up to and including the query's own position
        scoreKeys(qb + <usize>i * qStride + <usize>h * headBytes, kh, kStride, n, dHead, scale, row);
        if (mb != 0) maskAndMax(row, mb, n);
        fillRow(row + (<usize>n << 2), kLen - n, -Infinity);
      }
    }
  }
}

/** z = pattern · v (every key j, not only the causal ones, so a hook may write any pattern). */
export function attnApplyPattern(pattern: usize, v: usize, z: usize,
  batch: i32, qLen: i32, kLen: i32, nHeads: i32, nKvHeads: i32, dHead: i32, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const zStride = <usize>nHeads * <usize>dHead << 2;
  const vStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  const rowBytes = <usize>kLen << 2;
  for (let b = 0; b < batch; b++) {
    const zb = z + <usize>b * <usize>qLen * zStride;
    const vb = v + <usize>b * <usize>kLen * vStride;
    for (let h = h0; h < h1; h++) {
      const vh = vb + <usize>(h / group) * headBytes;
      const ph = pattern + (<usize>b * <usize>nHeads + <usize>h) * <usize>qLen * rowBytes;
      for (let i = 0; i < qLen; i++) {
        const row = ph + <usize>i * rowBytes;
        const zi = zb + <usize>i * zStride + <usize>h * headBytes;
        zeroRow(zi, dHead);
        accumulateValues(row, vh, vStride, weightedLength(row, kLen), dHead, zi);
      }
    }
  }
}

/**
 * Fused causal attention: z = softmax(q·kᵀ * scale, masked) · v, one score row of scratch at a
 * time. A query whose keys are all masked gets z = 0. z must not alias q, k or v.
 * Up to CHUNK keys, each row is computed as attnScores, softmax and attnApplyPattern compute it
 * (the same bits, so hooking the pattern, only to look, changes nothing); longer rows go through
 * chunks with an online-softmax rescale between them.
 */
export function attention(q: usize, k: usize, v: usize, z: usize, keyMask: usize,
  batch: i32, qLen: i32, kLen: i32, nHeads: i32, nKvHeads: i32, dHead: i32, scale: f32, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const offset = kLen - qLen;
  const qStride = <usize>nHeads * <usize>dHead << 2;
  const kvStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  for (let b = 0; b < batch; b++) {
    const qb = q + <usize>b * <usize>qLen * qStride;
    const kb = k + <usize>b * <usize>kLen * kvStride;
    const vb = v + <usize>b * <usize>kLen * kvStride;
    const mb = keyMask == 0 ? <usize>0 : keyMask + (<usize>b * <usize>kLen << 2);
    for (let h = h0; h < h1; h++) {
      const kvOff = <usize>(h / group) * headBytes;
      for (let i = 0; i < qLen; i++) {
        const qi = qb + <usize>i * qStride + <usize>h * headBytes;
        const zi = z + (qi - q);
        const last = offset + i; // the query's own position: the last key it may read
        zeroRow(zi, dHead);
        if (last < CHUNK) {
          const n = last + 1;
          let m = scoreKeys(qi, kb + kvOff, kvStride, n, dHead, scale, scoreRow);
          if (mb != 0) m = maskAndMax(scoreRow, mb, n);
          if (m == -Infinity) continue; // every key is masked
          const sum = expShiftedSum(scoreRow, scoreRow, n, m);
          scaleRow(scoreRow, n, <f32>1 / sum);
          accumulateValues(scoreRow, vb + kvOff, kvStride, weightedLength(scoreRow, n), dHead, zi);
          continue;
        }
        let m: f32 = -Infinity; // running max of the scores seen so far
        let l: f32 = 0; // running sum of exp(score - m)
        for (let c0 = 0; c0 <= last; c0 += CHUNK) {
          const n = min(CHUNK, last + 1 - c0);
          const kc = kb + kvOff + <usize>c0 * kvStride;
          let cm = scoreKeys(qi, kc, kvStride, n, dHead, scale, scoreRow);
          if (mb != 0) cm = maskAndMax(scoreRow, mb + (<usize>c0 << 2), n);
          if (cm == -Infinity) continue; // every key of this chunk is masked
          if (cm > m) {
            if (m != -Infinity) {
              const r = Mathf.exp(m - cm);
              scaleRow(zi, dHead, r);
              l *= r;
            }
            m = cm;
          }
          l += expShiftedSum(scoreRow, scoreRow, n, m);
          accumulateValues(scoreRow, vb + kvOff + <usize>c0 * kvStride, kvStride, n, dHead, zi);
        }
        if (l > 0) scaleRow(zi, dHead, <f32>1 / l);
      }
    }
  }
}
