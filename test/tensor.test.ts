import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { Tensor } from "../src/engine/tensor.js";

/** Asserts shape and every value within `tol` (absolute). */
function expectValues(t: Tensor, shape: number[], values: number[], tol = 1e-6): void {
  expect(t.shape).toEqual(shape);
  expect(t.size).toBe(values.length);
  const got = t.toArray();
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i]!)) expect(got[i], `element ${i}`).toBeNaN();
    else if (!Number.isFinite(values[i]!)) expect(got[i], `element ${i}`).toBe(values[i]);
    else expect(Math.abs(got[i]! - values[i]!), `element ${i}: ${got[i]} vs ${values[i]}`).toBeLessThanOrEqual(tol);
  }
}

const m23 = (): Tensor => Tensor.from([[1, 2, 3], [4, 5, 6]]);

describe("construction", () => {
  it("constructor wraps the data without copying and validates the size", () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = new Tensor(data, [2, 3]);
    expect(t.data).toBe(data);
    expect(t.ndim).toBe(2);
    expect(t.size).toBe(6);
    expect(() => new Tensor(data, [4, 2])).toThrow("Tensor: data has 6 elements but shape [4, 2] needs 8");
    expect(() => new Tensor(data, [2, -3])).toThrow(/invalid size -3 at dim 1/);
  });

  it("keeps its own frozen copy of the shape", () => {
    const shape = [2, 3];
    const t = new Tensor(new Float32Array(6), shape);
    shape[0] = 99;
    expect(t.shape).toEqual([2, 3]);
    expect(Object.isFrozen(t.shape)).toBe(true);
  });

  it("from infers the shape of nested arrays", () => {
    expectValues(m23(), [2, 3], [1, 2, 3, 4, 5, 6]);
    expectValues(Tensor.from([[[1], [2]], [[3], [4]]]), [2, 2, 1], [1, 2, 3, 4]);
    expectValues(Tensor.from(7), [], [7]);
    expectValues(Tensor.from([]), [0], []);
  });

  it("from with a shape copies flat values", () => {
    const src = new Float32Array([1, 2, 3, 4]);
    const t = Tensor.from(src, [2, 2]);
    src[0] = 100;
    expectValues(t, [2, 2], [1, 2, 3, 4]);
    expectValues(Tensor.from([5], []), [], [5]);
    const typed = new Float32Array([1, 2, 3]);
    const fromTyped = Tensor.from(typed);
    typed[0] = 9;
    expectValues(fromTyped, [3], [1, 2, 3]);
    expect(() => Tensor.from([1, 2, 3], [2, 2])).toThrow("Tensor.from: 3 values cannot fill shape [2, 2] (4 elements)");
    expect(() => Tensor.from([[1, 2], [3, 4]] as unknown as number[], [2])).toThrow(/values\[0\] is an array/);
  });

  it("from rejects ragged and non-numeric nested arrays, naming where", () => {
    expect(() => Tensor.from([[1, 2], [3]])).toThrow("Tensor.from: ragged nested array: expected an array of length 2 at [1], got an array of length 1");
    expect(() => Tensor.from([[1, 2], 3] as never)).toThrow(/expected an array of length 2 at \[1\], got number/);
    expect(() => Tensor.from([[1, [2]], [3, 4]] as never)).toThrow(/expected a number at \[0\]\[1\]/);
    expect(() => Tensor.from(["a"] as never)).toThrow(/expected a number at \[0\].*got string/);
  });

  it("zeros, ones, full", () => {
    expectValues(Tensor.zeros([2, 2]), [2, 2], [0, 0, 0, 0]);
    expectValues(Tensor.ones([3]), [3], [1, 1, 1]);
    expectValues(Tensor.full([1, 2], -Infinity), [1, 2], [-Infinity, -Infinity]);
    expectValues(Tensor.zeros([]), [], [0]);
    expect(() => Tensor.zeros([2.5])).toThrow("zeros: shape [2.5] has an invalid size 2.5 at dim 0");
  });

  it("arange follows Python's range", () => {
    expectValues(Tensor.arange(4), [4], [0, 1, 2, 3]);
    expectValues(Tensor.arange(2, 5), [3], [2, 3, 4]);
    expectValues(Tensor.arange(1, 2, 0.25), [4], [1, 1.25, 1.5, 1.75]);
    expectValues(Tensor.arange(5, 0, -2), [3], [5, 3, 1]);
    expectValues(Tensor.arange(3, 1), [0], []);
    expect(() => Tensor.arange(0, 3, 0)).toThrow(/step non-zero, got start 0, end 3, step 0/);
  });

  it("clone copies the buffer", () => {
    const t = m23();
    const c = t.clone();
    c.set(0, 0, 100);
    expect(t.get(0, 0)).toBe(1);
    expect(c.shape).toEqual([2, 3]);
  });
});

