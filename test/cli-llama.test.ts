// The hooklens commands on a LLaMA-family checkpoint (grouped-query attention, rotary,
// RMSNorm), end to end through runCli against the PyTorch goldens of tiny-llama-random.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli } from "./cli-helpers.js";
import { golden, referenceDir, type GoldenScores, type GoldenTensor } from "./reference.js";

const NAME = "tiny-llama-random";
const MODEL = referenceDir(NAME);
const PROMPTS = join(MODEL, "golden", "inputs.json");
const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-llama-"));
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;


function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst;
}

describe("hooklens on a LLaMA-family checkpoint", () => {
  it("run --out writes the processed logits, equal to PyTorch's", async () => {
    const out = join(tmp, "logits.json");
    const r = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<GoldenTensor>(out);
    const want = golden<GoldenTensor>(NAME, "logits_clean_processed.json");
    expect(got.shape).toEqual([2, 8, 100]);
    expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-4);
  });

  for (const [component, shape] of [["k", [3, 2]], ["v", [3, 2]], ["q", [3, 4]]] as const) {
    it(`patch direct-path --src 0.1 --component ${component}: scores of shape [${shape.join(", ")}] equal to PyTorch's`, async () => {
      const out = join(tmp, `dp-${component}.json`);
      const svg = join(tmp, `dp-${component}.svg`);
      const csv = join(tmp, `dp-${component}.csv`);
      const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1",
        "--component", component, "--out", out, "--svg", svg, "--csv", csv]);
      expect(r.code, r.stderr).toBe(0);
      const got = readJson<{ op: string; shape: number[]; scores: number[]; noPath: boolean[]; baseline: number; clean: number }>(out);
      const want = golden<GoldenScores>(NAME, `direct_path_src0.1_${component}_linear.json`);
      expect(got.op).toBe("direct_path");
      expect(got.shape).toEqual(shape);
      expect(want.shape).toEqual(shape);
      expect(maxAbsDiff(got.scores, want.scores)).toBeLessThanOrEqual(1e-3);
      // Layer 0 cannot read a layer-0 head: those entries (and only those) have no causal path.
      const cols = shape[1];
      expect(got.noPath).toEqual(got.scores.map((_, i) => i < cols));
      expect(got.baseline).toBeCloseTo(want.corrupted_baseline, 4);
      expect(got.clean).toBeCloseTo(want.clean_baseline, 4);
      // The picture and the CSV have one cell per destination (a key/value group for k and v).
      expect(readFileSync(svg, "utf8").match(/<rect class="cell/g)).toHaveLength(3 * cols);
      const lines = readFileSync(csv, "utf8").trim().split("\n");
      expect(lines).toHaveLength(1 + 3 * cols);
      expect(lines[0]).toBe(component === "q" ? "layer,head,score,normalized,no_path" : "layer,kv_head,score,normalized,no_path");
    });
  }

  it("patch act --kind resid_pre equals PyTorch's", async () => {
    const out = join(tmp, "act-resid-pre.json");
    const r = await cli(["patch", "act", "--kind", "resid_pre", "--model", MODEL, "--prompts", PROMPTS, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ op: string; shape: number[]; scores: number[] }>(out);
    const want = golden<GoldenScores>(NAME, "act_patch_resid_pre.json");
    expect(got.op).toBe("act_patch_resid_pre");
    expect(got.shape).toEqual([3, 8]);
    expect(maxAbsDiff(got.scores, want.scores)).toBeLessThanOrEqual(1e-3);
  });

  it("the summary names key/value groups for k destinations", async () => {
    const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1", "--component", "k"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/0\.1 → \d\.kv\d k/);
    expect(r.stdout).not.toMatch(/0\.1 → \d\.\d k/);
  });
});
