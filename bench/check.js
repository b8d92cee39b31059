// Shared by the benchmark suites: deterministic operands, and every output is checked against a
// reference before it is timed.

/** A deterministic fill in [-1, 1) (xorshift32). */
export function fill(n, seed) {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/** max |a - b| / max |b|: the error relative to the reference's magnitude. */
export function relError(a, b) {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return diff / Math.max(ref, 1e-30);
}
