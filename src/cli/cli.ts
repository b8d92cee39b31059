// The CLI core: dispatches argv to a command and turns errors into exit codes and one-line
// messages. Testable: it writes only to the streams it is given and never exits the process.

import { parseArgs, suggest } from "./args.js";
import { attrCommand } from "./cmd-attr.js";
import { cacheCommand } from "./cmd-cache.js";
import { circuitAcdcCommand, circuitDiscoverCommand, circuitEdgesCommand, circuitEvalCommand } from "./cmd-circuit.js";
import { demoCommand } from "./cmd-demo.js";
import { mergeCommand } from "./cmd-merge.js";
import { actCommand, directPathCommand } from "./cmd-patch.js";
import { runCommand } from "./cmd-run.js";
import type { Command } from "./command.js";
import { Context, type CliIo } from "./context.js";
import { exitCodeOf, InterruptedError, oneLine, UsageError } from "./errors.js";
import { commandHelp, mainHelp, PROMPTS_HELP, version } from "./help.js";

export type { CliIo, CliStream } from "./context.js";

const COMMANDS: readonly Command[] = [
  runCommand, cacheCommand, directPathCommand, actCommand, attrCommand, circuitEdgesCommand, circuitEvalCommand, circuitDiscoverCommand,
  circuitAcdcCommand, mergeCommand, demoCommand,
];
const TOP_LEVEL = ["run", "cache", "patch", "circuit", "merge", "demo", "help"];
const CIRCUIT_KINDS = ["edges", "eval", "discover", "acdc"];
const PATCH_KINDS = ["direct-path", "act", "attr"];

/**
 * Runs `hooklens` with `argv` (the words after the program name) and returns the exit code:
 * 0 ok, 1 a file or model that cannot be used, 2 bad arguments, 130 interrupted.
 *
 * @example
 * ```ts
 * const code = await runCli(["run", "--model", "gpt2", "--prompt", "Hello"], { stdout: process.stdout, stderr: process.stderr });
 * ```
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const debug = argv.includes("--debug") || io.env?.["HOOKLENS_DEBUG"] === "1";
  const ctx = new Context(io, debug);
  try {
    return await dispatch(ctx, argv);
  } catch (e) {
    const code = exitCodeOf(e);
    if (e instanceof InterruptedError) ctx.err("hooklens: interrupted\n");
    else ctx.err(`hooklens: ${oneLine(e)}\n`);
    if (debug && e instanceof Error && !(e instanceof UsageError)) {
      ctx.err(`${e.stack ?? e.message}\n`);
      if (e.cause instanceof Error) ctx.err(`caused by: ${e.cause.stack ?? e.cause.message}\n`);
    }
    return code;
  }
}

async function dispatch(ctx: Context, argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    ctx.err(mainHelp(COMMANDS));
    return 2;
  }
  if (first === "--help" || first === "-h") {
    ctx.out(mainHelp(COMMANDS));
    return 0;
  }
  if (first === "--version" || first === "-V") {
    ctx.out(`hooklens ${version()}\n`);
    return 0;
  }
  if (first === "help") return help(ctx, rest.filter((w) => w !== "--debug"));
  if (first.startsWith("-") && first !== "--debug") throw new UsageError(`expected a command before ${first}; commands: ${TOP_LEVEL.join(", ")}`);
  if (first === "--debug") return dispatch(ctx, rest);

  let name = first;
  let words = rest;
  if (first === "patch") {
    const kind = rest[0];
    if (kind === undefined) throw new UsageError(`patch needs a kind: ${PATCH_KINDS.join(", ")} (e.g. hooklens patch direct-path --help)`);
    if (kind === "--help" || kind === "-h") {
      ctx.out(patchOverview());
      return 0;
    }
    if (!PATCH_KINDS.includes(kind)) throw new UsageError(`unknown patch kind ${JSON.stringify(kind)}${suggest(kind, PATCH_KINDS, "")}; use ${PATCH_KINDS.join(", ")}`);
    name = `patch ${kind}`;
    words = rest.slice(1);
  }
  if (first === "circuit") {
    const kind = rest[0];
    if (kind === undefined || kind === "--help" || kind === "-h") {
      if (kind === undefined) throw new UsageError(`circuit needs a kind: ${CIRCUIT_KINDS.join(", ")} (e.g. hooklens circuit discover --help)`);
      ctx.out(circuitOverview());
      return 0;
    }
    if (!CIRCUIT_KINDS.includes(kind)) throw new UsageError(`unknown circuit kind ${JSON.stringify(kind)}${suggest(kind, CIRCUIT_KINDS, "")}; use ${CIRCUIT_KINDS.join(", ")}`);
    name = `circuit ${kind}`;
    words = rest.slice(1);
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) throw new UsageError(`unknown command ${JSON.stringify(first)}${suggest(first, TOP_LEVEL, "")}; commands: ${TOP_LEVEL.join(", ")}`);
  if (words.includes("--help") || words.includes("-h")) {
    ctx.out(commandHelp(cmd));
    return 0;
  }
  return cmd.run(ctx, parseArgs(name, words, cmd.flags, cmd.maxPositionals ?? 0));
}

function help(ctx: Context, topic: readonly string[]): number {
  const name = topic.join(" ");
  if (name === "") ctx.out(mainHelp(COMMANDS));
  else if (name === "prompts") ctx.out(PROMPTS_HELP);
  else if (name === "patch") ctx.out(patchOverview());
  else if (name === "circuit") ctx.out(circuitOverview());
  else {
    const cmd = COMMANDS.find((c) => c.name === name);
    if (cmd === undefined) throw new UsageError(`no help on ${JSON.stringify(name)}; topics: ${[...COMMANDS.map((c) => c.name), "prompts"].join(", ")}`);
    ctx.out(commandHelp(cmd));
  }
  return 0;
}

function circuitOverview(): string {
  return [
    "hooklens circuit: edge-level circuits over the writer/reader graph",
    "",
    `  hooklens ${circuitEdgesCommand.usage}`,
    `  hooklens ${circuitEvalCommand.usage}`,
    `  hooklens ${circuitDiscoverCommand.usage}`,
    `  hooklens ${circuitAcdcCommand.usage}`,
    "",
    "Run `hooklens circuit <kind> --help` for their flags.",
  ].join("\n") + "\n";
}

function patchOverview(): string {
  return [
    "hooklens patch: patching sweeps over a prompts file",
    "",
    `  hooklens ${directPathCommand.usage}`,
    `  hooklens ${actCommand.usage}`,
    `  hooklens ${attrCommand.usage}`,
    "",
    "Run `hooklens patch direct-path --help`, `hooklens patch act --help` or `hooklens patch attr --help` for their flags.",
  ].join("\n") + "\n";
}
