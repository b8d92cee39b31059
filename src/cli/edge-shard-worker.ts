// A worker_threads worker of `circuit edges --method exact --workers N`: loads the model, patches
// its edges, and posts progress and the scores back.

import { parentPort, workerData } from "node:worker_threads";
import { Engine } from "../engine/engine.js";
import { HookedTransformer } from "../model/hooked-transformer.js";
import { runEdges, type EdgeJob } from "./edge-shards.js";
import type { WorkerReply } from "./worker-jobs.js";

const job = workerData as EdgeJob;
const post = (reply: WorkerReply) => parentPort!.postMessage(reply);
try {
  const engine = await Engine.create({ backend: job.backend });
  const model = await HookedTransformer.fromPretrained(job.model, { processWeights: true, engine, dtype: job.dtype });
  const result = await runEdges(model, job, { onProgress: (p) => post({ type: "progress", done: p.done, total: p.total }) });
  post({ type: "result", scores: result.scores.data, variant: engine.variant, perPrompt: result.perPrompt?.scores.data });
} catch (e) {
  post({ type: "error", message: e instanceof Error ? e.message : String(e) });
}
