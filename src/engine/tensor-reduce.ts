// Reductions, softmax and topk over flat row-major buffers. Accumulation is in f64.
import type { Dense } from "./tensor-math.js";
import { fmtShape, gather, normDim, normDims, stridesOf } from "./tensor-shape.js";

/** Reduces one row of `len` elements starting at `off`. */
type RowReducer = (buf: Float32Array, off: number, len: number) => number;

/**
 * Reduces `dims` (all dims when undefined) with `f`. The reduced dims are moved last so
 * each output element reduces one contiguous row.
 */
export function reduceDims(
  op: string, data: Float32Array, shape: readonly number[],
  dim: number | readonly number[] | undefined, keepdim: boolean, f: RowReducer,
): Dense {
  const dims = dim === undefined ? shape.map((_, d) => d) : normDims(op, typeof dim === "number" ? [dim] : dim, shape);
  const reduced = new Set(dims);
  const kept = shape.map((_, d) => d).filter((d) => !reduced.has(d));
  const order = [...kept, ...[...reduced].sort((x, y) => x - y)];
  const len = dims.reduce((p, d) => p * shape[d]!, 1);
  const rows = kept.reduce((p, d) => p * shape[d]!, 1);
  let buf = data;
  if (order.some((d, i) => d !== i)) {
    const strides = stridesOf(shape);
    buf = gather(data, 0, order.map((d) => shape[d]!), order.map((d) => strides[d]!));
  }
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = f(buf, r * len, len);
  const outShape = keepdim ? shape.map((n, d) => (reduced.has(d) ? 1 : n)) : kept.map((d) => shape[d]!);
  return { data: out, shape: outShape };
}

export const sumRow: RowReducer = (buf, off, len) => {
  let s = 0;
  for (let i = off; i < off + len; i++) s += buf[i]!;
  return s;
};

export const meanRow: RowReducer = (buf, off, len) => sumRow(buf, off, len) / len;

/** max (sign 1) or min (sign -1) of a row; NaN propagates; an empty row throws. */
export function extremeRow(op: string, shape: readonly number[], sign: 1 | -1): RowReducer {
  return (buf, off, len) => {
    if (len === 0) throw new Error(`${op}: cannot reduce over zero elements (shape ${fmtShape(shape)})`);
    let best = buf[off]!;
    for (let i = off; i < off + len; i++) {
      const x = buf[i]!;
      if (Number.isNaN(x)) return NaN;
      if (sign * (x - best) > 0) best = x;
    }
    return best;
  };
}

/** The p-norm of a row: p = Infinity is max |x|, p = 0 counts non-zeros. */
export function normRow(p: number): RowReducer {
  if (!(p >= 0)) throw new Error(`norm: p must be >= 0 or Infinity, got ${p}`);
  return (buf, off, len) => {
    let s = 0;
    for (let i = off; i < off + len; i++) {
      const x = Math.abs(buf[i]!);
      if (p === Infinity) s = Number.isNaN(x) || x > s ? x : s;
      else if (p === 0) s += x !== 0 ? 1 : 0;
      else if (p === 1) s += x;
      else if (p === 2) s += x * x;
      else s += x ** p;
    }
    return p === Infinity || p === 0 || p === 1 ? s : p === 2 ? Math.sqrt(s) : s ** (1 / p);
  };
}

/** Layout of one dim: `outer` lanes before it, `n` along it, `inner` after it (its stride). */
function lanes(shape: readonly number[], dim: number): { outer: number; n: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < dim; d++) outer *= shape[d]!;
  for (let d = dim + 1; d < shape.length; d++) inner *= shape[d]!;
  return { outer, n: shape[dim]!, inner };
}

/**
 * Index of the max (sign 1) or min (sign -1) along `dim`, or of the flattened tensor when
 * `dim` is undefined. Ties go to the lowest index; a NaN counts as the extreme (first NaN wins).
 */
