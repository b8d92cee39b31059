// Activation derivatives (the MLP's backward) and softmax's backward.
//
// The exp, sigmoid and erf here are the forward's (activations.ts), copied because that file
// keeps them private: expNeg and the erf / erfc fits, constants and all. Both sigmoid forms
// come from e = exp(-|u|) <= 1, which never overflows, and σ(u)(1 - σ(u)) = e / (1 + e)² on
// either side. Ragged tails go through the scratch vector, so an element gives the same bits
// wherever it sits (threads cut elementwise calls anywhere).
import { madd } from "./simd";
import { lanes } from "./scratch";
import { rowDot } from "./backward-sums";

// ---- exp on four lanes (activations.ts's expNeg) -----------------------------------

const LOG2E: f32 = 1.44269504;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const EXP_MIN: f32 = -87.336;
const EXP_STAND_IN: f32 = -80;
const ROUND_MAGIC: f32 = 12582912;
const E2: f32 = 0.49999991059303284;
const E3: f32 = 0.16666418313980103;
const E4: f32 = 0.041668374091386795;
const E5: f32 = 0.008375010453164577;
const E6: f32 = 0.001382919610477984;

/** exp(x) for x <= 0; anything below EXP_MIN (and -Infinity) gives 0. */
// @ts-ignore: decorator
@inline function expNeg(x: v128): v128 {
  const low = f32x4.lt(x, f32x4.splat(EXP_MIN));
  const xc = v128.bitselect(f32x4.splat(EXP_STAND_IN), x, low);
  const t = f32x4.add(f32x4.mul(xc, f32x4.splat(LOG2E)), f32x4.splat(ROUND_MAGIC));
  const n = f32x4.sub(t, f32x4.splat(ROUND_MAGIC));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = madd(f32x4.splat(E6), r, f32x4.splat(E5));
  p = madd(p, r, f32x4.splat(E4));
  p = madd(p, r, f32x4.splat(E3));
  p = madd(p, r, f32x4.splat(E2));
  p = madd(p, r, f32x4.splat(1));
  p = madd(p, r, f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, pow2), low);
}

// @ts-ignore: decorator
@inline function negAbs(x: v128): v128 {
  return v128.or(x, f32x4.splat(-0.0));
}

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

// Exact gelu' = Φ(x) + x φ(x), Φ(x) = (1 + erf(x/√2)) / 2 as activations.ts's geluExact4 computes
// it, φ(x) = exp(-x²/2) / √(2π) from the same Gaussian factor.
const INV_SQRT2: f32 = 0.70710678;
const INV_SQRT_2PI: f32 = 0.3989422804;
const P0: f32 = 1.1283791065216064;
const P1: f32 = -0.37612318992614746;
const P2: f32 = 0.11280131340026855;
const P3: f32 = -0.026709971949458122;
const P4: f32 = 0.004916048608720303;
const P5: f32 = -0.0005625495687127113;
const G0: f32 = 0.2820947766304016;
const G1: f32 = 0.28209730982780457;
const G2: f32 = 0.2467288374900818;
const G3: f32 = 0.17792107164859772;
const G4: f32 = 0.07167892903089523;
const G5: f32 = 0.04348832368850708;
const G6: f32 = -0.15578819811344147;
const G7: f32 = 0.029321633279323578;
const G8: f32 = 0.023481417447328568;

// @ts-ignore: decorator
@inline function geluExactGrad4(x: v128): v128 {
  const one = f32x4.splat(1);
  const half = f32x4.splat(0.5);
  const y = f32x4.mul(x, f32x4.splat(INV_SQRT2));
  const ay = f32x4.abs(y);
  const s = f32x4.mul(y, y);
  let p = madd(f32x4.splat(P5), s, f32x4.splat(P4));
  p = madd(p, s, f32x4.splat(P3));
  p = madd(p, s, f32x4.splat(P2));
  p = madd(p, s, f32x4.splat(P1));
  p = madd(p, s, f32x4.splat(P0));
  const near = madd(y, p, one); // 1 + erf(y), |y| < 1
  const t = f32x4.div(one, madd(ay, half, one));
  let g = madd(f32x4.splat(G8), t, f32x4.splat(G7));
  g = madd(g, t, f32x4.splat(G6));
  g = madd(g, t, f32x4.splat(G5));
  g = madd(g, t, f32x4.splat(G4));
  g = madd(g, t, f32x4.splat(G3));
  g = madd(g, t, f32x4.splat(G2));
  g = madd(g, t, f32x4.splat(G1));
  g = madd(g, t, f32x4.splat(G0));
  // exp(-x²/2) with x² carried as hi + lo (Dekker's exact square), as the forward does for erfc.
  const xh = v128.and(x, i32x4.splat(0xfffff000));
  const xl = f32x4.sub(x, xh);
  const sq = f32x4.mul(x, x);
  const sqErr = f32x4.add(f32x4.add(f32x4.sub(f32x4.mul(xh, xh), sq), f32x4.mul(f32x4.add(xh, xh), xl)), f32x4.mul(xl, xl));
  const gauss = f32x4.mul(expNeg(f32x4.neg(f32x4.mul(sq, half))), f32x4.sub(one, f32x4.mul(sqErr, half)));
  const erfc = f32x4.mul(f32x4.mul(gauss, t), g);
  const far = v128.bitselect(erfc, f32x4.sub(f32x4.splat(2), erfc), f32x4.lt(y, f32x4.splat(0)));
  const onePlusErf = v128.bitselect(near, far, f32x4.lt(ay, one));
  return madd(f32x4.mul(x, gauss), f32x4.splat(INV_SQRT_2PI), f32x4.mul(onePlusErf, half));
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

// ---- softmax ----------------------------------------------------------------------

/** pattern, gPattern: [rows, n] -> gScores: [rows, n] = pattern · (gPattern - Σ_j pattern · gPattern). */
export function softmaxGrad(pattern: usize, gPattern: usize, gScores: usize, rows: i32, n: i32): void {
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    const p = pattern + off;
    const g = gPattern + off;
    const out = gScores + off;
    const dot = <f32>rowDot(p, g, n);
    const dv = f32x4.splat(dot);
    let i: usize = 0;
    for (; i + 16 <= rowBytes; i += 16) v128.store(out + i, f32x4.mul(v128.load(p + i), f32x4.sub(v128.load(g + i), dv)));
    for (; i < rowBytes; i += 4) store<f32>(out + i, load<f32>(p + i) * (load<f32>(g + i) - dot));
  }
}
