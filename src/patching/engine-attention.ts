import type { Engine } from "../engine/engine.js";
import { withEngineBuffers } from "./engine-buffers.js";

/**
 * z [batch, qLen, nHeads, d] = causal attention of q [batch, qLen, nHeads, d] over k, v
 * [batch, kLen, nKvHeads, d] on the engine's kernel, query i sitting at position kLen - qLen + i
 * (as in the forward pass; `window` > 0 a sliding window). Used where a sweep recomputes a few
 * heads' attention by itself.
 */
export function engineAttention(engine: Engine, q: Float32Array, k: Float32Array, v: Float32Array, batch: number, qLen: number,
  kLen: number, nHeads: number, nKvHeads: number, d: number, scale: number, window = 0): Float32Array {
  return withEngineBuffers(engine, (buffers) => {
    const pz = buffers.alloc(batch * qLen * nHeads * d);
    engine.kernels.attention(buffers.upload(q), buffers.upload(k), buffers.upload(v), pz, 0, batch, qLen, kLen, nHeads, nKvHeads, d,
      scale, 0, nHeads, window);
    return engine.download(pz, batch * qLen * nHeads * d);
  });
}
