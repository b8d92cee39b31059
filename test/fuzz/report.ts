// The fuzz report as a Markdown table (for the README) and a one-line summary per failure.

import type { FuzzReport } from "./runner.js";

export function formatReport(report: FuzzReport): string {
  const lines = [
    `seed ${report.seed}: ${report.cases} cases in ${(report.ms / 1000).toFixed(1)} s, ${report.failures.length === 0 ? "no failures" : `${Object.values(report.targets).reduce((a, t) => a + t.failures, 0)} failures`}`,
    "",
    "| category | cases | success | typed refusals | failures | slowest ms | max alloc / bound | top outcomes |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const [name, t] of Object.entries(report.targets)) {
    const top = Object.entries(t.outcomes).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k.replace("ModelFormatError:", "")} ${v}`).join(", ");
    lines.push(`| ${name} | ${t.cases} | ${t.ok} | ${t.refused} | ${t.failures} | ${t.maxMs.toFixed(0)} | ${t.maxAllocRatio.toFixed(2)} | ${top} |`);
  }
  for (const f of report.failures) lines.push("", `FAIL ${f.target} [${f.kind}] ${f.detail}`, `  replay: ${f.replay}`, `  input: ${f.input}`);
  return lines.join("\n");
}
