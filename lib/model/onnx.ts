/**
 * exportOnnx: a BertModel (dense, head-pruned or compacted with per-layer sizes) as an ONNX file, with no
 * dependency. The graph reproduces the native forward (HF transformers 4.x BERT in eval mode), built one HF
 * module at a time (onnx-bert.ts) and written with our protobuf writer (onnx-messages.ts, runtime/protobuf.ts):
 *
 *   embeddings  LayerNorm(word[ids] + token_type[types] + position[0..S)), by family (no token types in
 *               DistilBERT; RoBERTa's positions from input_ids)
 *   mask        (1 - attention_mask) * -10000, as [B, 1, 1, S]
 *   per layer   one fused q|k|v MatMul, heads split to [B, H, S, D], softmax(q k^T / sqrt(D) + mask) v,
 *               output dense, LayerNorm(x + input); FFN dense, activation, dense, LayerNorm(x + attention)
 *   heads       pooler tanh(dense(h[:, 0])), the family's classifier, or qa_outputs split into start/end logits
 */
import { resolve } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import type { BertModel, Task } from './model';
import { packageVersion } from '../runtime/native';
import * as v from '../runtime/validate';
import { bertLayer, BertGraph, classifier, embeddings, extendedMask, inEncoder, pooler, qaOutputs, Weights } from './onnx-bert';
import { GraphBuilder } from './onnx-graph';
import { DataType, Dim, graphProto, modelProto, valueInfoProto } from './onnx-messages';

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
  /** Extra key/value pairs for the model's metadata_props (beside "task", "config", "labels" and "quantization"). */
  metadata?: Record<string, string>;
  /**
   * 'int8': the six linears of every encoder layer (query, key, value, attention output, intermediate,
   * output) are written quantized, in standard ops onnxruntime runs (onnx-int8.ts): int8 weights, symmetric,
   * by native/fast/quant.h's rule; activations quantized per token at run time (ReduceMax, Round, Clip, Cast),
   * MatMulInteger, then Cast and Mul by the scales, plus the bias. Embeddings, LayerNorm, softmax, the pooler
   * and the heads stay float32. Default: none (float32 throughout). A model quantized by
   * `model.quantize({ dtype: 'int8' })` is always written so, with its own integers and scales (this option may
   * be left out); a bf16 model is written in float32 with its bf16-rounded weights (onnxruntime's CPU provider
   * has no bf16 MatMul).
   */
  quantize?: 'int8';
  /** With quantize 'int8': one weight scale per output channel (default true) or one per weight tensor (false). */
  perChannel?: boolean;
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
  /** 'int8' when the encoder linears were written quantized (options.quantize, or an int8 model), else 'none'. */
  quantize: 'int8' | 'none';
}

