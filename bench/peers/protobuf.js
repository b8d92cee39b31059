// A minimal protocol-buffers writer: just what encoding an ONNX ModelProto needs
// (varints, 32-bit floats, length-delimited bytes, strings and nested messages).
// A message keeps its encoded parts as a list and is concatenated once at the end,
// so hundreds of MB of weights are copied a single time.

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;
const utf8 = new TextEncoder();

/** Base-128 varint; negative integers as 64-bit two's complement (ten bytes), as int64 fields require. */
function varint(value) {
  let v = BigInt.asUintN(64, BigInt(value));
  const out = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

export class Message {
  constructor() {
    this.parts = [];
    this.length = 0;
  }

  /** Appends raw bytes. */
  push(bytes) {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  tag(field, wire) {
    return this.push(varint((field << 3) | wire));
  }

  /** An int32/int64/enum field. */
  int(field, value) {
    if (!Number.isInteger(value)) throw new Error(`protobuf: field ${field} needs an integer, got ${value}`);
    return this.tag(field, WIRE_VARINT).push(varint(value));
  }

  /** A float field (fixed 32 bits, little-endian). */
  float(field, value) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    return this.tag(field, WIRE_FIXED32).push(bytes);
  }

  /** A bytes field; `data` is a Uint8Array (kept by reference until finish). */
  bytes(field, data) {
    return this.tag(field, WIRE_BYTES).push(varint(data.length)).push(data);
  }

  string(field, text) {
    return this.bytes(field, utf8.encode(text));
  }

  /** A nested message field. */
  message(field, msg) {
    this.tag(field, WIRE_BYTES).push(varint(msg.length));
    for (const part of msg.parts) this.push(part);
    return this;
  }

  /** The encoded message as one buffer. */
  finish() {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}
