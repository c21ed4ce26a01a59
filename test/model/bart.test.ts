/**
 * BART (issue 18) against transformers 4.4.2 (../shared/fixtures bart-tiny, bart-tiny-cls; README section "BART
 * and T5"): logits, loss, every hidden state and attention map; decoder inputs shifted from labels; EOS pooling
 * and its eos-count rule; broken checkpoints, configs and inputs give coded errors naming the culprit.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Seq2SeqModel, Seq2SeqInputs } from '../../lib/model/seq2seq';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, maxAbsDiff, readTensors, shared, tempDir, withShared, writeSafetensorsFile } from '../helpers';

// Fixture README's suggested tolerances: BART logits 5e-5 (they reach |32| with the N(0,1) tied embedding),
// every other forward output 1e-5 (its fp64 check: hidden 1.6e-6, attentions 3.9e-7, loss 1.8e-6).
const LOGITS_ATOL = 5e-5;
const ATOL = 1e-5;

const LAYERS = 2;
const MAPS = [0, 1].flatMap((i) => [`encoder_attentions.${i}`, `decoder_attentions.${i}`, `cross_attentions.${i}`]);
const STATES = [...Array(LAYERS + 1).keys()].flatMap((i) => [`encoder_hidden_states.${i}`, `decoder_hidden_states.${i}`]);

function ids(t: TensorData): BigInt64Array {
  return t.data as BigInt64Array;
}

/** The fixture's source batch; token labels (with targetLen) for the generation model, class labels for cls. */
function batch(io: Record<string, TensorData>, extra: Partial<Seq2SeqInputs> = {}): Seq2SeqInputs {
  const [batchSize, seqLen] = io.input_ids.shape;
  const tokenLabels = io.labels.shape.length === 2;
  return {
    inputIds: ids(io.input_ids),
    attentionMask: ids(io.attention_mask),
    batchSize,
    seqLen,
    labels: ids(io.labels),
    ...(tokenLabels ? { targetLen: io.labels.shape[1] } : {}),
    ...extra,
  };
}

function writeModel(dir: string, ts: Record<string, TensorData>): void {
  writeSafetensorsFile(join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, data: v.data }])));
}

function compareAll(t: ExecutionContext, name: string, out: Record<string, TensorData>, expected: Record<string, TensorData>): void {
  expectClose(t, `${name} logits`, out.logits, expected.logits, name === 'bart-tiny' ? LOGITS_ATOL : ATOL);
  for (const k of ['loss', 'encoder_last_hidden_state', ...STATES, ...MAPS]) expectClose(t, `${name} ${k}`, out[k], expected[k], ATOL);
}

withShared('fixtures/bart-tiny')('bart-tiny: logits, loss, every hidden state and attention map; info', async (t) => {
  const dir = shared('fixtures/bart-tiny');
  const expected = await readTensors(join(dir, 'io.safetensors'));
  const model = await Seq2SeqModel.fromPretrained(dir);
  t.like(model.info, { modelType: 'bart', architecture: 'BartForConditionalGeneration', vocabSize: 1024, dModel: 64, numParameters: 241_664 });
  const out = await model.forward(batch(expected), { hiddenStates: true, attentions: true });
  compareAll(t, 'bart-tiny', out, expected);
  // Causality and padding are exact: zero above the diagonal, zero on row 2's padded source keys (length 11).
  for (const i of [0, 1]) {
    const p = out[`decoder_attentions.${i}`];
    const [B, H, T] = p.shape;
    let above = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) above = Math.max(above, Math.abs(p.data[((b * H + h) * T + q) * T + k] as number));
    t.is(above, 0, `decoder_attentions.${i} above the diagonal`);
    for (const name of [`encoder_attentions.${i}`, `cross_attentions.${i}`]) {
      const m = out[name];
      const [, Hm, Tm, S] = m.shape;
      let padded = 0;
      for (let h = 0; h < Hm; h++) for (let q = 0; q < Tm; q++) for (let k = 11; k < S; k++) padded = Math.max(padded, m.data[((2 * Hm + h) * Tm + q) * S + k] as number);
      t.is(padded, 0, `${name}: padded keys`);
    }
  }
  // Without the flags: logits, loss and the encoder's last state only.
  t.deepEqual(Object.keys(await model.forward(batch(expected))).sort(), ['encoder_last_hidden_state', 'logits', 'loss']);
  model.dispose();
});