/** What onnxruntime >= 1.14 reads (opset 17 needs IR 8). */
const IR_VERSION = 8;
const MIN_OPSET = 14;
const MAX_OPSET = 17;
/** A protobuf message cannot be larger than 2 GiB - 1 (no external data here). */
const MAX_PROTO_BYTES = 2 ** 31 - 1;

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
  v.options('options', v.object('options', options), ['opset', 'extras', 'metadata', 'quantize', 'perChannel']);
  const opset = v.integer('options.opset', options.opset ?? MAX_OPSET, { min: MIN_OPSET, max: MAX_OPSET });
  if (options.extras !== undefined) v.boolean('options.extras', options.extras);
  if (options.metadata !== undefined && (!v.is.object(options.metadata) || Object.values(options.metadata).some((x) => typeof x !== 'string')))
    throw v.invalidParameterError('options.metadata', 'an object of string values', options.metadata);
  const quantize = options.quantize === undefined ? undefined : v.oneOf('options.quantize', options.quantize, ['int8'] as const);
  if (options.perChannel !== undefined) {
    v.boolean('options.perChannel', options.perChannel);
    if (!quantize) throw v.invalidParameterError('options.perChannel', "no value (it applies to quantize 'int8' only)", options.perChannel, 'range');
  }
  // A model quantized to int8 (model.quantize) is written with its own integers and scales, whatever the
  // options say; a perChannel that contradicts how it was quantized is refused.
  const fromModel = model.dtype === 'int8';
  const modelPerChannel = fromModel && (model.config.quantization_config as { weights?: string } | undefined)?.weights !== 'symmetric-per-tensor';
  if (fromModel && options.perChannel !== undefined && options.perChannel !== modelPerChannel)
    throw v.invalidParameterError('options.perChannel', `${modelPerChannel} (the model's int8 weights are quantized ${modelPerChannel ? 'per channel' : 'per tensor'})`, options.perChannel, 'range');
  const int8 = quantize || fromModel ? { perChannel: fromModel ? modelPerChannel : (options.perChannel ?? true), fromModel } : undefined;

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
  const dims = model.dimensions;
  const s = model.structure;
  const H = dims.hiddenSize;
  const D = dims.headDim;
  // DistilBERT's LayerNorm eps is fixed (1e-12) and its activation is "activation".
  const eps = (config.layer_norm_eps as number | undefined) ?? 1e-12;
  const act = (config.hidden_act as string | undefined) ?? (config.activation as string | undefined) ?? 'gelu';
  const posType = config.position_embedding_type;
  if (posType !== undefined && posType !== 'absolute')
    throw new BlockpruneError('E_BAD_CONFIG', `ONNX export supports position_embedding_type "absolute" only, not "${String(posType)}"`);
  const extras = task === 'bare' || options.extras === true;
  const prefix = `${s.prefix}.embeddings.word_embeddings.weight` in sd ? `${s.prefix}.` : '';
  const w = new Weights(sd, prefix);
  const head = new Weights(sd, '');
  const maxPos = dims.maxPositions;
  const numLabels = task === 'text-classification' ? dims.numLabels : 0;

  const g = new GraphBuilder();
  const BATCH = 'batch';
  const SEQ = 'sequence';
  // The mask is built once, when the first layer with heads needs it.
  let mask: string | undefined;
  const b: BertGraph = { g, s, w, hidden: H, headDim: D, eps, act, opset, int8, mask: () => (mask ??= extendedMask(g)) };

  let h = embeddings(b, { vocab: dims.vocabSize, typeVocab: dims.typeVocabSize, maxPos, padId: dims.padTokenId });
  // The last layer's output is last_hidden_state when that is an output.
  layers.forEach((info, i) => (h = bertLayer(b, h, i, info, extras && i === layers.length - 1 ? 'last_hidden_state' : undefined)));

  const outputs: Array<[string, Dim[]]> = [];
  const hasPooler = s.pooler !== undefined && w.has(`${inEncoder(s, s.pooler)}.weight`);
  const pooled = hasPooler ? pooler(b, h, extras ? 'pooler_output' : undefined) : undefined;
  if (extras) {
    if (h !== 'last_hidden_state') h = g.node('Identity', 'last_hidden_state', [h], {}, 'last_hidden_state'); // no layer
    outputs.push(['last_hidden_state', [BATCH, SEQ, H]]);
    if (pooled) outputs.push(['pooler_output', [BATCH, H]]);
  }
  if (task === 'text-classification') {
    classifier(b, h, pooled, head, numLabels);
    outputs.unshift(['logits', [BATCH, numLabels]]);
  } else if (task === 'question-answering') {
    qaOutputs(b, h, head);
    outputs.unshift(['start_logits', [BATCH, SEQ]], ['end_logits', [BATCH, SEQ]]);
  }

  // DistilBERT has no token types: its graph takes none (as its tokenizer gives none).
  const inputs = s.tokenTypes ? ['input_ids', 'attention_mask', 'token_type_ids'] : ['input_ids', 'attention_mask'];
  const graph = graphProto({
    name: `blockprune_${task.replace(/-/g, '_')}`,
    docString: `${model.family} (${task}) exported by blockprune: ${layers.length} layers, heads [${layers.map((l) => l.heads)}], FFN widths [${layers.map((l) => l.intermediateSize)}]`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: inputs.map((name) => valueInfoProto(name, DataType.INT64, [BATCH, SEQ])),
    outputs: outputs.map(([name, dims]) => valueInfoProto(name, DataType.FLOAT, dims)),
  });
  const labels = Array.from({ length: numLabels }, (_, i) => config.id2label?.[String(i)] ?? `LABEL_${i}`);
  const m = modelProto({
    irVersion: IR_VERSION,
    producerName: 'blockprune',
    producerVersion: packageVersion(),
    domain: 'blockprune',
    modelVersion: 1,
    docString: `${model.family} ${task}; inputs int64 [batch, sequence], sequence <= ${dims.maxSequenceLength}`,
    graph,
    opset,
    metadata: { task, config: JSON.stringify(config), ...(labels.length ? { labels: JSON.stringify(labels) } : {}), ...(int8 ? { quantization: quantizationNote(int8.perChannel) } : {}), ...options.metadata },
  });
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
    quantize: int8 ? 'int8' : 'none',
  };
}

/** metadata_props "quantization" of an int8 export: what a reader needs to know the numbers' rule. */
function quantizationNote(perChannel: boolean): string {
  return JSON.stringify({
    dtype: 'int8',
    layers: 'encoder linears (query, key, value, attention output, intermediate, output)',
    weights: `symmetric int8, ${perChannel ? 'per output channel' : 'per tensor'}, scale = max|w| / 127, round half to even`,
    activations: 'dynamic, symmetric int8 per token (row), scale = max|x| / 127, stored as uint8 with zero point 128',
  });
}
