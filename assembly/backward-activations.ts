// Activation derivatives (the MLP's backward) and softmax's backward.
//
// exp and erf are the forward's (exp-erf.ts, shared with activations.ts). Both sigmoid forms
// come from e = exp(-|u|) <= 1, which never overflows, and σ(u)(1 - σ(u)) = e / (1 + e)² on
// either side. Ragged tails go through the scratch vector, so an element gives the same bits
// wherever it sits (threads cut elementwise calls anywhere).
import { expNeg, gaussHalf, negAbs, onePlusErfHalf } from "./exp-erf";
import { madd } from "./simd";
import { lanes } from "./scratch";
import { DOT, rowReduce } from "./row-sums";



// ---- derivatives on four lanes ---------------------------------------------------

const SQRT_2_OVER_PI: f32 = 0.7978845608;
const GELU_CUBIC: f32 = 0.7978845608 * 0.044715;

// gelu_new(x) = x σ(2u), u = √(2/π)(x + 0.044715x³): gelu_new' = σ(2u) + 2x u' σ(2u)(1 - σ(2u)).
// @ts-ignore: decorator
@inline function geluNewGrad4(x: v128): v128 {
  const one = f32x4.splat(1);
  const x2 = f32x4.mul(x, x);
  const u = f32x4.mul(x, madd(x2, f32x4.splat(GELU_CUBIC), f32x4.splat(SQRT_2_OVER_PI)));
  const du = madd(x2, f32x4.splat(3 * GELU_CUBIC), f32x4.splat(SQRT_2_OVER_PI));
  const e = expNeg(f32x4.mul(negAbs(u), f32x4.splat(2)));
  const inv = f32x4.div(one, f32x4.add(one, e));
  const sig = v128.bitselect(f32x4.mul(e, inv), inv, f32x4.lt(u, f32x4.splat(0)));
  const sigSlope = f32x4.mul(e, f32x4.mul(inv, inv)); // σ(1 - σ)
  return madd(f32x4.mul(f32x4.add(x, x), du), sigSlope, sig);
}

