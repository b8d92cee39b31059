// Rotary position embeddings in the Hugging Face rotate_half convention (GPT-NeoX, LLaMA):
// of each head's first `rotated` dimensions (all of them, or GPT-NeoX's partial rotary), dimension i
// is paired with i + rotated/2 and each pair is rotated by its row's angle; the rest pass through.
//   x, out: [rows, nHeads, dHead] (out may alias x); cos, sin: [rows, rotated/2]
import { madd } from "./simd";

/**
 * out[i] = x[i] cos - x[i + h] sin, out[i + h] = x[i + h] cos + x[i] sin, with h = rotated / 2;
 * out[j] = x[j] for j ≥ rotated.
 */
export function rotary(x: usize, out: usize, cos: usize, sin: usize, rows: i32, nHeads: i32, dHead: i32, rotated: i32): void {
  const half = rotated >> 1;
  const halfBytes = <usize>half << 2;
  const vEnd = halfBytes & ~15;
  const headBytes = <usize>dHead << 2;
  for (let r = 0; r < rows; r++) {
    const c = cos + <usize>r * halfBytes;
    const s = sin + <usize>r * halfBytes;
    for (let h = 0; h < nHeads; h++) {
      const off = (<usize>r * <usize>nHeads + <usize>h) * headBytes;
      const xa = x + off;
      const oa = out + off;
      let i: usize = 0;
      for (; i < vEnd; i += 16) {
        const x1 = v128.load(xa + i);
        const x2 = v128.load(xa + halfBytes + i);
        const cv = v128.load(c + i);
        const sv = v128.load(s + i);
        // Both halves are read before either is written, so out may alias x.
        const o1 = f32x4.sub(f32x4.mul(x1, cv), f32x4.mul(x2, sv));
        const o2 = madd(x1, sv, f32x4.mul(x2, cv));
        v128.store(oa + i, o1);
        v128.store(oa + halfBytes + i, o2);
      }
      for (; i < halfBytes; i += 4) {
        const x1 = load<f32>(xa + i);
        const x2 = load<f32>(xa + halfBytes + i);
        const cv = load<f32>(c + i);
        const sv = load<f32>(s + i);
        store<f32>(oa + i, x1 * cv - x2 * sv);
        store<f32>(oa + halfBytes + i, x2 * cv + x1 * sv);
      }
      if (out != x) memory.copy(oa + (halfBytes << 1), xa + (halfBytes << 1), headBytes - (halfBytes << 1));
    }
  }
}
