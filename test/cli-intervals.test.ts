// `--ci LEVEL [--bootstrap N] [--seed S]` on the patch commands: the JSON's intervals, p-values and
// standard errors are the library's on the same run; the CSV and the top list carry them.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli as runInProcess } from "./cli-helpers.js";
import {
  demoModelFiles, demoPrompts, evaluateCircuit, faithfulnessCi, getActPatchDirectPath, getAttrPatchAll, HookedTransformer, logitDiff,
} from "../src/index.js";

const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-ci-"));
const DEMO = join(tmp, "demo-model");
const PROMPTS = join(tmp, "prompts.json");

beforeAll(() => {
  mkdirSync(DEMO);
  for (const [name, bytes] of Object.entries(demoModelFiles())) writeFileSync(join(DEMO, name), bytes);
  writeFileSync(PROMPTS, JSON.stringify(demoPrompts({ batch: 6 })));
});

const cli = (args: string[]) => runInProcess(args, 120);

describe("patch --ci", () => {
  it("direct path: the library's intervals, p-values and standard errors in the JSON, the CSV and the top list", async () => {
    const out = join(tmp, "dp.json");
    const csv = join(tmp, "dp.csv");
    const r = await cli(["patch", "direct-path", "--model", DEMO, "--prompts", PROMPTS, "--src", "0.2", "--component", "k",
      "--ci", "90", "--bootstrap", "300", "--seed", "5", "--out", out, "--csv", csv]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, "utf8"));
    expect(json.ci).toEqual({ level: 0.9, samples: 300, seed: 5, prompts: 6 });
    const model = await HookedTransformer.fromPretrained(DEMO);
    const p = demoPrompts({ batch: 6 });
    const lib = await getActPatchDirectPath(model, p.corrupted, model.runWithCache(p.clean).cache, model.runWithCache(p.corrupted).cache,
      logitDiff(p), { srcLayer: 0, srcHead: 2, component: "k" });
    const { low, high } = lib.bootstrapCi({ level: 0.9, samples: 300, seed: 5 });
    const close = (got: number[], want: Float32Array) => got.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 4));
    close(json.ciLow, low.data);
    close(json.ciHigh, high.data);
    close(json.pValue, lib.permutationPValue({ samples: 300, seed: 5 }).data);
    close(json.stderr, lib.stderr().data);
    expect(readFileSync(csv, "utf8").split("\n")[0]).toMatch(/,score,normalized,no_path,ci_low,ci_high,p_value,stderr$/);
    // The planted path leads the top list with its interval (normalised), which excludes 0.
    expect(r.stdout).toMatch(/1\. 0\.2 → 1\.1 k +\+\d\.\d{3} \[\+\d\.\d{3}, \+\d\.\d{3}\]  \(metric/);
    expect(r.stdout).toMatch(/0\.2 → 1\.0 k +[-+]0\.000 \[-\d\.\d{3}, \+\d\.\d{3}\] \(contains 0\)/);
    expect(r.stdout).toMatch(/intervals: 90% bootstrap over 6 prompts \(300 resamplings, seed 5\)/);
  });

  it("activation patching marks entries whose interval contains 0; bad flags are usage errors", async () => {
    const r = await cli(["patch", "act", "--kind", "resid_pre", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--top", "40"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[[-+]\d\.\d{3}, [-+]\d\.\d{3}\] \(contains 0\)/);
    const bad = await cli(["patch", "act", "--kind", "resid_pre", "--model", DEMO, "--prompts", PROMPTS, "--ci", "150"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--ci must be a level in percent between 0 and 100 \(e\.g\. 95\), got "150"/);
    const lone = await cli(["patch", "act", "--kind", "resid_pre", "--model", DEMO, "--prompts", PROMPTS, "--seed", "3"]);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/--seed goes with --ci LEVEL/);
  });
});

