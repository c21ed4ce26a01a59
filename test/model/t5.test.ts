/**
 * T5ForConditionalGeneration (issue 18) against transformers 4.4.2 on ../shared/fixtures/t5-tiny (see its README):
 * every forward output, the derived decoder inputs, the relative position buckets and biases (read back through
 * the attention maps of a model whose queries are zero), bad checkpoints, bad configs and bad ids.
 */
import type { ExecutionContext } from 'ava';
import { Seq2SeqModel, Seq2SeqInputs } from '../../lib/model/seq2seq';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, maxAbsDiff } from '../helpers';
import { f32, fixture, gatedGelu, inputs, modelCopy, t5Test, Weights, zerosLike } from './t5-fixture';

// README: forward outputs (logits, loss, hidden states, attentions) atol 1e-5; its fp64 reference puts fp32
// 4.4.2 within 4.3e-6 of the exact values, so 1e-5 leaves room for a different summation order.
const ATOL = 1e-5;

/** The weights with every self-attention query zero: scores are then the position bias plus the mask alone. */
function zeroQueries(w: Weights): Weights {
  const out = { ...w };
  for (const k of Object.keys(w)) if (/SelfAttention\.q\.weight$/.test(k)) out[k] = zerosLike(w[k]);
  return out;
}

t5Test('t5-tiny: logits, loss, encoder output, every hidden state and attention map (4.4.2 parity)', async (t) => {
  const { dir, io } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(dir);
  const info = model.info;
  t.like(info, { modelType: 't5', architecture: 'T5ForConditionalGeneration', vocabSize: 1024, dModel: 64, encoderLayers: 2, decoderLayers: 2, heads: 4 });
  t.like(info, { padTokenId: 0, eosTokenId: 1, decoderStartTokenId: 0, numParameters: 230_208 }); // README: 230,208 (shared once)
  const out = await model.forward(inputs(io), { hiddenStates: true, attentions: true });
  const names = ['logits', 'loss', 'encoder_last_hidden_state'];
  for (let i = 0; i <= 2; i++) names.push(`encoder_hidden_states.${i}`, `decoder_hidden_states.${i}`);
  for (let i = 0; i < 2; i++) names.push(`encoder_attentions.${i}`, `decoder_attentions.${i}`, `cross_attentions.${i}`);
  t.deepEqual(Object.keys(out).sort(), [...names].sort());
  for (const k of names) expectClose(t, k, out[k], io[k], ATOL);
  // Without flags: only the three outputs.
  const plain = await model.forward(inputs(io));
  t.deepEqual(Object.keys(plain).sort(), ['encoder_last_hidden_state', 'logits', 'loss']);
  t.is(maxAbsDiff(plain.logits.data as Float32Array, out.logits.data as Float32Array), 0);
  model.dispose();
});

t5Test('t5-tiny: decoder inputs shifted from labels equal the stored decoder_input_ids', async (t) => {
  const { dir, io } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(dir);
  const derived = await model.forward(inputs(io));
  const given = await model.forward(inputs(io, { decoderInputIds: io.decoder_input_ids.data as BigInt64Array }));
  const noLabels = await model.forward(inputs(io, { decoderInputIds: io.decoder_input_ids.data as BigInt64Array, labels: undefined }));
  t.is(maxAbsDiff(derived.logits.data as Float32Array, given.logits.data as Float32Array), 0);
  t.is(maxAbsDiff(derived.logits.data as Float32Array, noLabels.logits.data as Float32Array), 0);
  t.is((derived.loss.data as Float32Array)[0], (given.loss.data as Float32Array)[0]);
  t.false('loss' in noLabels);
  // A different decoder input changes the logits: the derived one is really used.
  const other = BigInt64Array.from(io.decoder_input_ids.data as BigInt64Array, (v) => (v + 5n) % 1024n);
  const changed = await model.forward(inputs(io, { decoderInputIds: other }));
  t.true(maxAbsDiff(derived.logits.data as Float32Array, changed.logits.data as Float32Array) > 1e-3);
  model.dispose();
});

/** softmax over the last axis of [.., n] in float64. */
function softmaxRows(x: Float64Array, n: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length; r += n) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[r + j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += out[r + j] = Math.exp(x[r + j] - m);
    for (let j = 0; j < n; j++) out[r + j] /= s;
  }
  return out;
}

