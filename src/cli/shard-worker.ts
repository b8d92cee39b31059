// A worker_threads worker of `patch direct-path --workers N`: loads the model, runs its units
// of the all-sources sweep, and posts progress and the scores back.

import { parentPort, workerData } from "node:worker_threads";
import { Engine } from "../engine/engine.js";
import { HookedTransformer } from "../model/hooked-transformer.js";
import { getActPatchDirectPathAllSources } from "../patching/direct-path.js";
import { logitDiff } from "../patching/metrics.js";
import type { ShardJob } from "./shard-run.js";
import type { WorkerReply } from "./worker-jobs.js";

const job = workerData as ShardJob;
const post = (reply: WorkerReply) => parentPort!.postMessage(reply);
try {
  const engine = await Engine.create({ backend: job.backend });
  const model = await HookedTransformer.fromPretrained(job.model, { processWeights: true, engine, dtype: job.dtype });
  const { clean, corrupted, correct, incorrect } = job.prompts;
  const result = await getActPatchDirectPathAllSources(model, corrupted, model.runWithCache(clean).cache,
    model.runWithCache(corrupted).cache, logitDiff({ correct, incorrect }), {
      component: job.component, mode: job.mode, strategy: job.strategy, sources: job.units,
      onProgress: (p) => post({ type: "progress", done: p.done, total: p.total }),
    });
  post({ type: "result", scores: result.scores.data, variant: engine.variant, perPrompt: result.perPrompt?.scores.data });
} catch (e) {
  post({ type: "error", message: e instanceof Error ? e.message : String(e) });
}
