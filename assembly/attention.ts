// Causal multi-head / grouped-query attention over
//   q: [batch, qLen, nHeads, dHead], k, v: [batch, kLen, nKvHeads, dHead], z: [batch, qLen, nHeads, dHead]
//   scores, pattern: [batch, nHeads, qLen, kLen]; keyMask: [batch, kLen] (1 attend, 0 padding) or 0.
// The queries are the last qLen of the kLen positions (qLen < kLen when a prefix's keys and
// values were kept from an earlier run): query i sits at position kLen - qLen + i.
// With window > 0 (a sliding window), query position p reads only keys p - window + 1 .. p.
// Query head h reads kv head h / (nHeads / nKvHeads). Each kernel computes the query heads
// [h0, h1) only (0, nHeads for all), so threads can share one sequence by heads. SIMD runs
// over dHead; keys are taken four at a time so each q (or z) vector load serves four keys, and
// the fused kernel takes queries two at a time so each k (or v) vector load serves two queries
// (four would need 16 accumulators for four keys: more v128 registers than V8 has on x64).
import { groupDots, scoreKeys } from "./dots";
import { madd, fillRow, scaleRow } from "./simd";
import { expShiftedSum } from "./activations";
import { scoreRow, SCORE_ROW_BYTES } from "./scratch";

// One row of scores for the fused kernel; longer rows are processed in chunks of this many
// keys with an online-softmax rescale between chunks. A multiple of 4, so the four-key
// grouping (and hence every score's bits) is the same as in attnScores. The fused kernel takes
// queries in pairs, so its scratch holds two rows.
const CHUNK: i32 = 4096;
if (<usize>(CHUNK << 3) > SCORE_ROW_BYTES) ERROR("attention's two score rows of CHUNK outgrew their scratch in scratch.ts");

// scoreKeys for two queries q0, q1 over the same n keys, n a multiple of 4: each key vector is
// loaded once for both, and each score gets the bits scoreKeys gives it. Returns
// [max(out0), max(out1), -, -].
function scoreKeyPair(q0: usize, q1: usize, k: usize, kStride: usize, n: i32, dHead: i32, scale: f32,
  out0: usize, out1: usize): v128 {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  const sv = f32x4.splat(scale);
  let m0 = f32x4.splat(-Infinity);
  let m1 = f32x4.splat(-Infinity);
  for (let j = 0; j < n; j += 4) {
    const k0 = k + <usize>j * kStride;
    const k1 = k0 + kStride;
    const k2 = k1 + kStride;
    const k3 = k2 + kStride;
    let a0 = f32x4.splat(0); let b0 = f32x4.splat(0);
    let a1 = f32x4.splat(0); let b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0); let b2 = f32x4.splat(0);
    let a3 = f32x4.splat(0); let b3 = f32x4.splat(0);
    let c: usize = 0;
    for (; c < vEnd; c += 16) {
      const x0 = v128.load(q0 + c);
      const x1 = v128.load(q1 + c);
      const y0 = v128.load(k0 + c);
      const y1 = v128.load(k1 + c);
      const y2 = v128.load(k2 + c);
      const y3 = v128.load(k3 + c);
      a0 = madd(x0, y0, a0); a1 = madd(x0, y1, a1); a2 = madd(x0, y2, a2); a3 = madd(x0, y3, a3);
      b0 = madd(x1, y0, b0); b1 = madd(x1, y1, b1); b2 = madd(x1, y2, b2); b3 = madd(x1, y3, b3);
    }
    const o = <usize>j << 2;
    const s0 = f32x4.mul(groupDots(a0, a1, a2, a3, q0, k0, k1, k2, k3, c, dEnd), sv);
    const s1 = f32x4.mul(groupDots(b0, b1, b2, b3, q1, k0, k1, k2, k3, c, dEnd), sv);
    v128.store(out0 + o, s0);
    v128.store(out1 + o, s1);
    m0 = f32x4.max(m0, s0);
    m1 = f32x4.max(m1, s1);
  }
  // Lane i of the result: max of mi's lanes.
  const lo = f32x4.max(v128.shuffle<f32>(m0, m1, 0, 4, 1, 5), v128.shuffle<f32>(m0, m1, 2, 6, 3, 7));
  return f32x4.max(lo, v128.shuffle<f32>(lo, lo, 2, 3, 0, 1));
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