describe("element access", () => {
  it("toArray, toNested, item", () => {
    expect(m23().toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(m23().toNested()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(Tensor.from(3).toNested()).toBe(3);
    expect(Tensor.zeros([2, 0]).toNested()).toEqual([[], []]);
    expect(Tensor.from([[2.5]]).item()).toBe(2.5);
    expect(() => m23().item()).toThrow("item: tensor of shape [2, 3] has 6 elements, expected 1");
  });

  it("get with positive and negative indices", () => {
    const t = m23();
    expect(t.get(0, 0)).toBe(1);
    expect(t.get(1, 2)).toBe(6);
    expect(t.get(-1, -1)).toBe(6);
    expect(t.get(-2, 1)).toBe(2);
    expect(Tensor.from(4).get()).toBe(4);
  });

  it("get checks bounds and arity, naming the dim, range and value", () => {
    const t = m23();
    expect(() => t.get(0, 3)).toThrow("get: index 3 is out of range for dim 1 (size 3) of shape [2, 3]: valid indices are -3..2");
    expect(() => t.get(-3, 0)).toThrow("get: index -3 is out of range for dim 0 (size 2) of shape [2, 3]: valid indices are -2..1");
    expect(() => t.get(0)).toThrow("get: expected 2 indices for shape [2, 3], got 1");
    expect(() => t.get(0.5, 0)).toThrow(/index 0.5 is out of range/);
  });

  it("set writes in place and returns the tensor", () => {
    const t = Tensor.zeros([2, 2]);
    expect(t.set(0, -1, 5)).toBe(t);
    t.set(-1, 0, 7);
    expect(t.toArray()).toEqual([0, 5, 7, 0]);
    expect(() => t.set(2, 0, 1)).toThrow(/set: index 2 is out of range for dim 0/);
    expect(() => t.set(1)).toThrow("set: expected 2 indices for shape [2, 2], got 0");
  });
});

describe("structure", () => {
  it("reshape with and without -1, sharing data", () => {
    const t = Tensor.arange(6);
    const r = t.reshape([2, 3]);
    expect(r.toNested()).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(t.reshape([-1, 2]).shape).toEqual([3, 2]);
    expect(t.reshape([3, -1]).shape).toEqual([3, 2]);
    expect(t.reshape([1, -1, 1]).shape).toEqual([1, 6, 1]);
    expect(Tensor.from([5]).reshape([]).shape).toEqual([]);
    expect(r.data).toBe(t.data);
  });

  it("reshape rejects impossible shapes naming both", () => {
    const t = Tensor.arange(6);
    expect(() => t.reshape([4, -1])).toThrow("reshape: cannot reshape shape [6] (6 elements) to [4, -1]");
    expect(() => t.reshape([4, 2])).toThrow("reshape: cannot reshape shape [6] (6 elements) to [4, 2]");
    expect(() => t.reshape([-1, -1])).toThrow(/to \[-1, -1\]/);
    expect(() => Tensor.zeros([0]).reshape([0, -1])).toThrow(/cannot reshape shape \[0\]/);
  });

  it("transpose swaps dims with hand-checked values and round-trips", () => {
    const t = m23();
    expect(t.transpose(0, 1).toNested()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(t.transpose(-1, -2).toNested()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(t.transpose(0, 1).transpose(1, 0).equals(t)).toBe(true);
    const c = Tensor.arange(24).reshape([2, 3, 4]);
    const tc = c.transpose(0, 2);
    expect(tc.shape).toEqual([4, 3, 2]);
    expect(tc.get(3, 1, 0)).toBe(c.get(0, 1, 3));
    expect(tc.get(1, 2, 1)).toBe(c.get(1, 2, 1));
    expect(tc.transpose(2, 0).equals(c)).toBe(true);
    expect(() => t.transpose(0, 2)).toThrow("transpose: dim 2 is out of range for shape [2, 3]: valid dims are -2..1");
  });

  it("permute reorders dims and inverts", () => {
    const c = Tensor.arange(24).reshape([2, 3, 4]);
    const p = c.permute([2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expect(p.get(k, i, j)).toBe(c.get(i, j, k));
    expect(p.permute([1, 2, 0]).equals(c)).toBe(true);
    expect(c.permute([-1, 0, 1]).shape).toEqual([4, 2, 3]);
    expect(() => c.permute([0, 0, 1])).toThrow("permute: dims [0, 0, 1] are not a permutation of the 3 dims of shape [2, 3, 4]");
    expect(() => c.permute([0, 1])).toThrow(/not a permutation/);
  });

  it("select drops the dim", () => {
    const t = m23();
    expect(t.select(0, 1).toNested()).toEqual([4, 5, 6]);
    expect(t.select(1, -1).toNested()).toEqual([3, 6]);
    expect(t.select(-1, 0).toNested()).toEqual([1, 4]);
    const c = Tensor.arange(24).reshape([2, 3, 4]);
    expect(c.select(1, 2).toNested()).toEqual([[8, 9, 10, 11], [20, 21, 22, 23]]);
    expect(Tensor.from([1, 2]).select(0, 1).shape).toEqual([]);
    expect(() => t.select(1, 3)).toThrow("select: index 3 is out of range for dim 1 (size 3) of shape [2, 3]: valid indices are -3..2");
    expect(() => t.select(2, 0)).toThrow("select: dim 2 is out of range for shape [2, 3]: valid dims are -2..1");
  });

  it("slice follows Python slicing", () => {
    const a = Tensor.arange(5);
    expect(a.slice(0, 1, 3).toArray()).toEqual([1, 2]);
    expect(a.slice(0, -2).toArray()).toEqual([3, 4]);
    expect(a.slice(0, 0, -1).toArray()).toEqual([0, 1, 2, 3]);
    expect(a.slice(0, -100, 100).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(a.slice(0, 4, 2).shape).toEqual([0]);
    const t = m23();
    expect(t.slice(1, 1).toNested()).toEqual([[2, 3], [5, 6]]);
    expect(t.slice(-2, 1, 2).toNested()).toEqual([[4, 5, 6]]);
    expect(() => t.slice(3, 0)).toThrow("slice: dim 3 is out of range for shape [2, 3]: valid dims are -2..1");
    expect(() => t.slice(0, 0.5)).toThrow(/start and end must be integers/);
  });

  it("flatten, squeeze, unsqueeze", () => {
    const c = Tensor.arange(24).reshape([2, 3, 4]);
    expect(c.flatten().shape).toEqual([24]);
    expect(c.flatten(1).shape).toEqual([2, 12]);
    expect(c.flatten(0, 1).shape).toEqual([6, 4]);
    expect(c.flatten(0, 1).get(5, 3)).toBe(23);
    expect(Tensor.from(3).flatten().shape).toEqual([1]);
    expect(() => c.flatten(2, 1)).toThrow("flatten: startDim 2 comes after endDim 1 for shape [2, 3, 4]");

    const s = Tensor.zeros([1, 3, 1]);
    expect(s.squeeze().shape).toEqual([3]);
    expect(s.squeeze(0).shape).toEqual([3, 1]);
    expect(s.squeeze(-1).shape).toEqual([1, 3]);
    expect(() => s.squeeze(1)).toThrow("squeeze: dim 1 of shape [1, 3, 1] has size 3, expected 1");

    const v = Tensor.from([1, 2, 3]);
    expect(v.unsqueeze(0).toNested()).toEqual([[1, 2, 3]]);
    expect(v.unsqueeze(-1).toNested()).toEqual([[1], [2], [3]]);
    expect(v.unsqueeze(1).shape).toEqual([3, 1]);
    expect(() => v.unsqueeze(2)).toThrow("unsqueeze: dim 2 is out of range for shape [3]: valid dims are -2..1");
  });

  it("concat along any dim", () => {
    const a = m23();
    const b = Tensor.from([[7, 8, 9]]);
    expect(Tensor.concat([a, b]).toNested()).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    const c = Tensor.from([[10], [11]]);
    expect(Tensor.concat([a, c], -1).toNested()).toEqual([[1, 2, 3, 10], [4, 5, 6, 11]]);
    expect(Tensor.concat([c, a, c], 1).toNested()).toEqual([[10, 1, 2, 3, 10], [11, 4, 5, 6, 11]]);
    expect(() => Tensor.concat([a, c], 0)).toThrow("concat: shapes [2, 3] and [2, 1] (tensors 0 and 1) differ outside dim 0");
    expect(() => Tensor.concat([a, Tensor.zeros([2, 3, 1])], 0)).toThrow(/shapes \[2, 3\] and \[2, 3, 1\]/);
    expect(() => Tensor.concat([])).toThrow("concat: needs at least one tensor, got none");
  });

  it("stack along a new dim", () => {
    const x = Tensor.from([1, 2]);
    const y = Tensor.from([3, 4]);
    expect(Tensor.stack([x, y]).toNested()).toEqual([[1, 2], [3, 4]]);
    expect(Tensor.stack([x, y], 1).toNested()).toEqual([[1, 3], [2, 4]]);
    expect(Tensor.stack([x, y], -1).toNested()).toEqual([[1, 3], [2, 4]]);
    expect(Tensor.stack([Tensor.from(1), Tensor.from(2)]).toNested()).toEqual([1, 2]);
    expect(() => Tensor.stack([x, Tensor.zeros([3])])).toThrow("stack: shapes [2] and [3] (tensors 0 and 1) differ");
  });

  it("broadcastTo repeats size-1 and leading dims", () => {
    expect(Tensor.from([1, 2]).broadcastTo([2, 2]).toNested()).toEqual([[1, 2], [1, 2]]);
    expect(Tensor.from([[1], [2]]).broadcastTo([2, 3]).toNested()).toEqual([[1, 1, 1], [2, 2, 2]]);
    expect(() => Tensor.from([1, 2]).broadcastTo([3])).toThrow("broadcastTo: shape [2] cannot be broadcast to [3]");
    expect(() => Tensor.zeros([2, 1]).broadcastTo([2])).toThrow("broadcastTo: shape [2, 1] cannot be broadcast to [2]");
  });

  it("methods other than set leave the input untouched", () => {
    const t = m23();
    const before = t.toArray();
    t.add(1); t.transpose(0, 1); t.slice(1, 1); t.softmax(); t.topk(2); t.neg(); t.sum(0); t.matmul(t.transpose(0, 1));
    expect(t.toArray()).toEqual(before);
  });
});

describe("arithmetic", () => {
  it("equal shapes", () => {
    const a = m23();
    const b = Tensor.from([[6, 5, 4], [3, 2, 1]]);
    expectValues(a.add(b), [2, 3], [7, 7, 7, 7, 7, 7]);
    expectValues(a.sub(b), [2, 3], [-5, -3, -1, 1, 3, 5]);
    expectValues(a.mul(b), [2, 3], [6, 10, 12, 12, 10, 6]);
    expectValues(a.div(b), [2, 3], [1 / 6, 2 / 5, 3 / 4, 4 / 3, 5 / 2, 6]);
    expectValues(a.pow(Tensor.from([[2, 2, 2], [0, 1, 0.5]])), [2, 3], [1, 4, 9, 1, 5, Math.sqrt(6)]);
  });

  it("scalars", () => {
    const a = m23();
    expectValues(a.add(1), [2, 3], [2, 3, 4, 5, 6, 7]);
    expectValues(a.sub(1), [2, 3], [0, 1, 2, 3, 4, 5]);
    expectValues(a.mul(-2), [2, 3], [-2, -4, -6, -8, -10, -12]);
    expectValues(a.div(4), [2, 3], [0.25, 0.5, 0.75, 1, 1.25, 1.5]);
    expectValues(a.pow(2), [2, 3], [1, 4, 9, 16, 25, 36]);
    expectValues(a.scale(0.5), [2, 3], [0.5, 1, 1.5, 2, 2.5, 3]);
    expectValues(a.add(Tensor.from(10)), [2, 3], [11, 12, 13, 14, 15, 16]);
    expectValues(Tensor.from(10).sub(a), [2, 3], [9, 8, 7, 6, 5, 4]);
  });

  it("broadcasts a trailing dim, a column and both sides (NumPy rules)", () => {
    const a = m23();
    expectValues(a.add(Tensor.from([10, 20, 30])), [2, 3], [11, 22, 33, 14, 25, 36]);
    expectValues(a.mul(Tensor.from([[2], [3]])), [2, 3], [2, 4, 6, 12, 15, 18]);
    expectValues(Tensor.from([[1], [2]]).add(Tensor.from([10, 20, 30])), [2, 3], [11, 21, 31, 12, 22, 32]);
    const c = Tensor.arange(12).reshape([2, 3, 2]);
    expectValues(c.sub(Tensor.from([[1, 0]])), [2, 3, 2], [-1, 1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11]);
    expectValues(c.add(Tensor.from([[[100]], [[200]]])), [2, 3, 2], [100, 101, 102, 103, 104, 105, 206, 207, 208, 209, 210, 211]);
    expect(Tensor.zeros([4, 1, 3]).add(Tensor.zeros([5, 1])).shape).toEqual([4, 5, 3]);
    expect(Tensor.zeros([0, 3]).add(Tensor.zeros([3])).shape).toEqual([0, 3]);
  });

  it("shape mismatch errors name the op and both shapes", () => {
    const a = m23();
    expect(() => a.add(Tensor.zeros([4]))).toThrow("add: shapes [2, 3] and [4] cannot be broadcast");
    expect(() => a.sub(Tensor.zeros([3, 3]))).toThrow("sub: shapes [2, 3] and [3, 3] cannot be broadcast");
    expect(() => a.mul(Tensor.zeros([2]))).toThrow("mul: shapes [2, 3] and [2] cannot be broadcast");
    expect(() => a.div(Tensor.zeros([1, 2]))).toThrow("div: shapes [2, 3] and [1, 2] cannot be broadcast");
    expect(() => a.pow(Tensor.zeros([4, 2, 3]).slice(1, 0, 1).transpose(0, 1))).toThrow("pow: shapes [2, 3] and [1, 4, 3] cannot be broadcast");
  });

  it("unary maps", () => {
    const t = Tensor.from([-1, 0, 4]);
    expectValues(t.neg(), [3], [1, -0, -4]);
    expectValues(t.abs(), [3], [1, 0, 4]);
    expectValues(t.exp(), [3], [Math.exp(-1), 1, Math.exp(4)], 1e-5);
    expectValues(t.log(), [3], [NaN, -Infinity, Math.log(4)]);
    expectValues(t.sqrt(), [3], [NaN, 0, 2]);
    expectValues(t.map((x) => Math.max(x, 0)), [3], [0, 0, 4]);
    expectValues(Tensor.from([1, -1]).div(0), [2], [Infinity, -Infinity]);
  });
});

describe("matmul", () => {
  it("2x3 · 3x2 by hand", () => {
    const a = m23();
    const b = Tensor.from([[7, 8], [9, 10], [11, 12]]);
    // [1*7+2*9+3*11, 1*8+2*10+3*12] = [58, 64]; [4*7+5*9+6*11, 4*8+5*10+6*12] = [139, 154]
    expect(a.matmul(b).toNested()).toEqual([[58, 64], [139, 154]]);
    // 3x2 · 2x3: [[7+32, 14+40, 21+48], [9+40, 18+50, 27+60], [11+48, 22+60, 33+72]]
    expect(b.matmul(a).toNested()).toEqual([[39, 54, 69], [49, 68, 87], [59, 82, 105]]);
  });

  it("vectors follow torch.matmul", () => {
    const a = m23();
    expect(a.matmul(Tensor.from([1, 0, -1])).toNested()).toEqual([-2, -2]);
    expect(Tensor.from([1, 1]).matmul(a).toNested()).toEqual([5, 7, 9]);
    expect(Tensor.from([1, 2, 3]).matmul(Tensor.from([4, 5, 6])).shape).toEqual([]);
    expect(Tensor.from([1, 2, 3]).matmul(Tensor.from([4, 5, 6])).item()).toBe(32);
  });

  it("batched, with leading dims broadcast", () => {
    // batch 0: identity-ish, batch 1: doubles
    const a = Tensor.from([[[1, 2], [3, 4]], [[0, 1], [1, 0]]]); // [2, 2, 2]
    const b = Tensor.from([[[1, 0], [0, 1]], [[2, 0], [0, 2]]]); // [2, 2, 2]
    expect(a.matmul(b).toNested()).toEqual([[[1, 2], [3, 4]], [[0, 2], [2, 0]]]);
    // one right operand shared across the batch
    const w = Tensor.from([[1, 1], [0, 1]]);
    expect(a.matmul(w).toNested()).toEqual([[[1, 3], [3, 7]], [[0, 1], [1, 1]]]);
    // [3, 1, 1, 2] · [2, 2, 1] -> [3, 2, 1, 1]
    const x = Tensor.arange(6).reshape([3, 1, 1, 2]);
    const y = Tensor.from([[[1], [1]], [[1], [-1]]]);
    const xy = x.matmul(y);
    expect(xy.shape).toEqual([3, 2, 1, 1]);
    expect(xy.toArray()).toEqual([1, -1, 5, -1, 9, -1]);
    // batched against a per-batch loop
    const p = Tensor.arange(24).reshape([2, 3, 4]).scale(0.1);
    const q = Tensor.arange(20).reshape([4, 5]).sub(7);
    const pq = p.matmul(q);
    for (let i = 0; i < 2; i++) expect(pq.select(0, i).allClose(p.select(0, i).matmul(q), { atol: 1e-5 })).toBe(true);
  });

  it("accumulates in f64", () => {
    const a = Tensor.from([[1e8, 1, -1e8]]);
    const b = Tensor.from([[1], [1], [1]]);
    expect(a.matmul(b).item()).toBe(1);
  });

  it("errors name both shapes", () => {
    expect(() => m23().matmul(m23())).toThrow("matmul: shapes [2, 3] and [2, 3] are incompatible (inner dims 3 and 2 differ)");
    expect(() => Tensor.zeros([2, 2, 3]).matmul(Tensor.zeros([3, 3, 1]))).toThrow("matmul: shapes [2, 2, 3] and [3, 3, 1] have batch dims [2] and [3] that cannot be broadcast");
    expect(() => Tensor.from(1).matmul(m23())).toThrow(/matmul: shapes \[\] and \[2, 3\]/);
  });
});

describe("reductions", () => {
  const c = (): Tensor => Tensor.arange(24).reshape([2, 3, 4]);

  it("sum over all, a dim, negative dims, several dims, keepdim", () => {
    expect(m23().sum().shape).toEqual([]);
    expect(m23().sum().item()).toBe(21);
    expectValues(m23().sum(0), [3], [5, 7, 9]);
    expectValues(m23().sum(-1), [2], [6, 15]);
    expectValues(m23().sum(1, { keepdim: true }), [2, 1], [6, 15]);
    expectValues(m23().sum(undefined, { keepdim: true }), [1, 1], [21]);
    // c[i, j, k] = 12i + 4j + k
    expectValues(c().sum(1), [2, 4], [12, 15, 18, 21, 48, 51, 54, 57]);
    expectValues(c().sum([0, 2]), [3], [60, 92, 124]);
    expectValues(c().sum([-1, 0], { keepdim: true }), [1, 3, 1], [60, 92, 124]);
    expectValues(Tensor.zeros([0, 2]).sum(0), [2], [0, 0]);
    expect(() => c().sum([0, -3])).toThrow("sum: dim -3 is repeated in [0, -3]");
    expect(() => c().sum(3)).toThrow("sum: dim 3 is out of range for shape [2, 3, 4]: valid dims are -3..2");
  });

  it("mean", () => {
    expectValues(m23().mean(-1), [2], [2, 5]);
    expectValues(m23().mean(0), [3], [2.5, 3.5, 4.5]);
    expect(m23().mean().item()).toBe(3.5);
    expectValues(c().mean([1, 2]), [2], [5.5, 17.5]);
  });

  it("max and min, with NaN propagating", () => {
    const t = Tensor.from([[3, -1, 7], [2, 9, -5]]);
    expectValues(t.max(-1), [2], [7, 9]);
    expectValues(t.max(0), [3], [3, 9, 7]);
    expectValues(t.min(1, { keepdim: true }), [2, 1], [-1, -5]);
    expect(t.max().item()).toBe(9);
    expect(t.min().item()).toBe(-5);
    expectValues(c().max([0, 1]), [4], [20, 21, 22, 23]);
    expect(Tensor.from([1, NaN, 3]).max().item()).toBeNaN();
    expect(() => Tensor.zeros([2, 0]).max(1)).toThrow("max: cannot reduce over zero elements (shape [2, 0])");
  });

  it("argmax and argmin, ties to the lowest index", () => {
    const t = Tensor.from([[1, 5, 2], [7, 0, 7]]);
    expectValues(t.argmax(-1), [2], [1, 0]);
    expectValues(t.argmax(0), [3], [1, 0, 1]);
    expectValues(t.argmin(1), [2], [0, 1]);
    expectValues(t.argmax(1, { keepdim: true }), [2, 1], [1, 0]);
    expect(t.argmax().item()).toBe(3);
    expect(t.argmin().item()).toBe(4);
    expect(t.argmax().shape).toEqual([]);
    expectValues(c().argmax(1), [2, 4], [2, 2, 2, 2, 2, 2, 2, 2]);
    expectValues(Tensor.from([1, NaN, 3, NaN]).argmax(0), [], [1]);
    expect(() => t.argmax(2)).toThrow("argmax: dim 2 is out of range for shape [2, 3]: valid dims are -2..1");
  });

  it("norm", () => {
    expect(Tensor.from([3, 4]).norm().item()).toBe(5);
    expectValues(Tensor.from([[3, 4], [-6, 8]]).norm(-1), [2], [5, 10]);
    expectValues(Tensor.from([[3, 4], [-6, 8]]).norm(0, { p: 1 }), [2], [9, 12]);
    expectValues(Tensor.from([[3, 4], [-6, 8]]).norm(1, { p: Infinity, keepdim: true }), [2, 1], [4, 8]);
    expect(Tensor.from([1, 0, -2, 0]).norm(undefined, { p: 0 }).item()).toBe(2);
    expect(Tensor.from([1, 2]).norm(0, { p: 3 }).item()).toBeCloseTo(9 ** (1 / 3), 6);
    expect(() => Tensor.from([1]).norm(0, { p: -1 })).toThrow("norm: p must be >= 0 or Infinity, got -1");
  });
});

describe("softmax and logSoftmax", () => {
  it("hand-computed values along the last dim", () => {
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0]! + e[1]! + e[2]!;
    expectValues(Tensor.from([[1, 2, 3], [0, 0, 0]]).softmax(), [2, 3], [e[0]! / z, e[1]! / z, e[2]! / z, 1 / 3, 1 / 3, 1 / 3], 1e-7);
    expectValues(Tensor.from([1, 2, 3]).logSoftmax(), [3], [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z)], 1e-6);
  });

  it("rows sum to 1 and logSoftmax = log(softmax), along any dim", () => {
    const x = Tensor.arange(24).reshape([2, 3, 4]).mul(Tensor.from([0.3, -1.7, 2.1, 0.05])).map(Math.sin).scale(4);
    for (const dim of [0, 1, 2, -1, -2]) {
      const p = x.softmax(dim);
      const sums = p.sum(dim).toArray();
      for (const s of sums) expect(s).toBeCloseTo(1, 6);
      expect(x.logSoftmax(dim).allClose(p.log(), { atol: 1e-6 })).toBe(true);
    }
    // dim 1 by hand for one lane: x[1, :, 2]
    const lane = [x.get(1, 0, 2), x.get(1, 1, 2), x.get(1, 2, 2)];
    const zl = lane.reduce((s, v) => s + Math.exp(v), 0);
    expect(x.softmax(1).get(1, 2, 2)).toBeCloseTo(Math.exp(lane[2]!) / zl, 6);
  });

  it("is stable for large logits and handles -Infinity masks", () => {
    expectValues(Tensor.from([1000, 1000]).softmax(), [2], [0.5, 0.5]);
    expectValues(Tensor.from([-1000, 0]).logSoftmax(), [2], [-1000, 0]);
    expectValues(Tensor.from([0, -Infinity, 0]).softmax(), [3], [0.5, 0, 0.5]);
    expectValues(Tensor.from([0, -Infinity]).logSoftmax(), [2], [0, -Infinity]);
  });

  it("bad dims", () => {
    expect(() => m23().softmax(2)).toThrow("softmax: dim 2 is out of range for shape [2, 3]: valid dims are -2..1");
    expect(() => m23().logSoftmax(-3)).toThrow("logSoftmax: dim -3 is out of range for shape [2, 3]: valid dims are -2..1");
  });
});

describe("topk", () => {
  it("order, values and indices, ties lower index first", () => {
    const { values, indices } = Tensor.from([1, 9, 3, 9, -2]).topk(3);
    expectValues(values, [3], [9, 9, 3]);
    expect(indices).toEqual([1, 3, 2]);
    const low = Tensor.from([1, 9, 3, 9, -2]).topk(2, 0, { largest: false });
    expectValues(low.values, [2], [-2, 1]);
    expect(low.indices).toEqual([4, 0]);
    expect(Tensor.from([5, 5, 5]).topk(3).indices).toEqual([0, 1, 2]);
  });

  it("along inner and outer dims of a 2-D tensor", () => {
    const t = Tensor.from([[0.1, 0.7, 0.2], [0.5, 0.4, 0.9]]);
    const r = t.topk(2);
    expectValues(r.values, [2, 2], [0.7, 0.2, 0.9, 0.5]);
    expect(r.indices).toEqual([1, 2, 2, 0]);
    const c = t.topk(1, 0);
    expectValues(c.values, [1, 3], [0.5, 0.7, 0.9]);
    expect(c.indices).toEqual([1, 0, 1]);
  });

  it("the small-k buffer and the full sort agree with a stable sort, ties and NaN included", () => {
    // Values drawn from a few levels so ties are common; a NaN in lane 1.
    const n = 300;
    const data = Array.from({ length: 3 * n }, (_, i) => ((i * 7919) % 13) - 6);
    data[n + 17] = NaN;
    const t = Tensor.from(data, [3, n]);
    for (const largest of [true, false]) {
      for (const k of [0, 1, 5, 64, 65, 200, n]) {
        const { values, indices } = t.topk(k, -1, { largest });
        expect(values.shape).toEqual([3, k]);
        for (let r = 0; r < 3; r++) {
          const lane = data.slice(r * n, (r + 1) * n);
          const key = (v: number): number => (Number.isNaN(v) ? (largest ? -Infinity : Infinity) : largest ? -v : v);
          const expected = lane.map((_, j) => j).sort((a, b) => key(lane[a]!) - key(lane[b]!) || a - b).slice(0, k);
          expect(indices.slice(r * k, (r + 1) * k), `largest ${largest}, k ${k}, row ${r}`).toEqual(expected);
          expect(values.select(0, r).toArray()).toEqual(expected.map((j) => lane[j]!));
        }
      }
    }
  });

  it("NaN counts as the largest; k bounds", () => {
    expect(Tensor.from([1, NaN, 3]).topk(2).indices).toEqual([1, 2]);
    expect(Tensor.from([1, NaN, 3]).topk(2, -1, { largest: false }).indices).toEqual([0, 2]);
    expect(Tensor.from([1, 2]).topk(0).values.shape).toEqual([0]);
    expect(() => Tensor.from([1, 2]).topk(3)).toThrow("topk: k must be an integer in 0..2 (the size of dim 0 of shape [2]), got 3");
    expect(() => m23().topk(1, 2)).toThrow("topk: dim 2 is out of range for shape [2, 3]: valid dims are -2..1");
  });
});

describe("comparison", () => {
  it("allClose uses atol + rtol * |other|", () => {
    const a = Tensor.from([1, 100]);
    expect(a.allClose(Tensor.from([1, 100]))).toBe(true);
    expect(a.allClose(Tensor.from([1, 100.0005]))).toBe(true); // 5e-4 <= 1e-5 * 100
    expect(a.allClose(Tensor.from([1, 100.01]))).toBe(false);
    expect(a.allClose(Tensor.from([1.01, 100]), { atol: 0.02 })).toBe(true);
    expect(a.allClose(Tensor.from([1.01, 100]), { rtol: 0 })).toBe(false);
    expect(Tensor.from([Infinity]).allClose(Tensor.from([Infinity]))).toBe(true);
    expect(Tensor.from([Infinity]).allClose(Tensor.from([-Infinity]))).toBe(false);
    expect(Tensor.from([Infinity]).allClose(Tensor.from([1e30]), { rtol: 1 })).toBe(false);
    expect(Tensor.from([NaN]).allClose(Tensor.from([NaN]))).toBe(false);
    expect(Tensor.from([NaN]).allClose(Tensor.from([NaN]), { equalNan: true })).toBe(true);
    expect(() => a.allClose(Tensor.from([[1, 100]]))).toThrow("allClose: shapes [2] and [1, 2] differ");
  });

  it("equals is exact and shape-aware", () => {
    expect(m23().equals(m23())).toBe(true);
    expect(m23().equals(m23().reshape([3, 2]))).toBe(false);
    expect(m23().equals(m23().add(1e-3))).toBe(false);
    expect(Tensor.from([NaN]).equals(Tensor.from([NaN]))).toBe(false);
    expect(Tensor.from([0]).equals(Tensor.from([-0]))).toBe(true);
  });
});

describe("determinism", () => {
  it("the same call twice gives identical bits", () => {
    const x = Tensor.arange(2 * 5 * 7).reshape([2, 5, 7]).map((v) => Math.sin(v * 1.7) * 3);
    const w = Tensor.arange(7 * 3).reshape([7, 3]).map((v) => Math.cos(v));
    const bits = (t: Tensor): number[] => Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.size));
    for (const f of [(t: Tensor) => t.matmul(w), (t: Tensor) => t.logSoftmax(1), (t: Tensor) => t.norm([0, 2]), (t: Tensor) => t.add(w.select(1, 0))]) {
      expect(bits(f(x))).toEqual(bits(f(x)));
    }
  });
});

describe("toString", () => {
  it("small tensors in full", () => {
    expect(m23().toString()).toBe("Tensor([2, 3]) [[1, 2, 3], [4, 5, 6]]");
    expect(String(Tensor.from(2.5))).toBe("Tensor([]) 2.5");
    expect(String(Tensor.zeros([2, 0]))).toBe("Tensor([2, 0]) [[], []]");
    expect(String(Tensor.from([0.1, 1e-7, 1200.25, -2.5, 1 / 3, NaN, -Infinity]))).toBe(
      "Tensor([7]) [0.1, 1e-7, 1200, -2.5, 0.3333, NaN, -Infinity]",
    );
  });

  it("console.log in Node shows the preview", () => {
    expect(inspect(Tensor.from([[1, 2]]))).toBe("Tensor([1, 2]) [[1, 2]]");
  });

  it("large tensors elide the middle of each dim", () => {
    expect(String(Tensor.arange(100))).toBe("Tensor([100]) [0, 1, 2, ..., 97, 98, 99]");
    expect(String(Tensor.arange(100).reshape([10, 10]))).toBe(
      "Tensor([10, 10]) [[0, 1, 2, ..., 7, 8, 9], [10, 11, 12, ..., 17, 18, 19], [20, 21, 22, ..., 27, 28, 29], ..., " +
        "[70, 71, 72, ..., 77, 78, 79], [80, 81, 82, ..., 87, 88, 89], [90, 91, 92, ..., 97, 98, 99]]",
    );
    expect(String(Tensor.zeros([1, 20, 50257])).length).toBeLessThan(200);
  });
});
