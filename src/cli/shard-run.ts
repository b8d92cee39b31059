// Runs some units of an all-sources direct path sweep: in this thread, or split over N
// worker_threads (each loads the model itself), with one progress bar. Either way the
// scores are bit-identical to the whole sweep's.

import type { WeightDtype } from "../model/device-weights.js";
import type { BackendName } from "../engine/engine.js";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { getActPatchDirectPathAllSources } from "../patching/direct-path.js";
import { logitDiff } from "../patching/metrics.js";
import { planSweep } from "../patching/plan-sweep.js";
import type { SweepOptions, SweepPlanSummary } from "../patching/sweep-types.js";
import { PatchResult } from "../patching/result.js";
import { Tensor } from "../engine/tensor.js";
import { splitUnits, unitIndices, type ShardUnit } from "./shards.js";
import { runOnWorkers } from "./worker-jobs.js";

export interface ShardJob {
  /** Absolute folder path or URL of the checkpoint. */
  model: string;
  backend: BackendName;
  /** How the weights are stored (the worker loads the model the same way). */
  dtype: WeightDtype;
  prompts: { clean: number[][]; corrupted: number[][]; correct: number[]; incorrect: number[] };
  component: "q" | "k" | "v";
  mode: "linear" | "exact";
  strategy: "planned" | "naive";
  units: ShardUnit[];
}

/** The units' scores on `model`, with the other entries 0; the whole result's baseline, clean and options. */
export async function runUnits(model: HookedTransformer, job: Omit<ShardJob, "model" | "backend">, sweep: SweepOptions) {
  return getActPatchDirectPathAllSources(...unitArgs(model, job, sweep));
}

/** The plan of {@link runUnits} in this thread. */
export function planUnits(model: HookedTransformer, job: Omit<ShardJob, "model" | "backend">): SweepPlanSummary {
  return planSweep(getActPatchDirectPathAllSources, ...unitArgs(model, job, {}));
}

function unitArgs(model: HookedTransformer, job: Omit<ShardJob, "model" | "backend">, sweep: SweepOptions) {
  const { clean, corrupted, correct, incorrect } = job.prompts;
  return [model, corrupted, model.runWithCache(clean).cache, model.runWithCache(corrupted).cache, logitDiff({ correct, incorrect }),
    { ...sweep, component: job.component, mode: job.mode, strategy: job.strategy, sources: job.units }] as const;
}

/**
 * The same on `workers` threads: the units split as shards are (contiguous, balanced), the
 * scores put together unit by unit. `model` (loaded here) gives the baselines and shape.
 */
export async function runUnitsOnWorkers(model: HookedTransformer, job: ShardJob, workers: number, sweep: SweepOptions): Promise<PatchResult<object>> {
  // The baselines, the options record and the no-path mask, without patching anything.
  const frame = await runUnits(model, { ...job, units: [] }, {});
  const parts = splitUnits(job.units, model.cfg.nLayers, Math.min(workers, Math.max(1, job.units.length))).filter((p) => p.length > 0);
  const results = await runOnWorkers(new URL("./shard-worker.js", import.meta.url),
    parts.map((units) => ({ ...job, units } satisfies ShardJob)), model.engine.variant, sweep);
  const n = frame.scores.size;
  const scores = new Float32Array(n);
  const rows = frame.perPrompt === undefined ? undefined : new Float32Array(frame.perPrompt.scores.size);
  const B = rows === undefined ? 0 : rows.length / n;
  parts.forEach((units, k) => {
    const { scores: s, perPrompt } = results[k]!;
    for (const u of units) {
      for (const i of unitIndices(u, frame.scores.shape)) {
        scores[i] = s[i]!;
        if (rows !== undefined) for (let b = 0; b < B; b++) rows[b * n + i] = perPrompt![b * n + i]!;
      }
    }
  });
  const perPrompt = rows === undefined ? undefined : { ...frame.perPrompt!, scores: new Tensor(rows, frame.perPrompt!.scores.shape) };
  return new PatchResult(frame.op, new Tensor(scores, frame.scores.shape), frame.baseline, frame.clean, frame.options, frame.noPath, perPrompt);
}
