// Worker side of the onnxruntime-web peer (see ort.js). onnxruntime-web fixes its thread
// count once per JavaScript realm, when its WASM module starts, so each thread count gets
// a worker of its own. Messages: { load }, { run }, { close }; every reply carries the id asked.
import { parentPort } from "node:worker_threads";

let ort;
const sessions = new Map();

async function load({ threads, models }) {
  ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  for (const [name, bytes] of Object.entries(models)) {
    sessions.set(name, await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
  }
  // Read back after start-up: onnxruntime-web drops to 1 when the runtime cannot run threads.
  return { threads: ort.env.wasm.numThreads, version: ort.env.versions?.web ?? "?" };
}

async function run({ model, tokens, batch, pos, fetch }) {
  const session = sessions.get(model);
  const input = new ort.Tensor("int64", tokens, [batch, pos]);
  const out = await session.run({ [session.inputNames[0]]: input });
  const tensor = out[session.outputNames[0]];
  // The output is already a JS copy (as hooklens's download); send it only when asked.
  return fetch ? { data: tensor.data, dims: tensor.dims } : {};
}

parentPort.on("message", async ({ id, op, args }) => {
  try {
    if (op === "load") parentPort.postMessage({ id, result: await load(args) });
    else if (op === "run") parentPort.postMessage({ id, result: await run(args) });
    else if (op === "close") {
      for (const s of sessions.values()) await s.release();
      parentPort.postMessage({ id, result: {} });
    }
  } catch (e) {
    parentPort.postMessage({ id, error: `${e?.message ?? e}` });
  }
});
