// Plain TypeScript twins of assembly/elementwise.ts. A sum or product of two f32 values is
// exact in f64 and rounds once on store, so these match the WASM kernels bit for bit.

/** a, b: [n] -> out: [n] = a + b; out may alias a or b. */
export function add(heap: Float32Array, a: number, b: number, out: number, n: number): void {
  const A = a >>> 2;
  const B = b >>> 2;
  const O = out >>> 2;
  for (let i = 0; i < n; i++) heap[O + i] = heap[A + i]! + heap[B + i]!;
}

/** x: [n] -> the index of the first NaN or ±Infinity, or -1 when every element is finite. */
export function firstNonFinite(heap: Float32Array, x: number, n: number): number {
  const X = x >>> 2;
  for (let i = 0; i < n; i++) {
    const v = heap[X + i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

/** x: [rows, n], row: [n] -> out: [rows, n] = x + row; out may alias x. */
export function addRow(heap: Float32Array, x: number, row: number, out: number, rows: number, n: number): void {
  const X = x >>> 2;
  const R = row >>> 2;
  const O = out >>> 2;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) heap[O + r * n + i] = heap[X + r * n + i]! + heap[R + i]!;
  }
}
