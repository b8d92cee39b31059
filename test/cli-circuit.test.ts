// `hooklens circuit edges | eval | discover` end to end through runCli: against the goldens of the
// reference checkpoint, and on the embedded demo model, whose planted circuit discover must find.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli } from "./cli-helpers.js";
import { demoModelFiles, demoPrompts } from "../src/index.js";
import { expectGoldenScores, golden, referenceDir, type GoldenScores } from "./reference.js";

const NAME = "tiny-llama-random";
const MODEL = referenceDir(NAME);
const PROMPTS = join(MODEL, "golden", "inputs.json");
const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-circuit-"));
const DEMO = join(tmp, "demo-model");
const DEMO_PROMPTS = join(tmp, "demo-prompts.json");
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;

beforeAll(async () => {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(DEMO);
  for (const [name, bytes] of Object.entries(demoModelFiles())) writeFileSync(join(DEMO, name), bytes);
  writeFileSync(DEMO_PROMPTS, JSON.stringify(demoPrompts({ batch: 4 })));
});


describe("hooklens circuit edges", () => {
  it.each([["eap", "edge_eap.json"], ["eap-ig", "edge_eap_ig5.json"], ["exact", "edge_exact_exact.json"]])("--method %s writes the goldens' scores with the graph's names", async (method, file) => {
    const out = join(tmp, `${method}.json`);
    const r = await cli(["circuit", "edges", "--method", method, "--model", MODEL, "--prompts", PROMPTS, "--out", out, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ shape: number[]; writers: string[]; readers: string[]; scores: number[]; noPath: boolean[] }>(out);
    const edges = golden<{ writers: string[]; readers: string[]; no_path: number[] }>(NAME, "edges.json");
    expect(got.writers).toEqual(edges.writers);
    expect(got.readers).toEqual(edges.readers);
    expect(got.noPath.map(Number)).toEqual(edges.no_path);
    expectGoldenScores(got.scores, golden<GoldenScores>(NAME, file), `circuit edges --method ${method}`);
  });
});

describe("hooklens circuit edges --method exact: plan, shards, merge and workers", () => {
  it("three shards merged, and two workers, write exactly the unsharded scores; mismatched parts are refused", async () => {
    const whole = join(tmp, "exact-whole.json");
    const base = ["circuit", "edges", "--method", "exact", "--model", MODEL, "--prompts", PROMPTS];
    const r = await cli([...base, "--out", whole, "--plan", "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/plan: \d+ patched runs in \d+ stacked passes/);
    const parts = [1, 2, 3].map((i) => join(tmp, `exact-part-${i}.json`));
    for (const [i, part] of parts.entries()) {
      const s = await cli([...base, "--shard", `${i + 1}/3`, "--out", part, "--quiet"]);
      expect(s.code, s.stderr).toBe(0);
    }
    const counts = parts.map((f) => readJson<{ shard: { edges: string[] } }>(f).shard.edges.length);
    expect(counts.every((n) => n > 0)).toBe(true);
    const merged = join(tmp, "exact-merged.json");
    const m = await cli(["merge", ...parts, "--out", merged]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(new RegExp(`merged 3 parts of 3 \\(fingerprint [0-9a-f]{12}\\): ${counts.reduce((a, b) => a + b)} edges`));
    expect(readFileSync(merged, "utf8")).toBe(readFileSync(whole, "utf8"));
    // --workers runs dist/cli/edge-shard-worker.js on worker threads: through the built executable.
    const onWorkers = join(tmp, "exact-workers.json");
    const main = new URL("../dist/cli/main.js", import.meta.url).pathname;
    const w = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", main, ...base, "--workers", "2", "--out", onWorkers, "--quiet"],
      { encoding: "utf8", timeout: 120_000 });
    expect(w.status, w.stderr).toBe(0);
    expect(readFileSync(onWorkers, "utf8")).toBe(readFileSync(whole, "utf8"));

    const missing = await cli(["merge", parts[0]!, parts[2]!, "--out", join(tmp, "x.json")]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/missing shard 2\/3/);
    const linear = join(tmp, "exact-linear-part.json");
    expect((await cli([...base, "--mode", "linear", "--shard", "2/3", "--out", linear, "--quiet"])).code).toBe(0);
    const mixed = await cli(["merge", parts[0]!, linear, parts[2]!, "--out", join(tmp, "x.json")]);
    expect(mixed.stderr).toMatch(/is from a different sweep .*mode linear vs exact/);
    const wrong = await cli(["circuit", "edges", "--method", "eap", "--shard", "1/2", "--model", MODEL, "--prompts", PROMPTS, "--out", join(tmp, "x.json")]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/--shard applies to --method exact/);

    // The parts carry per-prompt rows: merge --ci and --workers --ci give the unsharded run's intervals, byte for byte.
    const wholeCi = join(tmp, "exact-whole-ci.json");
    expect((await cli([...base, "--ci", "90", "--bootstrap", "150", "--out", wholeCi, "--quiet"])).code).toBe(0);
    expect(readJson<{ ciLow: number[] }>(wholeCi).ciLow.length).toBeGreaterThan(0);
    const mergedCi = join(tmp, "exact-merged-ci.json");
    const mc = await cli(["merge", ...parts, "--ci", "90", "--bootstrap", "150", "--out", mergedCi]);
    expect(mc.code, mc.stderr).toBe(0);
    expect(readFileSync(mergedCi, "utf8")).toBe(readFileSync(wholeCi, "utf8"));
    const workersCi = join(tmp, "exact-workers-ci.json");
    const wc = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", main, ...base, "--workers", "2", "--ci", "90", "--bootstrap", "150", "--out", workersCi, "--quiet"],
      { encoding: "utf8", timeout: 120_000 });
    expect(wc.status, wc.stderr).toBe(0);
    expect(readFileSync(workersCi, "utf8")).toBe(readFileSync(wholeCi, "utf8"));
  });
});

describe("hooklens circuit eval and discover on the demo model", () => {
  it("discover finds and draws the planted circuit; eval of its edges gives the same faithfulness", async () => {
    const out = join(tmp, "circuit.json");
    const svg = join(tmp, "circuit.svg");
    const r = await cli(["circuit", "discover", "--method", "eap-ig", "--verify", "20", "--model", DEMO, "--prompts", DEMO_PROMPTS, "--out", out, "--svg", svg, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const found = readJson<{ edges: { writer: string; reader: string; exact: number }[]; faithfulness: number }>(out);
    expect(found.edges.map((e) => `${e.writer} -> ${e.reader}`).sort()).toEqual(["a0.h2 -> a1.h1<k>", "a1.h1 -> logits", "input -> a0.h2<v>"]);
    expect(r.stdout).toMatch(/circuit \(eap-ig\): 3 edges/);
    expect(r.stdout).toMatch(/a0\.h2 → a1\.h1<k> +estimate [-+]\d\.\d{4} +exact \+9\.\d{4}/);
    const drawing = readFileSync(svg, "utf8");
    expect(drawing.match(/<path /g)).toHaveLength(3);
    expect(drawing).toContain("a0.h2 → a1.h1&lt;k&gt;");
    const edgesFile = join(tmp, "edges.json");
    writeFileSync(edgesFile, JSON.stringify(found.edges.map((e) => [e.writer, e.reader])));
    const evalOut = join(tmp, "eval.json");
    const e = await cli(["circuit", "eval", "--edges", edgesFile, "--model", DEMO, "--prompts", DEMO_PROMPTS, "--out", evalOut]);
    expect(e.code, e.stderr).toBe(0);
    expect(readJson<{ faithfulness: number }>(evalOut).faithfulness).toBeCloseTo(found.faithfulness, 6);
  });

  it("acdc keeps the planted path, draws it, and refuses a bad threshold", async () => {
    const out = join(tmp, "acdc.json");
    const svg = join(tmp, "acdc.svg");
    const r = await cli(["circuit", "acdc", "--threshold", "0.5", "--model", DEMO, "--prompts", DEMO_PROMPTS, "--out", out, "--svg", svg, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const found = readJson<{ edges: [string, string][]; faithfulness: number; steps: unknown[] }>(out);
    const kept = found.edges.map(([w, rd]) => `${w} -> ${rd}`);
    for (const edge of ["input -> a0.h2<v>", "a0.h2 -> a1.h1<k>", "a1.h1 -> logits"]) expect(kept).toContain(edge);
    expect(found.faithfulness).toBeGreaterThan(0.8);
    expect(r.stdout).toMatch(new RegExp(`circuit \\(acdc, threshold 0.5\\): ${found.edges.length} of ${found.steps.length} edges kept`));
    expect(r.stdout).toMatch(/a0\.h2 → a1\.h1<k> +effect [-+]\d+\.\d{4}/);
    expect(readFileSync(svg, "utf8")).toMatch(/<svg[\s\S]*a0\.h2 → a1\.h1&lt;k&gt;: effect/);
    const bad = await cli(["circuit", "acdc", "--threshold", "-1", "--model", DEMO, "--prompts", DEMO_PROMPTS]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--threshold must be a number ≥ 0, got "-1"/);
  });

  it("names bad edges files, unknown kinds and a bad target", async () => {
    const bad = join(tmp, "bad-edges.json");
    writeFileSync(bad, JSON.stringify([["m1", "a0.h0<q>"]]));
    const a = await cli(["circuit", "eval", "--edges", bad, "--model", DEMO, "--prompts", DEMO_PROMPTS]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/m1 -> a0.h0<q> is not an edge/);
    const b = await cli(["circuit", "discovr"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/unknown circuit kind "discovr" \(did you mean discover\?\)/);
    const c = await cli(["circuit", "discover", "--target", "2", "--model", DEMO, "--prompts", DEMO_PROMPTS]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/--target must be a number in \(0, 1\], got "2"/);
  });
});
