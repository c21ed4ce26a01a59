/**
 * The ONNX messages the exporter writes, with their field numbers named as in onnx.proto3
 * (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3), and one encoder per message.
 */
import { endianness } from 'node:os';
import { ProtoWriter } from '../runtime/protobuf';

/** ModelProto: the file. */
export const ModelProto = { irVersion: 1, producerName: 2, producerVersion: 3, domain: 4, modelVersion: 5, docString: 6, graph: 7, opsetImport: 8, metadataProps: 14 } as const;
/** GraphProto: nodes in topological order, weights as initializers, typed inputs and outputs. */
export const GraphProto = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12 } as const;
export const NodeProto = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;
export const AttributeProto = { name: 1, f: 2, i: 3, ints: 8, type: 20 } as const;
/** AttributeProto.AttributeType. */
export const AttributeType = { FLOAT: 1, INT: 2, INTS: 7 } as const;
export const TensorProto = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
/** TensorProto.DataType. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
export const ValueInfoProto = { name: 1, type: 2 } as const;
/** TypeProto (its tensor_type case) and TypeProto.Tensor. */
export const TypeProto = { tensorType: 1 } as const;
export const TypeProtoTensor = { elemType: 1, shape: 2 } as const;
/** TensorShapeProto and TensorShapeProto.Dimension (dim_value or dim_param). */
export const TensorShapeProto = { dim: 1 } as const;
export const Dimension = { dimValue: 1, dimParam: 2 } as const;
export const OperatorSetIdProto = { domain: 1, version: 2 } as const;
export const StringStringEntryProto = { key: 1, value: 2 } as const;

export type AttrValue = { f: number } | { i: number } | { ints: number[] };

export function attributeProto(name: string, value: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(AttributeProto.name, name);
  if ('f' in value) a.int(AttributeProto.type, AttributeType.FLOAT).float(AttributeProto.f, value.f);
  else if ('i' in value) a.int(AttributeProto.type, AttributeType.INT).int(AttributeProto.i, value.i);
  else {
    a.int(AttributeProto.type, AttributeType.INTS);
    for (const x of value.ints) a.int(AttributeProto.ints, x);
  }
  return a;
}

export function nodeProto(op: string, name: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue>): ProtoWriter {
  const n = new ProtoWriter();
  for (const i of inputs) n.string(NodeProto.input, i);
  for (const o of outputs) n.string(NodeProto.output, o);
  n.string(NodeProto.name, name).string(NodeProto.opType, op);
  for (const [k, v] of Object.entries(attrs)) n.message(NodeProto.attribute, attributeProto(k, v));
  return n;
}

/** The element types of initializers: float32 weights, int64 shapes and indices, int8 / uint8 quantized values. */
export type TensorValues = Float32Array | BigInt64Array | Int8Array | Uint8Array;

function dataType(a: TensorValues): number {
  if (a instanceof Float32Array) return DataType.FLOAT;
  if (a instanceof BigInt64Array) return DataType.INT64;
  return a instanceof Int8Array ? DataType.INT8 : DataType.UINT8;
}

/** Little-endian bytes of a typed array (a view when the machine is little-endian or the elements are bytes). */
function leBytes(a: TensorValues): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (endianness() === 'LE' || a.BYTES_PER_ELEMENT === 1) return view;
  const out = new Uint8Array(view.length);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < view.length; i += w) for (let j = 0; j < w; j++) out[i + j] = view[i + w - 1 - j];
  return out;
}

/** A weight or constant, its data as raw little-endian bytes (referenced, not copied, on little-endian machines). */
export function tensorProto(name: string, dims: number[], data: TensorValues): ProtoWriter {
  const t = new ProtoWriter();
  for (const d of dims) t.int(TensorProto.dims, d);
  t.int(TensorProto.dataType, dataType(data));
  t.string(TensorProto.name, name);
  t.bytes(TensorProto.rawData, leBytes(data));
  return t;
}

/** A dimension: a number (fixed) or a string (symbolic, dynamic). */
export type Dim = number | string;

/** A graph input or output: a tensor of `elemType` (DataType) and `dims`. */
export function valueInfoProto(name: string, elemType: number, dims: Dim[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims)
    shape.message(TensorShapeProto.dim, typeof d === 'number' ? new ProtoWriter().int(Dimension.dimValue, d) : new ProtoWriter().string(Dimension.dimParam, d));
  const tensorType = new ProtoWriter().int(TypeProtoTensor.elemType, elemType).message(TypeProtoTensor.shape, shape);
  return new ProtoWriter().string(ValueInfoProto.name, name).message(ValueInfoProto.type, new ProtoWriter().message(TypeProto.tensorType, tensorType));
}

export interface GraphParts {
  name: string;
  docString: string;
  nodes: ProtoWriter[];
  initializers: ProtoWriter[];
  inputs: ProtoWriter[];
  outputs: ProtoWriter[];
}

export function graphProto(g: GraphParts): ProtoWriter {
  const graph = new ProtoWriter();
  for (const n of g.nodes) graph.message(GraphProto.node, n);
  graph.string(GraphProto.name, g.name);
  for (const t of g.initializers) graph.message(GraphProto.initializer, t);
  graph.string(GraphProto.docString, g.docString);
  for (const i of g.inputs) graph.message(GraphProto.input, i);
  for (const o of g.outputs) graph.message(GraphProto.output, o);
  return graph;
}

export interface ModelParts {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: ProtoWriter;
  /** The default domain's opset. */
  opset: number;
  metadata: Record<string, string>;
}

export function modelProto(m: ModelParts): ProtoWriter {
  const model = new ProtoWriter()
    .int(ModelProto.irVersion, m.irVersion)
    .string(ModelProto.producerName, m.producerName)
    .string(ModelProto.producerVersion, m.producerVersion)
    .string(ModelProto.domain, m.domain)
    .int(ModelProto.modelVersion, m.modelVersion);
  model.string(ModelProto.docString, m.docString);
  model.message(ModelProto.graph, m.graph);
  model.message(ModelProto.opsetImport, new ProtoWriter().string(OperatorSetIdProto.domain, '').int(OperatorSetIdProto.version, m.opset));
  for (const [k, v] of Object.entries(m.metadata))
    model.message(ModelProto.metadataProps, new ProtoWriter().string(StringStringEntryProto.key, k).string(StringStringEntryProto.value, String(v)));
  return model;
}
