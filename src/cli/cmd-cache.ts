// `hooklens cache`: run the model and write the activations whose hook names match a regex.

import { BACKEND_FLAG, backendOf, THREADS_FLAG, threadsOf, MODEL_FLAG, NO_PROCESS_FLAG, PROMPT_FLAG, PROMPTS_FLAG, QUIET_FLAG, type Command } from "./command.js";
import { UsageError } from "./errors.js";
import { loadModel } from "./load-model.js";
import { checkInputFlags, inputRows } from "./prompts.js";

export const cacheCommand: Command = {
  name: "cache",
  summary: "write the activations of the hooks whose names match a regex",
  usage: "cache --model DIR (--prompt TEXT | --prompts FILE) --names REGEX --out FILE.json [--no-process]",
  flags: [
    MODEL_FLAG, PROMPT_FLAG, PROMPTS_FLAG,
    { name: "names", kind: "string", value: "REGEX", help: "JavaScript regex over TransformerLens hook names, e.g. 'blocks\\.0\\.attn\\.hook_(q|k)$' or 'resid_pre'" },
    { name: "out", kind: "string", value: "FILE", help: "where to write {\"tensors\": {\"<hook name>\": {\"shape\": [...], \"data\": [...]}}} (- for stdout)" },
    NO_PROCESS_FLAG, BACKEND_FLAG, THREADS_FLAG, QUIET_FLAG,
  ],
  notes: "The regex is searched (not anchored) in each name; tensors are written in forward order.",
  async run(ctx, args) {
    const source = { prompt: args.string("prompt"), prompts: args.string("prompts") };
    checkInputFlags("cache", source);
    const pattern = args.required("names");
    const out = args.required("out");
    let regex: RegExp;
    try {
      regex = new RegExp(pattern);
    } catch (e) {
      throw new UsageError(`cache: --names ${JSON.stringify(pattern)} is not a valid regex (${(e as Error).message})`);
    }
    const model = await loadModel(ctx, args.required("model"), { processWeights: !args.switch("no-process"), backend: backendOf(args), threads: threadsOf(args) });
    const all = model.hookNames();
    const names = all.filter((n) => regex.test(n));
    if (names.length === 0) {
      throw new UsageError(`cache: --names ${JSON.stringify(pattern)} matches none of the ${all.length} hook names (e.g. ${all.slice(0, 3).join(", ")}, blocks.0.attn.hook_q)`);
    }
    const rows = inputRows(ctx, model, source);
    const { cache } = model.runWithCache(rows.clean, { namesFilter: names, attentionMask: rows.cleanMask });
    const tensors: Record<string, { shape: number[]; data: number[] }> = {};
    for (const name of cache.keys()) {
      const t = cache.get(name);
      tensors[name] = { shape: [...t.shape], data: Array.from(t.data) };
    }
    ctx.write(out, JSON.stringify({ tensors }) + "\n");
    if (out !== "-" && !args.switch("quiet")) {
      const list = names.length <= 4 ? names.join(", ") : `${names.slice(0, 3).join(", ")}, … (${names.length - 3} more)`;
      ctx.err(`wrote ${names.length} tensor${names.length === 1 ? "" : "s"} (${list}) to ${out}\n`);
    }
    return 0;
  },
};
