// Plain TypeScript twins of assembly/backward-attention.ts: attention's backward over whole sequences,
// sums in f64, one rounding to f32 on store.
//   q, gq, gz: [batch, pos, nHeads, dHead]; k, v, gk, gv: [batch, pos, nKvHeads, dHead];
//   pattern, gPattern, gScores: [batch, nHeads, pos, pos]; keyMask: [batch, pos] (0 = padding) or 0.
// Query head h reads kv head floor(h / g), g = nHeads / nKvHeads. A call computes the query heads
// [h0, h1) and the kv heads [h0 / g, h1 / g): h0 and h1 are multiples of g.

/**
 * gPattern[b, h, i, j] = gz[b, i, h] · v[b, j, kv(h)] for every key j (masked ones too: z depends on
 * them linearly, though their pattern is 0); gv[b, j, kv] = Σ over the group's heads h and queries i
 * of pattern[b, h, i, j] · gz[b, i, h] (overwritten).
 */
export function patternAndValueGrad(heap: Float32Array, gz: number, v: number, pattern: number, gPattern: number, gv: number,
  batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, h0: number, h1: number): void {
  const group = groupOf(nHeads, nKvHeads, h0, h1);
  const P = pos;
  const d = dHead;
  for (let b = 0; b < batch; b++) {
    for (let h = h0; h < h1; h++) {
      const kv = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const gzRow = (gz >>> 2) + ((b * P + i) * nHeads + h) * d;
        const out = (gPattern >>> 2) + ((b * nHeads + h) * P + i) * P;
        for (let j = 0; j < P; j++) {
          const vRow = (v >>> 2) + ((b * P + j) * nKvHeads + kv) * d;
          let dot = 0;
          for (let e = 0; e < d; e++) dot += heap[gzRow + e]! * heap[vRow + e]!;
          heap[out + j] = dot;
        }
      }
    }
  }
  const acc = new Float64Array(d);
  for (let b = 0; b < batch; b++) {
    for (let kv = h0 / group; kv < h1 / group; kv++) {
      for (let j = 0; j < P; j++) {
        acc.fill(0);
        for (let h = kv * group; h < (kv + 1) * group; h++) {
          for (let i = 0; i < P; i++) {
            const p = heap[(pattern >>> 2) + ((b * nHeads + h) * P + i) * P + j]!;
            if (p === 0) continue;
            const gzRow = (gz >>> 2) + ((b * P + i) * nHeads + h) * d;
            for (let e = 0; e < d; e++) acc[e]! += p * heap[gzRow + e]!;
          }
        }
        heap.set(acc, (gv >>> 2) + ((b * P + j) * nKvHeads + kv) * d);
      }
    }
  }
}

/**
 * gq[b, i, h] = scale · Σ_j gScores[b, h, i, j] · k[b, j, kv(h)] and gk[b, j, kv] = scale · Σ over the
 * group's heads h and queries i of gScores[b, h, i, j] · q[b, i, h], over the keys a query sees (j <= i,
 * not padding); the others were -∞ in the forward and pass no gradient. Both overwritten.
 */
export function queryKeyGrad(heap: Float32Array, gScores: number, q: number, k: number, keyMask: number, gq: number, gk: number,
  batch: number, pos: number, nHeads: number, nKvHeads: number, dHead: number, scale: number, h0: number, h1: number): void {
  const group = groupOf(nHeads, nKvHeads, h0, h1);
  const P = pos;
  const d = dHead;
  const s = Math.fround(scale);
  const visible = (b: number, j: number) => keyMask === 0 || heap[(keyMask >>> 2) + b * P + j] !== 0;
  const acc = new Float64Array(d);
  for (let b = 0; b < batch; b++) {
    for (let h = h0; h < h1; h++) {
      const kv = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const row = (gScores >>> 2) + ((b * nHeads + h) * P + i) * P;
        acc.fill(0);
        for (let j = 0; j <= i; j++) {
          if (!visible(b, j)) continue;
          const g = heap[row + j]!;
          const kRow = (k >>> 2) + ((b * P + j) * nKvHeads + kv) * d;
          for (let e = 0; e < d; e++) acc[e]! += g * heap[kRow + e]!;
        }
        const out = (gq >>> 2) + ((b * P + i) * nHeads + h) * d;
        for (let e = 0; e < d; e++) heap[out + e] = s * acc[e]!;
      }
    }
    for (let kv = h0 / group; kv < h1 / group; kv++) {
      for (let j = 0; j < P; j++) {
        acc.fill(0);
        if (visible(b, j)) {
          for (let h = kv * group; h < (kv + 1) * group; h++) {
            for (let i = j; i < P; i++) {
              const g = heap[(gScores >>> 2) + ((b * nHeads + h) * P + i) * P + j]!;
              const qRow = (q >>> 2) + ((b * P + i) * nHeads + h) * d;
              for (let e = 0; e < d; e++) acc[e]! += g * heap[qRow + e]!;
            }
          }
        }
        const out = (gk >>> 2) + ((b * P + j) * nKvHeads + kv) * d;
        for (let e = 0; e < d; e++) heap[out + e] = s * acc[e]!;
      }
    }
  }
}

// The group size g = nHeads / nKvHeads, after checking that [h0, h1) covers whole groups.
function groupOf(nHeads: number, nKvHeads: number, h0: number, h1: number): number {
  const group = nHeads / nKvHeads;
  if (!Number.isInteger(group) || h0 % group !== 0 || h1 % group !== 0) {
    throw new Error(`attention backward: heads [${h0}, ${h1}) must cover whole groups of nHeads / nKvHeads = ${nHeads} / ${nKvHeads}`);
  }
  return group;
}
