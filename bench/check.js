// Shared by the benchmark suites: every output is checked against a reference before it is timed.

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
