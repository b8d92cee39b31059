// Activations and row-wise softmax. WASM has no SIMD exp, so exp is a range-reduced
// polynomial on four lanes, and sigmoid (hence tanh) and erfc are built from it.
//
// Ragged tails go through a 16-byte scratch vector instead of a scalar copy of each
// formula, so an element gives the same bits wherever it sits in a row.
import { madd, hsum, fillRow, scaleRow } from "./simd";
import { lanes } from "./scratch";

// ---- exp on four lanes ----------------------------------------------------------

const LOG2E: f32 = 1.44269504;
// ln 2 split so that n * LN2_HI is exact for |n| <= 126 (LN2_HI has 9 significant bits).
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
// Just above ln(2^-126): from here up 2^n · p(r) is a normal number. Anything below is
// returned as 0, after being computed from a harmless stand-in, because a denormal product
// costs ~100 cycles on x86 and softmax rows are half -Infinity under a causal mask.
const EXP_MIN: f32 = -87.336;
const EXP_STAND_IN: f32 = -80;
const ROUND_MAGIC: f32 = 12582912;
// Degree-6 least-squares fit of exp on [-ln2/2, ln2/2] (max relative error ~1e-7 in f32).
const E2: f32 = 0.49999991059303284;
const E3: f32 = 0.16666418313980103;
const E4: f32 = 0.041668374091386795;
const E5: f32 = 0.008375010453164577;
const E6: f32 = 0.001382919610477984;

/**
 * exp(x) for x <= 0 (every caller shifts its argument there): -Infinity and anything
 * below EXP_MIN give 0, NaN stays NaN. x = n ln2 + r, exp(x) = 2^n · p(r).
 */
// @ts-ignore: decorator
@inline function expNeg(x: v128): v128 {
  const low = f32x4.lt(x, f32x4.splat(EXP_MIN));
  const xc = v128.bitselect(f32x4.splat(EXP_STAND_IN), x, low);
  // Adding 1.5·2^23 rounds x·log2e to an integer n and leaves n in the low mantissa bits.
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
  // 2^n built in the exponent field from t's low bits (the shift drops the magic's own
  // bits); n >= -126 for every lane kept, so it is a normal number.
  const pow2 = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, pow2), low);
}

// @ts-ignore: decorator
@inline function negAbs(x: v128): v128 {
  return v128.or(x, f32x4.splat(-0.0));
}

// ---- gelu_new (GPT-2) -----------------------------------------------------------

const SQRT_2_OVER_PI: f32 = 0.7978845608;
const GELU_CUBIC: f32 = 0.7978845608 * 0.044715;

// @ts-ignore: decorator
@inline function geluNew4(x: v128): v128 {
  // 0.5 x (1 + tanh(u)) = x · sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x³); in the sigmoid
  // form nothing cancels on the negative side: sigmoid(2u) = 1 / (1 + e) for u >= 0 and
  // e / (1 + e) for u < 0, e = exp(-2|u|) <= 1.
  const u = f32x4.mul(x, madd(f32x4.mul(x, x), f32x4.splat(GELU_CUBIC), f32x4.splat(SQRT_2_OVER_PI)));
  const one = f32x4.splat(1);
  const e = expNeg(f32x4.mul(negAbs(u), f32x4.splat(2)));
  const num = v128.bitselect(e, one, f32x4.lt(u, f32x4.splat(0)));
  return f32x4.mul(x, f32x4.div(num, f32x4.add(one, e)));
}

// ---- exact gelu ----------------------------------------------------------------

