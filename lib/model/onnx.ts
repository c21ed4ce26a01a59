/**
 * ONNX export of a BertModel (dense, head-pruned or compacted with per-layer sizes), written with a small
 * protobuf encoder of our own: no dependency. The graph reproduces the native forward (HF transformers 4.x
 * BERT in eval mode):
 *
 *   embeddings  LayerNorm(word[ids] + token_type[types] + position[0..S))
 *   mask        (1 - attention_mask) * -10000, as [B, 1, 1, S]
 *   per layer   one fused q|k|v MatMul, heads split to [B, H, S, D], softmax(q k^T / sqrt(D) + mask) v,
 *               output dense, LayerNorm(x + input); FFN dense, activation, dense, LayerNorm(x + attention)
 *   heads       pooler tanh(dense(h[:, 0])), classifier, or qa_outputs split into start/end logits
 *
 * Layout: Linear weights are stored pre-transposed ([in, out]) for MatMul, followed by an Add of the bias;
 * the attention scale 1/sqrt(D) is folded into the query weights and bias (exact when sqrt(D) is a power of
 * two, as for D = 16, 64; otherwise a rounding of the last bit). A layer with no head keeps only the output
 * dense bias of its attention block; a layer with FFN width 0 only the output dense bias of its FFN.
 */
import { endianness } from 'node:os';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import type { BertModel, Task } from './model';
import { packageVersion, type TensorData } from '../runtime/native';
import * as v from '../runtime/validate';

export interface OnnxExportOptions {
  /**
   * ONNX opset of the default domain, 14 to 17 (default 17). From 17 on, LayerNorm is one
   * LayerNormalization node; below it is decomposed (ReduceMean, Sub, Mul, Sqrt, Div).
   */
  opset?: number;
  /**
   * Task models also output "last_hidden_state" and (when the model has a pooler) "pooler_output", as
   * forward's `extras` option. Bare models always do.
   */
  extras?: boolean;
  /** Extra key/value pairs for the model's metadata_props (beside "task", "config" and "labels"). */
  metadata?: Record<string, string>;
}

export interface OnnxExportReport {
  /** The absolute path written. */
  path: string;
  opset: number;
  irVersion: number;
  task: Task;
  inputs: string[];
  outputs: string[];
  /** Graph nodes and initializers. */
  nodes: number;
  initializers: number;
  /** File size in bytes. */
  bytes: number;
}

/** What onnxruntime >= 1.14 reads (opset 17 needs IR 8). */
const IR_VERSION = 8;
const MIN_OPSET = 14;
const MAX_OPSET = 17;
/** A protobuf message cannot be larger than 2 GiB - 1 (no external data here). */
const MAX_PROTO_BYTES = 2 ** 31 - 1;

// ---- a minimal protobuf writer ------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_I32 = 5;
const WIRE_LEN = 2;

/** A message under construction: a list of byte chunks (large tensor data is referenced, not copied). */
class Proto {
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

  bytes(field: number, b: Uint8Array): this {
    this.key(field, WIRE_LEN);
    this.rawVarint(b.length);
    this.pushBytes(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new Uint8Array(Buffer.from(s, 'utf8')));
  }

  message(field: number, m: Proto): this {
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

// ---- ONNX messages (field numbers from onnx.proto) ----------------------------------------------

const DT_FLOAT = 1;
const DT_INT64 = 7;

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

type AttrValue = { f: number } | { i: number } | { ints: number[] };

function attributeProto(name: string, value: AttrValue): Proto {
  const a = new Proto().string(1, name);
  if ('f' in value) a.int(20, ATTR_FLOAT).float(2, value.f);
  else if ('i' in value) a.int(20, ATTR_INT).int(3, value.i);
  else {
    a.int(20, ATTR_INTS);
    for (const x of value.ints) a.int(8, x);
  }
  return a;
}

/** Little-endian bytes of a typed array (a view when the machine is little-endian). */
function leBytes(a: Float32Array | BigInt64Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (endianness() === 'LE') return view;
  const out = new Uint8Array(view.length);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < view.length; i += w) for (let j = 0; j < w; j++) out[i + j] = view[i + w - 1 - j];
  return out;
}

function tensorProto(name: string, dims: number[], data: Float32Array | BigInt64Array): Proto {
  const t = new Proto();
  for (const d of dims) t.int(1, d);
  t.int(2, data instanceof Float32Array ? DT_FLOAT : DT_INT64);
  t.string(8, name);
  t.bytes(9, leBytes(data));
  return t;
}

/** A dimension: a number (fixed) or a string (symbolic, dynamic). */
type Dim = number | string;

function valueInfoProto(name: string, elemType: number, dims: Dim[]): Proto {
  const shape = new Proto();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Proto().int(1, d) : new Proto().string(2, d));
  const tensorType = new Proto().int(1, elemType).message(2, shape);
  return new Proto().string(1, name).message(2, new Proto().message(1, tensorType));
}