/** softmax(bias [1,H,Q,K] + mask(b, q, k)) for every row b: the attention map of a block whose queries are zero. */
function expectedProbs(bias: TensorData, batch: number, mask: (b: number, q: number, k: number) => number): Float64Array {
  const [, H, Q, K] = bias.shape;
  const x = new Float64Array(batch * H * Q * K);
  const bd = bias.data as Float32Array;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < H; h++)
      for (let q = 0; q < Q; q++) for (let k = 0; k < K; k++) x[((b * H + h) * Q + q) * K + k] = bd[(h * Q + q) * K + k] + mask(b, q, k);
  return softmaxRows(x, K);
}

function expectProbs(t: ExecutionContext, name: string, actual: TensorData, expected: Float64Array, atol: number) {
  const d = maxAbsDiff(actual.data as Float32Array, expected);
  t.log(`${name}: max |diff| = ${d.toExponential(3)} (atol ${atol})`);
  t.true(d <= atol, `${name}: ${d} > ${atol}`);
}

t5Test('t5-tiny: block 0 position biases (encoder_position_bias, decoder_position_bias) are shared by every block of the stack', async (t) => {
  const { dir, io, weights } = await fixture();
  const tmp = modelCopy(dir, zeroQueries(weights));
  t.teardown(tmp.cleanup);
  const model = await Seq2SeqModel.fromPretrained(tmp.path);
  const out = await model.forward(inputs(io), { attentions: true });
  const am = io.attention_mask.data as BigInt64Array;
  const [B, S] = io.input_ids.shape;
  const enc = expectedProbs(io.encoder_position_bias, B, (b, _q, k) => (am[b * S + k] ? 0 : -10000));
  const dec = expectedProbs(io.decoder_position_bias, B, (_b, q, k) => (k <= q ? 0 : -10000));
  // The biases are O(1) N(0,1) table entries: 1e-6 is float32 rounding of probabilities <= 1.
  for (const i of [0, 1]) {
    expectProbs(t, `encoder_attentions.${i} = softmax(encoder_position_bias + mask)`, out[`encoder_attentions.${i}`], enc, 1e-6);
    expectProbs(t, `decoder_attentions.${i} = softmax(decoder_position_bias + causal)`, out[`decoder_attentions.${i}`], dec, 1e-6);
  }
  model.dispose();
});

t5Test('t5-tiny: relative position buckets for -300..300 equal rel_buckets_bidirectional / _unidirectional', async (t) => {
  const { dir, io, weights } = await fixture();
  // relative_attention_bias[b, h] = b: with zero queries, log(p[q,k] / p[q,q]) = bucket(k - q) - bucket(0), and bucket(0) = 0.
  const w = zeroQueries(weights);
  for (const s of ['encoder', 'decoder']) {
    const k = `${s}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`;
    w[k] = f32(weights[k].shape, (i) => Math.floor(i / weights[k].shape[1]));
  }
  const tmp = modelCopy(dir, w);
  t.teardown(tmp.cleanup);
  const model = await Seq2SeqModel.fromPretrained(tmp.path);
  const N = 301;
  const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt(2 + (i % 1000)));
  const out = await model.forward({ inputIds: ids, batchSize: 1, seqLen: N, targetLen: N, decoderInputIds: ids }, { attentions: true });
  const rel = Array.from(io.rel_positions.data as BigInt64Array, Number);
  const bucketsOf = (probs: TensorData, q: number, k: number) => {
    const p = probs.data as Float32Array; // head 0, row q
    return Math.round(Math.log(p[q * N + k] / p[q * N + q]));
  };
  // rel = k - q: row 0 gives 0..300, row 300 gives -300..0.
  const measured = (probs: TensorData, r: number) => (r >= 0 ? bucketsOf(probs, 0, r) : bucketsOf(probs, N - 1, N - 1 + r));
  const bi = Array.from(io.rel_buckets_bidirectional.data as BigInt64Array, Number);
  t.deepEqual(
    rel.map((r) => measured(out['encoder_attentions.0'], r)),
    bi,
  );
  // The decoder's future keys are masked (-10000), so only rel <= 0 shows; the rule puts every rel > 0 in bucket 0.
  const uni = Array.from(io.rel_buckets_unidirectional.data as BigInt64Array, Number);
  const past = rel.map((r, i) => [r, i]).filter(([r]) => r <= 0);
  t.deepEqual(
    past.map(([r]) => measured(out['decoder_attentions.0'], r)),
    past.map(([, i]) => uni[i]),
  );
  t.true(rel.every((r, i) => r <= 0 || uni[i] === 0));
  // Every bucket shows, but the bidirectional 4 (rel > 0 at distance 0 cannot occur).
  t.deepEqual([new Set(bi).size, new Set(uni).size], [7, 8], 'the range covers every reachable bucket');
  model.dispose();
});

