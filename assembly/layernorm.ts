// LayerNorm / RMSNorm over the last dim, writing TransformerLens's hook_scale per row.
// The statistics are two-pass (mean, then mean of squared deviations) so a large
// common offset in a row does not cancel away the variance.
import { rowReduce, SQUARED_DEVIATION, SUM } from "./row-sums";
import { madd } from "./simd";

// x: [d] -> out: [d] = (x - mean) * inv * w + b, with w = 1 / b = 0 where absent.
// Four loops rather than per-element checks, since this is the whole cost of a layernorm.
function normalizeRow(x: usize, out: usize, w: usize, b: usize, d: i32, mean: f32, inv: f32): void {
  const end = <usize>d << 2;
  const mv = f32x4.splat(mean);
  const iv = f32x4.splat(inv);
  let i: usize = 0;
  if (w != 0 && b != 0) {
    for (; i + 16 <= end; i += 16) {
      const y = f32x4.mul(f32x4.sub(v128.load(x + i), mv), iv);
      v128.store(out + i, madd(y, v128.load(w + i), v128.load(b + i)));
    }
    for (; i < end; i += 4) store<f32>(out + i, (load<f32>(x + i) - mean) * inv * load<f32>(w + i) + load<f32>(b + i));
  } else if (w != 0) {
    for (; i + 16 <= end; i += 16) {
      v128.store(out + i, f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + i), mv), iv), v128.load(w + i)));
    }
    for (; i < end; i += 4) store<f32>(out + i, (load<f32>(x + i) - mean) * inv * load<f32>(w + i));
  } else if (b != 0) {
    for (; i + 16 <= end; i += 16) {
      v128.store(out + i, f32x4.add(f32x4.mul(f32x4.sub(v128.load(x + i), mv), iv), v128.load(b + i)));
    }
    for (; i < end; i += 4) store<f32>(out + i, (load<f32>(x + i) - mean) * inv + load<f32>(b + i));
  } else {
    for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.mul(f32x4.sub(v128.load(x + i), mv), iv));
    for (; i < end; i += 4) store<f32>(out + i, (load<f32>(x + i) - mean) * inv);
  }
}

// x: [d] (one row) -> out: [d], scale[row] (skipped when scale is 0)
// @ts-ignore: decorator
@inline function layerNormRow(x: usize, out: usize, scalePtr: usize, w: usize, b: usize, d: i32, eps: f32): void {
  const mean = <f32>(rowReduce(x, 0, d, SUM, 0) / <f64>d);
  const variance = rowReduce(x, 0, d, SQUARED_DEVIATION, mean) / <f64>d;
  const s = Math.sqrt(variance + <f64>eps);
  if (scalePtr != 0) store<f32>(scalePtr, <f32>s);
  normalizeRow(x, out, w, b, d, mean, <f32>(1 / s));
}

/**
 * x: [rows, d] -> out: [rows, d], scale: [rows] = sqrt(var + eps) (biased variance);
 * out = (x - mean) / scale * w + b, w and b each optional (0). out may alias x.
 */
export function layerNorm(x: usize, out: usize, scale: usize, w: usize, b: usize, rows: i32, d: i32, eps: f32): void {
  const rowBytes = <usize>d << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    layerNormRow(x + off, out + off, scale == 0 ? <usize>0 : scale + (<usize>r << 2), w, b, d, eps);
  }
}

// x: [d] (one row) -> out: [d] = x / sqrt(mean(x²) + eps) * w, scale[row] (skipped when scale is 0)
// @ts-ignore: decorator
@inline function rmsNormRow(x: usize, out: usize, scalePtr: usize, w: usize, d: i32, eps: f32): void {
  const s = Math.sqrt(rowReduce(x, 0, d, SQUARED_DEVIATION, 0) / <f64>d + <f64>eps);
  if (scalePtr != 0) store<f32>(scalePtr, <f32>s);
  normalizeRow(x, out, w, 0, d, 0, <f32>(1 / s));
}

/** x: [rows, d] -> out: [rows, d], scale: [rows] = sqrt(mean(x²) + eps); out = x / scale * w (w optional). out may alias x. */
export function rmsNorm(x: usize, out: usize, scale: usize, w: usize, rows: i32, d: i32, eps: f32): void {
  const rowBytes = <usize>d << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    rmsNormRow(x + off, out + off, scale == 0 ? <usize>0 : scale + (<usize>r << 2), w, d, eps);
  }
}

// resid = a + r over one row of `bytes` (the same sums as the add kernel)
// @ts-ignore: decorator
@inline function addResidualRow(a: usize, r: usize, resid: usize, bytes: usize): void {
  let i: usize = 0;
  for (; i + 16 <= bytes; i += 16) v128.store(resid + i, f32x4.add(v128.load(a + i), v128.load(r + i)));
  for (; i < bytes; i += 4) store<f32>(resid + i, load<f32>(a + i) + load<f32>(r + i));
}

/**
 * a, r: [rows, d] -> resid: [rows, d] = a + r, then out, scale = layerNorm(resid).
 * resid may alias a or r, and out may alias any of them.
 */
export function addLayerNorm(a: usize, r: usize, resid: usize, out: usize, scale: usize, w: usize, b: usize,
  rows: i32, d: i32, eps: f32): void {
  const rowBytes = <usize>d << 2;
  for (let row = 0; row < rows; row++) {
    const off = <usize>row * rowBytes;
    addResidualRow(a + off, r + off, resid + off, rowBytes);
    layerNormRow(resid + off, out + off, scale == 0 ? <usize>0 : scale + (<usize>row << 2), w, b, d, eps);
  }
}

/**
 * a, r: [rows, d] -> resid: [rows, d] = a + r, then out, scale = rmsNorm(resid).
 * resid may alias a or r, and out may alias any of them.
 */
export function addRmsNorm(a: usize, r: usize, resid: usize, out: usize, scale: usize, w: usize,
  rows: i32, d: i32, eps: f32): void {
  const rowBytes = <usize>d << 2;
  for (let row = 0; row < rows; row++) {
    const off = <usize>row * rowBytes;
    addResidualRow(a + off, r + off, resid + off, rowBytes);
    rmsNormRow(resid + off, out + off, scale == 0 ? <usize>0 : scale + (<usize>row << 2), w, d, eps);
  }
}
