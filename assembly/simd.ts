// Shared SIMD helpers. The same source builds two variants: plain SIMD128 and
// relaxed SIMD; ASC_FEATURE_RELAXED_SIMD is a compile-time constant, so each
// variant contains only one of the two branches.

/** a * b + c on four lanes: one fused op where relaxed SIMD is enabled. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** x: [n] = value */
// @ts-ignore: decorator
@inline export function fillRow(x: usize, n: i32, value: f32): void {
  const end = <usize>n << 2;
  const vv = f32x4.splat(value);
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(x + i, vv);
  for (; i < end; i += 4) store<f32>(x + i, value);
}

/** x: [n] *= s */
// @ts-ignore: decorator
@inline export function scaleRow(x: usize, n: i32, s: f32): void {
  const end = <usize>n << 2;
  const sv = f32x4.splat(s);
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(x + i, f32x4.mul(v128.load(x + i), sv));
  for (; i < end; i += 4) store<f32>(x + i, load<f32>(x + i) * s);
}
