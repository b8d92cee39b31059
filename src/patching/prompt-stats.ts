// Uncertainty over prompts: a result's per-prompt rows ([batch, n] entries) give each entry's
// standard error, a seeded bootstrap interval and a sign-flip permutation p-value.
import { SeededRandom } from "../demo/random.js";

/**
 * Per entry, the standard error of the mean over prompts: s / √B with s the sample standard
 * deviation (n − 1 in its denominator); NaN with fewer than two prompts.
 */
export function standardErrors(rows: Float32Array, batch: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (batch < 2) { out[i] = NaN; continue; }
    let mean = 0;
    for (let b = 0; b < batch; b++) mean += rows[b * n + i]!;
    mean /= batch;
    let ss = 0;
    for (let b = 0; b < batch; b++) ss += (rows[b * n + i]! - mean) ** 2;
    out[i] = Math.sqrt(ss / (batch - 1)) / Math.sqrt(batch);
  }
  return out;
}

/**
 * Per entry, the percentile bootstrap interval of the mean over prompts: `samples` resamplings
 * of the B prompts with replacement (the same resampled sets for every entry, drawn from a
 * mulberry32 stream seeded with `seed`, so every runtime gives the same numbers); with the
 * resampled means sorted as m_0 ≤ … ≤ m_{S−1} and α = 1 − level, low = m_⌊(α/2)(S−1)⌋ and
 * high = m_⌈(1−α/2)(S−1)⌉.
 */
export function bootstrapIntervals(rows: Float32Array, batch: number, n: number, options: { level: number; samples: number; seed: number }) {
  const { level, samples, seed } = options;
  const picks = bootstrapPicks(batch, samples, seed);
  const low = new Float32Array(n);
  const high = new Float32Array(n);
  const means = new Float64Array(samples);
  const alpha = 1 - level;
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < samples; s++) {
      let sum = 0;
      for (let b = 0; b < batch; b++) sum += rows[picks[s * batch + b]! * n + i]!;
      means[s] = sum / batch;
    }
    means.sort();
    low[i] = means[Math.floor((alpha / 2) * (samples - 1))]!;
    high[i] = means[Math.ceil((1 - alpha / 2) * (samples - 1))]!;
  }
  return { low, high };
}

/**
 * Per entry, the sign-flip permutation p-value of the per-prompt effects d_b = rows[b, i] −
 * reference[b] against zero: each of `samples` draws flips every prompt's sign with probability
 * ½ (the same flips for every entry, from a mulberry32 stream seeded with `seed`), and
 * p = (1 + #{draws with |mean(±d)| ≥ |mean(d)|}) / (1 + samples).
 */
export function signFlipPValues(rows: Float32Array, reference: Float64Array, batch: number, n: number,
  options: { samples: number; seed: number }): Float32Array {
  const { samples, seed } = options;
  const random = new SeededRandom(seed);
  const signs = new Int8Array(samples * batch);
  for (let i = 0; i < signs.length; i++) signs[i] = random.uniform() < 0.5 ? -1 : 1;
  const out = new Float32Array(n);
  const d = new Float64Array(batch);
  for (let i = 0; i < n; i++) {
    let observed = 0;
    for (let b = 0; b < batch; b++) {
      d[b] = rows[b * n + i]! - reference[b]!;
      observed += d[b]!;
    }
    observed = Math.abs(observed / batch);
    let extreme = 0;
    for (let s = 0; s < samples; s++) {
      let sum = 0;
      for (let b = 0; b < batch; b++) sum += signs[s * batch + b]! * d[b]!;
      // A draw as extreme as the observed mean (a relative tolerance for the all-plus draw's rounding).
      if (Math.abs(sum / batch) >= observed * (1 - 1e-12)) extreme++;
    }
    out[i] = (1 + extreme) / (1 + samples);
  }
  return out;
}

/** `samples` resamplings of `batch` prompts with replacement, [samples, batch], from a mulberry32 stream seeded with `seed`. */
function bootstrapPicks(batch: number, samples: number, seed: number): Int32Array {
  const random = new SeededRandom(seed);
  const picks = new Int32Array(samples * batch);
  for (let i = 0; i < picks.length; i++) picks[i] = Math.floor(random.uniform() * batch);
  return picks;
}

/**
 * The percentile bootstrap interval of a circuit's faithfulness, a ratio of means over prompts:
 * F = (mean m − mean c) / (mean k − mean c), m the circuit's per-prompt metric, c the corrupted
 * and k the clean run's. Each resampling (the same sets as {@link bootstrapIntervals} for the same
 * seed) recomputes F from its prompts; resamplings whose clean and corrupted means are equal are
 * left out, and the percentiles are taken over the rest as there.
 */
export function bootstrapFaithfulness(metric: Float64Array, corrupted: Float64Array, clean: Float64Array,
  options: { level: number; samples: number; seed: number }): { low: number; high: number } {
  const batch = metric.length;
  const { level, samples, seed } = options;
  const picks = bootstrapPicks(batch, samples, seed);
  const values: number[] = [];
  for (let s = 0; s < samples; s++) {
    let m = 0;
    let c = 0;
    let k = 0;
    for (let b = 0; b < batch; b++) {
      const p = picks[s * batch + b]!;
      m += metric[p]!;
      c += corrupted[p]!;
      k += clean[p]!;
    }
    if (k !== c) values.push((m - c) / (k - c));
  }
  if (values.length === 0) throw new Error("faithfulness interval: every resampling has equal clean and corrupted metrics");
  const sorted = Float64Array.from(values).sort();
  const alpha = 1 - level;
  return { low: sorted[Math.floor((alpha / 2) * (sorted.length - 1))]!, high: sorted[Math.ceil((1 - alpha / 2) * (sorted.length - 1))]! };
}