withShared('fixtures/bart-tiny')('bart-tiny: decoder inputs shifted from labels equal the stored decoder_input_ids', async (t) => {
  const dir = shared('fixtures/bart-tiny');
  const expected = await readTensors(join(dir, 'io.safetensors'));
  const model = await Seq2SeqModel.fromPretrained(dir);
  const derived = await model.forward(batch(expected), { hiddenStates: true });
  const given = await model.forward(batch(expected, { decoderInputIds: ids(expected.decoder_input_ids) }), { hiddenStates: true });
  // The same inputs, so the same bits (the fixture says so of 4.4.2 too).
  for (const k of ['logits', 'loss', 'decoder_hidden_states.0', 'decoder_hidden_states.2']) t.is(maxAbsDiff(derived[k].data as Float32Array, given[k].data as Float32Array), 0, k);
  // decoder_input_ids alone (no labels): the same logits, no loss.
  const noLabels = await model.forward(batch(expected, { labels: undefined, decoderInputIds: ids(expected.decoder_input_ids) }));
  t.false('loss' in noLabels);
  t.is(maxAbsDiff(noLabels.logits.data as Float32Array, derived.logits.data as Float32Array), 0);
  model.dispose();
});

withShared('fixtures/bart-tiny-cls')('bart-tiny-cls: EOS-pooled logits, loss, hidden states, attentions; the pair-format quirk; unequal eos counts refused', async (t) => {
  const dir = shared('fixtures/bart-tiny-cls');
  const expected = await readTensors(join(dir, 'io.safetensors'));
  const model = await Seq2SeqModel.fromPretrained(dir);
  t.like(model.info, { architecture: 'BartForSequenceClassification', numLabels: 3, numParameters: 246_019 });
  const out = await model.forward(batch(expected), { hiddenStates: true, attentions: true });
  compareAll(t, 'bart-tiny-cls', out, expected);
  // <s> A </s></s> B </s>: three eos per row, pooled at the last.
  const quirk = await model.forward(batch(expected, { inputIds: ids(expected.quirk_input_ids), attentionMask: ids(expected.quirk_attention_mask), labels: undefined }));
  expectClose(t, 'bart-tiny-cls quirk_logits', quirk.logits, expected.quirk_logits, ATOL);
  // 4.4.2: ValueError('All examples must have the same number of <eos> tokens.'); here a coded error.
  const oneMore = ids(expected.input_ids).slice();
  oneMore[5] = 2n; // row 0 gets a second eos
  const err: any = await t.throwsAsync(model.forward(batch(expected, { inputIds: oneMore })));
  t.is(err.code, 'E_INVALID_ARG');
  t.regex(err.message, /same number of <eos> tokens/);
  const noEos = ids(expected.input_ids).map((v) => (v === 2n ? 5n : v));
  t.is((await t.throwsAsync<any>(model.forward(batch(expected, { inputIds: noEos })))).code, 'E_INVALID_ARG');
  model.dispose();
});

