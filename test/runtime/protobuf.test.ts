/**
 * The hand-written protobuf writer (lib/runtime/protobuf.ts) against the encodings of the protobuf
 * documentation, and the ONNX message encoders (lib/model/onnx-messages.ts) against hand-assembled bytes.
 * No addon: the whole ONNX file is checked by onnx.test.ts, which runs it in onnxruntime.
 */
import test from 'ava';
import { ProtoWriter } from '../../lib/runtime/protobuf';
import { attributeProto, DataType, tensorProto, valueInfoProto } from '../../lib/model/onnx-messages';

const bytes = (p: ProtoWriter): number[] => Array.from(Buffer.concat(p.finish()));

test('varint, negative int64, float, string and nested messages encode as protobuf does', (t) => {
  // https://protobuf.dev/programming-guides/encoding/: field 1 = 150 is 08 96 01; field 2 = "testing"; field 3 = { 1: 150 }.
  t.deepEqual(bytes(new ProtoWriter().int(1, 150)), [0x08, 0x96, 0x01]);
  t.deepEqual(bytes(new ProtoWriter().string(2, 'testing')), [0x12, 0x07, ...Buffer.from('testing')]);
  t.deepEqual(bytes(new ProtoWriter().message(3, new ProtoWriter().int(1, 150))), [0x1a, 0x03, 0x08, 0x96, 0x01]);
  // A negative int64 is its 64-bit two's complement: 10 bytes.
  t.deepEqual(bytes(new ProtoWriter().int(1, -1)), [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  t.deepEqual(bytes(new ProtoWriter().int(1, 2n ** 40n)), [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
  t.deepEqual(bytes(new ProtoWriter().float(2, 1)), [0x15, 0x00, 0x00, 0x80, 0x3f]);
  // A double is wire type 1, 8 bytes little-endian (TensorBoard's Event.wall_time).
  t.deepEqual(bytes(new ProtoWriter().double(1, 1)), [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
  t.throws(() => new ProtoWriter().int(1, 0.5), { instanceOf: RangeError });
  // Large payloads are referenced, not copied, and `length` counts every byte.
  const big = new Uint8Array(1000).fill(7);
  const p = new ProtoWriter().int(1, 1).bytes(2, big);
  const chunks = p.finish();
  t.true(chunks.includes(big));
  t.is(p.length, 2 + 1 + 2 + 1000);
  t.is(Buffer.concat(chunks).length, p.length);
  const outer = new ProtoWriter().message(4, p);
  t.is(Buffer.concat(outer.finish()).length, 1 + 2 + p.length);
});

test('ONNX messages: AttributeProto, TensorProto, ValueInfoProto with their field numbers', (t) => {
  // AttributeProto: name = 1, type = 20 (INT = 2), i = 3.
  t.deepEqual(bytes(attributeProto('axis', { i: -1 })), [0x0a, 4, ...Buffer.from('axis'), 0xa0, 0x01, 0x02, 0x18, ...Array(9).fill(0xff), 0x01]);
  // INTS = 7, ints = 8 (one varint field per value).
  t.deepEqual(bytes(attributeProto('perm', { ints: [0, 2] })), [0x0a, 4, ...Buffer.from('perm'), 0xa0, 0x01, 0x07, 0x40, 0x00, 0x40, 0x02]);
  // FLOAT = 1, f = 2.
  t.deepEqual(bytes(attributeProto('epsilon', { f: 1 })), [0x0a, 7, ...Buffer.from('epsilon'), 0xa0, 0x01, 0x01, 0x15, 0x00, 0x00, 0x80, 0x3f]);
  // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian).
  t.deepEqual(bytes(tensorProto('c', [2], BigInt64Array.of(1n, -2n))), [
    0x08, 0x02, 0x10, DataType.INT64, 0x42, 0x01, 0x63, 0x4a, 16,
    0x01, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
  ]);
  // int8 and uint8 tensors (quantized weights, zero points): one raw byte per value, two's complement for int8.
  t.deepEqual(bytes(tensorProto('q', [2], Int8Array.of(-1, 2))), [0x08, 0x02, 0x10, DataType.INT8, 0x42, 0x01, 0x71, 0x4a, 2, 0xff, 0x02]);
  t.deepEqual(bytes(tensorProto('z', [], Uint8Array.of(128))), [0x10, DataType.UINT8, 0x42, 0x01, 0x7a, 0x4a, 1, 0x80]);
  // ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1: { dim_value = 1 | dim_param = 2 } } } } }.
  t.deepEqual(bytes(valueInfoProto('x', DataType.FLOAT, ['b', 3])), [
    0x0a, 0x01, 0x78, 0x12, 15, 0x0a, 13, 0x08, DataType.FLOAT, 0x12, 9, 0x0a, 3, 0x12, 1, 0x62, 0x0a, 2, 0x08, 3,
  ]);
});
