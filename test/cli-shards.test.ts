// `patch direct-path --shard i/N`, `--workers N` and `merge`, on the built executable
// (worker threads run dist/cli/shard-worker.js).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomGpt2Files } from "./random-gpt2.js";

const root = new URL("..", import.meta.url).pathname;
const main = `${root}dist/cli/main.js`;
let dir: string;

function hooklens(...argv: string[]) {
  const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", main, ...argv], { cwd: dir, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const readJson = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8"));

describe("sharded direct path sweeps (built CLI)", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hooklens-shards-"));
    for (const [seed, name] of [[5, "model"], [6, "other-model"]] as const) {
      mkdirSync(join(dir, name));
      const files = randomGpt2Files({ nLayer: 4, nHead: 3, nEmbd: 24, nPositions: 16, vocab: 37, seed });
      for (const [f, bytes] of Object.entries(files)) writeFileSync(join(dir, name, f), bytes);
    }
    const clean = [[1, 5, 9, 2, 7, 3, 11, 4], [2, 8, 6, 1, 9, 12, 3, 5]];
    const corrupted = clean.map((row, b) => row.map((t, p) => (p === 2 + b ? (t + 13) % 37 : t)));
    writeFileSync(join(dir, "prompts.json"), JSON.stringify({ clean, corrupted, correct: [3, 4], incorrect: [6, 7] }));
    writeFileSync(join(dir, "prompts2.json"), JSON.stringify({ clean, corrupted, correct: [3, 4], incorrect: [6, 8] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const sweep = (...extra: string[]) => hooklens("patch", "direct-path", "--model", "model", "--prompts", "prompts.json", "--src", "all", "--component", "k", "--quiet", ...extra);

  it("merging 3 shards writes exactly the unsharded result; --workers 2 too", () => {
    expect(sweep("--out", "whole.json").code).toBe(0);
    for (const i of [1, 2, 3]) {
      const r = sweep("--shard", `${i}/3`, "--out", `part-${i}.json`);
      expect(r.code, r.stderr).toBe(0);
    }
    const parts = [1, 2, 3].map((i) => readJson(`part-${i}.json`));
    expect(parts.map((p) => p.shard.units.length).reduce((a: number, b: number) => a + b, 0)).toBe(3 * (3 + 2 + 1));
    expect(new Set(parts.map((p) => p.fingerprint)).size).toBe(1);
    // A part alone is not the answer: it misses other shards' scores.
    expect(parts[0].result.scores).not.toEqual(readJson("whole.json").scores);

    const m = hooklens("merge", "part-3.json", "part-1.json", "part-2.json", "--out", "merged.json", "--svg", "merged.svg");
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/merged 3 parts of 3/);
    expect(readFileSync(join(dir, "merged.json"), "utf8")).toBe(readFileSync(join(dir, "whole.json"), "utf8"));
    expect(readFileSync(join(dir, "merged.svg"), "utf8")).toMatch(/<svg/);

    const w = sweep("--workers", "2", "--out", "workers.json");
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(dir, "workers.json"), "utf8")).toBe(readFileSync(join(dir, "whole.json"), "utf8"));
    // A shard on worker threads is the same part as in one thread.
    expect(sweep("--shard", "2/3", "--workers", "2", "--out", "part-2w.json").code).toBe(0);
    expect(readJson("part-2w.json")).toEqual(parts[1]);
  });

  it("--dtype bf16: workers load the model as bf16 too (the same bytes as one thread); the scores move from f32's by a little", () => {
    expect(sweep("--dtype", "bf16", "--out", "bf16.json").code).toBe(0);
    const w = sweep("--dtype", "bf16", "--workers", "2", "--out", "bf16-workers.json");
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(dir, "bf16-workers.json"), "utf8")).toBe(readFileSync(join(dir, "bf16.json"), "utf8"));
    const f32 = readJson("whole.json").scores as number[];
    const bf16 = readJson("bf16.json").scores as number[];
    const scale = Math.max(...f32.map(Math.abs));
    const worst = Math.max(...f32.map((x, i) => Math.abs(x - bf16[i]!)));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(0.05 * scale + 0.01);
    // Parts of another dtype are another sweep.
    expect(sweep("--dtype", "bf16", "--shard", "2/3", "--out", "part-2-bf16.json").code).toBe(0);
    expect(hooklens("merge", "part-1.json", "part-2-bf16.json", "part-3.json", "--out", "x.json").stderr).toMatch(/different sweep .*dtype bf16 vs f32/);
  });

  it("--dtype f16: workers load it too; its scores sit closer to f32's than bf16's; an unknown dtype is refused by name", () => {
    const w = sweep("--dtype", "f16", "--workers", "2", "--out", "f16-workers.json");
    expect(w.code, w.stderr).toBe(0);
    const f32 = readJson("whole.json").scores as number[];
    const f16 = readJson("f16-workers.json").scores as number[];
    const bf16 = readJson("bf16.json").scores as number[];
    const worst = (other: number[]) => Math.max(...f32.map((x, i) => Math.abs(x - other[i]!)));
    expect(worst(f16)).toBeGreaterThan(0);
    expect(worst(f16)).toBeLessThan(worst(bf16));
    const bad = sweep("--dtype", "fp8", "--out", "never.json");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--dtype must be one of f32, bf16, f16, got "fp8"/);
  });

  it("parts carry per-prompt rows: merge --ci and --workers --ci write exactly the unsharded run's intervals", () => {
    expect(sweep("--ci", "90", "--bootstrap", "200", "--out", "whole-ci.json").code).toBe(0);
    for (const i of [1, 2]) expect(sweep("--shard", `${i}/2`, "--out", `ci-part-${i}.json`).code).toBe(0);
    const part = readJson("ci-part-1.json");
    expect(part.result.perPrompt.baseline).toHaveLength(2);
    expect(part.result.perPrompt.rows).toHaveLength(2 * part.shard.units.length * 3);
    const m = hooklens("merge", "ci-part-2.json", "ci-part-1.json", "--ci", "90", "--bootstrap", "200", "--out", "merged-ci.json");
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/intervals: 90% bootstrap over 2 prompts/);
    expect(readFileSync(join(dir, "merged-ci.json"), "utf8")).toBe(readFileSync(join(dir, "whole-ci.json"), "utf8"));
    // Without --ci the merge is still the plain unsharded result.
    expect(hooklens("merge", "ci-part-1.json", "ci-part-2.json", "--out", "merged-plain.json").code).toBe(0);
    expect(readFileSync(join(dir, "merged-plain.json"), "utf8")).toBe(readFileSync(join(dir, "whole.json"), "utf8"));
    const w = sweep("--workers", "2", "--ci", "90", "--bootstrap", "200", "--out", "workers-ci.json");
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(dir, "workers-ci.json"), "utf8")).toBe(readFileSync(join(dir, "whole-ci.json"), "utf8"));
    expect(sweep("--shard", "1/2", "--ci", "90", "--out", "p.json").stderr).toMatch(/a shard part carries per-prompt rows; give --ci to hooklens merge/);
  });

  it("refuses parts of another model, other prompts or other options, and incomplete sets", () => {
    expect(sweep("--shard", "1/2", "--out", "a1.json").code).toBe(0);
    expect(sweep("--shard", "2/2", "--out", "a2.json").code).toBe(0);
    expect(hooklens("patch", "direct-path", "--model", "other-model", "--prompts", "prompts.json", "--src", "all", "--component", "k", "--quiet", "--shard", "2/2", "--out", "b2.json").code).toBe(0);
    expect(hooklens("patch", "direct-path", "--model", "model", "--prompts", "prompts2.json", "--src", "all", "--component", "k", "--quiet", "--shard", "2/2", "--out", "c2.json").code).toBe(0);
    expect(sweep("--shard", "2/2", "--mode", "exact", "--out", "d2.json").code).toBe(0);
    for (const [other, why] of [["b2.json", /different sweep.*model other-model vs model/], ["c2.json", /different sweep.*prompts prompts2.json vs prompts.json/], ["d2.json", /different sweep.*mode exact vs linear/]] as const) {
      const r = hooklens("merge", "a1.json", other, "--out", "x.json");
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(why);
    }
    expect(hooklens("merge", "a1.json", "--out", "x.json").stderr).toMatch(/missing shard 2\/2/);
    expect(hooklens("merge", "a1.json", "a1.json", "a2.json", "--out", "x.json").stderr).toMatch(/shard 1\/2 given twice/);
    expect(existsSync(join(dir, "x.json"))).toBe(false);
  });

  it("usage errors: --shard needs --src all, --out and i/N", () => {
    expect(hooklens("patch", "direct-path", "--model", "model", "--prompts", "prompts.json", "--src", "0.1", "--component", "k", "--shard", "1/2", "--out", "p.json").stderr)
      .toMatch(/--shard and --workers split an all-sources sweep/);
    expect(sweep("--shard", "1/2").stderr).toMatch(/--shard writes a part file: give --out/);
    const bad = sweep("--shard", "3/2", "--out", "p.json");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--shard must be i\/N/);
  });
});
