// The shape of a subcommand and the flags several of them share.

import { WEIGHT_DTYPES, type WeightDtype } from "../model/device-weights.js";
import type { BackendName } from "../engine/engine.js";
import type { FlagSpec, ParsedArgs } from "./args.js";
import type { Context } from "./context.js";

export interface Command {
  /** e.g. "run" or "patch direct-path". */
  name: string;
  summary: string;
  /** Usage line after `hooklens`. */
  usage: string;
  flags: readonly FlagSpec[];
  /** Words that are not flags (files for merge); none by default. */
  maxPositionals?: number;
  /** Paragraphs after the flag list (output formats, examples). */
  notes?: string;
  run(ctx: Context, args: ParsedArgs): Promise<number>;
}

export const MODEL_FLAG: FlagSpec = { name: "model", kind: "string", value: "DIR", help: "Hugging Face GPT-2 checkpoint folder (config.json, model.safetensors[, tokenizer.json]) or its http(s) URL" };
export const BACKEND_FLAG: FlagSpec = { name: "backend", kind: "string", value: "wasm|js", choices: ["wasm", "js"], help: "kernel backend (default wasm: WASM SIMD; js: the plain TypeScript reference)" };
export const NO_PROCESS_FLAG: FlagSpec = { name: "no-process", kind: "switch", help: "load the weights as stored (default: fold_ln, center_writing_weights, center_unembed, fold_value_biases)" };
export const PROMPT_FLAG: FlagSpec = { name: "prompt", kind: "string", value: "TEXT", help: "one prompt (needs the model's tokenizer; BOS is prepended)" };
export const PROMPTS_FLAG: FlagSpec = { name: "prompts", kind: "string", value: "FILE", help: "prompts file (JSON; see `hooklens help prompts`)" };
export const QUIET_FLAG: FlagSpec = { name: "quiet", short: "q", kind: "switch", help: "no progress bar or status lines on stderr" };
export const STRATEGY_FLAG: FlagSpec = { name: "strategy", kind: "string", value: "planned|naive", choices: ["planned", "naive"], help: "planned batched sweep (default) or one full forward per patch" };
export const PLAN_FLAG: FlagSpec = { name: "plan", kind: "switch", help: "print the sweep plan (passes, work saved, peak memory, estimated speedup) on stderr before running" };
export const TOP_FLAG = (what: string, fallback: number): FlagSpec => ({ name: "top", kind: "int", value: "N", help: `list the N ${what} (default ${fallback})` });

export const THREADS_FLAG: FlagSpec = { name: "threads", kind: "int", value: "N", help: "kernel threads (default 1): large kernels are split between N threads; the numbers are identical" };

/** --threads, 1 to 64. */
export function threadsOf(args: ParsedArgs): number {
  return args.int("threads", 1, 1, 64);
}

export const DTYPE_FLAG: FlagSpec = {
  name: "dtype", kind: "string", value: "f32|bf16|f16", choices: [...WEIGHT_DTYPES],
  help: "how the engine stores the weight matrices (default f32; bf16 or f16: half the memory; f16 is the more precise, bf16 has f32's range)",
};

/** --dtype: f32 (default), bf16 or f16 (the parser has already refused anything else). */
export function dtypeOf(args: ParsedArgs): WeightDtype {
  const value = args.string("dtype");
  return WEIGHT_DTYPES.find((d) => d === value) ?? "f32";
}

export function backendOf(args: ParsedArgs): BackendName {
  return args.string("backend") === "js" ? "js" : "wasm";
}
