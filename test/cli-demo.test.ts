// `hooklens demo`: runs with no arguments on the embedded induction model, writes demo.json
// and demo.svg into the working directory, and ranks the planted path first in both modes.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/cli.js";
import { PLANTED_HEADS } from "../src/demo/induction-model.js";

interface ResultJson { shape: number[]; scores: number[]; normalized: number[]; noPath: boolean[]; options: { mode: string; component: string; src: number[] } }

async function demo(args: string[], cwd: string) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(["demo", ...args], {
    stdout: { write: (s: string) => { stdout += s; } },
    stderr: { write: (s: string) => { stderr += s; } },
    env: {},
    cwd,
  });
  return { code, stdout, stderr };
}

describe("hooklens demo", () => {
  const [sl, sh] = PLANTED_HEADS.prevTokenHead;
  const [il, ih] = PLANTED_HEADS.inductionHead;

  it("writes demo.json and demo.svg in the working directory; the planted path ranks first in both modes", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "hooklens-demo-"));
    const r = await demo([], cwd);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(join(cwd, "demo.json"), "utf8")) as {
      model: { planted: { prevTokenHead: number[]; inductionHead: number[] } }; results: Record<string, ResultJson>; plantedRanksFirst: boolean;
      prompts: { clean: number[][]; corrupted: number[][] };
    };
    expect(json.model.planted).toEqual({ prevTokenHead: [sl, sh], inductionHead: [il, ih] });
    expect(json.plantedRanksFirst).toBe(true);
    expect(Object.keys(json.results)).toEqual(["linear", "exact"]);
    for (const mode of ["linear", "exact"]) {
      const result = json.results[mode]!;
      expect(result.options).toMatchObject({ mode, component: "k", src: [sl, sh] });
      const H = result.shape[1]!;
      const planted = il * H + ih;
      const others = result.normalized.filter((_, i) => i !== planted && !result.noPath[i]).map(Math.abs);
      // First by a clear margin: most of the clean effect, and at least twice any other path.
      expect(result.normalized[planted], mode).toBeGreaterThan(0.5);
      expect(result.normalized[planted]!, mode).toBeGreaterThan(2 * Math.max(...others));
    }
    // The terminal output says what it does and lists the planted path first in each mode.
    expect(r.stdout).toContain("hooklens demo: direct path patching on the embedded induction model");
    expect(r.stdout).toContain(`question  which later heads read head ${sl}.${sh}'s output through their keys?`);
    expect(r.stdout.match(new RegExp(`top paths \\(by \\|value\\|\\):\\n {3}1\\. ${sl}\\.${sh} → ${il}\\.${ih} k`, "g"))).toHaveLength(2);
    expect(r.stdout).toContain(`The planted path ${sl}.${sh} → ${il}.${ih} (k) ranks first in both modes`);
    expect(r.stderr).toContain("wrote demo.json");

    const svg = readFileSync(join(cwd, "demo.svg"), "utf8");
    const cells = json.results["linear"]!.shape.reduce((a, b) => a * b, 1);
    expect(svg.match(/<rect class="cell/g)).toHaveLength(2 * cells);
    expect(svg.match(/<rect class="source"/g)).toHaveLength(2);
    expect(svg).toContain(">mode linear</text>");
    expect(svg).toContain(">mode exact</text>");
  });

  it("--out - puts the JSON on stdout; --mode and --svg choose what runs and where the picture goes", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "hooklens-demo-"));
    const r = await demo(["--out", "-", "--svg", "pic.svg", "--mode", "exact", "--quiet"], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout).results)).toEqual(["exact"]);
    expect(r.stderr).toBe("");
    expect(existsSync(join(cwd, "pic.svg"))).toBe(true);
    expect(existsSync(join(cwd, "demo.json"))).toBe(false);
  });
});