t5Test('t5: untied lm_head (tie_word_embeddings false) and a stored tied copy', async (t) => {
  const { dir, io, weights } = await fixture();
  // An untied head holding shared * d_model^-0.5 gives the tied model's logits (the tied head scales its input instead).
  const shared_ = weights['shared.weight'];
  const sd = shared_.data as Float32Array;
  const untied = modelCopy(dir, { ...weights, 'lm_head.weight': f32(shared_.shape, (i) => sd[i] / 8) }, (c) => (c.tie_word_embeddings = false));
  // Older checkpoints also store the tied copies: accepted, the tie wins.
  const copies = modelCopy(dir, { ...weights, 'lm_head.weight': zerosLike(shared_), 'encoder.embed_tokens.weight': zerosLike(shared_) });
  t.teardown(() => (untied.cleanup(), copies.cleanup()));
  for (const [name, d] of [
    ['untied', untied.path],
    ['stored copies', copies.path],
  ]) {
    const model = await Seq2SeqModel.fromPretrained(d);
    const out = await model.forward(inputs(io));
    expectClose(t, `${name} logits`, out.logits, io.logits, ATOL);
    if (name === 'untied') t.is(model.info.numParameters, 230_208 + 65_536);
    model.dispose();
  }
});

/** Gated-GELU FFN (t5 v1.1) of block 0 against a float64 reference: with the attention output zero, block 0 adds only the FFN. */
t5Test('t5: gated-gelu FFN (wi_0, wi_1, gelu_new) against a float64 reference of block 0', async (t) => {
  const { dir, io, weights } = await fixture();
  const F = 128;
  const D = 64;
  const w = gatedGelu(weights, D);
  w['encoder.block.0.layer.0.SelfAttention.o.weight'] = zerosLike(weights['encoder.block.0.layer.0.SelfAttention.o.weight']);
  const tmp = modelCopy(dir, w, (c) => (c.feed_forward_proj = 'gated-gelu'));
  t.teardown(tmp.cleanup);
  const model = await Seq2SeqModel.fromPretrained(tmp.path);
  const out = await model.forward(inputs(io), { hiddenStates: true });
  const get = (k: string) => w[k].data as Float32Array;
  const [ln, wi0, wi1, wo] = ['layer.1.layer_norm', 'layer.1.DenseReluDense.wi_0', 'layer.1.DenseReluDense.wi_1', 'layer.1.DenseReluDense.wo'].map((k) =>
    get(`encoder.block.0.${k}.weight`),
  );
  const x0 = out['encoder_hidden_states.0'].data as Float32Array; // = shared[ids]
  const expected = new Float64Array(x0.length);
  const gelu = (z: number) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));
  for (let r = 0; r < x0.length / D; r++) {
    const x = x0.subarray(r * D, (r + 1) * D);
    const rms = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / D + 1e-6);
    const h = Array.from(x, (v, i) => ln[i] * v * rms);
    const g = new Float64Array(F);
    for (let f = 0; f < F; f++) {
      let a = 0;
      let b = 0;
      for (let i = 0; i < D; i++) (a += wi0[f * D + i] * h[i]), (b += wi1[f * D + i] * h[i]);
      g[f] = gelu(a) * b;
    }
    for (let o = 0; o < D; o++) {
      let s = x[o];
      for (let f = 0; f < F; f++) s += wo[o * F + f] * g[f];
      expected[r * D + o] = s;
    }
  }
  expectProbs(t, 'gated-gelu encoder_hidden_states.1', out['encoder_hidden_states.1'], expected, ATOL);
  model.dispose();
});

t5Test('t5: a checkpoint missing a tensor, with a misshapen one or an extra one is refused naming it (E_BAD_CHECKPOINT)', async (t) => {
  const { dir, weights } = await fixture();
  const missing = 'encoder.block.1.layer.1.DenseReluDense.wo.weight';
  const misshapen = 'decoder.block.0.layer.1.EncDecAttention.k.weight';
  const extra = 'encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight';
  const without = { ...weights };
  delete without[missing];
  const cases: [string, Weights][] = [
    [missing, without],
    [misshapen, { ...weights, [misshapen]: f32([64, 32], () => 0) }],
    [extra, { ...weights, [extra]: f32([8, 4], () => 0) }],
  ];
  for (const [name, w] of cases) {
    const tmp = modelCopy(dir, w);
    const err = await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path), { code: 'E_BAD_CHECKPOINT' } as never);
    t.true(err?.message.includes(name), err?.message);
    tmp.cleanup();
  }
});

