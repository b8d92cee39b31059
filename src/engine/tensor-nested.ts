// Conversions between nested JS arrays and flat row-major buffers.
import type { Dense } from "./tensor-math.js";

/** A number or an arbitrarily nested (rectangular) array of numbers. */
export type Nested = number | readonly Nested[];

/** The shape implied by `value` (the first element along each level) and its flattened values. */
export function parseNested(value: Nested): Dense {
  const shape: number[] = [];
  let probe: Nested = value;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    if (probe.length === 0) break;
    probe = probe[0]!;
  }
  const size = shape.reduce((p, n) => p * n, 1);
  const data = new Float32Array(size);
  let at = 0;
  const path: number[] = [];
  const where = (): string => (path.length === 0 ? "the top level" : `[${path.join("][")}]`);
  const walk = (v: Nested, dim: number): void => {
    if (dim === shape.length) {
      if (typeof v !== "number") {
        throw new Error(`Tensor.from: expected a number at ${where()} (depth ${dim} of shape [${shape.join(", ")}]), got ${Array.isArray(v) ? "an array" : typeof v}`);
      }
      data[at++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[dim]) {
      const got = Array.isArray(v) ? `an array of length ${v.length}` : typeof v;
      throw new Error(`Tensor.from: ragged nested array: expected an array of length ${shape[dim]} at ${where()}, got ${got}`);
    }
    for (let i = 0; i < v.length; i++) {
      path.push(i);
      walk(v[i]!, dim + 1);
      path.pop();
    }
  };
  walk(value, 0);
  return { data, shape };
}

/** Nested arrays in row-major order (a plain number for a 0-d tensor). */
export function toNested(data: Float32Array, shape: readonly number[]): Nested {
  let at = 0;
  const build = (dim: number): Nested => {
    if (dim === shape.length) return data[at++]!;
    const out: Nested[] = [];
    for (let i = 0; i < shape[dim]!; i++) out.push(build(dim + 1));
    return out;
  };
  return build(0);
}
