// Shape arithmetic shared by the Tensor helpers: validation, dims, strides, broadcasting.
// Everything here works on plain shapes and Float32Arrays so the helpers never import Tensor.

/** `[2, 3]` — the form every error message uses. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Product of the sizes; throws (naming `op`) on a size that is not an integer >= 0. */
export function shapeSize(op: string, shape: readonly number[]): number {
  let size = 1;
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`${op}: shape ${fmtShape(shape)} has an invalid size ${n} at dim ${d} (expected an integer >= 0)`);
    }
    size *= n;
  }
  return size;
}

/** Resolves a possibly negative dim of a tensor with `ndim` dims (`extra` = 1 for insert positions). */
export function normDim(op: string, dim: number, shape: readonly number[], extra = 0): number {
  const n = shape.length + extra;
  if (!Number.isInteger(dim) || dim < -n || dim >= n) {
    const range = n === 0 ? "it has no dims" : `valid dims are ${-n}..${n - 1}`;
    throw new Error(`${op}: dim ${dim} is out of range for shape ${fmtShape(shape)}: ${range}`);
  }
  return dim < 0 ? dim + n : dim;
}

/** Resolves a list of dims; throws on a repeated dim. */
export function normDims(op: string, dims: readonly number[], shape: readonly number[]): number[] {
  const out = dims.map((d) => normDim(op, d, shape));
  const seen = new Set<number>();
  for (let i = 0; i < out.length; i++) {
    if (seen.has(out[i]!)) throw new Error(`${op}: dim ${dims[i]} is repeated in [${dims.join(", ")}]`);
    seen.add(out[i]!);
  }
  return out;
}

/** Resolves a possibly negative index along `dim`; throws naming the dim, the valid range and the value. */
export function normIndex(op: string, index: number, dim: number, shape: readonly number[]): number {
  const n = shape[dim]!;
  if (!Number.isInteger(index) || index < -n || index >= n) {
    const range = n === 0 ? "the dim is empty" : `valid indices are ${-n}..${n - 1}`;
    throw new Error(`${op}: index ${index} is out of range for dim ${dim} (size ${n}) of shape ${fmtShape(shape)}: ${range}`);
  }
  return index < 0 ? index + n : index;
}

/** Row-major strides in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** NumPy broadcasting of two shapes; throws `op: shapes A and B cannot be broadcast`. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast`);
    }
    out[i] = x === 1 ? y : x;
  }
  return out;
}

/** Strides that read a tensor of `shape` as if it had `outShape` (0 along broadcast dims). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : own[d - lead]!));
}

/** True when both shapes have the same sizes. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/**
 * Copies the strided view (offset, shape, strides) of `src` into a new contiguous array.
 * The one loop behind transpose/permute, slice, select and broadcastTo.
 */
export function gather(src: Float32Array, offset: number, shape: readonly number[], strides: readonly number[]): Float32Array {
  const size = shape.reduce((p, n) => p * n, 1);
  const out = new Float32Array(size);
  if (size === 0) return out;
  const nd = shape.length;
  if (nd === 0) {
    out[0] = src[offset]!;
    return out;
  }
  const inner = shape[nd - 1]!;
  const step = strides[nd - 1]!;
  const idx = new Array<number>(nd - 1).fill(0);
  let off = offset;
  for (let o = 0; o < size; o += inner) {
    for (let j = 0; j < inner; j++) out[o + j] = src[off + j * step]!;
    for (let d = nd - 2; d >= 0; d--) {
      off += strides[d]!;
      if (++idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** The multi-index of a flat row-major offset: `unravelIndex(5, [2, 3])` is `[1, 2]`. */
export function unravelIndex(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    index[i] = flat % shape[i]!;
    flat = Math.floor(flat / shape[i]!);
  }
  return index;
}
