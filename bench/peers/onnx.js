// Writes ONNX models with the protobuf writer: a small graph builder over the fields of
// onnx.proto that a feed-forward float model needs (ModelProto, GraphProto, NodeProto,
// AttributeProto, TensorProto, ValueInfoProto).
import { Message } from "./protobuf.js";

/** TensorProto.DataType */
export const FLOAT = 1;
export const INT64 = 7;

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

/** raw_data bytes of a typed array (x86 and WASM are little-endian, as ONNX requires). */
function rawBytes(data) {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name, dims, data) {
  const t = new Message();
  for (const d of dims) t.int(1, d);
  t.int(2, data instanceof BigInt64Array ? INT64 : FLOAT);
  t.string(8, name);
  return t.bytes(9, rawBytes(data));
}

/** An attribute from a tagged value: { i }, { f }, { s } or { ints }. */
function attributeProto(name, value) {
  const a = new Message().string(1, name);
  if ("i" in value) return a.int(20, ATTR_INT).int(3, value.i);
  if ("f" in value) return a.int(20, ATTR_FLOAT).float(2, value.f);
  if ("s" in value) return a.int(20, ATTR_STRING).string(4, value.s);
  if ("ints" in value) {
    a.int(20, ATTR_INTS);
    for (const x of value.ints) a.int(8, x);
    return a;
  }
  throw new Error(`onnx: attribute ${name} has no recognised value`);
}

/** A tensor's name, element type and shape; a string dim is symbolic (e.g. "batch"). */
function valueInfo(name, elemType, dims) {
  const shape = new Message();
  for (const d of dims) shape.message(1, typeof d === "string" ? new Message().string(2, d) : new Message().int(1, d));
  const tensorType = new Message().int(1, elemType).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

/**
 * Builds a graph node by node. `op` adds a node and returns its output name(s);
 * `constant` adds an initializer.
 */
export class GraphBuilder {
  constructor() {
    this.nodes = [];
    this.initializers = [];
    this.inputs = [];
    this.outputs = [];
    this.count = 0;
  }

  input(name, elemType, dims) {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name, elemType, dims) {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** An initializer: Float32Array or BigInt64Array data with its dims. */
  constant(name, dims, data) {
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`onnx: initializer ${name} has ${data.length} values for dims [${dims}]`);
    this.initializers.push(tensorProto(name, dims, data));
    return name;
  }

  /** Adds a node; `outputs` is a count (auto-named) or a list of names. Returns the output name, or names when several. */
  op(type, inputs, attrs = {}, outputs = 1) {
    const names = typeof outputs === "number"
      ? Array.from({ length: outputs }, (_, i) => `${type.toLowerCase()}_${this.count}${outputs > 1 ? `_${i}` : ""}`)
      : outputs;
    const node = new Message();
    for (const x of inputs) node.string(1, x);
    for (const y of names) node.string(2, y);
    node.string(3, `${type}_${this.count++}`);
    node.string(4, type);
    for (const [name, value] of Object.entries(attrs)) node.message(5, attributeProto(name, value));
    this.nodes.push(node);
    return names.length === 1 ? names[0] : names;
  }

  /** The ModelProto bytes (IR version 9, default-domain opset `opset`). */
  model({ name, opset }) {
    const graph = new Message();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, name);
    for (const t of this.initializers) graph.message(5, t);
    for (const v of this.inputs) graph.message(11, v);
    for (const v of this.outputs) graph.message(12, v);
    const model = new Message().int(1, 9).string(2, "hooklens-bench");
    model.message(8, new Message().string(1, "").int(2, opset));
    model.message(7, graph);
    return model.finish();
  }
}
