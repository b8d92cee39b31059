// Fuzz targets of the CLI: the prompts file reader and whole command lines through runCli,
// in-process, with the working directory in a temporary folder.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { runCli } from "../../src/cli/cli.js";
import { Context } from "../../src/cli/context.js";
import { InputError, UsageError } from "../../src/cli/errors.js";
import { readPromptsFile, validatePrompts, type Prompts, type PromptsUse } from "../../src/cli/prompts.js";
import { HookedTransformer } from "../../src/model/hooked-transformer.js";
import { mutateBytes } from "./mutate-bytes.js";
import { mutateJson } from "./mutate-json.js";
import type { Rng } from "./rng.js";
import type { Target } from "./runner.js";
import { promptsSeeds, writeCliModel } from "./seeds.js";
import { MEMORY_SLACK } from "./targets-io.js";

/** Errors a CLI command may end with: they become exit code 1 or 2 and one line on stderr. */
const TYPED = new Set(["InputError", "UsageError", "ModelFormatError", "ModelSourceError", "ConfigError"]);

export interface CliWorld {
  dir: string;
  modelDir: string;
  model: HookedTransformer;
  promptFiles: string[];
}

/** A temporary folder with the CLI's model (tokenizer included) and valid prompts files. */
export async function createCliWorld(): Promise<CliWorld> {
  const dir = mkdtempSync(join(tmpdir(), "hooklens-fuzz-"));
  const modelDir = writeCliModel(dir);
  const model = await HookedTransformer.fromPretrained(modelDir);
  const promptFiles = promptsSeeds(model.cfg.dVocab, model.cfg.nCtx).map((p, i) => {
    const file = join(dir, `prompts-${i}.json`);
    writeFileSync(file, JSON.stringify(p));
    return file;
  });
  return { dir, modelDir, model, promptFiles };
}

function cliLabel(e: unknown): string | undefined {
  if (e instanceof UsageError) return "UsageError";
  if (e instanceof InputError) return "InputError";
  return undefined;
}

/** What validated prompts must be, whatever the file held: integer ids in the vocabulary, rows within the context. */
function checkPrompts(p: Prompts, use: PromptsUse, dVocab: number, nCtx: number): string | undefined {
  const rowsOk = (rows: unknown, same: boolean) =>
    Array.isArray(rows) && rows.length > 0 && rows.every((r) => Array.isArray(r) && r.length > 0 && r.length <= nCtx &&
      r.every((id) => Number.isInteger(id) && id >= 0 && id < dVocab) && (!same || r.length === rows[0].length));
  if (!rowsOk(p.clean, use === "patch" || p.cleanMask === undefined)) return `bad clean rows ${JSON.stringify(p.clean).slice(0, 200)}`;
  if (use === "run") return undefined;
  if (!rowsOk(p.corrupted, true) || p.corrupted!.length !== p.clean.length || p.corrupted![0]!.length !== p.clean[0]!.length) return "bad corrupted rows";
  for (const answers of [p.correct, p.incorrect]) {
    if (!Array.isArray(answers) || answers.length !== p.clean.length || !answers.every((id) => Number.isInteger(id) && id >= 0 && id < dVocab)) return "bad answers";
  }
  return undefined;
}

const PROMPT_KEYS = ["clean", "corrupted", "correct", "incorrect", "cleanMask", "__proto__"];

interface PromptsCase { text: Uint8Array; use: PromptsUse }

/** The prompts file reader on damaged files, for `run` and for `patch`. */
export function promptsMutate(world: CliWorld): Target<PromptsCase> {
  const { model } = world;
  const seeds = promptsSeeds(model.cfg.dVocab, model.cfg.nCtx);
  const ctx = new Context({ stdout: { write: () => true }, stderr: { write: () => true }, cwd: world.dir }, false);
  const file = join(world.dir, "case-prompts.json");
  return {
    name: "prompts/file",
    weight: 8,
    generate(rng) {
      const text = new TextEncoder().encode(mutateJson(rng, rng.pick(seeds), { keys: PROMPT_KEYS, values: [[1, 2, 3], "ab", [[0]], [["a"]], model.cfg.dVocab, -1] }));
      return { text: rng.chance(0.1) ? mutateBytes(rng, text) : text, use: rng.chance(0.5) ? "run" : "patch" };
    },
    run({ text, use }) {
      writeFileSync(file, text);
      return readPromptsFile(ctx, "case-prompts.json", model, use);
    },
    classify: cliLabel,
    check: ({ use }, value) => checkPrompts(value as Prompts, use, model.cfg.dVocab, model.cfg.nCtx),
    memoryBound: ({ text }) => 4 * text.length + MEMORY_SLACK,
    describe: ({ text, use }) => `${use}: ${new TextDecoder().decode(text.subarray(0, 300))}`,
  };
}

