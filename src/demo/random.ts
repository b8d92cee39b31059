/**
 * The demo's own seeded randomness. Everything here is integer and float arithmetic
 * (no Math.random, no transcendental functions), so the same seed gives the same bits
 * on every JavaScript engine.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`SeededRandom: seed must be an integer, got ${seed}`);
    this.state = seed >>> 0;
  }

  /** A uniform float in [0, 1) (mulberry32). */
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * An approximately standard-normal float: the Irwin–Hall sum of twelve uniforms minus 6
   * (mean 0, variance 1, bounded by ±6). Good enough for small random weights, and free
   * of Math.log/Math.cos, whose last bits may differ between engines.
   */
  normal(): number {
    let sum = 0;
    for (let i = 0; i < 12; i++) sum += this.uniform();
    return sum - 6;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** `count` distinct values drawn from `pool` without replacement, in random order. */
  sample(pool: readonly number[], count: number): number[] {
    if (count > pool.length) throw new Error(`SeededRandom.sample: cannot draw ${count} distinct values from ${pool.length}`);
    const copy = [...pool];
    for (let i = 0; i < count; i++) {
      const j = i + this.int(copy.length - i);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, count);
  }
}
