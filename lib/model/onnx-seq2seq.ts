/**
 * ONNX export of BART and T5 for generation (issue 18), in the three-file layout of HF's (optimum's) exports,
 * built with onnx-graph.ts as native/bart.cc and native/t5.cc compute (transformers 4.4.2, eval mode):
 *
 *   encoder_model.onnx             input_ids, attention_mask [batch, source] -> last_hidden_state [batch, source, d_model]
 *   decoder_model.onnx             input_ids [batch, target], encoder_attention_mask, encoder_hidden_states ->
 *                                  logits [batch, target, vocab], present.{i}.decoder.{key,value} [batch, heads,
 *                                  target, head_dim], present.{i}.encoder.{key,value} [batch, heads, source, head_dim]
 *   decoder_with_past_model.onnx   input_ids [batch, target], encoder_attention_mask,
 *                                  past_key_values.{i}.{decoder,encoder}.{key,value} -> logits,
 *                                  present.{i}.decoder.{key,value} (past + target positions)
 *
 * decoder_model runs the first step (positions from 0: it makes the cross-attention keys and values once);
 * decoder_with_past every later one (positions from the past length). The with-past graph takes no
 * encoder_hidden_states: it reads the source only through the cached encoder keys and values (as optimum's).
 * Target lengths above 1 get the causal mask (teacher forcing); greedy decoding feeds one token per step.
 *
 * T5's relative position bias is computed in the graph (block 0's table, 4.4.2's bucket rule in the same
 * float32 operations as t5_relative_buckets), for query positions past .. past + target - 1, so a caller feeds
 * nothing but ids, masks and the cache. Each attention's head count and each linear's width come from its own
 * weights (compact models), the head size from the config (d_model / heads for BART, d_kv for T5).
 * Self-attention's q|k|v are one MatMul (and the cross k|v one), as the BERT export fuses them.
 */
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, fsyncDir, tempSibling, writeError, writeFileAtomic } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import type { TensorData } from '../runtime/native';
import { GraphBuilder, transposeWeight } from './onnx-graph';
import { activation, layerNorm, Weights } from './onnx-bert';
import { DataType, Dim, graphProto, modelProto, valueInfoProto } from './onnx-messages';

export const SEQ2SEQ_ONNX_FILES = { encoder: 'encoder_model.onnx', decoder: 'decoder_model.onnx', decoderWithPast: 'decoder_with_past_model.onnx' } as const;

/** What a graph needs of the model: its family, config.json and every tensor by HF name. */
export interface Seq2SeqExportSource {
  modelType: 'bart' | 't5';
  config: Record<string, unknown>;
  tensors: Record<string, TensorData>;
}

export interface Seq2SeqOnnxGraph {
  file: string;
  bytes: Uint8Array[];
  length: number;
  inputs: string[];
  outputs: string[];
  nodes: number;
}

/** Inside a graph: the builder, the weights, and the family's sizes and rules. */
interface Ctx {
  g: GraphBuilder;
  w: Weights;
  sd: Record<string, TensorData>;
  t5: boolean;
  hidden: number;
  headDim: number;
  eps: number;
  act: string;
  opset: number;
}

const cfgInt = (c: Record<string, unknown>, key: string, def?: number): number => {
  const x = c[key] ?? def;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new BlockpruneError('E_BAD_CONFIG', `ONNX export: config.json field '${key}' must be an integer >= 0, got ${JSON.stringify(x)}`);
  return x;
};

/** The stored shape of `name` (E_MISSING_TENSOR naming it when the model has none). */
function shapeOf(c: Ctx, name: string): number[] {
  const t = c.sd[name];
  if (!t) throw new BlockpruneError('E_MISSING_TENSOR', `ONNX export: the model has no parameter ${name}`);
  return t.shape;
}

/**
 * x @ [W_0 | W_1 | ...]^T (+ [b_0 | b_1 | ...]) as one MatMul, split back into one output per linear; each
 * weight's rows scaled by `scales[i]` (BART's q scaling folded in: exact for head sizes 16, 64, as in the BERT
 * export). The linears' own widths come from their weights.
 */
