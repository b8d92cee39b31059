// The prompts file: {"clean": [[ids...], ...] or ["text", ...], "corrupted": same form,
// "correct": [id or text per row], "incorrect": [...]}. Reading it is an input error (exit 1)
// when the file is missing or not JSON, and a usage error (exit 2) when its content is wrong;
// every message names the field and the row.

import { readFileSync, statSync } from "node:fs";
import type { HookedTransformer } from "../model/hooked-transformer.js";
import { suggest } from "./args.js";
import type { Context } from "./context.js";
import { InputError, UsageError } from "./errors.js";

/** Validated prompts as token ids. */
export interface Prompts {
  clean: number[][];
  /** 1 = token, 0 = padding; only when ragged texts were padded (run and cache). */
  cleanMask?: number[][];
  corrupted?: number[][];
  correct?: number[];
  incorrect?: number[];
}

/** What a command needs: `run`/`cache` read the clean rows, `patch` every field with rows of one length. */
export type PromptsUse = "run" | "patch";

const FIELDS = ["clean", "corrupted", "correct", "incorrect"] as const;
const MAX_BYTES = 64 * 1024 * 1024;

/** Reads and validates a prompts file against the model (vocabulary, context, tokenizer). */
export function readPromptsFile(ctx: Context, file: string, model: HookedTransformer, use: PromptsUse): Prompts {
  const path = ctx.path(file);
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_BYTES) throw new InputError(`--prompts ${file}: the file is ${size} bytes; a prompts file is at most ${MAX_BYTES}`);
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(code === "ENOENT" ? `--prompts: no such file: ${file}` : `--prompts: cannot read ${file} (${code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--prompts ${file}: invalid JSON (${(e as Error).message})`);
  }
  return validatePrompts(json, model, use, `--prompts ${file}`);
}

/** Validates prompts given as an object (the file's content, or the demo's prompts). */
export function validatePrompts(json: unknown, model: HookedTransformer, use: PromptsUse, where: string): Prompts {
  const fail = (msg: string): never => { throw new UsageError(`${where}: ${msg}`); };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("expected an object with clean, corrupted, correct and incorrect");
  const obj = json as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(FIELDS as readonly string[]).includes(key)) fail(`unknown field ${JSON.stringify(key)}${suggest(key, FIELDS, "")} (fields: ${FIELDS.join(", ")})`);
  }
  const fields = use === "patch" ? FIELDS : (["clean"] as const);
  for (const f of fields) if (obj[f] === undefined) fail(`the field "${f}" is missing`);

  const { dVocab, nCtx } = model.cfg;
  const rowsOf = (field: string, ragged: boolean): { tokens: number[][]; mask?: number[][] } => {
    const value = obj[field];
    if (!Array.isArray(value) || value.length === 0) return fail(`"${field}" must be a non-empty array of token-id rows or of texts`);
    if (value.every((r) => typeof r === "string")) {
      const tokenizer = model.tokenizer;
      if (tokenizer === undefined) return fail(`"${field}" holds texts but the model has no tokenizer; give token ids instead`);
      if (!ragged) {
        // Patching runs rows of one length with no mask: each text must encode to the same length.
        const tokens = value.map((t: string) => model.toTokens(t)[0]!);
        tokens.forEach((row, i) => {
          if (row.length !== tokens[0]!.length) fail(`${field}[${i}] is ${row.length} tokens but ${field}[0] is ${tokens[0]!.length}; patching needs rows of one length`);
        });
        checkRows(field, tokens, dVocab, nCtx, fail);
        return { tokens };
      }
      const { tokens, attentionMask } = model.toTokensWithMask(value as string[]);
      checkRows(field, tokens, dVocab, nCtx, fail);
      return { tokens, mask: attentionMask.some((r) => r.includes(0)) ? attentionMask : undefined };
    }
    value.forEach((row: unknown, i: number) => {
      if (!Array.isArray(row)) fail(`${field}[${i}] must be an array of token ids (or every row a text)`);
    });
    const tokens = value as number[][];
    tokens.forEach((row, i) => {
      if (row.length === 0) fail(`${field}[${i}] is empty`);
      if (row.length !== tokens[0]!.length) fail(`${field}[${i}] has ${row.length} tokens but ${field}[0] has ${tokens[0]!.length}; rows must have one length`);
    });
    checkRows(field, tokens, dVocab, nCtx, fail);
    return { tokens };
  };

  const clean = rowsOf("clean", use === "run");
  if (use === "run") return { clean: clean.tokens, cleanMask: clean.mask };

  const corrupted = rowsOf("corrupted", false).tokens;
  const [B, P] = [clean.tokens.length, clean.tokens[0]!.length];
  if (corrupted.length !== B || corrupted[0]!.length !== P) {
    fail(`"corrupted" is ${corrupted.length} rows × ${corrupted[0]!.length} tokens but "clean" is ${B} × ${P}; they must have one shape`);
  }
  const answers = (field: string): number[] => {
    const value = obj[field];
    if (!Array.isArray(value)) return fail(`"${field}" must be an array with one answer (id or text) per row`);
    if (value.length !== B) fail(`"${field}" has ${value.length} answers but there are ${B} rows; give one per row`);
    return value.map((a: unknown, i: number) => {
      if (typeof a === "number") {
        if (!Number.isInteger(a) || a < 0 || a >= dVocab) fail(`${field}[${i}]: id ${a} is out of the vocabulary [0, ${dVocab})`);
        return a as number;
      }
      if (typeof a === "string") {
        if (model.tokenizer === undefined) return fail(`${field}[${i}] is a text but the model has no tokenizer; give a token id`);
        const ids = model.tokenizer.encode(a);
        if (ids.length !== 1) {
          fail(`${field}[${i}]: ${JSON.stringify(a)} is ${ids.length} tokens ${JSON.stringify(ids)}; an answer must be exactly one token (mind the leading space)`);
        }
        return ids[0]!;
      }
      return fail(`${field}[${i}] must be a token id or a text`);
    });
  };
  return { clean: clean.tokens, corrupted, correct: answers("correct"), incorrect: answers("incorrect") };
}

