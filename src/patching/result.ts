import { Tensor } from "../engine/tensor.js";

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
  ) {}

  /** (score - baseline) / (clean - baseline): 0 = no effect, 1 = the whole clean effect. No-path entries stay 0. */
  normalized(): Tensor {
    const range = this.clean - this.baseline;
    if (range === 0) throw new Error("normalized: the clean and corrupted metrics are equal, so there is nothing to normalise by");
    const out = new Float32Array(this.scores.size);
    for (let i = 0; i < out.length; i++) {
      out[i] = this.noPath?.[i] ? 0 : (this.scores.data[i]! - this.baseline) / range;
    }
    return new Tensor(out, this.scores.shape);
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
