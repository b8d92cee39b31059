// `hooklens cache --grads` and `hooklens patch attr` end to end through runCli, against the
// PyTorch goldens of the reference checkpoint (ATTRIBUTION.md sections 1 and 2).
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli } from "./cli-helpers.js";
import { expectGoldenScores, golden, referenceDir, type GoldenScores, type GoldenTensor } from "./reference.js";

const NAME = "tiny-gpt2-random";
const MODEL = referenceDir(NAME);
const PROMPTS = join(MODEL, "golden", "inputs.json");
const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-grads-"));
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;


describe("hooklens cache --grads", () => {
  it("writes the metric and each selected activation's gradient, equal to autograd's", async () => {
    const out = join(tmp, "grads.json");
    const r = await cli(["cache", "--model", MODEL, "--prompts", PROMPTS, "--names", "hook_(z|resid_pre)$", "--grads", "--run", "corrupted", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ metric: number; tensors: Record<string, GoldenTensor> }>(out);
    const want = golden<{ metric: number; tensors: Record<string, GoldenTensor> }>(NAME, "grads_corrupted_processed.json");
    expect(got.metric).toBeCloseTo(want.metric, 4);
    expect(Object.keys(got.tensors)).toContain("blocks.2.attn.hook_z_grad");
    expect(Object.keys(got.tensors)).toHaveLength(12); // 3 layers × (z, resid_pre) × (activation, gradient)
    for (const name of Object.keys(got.tensors).filter((n) => n.endsWith("_grad"))) {
      const w = want.tensors[name]!;
      const tol = 1e-5 + 1e-3 * Math.max(...w.data.map(Math.abs));
      expect(got.tensors[name]!.shape).toEqual(w.shape);
      got.tensors[name]!.data.forEach((x, i) => expect(Math.abs(x - w.data[i]!), `${name} [${i}]`).toBeLessThanOrEqual(tol));
    }
  });

  it("refuses --grads without a prompts file, and --run without --grads", async () => {
    const a = await cli(["cache", "--model", MODEL, "--prompt", "1 2 3", "--names", "hook_z", "--grads", "--out", join(tmp, "x.json")]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--grads differentiates the logit difference of a prompts file/);
    const b = await cli(["cache", "--model", MODEL, "--prompts", PROMPTS, "--names", "hook_z", "--run", "clean", "--out", join(tmp, "x.json")]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--run chooses the prompts whose gradients --grads writes/);
  });
});

describe("hooklens patch attr", () => {
  it("writes the attribution result of the goldens, with --verify's exact runs in the JSON", async () => {
    const out = join(tmp, "attr.json");
    const r = await cli(["patch", "attr", "--kind", "attn_head_out_by_pos", "--model", MODEL, "--prompts", PROMPTS, "--verify", "3", "--out", out, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ op: string; shape: number[]; scores: number[]; options: { verify: { entries: { index: number[]; estimate: number; exact: number }[]; spearman: number } } }>(out);
    const want = golden<GoldenScores>(NAME, "attr_patch_attn_head_out_by_pos.json");
    expect(got.op).toBe("attr_patch_attn_head_out_by_pos");
    expect(got.shape).toEqual(want.shape);
    expectGoldenScores(got.scores, want, "attn_head_out_by_pos");
    expect(got.options.verify.entries).toHaveLength(3);
    expect(r.stdout).toMatch(/verify: the 3 largest estimates against exact activation patching/);
    expect(r.stdout).toMatch(/Spearman ρ/);
  });

  it("names an unknown kind with the closest one", async () => {
    const r = await cli(["patch", "attr", "--kind", "attn_head_out_allpos", "--model", MODEL, "--prompts", PROMPTS]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown --kind "attn_head_out_allpos" \(did you mean attn_head_out_all_pos\?\)/);
  });
});
