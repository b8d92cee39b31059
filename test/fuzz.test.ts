// The fuzz harness in CI: a fixed-seed run of every target (5,000+ cases, zero failures allowed),
// and tests of the harness itself — each oracle must catch a deliberately broken implementation.
import { describe, expect, it } from "vitest";
import { formatReport } from "./fuzz/report.js";
import { leavesFolder, specAcceptsHeader } from "./fuzz/oracles.js";
import { runFuzz, type Target } from "./fuzz/runner.js";
import { indexProperty, safetensorsHeader, safetensorsProperty } from "./fuzz/targets-io.js";
import { allTargets } from "./fuzz/targets.js";

const SEED = 20261126;

function readLeniently(bytes: Uint8Array): Float32Array[] | undefined {
  try {
    const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { shape?: number[] }>;
    return Object.values(header).map((e) => new Float32Array(Math.min(2 ** 24, (e.shape ?? []).reduce((a, b) => a * b, 1))));
  } catch {
    return undefined;
  }
}

describe("fuzz harness catches broken implementations", () => {
  it("a reader that leaks a TypeError or trusts the declared header length fails", async () => {
    const good = safetensorsHeader();
    const broken: Target<any> = {
      ...good,
      name: "broken-reader",
      run: ({ bytes }: { bytes: Uint8Array }) => {
        // A naive reader: allocates what the header declares before checking it against the file.
        const file = readLeniently(bytes);
        if (file === undefined) throw new TypeError("cannot read properties of undefined");
        return file;
      },
      check: undefined,
    };
    const report = await runFuzz([broken], { seed: SEED, cases: 300 });
    const kinds = new Set(report.failures.map((f) => f.kind));
    expect(report.targets["broken-reader"]!.failures).toBeGreaterThan(0);
    expect(kinds.has("alloc")).toBe(true);
    expect(kinds.has("leak")).toBe(true);
  });

  it("a reader that skips validation is caught by the header property", async () => {
    const lenient: Target<any> = {
      ...safetensorsProperty(),
      name: "lenient-reader",
      run: (input: { header: Record<string, unknown> }) => ({ tensors: Object.create(null), metadata: Object.create(null), header: input.header }),
    };
    const report = await runFuzz([lenient], { seed: SEED, cases: 200 });
    expect(report.failures.some((f) => f.kind === "oracle" && /accepted a header the rules refuse/.test(f.detail))).toBe(true);
  });

  it("an index parser that lets ../ through is caught", async () => {
    const naive: Target<any> = { ...indexProperty(), name: "naive-index", run: (map: Record<string, string>) => new Map(Object.entries(map)) };
    const report = await runFuzz([naive], { seed: SEED, cases: 200 });
    expect(report.failures.some((f) => f.kind === "oracle" && /accepted the shard/.test(f.detail))).toBe(true);
  });

  it("slow cases, prototype pollution and untyped errors are failures", async () => {
    const base = { weight: 1, generate: () => 0, classify: () => undefined, describe: () => "" };
    const slow: Target<number> = { ...base, name: "slow", run: () => { const end = performance.now() + 30; while (performance.now() < end); } };
    const polluting: Target<number> = { ...base, name: "polluting", run: () => { (Object.prototype as Record<string, unknown>)["fuzzPolluted"] = 1; } };
    const throwing: Target<number> = { ...base, name: "throwing", run: () => { throw new RangeError("Invalid typed array length"); } };
    try {
      const report = await runFuzz([slow, polluting, throwing], { seed: SEED, cases: 6, timeLimitMs: 10 });
      expect(report.failures.map((f) => `${f.target}:${f.kind}`)).toEqual(expect.arrayContaining(["slow:slow", "polluting:invariant", "throwing:leak"]));
    } finally {
      delete (Object.prototype as Record<string, unknown>)["fuzzPolluted"];
    }
  });

  it("the oracles agree with hand-checked cases", () => {
    expect(leavesFolder("model-00001-of-00002.safetensors")).toBe(false);
    expect(leavesFolder("sub/x.safetensors")).toBe(false);
    for (const bad of ["../x", "/etc/passwd", "a/../../x", "http://evil/x", "//evil/x", "C:\\x", "..\\x", "%2e%2e/x", ".", "a/.."]) expect(leavesFolder(bad), bad).toBe(true);
    expect(specAcceptsHeader({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 8)).toBeUndefined();
    expect(specAcceptsHeader({ a: { dtype: "F16", shape: [2], data_offsets: [2, 6] } }, 8)).toBeUndefined();
    expect(specAcceptsHeader({ a: { dtype: "F16", shape: [2], data_offsets: [1, 5] } }, 8)).toMatch(/alignment/);
    expect(specAcceptsHeader({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8)).toBe("overlap");
  });
});

describe("fixed-seed fuzz run", () => {
  it("5,000+ cases over every target end in success or a typed error, fast and within memory", async () => {
    const report = await runFuzz(await allTargets(), { seed: SEED, cases: 5200 });
    expect(report.cases).toBeGreaterThanOrEqual(5000);
    expect(report.failures, formatReport(report)).toEqual([]);
    // Every category ran and saw several endings (the mutators reach past the first check).
    for (const [name, t] of Object.entries(report.targets)) {
      expect(t.cases, name).toBeGreaterThan(100);
      expect(Object.keys(t.outcomes).length, name).toBeGreaterThan(1);
    }
  });
});