function dense(c: Ctx, x: string, names: string[], scales: number[] = names.map(() => 1)): string[] {
  const shapes = names.map((n) => shapeOf(c, `${n}.weight`));
  const inF = shapes[0][1];
  const widths = shapes.map((s) => s[0]);
  const total = widths.reduce((a, b) => a + b, 0);
  const wt = new Float32Array(inF * total);
  const bias = names.every((n) => `${n}.bias` in c.sd) ? new Float32Array(total) : undefined;
  let at = 0;
  names.forEach((n, i) => {
    const part = transposeWeight(c.w.get(`${n}.weight`, [widths[i], inF]), widths[i], inF, scales[i]);
    for (let r = 0; r < inF; r++) wt.set(part.subarray(r * widths[i], (r + 1) * widths[i]), r * total + at);
    bias?.set(c.w.get(`${n}.bias`, [widths[i]]).map((b) => b * scales[i]), at);
    at += widths[i];
  });
  const base = names.length === 1 ? names[0] : `${names[0]}+${names.length - 1}`;
  let y = c.g.node('MatMul', `${base}/matmul`, [x, c.g.init(`${base}.weight_t`, [inF, total], wt)]);
  if (bias) y = c.g.node('Add', `${base}/add`, [y, c.g.init(`${base}.bias`, [total], bias)]);
  return names.length === 1 ? [y] : c.g.nodeN('Split', `${base}/split`, [y, c.g.ints(widths)], names.length, { axis: { i: -1 } });
}

/** [B, T, heads * head_dim] -> [B, heads, T, head_dim]. */
function splitHeads(c: Ctx, x: string, name: string): string {
  return c.g.node('Transpose', `${name}/heads`, [c.g.node('Reshape', `${name}/split`, [x, c.g.ints([0, 0, -1, c.headDim])])], { perm: { ints: [0, 2, 1, 3] } });
}

