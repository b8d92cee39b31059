// Help texts and the version, generated from the command specs so they cannot drift.

import { readFileSync } from "node:fs";
import { COMMON_FLAGS, type FlagSpec } from "./args.js";
import type { Command } from "./command.js";

export function commandHelp(cmd: Command): string {
  const flags = [...cmd.flags, ...COMMON_FLAGS];
  const left = (f: FlagSpec) => `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.kind === "switch" ? "" : ` ${f.value ?? "VALUE"}`}`;
  const width = Math.max(...flags.map((f) => left(f).length));
  const lines = [`hooklens ${cmd.name}: ${cmd.summary}`, "", `usage: hooklens ${cmd.usage}`, "", "flags:"];
  for (const f of flags) lines.push(`  ${left(f).padEnd(width)}  ${f.help}`);
  if (cmd.notes) lines.push("", cmd.notes);
  return lines.join("\n") + "\n";
}

export function mainHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "hooklens: TransformerLens-style interpretability on WASM SIMD",
    "",
    "usage: hooklens <command> [flags]",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${"help [command]".padEnd(width)}  help on a command; \`hooklens help prompts\` describes the prompts file`,
    "",
    "global flags: --help, --version, --debug (stack traces on errors)",
    "exit codes: 0 ok, 1 a file or model that cannot be used, 2 bad arguments or prompts, 130 interrupted",
    "",
    "Run `hooklens <command> --help` for its flags, e.g. `hooklens patch direct-path --help`.",
  ].join("\n") + "\n";
}

export const PROMPTS_HELP = `The prompts file (--prompts FILE) is JSON:

  {
    "clean":     [[ids...], ...]  or ["text", ...],
    "corrupted": the same form and shape as clean,
    "correct":   [one token id or single-token text per row],
    "incorrect": [one token id or single-token text per row]
  }

Texts need the model's tokenizer (BOS is prepended, as TransformerLens does); answer texts must be
exactly one token (mind the leading space: " Mary"). For patching, clean and corrupted must have the
same number of rows and tokens per row, and every id must be in the vocabulary. \`run\` and \`cache\`
read only the clean rows (texts of different lengths are padded and masked). Errors name the field
and row, e.g. "corrupted[1][3]: id 512 is out of the vocabulary [0, 100)".

Example (token ids):
  {"clean": [[12, 50, 84, 60]], "corrupted": [[12, 99, 84, 98]], "correct": [42], "incorrect": [47]}
`;

/** The package version, read from package.json next to src/ or dist/. */
export function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}