/** Property: any JSON value shaped roughly like a prompts file validates to good rows or a usage error. */
export function promptsProperty(world: CliWorld): Target<{ json: unknown; use: PromptsUse }> {
  const { model } = world;
  const id = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: -2, max: model.cfg.dVocab + 2 }) }, { weight: 1, arbitrary: fc.oneof(fc.double(), fc.string({ maxLength: 3 }), fc.constant(null)) });
  const row = fc.array(id, { minLength: 0, maxLength: 20 });
  const rows = fc.oneof(fc.array(row, { maxLength: 3 }), fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }), fc.array(fc.oneof(row, fc.string({ maxLength: 5 })), { maxLength: 3 }), fc.anything({ maxDepth: 2 }));
  const answers = fc.oneof(fc.array(fc.oneof(id, fc.constantFrom("a", " a", "ab", "xy")), { maxLength: 3 }), fc.anything({ maxDepth: 1 }));
  const json = fc.oneof(
    { weight: 9, arbitrary: fc.record({ clean: rows, corrupted: rows, correct: answers, incorrect: answers }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.anything() },
  );
  return {
    name: "prompts/property",
    weight: 6,
    arbitrary: fc.record({ json, use: fc.constantFrom<PromptsUse>("run", "patch") }),
    run: ({ json, use }) => validatePrompts(json, model, use, "--prompts p.json"),
    classify: cliLabel,
    check: ({ use }, value) => checkPrompts(value as Prompts, use, model.cfg.dVocab, model.cfg.nCtx),
    memoryBound: () => 4 * MEMORY_SLACK,
    describe: (input) => JSON.stringify(input).slice(0, 400),
  };
}

interface CliRun { code: number; stdout: string; stderr: string }

/** Judges a finished CLI run: exit 0/1/2, one `hooklens:` line, and (in debug mode) typed errors only. */
export function judgeCliRun(argv: readonly string[], run: CliRun): string | undefined {
  if (![0, 1, 2].includes(run.code)) return `exit code ${run.code}`;
  if (run.code === 0) return undefined;
  const lines = run.stderr.split("\n");
  const messages = lines.filter((l) => l.startsWith("hooklens: "));
  if (messages.length !== 1) {
    // Only the bare command prints its help instead of an error line.
    return argv.length === 0 ? undefined : `expected one "hooklens:" line on stderr, got ${messages.length}: ${run.stderr.slice(0, 300)}`;
  }
  const at = lines.indexOf(messages[0]!);
  const stackHead = lines[at + 1];
  if (stackHead !== undefined && stackHead !== "") {
    const name = /^(\w+)/.exec(stackHead)?.[1];
    if (name === undefined || !TYPED.has(name)) return `untyped error reached the CLI: ${stackHead.slice(0, 200)}`;
  }
  const cause = lines.find((l) => l.startsWith("caused by: "));
  if (cause !== undefined) {
    const name = /^caused by: (\w+)/.exec(cause)?.[1];
    if (name === undefined || !TYPED.has(name)) return `untyped cause: ${cause.slice(0, 200)}`;
  }
  return undefined;
}

const COMMAND_WORDS = ["run", "cache", "patch", "patch direct-path", "patch act", "merge", "help", "help prompts", "help patch", "rnu", "direct-path", "act", "--help", "-h", "--version", "-V", "--debug", ""];
const FLAG_WORDS = ["--model", "--prompt", "--prompts", "--out", "--svg", "--csv", "--top", "--names", "--src", "--component", "--mode", "--strategy", "--backend",
  "--kind", "--no-process", "--quiet", "-q", "--debug", "--help", "--shards", "--shard", "--modle", "--", "-", "-x", "--out=", "--top=3", "--model=", "--quiet=1"];

