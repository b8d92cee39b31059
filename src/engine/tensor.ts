import { formatTensor } from "./tensor-format.js";
import { binary, matmul, unary, type Dense } from "./tensor-math.js";
import { parseNested, toNested, type Nested } from "./tensor-nested.js";
import {
  argExtreme, extremeRow, meanRow, normRow, reduceDims, softmax, sumRow, topk,
} from "./tensor-reduce.js";
import {
  broadcastShapes, broadcastStrides, fmtShape, gather, normDim, normIndex, sameShape, shapeSize, stridesOf,
} from "./tensor-shape.js";

export type { Nested } from "./tensor-nested.js";

/** Options of the reductions: `keepdim` keeps each reduced dim with size 1 (default false). */
export interface ReduceOptions {
  keepdim?: boolean;
}

/** Options of {@link Tensor.allClose}; the defaults are torch's. */
export interface AllCloseOptions {
  /** Absolute tolerance (default 1e-8). */
  atol?: number;
  /** Relative tolerance, scaled by |other| (default 1e-5). */
  rtol?: number;
  /** Whether NaN equals NaN (default false). */
  equalNan?: boolean;
}

/** What {@link Tensor.topk} returns. */
export interface TopK {
  /** The k best entries along the dim, best first; shape of the input with that dim set to k. */
  values: Tensor;
  /**
   * Their positions along the dim, as plain numbers (ready for a tokenizer), flat and row-major
   * in `values.shape`: for a 2-D input and dim -1, row r's j-th best is `indices[r * k + j]`.
   */
  indices: number[];
}

/**
 * A dense, row-major float32 tensor: a shape plus a Float32Array.
 *
 * The constructor wraps `data` without copying (a hook sees a view of an activation).
 * `reshape`, `flatten`, `squeeze` and `unsqueeze` return tensors that share `data` with
 * their input, like torch views; every other method returns a tensor with its own buffer.
 * Only `set` mutates. Values are float32; arithmetic and reductions compute in f64 and
 * round once on store. Index-valued results (`argmax`, `argmin`) are float32 tensors,
 * exact up to 2^24.
 *
 * @example
 * ```ts
 * const logits = Tensor.from([[1, 2, 3], [3, 2, 1]]);
 * logits.softmax().sum(-1).toArray();        // [1, 1]
 * logits.argmax(-1).toArray();               // [2, 0]
 * ```
 */
export class Tensor {
  /** Row-major elements; `data.length === size`. */
  readonly data: Float32Array;
  /** Dimension sizes, outermost first; `[]` for a 0-d (scalar) tensor. Frozen. */
  readonly shape: readonly number[];
  /** Number of elements: the product of `shape` (1 for a 0-d tensor). */
  readonly size: number;

  /**
   * Wraps `data` (no copy) as a tensor of the given shape.
   * @example new Tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
   */
  constructor(data: Float32Array, shape: readonly number[]) {
    const size = shapeSize("Tensor", shape);
    if (data.length !== size) {
      throw new Error(`Tensor: data has ${data.length} elements but shape ${fmtShape(shape)} needs ${size}`);
    }
    this.data = data;
    this.shape = Object.freeze(shape.slice());
    this.size = size;
  }

  // ---------------------------------------------------------------- construction

