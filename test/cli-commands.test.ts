// The hooklens commands end to end through runCli, against the PyTorch goldens of the
// reference checkpoint, plus a random checkpoint with a tokenizer for text prompts.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/cli/cli.js";
import { gpt2ByteToUnicode } from "../src/io/tokenizer-files.js";
import { randomGpt2Files } from "./random-gpt2.js";
import { golden, referenceDir, type GoldenInputs, type GoldenScores, type GoldenTensor } from "./reference.js";

const MODEL = referenceDir("tiny-gpt2-random");
const PROMPTS = join(MODEL, "golden", "inputs.json");

interface CliRun { code: number; stdout: string; stderr: string }

async function cli(args: string[], options: { tty?: boolean; signal?: AbortSignal; onStderr?: (s: string) => void } = {}): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: { write: (s: string) => { stdout += s; }, isTTY: false },
    stderr: { write: (s: string) => { stderr += s; options.onStderr?.(s); }, isTTY: options.tty ?? false, columns: 100 },
    env: {},
    signal: options.signal,
  });
  return { code, stdout, stderr };
}

const tmp = mkdtempSync(join(tmpdir(), "hooklens-cli-"));
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, label: string) {
  expect(got.length, label).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst, label).toBeLessThanOrEqual(tol);
}

describe("hooklens run", () => {
  it("--out writes the processed logits, equal to PyTorch's", async () => {
    const out = join(tmp, "logits.json");
    const r = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", out, "--top", "3"]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<GoldenTensor>(out);
    const want = golden<GoldenTensor>("tiny-gpt2-random", "logits_clean_processed.json");
    expect(got.shape).toEqual([2, 8, 100]);
    expectClose(got.data, want.data, 1e-4, "processed logits");
    // The table lists, for each row, the argmax of the last position first.
    for (let b = 0; b < 2; b++) {
      const last = want.data.slice((b * 8 + 7) * 100, (b * 8 + 8) * 100);
      const best = last.indexOf(Math.max(...last));
      expect(r.stdout).toMatch(new RegExp(`row ${b}:[^\\n]*\\n[^\\n]*\\n\\s+1\\s+${best}\\s`));
    }
    expect(r.stderr).toContain(`wrote the logits [2, 8, 100] to ${out}`);
  });

  it("--threads 2 writes the same logits as one thread, and --threads 0 is refused", async () => {
    const outs = [];
    for (const threads of ["1", "2"]) {
      const out = join(tmp, `logits-threads-${threads}.json`);
      const r = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", out, "--threads", threads]);
      expect(r.code, r.stderr).toBe(0);
      outs.push(readFileSync(out, "utf8"));
    }
    expect(outs[1]).toBe(outs[0]);
    const bad = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--threads", "0"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--threads");
  });

  it("--no-process gives the unprocessed logits", async () => {
    const out = join(tmp, "logits-raw.json");
    const r = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", out, "--no-process"]);
    expect(r.code, r.stderr).toBe(0);
    expectClose(readJson<GoldenTensor>(out).data, golden<GoldenTensor>("tiny-gpt2-random", "logits_clean.json").data, 1e-4, "raw logits");
  });

  it("--out - puts only the JSON on stdout", async () => {
    const r = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", "-"]);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as GoldenTensor;
    expect(got.shape).toEqual([2, 8, 100]);
    expectClose(got.data, golden<GoldenTensor>("tiny-gpt2-random", "logits_clean_processed.json").data, 1e-4, "processed logits on stdout");
  });
});

