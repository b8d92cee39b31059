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

