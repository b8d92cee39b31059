import type { Engine } from "../engine/engine.js";
import { rotaryTables } from "../model/rotary-tables.js";
import { withEngineBuffers } from "./engine-buffers.js";

/**
 * x [batch, count, heads, d] rotated as the forward pass rotates queries and keys, the rows being
 * positions [first, first + count) of unpadded sequences; returns a new array. Used where a sweep
 * recomputes a few heads' attention by itself.
 */
export function engineRotary(engine: Engine, x: Float32Array, batch: number, count: number, heads: number, d: number,
  first: number, divisors: Float64Array): Float32Array {
  const pos = first + count;
  const ids = new Int32Array(batch * pos);
  for (let b = 0; b < batch; b++) for (let p = 0; p < pos; p++) ids[b * pos + p] = p;
  return withEngineBuffers(engine, (buffers) => {
    const px = buffers.upload(x);
    // The divisors' count is half the rotated dimensions (all d, or a partial rotary's first ones).
    const half = divisors.length;
    const cos = buffers.alloc(batch * count * half);
    const sin = buffers.alloc(batch * count * half);
    rotaryTables(engine.heap(), ids, batch, pos, first, count, divisors, cos, sin);
    engine.kernels.rotary(px, px, cos, sin, batch * count, heads, d, 2 * half);
    return engine.download(px, x.length);
  });
}
