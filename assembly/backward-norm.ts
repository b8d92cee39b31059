// The backward of LayerNorm / RMSNorm between their two hook points (TransformerLens's hook_scale
// is not detached, so its gradient is its own step).
//   gNorm, norm (the output before the weight, hook_normalized), gx: [rows, d]; scale, gScale: [rows]
import { madd } from "./simd";
import { DOT, rowReduce, SUM } from "./row-sums";

/** gScale: [rows] = -(gNorm · norm) / scale per row (normalized = x̂ / scale). */
export function normScaleGrad(gNorm: usize, norm: usize, scale: usize, gScale: usize, rows: i32, d: i32): void {
  const rowBytes = <usize>d << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    const s = <f64>load<f32>(scale + (<usize>r << 2));
    store<f32>(gScale + (<usize>r << 2), <f32>(-rowReduce(gNorm + off, norm + off, d, DOT, 0) / s));
  }
}

/**
 * gx: [rows, d] += g - mean(g) (LayerNorm, centred = 1) or g (RMSNorm), where
 * g = gNorm / scale + gScale · norm / d: scale = sqrt(mean(x̂²) + eps) gives dscale/dx̂ = norm / d.
 * g is recomputed in the second pass rather than stored; its row sum is a · Σ gNorm + b · Σ norm.
 */
export function normInputGrad(gNorm: usize, norm: usize, scale: usize, gScale: usize, gx: usize,
  rows: i32, d: i32, centred: i32): void {
  const rowBytes = <usize>d << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    const gn = gNorm + off;
    const nr = norm + off;
    const out = gx + off;
    const a = <f64>1 / <f64>load<f32>(scale + (<usize>r << 2));
    const b = <f64>load<f32>(gScale + (<usize>r << 2)) / <f64>d;
    const mean: f32 = centred != 0 ? <f32>((a * rowReduce(gn, 0, d, SUM, 0) + b * rowReduce(nr, 0, d, SUM, 0)) / <f64>d) : 0;
    const af = <f32>a;
    const bf = <f32>b;
    const av = f32x4.splat(af);
    const bv = f32x4.splat(bf);
    const mv = f32x4.splat(mean);
    let i: usize = 0;
    for (; i + 16 <= rowBytes; i += 16) {
      const g = madd(v128.load(nr + i), bv, f32x4.mul(v128.load(gn + i), av));
      v128.store(out + i, f32x4.add(v128.load(out + i), f32x4.sub(g, mv)));
    }
    for (; i < rowBytes; i += 4) {
      const g = load<f32>(nr + i) * bf + load<f32>(gn + i) * af;
      store<f32>(out + i, load<f32>(out + i) + (g - mean));
    }
  }
}
