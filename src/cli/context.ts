// What a command runs against: the output streams, the environment, the working
// directory and the abort signal, so that the CLI core runs the same in tests and in a shell.

import { writeFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { InputError } from "./errors.js";

/** The part of a Node writable stream the CLI uses. */
export interface CliStream {
  write(chunk: string): unknown;
  /** A terminal: progress redraws one line, heatmaps may use colour. */
  isTTY?: boolean;
  columns?: number;
}

/** How `runCli` talks to the world. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  env?: Readonly<Record<string, string | undefined>>;
  /** Relative paths resolve against this (default: the process's working directory). */
  cwd?: string;
  /** Aborts a running sweep (main.ts wires it to Ctrl-C). */
  signal?: AbortSignal;
}

export class Context {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;

  constructor(readonly io: CliIo, readonly debug: boolean) {
    this.cwd = io.cwd ?? process.cwd();
    this.env = io.env ?? {};
  }

  get signal(): AbortSignal | undefined {
    return this.io.signal;
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  err(text: string): void {
    this.io.stderr.write(text);
  }

  /** Whether `stream` may receive ANSI colours: a TTY, unless NO_COLOR or TERM=dumb; FORCE_COLOR forces them. */
  colour(stream: CliStream): boolean {
    const force = this.env["FORCE_COLOR"];
    if (force !== undefined && force !== "" && force !== "0") return true;
    if (this.env["NO_COLOR"] !== undefined && this.env["NO_COLOR"] !== "") return false;
    if (this.env["TERM"] === "dumb") return false;
    return stream.isTTY === true;
  }

  /** Terminal width of `stream` (80 when unknown). */
  width(stream: CliStream): number {
    const c = stream.columns ?? Number(this.env["COLUMNS"]);
    return Number.isFinite(c) && c! >= 20 ? c! : 80;
  }

  path(p: string): string {
    return isAbsolute(p) ? p : resolve(this.cwd, p);
  }

  /** Writes `text` to the file `target`, or to stdout when it is `-`. */
  write(target: string, text: string): void {
    if (target === "-") {
      this.out(text.endsWith("\n") ? text : text + "\n");
      return;
    }
    try {
      writeFileSync(this.path(target), text);
    } catch (e) {
      throw new InputError(`cannot write ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
}
