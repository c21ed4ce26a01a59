/**
 * GraphBuilder: an ONNX graph as it is built, node by node in topological order, with unique names, the
 * weights as initializers and small int64 / float constants shared between the nodes that use them.
 */
import type { ProtoWriter } from '../runtime/protobuf';
import { AttrValue, nodeProto, tensorProto, type TensorValues } from './onnx-messages';

/**
 * An nn.Linear weight [out, in] row-major as MatMul's right operand [in, out] row-major, times `scale`
 * (float weights only: int8 ones are never scaled, their scales are applied after the product).
 */
export function transposeWeight<T extends Float32Array | Int8Array>(w: T, out: number, inp: number, scale = 1): T {
  const t = (w instanceof Int8Array ? new Int8Array(w.length) : new Float32Array(w.length)) as T;
  for (let o = 0; o < out; o++) {
    const row = o * inp;
    for (let i = 0; i < inp; i++) t[i * out + o] = scale === 1 ? w[row + i] : w[row + i] * scale;
  }
  return t;
}

export class GraphBuilder {
  readonly nodes: ProtoWriter[] = [];
  readonly initializers: ProtoWriter[] = [];
  private names = new Set<string>();
  private counter = 0;
  private constants = new Map<string, string>();

  private unique(base: string): string {
    let name = base;
    while (this.names.has(name)) name = `${base}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  /** Adds an initializer; returns its name. */
  init(name: string, dims: number[], data: TensorValues): string {
    const n = this.unique(name);
    this.initializers.push(tensorProto(n, dims, data));
    return n;
  }

  /** The constant under `key`, made by `make` the first time it is asked for. */
  private shared(key: string, make: () => string): string {
    let name = this.constants.get(key);
    if (!name) {
      name = make();
      this.constants.set(key, name);
    }
    return name;
  }

  /** A shared int64 constant (shapes, axes, indices). */
  ints(values: number[], scalar = false): string {
    const tag = `${scalar ? 'scalar_' : ''}${values.join('_').replace(/-/g, 'm')}`;
    return this.shared(`i64:${scalar ? 's' : 'v'}:${values.join(',')}`, () =>
      this.init(`const_i64_${tag}`, scalar ? [] : [values.length], BigInt64Array.from(values.map((v) => BigInt(v)))),
    );
  }

  /** A shared float scalar constant. */
  scalar(v: number): string {
    return this.shared(`f32:${v}`, () => this.init(`const_f32_${String(v).replace(/[^0-9a-zA-Z]/g, '_')}`, [], Float32Array.of(v)));
  }

  /** A shared uint8 scalar constant (a quantization zero point). */
  uint8(v: number): string {
    return this.shared(`u8:${v}`, () => this.init(`const_u8_${v}`, [], Uint8Array.of(v)));
  }

  /** Adds a node; returns its output names (`outputs` of them, named after `name`). */
  nodeN(op: string, name: string, inputs: string[], outputs: number | string[], attrs: Record<string, AttrValue> = {}): string[] {
    const nodeName = this.unique(name);
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => (outputs === 1 ? nodeName : `${nodeName}:${i}`)) : outputs;
    for (const o of outs) if (o !== nodeName) this.names.add(o);
    this.nodes.push(nodeProto(op, nodeName, inputs, outs, attrs));
    return outs;
  }

  node(op: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.nodeN(op, name, inputs, output ? [output] : 1, attrs)[0];
  }
}
