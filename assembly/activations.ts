// Activations and row-wise softmax. WASM has no SIMD exp, so exp is a range-reduced
// polynomial on four lanes (exp-erf.ts), and sigmoid (hence tanh) and erfc are built from it.
//
// Ragged tails go through a 16-byte scratch vector instead of a scalar copy of each
// formula, so an element gives the same bits wherever it sits in a row.
import { expNeg, gaussHalf, negAbs, onePlusErfHalf } from "./exp-erf";
import { madd, hsum, fillRow, scaleRow } from "./simd";
import { lanes } from "./scratch";

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

// @ts-ignore: decorator
@inline function geluExact4(x: v128): v128 {
  return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), onePlusErfHalf(x, gaussHalf(x)));
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

/** out = gelu_new(gate) * up (Gemma's gated MLP, GELU in its tanh form), n elements; out may alias either input. */
export function geglu(gate: usize, up: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.mul(geluNew4(v128.load(gate + i)), v128.load(up + i)));
  if (i < end) {
    const count = (end - i) >> 2;
    const g = geluNew4(loadTail(gate + i, count, 0));
    storeTail(out + i, count, f32x4.mul(g, loadTail(up + i, count, 0)));
  }
}

// ---- soft-capping ---------------------------------------------------------------

// @ts-ignore: decorator
@inline function softcap4(x: v128, cap: f32): v128 {
  // cap · tanh(x / cap) = cap · (1 - e) / (1 + e) · sign(x), e = exp(-2|x| / cap) <= 1: nothing overflows.
  const c = f32x4.splat(cap);
  const e = expNeg(f32x4.div(f32x4.mul(negAbs(x), f32x4.splat(2)), c));
  const one = f32x4.splat(1);
  const mag = f32x4.mul(c, f32x4.div(f32x4.sub(one, e), f32x4.add(one, e)));
  const capped = v128.bitselect(f32x4.neg(mag), mag, f32x4.lt(x, f32x4.splat(0)));
  // -Infinity (a masked score) stays -Infinity: capping comes before the mask.
  return v128.bitselect(x, capped, f32x4.eq(x, f32x4.splat(-Infinity)));
}

/** out = cap · tanh(x / cap) (Gemma-2's attention and final-logit soft-capping), -Infinity kept; out may alias x. */
export function softcap(x: usize, out: usize, n: i32, cap: f32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, softcap4(v128.load(x + i), cap));
  if (i < end) storeTail(out + i, (end - i) >> 2, softcap4(loadTail(x + i, (end - i) >> 2, 0), cap));
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
