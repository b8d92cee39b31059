import type { SweepPlanSummary } from "./sweep-types.js";
import type { PatchResult } from "./result.js";

/** A sweep function that can also plan itself: `.plan(...)` takes the same arguments and returns the plan. */
export type PlannableSweep<A extends unknown[]> = ((...args: A) => Promise<PatchResult<object>>) & {
  plan: (...args: A) => SweepPlanSummary;
};

/**
 * The plan of a patching sweep, without running it: call it with the sweep function and the
 * arguments you would run it with. Every `getActPatch*` function, `getActPatchDirectPath`,
 * `getActPatchDirectPathAllSources` and `genericActivationPatch` can be planned.
 *
 * The plan says how many stacked forward passes the sweep makes, how many block × token
 * evaluations and token positions it recomputes (against the naive loop's), the activation
 * memory of its largest pass, and its estimated speedup over the naive loop (the ratio of the
 * floating-point work of their matrix products). Planning validates the arguments as the run
 * does (the same errors, before any work) and runs no patched forward pass; `onPlan` of the real
 * run receives the same numbers.
 *
 * @example
 * ```ts
 * import { getActPatchDirectPath, logitDiff, planSweep } from "hooklens";
 * const { cache: clean } = model.runWithCache(cleanTokens);
 * const { cache: corrupted } = model.runWithCache(corruptedTokens);
 * const metric = logitDiff({ correct, incorrect });
 * const options = { srcLayer: 0, srcHead: 1, component: "q" } as const;
 * const plan = planSweep(getActPatchDirectPath, model, corruptedTokens, clean, corrupted, metric, options);
 * console.log(`${plan.patches} patched runs in ${plan.passes} passes, ~×${plan.estimatedSpeedup.toFixed(1)} vs naive`);
 * const result = await getActPatchDirectPath(model, corruptedTokens, clean, corrupted, metric, options);
 * ```
 */
export function planSweep<A extends unknown[]>(sweep: PlannableSweep<A>, ...args: A): SweepPlanSummary {
  if (typeof sweep !== "function" || typeof sweep.plan !== "function") {
    throw new Error("planSweep: the first argument must be a patching sweep function (getActPatchDirectPath, getActPatchResidPre, ...)");
  }
  return sweep.plan(...args);
}
