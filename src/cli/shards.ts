// Sharded all-sources direct path sweeps: the units of work (one source head into one
// destination layer), how they split into shards, the fingerprint that ties parts of one
// sweep together, and the merge that puts the parts back into the unsharded result.

import { createHash } from "node:crypto";
import { Tensor } from "../engine/tensor.js";
import { PatchResult, type PerPromptRows } from "../patching/result.js";

/** One unit of a sweep: the paths from source head sl.sh into every head of layer dl. */
export type ShardUnit = readonly [sl: number, sh: number, dl: number];

/** A unit's stable id, e.g. `0.3>2`: source head 0.3 into layer 2. */
export const unitId = ([sl, sh, dl]: ShardUnit): string => `${sl}.${sh}>${dl}`;

/** Every unit of an all-sources sweep on L layers × H heads, ordered by destination layer, then source. */
export function allUnits(L: number, H: number): ShardUnit[] {
  const units: ShardUnit[] = [];
  for (let dl = 1; dl < L; dl++) for (let sl = 0; sl < dl; sl++) for (let sh = 0; sh < H; sh++) units.push([sl, sh, dl]);
  return units;
}

/**
 * Splits units into `count` contiguous runs of about equal work (a unit into layer dl runs the
 * L - dl remaining blocks), so units sharing a destination layer mostly share a shard and its
 * stacked passes. Depends only on the units and count: every machine computes the same split.
 */
export function splitUnits(units: readonly ShardUnit[], L: number, count: number): ShardUnit[][] {
  return splitByCost(units, (u) => L - u[2], count);
}

/** Splits items into `count` contiguous runs of about equal summed cost (some may be empty). */
export function splitByCost<T>(items: readonly T[], cost: (item: T) => number, count: number): T[][] {
  const total = items.reduce((s, u) => s + cost(u), 0);
  const parts: T[][] = Array.from({ length: count }, () => []);
  let done = 0;
  for (const u of items) {
    // The shard whose share of the total work this item's midpoint falls in.
    const k = Math.min(count - 1, Math.floor(((done + cost(u) / 2) / total) * count));
    parts[k]!.push(u);
    done += cost(u);
  }
  return parts;
}

/** `i/N` (1-based) → { index, count }. */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || count < 1 || index < 1 || index > count) {
    throw new Error(`--shard must be i/N with 1 <= i <= N (e.g. 2/8), got ${JSON.stringify(text)}`);
  }
  return { index, count };
}

/** What a part's fingerprint covers: the same model, prompts and options, or the parts do not merge. */
export interface FingerprintInputs {
  weights: ReadonlyMap<string, Tensor>;
  prompts: { clean: number[][]; corrupted: number[][]; correct: number[]; incorrect: number[] };
  /** component, mode, strategy, kernels (the WASM variant or js: their last bits differ), ... */
  options: Record<string, string>;
}

