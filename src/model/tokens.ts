import { Tensor } from "../engine/tensor.js";

/** Token ids as a model accepts them: one sequence, a batch of equal-length rows, or a [batch, pos] tensor. */
export type TokenIds = readonly number[] | readonly (readonly number[])[] | Int32Array | Tensor;

/** A validated batch of token ids. */
export interface TokenBatch {
  batch: number;
  pos: number;
  /** Row-major [batch * pos]. */
  ids: Int32Array;
}

/**
 * Checks token ids against the vocabulary and context size and flattens them.
 * Throws naming the row, position and value of the first bad id.
 */
export function toTokenBatch(input: TokenIds, dVocab: number, nCtx: number): TokenBatch {
  if (!(input instanceof Tensor) && input.length === 0) throw new Error("tokens: the batch is empty");
  let rows: readonly ArrayLike<number>[];
  if (input instanceof Tensor) {
    if (input.ndim !== 2 && input.ndim !== 1) throw new Error(`tokens: expected a [batch, pos] tensor, got shape [${input.shape.join(", ")}]`);
    const [batch, pos] = input.ndim === 2 ? input.shape : [1, input.shape[0]!];
    rows = Array.from({ length: batch! }, (_, b) => input.data.subarray(b * pos!, (b + 1) * pos!));
  } else if (input instanceof Int32Array) {
    rows = [input];
  } else if (input.length > 0 && Array.isArray(input[0])) {
    rows = input as readonly (readonly number[])[];
  } else {
    rows = [input as readonly number[]];
  }
  if (rows.length === 0) throw new Error("tokens: the batch is empty");
  const pos = rows[0]!.length;
  if (pos === 0) throw new Error("tokens: sequences must hold at least one token");
  if (pos > nCtx) throw new Error(`tokens: ${pos} positions exceed the model's context of ${nCtx} (nCtx)`);
  const ids = new Int32Array(rows.length * pos);
  rows.forEach((row, b) => {
    if (!row || typeof row.length !== "number") throw new Error(`tokens: row ${b} is not an array of ids`);
    if (row.length !== pos) throw new Error(`tokens: row ${b} has ${row.length} tokens but row 0 has ${pos}; pad them (see attentionMask)`);
    for (let p = 0; p < pos; p++) {
      const id = row[p]!;
      if (!Number.isInteger(id) || id < 0 || id >= dVocab) {
        throw new Error(`tokens: id ${id} at row ${b}, position ${p} is out of range [0, ${dVocab})`);
      }
      ids[b * pos + p] = id;
    }
  });
  return { batch: rows.length, pos, ids };
}

/** Checks an attention mask [batch, pos] of 0/1 and flattens it. */
export function toMask(mask: readonly (readonly number[])[] | Tensor, batch: number, pos: number): Float32Array {
  const out = new Float32Array(batch * pos);
  const at = mask instanceof Tensor
    ? (b: number, p: number) => mask.data[b * pos + p]
    : (b: number, p: number) => mask[b]?.[p];
  if (mask instanceof Tensor && (mask.shape[0] !== batch || mask.shape[1] !== pos || mask.ndim !== 2)) {
    throw new Error(`attentionMask: shape [${mask.shape.join(", ")}] does not match tokens [${batch}, ${pos}]`);
  }
  if (!(mask instanceof Tensor) && mask.length !== batch) {
    throw new Error(`attentionMask: ${mask.length} rows for a batch of ${batch}`);
  }
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < pos; p++) {
      const v = at(b, p);
      if (v !== 0 && v !== 1) throw new Error(`attentionMask: entry [${b}, ${p}] is ${v}; use 1 for tokens and 0 for padding`);
      out[b * pos + p] = v;
    }
  }
  return out;
}