describe("--ci on attribution and circuits", () => {
  it("patch attr: the library's per-prompt estimates give the JSON's intervals", async () => {
    const out = join(tmp, "attr.json");
    const r = await cli(["patch", "attr", "--kind", "attn_head_out_all_pos", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--bootstrap", "200", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, "utf8"));
    const model = await HookedTransformer.fromPretrained(DEMO);
    const p = demoPrompts({ batch: 6 });
    const lib = getAttrPatchAll(model, p.corrupted, model.runWithCache(p.clean).cache, logitDiff(p), { kinds: ["attn_head_out_all_pos"] }).attn_head_out_all_pos;
    const { low, high } = lib.bootstrapCi({ level: 0.95, samples: 200, seed: 0 });
    json.ciLow.forEach((x: number, i: number) => expect(x).toBeCloseTo(low.data[i]!, 4));
    json.ciHigh.forEach((x: number, i: number) => expect(x).toBeCloseTo(high.data[i]!, 4));
    expect(json.pValue).toHaveLength(lib.scores.size);
    expect(r.stdout).toMatch(/intervals: 95% bootstrap over 6 prompts \(200 resamplings, seed 0\)/);
    expect(r.stdout).toMatch(/\d+\. .+ [-+]\d\.\d{3} \[[-+]\d\.\d{3}, [-+]\d\.\d{3}\]/);
  });

  it("circuit eval, discover and acdc: the faithfulness interval is faithfulnessCi's; circuit edges adds ciLow/ciHigh", async () => {
    const edgesFile = join(tmp, "circuit.json");
    const edges: [string, string][] = [["input", "a0.h2<v>"], ["a0.h2", "a1.h1<k>"], ["a1.h1", "logits"], ["input", "a1.h1<q>"], ["input", "a1.h1<v>"]];
    writeFileSync(edgesFile, JSON.stringify(edges));
    const out = join(tmp, "eval.json");
    const r = await cli(["circuit", "eval", "--edges", edgesFile, "--model", DEMO, "--prompts", PROMPTS, "--ci", "90", "--bootstrap", "400", "--seed", "2", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, "utf8"));
    const model = await HookedTransformer.fromPretrained(DEMO);
    const p = demoPrompts({ batch: 6 });
    const ev = evaluateCircuit(model, p.corrupted, model.runWithCache(p.clean).cache, model.runWithCache(p.corrupted).cache, logitDiff(p), edges);
    const ci = faithfulnessCi(ev, { level: 0.9, samples: 400, seed: 2 });
    expect(json.faithfulnessCi.low).toBeCloseTo(ci.low, 4);
    expect(json.faithfulnessCi.high).toBeCloseTo(ci.high, 4);
    expect(json.faithfulnessCi).toMatchObject({ level: 0.9, samples: 400, seed: 2, prompts: 6 });
    expect(json.perPrompt.metric).toHaveLength(6);
    expect(r.stdout).toMatch(/faithfulness \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]/);

    const found = await cli(["circuit", "discover", "--method", "eap", "--verify", "5", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--out", join(tmp, "disc.json")]);
    expect(found.code, found.stderr).toBe(0);
    const disc = JSON.parse(readFileSync(join(tmp, "disc.json"), "utf8"));
    expect(disc.faithfulnessCi.low).toBeLessThanOrEqual(disc.faithfulness + 1e-9);
    expect(disc.curve.every((pt: object) => !("perPrompt" in pt))).toBe(true);
    expect(found.stdout).toMatch(/faithfulness \d\.\d{3} \[-?\d\.\d{3}, \d\.\d{3}\]/);

    const acdcRun = await cli(["circuit", "acdc", "--threshold", "0.05", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--out", join(tmp, "acdc.json")]);
    expect(acdcRun.code, acdcRun.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(tmp, "acdc.json"), "utf8")).faithfulnessCi.prompts).toBe(6);

    const eap = await cli(["circuit", "edges", "--method", "eap", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--out", join(tmp, "eap.json")]);
    expect(eap.code, eap.stderr).toBe(0);
    const e = JSON.parse(readFileSync(join(tmp, "eap.json"), "utf8"));
    expect(e.ciLow).toHaveLength(e.scores.length);
    e.scores.forEach((s: number, i: number) => { if (!e.noPath[i]) { expect(e.ciLow[i]).toBeLessThanOrEqual(s + 1e-4); expect(e.ciHigh[i]).toBeGreaterThanOrEqual(s - 1e-4); } });
    const sharded = await cli(["circuit", "edges", "--method", "exact", "--shard", "1/2", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--out", join(tmp, "x.json")]);
    expect(sharded.code).toBe(2);
    expect(sharded.stderr).toMatch(/a shard part carries per-prompt rows; give --ci to hooklens merge/);
  });
});

describe("pictures with --ci", () => {
  it("the SVG hatches exactly the entries whose interval contains 0, with a legend; the terminal heatmap marks them with ~", async () => {
    const svg = join(tmp, "act.svg");
    const out = join(tmp, "act.json");
    const r = await cli(["patch", "act", "--kind", "resid_pre", "--model", DEMO, "--prompts", PROMPTS, "--ci", "95", "--svg", svg, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, "utf8"));
    // The heatmap plots normalised values, so its intervals are the JSON's scaled the same way.
    const range = json.clean - json.baseline;
    const unsure = json.ciLow.map((low: number, i: number) => (low - json.baseline) / range <= 0 && (json.ciHigh[i] - json.baseline) / range >= 0);
    const text = readFileSync(svg, "utf8");
    const hatched = (text.match(/<rect class="hatch"/g) ?? []).length;
    expect(hatched).toBe(unsure.filter(Boolean).length);
    expect(hatched).toBeGreaterThan(0);
    expect(hatched).toBeLessThan(unsure.length);
    expect((text.match(/class="cell contains-zero"/g) ?? []).length).toBe(hatched);
    expect(text).toContain("95% interval</text>");
    expect(r.stdout).toMatch(/~ = its 95% interval over prompts contains 0/);
    const withoutCi = await cli(["patch", "act", "--kind", "resid_pre", "--model", DEMO, "--prompts", PROMPTS, "--svg", join(tmp, "plain.svg")]);
    expect(readFileSync(join(tmp, "plain.svg"), "utf8")).not.toContain("hatch");
    expect(withoutCi.stdout).not.toContain("~");
  });
});
