// `hooklens merge`: joins the parts of a sharded all-sources direct path sweep into the
// result the unsharded run writes, refusing parts of different sweeps.

import { readFileSync } from "node:fs";
import { QUIET_FLAG, TOP_FLAG, type Command } from "./command.js";
import { InputError, UsageError } from "./errors.js";
import { directPathHeatmap, reportPatchResult } from "./patch-report.js";
import type { Context } from "./context.js";
import { EDGE_PART_FORMAT, mergeEdgeParts, type EdgePart } from "./edge-shards.js";
import { mergeParts, type ShardPart } from "./shards.js";
import { CI_FLAGS, describeIntervals, uncertaintyFields, intervalFlags, type IntervalOptions } from "./intervals.js";
import { PatchResult } from "../patching/result.js";
import { Tensor } from "../engine/tensor.js";

export const mergeCommand: Command = {
  name: "merge",
  summary: "join the parts of a sharded sweep (patch direct-path --shard i/N, circuit edges --method exact --shard i/N)",
  usage: "merge PART.json... --out FILE.json [--svg FILE.svg] [--csv FILE.csv] [--ci LEVEL] [--quiet]",
  maxPositionals: 100_000,
  flags: [
    { name: "out", kind: "string", value: "FILE", help: "write the merged result JSON, as the unsharded run writes it (- for stdout)" },
    { name: "svg", kind: "string", value: "FILE", help: "write an SVG heatmap of the normalized scores" },
    { name: "csv", kind: "string", value: "FILE", help: "write one CSV line per entry" },
    ...CI_FLAGS, TOP_FLAG("paths with the largest |normalized| effect", 10), QUIET_FLAG,
  ],
  notes: "Every part must come from the same model weights, prompts and options (a fingerprint in each part),\n" +
    "and together the parts must hold each shard of one split exactly once. Parts carry their per-prompt rows,\n" +
    "so --ci gives the merged result the intervals the unsharded run with --ci gives.",
  async run(ctx, args) {
    const files = args.positionals;
    if (files.length === 0) throw new UsageError("merge: give the part files, e.g. hooklens merge part-*.json --out all.json");
    const out = args.string("out");
    const svg = args.string("svg");
    const csv = args.string("csv");
    if (out === undefined && svg === undefined && csv === undefined) throw new UsageError("merge: give --out FILE.json (and/or --svg, --csv)");
    const intervals = intervalFlags(args);
    const parts = files.map((name) => {
      let text: string;
      try {
        text = readFileSync(ctx.path(name), "utf8");
      } catch (e) {
        throw new InputError(`merge: cannot read ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      try {
        return { name, part: JSON.parse(text) as ShardPart };
      } catch {
        throw new InputError(`merge: ${name} is not JSON`);
      }
    });
    if ((parts[0]!.part as { format?: unknown }).format === EDGE_PART_FORMAT) return mergeEdges(ctx, parts as unknown as { name: string; part: EdgePart }[], { out, svg, csv, intervals });
    let result;
    try {
      result = mergeParts(parts);
    } catch (e) {
      throw new InputError((e as Error).message);
    }
    if (intervals !== undefined && result.perPrompt === undefined) throw new InputError("merge: --ci needs per-prompt rows, and these parts were written without them");
    const o = result.options as Record<string, unknown>;
    const component = String(o["component"]);
    const mode = String(o["mode"]);
    const first = parts[0]!.part;
    reportPatchResult(ctx, result, directPathHeatmap(result, { src: "all", component, mode }), {
      out, svg, csv, quiet: args.switch("quiet"), top: args.int("top", 10, 0, 10_000), topHeading: "top paths",
      header: [`merged ${parts.length} parts of ${first.shard.count} (fingerprint ${first.fingerprint.slice(0, 12)}): model ${first.describes.model}, ` +
        `prompts ${first.describes.prompts}; every head → ${component} (${mode})`,
        ...(intervals ? [describeIntervals(intervals, result.perPrompt?.baseline.length)] : [])],
      provenance: {}, intervals,
    });
    return 0;
  },
};

/** Parts of a sharded `circuit edges --method exact`: the merged edge scores, as the unsharded run writes them. */
function mergeEdges(ctx: Context, parts: { name: string; part: EdgePart }[], o: { out?: string; svg?: string; csv?: string; intervals?: IntervalOptions }): number {
  if (o.svg !== undefined || o.csv !== undefined) throw new UsageError("merge: edge scores are written as JSON only (--out); draw a circuit with hooklens circuit discover");
  if (o.out === undefined) throw new UsageError("merge: give --out FILE.json");
  let merged;
  try {
    merged = mergeEdgeParts(parts);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  let json: object = merged.json;
  if (o.intervals !== undefined) {
    if (merged.perPrompt === undefined) throw new InputError("merge: --ci needs per-prompt rows, and these parts were written without them");
    const j = merged.json;
    const result = new PatchResult(j.op, new Tensor(Float32Array.from(j.scores), j.shape), j.baseline, j.clean, {},
      Uint8Array.from(j.noPath, (x) => (x ? 1 : 0)), merged.perPrompt);
    json = { ...json, ...uncertaintyFields(result, o.intervals) };
  }
  ctx.write(o.out, JSON.stringify(json) + "\n");
  const first = parts[0]!.part;
  const edges = parts.reduce((n, p) => n + p.part.shard.edges.length, 0);
  const text = `merged ${parts.length} parts of ${first.shard.count} (fingerprint ${first.fingerprint.slice(0, 12)}): ${edges} edges of ` +
    `model ${first.describes.model}, prompts ${first.describes.prompts}\n`;
  if (o.out === "-") ctx.err(text);
  else ctx.out(text);
  return 0;
}
