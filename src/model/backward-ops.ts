// The backward pass's elementwise, norm and attention steps: plain loops over the engine's heap
// (pointers are byte offsets, sizes in floats), the reference each later WASM kernel must match.
// Each computes the gradient of a forward step's input from its output's gradient and what
// the forward stored. Products with weights run on the engine's packed gemm (see backward.ts).

/**
 * gScale [rows] = d/dscale of a norm's output: normalized = x̂ / scale, so
 * gScale = -(gNorm · normalized) / scale. x̂ is x centred (LayerNorm) or x itself (RMSNorm).
 */
export function normScaleGrad(heap: Float32Array, gNorm: number, norm: number, scale: number, gScale: number,
  rows: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const g = (gNorm >>> 2) + r * D;
    const n = (norm >>> 2) + r * D;
    let dot = 0;
    for (let i = 0; i < D; i++) dot += heap[g + i]! * heap[n + i]!;
    heap[(gScale >>> 2) + r] = -dot / heap[(scale >>> 2) + r]!;
  }
}

/**
 * gx [rows, D] += d/dx of a norm (LayerNorm when `centred`, else RMSNorm), given the gradients
 * at its two hook points: scale = sqrt(mean(x̂²) + eps) gives dscale/dx̂ = normalized / D, so
 * gx̂ = gNorm / scale + gScale · normalized / D, and centring subtracts gx̂'s row mean.
 */
export function normInputGrad(heap: Float32Array, gNorm: number, norm: number, scale: number, gScale: number, gx: number,
  rows: number, D: number, centred: boolean): void {
  const g = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    const gn = (gNorm >>> 2) + r * D;
    const n = (norm >>> 2) + r * D;
    const s = heap[(scale >>> 2) + r]!;
    const gs = heap[(gScale >>> 2) + r]!;
    let mean = 0;
    for (let i = 0; i < D; i++) {
      g[i] = heap[gn + i]! / s + (gs * heap[n + i]!) / D;
      mean += g[i]!;
    }
    mean = centred ? mean / D : 0;
    const out = (gx >>> 2) + r * D;
    for (let i = 0; i < D; i++) heap[out + i]! += g[i]! - mean;
  }
}

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
    const x = heap[(pre >>> 2) + i]!;
    heap[(gPre >>> 2) + i] = heap[(gPost >>> 2) + i]! * siluDerivative(x);
  }
}

/** post = silu(gate) · up: gGate = gPost · up · silu'(gate), gUp = gPost · silu(gate). */
export function swigluGrad(heap: Float32Array, gate: number, up: number, gPost: number, gGate: number, gUp: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = heap[(gate >>> 2) + i]!;
    const g = heap[(gPost >>> 2) + i]!;
    const sig = 1 / (1 + Math.exp(-x));
    heap[(gUp >>> 2) + i] = g * x * sig;
    heap[(gGate >>> 2) + i] = g * heap[(up >>> 2) + i]! * siluDerivative(x);
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

// Attention's backward. Shapes as the forward kernels': q, z: [B, P, H, d]; k, v: [B, P, Hk, d];
// pattern, scores: [B, H, P, P] (query, key); query head h reads key/value head floor(h / (H / Hk)).

/**
 * gPattern[b, h, i, j] = gz[b, i, h, :] · v[b, j, kv(h), :] for every key j (masked ones too: z
 * depends on them linearly, though their pattern is 0), and gv[b, j, kv, :] = Σ over the group's
 * heads h and queries i of pattern[b, h, i, j] · gz[b, i, h, :] (gv is overwritten).
 */
export function patternAndValueGrad(heap: Float32Array, gz: number, v: number, pattern: number, gPattern: number, gv: number,
  B: number, P: number, H: number, Hk: number, d: number): void {
  const group = H / Hk;
  heap.fill(0, gv >>> 2, (gv >>> 2) + B * P * Hk * d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const gzRow = (gz >>> 2) + ((b * P + i) * H + h) * d;
        const pRow = ((b * H + h) * P + i) * P;
        for (let j = 0; j < P; j++) {
          const vRow = (v >>> 2) + ((b * P + j) * Hk + kv) * d;
          const gvRow = (gv >>> 2) + ((b * P + j) * Hk + kv) * d;
          const p = heap[(pattern >>> 2) + pRow + j]!;
          let dot = 0;
          for (let e = 0; e < d; e++) {
            dot += heap[gzRow + e]! * heap[vRow + e]!;
            if (p !== 0) heap[gvRow + e]! += p * heap[gzRow + e]!;
          }
          heap[(gPattern >>> 2) + pRow + j] = dot;
        }
      }
    }
  }
}

/** Softmax's backward, row by row: gScores = pattern · (gPattern - Σ_j pattern · gPattern). [rows, n]. */
export function softmaxGrad(heap: Float32Array, pattern: number, gPattern: number, gScores: number, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const p = (pattern >>> 2) + r * n;
    const g = (gPattern >>> 2) + r * n;
    let dot = 0;
    for (let j = 0; j < n; j++) dot += heap[p + j]! * heap[g + j]!;
    const out = (gScores >>> 2) + r * n;
    for (let j = 0; j < n; j++) heap[out + j] = heap[p + j]! * (heap[g + j]! - dot);
  }
}

/**
 * scores[b, h, i, j] = q[b, i, h, :] · k[b, j, kv(h), :] · scale where key j is visible to query i
 * (j <= i and not padding: keyMask[b, j] != 0, or keyMask 0 for none); -∞ elsewhere, which passes no
 * gradient. Writes gq [B, P, H, d] and gk [B, P, Hk, d] (both overwritten).
 */
export function queryKeyGrad(heap: Float32Array, gScores: number, q: number, k: number, keyMask: number, gq: number, gk: number,
  B: number, P: number, H: number, Hk: number, d: number, scale: number): void {
  const group = H / Hk;
  heap.fill(0, gq >>> 2, (gq >>> 2) + B * P * H * d);
  heap.fill(0, gk >>> 2, (gk >>> 2) + B * P * Hk * d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const qRow = (q >>> 2) + ((b * P + i) * H + h) * d;
        const gqRow = (gq >>> 2) + ((b * P + i) * H + h) * d;
        const sRow = (gScores >>> 2) + ((b * H + h) * P + i) * P;
        for (let j = 0; j <= i; j++) {
          if (keyMask !== 0 && heap[(keyMask >>> 2) + b * P + j] === 0) continue;
          const g = heap[sRow + j]! * scale;
          if (g === 0) continue;
          const kRow = (k >>> 2) + ((b * P + j) * Hk + kv) * d;
          const gkRow = (gk >>> 2) + ((b * P + j) * Hk + kv) * d;
          for (let e = 0; e < d; e++) {
            heap[gqRow + e]! += g * heap[kRow + e]!;
            heap[gkRow + e]! += g * heap[qRow + e]!;
          }
        }
      }
    }
  }
}
