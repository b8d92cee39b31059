// `hooklens cache`: run the model and write the activations whose hook names match a regex
// (and, with --grads, the logit difference's gradient at each of them).

import { BACKEND_FLAG, backendOf, THREADS_FLAG, threadsOf, DTYPE_FLAG, dtypeOf, MODEL_FLAG, NO_PROCESS_FLAG, PROMPT_FLAG, PROMPTS_FLAG, QUIET_FLAG, type Command } from "./command.js";
import { UsageError } from "./errors.js";
import { loadModel } from "./load-model.js";
import { logitDiff } from "../patching/metrics.js";
import { checkInputFlags, inputRows, readPromptsFile } from "./prompts.js";

export const cacheCommand: Command = {
  name: "cache",
  summary: "write the activations of the hooks whose names match a regex",
  usage: "cache --model DIR (--prompt TEXT | --prompts FILE) --names REGEX --out FILE.json [--no-process] [--grads [--run clean|corrupted]]",
  flags: [
    MODEL_FLAG, PROMPT_FLAG, PROMPTS_FLAG,
    { name: "names", kind: "string", value: "REGEX", help: "JavaScript regex over TransformerLens hook names, e.g. 'blocks\\.0\\.attn\\.hook_(q|k)$' or 'resid_pre'" },
    { name: "out", kind: "string", value: "FILE", help: "where to write {\"tensors\": {\"<hook name>\": {\"shape\": [...], \"data\": [...]}}} (- for stdout)" },
    NO_PROCESS_FLAG,
    { name: "grads", kind: "switch", help: "also write <hook name>_grad, the gradient of the prompts file's logit difference (needs --prompts FILE with answers)" },
    { name: "run", kind: "string", value: "clean|corrupted", choices: ["clean", "corrupted"], help: "with --grads: which prompts run (default clean)" },
    BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG, QUIET_FLAG,
  ],
  notes: [
    "The regex is searched (not anchored) in each name; tensors are written in forward order.",
    "With --grads the file is {\"metric\": M, \"tensors\": {name: ..., name_grad: ...}}: M is the mean logit",
    "difference logit[correct] - logit[incorrect] at the last position, and name_grad is dM/d(name).",
  ].join("\n"),
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
    const model = await loadModel(ctx, args.required("model"), { processWeights: !args.switch("no-process"), backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args) });
    const all = model.hookNames();
    const names = all.filter((n) => regex.test(n));
    if (names.length === 0) {
      throw new UsageError(`cache: --names ${JSON.stringify(pattern)} matches none of the ${all.length} hook names (e.g. ${all.slice(0, 3).join(", ")}, blocks.0.attn.hook_q)`);
    }
    const grads = args.switch("grads");
    const which = args.string("run");
    if (which !== undefined && !grads) throw new UsageError("cache: --run chooses the prompts whose gradients --grads writes; give --grads");
    let result: ReturnType<typeof model.runWithCache>;
    if (grads) {
      if (source.prompts === undefined) throw new UsageError("cache: --grads differentiates the logit difference of a prompts file: give --prompts FILE with correct and incorrect answers");
      const prompts = readPromptsFile(ctx, source.prompts, model, "patch");
      const metric = logitDiff({ correct: prompts.correct!, incorrect: prompts.incorrect! });
      const tokens = which === "corrupted" ? prompts.corrupted! : prompts.clean;
      result = model.runWithCache(tokens, { inclBwd: true, metric, namesFilter: names.flatMap((n) => [n, `${n}_grad`]) });
    } else {
      const rows = inputRows(ctx, model, source);
      result = model.runWithCache(rows.clean, { namesFilter: names, attentionMask: rows.cleanMask });
    }
    const { cache } = result;
    const tensors: Record<string, { shape: number[]; data: number[] }> = {};
    for (const name of cache.keys()) {
      const t = cache.get(name);
      tensors[name] = { shape: [...t.shape], data: Array.from(t.data) };
    }
    ctx.write(out, JSON.stringify(grads ? { metric: result.metric, tensors } : { tensors }) + "\n");
    if (out !== "-" && !args.switch("quiet")) {
      const list = names.length <= 4 ? names.join(", ") : `${names.slice(0, 3).join(", ")}, … (${names.length - 3} more)`;
      const what = grads ? ` and their gradients (metric ${result.metric!.toFixed(4)})` : "";
      ctx.err(`wrote ${names.length} tensor${names.length === 1 ? "" : "s"} (${list})${what} to ${out}\n`);
    }
    return 0;
  },
};