export function argExtreme(
  op: string, data: Float32Array, shape: readonly number[], dim: number | undefined, keepdim: boolean, sign: 1 | -1,
): Dense {
  const flat = dim === undefined;
  const d = flat ? 0 : normDim(op, dim, shape);
  const { outer, n, inner } = flat ? { outer: 1, n: data.length, inner: 1 } : lanes(shape, d);
  if (n === 0) throw new Error(`${op}: cannot reduce over zero elements (shape ${fmtShape(shape)})`);
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = data[base]!;
      let at = 0;
      if (!Number.isNaN(best)) {
        for (let j = 1; j < n; j++) {
          const x = data[base + j * inner]!;
          if (Number.isNaN(x)) { at = j; break; }
          if (sign * (x - best) > 0) { best = x; at = j; }
        }
      }
      out[o * inner + i] = at;
    }
  }
  let outShape: number[];
  if (flat) outShape = keepdim ? shape.map(() => 1) : [];
  else outShape = keepdim ? shape.map((s, k) => (k === d ? 1 : s)) : shape.filter((_, k) => k !== d);
  return { data: out, shape: outShape };
}

/** Numerically stable softmax (or log-softmax) along `dim`: subtracts the lane max first. */
export function softmax(op: string, data: Float32Array, shape: readonly number[], dim: number, log: boolean): Dense {
  const d = normDim(op, dim, shape);
  const { outer, n, inner } = lanes(shape, d);
  const out = new Float32Array(data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let max = -Infinity;
      for (let j = 0; j < n; j++) max = Math.max(max, data[base + j * inner]!);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(data[base + j * inner]! - max);
      const logSum = Math.log(sum);
      for (let j = 0; j < n; j++) {
        const z = data[base + j * inner]! - max;
        out[base + j * inner] = log ? z - logSum : Math.exp(z) / sum;
      }
    }
  }
  return { data: out, shape: shape.slice() };
}

/** Up to this k, topk keeps a sorted buffer of k entries instead of sorting each lane. */
const SMALL_K = 64;

/**
 * The k largest (or smallest) entries along `dim`, sorted best first; ties keep the lower
 * index first, and NaN counts as larger than every number (as in torch). Indices are returned flat,
 * row-major in the values' shape.
 */
export function topk(
  data: Float32Array, shape: readonly number[], k: number, dim: number, largest: boolean,
): { values: Dense; indices: number[] } {
  const d = normDim("topk", dim, shape);
  const { outer, n, inner } = lanes(shape, d);
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new Error(`topk: k must be an integer in 0..${n} (the size of dim ${d} of shape ${fmtShape(shape)}), got ${k}`);
  }
  const sign = largest ? 1 : -1;
  // Negative when a ranks before b; NaN ranks as the largest value.
  const before = (a: number, b: number): number => {
    const an = Number.isNaN(a);
    if (an || Number.isNaN(b)) return an === Number.isNaN(b) ? 0 : an ? -sign : sign;
    return a === b ? 0 : a > b ? -sign : sign;
  };
  const outShape = shape.map((s, j) => (j === d ? k : s));
  const values = new Float32Array(outer * k * inner);
  const indices = new Array<number>(outer * k * inner);
  const order = new Array<number>(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      const at = (j: number): number => data[base + j * inner]!;
      if (k <= SMALL_K) {
        // Keep the best k seen so far, best first; a newcomer goes after every entry it does not
        // strictly beat, so equal values stay in index order. Most entries fail the first test.
        let filled = 0;
        for (let j = 0; j < n; j++) {
          const x = at(j);
          if (filled === k && (k === 0 || before(x, at(order[k - 1]!)) >= 0)) continue;
          let slot = filled < k ? filled++ : k - 1;
          while (slot > 0 && before(x, at(order[slot - 1]!)) < 0) {
            order[slot] = order[slot - 1]!;
            slot--;
          }
          order[slot] = j;
        }
      } else {
        for (let j = 0; j < n; j++) order[j] = j;
        // Array.prototype.sort is stable, so equal ranks keep ascending index order.
        order.sort((x, y) => before(at(x), at(y)));
      }
      for (let j = 0; j < k; j++) {
        const dst = o * k * inner + j * inner + i;
        values[dst] = at(order[j]!);
        indices[dst] = order[j]!;
      }
    }
  }
  return { values: { data: values, shape: outShape }, indices };
}
