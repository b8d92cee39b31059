import type { Engine } from "../engine/engine.js";
import { GemmActivation } from "../engine/kernels.js";
import { packedProduct, type WeightDtype } from "../model/device-weights.js";
import { withEngineBuffers } from "./engine-buffers.js";

/**
 * out [rows, n] = a [rows, k] @ b [k, n] (+ bias [n]) on the engine's GEMM, uploading both
 * operands. For matrices the engine does not hold in a usable layout (a few heads' rows of W_O,
 * some columns of W_U, an unfolded weight); a model's resident weights go through
 * {@link engineMatmulResident}.
 */
export function engineMatmul(engine: Engine, a: Float32Array, rows: number, k: number, b: Float32Array, n: number,
  bias?: Float32Array): Float32Array {
  return withEngineBuffers(engine, (buffers) => {
    const pc = buffers.alloc(rows * n);
    engine.kernels.gemm(buffers.upload(a), k, buffers.upload(b), n, pc, n, bias ? buffers.upload(bias) : 0, rows, n, k, 0, 0);
    return engine.download(pc, rows * n);
  });
}

/**
 * out [rows, n] = a [rows, k] @ W [k, n] (+ bias [n]) where W is a weight the engine holds packed
 * (`prepackB`, as a model's weights are uploaded) and `bias` a pointer in its memory or 0: only
 * `a` is uploaded. Gives `engineMatmul`'s bits on the same operands.
 */
export function engineMatmulResident(engine: Engine, a: Float32Array, rows: number, k: number, packedW: number, n: number,
  bias: number, dtype: WeightDtype = "f32"): Float32Array {
  return withEngineBuffers(engine, (buffers) => {
    const pc = buffers.alloc(rows * n);
    packedProduct(engine.kernels, dtype)(buffers.upload(a), k, packedW, pc, n, bias, rows, n, k, 0, 0, n, GemmActivation.none);
    return engine.download(pc, rows * n);
  });
}
