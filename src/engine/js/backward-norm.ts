// Plain TypeScript twins of assembly/backward-norm.ts: the backward of LayerNorm / RMSNorm between
// their two hook points, row sums in f64, one rounding to f32 on store.
//   gNorm, norm (hook_normalized), gx: [rows, d]; scale (hook_scale), gScale: [rows]

/** gScale = -(gNorm · norm) / scale per row: normalized = x̂ / scale (x̂ = x centred, or x for RMSNorm). */
export function normScaleGrad(heap: Float32Array, gNorm: number, norm: number, scale: number, gScale: number,
  rows: number, d: number): void {
  for (let r = 0; r < rows; r++) {
    const g = (gNorm >>> 2) + r * d;
    const n = (norm >>> 2) + r * d;
    let dot = 0;
    for (let i = 0; i < d; i++) dot += heap[g + i]! * heap[n + i]!;
    heap[(gScale >>> 2) + r] = -dot / heap[(scale >>> 2) + r]!;
  }
}

/**
 * gx += d/dx of the norm given the gradients at both hooks: scale = sqrt(mean(x̂²) + eps) gives
 * dscale/dx̂ = normalized / d, so gx̂ = gNorm / scale + gScale · normalized / d; centring (LayerNorm,
 * `centred` 1) subtracts gx̂'s row mean.
 */
export function normInputGrad(heap: Float32Array, gNorm: number, norm: number, scale: number, gScale: number, gx: number,
  rows: number, d: number, centred: number): void {
  const g = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const gn = (gNorm >>> 2) + r * d;
    const n = (norm >>> 2) + r * d;
    const s = heap[(scale >>> 2) + r]!;
    const gs = heap[(gScale >>> 2) + r]!;
    let mean = 0;
    for (let i = 0; i < d; i++) {
      g[i] = heap[gn + i]! / s + (gs * heap[n + i]!) / d;
      mean += g[i]!;
    }
    mean = centred !== 0 ? mean / d : 0;
    const out = (gx >>> 2) + r * d;
    for (let i = 0; i < d; i++) heap[out + i] = heap[out + i]! + (g[i]! - mean);
  }
}
