// A small, strict argv parser: `--name value`, `--name=value`, boolean switches, short
// aliases. Unknown flags, repeats, missing values and stray arguments are usage errors.

import { UsageError } from "./errors.js";
import { editDistance } from "../util/edit-distance.js";

export interface FlagSpec {
  name: string;
  /** A switch takes no value; the others do. */
  kind: "string" | "int" | "switch";
  short?: string;
  /** Shown in help as `--name VALUE`. */
  value?: string;
  /** Allowed values of a string flag. */
  choices?: readonly string[];
  help: string;
}

/** Flags every command accepts. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: "help", short: "h", kind: "switch", help: "show this help" },
  { name: "debug", kind: "switch", help: "print stack traces of errors" },
];

/** Parsed flags of one command. */
export class ParsedArgs {
  constructor(
    private readonly command: string,
    private readonly values: ReadonlyMap<string, string | true>,
    readonly positionals: readonly string[],
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  switch(name: string): boolean {
    return this.values.get(name) === true;
  }

  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === "string" ? v : undefined;
  }

  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`${this.command}: --${name} is required`);
    return v;
  }

  /** An integer flag within [min, max], or the fallback when absent. */
  int(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
      throw new UsageError(`${this.command}: --${name} must be an integer ${range}, got ${JSON.stringify(v)}`);
    }
    return n;
  }
}

/**
 * Parses `args` (the words after the command name) against `specs` plus the common flags.
 * At most `maxPositionals` bare words are accepted.
 */
export function parseArgs(command: string, args: readonly string[], specs: readonly FlagSpec[], maxPositionals = 0): ParsedArgs {
  const all = [...specs, ...COMMON_FLAGS];
  const byName = new Map(all.map((s) => [s.name, s]));
  const byShort = new Map(all.filter((s) => s.short !== undefined).map((s) => [s.short!, s]));
  const values = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (word.startsWith("--") && word.length > 2) {
      const eq = word.indexOf("=");
      const name = eq < 0 ? word.slice(2) : word.slice(2, eq);
      if (eq >= 0) inline = word.slice(eq + 1);
      spec = byName.get(name);
      if (spec === undefined) throw new UsageError(`${command}: unknown flag --${name}${suggest(name, all.map((s) => s.name))}`);
    } else if (/^-[a-zA-Z]$/.test(word)) {
      spec = byShort.get(word.slice(1));
      if (spec === undefined) throw new UsageError(`${command}: unknown flag ${word}`);
    } else {
      positionals.push(word);
      continue;
    }
    if (values.has(spec.name)) throw new UsageError(`${command}: --${spec.name} is given twice`);
    if (spec.kind === "switch") {
      if (inline !== undefined) throw new UsageError(`${command}: --${spec.name} takes no value`);
      values.set(spec.name, true);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = args[i + 1];
      // A value may be "-" (stdout) or a negative number, but not another flag.
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new UsageError(`${command}: --${spec.name} needs a value (${spec.value ?? "VALUE"})`);
      }
      value = next;
      i++;
    }
    if (spec.choices !== undefined && !spec.choices.includes(value)) {
      throw new UsageError(`${command}: --${spec.name} must be one of ${spec.choices.join(", ")}, got ${JSON.stringify(value)}`);
    }
    values.set(spec.name, value);
  }
  if (positionals.length > maxPositionals) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals[maxPositionals])}`);
  }
  return new ParsedArgs(command, values, positionals);
}

/** ` (did you mean --x?)` when a known name is close to `name`. */
export function suggest(name: string, known: readonly string[], prefix = "--"): string {
  // A prefix ("direct" for "direct-path") is as telling as a typo.
  const extended = name.length >= 3 ? known.filter((k) => k.startsWith(name)) : [];
  if (extended.length === 1) return ` (did you mean ${prefix}${extended[0]}?)`;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean ${prefix}${best}?)` : "";
}
