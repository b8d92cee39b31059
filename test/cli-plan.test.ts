// `hooklens patch ... --plan`: the sweep plan is printed before the sweep runs.
import { join } from "node:path";
import { expect, it } from "vitest";
import { runCli } from "../src/cli/cli.js";
import { referenceDir } from "./reference.js";

const MODEL = referenceDir("tiny-gpt2-random");
const PROMPTS = join(MODEL, "golden", "inputs.json");

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const code = await runCli(args, {
    stdout: { write: () => {}, isTTY: false },
    stderr: { write: (s: string) => { stderr += s; }, isTTY: false, columns: 100 },
    env: {},
  });
  return { code, stderr };
}

it("--plan prints passes, work against the naive loop, peak memory and the estimated speedup", async () => {
  const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1", "--component", "q", "--plan", "--quiet"]);
  expect(r.code, r.stderr).toBe(0);
  // Source (0, 1) of a 3-layer, 4-head model: 8 patched runs (destination layers 1 and 2).
  expect(r.stderr).toMatch(/plan: 8 patched runs in \d+ stacked passes/);
  expect(r.stderr).toMatch(/plan: \d+ block×token evaluations \(naive loop: 384\)/); // 8 runs x 3 blocks x 2 rows x 8 positions
  expect(r.stderr).toMatch(/estimated speedup over the naive loop ×\d+\.\d\d/);
  // The naive loop has a plan too: one pass per patch, no saving.
  const naive = await cli(["patch", "act", "--kind", "resid_pre", "--model", MODEL, "--prompts", PROMPTS, "--strategy", "naive", "--plan", "--quiet"]);
  expect(naive.code, naive.stderr).toBe(0);
  expect(naive.stderr).toMatch(/plan: 24 patched runs, one full forward pass each \(the naive loop\)/); // [3 layers, 8 positions]
  expect(naive.stderr).toMatch(/estimated speedup over the naive loop ×1\.00/);
  const quiet = await cli(["patch", "act", "--kind", "resid_pre", "--model", MODEL, "--prompts", PROMPTS, "--quiet"]);
  expect(quiet.stderr).not.toMatch(/plan:/);
});
