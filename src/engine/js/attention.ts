// Plain TypeScript twins of assembly/attention.ts, in f64 with one rounding to f32 on store.
//   q: [batch, pos, nHeads, dHead], k, v: [batch, pos, nKvHeads, dHead], z: [batch, pos, nHeads, dHead]
//   scores, pattern: [batch, nHeads, pos, pos]; keyMask: [batch, pos] (1 attend, 0 padding) or 0.
// Query head h reads kv head floor(h / (nHeads / nKvHeads)).

/** scores = q·kᵀ * scale, -Infinity where key j > query i or keyMask[b, j] == 0. */
export function attnScores(heap: Float32Array, q: number, k: number, scores: number, keyMask: number,
  batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, scale: number): void {
  const group = Math.floor(nHeads / nKvHeads);
  const s = Math.fround(scale);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < pos; i++) {
        const row = (scores >>> 2) + ((b * nHeads + h) * pos + i) * pos;
        const qi = (q >>> 2) + ((b * pos + i) * nHeads + h) * dHead;
        for (let j = 0; j < pos; j++) {
          if (j > i || masked(heap, keyMask, b, pos, j)) {
            heap[row + j] = -Infinity;
            continue;
          }
          const kj = (k >>> 2) + ((b * pos + j) * nKvHeads + kvh) * dHead;
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
  batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number): void {
  const group = Math.floor(nHeads / nKvHeads);
  const acc = new Float64Array(dHead);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < pos; i++) {
        const row = (pattern >>> 2) + ((b * nHeads + h) * pos + i) * pos;
        acc.fill(0);
        for (let j = 0; j < pos; j++) {
          const p = heap[row + j]!;
          const vj = (v >>> 2) + ((b * pos + j) * nKvHeads + kvh) * dHead;
          for (let c = 0; c < dHead; c++) acc[c]! += p * heap[vj + c]!;
        }
        const zi = (z >>> 2) + ((b * pos + i) * nHeads + h) * dHead;
        for (let c = 0; c < dHead; c++) heap[zi + c] = acc[c]!;
      }
    }
  }
}

/** z = softmax(causal, masked q·kᵀ * scale) · v; a query with every key masked gets z = 0. */
export function attention(heap: Float32Array, q: number, k: number, v: number, z: number, keyMask: number,
  batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, scale: number): void {
  const group = Math.floor(nHeads / nKvHeads);
  const s = Math.fround(scale);
  const weights = new Float64Array(pos);
  const acc = new Float64Array(dHead);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < pos; i++) {
        const qi = (q >>> 2) + ((b * pos + i) * nHeads + h) * dHead;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          if (masked(heap, keyMask, b, pos, j)) {
            weights[j] = -Infinity;
            continue;
          }
          const kj = (k >>> 2) + ((b * pos + j) * nKvHeads + kvh) * dHead;
          let dot = 0;
          for (let c = 0; c < dHead; c++) dot += heap[qi + c]! * heap[kj + c]!;
          weights[j] = dot * s;
          max = Math.max(max, dot * s);
        }
        acc.fill(0);
        if (max !== -Infinity) {
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            const e = Math.exp(weights[j]! - max);
            sum += e;
            const vj = (v >>> 2) + ((b * pos + j) * nKvHeads + kvh) * dHead;
            for (let c = 0; c < dHead; c++) acc[c]! += e * heap[vj + c]!;
          }
          for (let c = 0; c < dHead; c++) acc[c]! /= sum;
        }
        const zi = (z >>> 2) + ((b * pos + i) * nHeads + h) * dHead;
        for (let c = 0; c < dHead; c++) heap[zi + c] = acc[c]!;
      }
    }
  }
}

// Whether key j of batch b is padding (keyMask 0 = no mask).
function masked(heap: Float32Array, keyMask: number, b: number, pos: number, j: number): boolean {
  return keyMask !== 0 && heap[(keyMask >>> 2) + b * pos + j] === 0;
}
