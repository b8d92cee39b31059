// Elementwise kernels over flat f32 buffers. Every output may alias an input: each
// element is read before it is written, at the same index.

/** a, b: [n] -> out: [n] = a + b */
export function add(a: usize, b: usize, out: usize, n: i32): void {
  const end = <usize>n << 2;
  let i: usize = 0;
  for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.add(v128.load(a + i), v128.load(b + i)));
  for (; i < end; i += 4) store<f32>(out + i, load<f32>(a + i) + load<f32>(b + i));
}

/** x: [rows, n], row: [n] -> out: [rows, n] = x + row (broadcast over rows) */
export function addRow(x: usize, row: usize, out: usize, rows: i32, n: i32): void {
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowBytes;
    add(x + off, row, out + off, n);
  }
}


/** x: [n] -> the index of the first NaN or ±Infinity, or -1 when every element is finite. */
export function firstNonFinite(x: usize, n: i32): i32 {
  const end = <usize>n << 2;
  let i: usize = 0;
  // x - x is 0 for a finite x and NaN otherwise; NaN != NaN marks the lane.
  for (; i + 64 <= end; i += 64) {
    const a = v128.load(x + i);
    const b = v128.load(x + i + 16);
    const c = v128.load(x + i + 32);
    const d = v128.load(x + i + 48);
    const da = f32x4.sub(a, a);
    const db = f32x4.sub(b, b);
    const dc = f32x4.sub(c, c);
    const dd = f32x4.sub(d, d);
    const bad = v128.or(v128.or(f32x4.ne(da, da), f32x4.ne(db, db)), v128.or(f32x4.ne(dc, dc), f32x4.ne(dd, dd)));
    if (v128.any_true(bad)) break;
  }
  for (; i < end; i += 4) {
    const v = load<f32>(x + i);
    if (v - v != 0) return <i32>(i >> 2);
  }
  return -1;
}