withShared('fixtures/bart-tiny')('bart-tiny: bad inputs are coded errors naming the input, and the model keeps working', async (t) => {
  const dir = shared('fixtures/bart-tiny');
  const expected = await readTensors(join(dir, 'io.safetensors'));
  const model = await Seq2SeqModel.fromPretrained(dir);
  const tooBig = ids(expected.input_ids).slice();
  tooBig[3] = 1024n;
  const seqLen = expected.input_ids.shape[1];
  const cases: Array<[string, Partial<Seq2SeqInputs>, string, RegExp]> = [
    ['an input id >= vocab_size', { inputIds: tooBig }, 'E_INVALID_ARG', /input_ids must be in \[0, 1024\).*1024/],
    ['a negative decoder id', { decoderInputIds: ids(expected.decoder_input_ids).map((v, i) => (i === 0 ? -1n : v)) }, 'E_INVALID_ARG', /decoder_input_ids/],
    ['a label >= vocab_size', { labels: ids(expected.labels).map((v, i) => (i === 1 ? 5000n : v)) }, 'E_INVALID_ARG', /labels/],
    ['a source longer than the position table', { inputIds: new BigInt64Array(3 * 65).fill(5n), attentionMask: undefined, seqLen: 65 }, 'E_INVALID_ARG', /max_position_embeddings 64/],
    ['decoder inputs shorter than the labels', { decoderInputIds: new BigInt64Array(3 * 4).fill(5n), targetLen: 12 }, 'E_INVALID_ARG', /decoderInputIds/],
    ['an attention mask of 2s', { attentionMask: new BigInt64Array(3 * seqLen).fill(2n) }, 'E_INVALID_ARG', /attention_mask/],
  ];
  for (const [what, extra, code, message] of cases) {
    const err: any = await t.throwsAsync(model.forward(batch(expected, extra)), undefined, what);
    t.is(err?.code, code, `${what}: ${err?.message}`);
    t.regex(err?.message ?? '', message, what);
    t.log(`${what}: ${err?.code} ${err?.message}`);
  }
  expectClose(t, 'after the errors: logits', (await model.forward(batch(expected))).logits, expected.logits, LOGITS_ATOL);
  model.dispose();
});

withShared('fixtures/bart-tiny')('bart-tiny: a checkpoint missing a tensor, with a misshapen or an extra one, or a config missing a field, is refused naming it', async (t) => {
  const src = shared('fixtures/bart-tiny');
  const tensors = await readTensors(join(src, 'model.safetensors'));
  const FC2 = 'model.decoder.layers.1.fc2.bias';
  const variants: Array<[string, (ts: Record<string, TensorData>) => void, string, string]> = [
    ['missing', (ts) => delete ts[FC2], 'E_BAD_CHECKPOINT', FC2],
    ['misshapen', (ts) => (ts.final_logits_bias = { ...ts.final_logits_bias, shape: [1024, 1] }), 'E_BAD_CHECKPOINT', 'final_logits_bias'],
    ['extra', (ts) => (ts['model.encoder.layers.2.fc1.bias'] = ts[FC2]), 'E_BAD_CHECKPOINT', 'model.encoder.layers.2.fc1.bias'],
  ];
  for (const [what, edit, code, name] of variants) {
    const tmp = tempDir('blockprune-bart-');
    try {
      const ts = { ...tensors };
      edit(ts);
      writeModel(tmp.path, ts);
      copyFileSync(join(src, 'config.json'), join(tmp.path, 'config.json'));
      const err: any = await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path), undefined, what);
      t.is(err?.code, code, `${what}: ${err?.message}`);
      t.true(err?.message.includes(name), `${what}: "${err?.message}" names ${name}`);
      t.log(`${what}: ${err?.code} ${err?.message}`);
    } finally {
      tmp.cleanup();
    }
  }
  // An older checkpoint that also stores the tied copies (lm_head.weight, embed_tokens) loads: the tie wins.
  const tmp = tempDir('blockprune-bart-');
  try {
    const shared_ = tensors['model.shared.weight'];
    const ts = { ...tensors, 'lm_head.weight': shared_, 'model.encoder.embed_tokens.weight': shared_ };
    writeModel(tmp.path, ts);
    const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    writeFileSync(join(tmp.path, 'config.json'), JSON.stringify(config));
    const model = await Seq2SeqModel.fromPretrained(tmp.path);
    t.is(model.info.numParameters, 241_664);
    model.dispose();
    delete config.d_model;
    writeFileSync(join(tmp.path, 'config.json'), JSON.stringify(config));
    const err: any = await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path));
    t.is(err?.code, 'E_BAD_CONFIG');
    t.regex(err?.message ?? '', /'d_model' is missing/);
  } finally {
    tmp.cleanup();
  }
});
