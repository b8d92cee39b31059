// The hooklens commands on every Hugging Face-anchored family of ../shared/reference (GPT-NeoX, Gemma-2,
// Qwen2, Llama 3, Mistral, OLMo): the CLI loads each checkpoint folder and its activation patching
// and exact direct path scores equal transformers' goldens.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli } from "./cli-helpers.js";
import { expectGoldenScores, golden, referenceDir, type GoldenScores } from "./reference.js";

const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-families-"));


describe.each(["tiny-gpt_neox-random", "tiny-gemma2-random", "tiny-qwen2-random", "tiny-llama3-random", "tiny-mistral-random", "tiny-olmo-random"])("hooklens on %s", (name) => {
  const model = referenceDir(name);
  const prompts = join(model, "golden", "inputs.json");

  it("patch act --kind resid_pre and patch direct-path --mode exact (q, k, v) equal the goldens", async () => {
    const act = join(tmp, `${name}-act.json`);
    const r = await cli(["patch", "act", "--kind", "resid_pre", "--model", model, "--prompts", prompts, "--out", act, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(readFileSync(act, "utf8")) as { shape: number[]; scores: number[] };
    const want = golden<GoldenScores>(name, "act_patch_resid_pre.json");
    expect(got.shape).toEqual(want.shape);
    expectGoldenScores(got.scores, want, `${name} resid_pre`);
    for (const component of ["q", "k", "v"] as const) {
      const out = join(tmp, `${name}-dp-${component}.json`);
      const d = await cli(["patch", "direct-path", "--model", model, "--prompts", prompts, "--src", "0.1", "--component", component,
        "--mode", "exact", "--out", out, "--quiet"]);
      expect(d.code, d.stderr).toBe(0);
      const path = JSON.parse(readFileSync(out, "utf8")) as { shape: number[]; scores: number[] };
      const wantPath = golden<GoldenScores>(name, `direct_path_src0.1_${component}_exact.json`);
      expect(path.shape).toEqual(wantPath.shape);
      expectGoldenScores(path.scores, wantPath, `${name} direct path ${component}`);
    }
  });
});
