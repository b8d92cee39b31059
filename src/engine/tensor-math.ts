// Broadcasting elementwise arithmetic and matmul over flat row-major buffers.
import { broadcastShapes, broadcastStrides, fmtShape, sameShape } from "./tensor-shape.js";

/** A flat buffer with its shape: what the helpers return for Tensor to wrap. */
export interface Dense {
  data: Float32Array;
  shape: number[];
}

/** out = f(a, b) elementwise with NumPy broadcasting; `op` names the operation in errors. */
export function binary(
  op: string,
  a: Float32Array, aShape: readonly number[],
  b: Float32Array, bShape: readonly number[],
  f: (x: number, y: number) => number,
): Dense {
  if (sameShape(aShape, bShape)) {
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = f(a[i]!, b[i]!);
    return { data: out, shape: aShape.slice() };
  }
  const shape = broadcastShapes(op, aShape, bShape);
  const size = shape.reduce((p, n) => p * n, 1);
  const out = new Float32Array(size);
  if (size === 0) return { data: out, shape };
  const nd = shape.length;
  const as = broadcastStrides(aShape, shape);
  const bs = broadcastStrides(bShape, shape);
  // Odometer over every dim but the last; the last dim runs as a tight inner loop.
  const inner = shape[nd - 1]!;
  const ai = as[nd - 1]!;
  const bi = bs[nd - 1]!;
  const idx = new Array<number>(nd - 1).fill(0);
  let aOff = 0;
  let bOff = 0;
  for (let o = 0; o < size; o += inner) {
    for (let j = 0; j < inner; j++) out[o + j] = f(a[aOff + j * ai]!, b[bOff + j * bi]!);
    for (let d = nd - 2; d >= 0; d--) {
      aOff += as[d]!;
      bOff += bs[d]!;
      if (++idx[d]! < shape[d]!) break;
      aOff -= as[d]! * shape[d]!;
      bOff -= bs[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return { data: out, shape };
}

/** out = f(a) elementwise. */
export function unary(a: Float32Array, f: (x: number) => number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!);
  return out;
}

/**
 * torch.matmul semantics: 1-D operands are promoted (a vector on the left gains a leading 1,
 * on the right a trailing 1) and the added dim is dropped from the result; leading (batch)
 * dims broadcast. Accumulates in f64.
 */
export function matmul(a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[]): Dense {
  if (aShape.length === 0 || bShape.length === 0) {
    throw new Error(`matmul: shapes ${fmtShape(aShape)} and ${fmtShape(bShape)}: both operands need at least 1 dim`);
  }
  const a2 = aShape.length === 1 ? [1, aShape[0]!] : aShape.slice();
  const b2 = bShape.length === 1 ? [bShape[0]!, 1] : bShape.slice();
  const m = a2[a2.length - 2]!;
  const k = a2[a2.length - 1]!;
  const kb = b2[b2.length - 2]!;
  const n = b2[b2.length - 1]!;
  if (k !== kb) {
    throw new Error(`matmul: shapes ${fmtShape(aShape)} and ${fmtShape(bShape)} are incompatible (inner dims ${k} and ${kb} differ)`);
  }
  const aBatch = a2.slice(0, -2);
  const bBatch = b2.slice(0, -2);
  let batch: number[];
  try {
    batch = broadcastShapes("matmul", aBatch, bBatch);
  } catch {
    throw new Error(`matmul: shapes ${fmtShape(aShape)} and ${fmtShape(bShape)} have batch dims ${fmtShape(aBatch)} and ${fmtShape(bBatch)} that cannot be broadcast`);
  }
  const nBatch = batch.reduce((p, x) => p * x, 1);
  const aStr = broadcastStrides(aBatch, batch);
  const bStr = broadcastStrides(bBatch, batch);
  const out = new Float32Array(nBatch * m * n);
  const acc = new Float64Array(n);
  const idx = new Array<number>(batch.length).fill(0);
  for (let t = 0; t < nBatch; t++) {
    let aOff = 0;
    let bOff = 0;
    for (let d = 0; d < batch.length; d++) {
      aOff += idx[d]! * aStr[d]!;
      bOff += idx[d]! * bStr[d]!;
    }
    aOff *= m * k;
    bOff *= k * n;
    const cOff = t * m * n;
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const x = a[aOff + i * k + p]!;
        const row = bOff + p * n;
        for (let j = 0; j < n; j++) acc[j]! += x * b[row + j]!;
      }
      for (let j = 0; j < n; j++) out[cOff + i * n + j] = acc[j]!;
    }
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++idx[d]! < batch[d]!) break;
      idx[d] = 0;
    }
  }
  const shape = [...batch];
  if (aShape.length > 1) shape.push(m);
  if (bShape.length > 1) shape.push(n);
  return { data: out, shape };
}