function checkRows(field: string, rows: number[][], dVocab: number, nCtx: number, fail: (msg: string) => never): void {
  rows.forEach((row, i) => {
    if (row.length > nCtx) fail(`${field}[${i}] has ${row.length} tokens, more than the model's context of ${nCtx}`);
    row.forEach((id, p) => {
      if (typeof id !== "number" || !Number.isInteger(id)) fail(`${field}[${i}][${p}] must be an integer token id, got ${describeValue(id)}`);
      if (id < 0 || id >= dVocab) fail(`${field}[${i}][${p}]: id ${id} is out of the vocabulary [0, ${dVocab})`);
    });
  });
}

/** The rows `run` and `cache` feed the model: `--prompt TEXT` or the clean rows of `--prompts FILE`. */
export function inputRows(ctx: Context, model: HookedTransformer, source: { prompt?: string; prompts?: string }): Prompts {
  if (source.prompts !== undefined) return readPromptsFile(ctx, source.prompts, model, "run");
  if (model.tokenizer === undefined) {
    throw new UsageError("--prompt needs the model's tokenizer and this model has none (no tokenizer.json or vocab.json + merges.txt); give --prompts FILE with token ids");
  }
  return validatePrompts({ clean: [source.prompt ?? ""] }, model, "run", "--prompt");
}

/** Exactly one of --prompt and --prompts (checked before the model is loaded). */
export function checkInputFlags(command: string, source: { prompt?: string; prompts?: string }): void {
  if (source.prompt === undefined && source.prompts === undefined) throw new UsageError(`${command}: give --prompt TEXT or --prompts FILE`);
  if (source.prompt !== undefined && source.prompts !== undefined) throw new UsageError(`${command}: give --prompt or --prompts, not both`);
}

/** A short description of an untrusted value (JSON.stringify would overflow the stack on deep nesting). */
function describeValue(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object" && value !== null) return "an object";
  return typeof value === "string" ? JSON.stringify(value.slice(0, 40)) : String(value);
}
