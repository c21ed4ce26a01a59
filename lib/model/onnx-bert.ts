/**
 * BERT-family encoders (BERT, RoBERTa, XLM-R, DistilBERT) as an ONNX graph, built one HF module at a time as
 * native/bert.h builds it in libtorch (and candle's bert.rs in Rust), under the names the family's structure
 * gives (model.structure, native/family.h): each function below takes its module's input and its weights under the module's HF name,
 * adds its nodes, and returns the name of its output. They mirror transformers 4.4.2 (the version the parity
 * fixtures come from), in eval mode, so dropout is absent:
 * https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py
 *
 * Layout: Linear weights are stored pre-transposed ([in, out]) for MatMul, followed by an Add of the bias;
 * the attention scale 1/sqrt(D) is folded into the query weights and bias (exact when sqrt(D) is a power of
 * two, as for D = 16, 64; otherwise a rounding of the last bit). Every layer has its own head count and FFN
 * width (compact models): a layer with no head keeps only the output dense bias of its attention block, a
 * layer with FFN width 0 only the output dense bias of its FFN.
 */
import { BlockpruneError } from '../runtime/errors';
import type { TensorData } from '../runtime/native';
import type { LayerInfo, ModelStructure } from './model';
import { quantizeInt8, type Int8Weights } from './int8-weights';
import { GraphBuilder, transposeWeight } from './onnx-graph';
import { int8Linear } from './onnx-int8';
import { DataType } from './onnx-messages';

/** The float32 tensors of a state dict under `prefix`, each checked against the shape the graph needs. */
export class Weights {
  constructor(
    private readonly sd: Record<string, TensorData>,
    private readonly prefix: string,
  ) {}

  has(name: string): boolean {
    return this.prefix + name in this.sd;
  }

  get(name: string, shape: number[]): Float32Array {
    return this.typed(name, shape, 'F32', Float32Array);
  }

  /** A quantized model's int8 weight (native/quantize.h: `<linear>.weight` is int8 beside `weight_scale`). */
  getInt8(name: string, shape: number[]): Int8Array {
    return this.typed(name, shape, 'I8', Int8Array);
  }

