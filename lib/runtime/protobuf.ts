/**
 * Kept hand-written: a 100-line writer of the protobuf subset we emit; protobufjs's schema machinery would be a 1 MB dependency for it.
 *
 * ProtoWriter encodes varint, 32-bit float, 64-bit double and length-delimited fields: enough for ONNX's
 * ModelProto and the messages inside it (field numbers in model/onnx-messages.ts, after onnx.proto3) and for
 * TensorBoard's Event (training/tensorboard.ts, after tensorflow's event.proto and summary.proto).
 */

// Wire types (protobuf encoding: a field's key is field number * 8 + wire type).
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_I32 = 5;
const WIRE_LEN = 2;

/** A message under construction: a list of byte chunks (large tensor data is referenced, not copied). */
export class ProtoWriter {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.chunks.push(Uint8Array.from(this.scratch));
    this.scratch = [];
  }

  private pushBytes(b: Uint8Array): void {
    if (b.length < 64) {
      for (const x of b) this.scratch.push(x);
    } else {
      this.flushScratch();
      this.chunks.push(b);
    }
    this.length += b.length;
  }

  private rawVarint(v: number | bigint): void {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`not an integer: ${v}`);
    let n = BigInt.asUintN(64, BigInt(v));
    do {
      let byte = Number(n & 0x7fn);
      n >>= 7n;
      if (n !== 0n) byte |= 0x80;
      this.scratch.push(byte);
      this.length += 1;
    } while (n !== 0n);
  }

  private key(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  /** int32 / int64 / enum field (negative values as 10-byte two's complement, as protobuf does). */
  int(field: number, v: number | bigint): this {
    this.key(field, WIRE_VARINT);
    this.rawVarint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.pushBytes(b);
    return this;
  }

  double(field: number, v: number): this {
    this.key(field, WIRE_I64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.pushBytes(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, WIRE_LEN);
    this.rawVarint(b.length);
    this.pushBytes(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new Uint8Array(Buffer.from(s, 'utf8')));
  }

  message(field: number, m: ProtoWriter): this {
    m.flushScratch();
    this.key(field, WIRE_LEN);
    this.rawVarint(m.length);
    this.flushScratch();
    for (const c of m.chunks) this.chunks.push(c);
    this.length += m.length;
    return this;
  }

  /** The chunks, in order (call once the message is complete). */
  finish(): Uint8Array[] {
    this.flushScratch();
    return this.chunks;
  }
}
