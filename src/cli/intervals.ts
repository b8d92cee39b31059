// The CLI's uncertainty flags: --ci LEVEL [--bootstrap N] [--seed S], shared by the patching and
// circuit commands, and the line that says how the intervals were made.

import type { PatchResult } from "../patching/result.js";
import type { FlagSpec, ParsedArgs } from "./args.js";
import { UsageError } from "./errors.js";

export interface IntervalOptions {
  /** Confidence level in (0, 1), e.g. 0.95. */
  level: number;
  samples: number;
  seed: number;
}

/** --ci 95 [--bootstrap 1000] [--seed 0]: bootstrap intervals and permutation p-values over the prompts. */
export const CI_FLAGS: readonly FlagSpec[] = [
  { name: "ci", kind: "string", value: "LEVEL", help: "add bootstrap intervals over the prompts at this level in percent (e.g. 95) and permutation p-values to the JSON, CSV and top list" },
  { name: "bootstrap", kind: "int", value: "N", help: "with --ci: resamplings (and sign-flip draws), default 1000" },
  { name: "seed", kind: "int", value: "S", help: "with --ci: the seed of the resampling, default 0 (the same numbers in every runtime)" },
];

/** The --ci flags' options, or undefined without --ci (then --bootstrap and --seed are refused). */
export function intervalFlags(args: ParsedArgs): IntervalOptions | undefined {
  const text = args.string("ci");
  if (text === undefined) {
    for (const flag of ["bootstrap", "seed"]) if (args.has(flag)) throw new UsageError(`--${flag} goes with --ci LEVEL`);
    return undefined;
  }
  const percent = Number(text);
  if (text.trim() === "" || !(percent > 0 && percent < 100)) throw new UsageError(`--ci must be a level in percent between 0 and 100 (e.g. 95), got ${JSON.stringify(text)}`);
  return { level: percent / 100, samples: args.int("bootstrap", 1000, 1, 1_000_000), seed: args.int("seed", 0, 0, 2 ** 31 - 1) };
}

/** "intervals: 95% bootstrap over 8 prompts (1000 resamplings, seed 0); ..." for a summary's header. */
export function describeIntervals(o: IntervalOptions, prompts: number | undefined, pValues = true): string {
  return `intervals: ${o.level * 100}% bootstrap over ${prompts ?? "?"} prompts (${o.samples} resamplings, seed ${o.seed})` +
    (pValues ? "; p-values from as many sign flips" : "");
}

/** A result's uncertainty over prompts: each score's bootstrap interval ends, sign-flip p-value and standard error. */
export function uncertainty(result: PatchResult<object>, o: IntervalOptions) {
  const { low, high } = result.bootstrapCi({ level: o.level, samples: o.samples, seed: o.seed });
  const pValue = result.permutationPValue({ samples: o.samples, seed: o.seed });
  return { low: low.data, high: high.data, pValue: pValue.data, stderr: result.stderr().data };
}

/** That uncertainty as the JSON fields every command writes with --ci: ci, ciLow, ciHigh, pValue, stderr. */
export function uncertaintyFields(result: PatchResult<object>, o: IntervalOptions, u = uncertainty(result, o)): Record<string, unknown> {
  return {
    ci: { level: o.level, samples: o.samples, seed: o.seed, prompts: result.perPrompt!.baseline.length },
    ciLow: Array.from(u.low), ciHigh: Array.from(u.high), pValue: Array.from(u.pValue), stderr: Array.from(u.stderr),
  };
}
