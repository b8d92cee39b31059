// Row reductions for the norms and their backward: f32 lanes folded into an f64 every SUM_BLOCK
// bytes, so a wide row keeps only one block's worth of f32 rounding. Four accumulators so the adds
// do not wait on each other. Not exported from the module.
import { madd, hsum } from "./simd";

const SUM_BLOCK: usize = 1024;

/** What {@link rowReduce} sums: x, (x - c)², or x · y. */
export const SUM: i32 = 0;
export const SQUARED_DEVIATION: i32 = 1;
export const DOT: i32 = 2;

/**
 * x (and y): [n] -> Σ x, Σ (x - c)² or Σ x · y. `kind` is a constant at every call, so each
 * inlined copy keeps one of the three loops.
 */
// @ts-ignore: decorator
@inline export function rowReduce(x: usize, y: usize, n: i32, kind: i32, c: f32): f64 {
  const end = <usize>n << 2;
  const cv = f32x4.splat(c);
  let total: f64 = 0;
  let i: usize = 0;
  while (i + 64 <= end) {
    const blockEnd = min(end & ~63, i + SUM_BLOCK);
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (; i < blockEnd; i += 64) {
      if (kind == SQUARED_DEVIATION) {
        const d0 = f32x4.sub(v128.load(x + i), cv);
        const d1 = f32x4.sub(v128.load(x + i, 16), cv);
        const d2 = f32x4.sub(v128.load(x + i, 32), cv);
        const d3 = f32x4.sub(v128.load(x + i, 48), cv);
        a0 = madd(d0, d0, a0);
        a1 = madd(d1, d1, a1);
        a2 = madd(d2, d2, a2);
        a3 = madd(d3, d3, a3);
      } else if (kind == DOT) {
        a0 = madd(v128.load(x + i), v128.load(y + i), a0);
        a1 = madd(v128.load(x + i, 16), v128.load(y + i, 16), a1);
        a2 = madd(v128.load(x + i, 32), v128.load(y + i, 32), a2);
        a3 = madd(v128.load(x + i, 48), v128.load(y + i, 48), a3);
      } else {
        a0 = f32x4.add(a0, v128.load(x + i));
        a1 = f32x4.add(a1, v128.load(x + i, 16));
        a2 = f32x4.add(a2, v128.load(x + i, 32));
        a3 = f32x4.add(a3, v128.load(x + i, 48));
      }
    }
    total += <f64>hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  }
  let tail: f32 = 0;
  for (; i < end; i += 4) {
    const v = load<f32>(x + i);
    if (kind == SQUARED_DEVIATION) tail += (v - c) * (v - c);
    else if (kind == DOT) tail += v * load<f32>(y + i);
    else tail += v;
  }
  return total + <f64>tail;
}
