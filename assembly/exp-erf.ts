// exp and erf on four lanes, shared by the activations (activations.ts) and their derivatives
// (backward-activations.ts), so both compute them with the same bits. Not exported from the module.
import { madd } from "./simd";

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
@inline export function expNeg(x: v128): v128 {
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
@inline export function negAbs(x: v128): v128 {
  return v128.or(x, f32x4.splat(-0.0));
}

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

/**
 * exp(-x²/2) with x² carried as hi + lo (Dekker's exact square, plain mul/add on purpose): erfc's
 * relative error grows like 2y² times the argument's, so rounding x² would cost ~1e-5 far out in the tail.
 */
// @ts-ignore: decorator
@inline export function gaussHalf(x: v128): v128 {
  const one = f32x4.splat(1);
  const half = f32x4.splat(0.5);
  const xh = v128.and(x, i32x4.splat(0xfffff000));
  const xl = f32x4.sub(x, xh);
  const sq = f32x4.mul(x, x);
  const sqErr = f32x4.add(f32x4.add(f32x4.sub(f32x4.mul(xh, xh), sq), f32x4.mul(f32x4.add(xh, xh), xl)), f32x4.mul(xl, xl));
  return f32x4.mul(expNeg(f32x4.neg(f32x4.mul(sq, half))), f32x4.sub(one, f32x4.mul(sqErr, half)));
}

/** 1 + erf(x/√2), given gauss = gaussHalf(x): the polynomial near 0, erfc from the Gaussian factor far out. */
// @ts-ignore: decorator
@inline export function onePlusErfHalf(x: v128, gauss: v128): v128 {
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
  const erfc = f32x4.mul(f32x4.mul(gauss, t), g);
  const far = v128.bitselect(erfc, f32x4.sub(f32x4.splat(2), erfc), f32x4.lt(y, f32x4.splat(0)));
  return v128.bitselect(near, far, f32x4.lt(ay, one));
}
