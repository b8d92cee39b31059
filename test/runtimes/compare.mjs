// Compares a runtime's smoke output with Node's, leaf by leaf: numbers agree when
// |a - b| <= 1e-5 · max(1, |b|); everything else must be equal.

export const TOLERANCE = 1e-5;

/** One check per top-level section (forward, runWithCache, ...): { name, ok, detail }. */
export function compareSmoke(actual, expected, tolerance = TOLERANCE) {
  return Object.keys(expected).filter((k) => k !== "variant").map((section) => {
    const problems = [];
    let worst = 0;
    const walk = (a, e, path) => {
      if (typeof e === "number") {
        if (typeof a !== "number") return problems.push(`${path}: expected a number, got ${JSON.stringify(a)}`);
        const diff = Math.abs(a - e);
        worst = Math.max(worst, diff);
        if (!(diff <= tolerance * Math.max(1, Math.abs(e)))) problems.push(`${path}: ${a} vs ${e} (|diff| ${diff.toExponential(2)})`);
      } else if (Array.isArray(e)) {
        if (!Array.isArray(a) || a.length !== e.length) return problems.push(`${path}: expected ${e.length} entries, got ${Array.isArray(a) ? a.length : typeof a}`);
        e.forEach((x, i) => walk(a[i], x, `${path}[${i}]`));
      } else if (e !== null && typeof e === "object") {
        if (a === null || typeof a !== "object") return problems.push(`${path}: expected an object, got ${JSON.stringify(a)}`);
        for (const k of Object.keys(e)) walk(a[k], e[k], `${path}.${k}`);
      } else if (a !== e) {
        problems.push(`${path}: ${JSON.stringify(a)} vs ${JSON.stringify(e)}`);
      }
    };
    walk(actual?.[section], expected[section], section);
    const detail = problems.length === 0
      ? `max |diff| ${worst.toExponential(2)}`
      : `${problems.length} mismatches, first: ${problems.slice(0, 3).join("; ")}`;
    return { name: section, ok: problems.length === 0, detail };
  });
}