// ---- the graph builder ---------------------------------------------------------------------------

class GraphBuilder {
  readonly nodes: Proto[] = [];
  readonly initializers: Proto[] = [];
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
    const n = new Proto();
    for (const i of inputs) n.string(1, i);
    for (const o of outs) n.string(2, o);
    n.string(3, nodeName).string(4, op);
    for (const [k, v] of Object.entries(attrs)) n.message(5, attributeProto(k, v));
    this.nodes.push(n);
    return outs;
  }

  node(op: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    return this.nodeN(op, name, inputs, output ? [output] : 1, attrs)[0];
  }
}

// ---- weights -------------------------------------------------------------------------------------

/** [out, in] row-major -> [in, out] row-major, times `scale`. */
function transpose(w: Float32Array, out: number, inp: number, scale = 1): Float32Array {
  const t = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    const row = o * inp;
    for (let i = 0; i < inp; i++) t[i * out + o] = w[row + i] * scale;
  }
  return t;
}

function scaled(a: Float32Array, s: number): Float32Array {
  return s === 1 ? a : a.map((x) => x * s);
}

class Weights {
  constructor(private readonly sd: Record<string, TensorData>, private readonly prefix: string) {}

  has(name: string): boolean {
    return this.prefix + name in this.sd;
  }

  get(name: string, shape: number[]): Float32Array {
    const t = this.sd[this.prefix + name];
    if (!t) throw new BlockpruneError('E_MISSING_TENSOR', `ONNX export: the model has no parameter ${this.prefix + name}`);
    if (t.dtype !== 'F32' || !(t.data instanceof Float32Array))
      throw new BlockpruneError('E_SHAPE', `ONNX export: ${this.prefix + name} is ${t.dtype}, only float32 models can be exported`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new BlockpruneError('E_SHAPE', `ONNX export: ${this.prefix + name} has shape [${t.shape}], expected [${shape}]`);
    return t.data;
  }
}

// ---- the export ----------------------------------------------------------------------------------

/**
 * Writes `model` as an ONNX file at `path` (parent directories are created; the file is written beside it
 * and renamed into place). Inputs: input_ids, attention_mask, token_type_ids, int64 [batch, sequence].
 * Outputs: "logits" [batch, num_labels] (text-classification), "start_logits"/"end_logits" [batch,
 * sequence] (question-answering), "last_hidden_state" [batch, sequence, hidden] and "pooler_output"
 * [batch, hidden] (bare, or any task with `extras`). batch and sequence are dynamic (sequence up to
 * max_position_embeddings). A patched model (masks not yet baked in) is refused: compile() or compact()
 * it first. The weights are read through the model's queue (readStateDict), after the calls made before
 * this one, so an export never meets E_BUSY; the config and layers are read in the same tick, so they
 * describe those weights.
 */
export async function exportOnnx(model: BertModel, path: string, options: OnnxExportOptions = {}): Promise<OnnxExportReport> {
  if (typeof model !== 'object' || model === null || typeof (model as BertModel).readStateDict !== 'function')
    throw invalidArg('model', 'a BertModel', model);
  v.writableFile('path', path);
  v.options('options', v.object('options', options), ['opset', 'extras', 'metadata']);
  const opset = v.integer('options.opset', options.opset ?? MAX_OPSET, { min: MIN_OPSET, max: MAX_OPSET });
  if (options.extras !== undefined) v.boolean('options.extras', options.extras);
  if (options.metadata !== undefined && (!v.is.object(options.metadata) || Object.values(options.metadata).some((x) => typeof x !== 'string')))
    throw v.invalidParameterError('options.metadata', 'an object of string values', options.metadata);

  // No await between this read and the getters below: they describe these weights.
  const sd = await model.readStateDict();
  if (model.patched)
    throw new BlockpruneError(
      'E_INVALID_ARG',
      'cannot export a patched model to ONNX: its linears still hold mask scores. Bake the masks in first with ' +
        'model.compile() (same shapes, zeros in the weights) or model.compact() (a smaller dense model), then export that.',
    );

  const config = model.config;
  const task = model.task;
  const layers = model.layers;
  const H = config.hidden_size;
  const D = H / config.num_attention_heads;
  if (!Number.isInteger(D)) throw new BlockpruneError('E_BAD_CONFIG', `hidden_size ${H} is not a multiple of num_attention_heads ${config.num_attention_heads}`);
  const eps = config.layer_norm_eps ?? 1e-12;
  const act = config.hidden_act ?? 'gelu';
  const posType = config.position_embedding_type;
  if (posType !== undefined && posType !== 'absolute')
    throw new BlockpruneError('E_BAD_CONFIG', `ONNX export supports position_embedding_type "absolute" only, not "${String(posType)}"`);
  const extras = task === 'bare' || options.extras === true;
  const prefix = 'bert.embeddings.word_embeddings.weight' in sd ? 'bert.' : '';
  const w = new Weights(sd, prefix);
  const head = new Weights(sd, '');
  const vocab = config.vocab_size;
  const maxPos = config.max_position_embeddings ?? 512;
  const typeVocab = config.type_vocab_size ?? 2;
  const numLabels = task === 'text-classification' ? (sd['classifier.weight']?.shape[0] ?? config.num_labels ?? 2) : 0;

  const g = new GraphBuilder();
  const BATCH = 'batch';
  const SEQ = 'sequence';

  // A Linear as MatMul with the pre-transposed weight, then Add of the bias.
  const linear = (x: string, name: string, outF: number, inF: number, wScale = 1): string => {
    const wt = g.init(`${name}.weight_t`, [inF, outF], transpose(w.get(`${name}.weight`, [outF, inF]), outF, inF, wScale));
    const b = g.init(`${name}.bias`, [outF], scaled(w.get(`${name}.bias`, [outF]), wScale));
    return g.node('Add', `${name}/add`, [g.node('MatMul', `${name}/matmul`, [x, wt]), b]);
  };

  const layerNorm = (x: string, name: string, output?: string): string => {
    const scale = g.init(`${name}.weight`, [H], w.get(`${name}.weight`, [H]));
    const bias = g.init(`${name}.bias`, [H], w.get(`${name}.bias`, [H]));
    if (opset >= 17) return g.node('LayerNormalization', name, [x, scale, bias], { axis: { i: -1 }, epsilon: { f: eps } }, output);
    const mean = g.node('ReduceMean', `${name}/mean`, [x], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const d = g.node('Sub', `${name}/center`, [x, mean]);
    const variance = g.node('ReduceMean', `${name}/var`, [g.node('Mul', `${name}/square`, [d, d])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const std = g.node('Sqrt', `${name}/std`, [g.node('Add', `${name}/var_eps`, [variance, g.scalar(eps)])]);
    const normed = g.node('Div', `${name}/normalize`, [d, std]);
    return g.node('Add', `${name}/shift`, [g.node('Mul', `${name}/scale`, [normed, scale]), bias], {}, output);
  };

  const activation = (x: string, name: string): string => {
    switch (act) {
      case 'gelu': {
        // torch/HF exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
        const erf = g.node('Erf', `${name}/erf`, [g.node('Mul', `${name}/div_sqrt2`, [x, g.scalar(Math.SQRT1_2)])]);
        const half = g.node('Mul', `${name}/half`, [x, g.scalar(0.5)]);
        return g.node('Mul', name, [half, g.node('Add', `${name}/one_plus`, [erf, g.scalar(1)])]);
      }
      case 'gelu_new':
      case 'gelu_pytorch_tanh': {
        // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        const x3 = g.node('Mul', `${name}/x3`, [g.node('Mul', `${name}/x2`, [x, x]), x]);
        const inner = g.node('Add', `${name}/inner`, [x, g.node('Mul', `${name}/cubic`, [x3, g.scalar(0.044715)])]);
        const th = g.node('Tanh', `${name}/tanh`, [g.node('Mul', `${name}/scale`, [inner, g.scalar(Math.sqrt(2 / Math.PI))])]);
        const half = g.node('Mul', `${name}/half`, [x, g.scalar(0.5)]);
        return g.node('Mul', name, [half, g.node('Add', `${name}/one_plus`, [th, g.scalar(1)])]);
      }
      case 'relu':
        return g.node('Relu', name, [x]);
      case 'silu':
      case 'swish':
        return g.node('Mul', name, [x, g.node('Sigmoid', `${name}/sigmoid`, [x])]);
      case 'tanh':
        return g.node('Tanh', name, [x]);
      default:
        throw new BlockpruneError('E_BAD_CONFIG', `ONNX export: unsupported hidden_act "${act}"`);
    }
  };

  // Embeddings: (word + token_type) + position[0..S), then LayerNorm.
  const word = g.init('embeddings.word_embeddings.weight', [vocab, H], w.get('embeddings.word_embeddings.weight', [vocab, H]));
  const types = g.init('embeddings.token_type_embeddings.weight', [typeVocab, H], w.get('embeddings.token_type_embeddings.weight', [typeVocab, H]));
  const pos = g.init('embeddings.position_embeddings.weight', [maxPos, H], w.get('embeddings.position_embeddings.weight', [maxPos, H]));
  const seqLen =
    opset >= 15
      ? g.node('Shape', 'embeddings/seq_len', ['input_ids'], { start: { i: 1 }, end: { i: 2 } })
      : g.node('Gather', 'embeddings/seq_len', [g.node('Shape', 'embeddings/shape', ['input_ids']), g.ints([1])], { axis: { i: 0 } });
  const positions = g.node('Slice', 'embeddings/positions', [pos, g.ints([0]), seqLen, g.ints([0])]);
  const wordTypes = g.node('Add', 'embeddings/add_types', [
    g.node('Gather', 'embeddings/word', [word, 'input_ids'], { axis: { i: 0 } }),
    g.node('Gather', 'embeddings/token_type', [types, 'token_type_ids'], { axis: { i: 0 } }),
  ]);
  let h = layerNorm(g.node('Add', 'embeddings/add_positions', [wordTypes, positions]), 'embeddings.LayerNorm');

  // Extended mask, built once when some layer attends: (1 - mask) * -10000 as [B, 1, 1, S].
  let extMask: string | undefined;
  const mask = (): string => {
    if (!extMask) {
      const m4 = g.node('Unsqueeze', 'mask/unsqueeze', ['attention_mask', g.ints([1, 2])]);
      const mf = g.node('Cast', 'mask/cast', [m4], { to: { i: DT_FLOAT } });
      extMask = g.node('Mul', 'mask/extended', [g.node('Sub', 'mask/invert', [g.scalar(1), mf]), g.scalar(-10000)]);
    }
    return extMask;
  };

  layers.forEach((info, i) => {
    const L = `encoder.layer.${i}`;
    const heads = info.heads;
    const width = info.intermediateSize;
    const HD = heads * D;
    let attn: string;
    if (heads > 0) {
      // Fused q|k|v: weight [H, 3 * HD], query part scaled by 1 / sqrt(D).
      const s = 1 / Math.sqrt(D);
      const qw = transpose(w.get(`${L}.attention.self.query.weight`, [HD, H]), HD, H, s);
      const kw = transpose(w.get(`${L}.attention.self.key.weight`, [HD, H]), HD, H);
      const vw = transpose(w.get(`${L}.attention.self.value.weight`, [HD, H]), HD, H);
      const wqkv = new Float32Array(H * 3 * HD);
      for (let r = 0; r < H; r++) {
        wqkv.set(qw.subarray(r * HD, (r + 1) * HD), r * 3 * HD);
        wqkv.set(kw.subarray(r * HD, (r + 1) * HD), r * 3 * HD + HD);
        wqkv.set(vw.subarray(r * HD, (r + 1) * HD), r * 3 * HD + 2 * HD);
      }
      const bqkv = new Float32Array(3 * HD);
      bqkv.set(scaled(w.get(`${L}.attention.self.query.bias`, [HD]), s), 0);
      bqkv.set(w.get(`${L}.attention.self.key.bias`, [HD]), HD);
      bqkv.set(w.get(`${L}.attention.self.value.bias`, [HD]), 2 * HD);
      const A = `${L}.attention.self`;
      const qkv = g.node('Add', `${A}/qkv_add`, [
        g.node('MatMul', `${A}/qkv_matmul`, [h, g.init(`${A}.qkv.weight_t`, [H, 3 * HD], wqkv)]),
        g.init(`${A}.qkv.bias`, [3 * HD], bqkv),
      ]);
      // [B, S, 3 * HD] -> [B, S, 3 * heads, D] -> q, k, v [B, S, heads, D]
      const split = g.node('Reshape', `${A}/split_heads`, [qkv, g.ints([0, 0, 3 * heads, D])]);
      const [q, k, v] = g.nodeN('Split', `${A}/qkv_split`, [split], 3, { axis: { i: 2 } });
      const qT = g.node('Transpose', `${A}/q_t`, [q], { perm: { ints: [0, 2, 1, 3] } }); // [B, h, S, D]
      const kT = g.node('Transpose', `${A}/k_t`, [k], { perm: { ints: [0, 2, 3, 1] } }); // [B, h, D, S]
      const vT = g.node('Transpose', `${A}/v_t`, [v], { perm: { ints: [0, 2, 1, 3] } }); // [B, h, S, D]
      const scores = g.node('Add', `${A}/scores_masked`, [g.node('MatMul', `${A}/scores`, [qT, kT]), mask()]);
      const probs = g.node('Softmax', `${A}/softmax`, [scores], { axis: { i: -1 } });
      const ctx = g.node('Transpose', `${A}/context_t`, [g.node('MatMul', `${A}/context`, [probs, vT])], { perm: { ints: [0, 2, 1, 3] } });
      const merged = g.node('Reshape', `${A}/merge_heads`, [ctx, g.ints([0, 0, HD])]);
      attn = g.node('Add', `${L}.attention.output/residual`, [linear(merged, `${L}.attention.output.dense`, H, HD), h]);
    } else {
      // No head left: the attention block is its output dense bias.
      const b = g.init(`${L}.attention.output.dense.bias`, [H], w.get(`${L}.attention.output.dense.bias`, [H]));
      attn = g.node('Add', `${L}.attention.output/residual`, [b, h]);
    }
    const a = layerNorm(attn, `${L}.attention.output.LayerNorm`);
    let ffn: string;
    if (width > 0) {
      const inter = activation(linear(a, `${L}.intermediate.dense`, width, H), `${L}.intermediate/act`);
      ffn = g.node('Add', `${L}.output/residual`, [linear(inter, `${L}.output.dense`, H, width), a]);
    } else {
      const b = g.init(`${L}.output.dense.bias`, [H], w.get(`${L}.output.dense.bias`, [H]));
      ffn = g.node('Add', `${L}.output/residual`, [b, a]);
    }
    // The last layer's output is last_hidden_state when that is an output.
    h = layerNorm(ffn, `${L}.output.LayerNorm`, extras && i === layers.length - 1 ? 'last_hidden_state' : undefined);
  });

  const outputs: Array<[string, Dim[]]> = [];
  const hasPooler = task !== 'question-answering' && w.has('pooler.dense.weight');
  let pooled: string | undefined;
  if (hasPooler) {
    const first = g.node('Gather', 'pooler/first_token', [h, g.ints([0], true)], { axis: { i: 1 } });
    pooled = g.node('Tanh', 'pooler/tanh', [linear(first, 'pooler.dense', H, H)], {}, extras ? 'pooler_output' : undefined);
  }
  if (extras) {
    if (h !== 'last_hidden_state') h = g.node('Identity', 'last_hidden_state', [h], {}, 'last_hidden_state'); // no layer
    outputs.push(['last_hidden_state', [BATCH, SEQ, H]]);
    if (pooled) outputs.push(['pooler_output', [BATCH, H]]);
  }
  if (task === 'text-classification') {
    if (!pooled) throw new BlockpruneError('E_MISSING_TENSOR', 'ONNX export: the classification model has no pooler');
    const n = numLabels;
    const wt = g.init('classifier.weight_t', [H, n], transpose(head.get('classifier.weight', [n, H]), n, H));
    const b = g.init('classifier.bias', [n], head.get('classifier.bias', [n]));
    g.node('Add', 'classifier/add', [g.node('MatMul', 'classifier/matmul', [pooled, wt]), b], {}, 'logits');
    outputs.unshift(['logits', [BATCH, n]]);
  } else if (task === 'question-answering') {
    // qa_outputs as two matrix-vector products: [B, S, H] x [H] -> [B, S], then the scalar bias.
    const qw = head.get('qa_outputs.weight', [2, H]);
    const qb = head.get('qa_outputs.bias', [2]);
    const ends: Array<[string, number]> = [['start_logits', 0], ['end_logits', 1]];
    for (const [name, j] of ends) {
      const wv = g.init(`qa_outputs.${name}.weight`, [H], qw.slice(j * H, (j + 1) * H));
      const bv = g.init(`qa_outputs.${name}.bias`, [], Float32Array.of(qb[j]));
      g.node('Add', `qa_outputs/${name}_add`, [g.node('MatMul', `qa_outputs/${name}_matmul`, [h, wv]), bv], {}, name);
    }
    outputs.unshift(['start_logits', [BATCH, SEQ]], ['end_logits', [BATCH, SEQ]]);
  }

  // The model.
  const graph = new Proto();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, `blockprune_${task.replace(/-/g, '_')}`);
  for (const t of g.initializers) graph.message(5, t);
  graph.string(10, `BERT (${task}) exported by blockprune: ${layers.length} layers, heads [${layers.map((l) => l.heads)}], FFN widths [${layers.map((l) => l.intermediateSize)}]`);
  const inputs = ['input_ids', 'attention_mask', 'token_type_ids'];
  for (const name of inputs) graph.message(11, valueInfoProto(name, DT_INT64, [BATCH, SEQ]));
  for (const [name, dims] of outputs) graph.message(12, valueInfoProto(name, DT_FLOAT, dims));

  const labels = Array.from({ length: numLabels }, (_, i) => config.id2label?.[String(i)] ?? `LABEL_${i}`);
  const meta: Record<string, string> = { task, config: JSON.stringify(config), ...(labels.length ? { labels: JSON.stringify(labels) } : {}), ...options.metadata };
  const m = new Proto().int(1, IR_VERSION).string(2, 'blockprune').string(3, packageVersion()).string(4, 'blockprune').int(5, 1);
  m.string(6, `BERT ${task}; inputs int64 [batch, sequence], sequence <= ${maxPos}`);
  m.message(7, graph);
  m.message(8, new Proto().string(1, '').int(2, opset));
  for (const [k, v] of Object.entries(meta)) m.message(14, new Proto().string(1, k).string(2, String(v)));
  const chunks = m.finish();
  if (m.length > MAX_PROTO_BYTES)
    throw new BlockpruneError('E_INVALID_ARG', `the ONNX model would be ${m.length} bytes, over protobuf's 2 GiB limit (external data is not supported)`);

  // Atomically and durably (lib/atomic.ts): a full disk is E_NO_SPACE and leaves any previous file whole.
  const abs = resolve(path);
  await writeFileAtomic(abs, chunks);
  return {
    path: abs,
    opset,
    irVersion: IR_VERSION,
    task,
    inputs,
    outputs: outputs.map(([n]) => n),
    nodes: g.nodes.length,
    initializers: g.initializers.length,
    bytes: m.length,
  };
}
