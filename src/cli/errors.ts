// Errors the CLI turns into exit codes: bad arguments are the user's to fix (2), a file
// or model that cannot be used is the input's problem (1).

/** Exit code 2: a flag, value or argument is wrong; the message says what to fix. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit code 1: a file or model that cannot be read or used. */
export class InputError extends Error {
  readonly exitCode = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InputError";
  }
}

/** Exit code 130 (as a shell reports SIGINT): the user interrupted a sweep. */
export class InterruptedError extends Error {
  readonly exitCode = 130;
  constructor() {
    super("interrupted");
    this.name = "InterruptedError";
  }
}

export function isAbortError(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}

/** The exit code an error deserves: its own, else 1. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError || e instanceof InputError || e instanceof InterruptedError) return e.exitCode;
  return 1;
}

/** One line for the terminal: the first line of the message, never a stack. */
export function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const first = text.split("\n").find((l) => l.trim() !== "") ?? "unknown error";
  return first.trim();
}