const INV_SQRT2: f32 = 0.70710678;
// erf(y) = y · P(y²) for |y| < 1: least-squares fit of erf(√s)/√s on s in [0, 1].
const P0: f32 = 1.1283791065216064;
const P1: f32 = -0.37612318992614746;
const P2: f32 = 0.11280131340026855;
const P3: f32 = -0.026709971949458122;
const P4: f32 = 0.004916048608720303;
const P5: f32 = -0.0005625495687127113;
// erfc(y) = exp(-y²) · t · G(t), t = 1 / (1 + y/2) for y >= 1: least-squares fit of
// erfc(y) exp(y²) / t on t in (0, 2/3] (max relative error ~3e-7 in f32 up to y = 12).
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
@inline function geluExact4(x: v128): v128 {
  const one = f32x4.splat(1);
  const y = f32x4.mul(x, f32x4.splat(INV_SQRT2));
  const ay = f32x4.abs(y);
  const s = f32x4.mul(y, y);
  let p = madd(f32x4.splat(P5), s, f32x4.splat(P4));
  p = madd(p, s, f32x4.splat(P3));
  p = madd(p, s, f32x4.splat(P2));
  p = madd(p, s, f32x4.splat(P1));
  p = madd(p, s, f32x4.splat(P0));
  const near = madd(y, p, one); // 1 + erf(y)
  // Far from 0, 1 + erf(y) is erfc(|y|) for y < 0 and 2 - erfc(|y|) for y > 0; using erfc
  // directly keeps the small negative side accurate instead of cancelling 1 - 1.
  const t = f32x4.div(one, madd(ay, f32x4.splat(0.5), one));
  let g = madd(f32x4.splat(G8), t, f32x4.splat(G7));
  g = madd(g, t, f32x4.splat(G6));
  g = madd(g, t, f32x4.splat(G5));
  g = madd(g, t, f32x4.splat(G4));
  g = madd(g, t, f32x4.splat(G3));
  g = madd(g, t, f32x4.splat(G2));
  g = madd(g, t, f32x4.splat(G1));
  g = madd(g, t, f32x4.splat(G0));
  // exp(-y²) with y² = x²/2 carried as hi + lo (Dekker's exact square, plain mul/add on
  // purpose): erfc's relative error grows like 2y² times the argument's, so rounding x²
  // would cost ~1e-5 far out in the tail.
  const xh = v128.and(x, i32x4.splat(0xfffff000));
  const xl = f32x4.sub(x, xh);
  const sq = f32x4.mul(x, x);
  const sqErr = f32x4.add(f32x4.add(f32x4.sub(f32x4.mul(xh, xh), sq), f32x4.mul(f32x4.add(xh, xh), xl)), f32x4.mul(xl, xl));
  const half = f32x4.splat(0.5);
  const gauss = f32x4.mul(expNeg(f32x4.neg(f32x4.mul(sq, half))), f32x4.sub(one, f32x4.mul(sqErr, half)));
  const erfc = f32x4.mul(f32x4.mul(gauss, t), g);
  const far = v128.bitselect(erfc, f32x4.sub(f32x4.splat(2), erfc), f32x4.lt(y, f32x4.splat(0)));
  const onePlusErf = v128.bitselect(near, far, f32x4.lt(ay, one));
  return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), onePlusErf);
}

// ---- silu -----------------------------------------------------------------------

// @ts-ignore: decorator
@inline function silu4(x: v128): v128 {
  // sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, e = exp(-|x|): never overflows.
  const one = f32x4.splat(1);
  const e = expNeg(negAbs(x));
  const num = v128.bitselect(e, one, f32x4.lt(x, f32x4.splat(0)));
  return f32x4.mul(x, f32x4.div(num, f32x4.add(one, e)));
}

// ---- elementwise drivers ----------------------------------------------------------

// @ts-ignore: decorator
@inline function loadTail(src: usize, count: usize, fill: f32): v128 {
  v128.store(lanes, f32x4.splat(fill));
  for (let i: usize = 0; i < count; i++) store<f32>(lanes + (i << 2), load<f32>(src + (i << 2)));
  return v128.load(lanes);
}

// @ts-ignore: decorator
@inline function storeTail(dst: usize, count: usize, v: v128): void {
  v128.store(lanes, v);
  for (let i: usize = 0; i < count; i++) store<f32>(dst + (i << 2), load<f32>(lanes + (i << 2)));
}