// accumulateValues for two rows of weights p0: [n0], p1: [n1] and their z0, z1: each value
// vector is loaded once for the keys both rows weigh. Every z entry sums its products in key
// order, as accumulateValues does, so it gets the same bits however the keys are grouped.
function accumulateValuePair(p0: usize, p1: usize, v: usize, vStride: usize, n0: i32, n1: i32, dHead: i32,
  z0: usize, z1: usize): void {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  const shared = min(n0, n1) & ~3;
  for (let j = 0; j < shared; j += 4) {
    const o = <usize>j << 2;
    const w0 = load<f32>(p0 + o); const u0 = load<f32>(p1 + o);
    const w1 = load<f32>(p0 + o, 4); const u1 = load<f32>(p1 + o, 4);
    const w2 = load<f32>(p0 + o, 8); const u2 = load<f32>(p1 + o, 8);
    const w3 = load<f32>(p0 + o, 12); const u3 = load<f32>(p1 + o, 12);
    const v0 = v + <usize>j * vStride;
    const v1 = v0 + vStride;
    const v2 = v1 + vStride;
    const v3 = v2 + vStride;
    const w0v = f32x4.splat(w0); const u0v = f32x4.splat(u0);
    const w1v = f32x4.splat(w1); const u1v = f32x4.splat(u1);
    const w2v = f32x4.splat(w2); const u2v = f32x4.splat(u2);
    const w3v = f32x4.splat(w3); const u3v = f32x4.splat(u3);
    let c: usize = 0;
    for (; c < vEnd; c += 16) {
      const y0 = v128.load(v0 + c);
      const y1 = v128.load(v1 + c);
      const y2 = v128.load(v2 + c);
      const y3 = v128.load(v3 + c);
      v128.store(z0 + c, madd(w3v, y3, madd(w2v, y2, madd(w1v, y1, madd(w0v, y0, v128.load(z0 + c))))));
      v128.store(z1 + c, madd(u3v, y3, madd(u2v, y2, madd(u1v, y1, madd(u0v, y0, v128.load(z1 + c))))));
    }
    for (; c < dEnd; c += 4) {
      const x0 = load<f32>(v0 + c);
      const x1 = load<f32>(v1 + c);
      const x2 = load<f32>(v2 + c);
      const x3 = load<f32>(v3 + c);
      store<f32>(z0 + c, load<f32>(z0 + c) + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3);
      store<f32>(z1 + c, load<f32>(z1 + c) + u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3);
    }
  }
  const rest = <usize>shared << 2;
  const vRest = <usize>shared * vStride;
  accumulateValues(p0 + rest, v + vRest, vStride, n0 - shared, dHead, z0);
  accumulateValues(p1 + rest, v + vRest, vStride, n1 - shared, dHead, z1);
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

// The first key a query reading n keys (0..n-1) sees through a sliding window (0: none).
@inline function windowStart(n: i32, window: i32): i32 {
  return window > 0 && n > window ? n - window : 0;
}

// scores: [n] -> -Infinity before key lo (outside the window); returns the max of scores[lo..n).
function windowMax(scores: usize, lo: i32, n: i32): f32 {
  fillRow(scores, lo, -Infinity);
  let m: f32 = -Infinity;
  for (let j = lo; j < n; j++) m = max(m, load<f32>(scores + (<usize>j << 2)));
  return m;
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

/** Scores = q·kᵀ * scale, -Infinity where key j is after the query, outside its window, or keyMask[b, j] == 0. */
export function attnScores(q: usize, k: usize, scores: usize, keyMask: usize,
  batch: i32, qLen: i32, kLen: i32, nHeads: i32, nKvHeads: i32, dHead: i32, scale: f32, h0: i32, h1: i32, window: i32): void {
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
        fillRow(row, windowStart(n, window), -Infinity);
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

// A row's scores s: [n], max m -> its softmax in place, as softmax computes it; returns how
// many of its weights count (weightedLength), 0 when every key is masked (m = -Infinity).
function softmaxInPlace(s: usize, n: i32, m: f32): i32 {
  if (m == -Infinity) return 0;
  const sum = expShiftedSum(s, s, n, m);
  scaleRow(s, n, <f32>1 / sum);
  return weightedLength(s, n);
}

// One query q: [dHead] over keys and values 0..n-1 (n <= CHUNK) -> z: [dHead], through one
// score row of scratch: the bits of attnScores, softmax and attnApplyPattern.
function attendRow(q: usize, k: usize, v: usize, kvStride: usize, mask: usize, n: i32, dHead: i32, scale: f32,
  z: usize, window: i32): void {
  let m = scoreKeys(q, k, kvStride, n, dHead, scale, scoreRow);
  if (mask != 0) m = maskAndMax(scoreRow, mask, n);
  const lo = windowStart(n, window);
  if (lo > 0) m = windowMax(scoreRow, lo, n);
  zeroRow(z, dHead);
  accumulateValues(scoreRow, v, kvStride, softmaxInPlace(scoreRow, n, m), dHead, z);
}

// Two consecutive queries q0 (keys 0..n0-1) and q1 (keys 0..n0, n0 < CHUNK) -> z0, z1: what
// attendRow gives each, with each key and value vector loaded once for both.
function attendPair(q0: usize, q1: usize, k: usize, v: usize, kvStride: usize, mask: usize, n0: i32, dHead: i32,
  scale: f32, z0: usize, z1: usize, window: i32): void {
  const n1 = n0 + 1;
  const s0 = scoreRow;
  const s1 = scoreRow + (<usize>CHUNK << 2);
  // Whole groups of four keys together, then each query's last few keys (a group of its own
  // for q1 when n1 is a multiple of 4) as scoreKeys groups them.
  const g = n0 & ~3;
  const top = scoreKeyPair(q0, q1, k, kvStride, g, dHead, scale, s0, s1);
  const kg = k + <usize>g * kvStride;
  const og = <usize>g << 2;
  let m0 = max(f32x4.extract_lane(top, 0), scoreKeys(q0, kg, kvStride, n0 - g, dHead, scale, s0 + og));
  let m1 = max(f32x4.extract_lane(top, 1), scoreKeys(q1, kg, kvStride, n1 - g, dHead, scale, s1 + og));
  if (mask != 0) {
    m0 = maskAndMax(s0, mask, n0);
    m1 = maskAndMax(s1, mask, n1);
  }
  const lo0 = windowStart(n0, window);
  const lo1 = windowStart(n1, window);
  if (lo0 > 0) m0 = windowMax(s0, lo0, n0);
  if (lo1 > 0) m1 = windowMax(s1, lo1, n1);
  zeroRow(z0, dHead);
  zeroRow(z1, dHead);
  accumulateValuePair(s0, s1, v, kvStride, softmaxInPlace(s0, n0, m0), softmaxInPlace(s1, n1, m1), dHead, z0, z1);
}

// One query over keys and values 0..n-1 with n > CHUNK -> z, chunk by chunk with an
// online-softmax rescale between chunks (close to, not the same bits as, the pattern path).
function attendLongRow(q: usize, k: usize, v: usize, kvStride: usize, mask: usize, n: i32, dHead: i32, scale: f32,
  z: usize, window: i32): void {
  zeroRow(z, dHead);
  const lo = windowStart(n, window);
  let m: f32 = -Infinity; // running max of the scores seen so far
  let l: f32 = 0; // running sum of exp(score - m)
  for (let c0 = 0; c0 < n; c0 += CHUNK) {
    const nc = min(CHUNK, n - c0);
    if (c0 + nc <= lo) continue; // the whole chunk is before the window
    const kc = k + <usize>c0 * kvStride;
    let cm = scoreKeys(q, kc, kvStride, nc, dHead, scale, scoreRow);
    if (mask != 0) cm = maskAndMax(scoreRow, mask + (<usize>c0 << 2), nc);
    if (lo > c0) cm = windowMax(scoreRow, lo - c0, nc);
    if (cm == -Infinity) continue; // every key of this chunk is masked
    if (cm > m) {
      if (m != -Infinity) {
        const r = Mathf.exp(m - cm);
        scaleRow(z, dHead, r);
        l *= r;
      }
      m = cm;
    }
    l += expShiftedSum(scoreRow, scoreRow, nc, m);
    accumulateValues(scoreRow, v + <usize>c0 * kvStride, kvStride, nc, dHead, z);
  }
  if (l > 0) scaleRow(z, dHead, <f32>1 / l);
}

/**
 * Fused causal attention: z = softmax(q·kᵀ * scale, masked, windowed) · v, without scores or
 * pattern in memory. A query whose keys are all masked gets z = 0. z must not alias q, k or v.
 * Up to CHUNK keys, each row is computed as attnScores, softmax and attnApplyPattern compute it
 * (the same bits, so hooking the pattern, only to look, changes nothing), two queries at a
 * time; longer rows go through chunks with an online-softmax rescale between them.
 */
export function attention(q: usize, k: usize, v: usize, z: usize, keyMask: usize,
  batch: i32, qLen: i32, kLen: i32, nHeads: i32, nKvHeads: i32, dHead: i32, scale: f32, h0: i32, h1: i32, window: i32): void {
  const group = nHeads / nKvHeads;
  const offset = kLen - qLen;
  const qStride = <usize>nHeads * <usize>dHead << 2; // also z's
  const kvStride = <usize>nKvHeads * <usize>dHead << 2;
  const headBytes = <usize>dHead << 2;
  for (let b = 0; b < batch; b++) {
    const qb = q + <usize>b * <usize>qLen * qStride;
    const kb = k + <usize>b * <usize>kLen * kvStride;
    const vb = v + <usize>b * <usize>kLen * kvStride;
    const mb = keyMask == 0 ? <usize>0 : keyMask + (<usize>b * <usize>kLen << 2);
    for (let h = h0; h < h1; h++) {
      const kh = kb + <usize>(h / group) * headBytes;
      const vh = vb + <usize>(h / group) * headBytes;
      for (let i = 0; i < qLen; i++) {
        const qi = qb + <usize>i * qStride + <usize>h * headBytes;
        const zi = z + (qi - q);
        const n = offset + i + 1; // keys up to and including the query's own position
        if (n < CHUNK && i + 1 < qLen) {
          attendPair(qi, qi + qStride, kh, vh, kvStride, mb, n, dHead, scale, zi, zi + qStride, window);
          i++;
        } else if (n <= CHUNK) {
          attendRow(qi, kh, vh, kvStride, mb, n, dHead, scale, zi, window);
        } else {
          attendLongRow(qi, kh, vh, kvStride, mb, n, dHead, scale, zi, window);
        }
      }
    }
  }
}
