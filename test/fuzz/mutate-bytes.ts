// Byte-level mutators, blind to the format: what a damaged download or a hostile file looks like.

import type { Rng } from "./rng.js";

/** Bytes that often sit on a parser's decision boundaries (JSON syntax, sign bits, all-ones). */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x2c, 0x2d, 0x30, 0x39, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x5c, 0x2e, 0xc3, 0xed];

/** Header lengths that sit on the reader's limits, relative to the file's real size. */
function interestingLength(rng: Rng, fileLength: number): number {
  return rng.pick([
    0, 1, 2, 7, 8, fileLength - 8, fileLength - 9, fileLength - 7, fileLength, fileLength + 1,
    100_000_000, 100_000_001, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1,
    rng.u32(), rng.u32() * 2 ** 32 + rng.u32(),
  ]);
}

/** Writes `value` as the 8-byte little-endian header length (values past 2^53 keep their top bits). */
export function setLengthField(bytes: Uint8Array, value: number): void {
  if (bytes.length < 8) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const high = Math.min(Math.floor(value / 2 ** 32), 2 ** 32 - 1);
  view.setUint32(0, value >>> 0, true);
  view.setUint32(4, high >>> 0, true);
}

type ByteMutator = (rng: Rng, input: Uint8Array) => Uint8Array;

const flipBits: ByteMutator = (rng, input) => {
  const out = input.slice();
  for (let n = rng.count(8); n > 0 && out.length > 0; n--) out[rng.int(out.length)]! ^= 1 << rng.int(8);
  return out;
};

const setBytes: ByteMutator = (rng, input) => {
  const out = input.slice();
  for (let n = rng.count(6); n > 0 && out.length > 0; n--) {
    out[rng.int(out.length)] = rng.chance(0.7) ? rng.pick(INTERESTING_BYTES) : rng.u32() & 0xff;
  }
  return out;
};

/** Mutations aimed at the first bytes: the length field and the start of the JSON header. */
const headBytes: ByteMutator = (rng, input) => {
  const out = input.slice();
  const span = Math.min(out.length, 64);
  for (let n = rng.count(4); n > 0 && span > 0; n--) out[rng.int(span)] = rng.pick(INTERESTING_BYTES);
  return out;
};

const insertBytes: ByteMutator = (rng, input) => {
  const at = rng.int(input.length + 1);
  const add = rng.chance(0.5) ? rng.bytes(rng.range(1, 16)) : new Uint8Array(rng.range(1, 64)).fill(rng.pick(INTERESTING_BYTES));
  const out = new Uint8Array(input.length + add.length);
  out.set(input.subarray(0, at));
  out.set(add, at);
  out.set(input.subarray(at), at + add.length);
  return out;
};

const deleteBytes: ByteMutator = (rng, input) => {
  if (input.length === 0) return input.slice();
  const at = rng.int(input.length);
  const n = Math.min(input.length - at, rng.chance(0.7) ? rng.range(1, 8) : rng.range(1, 4096));
  const out = new Uint8Array(input.length - n);
  out.set(input.subarray(0, at));
  out.set(input.subarray(at + n), at);
  return out;
};

const truncate: ByteMutator = (rng, input) => {
  const cut = rng.pick([0, 1, 7, 8, 9, rng.int(input.length), rng.int(Math.min(input.length, 256)), input.length - 1, input.length - rng.range(1, 8)]);
  return input.slice(0, Math.max(0, Math.min(input.length, cut)));
};

const appendGarbage: ByteMutator = (rng, input) => {
  const add = rng.bytes(rng.range(1, 256));
  const out = new Uint8Array(input.length + add.length);
  out.set(input);
  out.set(add, input.length);
  return out;
};

/** Copies a block of the file over another place (shuffles header text into data and back). */
const copyBlock: ByteMutator = (rng, input) => {
  const out = input.slice();
  if (out.length < 2) return out;
  const n = rng.range(1, Math.min(64, out.length - 1));
  const from = rng.int(out.length - n);
  const to = rng.int(out.length - n);
  out.copyWithin(to, from, from + n);
  return out;
};

/** Size inflation: a header length pointing past the file, at the limit, or beyond 2^53. */
const lengthField: ByteMutator = (rng, input) => {
  const out = input.slice();
  setLengthField(out, interestingLength(rng, out.length));
  return out;
};

export const BYTE_MUTATORS: readonly [string, ByteMutator][] = [
  ["flip_bits", flipBits],
  ["set_bytes", setBytes],
  ["head_bytes", headBytes],
  ["insert", insertBytes],
  ["delete", deleteBytes],
  ["truncate", truncate],
  ["append", appendGarbage],
  ["copy_block", copyBlock],
  ["length_field", lengthField],
];

/** Applies 1..n random byte mutators in a row. */
export function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  let out = input;
  for (let n = rng.count(3); n > 0; n--) out = rng.pick(BYTE_MUTATORS)[1](rng, out);
  return out === input ? input.slice() : out;
}