describe("hooklens cache", () => {
  it("writes the hooks whose names match, equal to PyTorch's", async () => {
    const out = join(tmp, "cache.json");
    const r = await cli(["cache", "--model", MODEL, "--prompts", PROMPTS, "--names", "hook_resid_pre$|ln1\\.hook_scale$|blocks\\.0\\.attn\\.hook_z", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ tensors: Record<string, GoldenTensor> }>(out).tensors;
    const want = golden<{ tensors: Record<string, GoldenTensor> }>("tiny-gpt2-random", "cache_clean_processed.json").tensors;
    const names = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre",
      "blocks.0.ln1.hook_scale", "blocks.1.ln1.hook_scale", "blocks.2.ln1.hook_scale", "blocks.0.attn.hook_z"];
    expect(Object.keys(got).sort()).toEqual([...names].sort());
    for (const name of names) {
      expect(got[name]!.shape, name).toEqual(want[name]!.shape);
      expectClose(got[name]!.data, want[name]!.data, 1e-4, name);
    }
    expect(r.stderr).toMatch(/wrote 7 tensors/);
  });

  it("a regex that matches nothing or does not parse is a usage error", async () => {
    const none = await cli(["cache", "--model", MODEL, "--prompts", PROMPTS, "--names", "hook_nothing", "--out", join(tmp, "c.json")]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^hooklens: cache: --names "hook_nothing" matches none of the \d+ hook names/);
    const bad = await cli(["cache", "--model", MODEL, "--prompts", PROMPTS, "--names", "(", "--out", join(tmp, "c.json")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a valid regex/);
  });
});

describe("hooklens patch direct-path", () => {
  for (const [component, mode] of [["q", "linear"], ["k", "exact"], ["v", "linear"]] as const) {
    it(`--src 0.1 --component ${component} --mode ${mode} matches PyTorch`, async () => {
      const out = join(tmp, `dp-${component}-${mode}.json`);
      const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1",
        "--component", component, "--mode", mode, "--out", out]);
      expect(r.code, r.stderr).toBe(0);
      const got = readJson<Record<string, unknown>>(out);
      const want = golden<GoldenScores>("tiny-gpt2-random", `direct_path_src0.1_${component}_${mode}.json`);
      expect(got["op"]).toBe("direct_path");
      expect(got["shape"]).toEqual([3, 4]);
      expectClose(got["scores"] as number[], want.scores, 1e-3, "scores");
      expect(got["noPath"]).toEqual([true, true, true, true, false, false, false, false, false, false, false, false]);
      expect(got["baseline"] as number).toBeCloseTo(want.corrupted_baseline, 4);
      expect(got["clean"] as number).toBeCloseTo(want.clean_baseline, 4);
      const normalized = got["normalized"] as number[];
      const range = want.clean_baseline - want.corrupted_baseline;
      want.scores.forEach((s, i) => { if (i >= 4) expect(normalized[i]!).toBeCloseTo((s - want.corrupted_baseline) / range, 3); });
      expect(got["options"]).toMatchObject({ component, mode, src: [0, 1], model: MODEL, prompts: PROMPTS });
    });
  }

  it("--src all gives [3, 4, 3, 4] equal to PyTorch, and the summary lists the top path", async () => {
    const out = join(tmp, "dp-all.json");
    const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "all", "--component", "q", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ shape: number[]; scores: number[]; normalized: number[]; noPath: boolean[] }>(out);
    const want = golden<GoldenScores>("tiny-gpt2-random", "direct_path_all_q_linear.json");
    expect(got.shape).toEqual([3, 4, 3, 4]);
    expectClose(got.scores, want.scores, 1e-3 + 1e-3 * Math.max(...want.scores.map(Math.abs)), "all sources");
    // The best path by |normalized| is the first listed.
    let best = -1;
    got.normalized.forEach((v, i) => { if (!got.noPath[i] && (best < 0 || Math.abs(v) > Math.abs(got.normalized[best]!))) best = i; });
    const [sl, sh, dl, dh] = [Math.floor(best / 48), Math.floor(best / 12) % 4, Math.floor(best / 4) % 3, best % 4];
    expect(r.stdout).toContain(`top paths (by |value|):\n   1. ${sl}.${sh} → ${dl}.${dh} q`);
  });

  it("--svg and --csv write the picture and one line per entry", async () => {
    const svg = join(tmp, "dp.svg");
    const csv = join(tmp, "dp.csv");
    const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1", "--component", "q", "--svg", svg, "--csv", csv, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const text = readFileSync(svg, "utf8");
    expect(text.match(/<rect class="cell/g)).toHaveLength(12);
    expect(text.match(/<rect class="cell no-path"/g)).toHaveLength(4);
    const lines = readFileSync(csv, "utf8").trim().split("\n");
    expect(lines[0]).toBe("layer,head,score,normalized,no_path");
    expect(lines).toHaveLength(13);
    expect(lines[1]).toBe("0,0,0,0,1");
  });

  it("--out - puts the JSON alone on stdout and the summary on stderr", async () => {
    const r = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "0.1", "--component", "q", "--out", "-"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).op).toBe("direct_path");
    expect(r.stderr).toContain("top paths");
  });
});