/** T5LayerNorm: w * x / sqrt(mean(x^2) + eps) (RMS, no bias); BART's nn.LayerNorm. */
function norm(c: Ctx, x: string, name: string): string {
  if (!c.t5) return layerNorm(c, x, name);
  const g = c.g;
  const ms = g.node('ReduceMean', `${name}/mean_square`, [g.node('Mul', `${name}/square`, [x, x])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  const normed = g.node('Div', `${name}/normalize`, [x, g.node('Sqrt', `${name}/rms`, [g.node('Add', `${name}/eps`, [ms, g.scalar(c.eps)])])]);
  return g.node('Mul', name, [normed, g.init(`${name}.weight`, [c.hidden], c.w.get(`${name}.weight`, [c.hidden]))]);
}

/**
 * softmax(q k^T + bias) v through the output linear `o`: q [B, H, T, Dh], k and v [B, H, K, Dh], bias
 * broadcastable to [B, H, T, K]. Returns [B, T, d_model].
 */
function attend(c: Ctx, q: string, k: string, v: string, bias: string, o: string): string {
  const g = c.g;
  const scores = g.node('Add', `${o}/scores`, [g.node('MatMul', `${o}/qk`, [q, g.node('Transpose', `${o}/k_t`, [k], { perm: { ints: [0, 1, 3, 2] } })]), bias]);
  const ctx = g.node('MatMul', `${o}/pv`, [g.node('Softmax', `${o}/softmax`, [scores], { axis: { i: -1 } }), v]);
  const merged = g.node('Reshape', `${o}/merge`, [g.node('Transpose', `${o}/unheads`, [ctx], { perm: { ints: [0, 2, 1, 3] } }), g.ints([0, 0, -1])]);
  return dense(c, merged, [o])[0];
}

/** The family's names of one decoder layer's modules. */
function names(c: Ctx, stack: 'encoder' | 'decoder', i: number) {
  if (c.t5) {
    const p = `${stack}.block.${i}.layer.`;
    const ffn = `${p}${stack === 'decoder' ? 2 : 1}.`;
    return {
      self: ['q', 'k', 'v', 'o'].map((n) => `${p}0.SelfAttention.${n}`),
      selfNorm: `${p}0.layer_norm`,
      cross: ['q', 'k', 'v', 'o'].map((n) => `${p}1.EncDecAttention.${n}`),
      crossNorm: `${p}1.layer_norm`,
      ffnNorm: `${ffn}layer_norm`,
      ffn: `${ffn}DenseReluDense.`,
    };
  }
  const p = `model.${stack}.layers.${i}.`;
  return {
    self: ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((n) => `${p}self_attn.${n}`),
    selfNorm: `${p}self_attn_layer_norm`,
    cross: ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((n) => `${p}encoder_attn.${n}`),
    crossNorm: `${p}encoder_attn_layer_norm`,
    ffnNorm: `${p}final_layer_norm`,
    ffn: p,
  };
}

/** The FFN: BART fc2(act(fc1)); T5 wo(relu(wi)), or gated wo(gelu_new(wi_0) * wi_1). */
function ffn(c: Ctx, x: string, p: string): string {
  const g = c.g;
  if (!c.t5) return dense(c, activation(c, dense(c, x, [`${p}fc1`])[0], `${p}act`), [`${p}fc2`])[0];
  if (!(`${p}wi_0.weight` in c.sd)) return dense(c, g.node('Relu', `${p}relu`, [dense(c, x, [`${p}wi`])[0]]), [`${p}wo`])[0];
  const [h0, h1] = dense(c, x, [`${p}wi_0`, `${p}wi_1`]);
  return dense(c, g.node('Mul', `${p}gate`, [activation({ g, act: 'gelu_new' }, h0, `${p}gelu`), h1]), [`${p}wo`])[0];
}

/** A residual sublayer: BART post-LN, LN(x + f(x)); T5 pre-LN, x + f(LN(x)). */
function sublayer(c: Ctx, x: string, normName: string, f: (h: string) => string): string {
  if (c.t5) return c.g.node('Add', `${normName}/residual`, [x, f(norm(c, x, normName))]);
  return norm(c, c.g.node('Add', `${normName}/residual`, [x, f(x)]), normName);
}

/** One self-attention: returns its output and the full keys / values (past + new) it attended to. */
function selfAttention(c: Ctx, x: string, n: string[], bias: string, past?: [string, string], present?: [string, string]) {
  const scale = c.t5 ? 1 : c.headDim ** -0.5;
  const [q, k, v] = dense(c, x, n.slice(0, 3), [scale, 1, 1]).map((t, j) => splitHeads(c, t, n[j]));
  const full = (t: string, j: number) => (past ? c.g.node('Concat', `${n[j + 1]}/present`, [past[j], t], { axis: { i: 2 } }, present?.[j]) : c.g.node('Identity', `${n[j + 1]}/present`, [t], {}, present?.[j]));
  const [K, V] = [full(k, 0), full(v, 1)];
  return { out: attend(c, q, K, V, bias, n[3]) };
}

/** Positions [from, to) as int64. */
function range(c: Ctx, from: string, to: string, name: string): string {
  return c.g.node('Range', name, [from, to, c.g.ints([1], true)]);
}

/**
 * T5's relative position bias [1, H, Q, K] of query positions `qpos` [Q] against keys `kpos` [K] from the
 * table `table` [buckets, H]: 4.4.2's _relative_position_bucket (max_distance 128), as t5_relative_buckets.
 */
function relativeBias(c: Ctx, table: string, qpos: string, kpos: string, bidirectional: boolean, name: string): string {
  const g = c.g;
  const [buckets, H] = shapeOf(c, table);
  const tab = g.init(table, [buckets, H], c.w.get(table, [buckets, H]));
  const rel = g.node('Sub', `${name}/rel`, [g.node('Unsqueeze', `${name}/k`, [kpos, g.ints([0])]), g.node('Unsqueeze', `${name}/q`, [qpos, g.ints([1])])]);
  let n = buckets;
  let r: string;
  let base: string | undefined;
  if (bidirectional) {
    n = Math.floor(n / 2);
    base = g.node('Mul', `${name}/side`, [g.node('Cast', `${name}/after`, [g.node('Greater', `${name}/gt0`, [rel, g.ints([0], true)])], { to: { i: DataType.INT64 } }), g.ints([n], true)]);
    r = g.node('Abs', `${name}/abs`, [rel]);
  } else {
    r = g.node('Max', `${name}/before`, [g.node('Neg', `${name}/neg`, [rel]), g.ints([0], true)]);
  }
  const exact = Math.floor(n / 2);
  // Far positions: log-spaced buckets (float32, as 4.4.2); r < exact never reads them (Max keeps log finite).
  const rf = g.node('Cast', `${name}/float`, [g.node('Max', `${name}/far`, [r, g.ints([exact], true)])], { to: { i: DataType.FLOAT } });
  const logd = g.node('Div', `${name}/logdiv`, [g.node('Log', `${name}/log`, [g.node('Div', `${name}/ratio`, [rf, g.scalar(exact)])]), g.scalar(Math.fround(Math.log(128 / exact)))]);
  const far = g.node('Cast', `${name}/trunc`, [g.node('Mul', `${name}/spread`, [logd, g.scalar(n - exact)])], { to: { i: DataType.INT64 } });
  const large = g.node('Min', `${name}/clamp`, [g.node('Add', `${name}/offset`, [far, g.ints([exact], true)]), g.ints([n - 1], true)]);
  let bucket = g.node('Where', `${name}/bucket`, [g.node('Less', `${name}/near`, [r, g.ints([exact], true)]), r, large]);
  if (base) bucket = g.node('Add', `${name}/buckets`, [base, bucket]);
  const looked = g.node('Gather', `${name}/lookup`, [tab, bucket], { axis: { i: 0 } });
  return g.node('Unsqueeze', name, [g.node('Transpose', `${name}/hqk`, [looked], { perm: { ints: [2, 0, 1] } }), g.ints([0])]);
}

/** An int64 [B, S] 0/1 mask as an additive [B, 1, 1, S] bias: `fill` where 0 (BART finfo.min, T5 -1e4 / -1e9). */
function paddingBias(c: Ctx, mask: string, fill: number, name: string): string {
  const g = c.g;
  const m = g.node('Unsqueeze', `${name}/unsqueeze`, [mask, g.ints([1, 2])]);
  return g.node('Where', name, [g.node('Equal', `${name}/is_pad`, [m, g.ints([0], true)]), g.scalar(fill), g.scalar(0)]);
}

const F32_LOWEST = -3.4028234663852886e38;

/** The stack's token embedding (+ BART's learned positions from `from` and layernorm_embedding). */
function embed(c: Ctx, ids: string, stack: 'encoder' | 'decoder', from: string, len: string, config: Record<string, unknown>): string {
  const g = c.g;
  const table = c.t5 ? 'shared.weight' : 'model.shared.weight';
  const [V, D] = shapeOf(c, table);
  const shared = g.init(table, [V, D], c.w.get(table, [V, D]));
  let e = g.node('Gather', `${stack}/embed_tokens`, [shared, ids], { axis: { i: 0 } });
  if (c.t5) return e;
  if (config.scale_embedding === true) e = g.node('Mul', `${stack}/embed_scale`, [e, g.scalar(Math.sqrt(D))]);
  const posName = `model.${stack}.embed_positions.weight`;
  const [P] = shapeOf(c, posName);
  const pos = g.init(posName, [P, D], c.w.get(posName, [P, D]));
  // BartLearnedPositionalEmbedding: rows 2 + position (the fixed offset 2).
  const start = g.node('Add', `${stack}/pos_start`, [from, g.ints([2])]);
  const positions = g.node('Slice', `${stack}/positions`, [pos, start, g.node('Add', `${stack}/pos_end`, [start, len]), g.ints([0])]);
  return layerNorm(c, g.node('Add', `${stack}/add_positions`, [e, positions]), `model.${stack}.layernorm_embedding`);
}

function layerCount(c: Ctx, stack: 'encoder' | 'decoder'): number {
  let n = 0;
  while (`${names(c, stack, n).self[0]}.weight` in c.sd) n++;
  return n;
}

function context(src: Seq2SeqExportSource, opset: number): Ctx {
  const cfg = src.config;
  const t5 = src.modelType === 't5';
  const hidden = cfgInt(cfg, 'd_model');
  const heads = t5 ? 0 : cfgInt(cfg, 'decoder_attention_heads');
  return {
    g: new GraphBuilder(),
    w: new Weights(src.tensors, ''),
    sd: src.tensors,
    t5,
    hidden,
    headDim: t5 ? cfgInt(cfg, 'd_kv') : hidden / heads,
    eps: t5 ? ((cfg.layer_norm_epsilon as number | undefined) ?? 1e-6) : 1e-5,
    act: (cfg.activation_function as string | undefined) ?? 'gelu',
    opset,
  };
}

function finish(c: Ctx, src: Seq2SeqExportSource, file: string, inputs: Array<[string, number, Dim[]]>, outputs: Array<[string, Dim[]]>, opset: number, doc: string): Seq2SeqOnnxGraph {
  const graph = graphProto({
    name: file.replace('.onnx', ''),
    docString: doc,
    nodes: c.g.nodes,
    initializers: c.g.initializers,
    inputs: inputs.map(([n, type, dims]) => valueInfoProto(n, type, dims)),
    outputs: outputs.map(([n, dims]) => valueInfoProto(n, DataType.FLOAT, dims)),
  });
  const m = modelProto({
    irVersion: 8,
    producerName: 'blockprune',
    producerVersion: '',
    domain: 'blockprune',
    modelVersion: 1,
    docString: doc,
    graph,
    opset,
    metadata: { model_type: src.modelType, config: JSON.stringify(src.config) },
  });
  const bytes = m.finish();
  if (m.length > 2 ** 31 - 1) throw new BlockpruneError('E_INVALID_ARG', `${file} would be ${m.length} bytes, over protobuf's 2 GiB limit (external data is not supported)`);
  return { file, bytes, length: m.length, inputs: inputs.map(([n]) => n), outputs: outputs.map(([n]) => n), nodes: c.g.nodes.length };
}

const B = 'batch';
const S = 'encoder_sequence_length';
const T = 'decoder_sequence_length';

/** encoder_model.onnx. */
export function encoderGraph(src: Seq2SeqExportSource, opset: number): Seq2SeqOnnxGraph {
  const c = context(src, opset);
  const g = c.g;
  const len = g.node('Shape', 'encoder/seq_len', ['input_ids'], { start: { i: 1 }, end: { i: 2 } });
  let h = embed(c, 'input_ids', 'encoder', g.ints([0]), len, src.config);
  let bias = paddingBias(c, 'attention_mask', c.t5 ? -10000 : F32_LOWEST, 'encoder/mask');
  if (c.t5) {
    const pos = range(c, g.ints([0], true), g.node('Squeeze', 'encoder/len', [len, g.ints([0])]), 'encoder/positions');
    bias = g.node('Add', 'encoder/bias', [relativeBias(c, 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', pos, pos, true, 'encoder/position_bias'), bias]);
  }
  const L = layerCount(c, 'encoder');
  for (let i = 0; i < L; i++) {
    const n = names(c, 'encoder', i);
    h = sublayer(c, h, n.selfNorm, (x) => selfAttention(c, x, n.self, bias).out);
    h = sublayer(c, h, n.ffnNorm, (x) => ffn(c, x, n.ffn));
  }
  const out = c.t5 ? norm(c, h, 'encoder.final_layer_norm') : h;
  g.node('Identity', 'last_hidden_state', [out], {}, 'last_hidden_state');
  return finish(c, src, SEQ2SEQ_ONNX_FILES.encoder, [['input_ids', DataType.INT64, [B, S]], ['attention_mask', DataType.INT64, [B, S]]], [['last_hidden_state', [B, S, c.hidden]]], opset, `${src.modelType} encoder, ${L} layers`);
}

/** decoder_model.onnx (withPast false) or decoder_with_past_model.onnx. */
export function decoderGraph(src: Seq2SeqExportSource, opset: number, withPast: boolean): Seq2SeqOnnxGraph {
  const c = context(src, opset);
  const g = c.g;
  const L = layerCount(c, 'decoder');
  const pastName = (i: number, kind: 'decoder' | 'encoder', kv: 'key' | 'value') => `past_key_values.${i}.${kind}.${kv}`;
  const presentName = (i: number, kind: 'decoder' | 'encoder', kv: 'key' | 'value') => `present.${i}.${kind}.${kv}`;
  const len = g.node('Shape', 'decoder/target_len', ['input_ids'], { start: { i: 1 }, end: { i: 2 } });
  const past = withPast ? g.node('Shape', 'decoder/past_len', [pastName(0, 'decoder', 'key')], { start: { i: 2 }, end: { i: 3 } }) : g.ints([0]);
  const total = g.node('Add', 'decoder/total_len', [past, len]);
  const scalar = (x: string, name: string) => g.node('Squeeze', name, [x, g.ints([0])]);
  const qpos = range(c, scalar(past, 'decoder/past'), scalar(total, 'decoder/total'), 'decoder/query_positions');
  const kpos = range(c, g.ints([0], true), scalar(total, 'decoder/total_s'), 'decoder/key_positions');
  // Causal: a query sees keys up to its own position (all of them when one token is fed).
  const future = g.node('Greater', 'decoder/future', [g.node('Unsqueeze', 'decoder/kpos', [kpos, g.ints([0])]), g.node('Unsqueeze', 'decoder/qpos', [qpos, g.ints([1])])]);
  let selfBias = g.node('Where', 'decoder/causal', [future, g.scalar(c.t5 ? -10000 : -Infinity), g.scalar(0)]);
  if (c.t5) selfBias = g.node('Add', 'decoder/self_bias', [relativeBias(c, 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', qpos, kpos, false, 'decoder/position_bias'), selfBias]);
  const crossBias = paddingBias(c, 'encoder_attention_mask', c.t5 ? -1e9 : F32_LOWEST, 'decoder/cross_mask');

  let h = embed(c, 'input_ids', 'decoder', past, len, src.config);
  const inputs: Array<[string, number, Dim[]]> = [['input_ids', DataType.INT64, [B, T]], ['encoder_attention_mask', DataType.INT64, [B, S]]];
  if (!withPast) inputs.push(['encoder_hidden_states', DataType.FLOAT, [B, S, c.hidden]]);
  const outputs: Array<[string, Dim[]]> = [['logits', [B, T, shapeOf(c, c.t5 ? 'shared.weight' : 'model.shared.weight')[0]]]];
  const PAST = 'past_decoder_sequence_length';
  for (let i = 0; i < L; i++) {
    const n = names(c, 'decoder', i);
    const heads = (name: string) => shapeOf(c, `${name}.weight`)[0] / c.headDim;
    const [sh, ch] = [heads(n.self[0]), heads(n.cross[0])];
    const selfPast = withPast ? ([pastName(i, 'decoder', 'key'), pastName(i, 'decoder', 'value')] as [string, string]) : undefined;
    const selfPresent: [string, string] = [presentName(i, 'decoder', 'key'), presentName(i, 'decoder', 'value')];
    if (selfPast) for (const p of selfPast) inputs.push([p, DataType.FLOAT, [B, sh, PAST, c.headDim]]);
    for (const p of selfPresent) outputs.push([p, [B, sh, withPast ? `${PAST} + ${T}` : T, c.headDim]]);
    h = sublayer(c, h, n.selfNorm, (x) => selfAttention(c, x, n.self, selfBias, selfPast, selfPresent).out);
    // Cross keys and values: made from the encoder output by the first step, then fed back.
    let kv: string[];
    if (withPast) {
      kv = [pastName(i, 'encoder', 'key'), pastName(i, 'encoder', 'value')];
      for (const p of kv) inputs.push([p, DataType.FLOAT, [B, ch, S, c.headDim]]);
    } else {
      const enc = dense(c, 'encoder_hidden_states', n.cross.slice(1, 3)).map((t, j) => splitHeads(c, t, n.cross[j + 1]));
      kv = enc.map((t, j) => g.node('Identity', `${n.cross[j + 1]}/present`, [t], {}, presentName(i, 'encoder', j ? 'value' : 'key')));
      for (const p of kv) outputs.push([p, [B, ch, S, c.headDim]]);
    }
    h = sublayer(c, h, n.crossNorm, (x) => {
      const q = splitHeads(c, dense(c, x, [n.cross[0]], [c.t5 ? 1 : c.headDim ** -0.5])[0], n.cross[0]);
      return attend(c, q, kv[0], kv[1], crossBias, n.cross[3]);
    });
    h = sublayer(c, h, n.ffnNorm, (x) => ffn(c, x, n.ffn));
  }
  // The LM head: BART tied + final_logits_bias; T5 tied after d_model^-0.5, or its own lm_head.
  if (c.t5) h = norm(c, h, 'decoder.final_layer_norm');
  const tiedName = c.t5 ? 'shared.weight' : 'model.shared.weight';
  const untied = c.t5 && src.config.tie_word_embeddings === false;
  if (c.t5 && !untied) h = g.node('Mul', 'lm_head/scale', [h, g.scalar(c.hidden ** -0.5)]);
  const [V, D] = shapeOf(c, untied ? 'lm_head.weight' : tiedName);
  const head = g.init('lm_head.weight_t', [D, V], transposeWeight(c.w.get(untied ? 'lm_head.weight' : tiedName, [V, D]), V, D));
  const logits = g.node('MatMul', 'lm_head', [h, head], {}, c.t5 ? 'logits' : undefined);
  if (!c.t5) g.node('Add', 'final_logits_bias/add', [logits, g.init('final_logits_bias', [V], c.w.get('final_logits_bias', [1, V]))], {}, 'logits');
  const file = withPast ? SEQ2SEQ_ONNX_FILES.decoderWithPast : SEQ2SEQ_ONNX_FILES.decoder;
  return finish(c, src, file, inputs, outputs, opset, `${src.modelType} decoder${withPast ? ' with past' : ''}, ${L} layers`);
}

export interface Seq2SeqOnnxReport {
  /** The absolute directory written. */
  dir: string;
  opset: number;
  /** Per file (SEQ2SEQ_ONNX_FILES): its inputs, outputs, node count and size. */
  files: Array<{ file: string; inputs: string[]; outputs: string[]; nodes: number; bytes: number }>;
  /** T5: 'graph' (computed in decoder graphs from the past length); BART: 'none' (learned positions). */
  positionBias: 'graph' | 'none';
}

/**
 * Writes the three graphs of `src` into `dir` (created when absent; other files there are left alone). Each is
 * written whole to a temporary sibling and fsynced first; the three renames come last, together, so a failed or
 * killed export leaves the previous files (or none), never a truncated one.
 */
export async function writeSeq2SeqOnnx(dir: string, src: Seq2SeqExportSource, opset: number): Promise<Seq2SeqOnnxReport> {
  const graphs = [encoderGraph(src, opset), decoderGraph(src, opset, false), decoderGraph(src, opset, true)];
  ensureDir(dir);
  const staged: Array<[string, string]> = [];
  try {
    for (const gr of graphs) {
      const final = join(dir, gr.file);
      staged.push([tempSibling(final), final]);
      await writeFileAtomic(staged[staged.length - 1][0], gr.bytes);
    }
  } catch (e) {
    for (const [tmp] of staged) rmSync(tmp, { force: true });
    throw e;
  }
  for (const [tmp, final] of staged) {
    try {
      renameSync(tmp, final);
    } catch (e) {
      throw writeError(e, 'cannot rename onto', final);
    }
  }
  fsyncDir(dir);
  return {
    dir,
    opset,
    files: graphs.map((gr) => ({ file: gr.file, inputs: gr.inputs, outputs: gr.outputs, nodes: gr.nodes, bytes: gr.length })),
    positionBias: src.modelType === 't5' ? 'graph' : 'none',
  };
}
