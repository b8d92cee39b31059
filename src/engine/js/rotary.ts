// Plain TypeScript twin of assembly/rotary.ts (rotate_half convention).
//   x, out: [rows, nHeads, dHead] (out may alias x); cos, sin: [rows, rotated/2]

/**
 * out[i] = x[i] cos - x[i + h] sin, out[i + h] = x[i + h] cos + x[i] sin, with h = rotated / 2,
 * for each head's first `rotated` dimensions; out[j] = x[j] for j ≥ rotated.
 */
export function rotary(heap: Float32Array, x: number, out: number, cos: number, sin: number,
  rows: number, nHeads: number, dHead: number, rotated: number): void {
  const half = rotated >> 1;
  for (let r = 0; r < rows; r++) {
    const c = (cos >>> 2) + r * half;
    const s = (sin >>> 2) + r * half;
    for (let h = 0; h < nHeads; h++) {
      const X = (x >>> 2) + (r * nHeads + h) * dHead;
      const O = (out >>> 2) + (r * nHeads + h) * dHead;
      for (let i = 0; i < half; i++) {
        const x1 = heap[X + i]!;
        const x2 = heap[X + half + i]!;
        const cv = heap[c + i]!;
        const sv = heap[s + i]!;
        heap[O + i] = x1 * cv - x2 * sv;
        heap[O + half + i] = x2 * cv + x1 * sv;
      }
      for (let j = rotated; j < dHead; j++) heap[O + j] = heap[X + j]!;
    }
  }
}