t5Test('t5: a bad config, or one that disagrees with the weights, is refused naming the field before any allocation', async (t) => {
  const { dir, weights } = await fixture();
  const cases: [string, (c: Record<string, unknown>) => void, string][] = [
    ['d_kv', (c) => delete c.d_kv, 'E_BAD_CONFIG'],
    ['num_heads', (c) => (c.num_heads = 0), 'E_BAD_CONFIG'],
    ['feed_forward_proj', (c) => (c.feed_forward_proj = 'silu'), 'E_BAD_CONFIG'],
    ['decoder_start_token_id', (c) => (c.decoder_start_token_id = 5000), 'E_BAD_CONFIG'],
    // Sizes that would allocate terabytes, or build 10^8 blocks, against the 230k-parameter checkpoint.
    ['vocab_size', (c) => (c.vocab_size = 1e10), 'E_BAD_CONFIG'],
    ['d_ff', (c) => (c.d_ff = 1e9), 'E_BAD_CONFIG'],
    ['num_layers', (c) => (c.num_layers = 1e8), 'E_BAD_CHECKPOINT'],
    ['architectures', (c) => (c.architectures = ['T5EncoderModel']), 'E_BAD_CONFIG'],
  ];
  for (const [field, edit, code] of cases) {
    const tmp = modelCopy(dir, weights, edit);
    const err = await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path), { code } as never, field);
    t.true(err?.message.includes(field), err?.message);
    tmp.cleanup();
  }
});

t5Test('t5: without decoder_start_token_id (T5Config default None) labels cannot be shifted, decoder inputs still work', async (t) => {
  const { dir, io, weights } = await fixture();
  const tmp = modelCopy(dir, weights, (c) => delete c.decoder_start_token_id);
  t.teardown(tmp.cleanup);
  const model = await Seq2SeqModel.fromPretrained(tmp.path);
  t.is(model.info.decoderStartTokenId, -1);
  const err = await t.throwsAsync(model.forward(inputs(io)), { code: 'E_BAD_CONFIG' } as never);
  t.true(err?.message.includes('decoder_start_token_id'), err?.message);
  const out = await model.forward(inputs(io, { decoderInputIds: io.decoder_input_ids.data as BigInt64Array }));
  expectClose(t, 'logits with explicit decoder inputs', out.logits, io.logits, ATOL);
  expectClose(t, 'loss with explicit decoder inputs', out.loss, io.loss, ATOL);
  model.dispose();
});

t5Test('t5: ids outside the vocabulary, a bad mask and missing decoder inputs get coded errors; the model still works', async (t) => {
  const { dir, io } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(dir);
  const withId = (src: TensorData, at: number, v: bigint) => {
    const a = BigInt64Array.from(src.data as BigInt64Array);
    a[at] = v;
    return a;
  };
  const cases: [string, Partial<Seq2SeqInputs>, string, string][] = [
    ['input id = vocab', { inputIds: withId(io.input_ids, 17, 1024n) }, 'E_INVALID_ARG', 'input_ids[1][1]'],
    ['negative input id', { inputIds: withId(io.input_ids, 0, -1n) }, 'E_INVALID_ARG', 'input_ids[0][0]'],
    ['label = vocab', { labels: withId(io.labels, 3, 5000n) }, 'E_INVALID_ARG', 'labels[0][3]'],
    ['decoder id = vocab', { decoderInputIds: withId(io.decoder_input_ids, 5, 1024n) }, 'E_INVALID_ARG', 'decoder_input_ids[0][5]'],
    ['attention mask of 2', { attentionMask: withId(io.attention_mask, 2, 2n) }, 'E_INVALID_ARG', 'attention_mask'],
    ['no labels, no decoder inputs', { labels: undefined }, 'E_INVALID_ARG', 'decoder_input_ids or labels'],
  ];
  for (const [name, extra, code, says] of cases) {
    const err = await t.throwsAsync(model.forward(inputs(io, extra)), { code } as never, name);
    t.true(err?.message.includes(says), `${name}: ${err?.message}`);
  }
  const out = await model.forward(inputs(io));
  expectClose(t, 'logits after the errors', out.logits, io.logits, ATOL);
  model.dispose();
});
