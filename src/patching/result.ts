import { Tensor } from "../engine/tensor.js";
import { bootstrapIntervals, signFlipPValues, standardErrors } from "./prompt-stats.js";

/** A result's per-prompt rows: each prompt's scores [batch, ...shape] and its corrupted and clean metric. */
export interface PerPromptRows {
  scores: Tensor;
  baseline: Float64Array;
  clean: Float64Array;
}

/**
 * A patching sweep's outcome, carrying its meaning: the scores, the metric of the
 * unpatched corrupted run (`baseline`) and of the clean run (`clean`), which entries
 * have no causal path (direct path patching), and the options that produced it.
 */
export class PatchResult<Options extends object = Record<string, unknown>> {
  constructor(
    /** Operation name, e.g. `direct_path` or `act_patch_resid_pre`. */
    readonly op: string,
    /** The metric of each patched run, in TransformerLens's shape. */
    readonly scores: Tensor,
    /** Metric of the corrupted run with no patch. */
    readonly baseline: number,
    /** Metric of the clean run. */
    readonly clean: number,
    readonly options: Options,
    /** Same shape as `scores`: true where no causal path exists (scores there are 0). */
    readonly noPath?: Uint8Array,
    /**
     * Each prompt's own metric, computed in the same passes (with a metric that has
     * `perPrompt`, as the built-in ones do): `scores` [batch, ...scores' shape] (their mean over
     * prompts is `scores`), and each prompt's corrupted and clean metric.
     */
    readonly perPrompt?: PerPromptRows,
  ) {}

  /**
   * (score - baseline) / (clean - baseline): 0 = no effect, 1 = the whole clean effect. No-path
   * entries stay 0. With `{ perPrompt: true }`, each prompt's own, [batch, ...shape], by its own
   * baseline and clean metric.
   */
  normalized(options: { perPrompt?: boolean } = {}): Tensor {
    if (options.perPrompt) {
      const rows = this.rows("normalized");
      const n = this.scores.size;
      const out = new Float32Array(rows.scores.size);
      for (let b = 0; b < rows.baseline.length; b++) {
        const range = rows.clean[b]! - rows.baseline[b]!;
        if (range === 0) throw new Error(`normalized: prompt ${b}'s clean and corrupted metrics are equal, so it has nothing to normalise by`);
        for (let i = 0; i < n; i++) out[b * n + i] = this.noPath?.[i] ? 0 : (rows.scores.data[b * n + i]! - rows.baseline[b]!) / range;
      }
      return new Tensor(out, rows.scores.shape);
    }
    const range = this.clean - this.baseline;
    if (range === 0) throw new Error("normalized: the clean and corrupted metrics are equal, so there is nothing to normalise by");
    const out = new Float32Array(this.scores.size);
    for (let i = 0; i < out.length; i++) {
      out[i] = this.noPath?.[i] ? 0 : (this.scores.data[i]! - this.baseline) / range;
    }
    return new Tensor(out, this.scores.shape);
  }

  /**
   * The standard error over prompts of each entry's mean: s / √batch, s the sample standard
   * deviation of the per-prompt scores (NaN with one prompt). Same shape as `scores`.
   * @example
   * ```ts
   * const r = await getActPatchResidPre(model, corrupted, cleanCache, logitDiff(answers));
   * r.stderr().get(3, 7);   // uncertainty of the score at layer 3, position 7
   * ```
   */
  stderr(): Tensor {
    const rows = this.rows("stderr");
    return new Tensor(standardErrors(rows.scores.data, rows.baseline.length, this.scores.size), this.scores.shape);
  }

  /**
   * Percentile bootstrap intervals of each entry over prompts (resampling prompts with
   * replacement; defaults: level 0.95, 1000 samples, seed 0). Deterministic for a seed, the same
   * numbers in every runtime. See `bootstrapIntervals` in prompt-stats.ts for the formula.
   */
  bootstrapCi(options: { level?: number; samples?: number; seed?: number } = {}): { low: Tensor; high: Tensor } {
    const rows = this.rows("bootstrapCi");
    const level = options.level ?? 0.95;
    const samples = options.samples ?? 1000;
    const seed = options.seed ?? 0;
    if (!(level > 0 && level < 1)) throw new Error(`bootstrapCi: level must be in (0, 1), got ${level}`);
    if (!Number.isInteger(samples) || samples < 1) throw new Error(`bootstrapCi: samples must be a positive integer, got ${samples}`);
    if (!Number.isInteger(seed)) throw new Error(`bootstrapCi: seed must be an integer, got ${seed}`);
    const { low, high } = bootstrapIntervals(rows.scores.data, rows.baseline.length, this.scores.size, { level, samples, seed });
    return { low: new Tensor(low, this.scores.shape), high: new Tensor(high, this.scores.shape) };
  }

  /**
   * Each entry's sign-flip permutation p-value: is its per-prompt effect (score − that prompt's
   * corrupted metric) different from zero? Defaults: 1000 samples, seed 0. See `signFlipPValues`.
   */
  permutationPValue(options: { samples?: number; seed?: number } = {}): Tensor {
    const rows = this.rows("permutationPValue");
    const samples = options.samples ?? 1000;
    const seed = options.seed ?? 0;
    if (!Number.isInteger(samples) || samples < 1) throw new Error(`permutationPValue: samples must be a positive integer, got ${samples}`);
    if (!Number.isInteger(seed)) throw new Error(`permutationPValue: seed must be an integer, got ${seed}`);
    return new Tensor(signFlipPValues(rows.scores.data, rows.baseline, rows.baseline.length, this.scores.size, { samples, seed }), this.scores.shape);
  }

  private rows(op: string): PerPromptRows {
    if (this.perPrompt === undefined) {
      throw new Error(`${op}: this result has no per-prompt rows (its metric has no perPrompt(logits); logitDiff, logProb and normalize have one)`);
    }
    return this.perPrompt;
  }

  /** A JSON-ready object: `{ op, shape, scores, noPath?, baseline, clean, normalized, options }`. */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = {
      op: this.op,
      shape: [...this.scores.shape],
      scores: Array.from(this.scores.data),
    };
    if (this.noPath) json["noPath"] = Array.from(this.noPath, (x) => x === 1);
    json["baseline"] = this.baseline;
    json["clean"] = this.clean;
    json["normalized"] = this.clean === this.baseline ? null : Array.from(this.normalized().data);
    json["options"] = this.options;
    return json;
  }
}
