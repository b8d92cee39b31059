import type { HookedTransformerConfig } from "../model/config.js";
import { editDistance } from "../util/edit-distance.js";

/** A writer: the input embedding, one attention head's output, or one MLP's output. */
export type Writer = { kind: "input" } | { kind: "head"; layer: number; head: number } | { kind: "mlp"; layer: number };

/** A reader: one head's query input, one key/value head's key or value input, one MLP's input, or the logits. */
export type Reader =
  | { kind: "q"; layer: number; head: number }
  | { kind: "k" | "v"; layer: number; head: number }
  | { kind: "mlp"; layer: number }
  | { kind: "logits" };

/** An edge by its names, `["a0.h2", "a1.h1<k>"]`, or its indices `[writer, reader]`. */
export type EdgeRef = readonly [string, string] | readonly [number, number];

/**
 * The writer/reader graph of a model (`../shared/reference/ATTRIBUTION.md`, section 3). Writers
 * in residual order: `input`, then per layer `a{l}.h0 … a{l}.h{H-1}`, `m{l}`. Readers in forward
 * order: per layer every head's `<q>`, every key/value head's `<k>`, then `<v>` (grouped-query
 * models keep one key and one value reader per group: never ungrouped), `m{l}`; `logits` last.
 * Edge `u → v` exists when writer u comes before reader v in the forward pass.
 *
 * @example
 * ```ts
 * const graph = new EdgeGraph(model.cfg);
 * graph.writers.length;                 // 1 + nLayers * (nHeads + 1)
 * graph.edgeIndex(["a0.h2", "a1.h1<k>"]); // [3, 13 + ...] writer and reader indices
 * graph.isEdge(graph.writerIndex("m1"), graph.readerIndex("a0.h0<q>")); // false: m1 comes later
 * ```
 */
export class EdgeGraph {
  /** Writer names, in residual order (the writer axis of every edge result). */
  readonly writers: readonly string[];
  /** Reader names, in forward order (the reader axis). */
  readonly readers: readonly string[];
  readonly writerNodes: readonly Writer[];
  readonly readerNodes: readonly Reader[];
  /** [nWriters * nReaders]: 1 where the edge exists. */
  readonly edgeMask: Uint8Array;
  private readonly writerByName: Map<string, number>;
  private readonly readerByName: Map<string, number>;

  constructor(readonly cfg: Readonly<Pick<HookedTransformerConfig, "nLayers" | "nHeads" | "nKeyValueHeads" | "parallelAttnMlp">>) {
    const { nLayers: L, nHeads: H, nKeyValueHeads: Hk } = cfg;
    const writers: Writer[] = [{ kind: "input" }];
    const readers: Reader[] = [];
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) writers.push({ kind: "head", layer: l, head: h });
      writers.push({ kind: "mlp", layer: l });
      for (let h = 0; h < H; h++) readers.push({ kind: "q", layer: l, head: h });
      for (const kind of ["k", "v"] as const) for (let j = 0; j < Hk; j++) readers.push({ kind, layer: l, head: j });
      readers.push({ kind: "mlp", layer: l });
    }
    readers.push({ kind: "logits" });
    this.writerNodes = writers;
    this.readerNodes = readers;
    this.writers = writers.map(writerName);
    this.readers = readers.map(readerName);
    this.writerByName = new Map(this.writers.map((n, i) => [n, i]));
    this.readerByName = new Map(this.readers.map((n, i) => [n, i]));
    this.edgeMask = new Uint8Array(writers.length * readers.length);
    const parallel = cfg.parallelAttnMlp === true;
    writers.forEach((u, i) => readers.forEach((v, j) => { this.edgeMask[i * readers.length + j] = before(u, v, parallel) ? 1 : 0; }));
  }

  get nWriters(): number {
    return this.writers.length;
  }

  get nReaders(): number {
    return this.readers.length;
  }

  /** Whether writer i feeds reader j. */
  isEdge(writer: number, reader: number): boolean {
    return this.edgeMask[writer * this.readers.length + reader] === 1;
  }

  /** A writer's index by name; an unknown name is an error listing the closest ones. */
  writerIndex(name: string): number {
    return lookup(this.writerByName, name, "writer");
  }

  /** A reader's index by name; an unknown name is an error listing the closest ones. */
  readerIndex(name: string): number {
    return lookup(this.readerByName, name, "reader");
  }

  /** `[writer, reader]` indices of an edge given by names or indices; refuses pairs that are not edges. */
  edgeIndex(edge: EdgeRef): [number, number] {
    if (!Array.isArray(edge) || edge.length !== 2) throw new Error(`an edge is [writer, reader], got ${JSON.stringify(edge)}`);
    const [u, v] = edge;
    const i = typeof u === "number" ? checkIndex(u, this.writers.length, "writer") : this.writerIndex(u);
    const j = typeof v === "number" ? checkIndex(v, this.readers.length, "reader") : this.readerIndex(v as string);
    if (!this.isEdge(i, j)) throw new Error(`${this.writers[i]} -> ${this.readers[j]} is not an edge: the writer comes after the reader`);
    return [i, j];
  }

  /** Flat indices (writer * nReaders + reader) of a list of edges, each checked. */
  edgeSet(edges: Iterable<EdgeRef>): Set<number> {
    const set = new Set<number>();
    for (const e of edges) {
      const [i, j] = this.edgeIndex(e);
      set.add(i * this.readers.length + j);
    }
    return set;
  }

  /** An edge set as JSON-ready name pairs, in writer-then-reader order. */
  edgesToJSON(set: Iterable<number>): [string, string][] {
    return [...set].sort((a, b) => a - b).map((flat) => [this.writers[Math.floor(flat / this.readers.length)]!, this.readers[flat % this.readers.length]!]);
  }

  /** The edge set of JSON name pairs (`[["a0.h2", "a1.h1<k>"], ...]`), each checked. */
  edgesFromJSON(json: unknown): Set<number> {
    if (!Array.isArray(json)) throw new Error("edges: expected an array of [writer, reader] name pairs");
    return this.edgeSet(json.map((e, i) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "string") {
        throw new Error(`edges[${i}]: expected [writer, reader] names, got ${JSON.stringify(e)}`);
      }
      return [e[0], e[1]] as const;
    }));
  }
}

function writerName(w: Writer): string {
  return w.kind === "input" ? "input" : w.kind === "head" ? `a${w.layer}.h${w.head}` : `m${w.layer}`;
}

function readerName(r: Reader): string {
  if (r.kind === "logits") return "logits";
  if (r.kind === "mlp") return `m${r.layer}`;
  return `a${r.layer}.h${r.head}<${r.kind}>`;
}

/** Writer u's output is in the residual stream that reader v reads. */
function before(u: Writer, v: Reader, parallel: boolean): boolean {
  if (u.kind === "input" || v.kind === "logits") return true;
  // An MLP reads resid_mid: its own layer's heads write before it, its own output after. In
  // parallel (GPT-NeoX) it reads resid_pre, as the heads do: only earlier layers reach it.
  if (v.kind === "mlp" && u.kind === "head" && !parallel) return u.layer <= v.layer;
  return u.layer < v.layer;
}

function lookup(map: Map<string, number>, name: string, what: string): number {
  const i = map.get(name);
  if (i !== undefined) return i;
  const closest = [...map.keys()].sort((a, b) => editDistance(name, a) - editDistance(name, b)).slice(0, 3);
  throw new Error(`unknown ${what} ${JSON.stringify(name)}; closest: ${closest.join(", ")}`);
}

function checkIndex(i: number, n: number, what: string): number {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`${what} index ${i} is out of range [0, ${n})`);
  return i;
}
