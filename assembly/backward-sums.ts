// Row reductions shared by the backward kernels: f32 lanes folded into an f64 every SUM_BLOCK
// bytes (as layernorm.ts sums), so a wide row keeps only one block's worth of f32 rounding.
import { madd, hsum } from "./simd";

const SUM_BLOCK: usize = 1024;

/** a, b: [n] -> Σ a·b; four accumulators so the adds do not wait on each other. */
export function rowDot(a: usize, b: usize, n: i32): f64 {
  const end = <usize>n << 2;
  let total: f64 = 0;
  let i: usize = 0;
  while (i + 64 <= end) {
    const blockEnd = min(end & ~63, i + SUM_BLOCK);
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (; i < blockEnd; i += 64) {
      a0 = madd(v128.load(a + i), v128.load(b + i), a0);
      a1 = madd(v128.load(a + i, 16), v128.load(b + i, 16), a1);
      a2 = madd(v128.load(a + i, 32), v128.load(b + i, 32), a2);
      a3 = madd(v128.load(a + i, 48), v128.load(b + i, 48), a3);
    }
    total += <f64>hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  }
  let tail: f32 = 0;
  for (; i < end; i += 4) tail += load<f32>(a + i) * load<f32>(b + i);
  return total + <f64>tail;
}

/** x: [n] -> Σ x. */
export function rowSum(x: usize, n: i32): f64 {
  const end = <usize>n << 2;
  let total: f64 = 0;
  let i: usize = 0;
  while (i + 64 <= end) {
    const blockEnd = min(end & ~63, i + SUM_BLOCK);
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (; i < blockEnd; i += 64) {
      a0 = f32x4.add(a0, v128.load(x + i));
      a1 = f32x4.add(a1, v128.load(x + i, 16));
      a2 = f32x4.add(a2, v128.load(x + i, 32));
      a3 = f32x4.add(a3, v128.load(x + i, 48));
    }
    total += <f64>hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  }
  let tail: f32 = 0;
  for (; i < end; i += 4) tail += load<f32>(x + i);
  return total + <f64>tail;
}
