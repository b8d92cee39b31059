// Runs jobs on worker_threads, one job per worker, with their progress summed into one report:
// what `--workers N` of a sharded sweep does on one machine.

import { Worker } from "node:worker_threads";
import type { SweepOptions } from "../patching/sweep-types.js";

/** What a sweep worker posts back. */
export type WorkerReply =
  | { type: "progress"; done: number; total: number }
  | { type: "result"; scores: Float32Array; variant: string; perPrompt?: Float32Array }
  | { type: "error"; message: string };

/** A worker's scores and, where its metric gives them, its per-prompt rows [batch, scores]. */
export interface WorkerScores {
  scores: Float32Array;
  perPrompt?: Float32Array;
}

/**
 * Starts one worker of `script` per job (its `workerData`), reports their summed progress to
 * `sweep.onProgress`, and resolves with each job's scores (and per-prompt rows) in order. Rejects with the first
 * failure (naming the worker), when a worker ran other kernels than `variant` (their last bits
 * differ), or with an AbortError when `sweep.signal` aborts; every worker is terminated at the end.
 */
export async function runOnWorkers(script: URL, jobs: readonly object[], variant: string, sweep: SweepOptions): Promise<WorkerScores[]> {
  const progress = jobs.map(() => ({ done: 0, total: 0 }));
  const started = Date.now();
  const threads: Worker[] = [];
  const onAbort = () => threads.forEach((t) => void t.terminate());
  sweep.signal?.addEventListener("abort", onAbort);
  try {
    return await Promise.all(jobs.map((job, k) => new Promise<WorkerScores>((resolve, reject) => {
      const worker = new Worker(script, { workerData: job });
      threads.push(worker);
      worker.on("message", (m: WorkerReply) => {
        if (m.type === "progress") {
          progress[k] = { done: m.done, total: m.total };
          const done = progress.reduce((s, p) => s + p.done, 0);
          const total = progress.reduce((s, p) => s + p.total, 0);
          const elapsedMs = Date.now() - started;
          sweep.onProgress?.({ done, total, elapsedMs, etaMs: done > 0 ? (elapsedMs / done) * (total - done) : undefined });
        } else if (m.type === "result") {
          if (m.variant !== variant) reject(new Error(`worker ${k + 1} ran the ${m.variant} kernels, this thread the ${variant} ones`));
          else resolve({ scores: m.scores, perPrompt: m.perPrompt });
        } else reject(new Error(`worker ${k + 1}: ${m.message}`));
      });
      worker.on("error", reject);
      worker.on("exit", (code) => {
        if (sweep.signal?.aborted) reject(Object.assign(new Error("the sweep was aborted"), { name: "AbortError" }));
        else if (code !== 0) reject(new Error(`worker ${k + 1} exited with code ${code}`));
      });
    })));
  } finally {
    sweep.signal?.removeEventListener("abort", onAbort);
    await Promise.all(threads.map((t) => t.terminate()));
  }
}
