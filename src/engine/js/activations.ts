// Plain TypeScript twins of assembly/activations.ts, computed in f64 with Math.exp /
// Math.tanh and a series / continued-fraction erf, rounded to f32 once on store.

/** x: [n] -> out: [n] = gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))); out may alias x. */
export function geluNew(heap: Float32Array, x: number, out: number, n: number): void {
  const X = x >>> 2;
  const O = out >>> 2;
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const v = heap[X + i]!;
    heap[O + i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
  }
}

/** x: [n] -> out: [n] = 0.5 x (1 + erf(x / √2)); out may alias x. */
export function geluExact(heap: Float32Array, x: number, out: number, n: number): void {
  const X = x >>> 2;
  const O = out >>> 2;
  for (let i = 0; i < n; i++) {
    const v = heap[X + i]!;
    heap[O + i] = 0.5 * v * onePlusErf(v / Math.SQRT2);
  }
}

/** x: [n] -> out: [n] = x · sigmoid(x); out may alias x. */
export function silu(heap: Float32Array, x: number, out: number, n: number): void {
  const X = x >>> 2;
  const O = out >>> 2;
  for (let i = 0; i < n; i++) {
    const v = heap[X + i]!;
    heap[O + i] = v / (1 + Math.exp(-v));
  }
}

/** out = gelu_new(gate) * up (Gemma's gated MLP), n elements; out may alias either input. */
export function geglu(heap: Float32Array, gate: number, up: number, out: number, n: number): void {
  const G = gate >>> 2;
  const U = up >>> 2;
  const O = out >>> 2;
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const g = heap[G + i]!;
    heap[O + i] = 0.5 * g * (1 + Math.tanh(c * (g + 0.044715 * g * g * g))) * heap[U + i]!;
  }
}

/** out = cap · tanh(x / cap), -Infinity kept (a masked score stays masked); out may alias x. */
export function softcap(heap: Float32Array, x: number, out: number, n: number, cap: number): void {
  const X = x >>> 2;
  const O = out >>> 2;
  for (let i = 0; i < n; i++) {
    const v = heap[X + i]!;
    heap[O + i] = v === -Infinity ? v : cap * Math.tanh(v / cap);
  }
}

/** out = silu(gate) * up, n elements; out may alias either input. */
export function swiglu(heap: Float32Array, gate: number, up: number, out: number, n: number): void {
  const G = gate >>> 2;
  const U = up >>> 2;
  const O = out >>> 2;
  for (let i = 0; i < n; i++) {
    const g = heap[G + i]!;
    heap[O + i] = (g / (1 + Math.exp(-g))) * heap[U + i]!;
  }
}

/** x: [rows, n] -> out: [rows, n], softmax of each row; -Infinity -> 0, an all -Infinity row -> 0s. out may alias x. */
export function softmax(heap: Float32Array, x: number, out: number, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const X = (x >>> 2) + r * n;
    const O = (out >>> 2) + r * n;
    const m = rowMax(heap, X, n);
    if (m === -Infinity) {
      heap.fill(0, O, O + n);
      continue;
    }
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(heap[X + i]! - m);
    for (let i = 0; i < n; i++) heap[O + i] = Math.exp(heap[X + i]! - m) / sum;
  }
}

// heap[start .. start + n) -> max (-Infinity when empty)
function rowMax(heap: Float32Array, start: number, n: number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, heap[start + i]!);
  return m;
}

// 1 + erf(y) to ~1e-14 relative: the Maclaurin series of erf near 0, where its alternating
// terms stay small, and the continued fraction
// erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))) for |y| >= 3, where it
// converges quickly; 1 + erf(y) = erfc(-y) keeps the far negative side from cancelling to 0.
function onePlusErf(y: number): number {
  if (Number.isNaN(y)) return NaN;
  const ay = Math.abs(y);
  if (ay < 3) {
    const y2 = y * y;
    let term = y; // (-1)^k y^(2k+1) / k!
    let sum = y;
    for (let k = 1; k < 200; k++) {
      term *= -y2 / k;
      const t = term / (2 * k + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 + (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = ay;
  for (let k = 120; k >= 1; k--) f = ay + (k / 2) / f;
  const erfc = Math.exp(-ay * ay) / (Math.sqrt(Math.PI) * f);
  return y < 0 ? erfc : 2 - erfc;
}
