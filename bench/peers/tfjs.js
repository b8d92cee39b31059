// Peer: @tensorflow/tfjs-backend-wasm (XNNPACK on WASM SIMD), one thread.
// Dev dependency of the benchmarks only.

/** Loads tfjs with the wasm backend; returns tf, or throws with a clear message if it is not installed. */
export async function loadTfjsWasm() {
  let tf;
  let wasm;
  try {
    tf = await import("@tensorflow/tfjs-core");
    wasm = await import("@tensorflow/tfjs-backend-wasm");
  } catch (e) {
    throw new Error(`the tfjs peer needs @tensorflow/tfjs-core and @tensorflow/tfjs-backend-wasm (npm ci): ${e.message}`);
  }
  // Must precede setBackend: the thread pool is sized when the backend initialises.
  wasm.setThreadsCount(1);
  if (!(await tf.setBackend("wasm"))) throw new Error("tfjs: the wasm backend failed to initialise");
  await tf.ready();
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return { tf, simd, threads: wasm.getThreadsCount() };
}

/**
 * A matMul on fixed operands: a: [m, k] · b ([k, n], or [n, k] when transB = 1) -> [m, n].
 * The wasm backend runs kernels synchronously, so disposing the result ends a call.
 */
export function tfjsMatMul(tf, { m, n, k, transB }, a, b) {
  const ta = tf.tensor2d(a, [m, k]);
  const tb = tf.tensor2d(b, transB ? [n, k] : [k, n]);
  const product = () => tf.matMul(ta, tb, false, transB === 1);
  return {
    run: () => product().dispose(),
    output: () => {
      const t = product();
      const data = t.dataSync();
      t.dispose();
      return data;
    },
    dispose: () => { ta.dispose(); tb.dispose(); },
  };
}
