// Plain TypeScript twins of assembly/backward-activations.ts: activation derivatives in f64 (Math.tanh,
// Math.exp, a series / continued-fraction erf), one rounding to f32 on store; softmax's backward.

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** gPre = gPost · gelu_new'(pre), n elements (gelu_new = x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))). */
export function geluNewGrad(heap: Float32Array, pre: number, gPost: number, gPre: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = heap[(pre >>> 2) + i]!;
    const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    const dt = (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    heap[(gPre >>> 2) + i] = heap[(gPost >>> 2) + i]! * (0.5 * (1 + t) + 0.5 * x * dt);
  }
}

/** gPre = gPost · gelu'(pre) for the exact (erf) gelu: Φ(x) + x φ(x). */
export function geluExactGrad(heap: Float32Array, pre: number, gPost: number, gPre: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = heap[(pre >>> 2) + i]!;
    const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
    const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    heap[(gPre >>> 2) + i] = heap[(gPost >>> 2) + i]! * (cdf + x * pdf);
  }
}

/** gPre = gPost · silu'(pre): σ(x)(1 + x(1 - σ(x))). */
export function siluGrad(heap: Float32Array, pre: number, gPost: number, gPre: number, n: number): void {
  for (let i = 0; i < n; i++) {
    heap[(gPre >>> 2) + i] = heap[(gPost >>> 2) + i]! * siluDerivative(heap[(pre >>> 2) + i]!);
  }
}

/** post = silu(gate) · up: gGate = gPost · up · silu'(gate), gUp = gPost · silu(gate). */
export function swigluGrad(heap: Float32Array, gate: number, up: number, gPost: number, gGate: number, gUp: number,
  n: number): void {
  for (let i = 0; i < n; i++) {
    const x = heap[(gate >>> 2) + i]!;
    const g = heap[(gPost >>> 2) + i]!;
    const u = heap[(up >>> 2) + i]!;
    heap[(gUp >>> 2) + i] = g * (x / (1 + Math.exp(-x)));
    heap[(gGate >>> 2) + i] = g * u * siluDerivative(x);
  }
}

/** post = gelu_new(gate) · up: gGate = gPost · up · gelu_new'(gate), gUp = gPost · gelu_new(gate). */
export function gegluGrad(heap: Float32Array, gate: number, up: number, gPost: number, gGate: number, gUp: number,
  n: number): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const x = heap[(gate >>> 2) + i]!;
    const g = heap[(gPost >>> 2) + i]!;
    const u = heap[(up >>> 2) + i]!;
    const t = Math.tanh(c * (x + 0.044715 * x * x * x));
    const gelu = 0.5 * x * (1 + t);
    const slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
    heap[(gUp >>> 2) + i] = g * gelu;
    heap[(gGate >>> 2) + i] = g * u * slope;
  }
}

/** Softmax's backward, row by row: gScores = pattern · (gPattern - Σ_j pattern · gPattern). [rows, n]. */
export function softmaxGrad(heap: Float32Array, pattern: number, gPattern: number, gScores: number, rows: number,
  n: number): void {
  for (let r = 0; r < rows; r++) {
    const p = (pattern >>> 2) + r * n;
    const g = (gPattern >>> 2) + r * n;
    let dot = 0;
    for (let j = 0; j < n; j++) dot += heap[p + j]! * heap[g + j]!;
    const out = (gScores >>> 2) + r * n;
    for (let j = 0; j < n; j++) heap[out + j] = heap[p + j]! * (heap[g + j]! - dot);
  }
}

function siluDerivative(x: number): number {
  const sig = 1 / (1 + Math.exp(-x));
  return sig * (1 + x * (1 - sig));
}

/** erf to double precision's last few bits (Abramowitz-Stegun 7.1.26 is too coarse for gradients): a series and a continued fraction. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)).
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc by Lentz's continued fraction.
  let f = ax;
  let C = ax;
  let Dn = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    Dn = ax + a * Dn;
    Dn = Dn === 0 ? 1e-300 : 1 / Dn;
    C = ax + a / C;
    const delta = C * Dn;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}
