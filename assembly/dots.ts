// Dot products of one vector with four rows at a time, shared by attention's forward (scores)
// and backward (the pattern's gradient). Not exported from the module.
import { madd, hsum } from "./simd";

// [a0, a1, a2, a3] -> [sum(a0), sum(a1), sum(a2), sum(a3)] in four shuffles and three adds
// (four separate horizontal sums would cost twelve lane extracts).
// @ts-ignore: decorator
@inline export function sum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
}

// The dot products of q with four keys: the lanes a0..a3 summed over dHead's vector part, plus
// the scalar products from byte c to dEnd (dHead's last dHead % 4 entries).
// @ts-ignore: decorator
@inline export function groupDots(a0: v128, a1: v128, a2: v128, a3: v128, q: usize, k0: usize, k1: usize, k2: usize, k3: usize,
  c: usize, dEnd: usize): v128 {
  const dots = sum4(a0, a1, a2, a3);
  if (c == dEnd) return dots;
  let s0: f32 = 0;
  let s1: f32 = 0;
  let s2: f32 = 0;
  let s3: f32 = 0;
  for (; c < dEnd; c += 4) {
    const qs = load<f32>(q + c);
    s0 += qs * load<f32>(k0 + c);
    s1 += qs * load<f32>(k1 + c);
    s2 += qs * load<f32>(k2 + c);
    s3 += qs * load<f32>(k3 + c);
  }
  return f32x4.add(dots, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(s0), 1, s1), 2, s2), 3, s3));
}

// q: [dHead], keys k + j*kStride (bytes), j < n -> out: [n] = (q · k_j) * scale; returns max(out)
export function scoreKeys(q: usize, k: usize, kStride: usize, n: i32, dHead: i32, scale: f32, out: usize): f32 {
  const dEnd = <usize>dHead << 2;
  const vEnd = dEnd & ~15;
  const sv = f32x4.splat(scale);
  let mv = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const k0 = k + <usize>j * kStride;
    const k1 = k0 + kStride;
    const k2 = k1 + kStride;
    const k3 = k2 + kStride;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let c: usize = 0;
    for (; c + 32 <= vEnd; c += 32) {
      const qa = v128.load(q + c);
      const qb = v128.load(q + c, 16);
      const p0 = k0 + c;
      const p1 = k1 + c;
      const p2 = k2 + c;
      const p3 = k3 + c;
      a0 = madd(qb, v128.load(p0, 16), madd(qa, v128.load(p0), a0));
      a1 = madd(qb, v128.load(p1, 16), madd(qa, v128.load(p1), a1));
      a2 = madd(qb, v128.load(p2, 16), madd(qa, v128.load(p2), a2));
      a3 = madd(qb, v128.load(p3, 16), madd(qa, v128.load(p3), a3));
    }
    for (; c < vEnd; c += 16) {
      const qv = v128.load(q + c);
      a0 = madd(qv, v128.load(k0 + c), a0);
      a1 = madd(qv, v128.load(k1 + c), a1);
      a2 = madd(qv, v128.load(k2 + c), a2);
      a3 = madd(qv, v128.load(k3 + c), a3);
    }
    const scores = f32x4.mul(groupDots(a0, a1, a2, a3, q, k0, k1, k2, k3, c, dEnd), sv);
    v128.store(out + (<usize>j << 2), scores);
    mv = f32x4.max(mv, scores);
  }
  let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; j < n; j++) {
    const kj = k + <usize>j * kStride;
    let a = f32x4.splat(0);
    let c: usize = 0;
    for (; c < vEnd; c += 16) a = madd(v128.load(q + c), v128.load(kj + c), a);
    let s = hsum(a);
    for (; c < dEnd; c += 4) s += load<f32>(q + c) * load<f32>(kj + c);
    const score = s * scale;
    store<f32>(out + (<usize>j << 2), score);
    m = max(m, score);
  }
  return m;
}