// σ(x) on four lanes.
// @ts-ignore: decorator
@inline function sigmoid4(x: v128): v128 {
  const one = f32x4.splat(1);
  const e = expNeg(negAbs(x));
  const inv = f32x4.div(one, f32x4.add(one, e));
  return v128.bitselect(f32x4.mul(e, inv), inv, f32x4.lt(x, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline function siluGradFromSigmoid(x: v128, sig: v128): v128 {
  // silu' = σ + x σ(1 - σ); 1 - σ loses nothing that matters (x σ(1 - σ) is tiny beside σ where σ ≈ 1).
  return madd(x, f32x4.mul(sig, f32x4.sub(f32x4.splat(1), sig)), sig);
}

// Exact gelu' = Φ(x) + x φ(x), Φ(x) = (1 + erf(x/√2)) / 2 as the forward computes it, and
// φ(x) = exp(-x²/2) / √(2π) from the same Gaussian factor.
const INV_SQRT_2PI: f32 = 0.3989422804;

// @ts-ignore: decorator
@inline function geluExactGrad4(x: v128): v128 {
  const gauss = gaussHalf(x);
  return madd(f32x4.mul(x, gauss), f32x4.splat(INV_SQRT_2PI), f32x4.mul(onePlusErfHalf(x, gauss), f32x4.splat(0.5)));
}

// ---- elementwise drivers ----------------------------------------------------------

// @ts-ignore: decorator
@inline function loadTail(src: usize, count: usize): v128 {
  v128.store(lanes, f32x4.splat(0));
  for (let i: usize = 0; i < count; i++) store<f32>(lanes + (i << 2), load<f32>(src + (i << 2)));
  return v128.load(lanes);
}

// @ts-ignore: decorator
@inline function storeTail(dst: usize, count: usize, v: v128): void {
  v128.store(lanes, v);
  for (let i: usize = 0; i < count; i++) store<f32>(dst + (i << 2), load<f32>(lanes + (i << 2)));
}

/** pre, gPost: [n] -> gPre: [n] = gPost · gelu_new'(pre). gPre may alias either. */
export function geluNewGrad(pre: usize, gPost: usize, gPre: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(gPre + i, f32x4.mul(v128.load(gPost + i), geluNewGrad4(v128.load(pre + i))));
  if (i < end) {
    const c = (end - i) >> 2;
    storeTail(gPre + i, c, f32x4.mul(loadTail(gPost + i, c), geluNewGrad4(loadTail(pre + i, c))));
  }
}

/** pre, gPost: [n] -> gPre: [n] = gPost · gelu'(pre) (exact erf gelu). gPre may alias either. */
export function geluExactGrad(pre: usize, gPost: usize, gPre: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(gPre + i, f32x4.mul(v128.load(gPost + i), geluExactGrad4(v128.load(pre + i))));
  if (i < end) {
    const c = (end - i) >> 2;
    storeTail(gPre + i, c, f32x4.mul(loadTail(gPost + i, c), geluExactGrad4(loadTail(pre + i, c))));
  }
}

/** pre, gPost: [n] -> gPre: [n] = gPost · silu'(pre). gPre may alias either. */
export function siluGrad(pre: usize, gPost: usize, gPre: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) {
    const x = v128.load(pre + i);
    v128.store(gPre + i, f32x4.mul(v128.load(gPost + i), siluGradFromSigmoid(x, sigmoid4(x))));
  }
  if (i < end) {
    const c = (end - i) >> 2;
    const x = loadTail(pre + i, c);
    storeTail(gPre + i, c, f32x4.mul(loadTail(gPost + i, c), siluGradFromSigmoid(x, sigmoid4(x))));
  }
}

/** post = silu(gate) · up: gGate = gPost · up · silu'(gate), gUp = gPost · silu(gate); n elements. */
export function swigluGrad(gate: usize, up: usize, gPost: usize, gGate: usize, gUp: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) {
    const x = v128.load(gate + i);
    const g = v128.load(gPost + i);
    const sig = sigmoid4(x);
    v128.store(gGate + i, f32x4.mul(f32x4.mul(g, v128.load(up + i)), siluGradFromSigmoid(x, sig)));
    v128.store(gUp + i, f32x4.mul(g, f32x4.mul(x, sig)));
  }
  if (i < end) {
    const c = (end - i) >> 2;
    const x = loadTail(gate + i, c);
    const g = loadTail(gPost + i, c);
    const sig = sigmoid4(x);
    const gg = f32x4.mul(f32x4.mul(g, loadTail(up + i, c)), siluGradFromSigmoid(x, sig));
    storeTail(gUp + i, c, f32x4.mul(g, f32x4.mul(x, sig)));
    storeTail(gGate + i, c, gg);
  }
}

/**
 * post = gelu_new(gate) · up (Gemma's GeGLU): gGate = gPost · up · gelu_new'(gate), gUp = gPost ·
 * gelu_new(gate); n elements. gelu_new(x) = x σ(2u), its derivative as geluNewGrad's.
 */
export function gegluGrad(gate: usize, up: usize, gPost: usize, gGate: usize, gUp: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i < end; i += 16) {
    const c = min<usize>(4, (end - i) >> 2);
    const x = c == 4 ? v128.load(gate + i) : loadTail(gate + i, c);
    const g = c == 4 ? v128.load(gPost + i) : loadTail(gPost + i, c);
    const u4 = c == 4 ? v128.load(up + i) : loadTail(up + i, c);
    const one = f32x4.splat(1);
    const x2 = f32x4.mul(x, x);
    const u = f32x4.mul(x, madd(x2, f32x4.splat(GELU_CUBIC), f32x4.splat(SQRT_2_OVER_PI)));
    const du = madd(x2, f32x4.splat(3 * GELU_CUBIC), f32x4.splat(SQRT_2_OVER_PI));
    const e = expNeg(f32x4.mul(negAbs(u), f32x4.splat(2)));
    const inv = f32x4.div(one, f32x4.add(one, e));
    const sig = v128.bitselect(f32x4.mul(e, inv), inv, f32x4.lt(u, f32x4.splat(0)));
    const slope = madd(f32x4.mul(f32x4.add(x, x), du), f32x4.mul(e, f32x4.mul(inv, inv)), sig);
    const gg = f32x4.mul(f32x4.mul(g, u4), slope);
    const gu = f32x4.mul(g, f32x4.mul(x, sig));
    if (c == 4) {
      v128.store(gGate + i, gg);
      v128.store(gUp + i, gu);
    } else {
      storeTail(gUp + i, c, gu);
      storeTail(gGate + i, c, gg);
    }
  }
}

// ---- softmax ----------------------------------------------------------------------

/** pattern, gPattern: [rows, n] -> gScores: [rows, n] = pattern · (gPattern - Σ_j pattern · gPattern). */
export function softmaxGrad(pattern: usize, gPattern: usize, gScores: usize, rows: i32, n: i32): void {
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    const p = pattern + off;
    const g = gPattern + off;
    const out = gScores + off;
    const dot = <f32>rowReduce(p, g, n, DOT, 0);
    const dv = f32x4.splat(dot);
    let i: usize = 0;
    for (; i + 16 <= rowBytes; i += 16) v128.store(out + i, f32x4.mul(v128.load(p + i), f32x4.sub(v128.load(g + i), dv)));
    for (; i < rowBytes; i += 4) store<f32>(out + i, load<f32>(p + i) * (load<f32>(g + i) - dot));
  }
}
