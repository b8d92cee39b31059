// Rotary embedding tables, shared by the forward pass and the sweeps that rotate a few heads by themselves.

/**
 * cos/sin [B * count, d/2] of the angles id * base^(-2i/d) for positions [first, first + count)
 * of each row, computed in double precision and rounded once (as TransformerLens does).
 */
export function rotaryTables(heap: Float32Array, ids: Int32Array, B: number, P: number, first: number, count: number,
  d: number, base: number, cos: number, sin: number): void {
  const half = d / 2;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < count; i++) {
      const id = ids[b * P + first + i]!;
      const row = (b * count + i) * half;
      for (let j = 0; j < half; j++) {
        const angle = id / Math.pow(base, j / half);
        heap[(cos >>> 2) + row + j] = Math.cos(angle);
        heap[(sin >>> 2) + row + j] = Math.sin(angle);
      }
    }
  }
}
