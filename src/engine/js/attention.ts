// Plain TypeScript twins of assembly/attention.ts, in f64 with one rounding to f32 on store.
//   q: [batch, qLen, nHeads, dHead], k, v: [batch, kLen, nKvHeads, dHead], z: [batch, qLen, nHeads, dHead]
//   scores, pattern: [batch, nHeads, qLen, kLen]; keyMask: [batch, kLen] (1 attend, 0 padding) or 0.
// Query head h reads kv head floor(h / (nHeads / nKvHeads)); query i sits at position kLen - qLen + i,
// and with window > 0 reads only keys position - window + 1 .. position.
// Each kernel computes the query heads [h0, h1) only.

/** scores = q·kᵀ * scale, -Infinity where key j is after the query, outside its window, or keyMask[b, j] == 0. */
export function attnScores(heap: Float32Array, q: number, k: number, scores: number, keyMask: number,
  batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
  h0: number, h1: number, window = 0): void {
  const group = Math.floor(nHeads / nKvHeads);
  const s = Math.fround(scale);
  const offset = kLen - qLen;
  for (let b = 0; b < batch; b++) {
    for (let h = h0; h < h1; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < qLen; i++) {
        const row = (scores >>> 2) + ((b * nHeads + h) * qLen + i) * kLen;
        const qi = (q >>> 2) + ((b * qLen + i) * nHeads + h) * dHead;
        for (let j = 0; j < kLen; j++) {
          if (j > offset + i || outsideWindow(j, offset + i, window) || masked(heap, keyMask, b, kLen, j)) {
            heap[row + j] = -Infinity;
            continue;
          }
          const kj = (k >>> 2) + ((b * kLen + j) * nKvHeads + kvh) * dHead;
          let dot = 0;
          for (let c = 0; c < dHead; c++) dot += heap[qi + c]! * heap[kj + c]!;
          heap[row + j] = dot * s;
        }
      }
    }
  }
}

/** z[b, i, h] = sum over every key j of pattern[b, h, i, j] * v[b, j, kv(h)]. */
export function attnApplyPattern(heap: Float32Array, pattern: number, v: number, z: number,
  batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, h0: number, h1: number): void {
  const group = Math.floor(nHeads / nKvHeads);
  const acc = new Float64Array(dHead);
  for (let b = 0; b < batch; b++) {
    for (let h = h0; h < h1; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < qLen; i++) {
        const row = (pattern >>> 2) + ((b * nHeads + h) * qLen + i) * kLen;
        acc.fill(0);
        for (let j = 0; j < kLen; j++) {
          const p = heap[row + j]!;
          const vj = (v >>> 2) + ((b * kLen + j) * nKvHeads + kvh) * dHead;
          for (let c = 0; c < dHead; c++) acc[c]! += p * heap[vj + c]!;
        }
        const zi = (z >>> 2) + ((b * qLen + i) * nHeads + h) * dHead;
        for (let c = 0; c < dHead; c++) heap[zi + c] = acc[c]!;
      }
    }
  }
}

/** z = softmax(causal, masked q·kᵀ * scale) · v; a query with every key masked gets z = 0. */
export function attention(heap: Float32Array, q: number, k: number, v: number, z: number, keyMask: number,
  batch: number, qLen: number, kLen: number, nHeads: number, nKvHeads: number, dHead: number, scale: number,
  h0: number, h1: number, window = 0): void {
  const group = Math.floor(nHeads / nKvHeads);
  const s = Math.fround(scale);
  const offset = kLen - qLen;
  const weights = new Float64Array(kLen);
  const acc = new Float64Array(dHead);
  for (let b = 0; b < batch; b++) {
    for (let h = h0; h < h1; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < qLen; i++) {
        const last = offset + i;
        const qi = (q >>> 2) + ((b * qLen + i) * nHeads + h) * dHead;
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          if (outsideWindow(j, last, window) || masked(heap, keyMask, b, kLen, j)) {
            weights[j] = -Infinity;
            continue;
          }
          const kj = (k >>> 2) + ((b * kLen + j) * nKvHeads + kvh) * dHead;
          let dot = 0;
          for (let c = 0; c < dHead; c++) dot += heap[qi + c]! * heap[kj + c]!;
          weights[j] = Math.fround(dot * s);
          max = Math.max(max, weights[j]!);
        }
        // Scores and pattern rounded to f32 as attnScores and softmax store them, so the result
        // is the same bits as the three kernels in turn.
        acc.fill(0);
        if (max !== -Infinity) {
          let sum = 0;
          for (let j = 0; j <= last; j++) sum += Math.exp(weights[j]! - max);
          for (let j = 0; j <= last; j++) {
            const p = Math.fround(Math.exp(weights[j]! - max) / sum);
            const vj = (v >>> 2) + ((b * kLen + j) * nKvHeads + kvh) * dHead;
            for (let c = 0; c < dHead; c++) acc[c]! += p * heap[vj + c]!;
          }
        }
        const zi = (z >>> 2) + ((b * qLen + i) * nHeads + h) * dHead;
        for (let c = 0; c < dHead; c++) heap[zi + c] = acc[c]!;
      }
    }
  }
}

// Whether key j is before the sliding window of the query at position `at` (window 0 = none).
function outsideWindow(j: number, at: number, window: number): boolean {
  return window > 0 && j <= at - window;
}

// Whether key j of batch b is padding (keyMask 0 = no mask).
function masked(heap: Float32Array, keyMask: number, b: number, kLen: number, j: number): boolean {
  return keyMask !== 0 && heap[(keyMask >>> 2) + b * kLen + j] === 0;
}
