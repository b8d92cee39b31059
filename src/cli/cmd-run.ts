// `hooklens run`: the top next-token predictions of each prompt row; --out writes the logits.

import type { HookedTransformer } from "../model/hooked-transformer.js";
import { Tensor } from "../engine/tensor.js";
import {
  BACKEND_FLAG, backendOf, THREADS_FLAG, threadsOf, DTYPE_FLAG, dtypeOf, MODEL_FLAG, NO_PROCESS_FLAG, PROMPT_FLAG, PROMPTS_FLAG, QUIET_FLAG, TOP_FLAG, type Command,
} from "./command.js";
import { loadModel } from "./load-model.js";
import { checkInputFlags, inputRows } from "./prompts.js";

export const runCommand: Command = {
  name: "run",
  summary: "run a model and print its top next-token predictions",
  usage: "run --model DIR (--prompt TEXT | --prompts FILE) [--top 10] [--out FILE.json] [--no-process]",
  flags: [
    MODEL_FLAG, PROMPT_FLAG, PROMPTS_FLAG, TOP_FLAG("most likely next tokens of each row", 10),
    { name: "out", kind: "string", value: "FILE", help: "write the logits as {\"shape\": [batch, pos, d_vocab], \"data\": [flat row-major]} (- for stdout)" },
    NO_PROCESS_FLAG, BACKEND_FLAG, THREADS_FLAG, DTYPE_FLAG, QUIET_FLAG,
  ],
  notes: [
    "For each row, the predictions after its last token (padding excluded): rank, token id, token",
    "text (when the model has a tokenizer), probability and logit. With --out -, stdout holds only",
    "the logits JSON.",
  ].join("\n"),
  async run(ctx, args) {
    const source = { prompt: args.string("prompt"), prompts: args.string("prompts") };
    checkInputFlags("run", source);
    const top = args.int("top", 10, 1, 1000);
    const out = args.string("out");
    const model = await loadModel(ctx, args.required("model"), {
      processWeights: !args.switch("no-process"), backend: backendOf(args), threads: threadsOf(args), dtype: dtypeOf(args),
    });
    const rows = inputRows(ctx, model, source);
    const logits = model.forward(rows.clean, { attentionMask: rows.cleanMask }).logits!;
    if (out !== undefined) {
      ctx.write(out, JSON.stringify({ shape: [...logits.shape], data: Array.from(logits.data) }) + "\n");
      if (out !== "-" && !args.switch("quiet")) ctx.err(`wrote the logits [${logits.shape.join(", ")}] to ${out}\n`);
    }
    if (out !== "-") ctx.out(predictionTable(model, rows.clean, rows.cleanMask, logits.data, logits.shape[2]!, top));
    return 0;
  },
};

function predictionTable(model: HookedTransformer, tokens: number[][], mask: number[][] | undefined,
  logits: Float32Array, V: number, top: number): string {
  const P = tokens[0]!.length;
  const tokenizer = model.tokenizer;
  const lines: string[] = [];
  tokens.forEach((row, b) => {
    const length = mask ? mask[b]!.lastIndexOf(1) + 1 : P;
    const ids = row.slice(0, length);
    const prompt = tokenizer ? JSON.stringify(tokenizer.decode(ids)) : `[${ids.length > 16 ? `… ${ids.slice(-16).join(" ")}` : ids.join(" ")}]`;
    lines.push(`row ${b}: ${prompt} (${ids.length} tokens); next token:`);
    const at = logits.subarray((b * P + length - 1) * V, (b * P + length) * V);
    let max = -Infinity;
    for (const x of at) max = Math.max(max, x);
    let z = 0;
    for (const x of at) z += Math.exp(x - max);
    const best = new Tensor(at, [V]).topk(Math.min(top, V)).indices;
    const texts = best.map((id) => (tokenizer ? JSON.stringify(tokenizer.decode([id])) : ""));
    const textWidth = Math.max(5, ...texts.map((t) => t.length));
    const idWidth = Math.max(2, String(V - 1).length);
    lines.push(`  ${"#".padStart(3)}  ${"id".padStart(idWidth)}  ${tokenizer ? "token".padEnd(textWidth) + "  " : ""}${"prob".padStart(8)}  ${"logit".padStart(9)}`);
    best.forEach((id, k) => {
      const prob = Math.exp(at[id]! - max) / z;
      lines.push(`  ${String(k + 1).padStart(3)}  ${String(id).padStart(idWidth)}  ${tokenizer ? texts[k]!.padEnd(textWidth) + "  " : ""}${prob.toFixed(4).padStart(8)}  ${at[id]!.toFixed(4).padStart(9)}`);
    });
    lines.push("");
  });
  return lines.join("\n");
}
