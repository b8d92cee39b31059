// Plain TypeScript twins of assembly/gemm.ts: the reference the WASM kernels are
// tested against. Sums accumulate in f64 (JS numbers) and round to f32 once on
// store, so the twin is at least as accurate as any blocked f32 kernel.

/**
 * C = A·op(B) + bias, or C += A·op(B) + bias when `accumulate` is 1.
 * a: [m, k] (lda) ; b: [k, n] (ldb) when transB = 0, [n, k] (ldb) when transB = 1
 * c: [m, n] (ldc) ; bias: [n] or 0
 */
export function gemm(heap: Float32Array, a: number, lda: number, b: number, ldb: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, transB: number, accumulate: number): void {
  const A = a >>> 2;
  const B = b >>> 2;
  const C = c >>> 2;
  const bi = bias >>> 2;
  // One f64 row of the product; i-p-j order walks B row by row when transB = 0.
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    const ai = A + i * lda;
    if (transB === 0) {
      for (let p = 0; p < k; p++) {
        const aip = heap[ai + p]!;
        const bp = B + p * ldb;
        for (let j = 0; j < n; j++) row[j]! += aip * heap[bp + j]!;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const bj = B + j * ldb;
        let s = 0;
        for (let p = 0; p < k; p++) s += heap[ai + p]! * heap[bj + p]!;
        row[j] = s;
      }
    }
    const ci = C + i * ldc;
    for (let j = 0; j < n; j++) {
      let s = row[j]!;
      if (bias !== 0) s += heap[bi + j]!;
      if (accumulate !== 0) s += heap[ci + j]!;
      heap[ci + j] = s;
    }
  }
}

/**
 * `batch` independent gemms; operand i starts at a + i*strideA (likewise b, c),
 * strides in elements. No bias.
 */
export function gemmBatched(heap: Float32Array, batch: number, a: number, strideA: number, lda: number,
  b: number, strideB: number, ldb: number, c: number, strideC: number, ldc: number,
  m: number, n: number, k: number, transB: number, accumulate: number): void {
  for (let i = 0; i < batch; i++) {
    gemm(heap, (a >>> 0) + i * strideA * 4, lda, (b >>> 0) + i * strideB * 4, ldb, (c >>> 0) + i * strideC * 4, ldc,
      0, m, n, k, transB, accumulate);
  }
}