  /**
   * A tensor from nested arrays (shape inferred; a bare number gives a 0-d tensor), or from
   * flat values (an array or a typed array) and a shape, which defaults to 1-D for a typed
   * array. Always copies.
   * @example Tensor.from([[1, 2], [3, 4]]).shape   // [2, 2]
   * @example Tensor.from([1, 2, 3, 4], [2, 2])
   * @example Tensor.from(new Float32Array(3)).shape   // [3]
   */
  static from(values: Nested): Tensor;
  static from(values: ArrayLike<number>, shape?: readonly number[]): Tensor;
  static from(values: Nested | ArrayLike<number>, shape?: readonly number[]): Tensor {
    if (shape === undefined && ArrayBuffer.isView(values)) shape = [(values as ArrayLike<number>).length];
    if (shape === undefined) {
      const { data, shape: inferred } = parseNested(values as Nested);
      return new Tensor(data, inferred);
    }
    const size = shapeSize("Tensor.from", shape);
    const flat = values as ArrayLike<number>;
    if (typeof flat !== "object" || flat === null || typeof flat.length !== "number") {
      throw new Error(`Tensor.from: with a shape, values must be a flat array of numbers, got ${typeof values}`);
    }
    if (flat.length !== size) {
      throw new Error(`Tensor.from: ${flat.length} values cannot fill shape ${fmtShape(shape)} (${size} elements)`);
    }
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const v = flat[i];
      if (typeof v !== "number") throw new Error(`Tensor.from: values[${i}] is ${Array.isArray(v) ? "an array" : typeof v}, expected a number (pass nested arrays without a shape)`);
      data[i] = v;
    }
    return new Tensor(data, shape);
  }

  /** A tensor of zeros. @example Tensor.zeros([2, 3]) */
  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize("zeros", shape)), shape);
  }

  /** A tensor of ones. @example Tensor.ones([3]).toArray()   // [1, 1, 1] */
  static ones(shape: readonly number[]): Tensor {
    return Tensor.full(shape, 1);
  }

  /** A tensor filled with `value`. @example Tensor.full([2], -Infinity) */
  static full(shape: readonly number[], value: number): Tensor {
    return new Tensor(new Float32Array(shapeSize("full", shape)).fill(value), shape);
  }

  /**
   * 1-D values from `start` (inclusive) to `end` (exclusive) by `step`, like Python's range;
   * `arange(n)` is `0 .. n-1`.
   * @example Tensor.arange(4).toArray()         // [0, 1, 2, 3]
   * @example Tensor.arange(1, 2, 0.25).toArray() // [1, 1.25, 1.5, 1.75]
   */
  static arange(start: number, end?: number, step = 1): Tensor {
    if (end === undefined) [start, end] = [0, start];
    if (!Number.isFinite(start) || !Number.isFinite(end) || !Number.isFinite(step) || step === 0) {
      throw new Error(`arange: start, end and step must be finite and step non-zero, got start ${start}, end ${end}, step ${step}`);
    }
    const n = Math.max(0, Math.ceil((end - start) / step));
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = start + i * step;
    return new Tensor(data, [n]);
  }

  /**
   * Joins tensors along an existing dim; all other sizes must match.
   * @example Tensor.concat([Tensor.zeros([2, 3]), Tensor.ones([1, 3])], 0).shape   // [3, 3]
   */
  static concat(tensors: readonly Tensor[], dim = 0): Tensor {
    if (tensors.length === 0) throw new Error("concat: needs at least one tensor, got none");
    const first = tensors[0]!;
    if (first.ndim === 0) throw new Error("concat: cannot concatenate 0-d tensors (use stack)");
    const d = normDim("concat", dim, first.shape);
    for (let t = 1; t < tensors.length; t++) {
      const s = tensors[t]!.shape;
      if (s.length !== first.ndim || s.some((n, k) => k !== d && n !== first.shape[k])) {
        throw new Error(`concat: shapes ${fmtShape(first.shape)} and ${fmtShape(s)} (tensors 0 and ${t}) differ outside dim ${d}`);
      }
    }
    const outer = first.shape.slice(0, d).reduce((p, n) => p * n, 1);
    const inner = first.shape.slice(d + 1).reduce((p, n) => p * n, 1);
    const total = tensors.reduce((p, t) => p + t.shape[d]!, 0);
    const out = new Float32Array(outer * total * inner);
    let at = 0;
    for (let o = 0; o < outer; o++) {
      for (const t of tensors) {
        const chunk = t.shape[d]! * inner;
        out.set(t.data.subarray(o * chunk, (o + 1) * chunk), at);
        at += chunk;
      }
    }
    const shape = first.shape.slice();
    shape[d] = total;
    return new Tensor(out, shape);
  }

  /**
   * Joins equally shaped tensors along a new dim.
   * @example Tensor.stack([Tensor.zeros([3]), Tensor.ones([3])]).shape   // [2, 3]
   */
  static stack(tensors: readonly Tensor[], dim = 0): Tensor {
    if (tensors.length === 0) throw new Error("stack: needs at least one tensor, got none");
    const first = tensors[0]!;
    for (let t = 1; t < tensors.length; t++) {
      if (!sameShape(first.shape, tensors[t]!.shape)) {
        throw new Error(`stack: shapes ${fmtShape(first.shape)} and ${fmtShape(tensors[t]!.shape)} (tensors 0 and ${t}) differ`);
      }
    }
    const d = normDim("stack", dim, first.shape, 1);
    return Tensor.concat(tensors.map((t) => t.unsqueeze(d)), d);
  }

  // ---------------------------------------------------------------- basic access

  /** Number of dimensions (0 for a scalar). */
  get ndim(): number {
    return this.shape.length;
  }

  /** A deep copy (new data buffer). */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  /** The elements as a flat row-major `number[]`. @example Tensor.from([[1, 2], [3, 4]]).toArray()   // [1, 2, 3, 4] */
  toArray(): number[] {
    return Array.from(this.data);
  }

  /** The elements as nested arrays (a number for a 0-d tensor). @example Tensor.arange(4).reshape([2, 2]).toNested()   // [[0, 1], [2, 3]] */
  toNested(): Nested {
    return toNested(this.data, this.shape);
  }

  /** The single element of a size-1 tensor (any shape). @example Tensor.from([[1, 2]]).sum().item()   // 3 */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, expected 1`);
    return this.data[0]!;
  }

  /** One element; one index per dim, negative indices count from the end. @example Tensor.from([[1, 2], [3, 4]]).get(-1, 0)   // 3 */
  get(...index: number[]): number {
    return this.data[this.offsetOf("get", index)]!;
  }

  /**
   * Writes one element in place and returns this tensor; the indices come first, the value last.
   * @example Tensor.zeros([2, 2]).set(0, -1, 5).toArray()   // [0, 5, 0, 0]
   */
  set(...indexThenValue: number[]): this {
    if (indexThenValue.length === 0) throw new Error(`set: expected ${this.ndim} indices and a value, got nothing`);
    const value = indexThenValue[indexThenValue.length - 1]!;
    this.data[this.offsetOf("set", indexThenValue.slice(0, -1))] = value;
    return this;
  }

  private offsetOf(op: string, index: readonly number[]): number {
    if (index.length !== this.ndim) {
      throw new Error(`${op}: expected ${this.ndim} indices for shape ${fmtShape(this.shape)}, got ${index.length}`);
    }
    const strides = stridesOf(this.shape);
    let off = 0;
    for (let d = 0; d < index.length; d++) off += normIndex(op, index[d]!, d, this.shape) * strides[d]!;
    return off;
  }

  /** A compact one-line preview, e.g. `Tensor([2, 2]) [[1, 2], [3, 4]]`; long dims elide the middle. */
  toString(): string {
    return formatTensor(this.data, this.shape);
  }

  /** console.log in Node prints the preview rather than the raw fields. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  // ---------------------------------------------------------------- structure

  /**
   * The same elements in a new shape (shares data). One size may be -1 and is inferred.
   * @example Tensor.arange(6).reshape([2, -1]).shape   // [2, 3]
   */
  reshape(shape: readonly number[]): Tensor {
    const bad = (): Error => new Error(`reshape: cannot reshape shape ${fmtShape(this.shape)} (${this.size} elements) to ${fmtShape(shape)}`);
    let known = 1;
    let infer = -1;
    for (let d = 0; d < shape.length; d++) {
      const n = shape[d]!;
      if (n === -1 && infer === -1) infer = d;
      else if (!Number.isInteger(n) || n < 0) throw bad();
      else known *= n;
    }
    const out = shape.slice();
    if (infer >= 0) {
      if (known === 0 || this.size % known !== 0) throw bad();
      out[infer] = this.size / known;
    } else if (known !== this.size) {
      throw bad();
    }
    return new Tensor(this.data, out);
  }

  /** Merges dims `startDim..endDim` (inclusive) into one (shares data). @example Tensor.zeros([2, 3, 4]).flatten(1).shape   // [2, 12] */
  flatten(startDim = 0, endDim = -1): Tensor {
    if (this.ndim === 0) return this.reshape([1]);
    const s = normDim("flatten", startDim, this.shape);
    const e = normDim("flatten", endDim, this.shape);
    if (s > e) throw new Error(`flatten: startDim ${startDim} comes after endDim ${endDim} for shape ${fmtShape(this.shape)}`);
    const merged = this.shape.slice(s, e + 1).reduce((p, n) => p * n, 1);
    return this.reshape([...this.shape.slice(0, s), merged, ...this.shape.slice(e + 1)]);
  }

  /**
   * Drops size-1 dims (shares data): all of them, or just `dim`, which must have size 1.
   * @example Tensor.zeros([1, 3, 1]).squeeze().shape   // [3]
   */
  squeeze(dim?: number): Tensor {
    if (dim === undefined) return this.reshape(this.shape.filter((n) => n !== 1));
    const d = normDim("squeeze", dim, this.shape);
    if (this.shape[d] !== 1) throw new Error(`squeeze: dim ${dim} of shape ${fmtShape(this.shape)} has size ${this.shape[d]}, expected 1`);
    return this.reshape(this.shape.filter((_, k) => k !== d));
  }

  /** Inserts a size-1 dim at `dim` (-1 appends; shares data). @example Tensor.zeros([3]).unsqueeze(0).shape   // [1, 3] */
  unsqueeze(dim: number): Tensor {
    const d = normDim("unsqueeze", dim, this.shape, 1);
    return this.reshape([...this.shape.slice(0, d), 1, ...this.shape.slice(d)]);
  }

  /**
   * Reorders dims: output dim i is input dim `dims[i]`.
   * @example Tensor.zeros([2, 3, 4]).permute([2, 0, 1]).shape   // [4, 2, 3]
   */
  permute(dims: readonly number[]): Tensor {
    const perm = dims.map((d) => normDim("permute", d, this.shape));
    if (perm.length !== this.ndim || new Set(perm).size !== perm.length) {
      throw new Error(`permute: dims [${dims.join(", ")}] are not a permutation of the ${this.ndim} dims of shape ${fmtShape(this.shape)}`);
    }
    const strides = stridesOf(this.shape);
    const shape = perm.map((d) => this.shape[d]!);
    return new Tensor(gather(this.data, 0, shape, perm.map((d) => strides[d]!)), shape);
  }

  /** Swaps two dims. @example Tensor.from([[1, 2, 3]]).transpose(0, 1).toNested()   // [[1], [2], [3]] */
  transpose(dimA: number, dimB: number): Tensor {
    const a = normDim("transpose", dimA, this.shape);
    const b = normDim("transpose", dimB, this.shape);
    const perm = this.shape.map((_, d) => (d === a ? b : d === b ? a : d));
    return this.permute(perm);
  }

  /**
   * The sub-tensor at `index` along `dim`, with that dim removed.
   * @example Tensor.from([[1, 2], [3, 4]]).select(1, -1).toArray()   // [2, 4]
   */
  select(dim: number, index: number): Tensor {
    const d = normDim("select", dim, this.shape);
    const i = normIndex("select", index, d, this.shape);
    const strides = stridesOf(this.shape);
    const shape = this.shape.filter((_, k) => k !== d);
    return new Tensor(gather(this.data, i * strides[d]!, shape, strides.filter((_, k) => k !== d)), shape);
  }

  /**
   * Entries `start..end-1` along `dim`, with Python slice rules: negative values count from
   * the end, out-of-range values are clamped, and `end` defaults to the size of the dim.
   * @example Tensor.arange(5).slice(0, -2).toArray()   // [3, 4]
   */
  slice(dim: number, start: number, end?: number): Tensor {
    const d = normDim("slice", dim, this.shape);
    const n = this.shape[d]!;
    if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
      throw new Error(`slice: start and end must be integers, got start ${start}, end ${end} for dim ${d} of shape ${fmtShape(this.shape)}`);
    }
    const clamp = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
    const s = clamp(start);
    const e = Math.max(s, clamp(end ?? n));
    const strides = stridesOf(this.shape);
    const shape = this.shape.slice();
    shape[d] = e - s;
    return new Tensor(gather(this.data, s * strides[d]!, shape, strides), shape);
  }

  /**
   * Repeats size-1 (or missing leading) dims to reach `shape`, NumPy-style.
   * @example Tensor.from([1, 2]).broadcastTo([2, 2]).toArray()   // [1, 2, 1, 2]
   */
  broadcastTo(shape: readonly number[]): Tensor {
    shapeSize("broadcastTo", shape);
    let ok = shape.length >= this.ndim;
    try {
      ok &&= sameShape(broadcastShapes("broadcastTo", this.shape, shape), shape);
    } catch {
      ok = false;
    }
    if (!ok) throw new Error(`broadcastTo: shape ${fmtShape(this.shape)} cannot be broadcast to ${fmtShape(shape)}`);
    return new Tensor(gather(this.data, 0, shape, broadcastStrides(this.shape, shape)), shape);
  }

  // ---------------------------------------------------------------- arithmetic

  /** Elementwise `this + other` with NumPy broadcasting. @example Tensor.from([[1, 2], [3, 4]]).add(Tensor.from([10, 20])).toArray()   // [11, 22, 13, 24] */
  add(other: Tensor | number): Tensor {
    return this.zip("add", other, (x, y) => x + y);
  }

  /**
   * Elementwise `this - other` with broadcasting; e.g. a logit difference between two tokens.
   * @example Tensor.from([[1, 5, 2]]).select(-1, 1).sub(2).item()   // 3
   */
  sub(other: Tensor | number): Tensor {
    return this.zip("sub", other, (x, y) => x - y);
  }

  /** Elementwise `this * other` with broadcasting. @example Tensor.from([[1, 2], [3, 4]]).mul(Tensor.from([[10], [100]])).toArray()   // [10, 20, 300, 400] */
  mul(other: Tensor | number): Tensor {
    return this.zip("mul", other, (x, y) => x * y);
  }

  /** Elementwise `this / other` with broadcasting (IEEE: x/0 is ±Infinity or NaN). @example Tensor.from([1, 2]).div(4).toArray()   // [0.25, 0.5] */
  div(other: Tensor | number): Tensor {
    return this.zip("div", other, (x, y) => x / y);
  }

  /** Elementwise `this ** exponent` with broadcasting. @example Tensor.from([2, 3]).pow(2).toArray()   // [4, 9] */
  pow(exponent: Tensor | number): Tensor {
    return this.zip("pow", exponent, (x, y) => x ** y);
  }

  /** Multiplies every element by `s`. @example Tensor.from([1, 2]).scale(0.5).toArray()   // [0.5, 1] */
  scale(s: number): Tensor {
    return this.map((x) => x * s);
  }

  /** Elementwise `-x`. */
  neg(): Tensor {
    return this.map((x) => -x);
  }

  /** Elementwise `|x|`. */
  abs(): Tensor {
    return this.map(Math.abs);
  }

  /** Elementwise `e^x`. */
  exp(): Tensor {
    return this.map(Math.exp);
  }

  /** Elementwise natural log (NaN below 0, -Infinity at 0). */
  log(): Tensor {
    return this.map(Math.log);
  }

  /** Elementwise square root (NaN below 0). */
  sqrt(): Tensor {
    return this.map(Math.sqrt);
  }

  /** Applies `f` to every element (in f64, stored as f32). @example Tensor.from([-1, 2]).map((x) => Math.max(x, 0)).toArray()   // [0, 2] */
  map(f: (x: number) => number): Tensor {
    return new Tensor(unary(this.data, f), this.shape);
  }

  private zip(op: string, other: Tensor | number, f: (x: number, y: number) => number): Tensor {
    if (typeof other === "number") return this.map((x) => f(x, other));
    if (!(other instanceof Tensor)) throw new Error(`${op}: other must be a Tensor or a number, got ${typeof other}`);
    return wrap(binary(op, this.data, this.shape, other.data, other.shape, f));
  }

  /**
   * Matrix product like torch.matmul: [.., m, k] · [.., k, n] -> [.., m, n], leading dims
   * broadcast; a 1-D operand is treated as a row (left) or column (right) vector and that dim
   * is dropped. Accumulates in f64.
   * @example Tensor.from([[1, 2], [3, 4]]).matmul(Tensor.from([1, 1])).toArray()   // [3, 7]
   */
  matmul(other: Tensor): Tensor {
    return wrap(matmul(this.data, this.shape, other.data, other.shape));
  }

  // ---------------------------------------------------------------- reductions

  /**
   * Sum over `dim` (a dim or a list; negative counts from the end), or over everything when
   * omitted (a 0-d tensor; use `.item()`).
   * @example Tensor.from([[1, 2], [3, 4]]).sum(0).toArray()   // [4, 6]
   */
  sum(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return wrap(reduceDims("sum", this.data, this.shape, dim, options.keepdim ?? false, sumRow));
  }

  /** Mean over `dim` (or everything); see {@link Tensor.sum}. @example Tensor.from([[1, 2], [3, 4]]).mean(-1).toArray()   // [1.5, 3.5] */
  mean(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return wrap(reduceDims("mean", this.data, this.shape, dim, options.keepdim ?? false, meanRow));
  }

  /** Maximum over `dim` (or everything); NaN propagates. Values only: see {@link Tensor.argmax}. */
  max(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return wrap(reduceDims("max", this.data, this.shape, dim, options.keepdim ?? false, extremeRow("max", this.shape, 1)));
  }

  /** Minimum over `dim` (or everything); NaN propagates. */
  min(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return wrap(reduceDims("min", this.data, this.shape, dim, options.keepdim ?? false, extremeRow("min", this.shape, -1)));
  }

  /**
   * The p-norm over `dim` (or everything): p = 2 (default), 1, Infinity (max |x|), 0 (count of
   * non-zeros) or any p > 0.
   * @example Tensor.from([3, 4]).norm().item()   // 5
   */
  norm(dim?: number | readonly number[], options: ReduceOptions & { p?: number } = {}): Tensor {
    return wrap(reduceDims("norm", this.data, this.shape, dim, options.keepdim ?? false, normRow(options.p ?? 2)));
  }

  /**
   * Index of the maximum along `dim`, or into the flattened tensor when omitted. Ties give the
   * lowest index; a NaN counts as the maximum.
   * @example Tensor.from([[1, 5, 2], [7, 0, 7]]).argmax(-1).toArray()   // [1, 0]
   */
  argmax(dim?: number, options: ReduceOptions = {}): Tensor {
    return wrap(argExtreme("argmax", this.data, this.shape, dim, options.keepdim ?? false, 1));
  }

  /** Index of the minimum along `dim` (or flattened); ties give the lowest index. */
  argmin(dim?: number, options: ReduceOptions = {}): Tensor {
    return wrap(argExtreme("argmin", this.data, this.shape, dim, options.keepdim ?? false, -1));
  }

  /** Softmax along `dim` (numerically stable). @example Tensor.from([0, 0]).softmax().toArray()   // [0.5, 0.5] */
  softmax(dim = -1): Tensor {
    return wrap(softmax("softmax", this.data, this.shape, dim, false));
  }

  /**
   * log(softmax(x)) along `dim`, computed as x - max - log(sum(exp(x - max))).
   * @example Tensor.from([0, 0]).logSoftmax().toArray()   // [-0.6931, -0.6931] (log 0.5)
   */
  logSoftmax(dim = -1): Tensor {
    return wrap(softmax("logSoftmax", this.data, this.shape, dim, true));
  }

  /**
   * The `k` largest entries along `dim` (smallest with `largest: false`), sorted best first;
   * ties keep the lower index first; NaN counts as larger than any number.
   * @example Tensor.from([1, 9, 3, 9]).topk(3).indices   // [1, 3, 2]
   */
  topk(k: number, dim = -1, options: { largest?: boolean } = {}): TopK {
    const { values, indices } = topk(this.data, this.shape, k, dim, options.largest ?? true);
    return { values: wrap(values), indices };
  }

  // ---------------------------------------------------------------- comparison

  /**
   * Whether every |this - other| <= atol + rtol * |other| (torch.allclose defaults). The shapes
   * must be equal: a mismatch throws, since it is almost always a bug in the caller.
   * @example Tensor.from([1, 2]).allClose(Tensor.from([1, 2.00001]))   // true
   */
  allClose(other: Tensor, options: AllCloseOptions = {}): boolean {
    if (!sameShape(this.shape, other.shape)) {
      throw new Error(`allClose: shapes ${fmtShape(this.shape)} and ${fmtShape(other.shape)} differ`);
    }
    const atol = options.atol ?? 1e-8;
    const rtol = options.rtol ?? 1e-5;
    for (let i = 0; i < this.size; i++) {
      const x = this.data[i]!;
      const y = other.data[i]!;
      if (x === y) continue; // also equal infinities
      if (Number.isNaN(x) || Number.isNaN(y)) {
        if (options.equalNan && Number.isNaN(x) && Number.isNaN(y)) continue;
        return false;
      }
      // Unequal infinities would pass the tolerance test below, since rtol * |Infinity| is Infinity.
      if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
      if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y))) return false;
    }
    return true;
  }

  /** Same shape and every element `===` (so NaN never equals, and -0 equals 0). */
  equals(other: Tensor): boolean {
    if (!sameShape(this.shape, other.shape)) return false;
    for (let i = 0; i < this.size; i++) if (this.data[i] !== other.data[i]) return false;
    return true;
  }
}

function wrap(d: Dense): Tensor {
  return new Tensor(d.data, d.shape);
}
