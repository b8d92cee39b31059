import type { Engine } from "../engine/engine.js";
import { GemmActivation } from "../engine/kernels.js";

/**
 * out [rows, n] = a [rows, k] @ b [k, n] (+ bias [n]) on the engine's GEMM, uploading both
 * operands. For matrices the engine does not hold in a usable layout (a few heads' rows of W_O,
 * some columns of W_U, an unfolded weight); a model's resident weights go through
 * {@link engineMatmulResident}.
 */
export function engineMatmul(engine: Engine, a: Float32Array, rows: number, k: number, b: Float32Array, n: number,
  bias?: Float32Array): Float32Array {
  const pb = engine.upload(b);
  const pbias = bias ? engine.upload(bias) : 0;
  try {
    return product(engine, a, rows, n, (pa, pc) => engine.kernels.gemm(pa, k, pb, n, pc, n, pbias, rows, n, k, 0, 0));
  } finally {
    engine.free(pb);
    if (pbias) engine.free(pbias);
  }
}

/**
 * out [rows, n] = a [rows, k] @ W [k, n] (+ bias [n]) where W is a weight the engine holds packed
 * (`prepackB`, as a model's weights are uploaded) and `bias` a pointer in its memory or 0: only
 * `a` is uploaded. Gives `engineMatmul`'s bits on the same operands.
 */
export function engineMatmulResident(engine: Engine, a: Float32Array, rows: number, k: number, packedW: number, n: number,
  bias: number): Float32Array {
  return product(engine, a, rows, n, (pa, pc) => engine.kernels.gemmPacked(pa, k, packedW, pc, n, bias, rows, n, k, 0, 0, n,
    GemmActivation.none));
}

/** Uploads a, runs `multiply(a, out)` into a fresh [rows, n] buffer and downloads it, freeing both. */
function product(engine: Engine, a: Float32Array, rows: number, n: number, multiply: (pa: number, pc: number) => void): Float32Array {
  const pa = engine.upload(a);
  const pc = engine.alloc(rows * n);
  try {
    multiply(pa, pc);
    return engine.download(pc, rows * n);
  } finally {
    engine.free(pa);
    engine.free(pc);
  }
}
