/**
 * A dense, row-major float32 tensor: a shape plus a Float32Array.
 *
 * The constructor wraps `data` without copying (a hook sees a view of an
 * activation); every other method returns a new tensor unless its name says it
 * mutates (`set`).
 */
export class Tensor {
  /** Row-major elements; `data.length === size`. */
  readonly data: Float32Array;
  /** Dimension sizes, outermost first; `[]` for a 0-d (scalar) tensor. */
  readonly shape: readonly number[];
  /** Number of elements: the product of `shape` (1 for a 0-d tensor). */
  readonly size: number;

  /**
   * Wraps `data` (no copy) as a tensor of the given shape.
   * @example new Tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
   */
  constructor(data: Float32Array, shape: readonly number[]) {
    let size = 1;
    for (let d = 0; d < shape.length; d++) {
      const n = shape[d]!;
      if (!Number.isInteger(n) || n < 0) {
        throw new Error(`Tensor: shape [${shape.join(", ")}] has an invalid size ${n} at dim ${d} (expected an integer >= 0)`);
      }
      size *= n;
    }
    if (data.length !== size) {
      throw new Error(`Tensor: data has ${data.length} elements but shape [${shape.join(", ")}] needs ${size}`);
    }
    this.data = data;
    this.shape = Object.freeze(shape.slice());
    this.size = size;
  }

  /** A tensor of zeros. @example Tensor.zeros([2, 3]) */
  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize("zeros", shape)), shape);
  }

  /** Number of dimensions (0 for a scalar). */
  get ndim(): number {
    return this.shape.length;
  }

  /** A deep copy (new data buffer). */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }
}

function shapeSize(op: string, shape: readonly number[]): number {
  let size = 1;
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`${op}: shape [${shape.join(", ")}] has an invalid size ${n} at dim ${d} (expected an integer >= 0)`);
    }
    size *= n;
  }
  return size;
}
