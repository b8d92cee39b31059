// `npm run fuzz`: the long run (FUZZ_CASES, default 100,000; FUZZ_SEED, default the time;
// FUZZ_TARGETS, comma-separated name prefixes). Writes bench/results/fuzz.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { expect, it } from "vitest";
import { formatReport } from "./report.js";
import { runFuzz } from "./runner.js";
import { allTargets } from "./targets.js";

it("long fuzz run", async () => {
  const cases = Number(process.env.FUZZ_CASES ?? 100_000);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const only = process.env.FUZZ_TARGETS?.split(",");
  const targets = (await allTargets()).filter((t) => only === undefined || only.some((o) => t.name.startsWith(o)));
  const report = await runFuzz(targets, {
    seed, cases, keepFailures: 20,
    onProgress: (target, done, total) => { if (done % 5000 === 0) process.stderr.write(`${target}: ${done}/${total}\n`); },
  });
  const text = formatReport(report);
  console.log(text);
  mkdirSync(new URL("../../bench/results/", import.meta.url), { recursive: true });
  writeFileSync(new URL("../../bench/results/fuzz.json", import.meta.url), JSON.stringify({ date: new Date().toISOString(), ...report }, null, 2) + "\n");
  expect(report.failures, text).toEqual([]);
});