/** x: [n] -> out: [n] = gelu_new(x); out may alias x. */
export function geluNew(x: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, geluNew4(v128.load(x + i)));
  if (i < end) storeTail(out + i, (end - i) >> 2, geluNew4(loadTail(x + i, (end - i) >> 2, 0)));
}

/** x: [n] -> out: [n] = 0.5 x (1 + erf(x / √2)); out may alias x. */
export function geluExact(x: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, geluExact4(v128.load(x + i)));
  if (i < end) storeTail(out + i, (end - i) >> 2, geluExact4(loadTail(x + i, (end - i) >> 2, 0)));
}

/** x: [n] -> out: [n] = x · sigmoid(x); out may alias x. */
export function silu(x: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, silu4(v128.load(x + i)));
  if (i < end) storeTail(out + i, (end - i) >> 2, silu4(loadTail(x + i, (end - i) >> 2, 0)));
}

/** out = silu(gate) * up (the SwiGLU MLP of LLaMA-family models), n elements; out may alias either input. */
export function swiglu(gate: usize, up: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.mul(silu4(v128.load(gate + i)), v128.load(up + i)));
  if (i < end) {
    const count = (end - i) >> 2;
    const g = silu4(loadTail(gate + i, count, 0));
    storeTail(out + i, count, f32x4.mul(g, loadTail(up + i, count, 0)));
  }
}

// ---- softmax --------------------------------------------------------------------

// Partial sums are folded into an f64 every SUM_BLOCK bytes, so a 50k-wide row keeps f32
// rounding error to one block's worth.
const SUM_BLOCK: usize = 1024;

// x: [n] -> max over the row (-Infinity for an empty or all -Infinity row)
function rowMax(x: usize, n: i32): f32 {
  const end = <usize>n << 2;
  let m = f32x4.splat(-Infinity);
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) m = f32x4.max(m, v128.load(x + i));
  if (i < end) m = f32x4.max(m, loadTail(x + i, (end - i) >> 2, -Infinity));
  return max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

/**
 * x: [n] -> out: [n] = exp(x - shift), returns the sum of out. Needs x <= shift (shift is
 * the row max); out may alias x. The building block of softmax, shared with the fused
 * attention kernel.
 *
 * Blocks of SUM_BLOCK bytes start at x whatever n is, and a last partial vector joins its
 * block's sum, so entries past n that are -Infinity (the causal part of a softmax row) would
 * add exact zeros: the sum of a row's first n entries is the same bits as the whole row's.
 */
export function expShiftedSum(x: usize, out: usize, n: i32, shift: f32): f32 {
  const end = <usize>n << 2;
  const sv = f32x4.splat(shift);
  let total: f64 = 0;
  let i: usize = 0;
  while (i < end) {
    const blockEnd = min(end, i + SUM_BLOCK);
    let acc = f32x4.splat(0);
    for (; i + 16 <= blockEnd; i += 16) {
      const e = expNeg(f32x4.sub(v128.load(x + i), sv));
      v128.store(out + i, e);
      acc = f32x4.add(acc, e);
    }
    if (i < blockEnd) {
      const count = (blockEnd - i) >> 2;
      const e = expNeg(f32x4.sub(loadTail(x + i, count, -Infinity), sv));
      storeTail(out + i, count, e);
      acc = f32x4.add(acc, e);
      i = blockEnd;
    }
    total += <f64>hsum(acc);
  }
  return <f32>total;
}

/** x: [rows, n] -> out: [rows, n], softmax of each row; -Infinity -> 0, an all -Infinity row -> 0s. out may alias x. */
export function softmax(x: usize, out: usize, rows: i32, n: i32): void {
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * rowBytes;
    const m = rowMax(xr, n);
    if (m == -Infinity) { fillRow(or, n, 0); continue; }
    const sum = expShiftedSum(xr, or, n, m);
    scaleRow(or, n, <f32>1 / sum);
  }
}