/** SHA-256 over the weights (names, shapes, values), the prompts and the options. */
export function fingerprint(x: FingerprintInputs): string {
  const h = createHash("sha256");
  for (const name of [...x.weights.keys()].sort()) {
    const t = x.weights.get(name)!;
    h.update(`${name}:${t.shape.join("x")};`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  h.update(JSON.stringify(x.prompts));
  h.update(JSON.stringify(Object.entries(x.options).sort()));
  return h.digest("hex");
}

export const PART_FORMAT = "hooklens-direct-path-shard/1";

/** A part file: its shard, the units it computed, the fingerprint, and the result (zeros outside its units). */
export interface ShardPart {
  format: typeof PART_FORMAT;
  shard: { index: number; count: number; units: string[] };
  fingerprint: string;
  /** What the fingerprint was taken over, for people reading a refusal. */
  describes: { model: string; prompts: string; options: Record<string, string> };
  result: ResultJson;
}

/**
 * A part's per-prompt rows: its own entries' values for each prompt ([batch, entries] in the
 * order the part lists its units or edges) and each prompt's corrupted and clean metric, so
 * `merge` gives the merged result its rows (and `merge --ci` its intervals).
 */
export interface PartRows {
  rows: number[];
  baseline: number[];
  clean: number[];
}

/** The part rows of `entries` (flat score indices) of a result's per-prompt rows, if it has them. */
export function partRows(perPrompt: PerPromptRows | undefined, entries: readonly number[]): PartRows | undefined {
  if (perPrompt === undefined) return undefined;
  const B = perPrompt.baseline.length;
  const n = perPrompt.scores.size / B;
  const rows: number[] = [];
  for (let b = 0; b < B; b++) for (const i of entries) rows.push(perPrompt.scores.data[b * n + i]!);
  return { rows, baseline: Array.from(perPrompt.baseline), clean: Array.from(perPrompt.clean) };
}

/**
 * The merged per-prompt rows [batch, ...shape] of parts that each hold some entries' rows, or
 * undefined when a part has none (written before parts carried them).
 */
export function mergeRows(parts: readonly { name: string; rows?: PartRows; entries: readonly number[] }[], shape: readonly number[]): PerPromptRows | undefined {
  if (parts.some((p) => p.rows === undefined)) return undefined;
  const first = parts[0]!.rows!;
  const B = first.baseline.length;
  const n = shape.reduce((a, b) => a * b, 1);
  const scores = new Float32Array(B * n);
  for (const { name, rows, entries } of parts) {
    if (rows!.baseline.length !== B || rows!.clean.length !== B || rows!.rows.length !== B * entries.length) {
      throw new Error(`merge: ${name}'s per-prompt rows do not fit its ${entries.length} entries and ${B} prompts`);
    }
    for (let b = 0; b < B; b++) entries.forEach((i, k) => { scores[b * n + i] = rows!.rows[b * entries.length + k]!; });
  }
  return { scores: new Tensor(scores, [B, ...shape]), baseline: Float64Array.from(first.baseline), clean: Float64Array.from(first.clean) };
}

/** PatchResult.toJSON() with the CLI's provenance in options. */
export interface ResultJson {
  op: string;
  shape: number[];
  scores: number[];
  noPath?: boolean[];
  baseline: number;
  clean: number;
  normalized: number[] | null;
  options: Record<string, unknown>;
  /** The part's own entries' per-prompt rows (in its units' order). */
  perPrompt?: PartRows;
}

/** What every kind of part file has: the split it belongs to and the fingerprint of its sweep. */
export interface PartHeader {
  format: string;
  shard: { index: number; count: number };
  fingerprint: string;
  describes: { model: string; prompts: string; options: Record<string, string> };
}

/**
 * Refuses a set of parts that is not one whole split of one sweep: other formats, different
 * fingerprints (naming what differs), different shard counts, a shard twice or a shard missing.
 */
export function checkPartSet(parts: readonly { name: string; part: PartHeader }[], format: string): void {
  if (parts.length === 0) throw new Error("merge: no part files given");
  for (const { name, part } of parts) {
    if (part?.format !== format) throw new Error(`merge: ${name} is not a hooklens shard part (format ${JSON.stringify(part?.format)}, expected ${format})`);
  }
  const [first, ...rest] = parts;
  const f = first!.part;
  for (const { name, part } of rest) {
    if (part.fingerprint !== f.fingerprint) {
      const differs = (["model", "prompts"] as const).filter((k) => part.describes[k] !== f.describes[k])
        .map((k) => `${k} ${part.describes[k]} vs ${f.describes[k]}`);
      const opts = Object.keys({ ...f.describes.options, ...part.describes.options }).filter((k) => part.describes.options[k] !== f.describes.options[k]);
      throw new Error(`merge: ${name} is from a different sweep than ${first!.name} (fingerprint ${part.fingerprint.slice(0, 12)} vs ${f.fingerprint.slice(0, 12)}` +
        `${[...differs, ...opts.map((k) => `${k} ${part.describes.options[k]} vs ${f.describes.options[k]}`)].map((d) => `; ${d}`).join("") || "; the model weights or prompts differ"})`);
    }
    if (part.shard.count !== f.shard.count) throw new Error(`merge: ${name} is shard ${part.shard.index}/${part.shard.count}, but ${first!.name} is of ${f.shard.count} shards`);
  }
  const byIndex = new Map<number, string>();
  for (const { name, part } of parts) {
    const seen = byIndex.get(part.shard.index);
    if (seen !== undefined) throw new Error(`merge: shard ${part.shard.index}/${part.shard.count} given twice (${seen} and ${name})`);
    byIndex.set(part.shard.index, name);
  }
  const missing = Array.from({ length: f.shard.count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new Error(`merge: missing shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${f.shard.count}`).join(", ")}`);
}

/** The flat score indices of a unit in an [L, H, L, Hd] result. */
export function unitIndices([sl, sh, dl]: ShardUnit, shape: readonly number[]): number[] {
  const [L, H, , Hd] = shape as [number, number, number, number];
  return Array.from({ length: Hd }, (_, dh) => ((sl * H + sh) * L + dl) * Hd + dh);
}

/**
 * Merges parts of one sweep into the unsharded result. Refuses parts from different sweeps
 * (fingerprints), of different splits, duplicated or missing shards, or units computed twice.
 */
export function mergeParts(parts: readonly { name: string; part: ShardPart }[]): PatchResult<Record<string, unknown>> {
  checkPartSet(parts, PART_FORMAT);
  const f = parts[0]!.part;
  const shape = f.result.shape;
  const [L, H] = shape as [number, number];
  const scores = new Float32Array(f.result.scores.length);
  const owner = new Map<string, string>();
  const entries = parts.map(() => [] as number[]);
  parts.forEach(({ name, part }, k) => {
    for (const id of part.shard.units) {
      const m = /^(\d+)\.(\d+)>(\d+)$/.exec(id);
      if (m === null) throw new Error(`merge: ${name} lists a malformed unit ${JSON.stringify(id)}`);
      if (owner.has(id)) throw new Error(`merge: unit ${id} is in both ${owner.get(id)} and ${name}`);
      owner.set(id, name);
      for (const i of unitIndices([Number(m[1]), Number(m[2]), Number(m[3])], shape)) {
        scores[i] = part.result.scores[i]!;
        entries[k]!.push(i);
      }
    }
  });
  const absent = allUnits(L, H).map(unitId).filter((id) => !owner.has(id));
  if (absent.length > 0) throw new Error(`merge: the parts do not cover units ${absent.slice(0, 5).join(", ")}${absent.length > 5 ? ", ..." : ""}`);
  const noPath = f.result.noPath ? Uint8Array.from(f.result.noPath, (b) => (b ? 1 : 0)) : undefined;
  const perPrompt = mergeRows(parts.map(({ name, part }, k) => ({ name, rows: part.result.perPrompt, entries: entries[k]! })), shape);
  return new PatchResult(f.result.op, new Tensor(scores, shape), f.result.baseline, f.result.clean, f.result.options, noPath, perPrompt);
}
