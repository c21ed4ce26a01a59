/**
 * GraphBuilder: an ONNX graph as it is built, node by node in topological order, with unique names, the
 * weights as initializers and small int64 / float constants shared between the nodes that use them.
 */
import type { ProtoWriter } from '../runtime/protobuf';
import { AttrValue, nodeProto, tensorProto } from './onnx-messages';

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
  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const n = this.unique(name);
    this.initializers.push(tensorProto(n, dims, data));
    return n;
  }

  /** A shared int64 constant (shapes, axes, indices). */
  ints(values: number[], scalar = false): string {
    const key = `i64:${scalar ? 's' : 'v'}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.init(`const_i64_${scalar ? 'scalar_' : ''}${values.join('_').replace(/-/g, 'm')}`, scalar ? [] : [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
      this.constants.set(key, name);
    }
    return name;
  }

  /** A shared float scalar constant. */
  scalar(v: number): string {
    const key = `f32:${v}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.init(`const_f32_${String(v).replace(/[^0-9a-zA-Z]/g, '_')}`, [], Float32Array.of(v));
      this.constants.set(key, name);
    }
    return name;
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
