// Plain TypeScript twins of assembly/layernorm.ts: two-pass statistics in f64, one
// rounding to f32 on store. The reference the WASM kernels are tested against.

/**
 * x: [rows, d] -> out: [rows, d], scale: [rows] = sqrt(var + eps) (biased variance, TransformerLens
 * hook_scale); out = (x - mean) / scale * w + b, w and b each optional (0). out may alias x.
 */
export function layerNorm(heap: Float32Array, x: number, out: number, scale: number, w: number, b: number,
  rows: number, d: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    normRow(heap, (x >>> 2) + r * d, (out >>> 2) + r * d, scale === 0 ? -1 : (scale >>> 2) + r, w, b, d, eps, true);
  }
}

/** x: [rows, d] -> out: [rows, d], scale: [rows] = sqrt(mean(x²) + eps); out = x / scale * w (w optional). */
export function rmsNorm(heap: Float32Array, x: number, out: number, scale: number, w: number,
  rows: number, d: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    normRow(heap, (x >>> 2) + r * d, (out >>> 2) + r * d, scale === 0 ? -1 : (scale >>> 2) + r, w, 0, d, eps, false);
  }
}

/** a, r: [rows, d] -> resid = a + r, then layerNorm(resid) into out and scale. resid/out may alias a or r. */
export function addLayerNorm(heap: Float32Array, a: number, r: number, resid: number, out: number, scale: number,
  w: number, b: number, rows: number, d: number, eps: number): void {
  const A = a >>> 2;
  const R = r >>> 2;
  const S = resid >>> 2;
  for (let row = 0; row < rows; row++) {
    for (let i = 0; i < d; i++) heap[S + row * d + i] = heap[A + row * d + i]! + heap[R + row * d + i]!;
    normRow(heap, S + row * d, (out >>> 2) + row * d, scale === 0 ? -1 : (scale >>> 2) + row, w, b, d, eps, true);
  }
}

/** a, r: [rows, d] -> resid = a + r, then rmsNorm(resid) into out and scale. resid/out may alias a or r. */
export function addRmsNorm(heap: Float32Array, a: number, r: number, resid: number, out: number, scale: number,
  w: number, rows: number, d: number, eps: number): void {
  const A = a >>> 2;
  const R = r >>> 2;
  const S = resid >>> 2;
  for (let row = 0; row < rows; row++) {
    for (let i = 0; i < d; i++) heap[S + row * d + i] = heap[A + row * d + i]! + heap[R + row * d + i]!;
    normRow(heap, S + row * d, (out >>> 2) + row * d, scale === 0 ? -1 : (scale >>> 2) + row, w, 0, d, eps, false);
  }
}

// One row at float index xi -> oi; the scale goes to float index si unless si < 0.
function normRow(heap: Float32Array, xi: number, oi: number, si: number, w: number, b: number,
  d: number, eps: number, center: boolean): void {
  let mean = 0;
  if (center) {
    for (let i = 0; i < d; i++) mean += heap[xi + i]!;
    mean /= d;
  }
  let sq = 0;
  for (let i = 0; i < d; i++) {
    const dev = heap[xi + i]! - mean;
    sq += dev * dev;
  }
  const s = Math.sqrt(sq / d + Math.fround(eps));
  if (si >= 0) heap[si] = s;
  const W = w >>> 2;
  const B = b >>> 2;
  for (let i = 0; i < d; i++) {
    let y = (heap[xi + i]! - mean) / s;
    if (w !== 0) y *= heap[W + i]!;
    if (b !== 0) y += heap[B + i]!;
    heap[oi + i] = y;
  }
}