function valueWords(world: CliWorld, rng: Rng): string {
  return rng.pick([
    world.modelDir, world.modelDir, "missing-model", world.promptFiles[0]!, join(world.dir, "model", "config.json"),
    rng.pick(world.promptFiles), rng.pick(world.promptFiles), "case-cli-prompts.json", "no-such-file.json",
    "out.json", "-", "sub/missing/out.json", "out.svg", "out.csv", "",
    "0", "1", "3", "-1", "1e3", "99999999999999999999", "0x10", "2.5",
    "0.1", "1.0", "all", "9.9", "1.", "-1.0",
    "q", "k", "v", "linear", "exact", "both", "planned", "naive", "wasm", "js", "gpu",
    "resid", "hook_(q|k)$", "[", "(a+)+$", ".*", "blocks\\.0", "zzz",
    "resid_pre", "attn_head_out_all_pos", "attn_head_out_by_pos", "bogus",
    "ab abc", "héllo", "\u0000", "x".repeat(300),
    "http://127.0.0.1:9/none/",
  ]);
}

/** Command lines that reach the model: a valid start that mutations then bend. */
function templates(world: CliWorld, rng: Rng): string[] {
  const prompts = rng.chance(0.5) ? "case-cli-prompts.json" : rng.pick(world.promptFiles);
  return rng.pick([
    ["run", "--model", world.modelDir, "--prompts", prompts, "--quiet"],
    ["run", "--model", world.modelDir, "--prompt", "ab abc", "--top", "2"],
    ["cache", "--model", world.modelDir, "--prompts", prompts, "--names", "resid_pre", "--out", "cache.json"],
    ["patch", "direct-path", "--model", world.modelDir, "--prompts", prompts, "--src", "0.1", "--component", "q", "--quiet", "--out", "-"],
    ["patch", "act", "--model", world.modelDir, "--prompts", prompts, "--kind", "resid_pre", "--quiet", "--csv", "out.csv"],
  ]);
}

/** A command line: a template with a word replaced, dropped or added; a command with flag/value pairs; or any words. */
function generateArgv(world: CliWorld, rng: Rng): string[] {
  if (rng.chance(0.5)) {
    const argv = templates(world, rng);
    for (let n = rng.int(3); n > 0; n--) {
      const at = rng.int(argv.length + 1);
      const r = rng.int(3);
      if (r === 0) argv.splice(at, 1);
      else if (r === 1) argv.splice(at, 0, rng.chance(0.5) ? rng.pick(FLAG_WORDS) : valueWords(world, rng));
      else argv[Math.min(at, argv.length - 1)] = valueWords(world, rng);
    }
    return argv;
  }
  const argv: string[] = [];
  const structured = rng.chance(0.8);
  if (structured) argv.push(...rng.pick(COMMAND_WORDS.slice(0, 8)).split(" "));
  for (let n = rng.int(structured ? 9 : 6); n > 0; n--) {
    if (structured && rng.chance(0.75)) {
      argv.push(rng.pick(FLAG_WORDS));
      if (rng.chance(0.85)) argv.push(valueWords(world, rng));
    } else {
      argv.push(rng.chance(0.5) ? rng.pick(COMMAND_WORDS) : rng.chance(0.5) ? rng.pick(FLAG_WORDS) : valueWords(world, rng));
    }
  }
  return argv.filter((w) => w !== "" || rng.chance(0.3));
}

interface CliCase { argv: string[]; prompts?: string }

/** Whole command lines through runCli; sometimes with a damaged prompts file in the working folder. */
export function cliArgv(world: CliWorld): Target<CliCase> {
  const seeds = promptsSeeds(world.model.cfg.dVocab, world.model.cfg.nCtx);
  return {
    name: "cli/argv",
    weight: 6,
    generate(rng) {
      const argv = generateArgv(world, rng);
      const prompts = argv.includes("case-cli-prompts.json") ? mutateJson(rng, rng.pick(seeds), { keys: PROMPT_KEYS }) : undefined;
      return { argv, prompts };
    },
    async run({ argv, prompts }) {
      if (prompts !== undefined) writeFileSync(join(world.dir, "case-cli-prompts.json"), prompts);
      let stdout = "";
      let stderr = "";
      const code = await runCli(argv, {
        stdout: { write: (s: string) => { stdout += s; }, isTTY: false },
        stderr: { write: (s: string) => { stderr += s; }, isTTY: false, columns: 100 },
        env: { HOOKLENS_DEBUG: "1", NO_COLOR: "1" },
        cwd: world.dir,
      });
      return { code, stdout, stderr };
    },
    classify: () => undefined,
    label: (value) => `exit ${(value as CliRun).code}`,
    check: ({ argv }, value) => judgeCliRun(argv, value as CliRun),
    describe: ({ argv, prompts }) => `${JSON.stringify(argv)}${prompts === undefined ? "" : ` prompts ${prompts.slice(0, 200)}`}`,
  };
}
