// Peer: onnxruntime-web (the WASM engine under transformers.js), CPU "wasm" execution
// provider, running ONNX models the bench exports itself. Dev dependency of the benchmarks only.
//
// Threads under Node: onnxruntime-web reads env.wasm.numThreads once, when its WASM module
// starts, and keeps one module per realm; the 1-thread and 2-thread runtimes therefore each
// live in a worker thread of their own (ort-worker.js), and the bench talks to them by message.
import { Worker } from "node:worker_threads";

/**
 * Starts onnxruntime-web with `threads` threads in a worker and creates one session per model.
 * @param models { name: ONNX bytes (Uint8Array) }; the bytes are copied to the worker
 * @returns { threads (as the runtime reports it after start-up), version, run(model, tokens, batch, pos, fetch), close() }
 */
export async function startOrt(threads, models) {
  const worker = new Worker(new URL("./ort-worker.js", import.meta.url));
  let next = 0;
  const pending = new Map();
  worker.on("message", ({ id, result, error }) => {
    const { resolve, reject } = pending.get(id);
    pending.delete(id);
    if (error === undefined) resolve(result);
    else reject(new Error(`onnxruntime-web (${threads} thread(s)): ${error}`));
  });
  worker.on("error", (e) => {
    for (const { reject } of pending.values()) reject(e);
    pending.clear();
  });
  const call = (op, args) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args });
  });

  const info = await call("load", { threads, models });
  return {
    ...info,
    /** One forward; with `fetch` the output comes back as { data, dims }. */
    run: (model, tokens, batch, pos, fetch = false) => call("run", { model, tokens, batch, pos, fetch }),
    close: async () => {
      await call("close", {});
      await worker.terminate();
    },
  };
}

/** token rows -> the int64 [batch * pos] input_ids */
export function int64Tokens(tokens) {
  return BigInt64Array.from(tokens.flat(), (t) => BigInt(t));
}
