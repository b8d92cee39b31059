import { DEMO_BOS, DEMO_DIMS } from "./constants.js";
import { SeededRandom } from "./random.js";

/** Token-id prompts and answers for patching; also the CLI's prompts-file format. */
export interface DemoPrompts {
  /** [batch, 1 + 2n]: BOS, s_1..s_n, s_1..s_n. */
  clean: number[][];
  /** [batch, 1 + 2n]: BOS, t_1..t_n, s_1..s_n, where one t_i (i < n) equals s_n. */
  corrupted: number[][];
  /** Per row, the clean prediction at the last position: s_1, which followed s_n in the clean first half. */
  correct: number[];
  /** Per row, the corrupted prediction: t_{i+1}, which followed s_n in the corrupted first half. */
  incorrect: number[];
}

export interface DemoPromptsOptions {
  /** Rows (default 8). */
  batch?: number;
  /** n, the length of the repeated sequence (default 10; at most (nCtx − 1) / 2 = 15). */
  halfLength?: number;
  /** Seed of the token draws (default 1). */
  seed?: number;
}

/**
 * Induction prompts for the demo model, deterministic for a given seed. Each clean row
 * repeats a sequence of distinct random tokens, so at the last position (holding s_n) an
 * induction head predicts s_1, the token that followed s_n the first time. Each corrupted row
 * resamples the first half with tokens not in s, except that s_n is planted at one random
 * position i < n of it: there the induction head instead predicts t_{i+1}. The logit
 * difference correct − incorrect is therefore high on clean rows and low on corrupted ones.
 *
 * @example
 * ```ts
 * const { clean, corrupted, correct, incorrect } = demoPrompts({ batch: 4, halfLength: 8 });
 * clean[0].length;                      // 17 = BOS + 2 × 8
 * const metric = logitDiff({ correct, incorrect });
 * ```
 */
export function demoPrompts(options: DemoPromptsOptions = {}): DemoPrompts {
  const batch = options.batch ?? 8;
  const n = options.halfLength ?? 10;
  const seed = options.seed ?? 1;
  const maxHalf = Math.floor((DEMO_DIMS.nCtx - 1) / 2);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`demoPrompts: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(n) || n < 2 || n > maxHalf) {
    throw new Error(`demoPrompts: halfLength must be an integer in [2, ${maxHalf}] (the model's nCtx is ${DEMO_DIMS.nCtx}), got ${n}`);
  }
  if (!Number.isInteger(seed)) throw new Error(`demoPrompts: seed must be an integer, got ${seed}`);

  const rng = new SeededRandom(seed);
  const vocab = Array.from({ length: DEMO_DIMS.dVocab }, (_, v) => v).filter((v) => v !== DEMO_BOS);
  const prompts: DemoPrompts = { clean: [], corrupted: [], correct: [], incorrect: [] };
  for (let row = 0; row < batch; row++) {
    const s = rng.sample(vocab, n);
    // Distinct tokens everywhere, so each query has exactly one earlier match.
    const t = rng.sample(vocab.filter((v) => !s.includes(v)), n);
    const i = rng.int(n - 1); // 0-based: s_n sits at t[i], followed by t[i + 1] within the first half
    t[i] = s[n - 1]!;
    prompts.clean.push([DEMO_BOS, ...s, ...s]);
    prompts.corrupted.push([DEMO_BOS, ...t, ...s]);
    prompts.correct.push(s[0]!);
    prompts.incorrect.push(t[i + 1]!);
  }
  return prompts;
}