describe("hooklens patch act", () => {
  for (const kind of ["resid_pre", "attn_head_out_all_pos", "attn_head_out_by_pos"]) {
    it(`--kind ${kind} matches PyTorch`, async () => {
      const out = join(tmp, `act-${kind}.json`);
      const r = await cli(["patch", "act", "--kind", kind, "--model", MODEL, "--prompts", PROMPTS, "--out", out]);
      expect(r.code, r.stderr).toBe(0);
      const got = readJson<{ op: string; shape: number[]; scores: number[]; options: object }>(out);
      const want = golden<GoldenScores>("tiny-gpt2-random", `act_patch_${kind}.json`);
      expect(got.op).toBe(`act_patch_${kind}`);
      expect(got.shape).toEqual(want.shape);
      expectClose(got.scores, want.scores, 1e-3 + 1e-3 * Math.max(...want.scores.map(Math.abs)), kind);
      expect(got.options).toMatchObject({ kind, strategy: "planned" });
    });
  }

  it("the ...every kinds stack along a leading axis and draw one panel per slice", async () => {
    const svg = join(tmp, "every.svg");
    const r = await cli(["patch", "act", "--kind", "block_every", "--model", MODEL, "--prompts", PROMPTS, "--svg", svg, "--top", "2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("patched resid_pre");
    expect(r.stdout).toContain("patched mlp_out");
    expect(readFileSync(svg, "utf8").match(/<rect class="cell/g)).toHaveLength(3 * 3 * 8);
  });

  it("--strategy naive gives the planned numbers", async () => {
    const [a, b] = [join(tmp, "planned.json"), join(tmp, "naive.json")];
    expect((await cli(["patch", "act", "--kind", "attn_out", "--model", MODEL, "--prompts", PROMPTS, "--out", a, "-q"])).code).toBe(0);
    expect((await cli(["patch", "act", "--kind", "attn_out", "--model", MODEL, "--prompts", PROMPTS, "--out", b, "-q", "--strategy", "naive"])).code).toBe(0);
    expectClose(readJson<{ scores: number[] }>(b).scores, readJson<{ scores: number[] }>(a).scores, 1e-5, "naive vs planned");
  });
});

describe("progress and interruption", () => {
  const args = ["patch", "act", "--kind", "attn_head_out_by_pos", "--model", MODEL, "--prompts", PROMPTS];

  it("a non-TTY stderr gets plain progress lines ending with the total", async () => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^act patch attn_head_out_by_pos: \d+\/96 \(\d+%\), \S+ elapsed/m);
    expect(r.stderr).toMatch(/^act patch attn_head_out_by_pos: 96\/96 \(100%\), \S+ elapsed, done$/m);
    expect(r.stderr).not.toContain("\r");
  });

  it("a TTY gets one redrawn bar; --quiet gets nothing", async () => {
    const tty = await cli(args, { tty: true });
    expect(tty.stderr).toContain("\r\x1b[2K");
    expect(tty.stderr).toMatch(/█+ 100% 96\/96/);
    const quiet = await cli([...args, "--quiet"]);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe("");
    expect(quiet.stdout).toContain("top patches");
  });

  it("aborting during a sweep exits 130 with one line", async () => {
    const controller = new AbortController();
    const r = await cli(args, { signal: controller.signal, onStderr: (s) => { if (s.includes("/96")) controller.abort(); } });
    expect(r.code).toBe(130);
    expect(r.stderr.trim().split("\n").at(-1)).toBe("hooklens: interrupted");
    expect(r.stdout).toBe("");
  });
});

describe("text prompts through the model's tokenizer", () => {
  const dir = join(tmp, "tokenizer-model");
  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    const bytes = gpt2ByteToUnicode();
    const vocab: Record<string, number> = {};
    bytes.forEach((ch, b) => { vocab[ch] = b; });
    const merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["l", "d"], ["Ġwor", "ld"], ["Ġ", "t"], ["Ġt", "he"]];
    for (const [a, b] of merges) vocab[a! + b!] ??= Object.keys(vocab).length;
    vocab["<|endoftext|>"] = Object.keys(vocab).length;
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
    const tokenizer = {
      version: "1.0", truncation: null, padding: null, normalizer: null,
      added_tokens: [{ id: vocab["<|endoftext|>"], content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
      pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
      model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
    };
    const files = randomGpt2Files({ nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 16, vocab: Object.keys(vocab).length, seed: 7 });
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  });

  it("run --prompt prints token texts", async () => {
    const r = await cli(["run", "--model", dir, "--prompt", "hello world", "--top", "2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^row 0: "<\|endoftext\|>hello world" \(3 tokens\); next token:/);
    expect(r.stdout).toMatch(/#\s+id\s+token\s+prob\s+logit/);
  });

  it("ragged text rows are padded for run, and read at each row's last token", async () => {
    const prompts = join(tmp, "texts-run.json");
    writeFileSync(prompts, JSON.stringify({ clean: ["hello", "hello world the"] }));
    const out = join(tmp, "texts-run-logits.json");
    const r = await cli(["run", "--model", dir, "--prompts", prompts, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readJson<GoldenTensor>(out).shape.slice(0, 2)).toEqual([2, 4]);
    expect(r.stdout).toContain("(2 tokens)");
    expect(r.stdout).toContain("(4 tokens)");
  });

  it("patch accepts texts and single-token text answers, and names a multi-token answer", async () => {
    const prompts = join(tmp, "texts.json");
    writeFileSync(prompts, JSON.stringify({ clean: ["hello world"], corrupted: ["hello the"], correct: ["hello"], incorrect: [" world"] }));
    const ok = await cli(["patch", "act", "--kind", "resid_pre", "--model", dir, "--prompts", prompts, "--quiet"]);
    expect(ok.code, ok.stderr).toBe(0);
    writeFileSync(prompts, JSON.stringify({ clean: ["hello world"], corrupted: ["hello the"], correct: ["hello world"], incorrect: [" world"] }));
    const bad = await cli(["patch", "act", "--kind", "resid_pre", "--model", dir, "--prompts", prompts]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^hooklens: --prompts \S+: correct\[0\]: "hello world" is 2 tokens \[\d+,\d+\]; an answer must be exactly one token/);
  });

  it("texts of different lengths cannot be patched", async () => {
    const prompts = join(tmp, "texts-ragged.json");
    writeFileSync(prompts, JSON.stringify({ clean: ["hello world", "hello"], corrupted: ["hello the", "the"], correct: [1, 2], incorrect: [3, 4] }));
    const r = await cli(["patch", "act", "--kind", "resid_pre", "--model", dir, "--prompts", prompts]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/clean\[1\] is 2 tokens but clean\[0\] is 3; patching needs rows of one length/);
  });
});

describe("inputs validated against the model", () => {
  const writePrompts = (name: string, value: unknown) => {
    const file = join(tmp, name);
    writeFileSync(file, JSON.stringify(value));
    return file;
  };
  const inputs = golden<GoldenInputs>("tiny-gpt2-random", "inputs.json");
  const patch = (prompts: string, extra: string[] = []) =>
    cli(["patch", "direct-path", "--model", MODEL, "--prompts", prompts, "--src", "0.1", "--component", "q", ...extra]);

  it("clean and corrupted of different shapes", async () => {
    const r = await patch(writePrompts("shape.json", { ...inputs, corrupted: inputs.corrupted.map((row) => row.slice(1)) }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hooklens: --prompts \S+: "corrupted" is 2 rows × 7 tokens but "clean" is 2 × 8; they must have one shape\n$/);
  });

  it("ids out of the vocabulary, naming field, row and position", async () => {
    const clean = inputs.clean.map((row) => [...row]);
    clean[1]![3] = 100;
    const r = await patch(writePrompts("vocab.json", { ...inputs, clean }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/clean\[1\]\[3\]: id 100 is out of the vocabulary \[0, 100\)/);
    const answers = await patch(writePrompts("answer.json", { ...inputs, incorrect: [47, -1] }));
    expect(answers.code).toBe(2);
    expect(answers.stderr).toMatch(/incorrect\[1\]: id -1 is out of the vocabulary/);
  });

  it("one answer per row, known fields, texts without a tokenizer", async () => {
    expect((await patch(writePrompts("n.json", { ...inputs, correct: [42] }))).stderr).toMatch(/"correct" has 1 answers but there are 2 rows/);
    expect((await patch(writePrompts("f.json", { ...inputs, clen: [] }))).stderr).toMatch(/unknown field "clen" \(did you mean clean\?\)/);
    expect((await patch(writePrompts("m.json", { clean: inputs.clean }))).stderr).toMatch(/the field "corrupted" is missing/);
    const texts = await patch(writePrompts("t.json", { ...inputs, clean: ["a b", "c d"] }));
    expect(texts.code).toBe(2);
    expect(texts.stderr).toMatch(/"clean" holds texts but the model has no tokenizer/);
    const prompt = await cli(["run", "--model", MODEL, "--prompt", "hello"]);
    expect(prompt.code).toBe(2);
    expect(prompt.stderr).toMatch(/--prompt needs the model's tokenizer/);
  });

  it("clean equal to corrupted: nothing to normalize by, so the heatmap shows the change from the baseline", async () => {
    const out = join(tmp, "same-result.json");
    const r = await patch(writePrompts("same.json", { ...inputs, corrupted: inputs.clean }), ["--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const got = readJson<{ normalized: null; scores: number[]; baseline: number; clean: number }>(out);
    expect(got.normalized).toBeNull();
    expect(got.clean).toBe(got.baseline);
    expect(r.stdout).toContain("logit difference minus the corrupted baseline");
  });

  it("a head or layer out of range", async () => {
    const badLayer = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "3.0", "--component", "q"]);
    expect(badLayer.code).toBe(2);
    expect(badLayer.stderr).toBe("hooklens: patch direct-path: --src 3.0: layer 3 is out of range; the model has layers 0..2\n");
    const badHead = await cli(["patch", "direct-path", "--model", MODEL, "--prompts", PROMPTS, "--src", "1.4", "--component", "q"]);
    expect(badHead.code).toBe(2);
    expect(badHead.stderr).toBe("hooklens: patch direct-path: --src 1.4: head 4 is out of range; the model has heads 0..3\n");
  });

  it("files that cannot be used exit 1", async () => {
    const missing = await patch(join(tmp, "nope.json"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("hooklens: --prompts: no such file: " + join(tmp, "nope.json") + "\n");
    const broken = join(tmp, "broken.json");
    writeFileSync(broken, "{\"clean\": [");
    const invalid = await patch(broken);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^hooklens: --prompts \S+: invalid JSON/);
    const noModel = await cli(["run", "--model", join(tmp, "no-model"), "--prompts", PROMPTS]);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toBe(`hooklens: --model: no such folder: ${join(tmp, "no-model")}\n`);
    const empty = join(tmp, "empty-model");
    mkdirSync(empty, { recursive: true });
    const emptyModel = await cli(["run", "--model", empty, "--prompts", PROMPTS]);
    expect(emptyModel.code).toBe(1);
    expect(emptyModel.stderr).toMatch(/^hooklens: cannot load the model in \S+: .*config\.json/);
    expect(emptyModel.stderr.trim().split("\n")).toHaveLength(1);
    const unwritable = await cli(["run", "--model", MODEL, "--prompts", PROMPTS, "--out", join(tmp, "no-dir", "x.json")]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/^hooklens: cannot write \S+x\.json: ENOENT\n$/);
  });

  it("--debug adds the stack trace", async () => {
    const r = await cli(["run", "--model", join(tmp, "empty-model"), "--prompts", PROMPTS, "--debug"]);
    expect(r.code).toBe(1);
    expect(r.stderr.split("\n").length).toBeGreaterThan(3);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});
