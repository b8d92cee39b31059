import type { Engine } from "../engine/engine.js";

/** Buffers in the engine's memory for one computation, freed together when it ends. */
export interface EngineBuffers {
  /** A copy of `data` in the engine's memory. */
  upload(data: Float32Array): number;
  /** `floats` uninitialised floats. */
  alloc(floats: number): number;
}

/**
 * Runs `body` with buffers it uploads or allocates on the engine, and frees every one of them
 * afterwards, also when `body` throws: the patching code's kernel calls outside the forward pass.
 */
export function withEngineBuffers<T>(engine: Engine, body: (buffers: EngineBuffers) => T): T {
  const owned: number[] = [];
  const keep = (ptr: number) => { owned.push(ptr); return ptr; };
  try {
    return body({ upload: (data) => keep(engine.upload(data)), alloc: (floats) => keep(engine.alloc(floats)) });
  } finally {
    for (const ptr of owned) engine.free(ptr);
  }
}
