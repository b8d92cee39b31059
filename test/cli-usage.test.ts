// Help, version, command dispatch and usage errors of hooklens, and the built executable.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/cli.js";
import { referenceDir } from "./reference.js";

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, { stdout: { write: (s: string) => { stdout += s; } }, stderr: { write: (s: string) => { stderr += s; } }, env: {} });
  return { code, stdout, stderr };
}

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { version: string; bin: Record<string, string> };

describe("help and version", () => {
  it("--help lists the commands; --version prints package.json's version", async () => {
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    for (const c of ["run", "cache", "patch direct-path", "patch act", "demo"]) expect(help.stdout).toContain(`  ${c} `);
    expect(help.stderr).toBe("");
    expect(await cli(["--version"])).toEqual({ code: 0, stdout: `hooklens ${pkg.version}\n`, stderr: "" });
    expect((await cli(["-V"])).stdout).toBe(`hooklens ${pkg.version}\n`);
  });

  it("each command has its help, also through `help`", async () => {
    const dp = await cli(["patch", "direct-path", "--help"]);
    expect(dp.code).toBe(0);
    expect(dp.stdout).toContain("usage: hooklens patch direct-path --model DIR --prompts FILE --src L.H|all --component q|k|v");
    expect(dp.stdout).toMatch(/--component q\|k\|v\s+which input/);
    expect(dp.stdout).toContain("-q, --quiet");
    expect((await cli(["help", "patch", "direct-path"])).stdout).toBe(dp.stdout);
    const act = await cli(["patch", "act", "-h"]);
    expect(act.stdout).toContain("attn_head_pattern_dest_src_pos");
    expect(act.stdout).toContain("block_every");
    for (const c of ["run", "cache", "demo"]) {
      const r = await cli([c, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: hooklens ${c} `);
    }
    expect((await cli(["help", "prompts"])).stdout).toContain('"clean":     [[ids...], ...]  or ["text", ...]');
    expect((await cli(["patch", "--help"])).stdout).toContain("hooklens patch act --kind KIND");
  });
});

describe("usage errors exit 2 with one line", () => {
  const cases: [string[], RegExp][] = [
    [[], /^hooklens: TransformerLens-style/],
    [["rn"], /^hooklens: unknown command "rn" \(did you mean run\?\); commands: run, cache, patch, circuit, merge, demo, help\n$/],
    [["--model", "x"], /^hooklens: expected a command before --model/],
    [["patch"], /^hooklens: patch needs a kind: direct-path, act, attr/],
    [["patch", "direct"], /^hooklens: unknown patch kind "direct" \(did you mean direct-path\?\)/],
    [["run", "--prompt", "x"], /^hooklens: run: --model is required\n$/],
    [["run", "--model", "m"], /^hooklens: run: give --prompt TEXT or --prompts FILE\n$/],
    [["run", "--model", "m", "--prompt", "a", "--prompts", "b"], /give --prompt or --prompts, not both/],
    [["run", "--model", "m", "--prompt", "a", "--top", "0"], /--top must be an integer in \[1, 1000\], got "0"/],
    [["run", "--model", "m", "--promt", "a"], /^hooklens: run: unknown flag --promt \(did you mean --prompt\?\)\n$/],
    [["cache", "--model", "m", "--prompt", "a", "--names", "x"], /cache: --out is required/],
    [["patch", "direct-path", "--model", "m", "--prompts", "p", "--src", "1", "--component", "q"], /--src must be layer\.head \(e\.g\. 0\.1\) or all, got "1"/],
    [["patch", "direct-path", "--model", "m", "--prompts", "p", "--src", "0.1", "--component", "z"], /--component must be one of q, k, v, got "z"/],
    [["patch", "direct-path", "--model", "m", "--prompts", "p", "--src", "0.1", "--component", "q", "--mode", "fast"], /--mode must be one of linear, exact/],
    [["patch", "direct-path", "--model", "m", "--prompts", "p", "--src", "0.1", "--component", "q", "--out", "-", "--svg", "-"], /only one of --out and --svg can be "-"/],
    [["patch", "act", "--kind", "resid_prev", "--model", "m", "--prompts", "p"], /unknown --kind "resid_prev" \(did you mean resid_pre\?\)/],
    [["patch", "act", "--model", "m", "--prompts", "p"], /patch act: --kind is required/],
    [["demo", "--mode", "both", "extra"], /demo: unexpected argument "extra"/],
  ];
  for (const [args, message] of cases) {
    it(`hooklens ${args.join(" ") || "(no arguments)"}`, async () => {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
      if (args.length > 0) expect(r.stderr.split("\n")).toHaveLength(2);
    });
  }
});

describe("the built executable (npm test builds it first)", () => {
  const main = `${root}dist/cli/main.js`;

  it("is the package's bin, starts with the relaxed-SIMD shebang and runs under node", () => {
    expect(pkg.bin["hooklens"]).toBe("dist/cli/main.js");
    expect(readFileSync(main, "utf8").split("\n")[0]).toBe("#!/usr/bin/env -S node --experimental-wasm-relaxed-simd");
    const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", main, "--version"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`hooklens ${pkg.version}\n`);
  });

  it("exits with the CLI's code and a one-line message", () => {
    const model = referenceDir("tiny-gpt2-random");
    const r = spawnSync(process.execPath, [main, "patch", "direct-path", "--model", model, "--prompts", `${model}golden/inputs.json`, "--src", "7.0", "--component", "k"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("hooklens: patch direct-path: --src 7.0: layer 7 is out of range; the model has layers 0..2\n");
    const missing = spawnSync(process.execPath, [main, "run", "--model", `${model}nope`, "--prompt", "x"], { encoding: "utf8" });
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
  });
});