  private typed<A extends Float32Array | Int8Array>(name: string, shape: number[], dtype: 'F32' | 'I8', kind: new (n: number) => A): A {
    const t = this.sd[this.prefix + name];
    if (!t) throw new BlockpruneError('E_MISSING_TENSOR', `ONNX export: the model has no parameter ${this.prefix + name}`);
    if (t.dtype !== dtype || !(t.data instanceof kind))
      throw new BlockpruneError('E_SHAPE', `ONNX export: ${this.prefix + name} is ${t.dtype}, expected ${dtype}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new BlockpruneError('E_SHAPE', `ONNX export: ${this.prefix + name} has shape [${t.shape}], expected [${shape}]`);
    return t.data as A;
  }
}

/** What every module needs: the graph so far, the encoder's weights and the sizes all layers share. */
export interface BertGraph {
  g: GraphBuilder;
  /** Where the family keeps each module (names inside the encoder drop its prefix, as `w` does). */
  s: ModelStructure;
  /** Under the encoder's prefix ("bert." in task models). */
  w: Weights;
  /** hidden_size (H) and the head size (D = H / num_attention_heads). */
  hidden: number;
  headDim: number;
  eps: number;
  act: string;
  opset: number;
  /**
   * Set: the six linears of every encoder layer are int8 (onnx-int8.ts), weights per output channel or per
   * tensor; embeddings, LayerNorm, softmax, the pooler and the heads stay float32.
   */
  int8?: {
    perChannel: boolean;
    /** The model is quantized (model.dtype 'int8'): its own integers and scales are written, not re-quantized. */
    fromModel: boolean;
  };
  /** The extended attention mask, built when the first layer with heads asks for it (extendedMask). */
  mask(): string;
}

function scaled(a: Float32Array, s: number): Float32Array {
  return s === 1 ? a : a.map((x) => x * s);
}

/**
 * torch.nn.Linear as MatMul with the pre-transposed weight, then Add of the bias. `from`: the weights to read
 * (the task heads sit outside the encoder's prefix); `output`: a graph output's name for the result.
 */
export function linear(b: BertGraph, x: string, name: string, outF: number, inF: number, opts: { from?: Weights; output?: string } = {}): string {
  const w = opts.from ?? b.w;
  const wt = b.g.init(`${name}.weight_t`, [inF, outF], transposeWeight(w.get(`${name}.weight`, [outF, inF]), outF, inF));
  const bias = b.g.init(`${name}.bias`, [outF], w.get(`${name}.bias`, [outF]));
  return b.g.node('Add', `${name}/add`, [b.g.node('MatMul', `${name}/matmul`, [x, wt]), bias], {}, opts.output);
}

/**
 * The int8 weight and scales of the encoder linear `name` ([outF, inF]), for b.int8: a quantized model's own
 * (model.quantize(): `weight` int8 and `weight_scale`), else the float32 weights quantized here by quant.h's rule
 * (int8-weights.ts), which gives the same integers and scales.
 */
function encoderInt8Weights(b: BertGraph, name: string, outF: number, inF: number): Int8Weights {
  if (b.int8!.fromModel) return { q: b.w.getInt8(`${name}.weight`, [outF, inF]), scale: b.w.get(`${name}.weight_scale`, [outF]), rows: outF, cols: inF };
  return quantizeInt8(b.w.get(`${name}.weight`, [outF, inF]), outF, inF, b.int8!.perChannel);
}

/** A linear of an encoder layer: int8 when the export quantizes (b.int8), else float32 as `linear`. */
function encoderLinear(b: BertGraph, x: string, name: string, outF: number, inF: number): string {
  if (!b.int8) return linear(b, x, name, outF, inF);
  return int8Linear(b.g, x, name, encoderInt8Weights(b, name, outF, inF), b.w.get(`${name}.bias`, [outF]));
}

/** torch.nn.LayerNorm over the hidden size: one LayerNormalization node from opset 17, decomposed below it. */
export function layerNorm(b: Pick<BertGraph, 'g' | 'w' | 'hidden' | 'eps' | 'opset'>, x: string, name: string, output?: string): string {
  const { g, w, hidden: H } = b;
  const scale = g.init(`${name}.weight`, [H], w.get(`${name}.weight`, [H]));
  const bias = g.init(`${name}.bias`, [H], w.get(`${name}.bias`, [H]));
  if (b.opset >= 17) return g.node('LayerNormalization', name, [x, scale, bias], { axis: { i: -1 }, epsilon: { f: b.eps } }, output);
  const mean = g.node('ReduceMean', `${name}/mean`, [x], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  const d = g.node('Sub', `${name}/center`, [x, mean]);
  const variance = g.node('ReduceMean', `${name}/var`, [g.node('Mul', `${name}/square`, [d, d])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  const std = g.node('Sqrt', `${name}/std`, [g.node('Add', `${name}/var_eps`, [variance, g.scalar(b.eps)])]);
  const normed = g.node('Div', `${name}/normalize`, [d, std]);
  return g.node('Add', `${name}/shift`, [g.node('Mul', `${name}/scale`, [normed, scale]), bias], {}, output);
}

/** config.hidden_act, as transformers' ACT2FN (activations.py) computes it. */
export function activation(b: Pick<BertGraph, 'g' | 'act'>, x: string, name: string): string {
  const g = b.g;
  switch (b.act) {
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
      throw new BlockpruneError('E_BAD_CONFIG', `ONNX export: unsupported hidden_act "${b.act}"`);
  }
}

/** A name under the family's base prefix ("bert.pooler.dense" -> "pooler.dense"), as `BertGraph.w` reads it. */
export function inEncoder(s: ModelStructure, name: string): string {
  return name.startsWith(`${s.prefix}.`) ? name.slice(s.prefix.length + 1) : name;
}

/**
 * HF BertEmbeddings: (word[input_ids] + token_type[token_type_ids]) + position, then LayerNorm; DistilBERT
 * has no token types; RoBERTa's positions come from input_ids (padId + cumsum(ids != padId) on real tokens,
 * padId on padding). Absolute positions only (exportOnnx refuses the others).
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertEmbeddings
 * (and modeling_roberta.py create_position_ids_from_input_ids).
 */
export function embeddings(b: BertGraph, sizes: { vocab: number; typeVocab: number; maxPos: number; padId: number }): string {
  const { g, w, hidden: H } = b;
  const word = g.init('embeddings.word_embeddings.weight', [sizes.vocab, H], w.get('embeddings.word_embeddings.weight', [sizes.vocab, H]));
  const pos = g.init('embeddings.position_embeddings.weight', [sizes.maxPos, H], w.get('embeddings.position_embeddings.weight', [sizes.maxPos, H]));
  let positions: string;
  if (b.s.positions === 'input_ids') {
    const real = g.node('Cast', 'embeddings/real', [g.node('Not', 'embeddings/not_pad', [g.node('Equal', 'embeddings/is_pad', ['input_ids', g.ints([sizes.padId], true)])])], { to: { i: DataType.INT64 } });
    const counted = g.node('Mul', 'embeddings/counted', [g.node('CumSum', 'embeddings/cumsum', [real, g.ints([1], true)]), real]);
    const ids = g.node('Add', 'embeddings/position_ids', [counted, g.ints([sizes.padId], true)]);
    positions = g.node('Gather', 'embeddings/positions', [pos, ids], { axis: { i: 0 } });
  } else {
    // Shape's start/end attributes came with opset 15; before, Gather picks the sequence length out of the shape.
    const seqLen =
      b.opset >= 15
        ? g.node('Shape', 'embeddings/seq_len', ['input_ids'], { start: { i: 1 }, end: { i: 2 } })
        : g.node('Gather', 'embeddings/seq_len', [g.node('Shape', 'embeddings/shape', ['input_ids']), g.ints([1])], { axis: { i: 0 } });
    positions = g.node('Slice', 'embeddings/positions', [pos, g.ints([0]), seqLen, g.ints([0])]);
  }
  let e = g.node('Gather', 'embeddings/word', [word, 'input_ids'], { axis: { i: 0 } });
  if (b.s.tokenTypes) {
    const types = g.init('embeddings.token_type_embeddings.weight', [sizes.typeVocab, H], w.get('embeddings.token_type_embeddings.weight', [sizes.typeVocab, H]));
    e = g.node('Add', 'embeddings/add_types', [e, g.node('Gather', 'embeddings/token_type', [types, 'token_type_ids'], { axis: { i: 0 } })]);
  }
  return layerNorm(b, g.node('Add', 'embeddings/add_positions', [e, positions]), 'embeddings.LayerNorm');
}

/**
 * The extended attention mask: (1 - attention_mask) * -10000 as float [B, 1, 1, S], added to every head's
 * scores. Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/modeling_utils.py
 * ModuleUtilsMixin.get_extended_attention_mask.
 */
export function extendedMask(g: GraphBuilder): string {
  const m4 = g.node('Unsqueeze', 'mask/unsqueeze', ['attention_mask', g.ints([1, 2])]);
  const mf = g.node('Cast', 'mask/cast', [m4], { to: { i: DataType.FLOAT } });
  return g.node('Mul', 'mask/extended', [g.node('Sub', 'mask/invert', [g.scalar(1), mf]), g.scalar(-10000)]);
}

/** Layer L's attention module ("encoder.layer.0.attention.self" in BERT), which names the fused q|k|v. */
function attentionName(b: BertGraph, L: string): string {
  const q = b.s.linears.query;
  return `${L}.${q.slice(0, q.lastIndexOf('.'))}`;
}

/** The fused q|k|v weight as MatMul's [H, 3 * HD], the query part scaled by `s` = 1 / sqrt(D). */
function fusedQkv(b: BertGraph, L: string, HD: number, s: number): string {
  const { w, hidden: H } = b;
  const n = b.s.linears;
  const qw = transposeWeight(w.get(`${L}.${n.query}.weight`, [HD, H]), HD, H, s);
  const kw = transposeWeight(w.get(`${L}.${n.key}.weight`, [HD, H]), HD, H);
  const vw = transposeWeight(w.get(`${L}.${n.value}.weight`, [HD, H]), HD, H);
  const wqkv = new Float32Array(H * 3 * HD);
  for (let r = 0; r < H; r++) {
    wqkv.set(qw.subarray(r * HD, (r + 1) * HD), r * 3 * HD);
    wqkv.set(kw.subarray(r * HD, (r + 1) * HD), r * 3 * HD + HD);
    wqkv.set(vw.subarray(r * HD, (r + 1) * HD), r * 3 * HD + 2 * HD);
  }
  return b.g.init(`${attentionName(b, L)}.qkv.weight_t`, [H, 3 * HD], wqkv);
}

/**
 * q|k|v as one int8 linear: each of query, key and value quantized on its own (its own channels, or its own
 * tensor), their rows stacked ([out, in] row-major stacks by concatenation); 1 / sqrt(D) goes into the
 * query's scales and bias, so the integers are those of the unscaled query weight, as our kernels hold them.
 */
function int8Qkv(b: BertGraph, h: string, L: string, HD: number, s: number, bias: Float32Array): string {
  const n = b.s.linears;
  const parts = [n.query, n.key, n.value].map((x) => encoderInt8Weights(b, `${L}.${x}`, HD, b.hidden));
  const q = new Int8Array(3 * HD * b.hidden);
  const scale = new Float32Array(3 * HD);
  parts.forEach((p, i) => {
    q.set(p.q, i * HD * b.hidden);
    scale.set(i === 0 ? scaled(p.scale, s) : p.scale, i * HD);
  });
  return int8Linear(b.g, h, `${attentionName(b, L)}.qkv`, { q, scale, rows: 3 * HD, cols: b.hidden }, bias);
}

/**
 * HF BertSelfAttention with `heads` heads: softmax(q k^T / sqrt(D) + mask) v, the heads merged
 * back to [B, S, heads * D]. q, k and v come from one fused MatMul (int8: one fused int8 linear), the query part
 * pre-scaled by 1 / sqrt(D).
 * No output when the layer has no head left.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertSelfAttention.
 */
export function selfAttention(b: BertGraph, h: string, L: string, heads: number): string | undefined {
  if (heads === 0) return undefined;
  const { g, w, headDim: D } = b;
  const n = b.s.linears;
  const HD = heads * D;
  const s = 1 / Math.sqrt(D);
  const bqkv = new Float32Array(3 * HD);
  bqkv.set(scaled(w.get(`${L}.${n.query}.bias`, [HD]), s), 0);
  bqkv.set(w.get(`${L}.${n.key}.bias`, [HD]), HD);
  bqkv.set(w.get(`${L}.${n.value}.bias`, [HD]), 2 * HD);
  const A = attentionName(b, L);
  const qkv = b.int8
    ? int8Qkv(b, h, L, HD, s, bqkv)
    : g.node('Add', `${A}/qkv_add`, [g.node('MatMul', `${A}/qkv_matmul`, [h, fusedQkv(b, L, HD, s)]), g.init(`${A}.qkv.bias`, [3 * HD], bqkv)]);
  // [B, S, 3 * HD] -> [B, S, 3 * heads, D] -> q, k, v [B, S, heads, D]
  const split = g.node('Reshape', `${A}/split_heads`, [qkv, g.ints([0, 0, 3 * heads, D])]);
  const [q, k, v] = g.nodeN('Split', `${A}/qkv_split`, [split], 3, { axis: { i: 2 } });
  const qT = g.node('Transpose', `${A}/q_t`, [q], { perm: { ints: [0, 2, 1, 3] } }); // [B, h, S, D]
  const kT = g.node('Transpose', `${A}/k_t`, [k], { perm: { ints: [0, 2, 3, 1] } }); // [B, h, D, S]
  const vT = g.node('Transpose', `${A}/v_t`, [v], { perm: { ints: [0, 2, 1, 3] } }); // [B, h, S, D]
  const scores = g.node('Add', `${A}/scores_masked`, [g.node('MatMul', `${A}/scores`, [qT, kT]), b.mask()]);
  const probs = g.node('Softmax', `${A}/softmax`, [scores], { axis: { i: -1 } });
  const ctx = g.node('Transpose', `${A}/context_t`, [g.node('MatMul', `${A}/context`, [probs, vT])], { perm: { ints: [0, 2, 1, 3] } });
  return g.node('Reshape', `${A}/merge_heads`, [ctx, g.ints([0, 0, HD])]);
}

/**
 * HF BertSelfOutput: LayerNorm(dense(context) + input). Without heads the dense layer has no
 * input and is its bias alone.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertSelfOutput.
 */
export function selfOutput(b: BertGraph, context: string | undefined, h: string, L: string, heads: number): string {
  const { g, w, hidden: H } = b;
  const name = `${L}.${b.s.linears.attentionOutput}`;
  const dense = context !== undefined ? encoderLinear(b, context, name, H, heads * b.headDim) : g.init(`${name}.bias`, [H], w.get(`${name}.bias`, [H]));
  return layerNorm(b, g.node('Add', `${name}/residual`, [dense, h]), `${L}.${b.s.norms.attention}`);
}

/**
 * HF BertIntermediate: activation(dense(x)), `width` units; no output at width 0.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertIntermediate.
 */
export function intermediate(b: BertGraph, a: string, L: string, width: number): string | undefined {
  if (width === 0) return undefined;
  const name = `${L}.${b.s.linears.intermediate}`;
  return activation(b, encoderLinear(b, a, name, width, b.hidden), `${name}/act`);
}

/**
 * HF BertOutput: LayerNorm(dense(intermediate) + attention output). At FFN width 0 the dense
 * layer is its bias alone.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertOutput.
 */
export function output(b: BertGraph, inter: string | undefined, a: string, L: string, width: number, outputName?: string): string {
  const { g, w, hidden: H } = b;
  const name = `${L}.${b.s.linears.output}`;
  const dense = inter !== undefined ? encoderLinear(b, inter, name, H, width) : g.init(`${name}.bias`, [H], w.get(`${name}.bias`, [H]));
  return layerNorm(b, g.node('Add', `${name}/residual`, [dense, a]), `${L}.${b.s.norms.output}`, outputName);
}

/**
 * HF BertLayer: BertAttention (self-attention, then its output), then the feed-forward
 * (intermediate, output), with this layer's own head count and FFN width. `outputName` names its result
 * (last_hidden_state for the last layer when that is an output).
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertLayer.
 */
export function bertLayer(b: BertGraph, h: string, i: number, info: LayerInfo, outputName?: string): string {
  const L = `${inEncoder(b.s, b.s.layers)}.${i}`;
  const a = selfOutput(b, selfAttention(b, h, L, info.heads), h, L, info.heads);
  return output(b, intermediate(b, a, L, info.intermediateSize), a, L, info.intermediateSize, outputName);
}

/** h[:, 0]: the first token's hidden state, [B, H]. */
function firstToken(b: BertGraph, h: string, name: string): string {
  return b.g.node('Gather', `${name}/first_token`, [h, b.g.ints([0], true)], { axis: { i: 1 } });
}

/**
 * HF BertPooler: tanh(dense(h[:, 0])).
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertPooler.
 */
export function pooler(b: BertGraph, h: string, outputName?: string): string {
  const name = inEncoder(b.s, b.s.pooler ?? 'pooler.dense');
  return b.g.node('Tanh', 'pooler/tanh', [linear(b, firstToken(b, h, 'pooler'), name, b.hidden, b.hidden)], {}, outputName);
}

/**
 * The classification head as "logits" [B, numLabels]: BertForSequenceClassification's classifier(pooled);
 * RoBERTa's classifier.out_proj(tanh(classifier.dense(h[:, 0]))); DistilBERT's
 * classifier(relu(pre_classifier(h[:, 0]))). `pooled`: the pooler's output, for BERT.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertForSequenceClassification
 * (and RobertaClassificationHead, DistilBertForSequenceClassification).
 */
export function classifier(b: BertGraph, h: string, pooled: string | undefined, head: Weights, numLabels: number): string {
  const c = b.s.classifier;
  let x = pooled;
  if (!c.preIsPooler) {
    const pre = linear(b, firstToken(b, h, c.pre), c.pre, b.hidden, b.hidden, { from: head });
    x = b.g.node(c.activation === 'tanh' ? 'Tanh' : 'Relu', `${c.pre}/${c.activation}`, [pre]);
  }
  if (x === undefined) throw new BlockpruneError('E_MISSING_TENSOR', 'ONNX export: the classification model has no pooler');
  return linear(b, x, c.out, numLabels, b.hidden, { from: head, output: 'logits' });
}

/**
 * HF BertForQuestionAnswering's head: qa_outputs(h) split into "start_logits" and
 * "end_logits" [B, S], done as two matrix-vector products [B, S, H] x [H] and a scalar bias each.
 * Mirrors https://github.com/huggingface/transformers/blob/v4.4.2/src/transformers/models/bert/modeling_bert.py class BertForQuestionAnswering.
 */
export function qaOutputs(b: BertGraph, h: string, head: Weights): void {
  const { g, hidden: H } = b;
  const qw = head.get('qa_outputs.weight', [2, H]);
  const qb = head.get('qa_outputs.bias', [2]);
  const ends: Array<[string, number]> = [['start_logits', 0], ['end_logits', 1]];
  for (const [name, j] of ends) {
    const wv = g.init(`qa_outputs.${name}.weight`, [H], qw.slice(j * H, (j + 1) * H));
    const bv = g.init(`qa_outputs.${name}.bias`, [], Float32Array.of(qb[j]));
    g.node('Add', `qa_outputs/${name}_add`, [g.node('MatMul', `qa_outputs/${name}_matmul`, [h, wv]), bv], {}, name);
  }
}
