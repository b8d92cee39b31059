import type { Engine } from "../engine/engine.js";

/**
 * out [rows, n] = a [rows, k] @ b [k, n] (+ bias [n]) on the engine's GEMM. Used for the
 * per-source and per-destination projections of a sweep, which are too large for plain JS
 * loops once a model is GPT-2 sized.
 */
export function engineMatmul(engine: Engine, a: Float32Array, rows: number, k: number, b: Float32Array, n: number,
  bias?: Float32Array): Float32Array {
  const pa = engine.upload(a);
  const pb = engine.upload(b);
  const pbias = bias ? engine.upload(bias) : 0;
  const pc = engine.alloc(rows * n);
  try {
    engine.kernels.gemm(pa, k, pb, n, pc, n, pbias, rows, n, k, 0, 0);
    return engine.download(pc, rows * n);
  } finally {
    engine.free(pa);
    engine.free(pb);
    if (pbias) engine.free(pbias);
    engine.free(pc);
  }
}
