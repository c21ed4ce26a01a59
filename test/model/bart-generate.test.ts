/**
 * BART generation (issue 18) against transformers 4.4.2 (../shared/fixtures/bart-tiny, README section "BART and
 * T5", its Generation bullets): incremental decoding (start / step / select) gives forward()'s logits at every
 * position, also on rows reordered and expanded by select; generate() gives the fixture's greedy and beam ids
 * exactly and its beam scores; stream() yields generate()'s greedy ids; bad options and a classification model
 * are coded errors.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Seq2SeqModel, GenerateInputs } from '../../lib/model/seq2seq';
import { native, TensorData } from '../../lib/runtime/native';
import { expectClose, maxAbsDiff, readTensors, rows, shared, tempDir, withShared } from '../helpers';

// Fixture README: BART logits 5e-5 (they reach |32|; forward parity is 1.7e-5), beam scores 1e-5 (fp32 vs fp64
// 2.4e-7), ids exact (the smallest greedy top-2 gap is 0.041, far above fp32 noise).
const LOGITS_ATOL = 5e-5;
const SCORE_ATOL = 1e-5;
const MAX_LENGTH = 12;

async function fixture(): Promise<{ io: Record<string, TensorData>; source: GenerateInputs }> {
  const io = await readTensors(join(shared('fixtures/bart-tiny'), 'io.safetensors'));
  const [batchSize, seqLen] = io.gen_input_ids.shape;
  return { io, source: { inputIds: io.gen_input_ids.data as BigInt64Array, attentionMask: io.gen_attention_mask.data as BigInt64Array, batchSize, seqLen } };
}

/** logits[r] against full[index[r]] ([rows, T, vocab]). */
function compareRows(t: ExecutionContext, name: string, logits: TensorData, full: TensorData, index: number[]): void {
  const [, T, V] = full.shape;
  t.deepEqual(logits.shape, [index.length, T, V], `${name} shape`);
  let d = 0;
  index.forEach((src, r) => {
    const a = (logits.data as Float32Array).subarray(r * T * V, (r + 1) * T * V);
    d = Math.max(d, maxAbsDiff(a, (full.data as Float32Array).subarray(src * T * V, (src + 1) * T * V)));
  });
  t.log(`${name}: max |diff| = ${d.toExponential(3)} (atol ${LOGITS_ATOL})`);
  t.true(d <= LOGITS_ATOL, `${name}: max |diff| ${d} > ${LOGITS_ATOL}`);
}

withShared('fixtures/bart-tiny')('bart-tiny: incremental decoding gives forward logits at every position, also after select', async (t) => {
  const dir = shared('fixtures/bart-tiny');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const [batchSize, seqLen] = io.input_ids.shape;
  const targetLen = io.decoder_input_ids.shape[1];
  const inputs = {
    inputIds: io.input_ids.data as BigInt64Array,
    attentionMask: io.attention_mask.data as BigInt64Array, // row 2 is padded: the cross mask is cached too
    batchSize,
    seqLen,
    decoderInputIds: io.decoder_input_ids.data as BigInt64Array,
    targetLen,
  };
  const handle = await native().loadSeq2Seq(dir);
  const full = (await handle.forward(inputs)).logits;
  expectClose(t, 'forward vs fixture logits', full, io.logits, LOGITS_ATOL);
  const steps = (await handle.decodeSteps(inputs)).logits;
  compareRows(t, 'step by step', steps, full, [0, 1, 2]);
  compareRows(t, 'step by step vs fixture', steps, io.logits, [0, 1, 2]);
  // Beams: rows reordered, one dropped and one repeated after 5 steps (the self keys/values cached so far follow).
  const index = [2, 0, 0, 1, 2];
  compareRows(t, 'select [2,0,0,1,2] after 5 steps', (await handle.decodeSteps(inputs, { selects: [{ at: 5, index: Int32Array.from(index) }] })).logits, full, index);
  // Expanded right after the encoder (what beam search does first).
  compareRows(t, 'select [1,1,1] at start', (await handle.decodeSteps(inputs, { selects: [{ at: 0, index: Int32Array.from([1, 1, 1]) }] })).logits, full, [1, 1, 1]);
  handle.dispose();
});

withShared('fixtures/bart-tiny')('bart-tiny: generate gives 4.4.2 greedy and beam ids exactly, beam scores within 1e-5', async (t) => {
  const { io, source } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny'));
  const greedy = await model.generate(source, { maxLength: MAX_LENGTH, numBeams: 1 });
  t.deepEqual(rows(greedy.sequences), rows(io.greedy_sequences));
  t.is(greedy.scores, undefined);
  const beam = await model.generate(source, { maxLength: MAX_LENGTH, numBeams: 3 });
  t.deepEqual(rows(beam.sequences), rows(io.beam_sequences));
  t.not(JSON.stringify(rows(beam.sequences)), JSON.stringify(rows(greedy.sequences)), 'the fixture was chosen so that beam differs from greedy');
  expectClose(t, 'beam scores', beam.scores!, io.beam_sequences_scores, SCORE_ATOL);

  // numReturnSequences 2: per row the best first (the numReturnSequences 1 result), scores not increasing.
  const two = await model.generate(source, { maxLength: MAX_LENGTH, numBeams: 3, numReturnSequences: 2 });
  t.deepEqual(two.sequences.shape[0], 4);
  const twoRows = rows(two.sequences);
  const s = [...(two.scores!.data as Float32Array)];
  for (const b of [0, 1]) {
    t.deepEqual(twoRows[2 * b].slice(0, MAX_LENGTH), rows(io.beam_sequences)[b]);
    t.true(s[2 * b] >= s[2 * b + 1], `row ${b}: scores ${s[2 * b]} >= ${s[2 * b + 1]}`);
  }
  // lengthPenalty divides the same sum of log-probs by hyp_len ** lengthPenalty, hyp_len 11 here (the start token
  // included, the final eos not): same hypotheses, sums within 1e-5.
  const sum = (io.beam_sequences_scores.data as Float32Array).map((x) => x * 11);
  for (const lengthPenalty of [0, 2]) {
    const p = await model.generate(source, { maxLength: MAX_LENGTH, numBeams: 3, lengthPenalty });
    t.deepEqual(rows(p.sequences), rows(io.beam_sequences), `lengthPenalty ${lengthPenalty}`);
    const sums = (p.scores!.data as Float32Array).map((x) => x * 11 ** lengthPenalty);
    t.true(maxAbsDiff(sums, sum) <= SCORE_ATOL, `lengthPenalty ${lengthPenalty}: sums ${sums} vs ${sum}`);
  }
  // Forced eos (config.json forced_eos_token_id 2) touches only the last step: without it, the first 11 ids agree.
  const free = rows((await model.generate(source, { maxLength: MAX_LENGTH, forcedEosTokenId: null })).sequences);
  t.deepEqual(
    free.map((r) => r.slice(0, MAX_LENGTH - 1)),
    rows(io.greedy_sequences).map((r) => r.slice(0, MAX_LENGTH - 1)),
  );
  // no_repeat_ngram_size 2: the greedy rows repeat tokens (946 946 ...); with the ban no bigram occurs twice.
  for (const r of rows((await model.generate(source, { maxLength: MAX_LENGTH, noRepeatNgramSize: 2 })).sequences)) {
    const grams = r.slice(1).map((x, i) => `${r[i]},${x}`);
    t.is(new Set(grams).size, grams.length, `bigrams of ${r}`);
  }
  model.dispose();
});

withShared('fixtures/bart-tiny')('bart-tiny: stream yields the greedy ids step by step', async (t) => {
  const { io, source } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny'));
  const steps: number[][] = [];
  for await (const tokens of model.stream(source, { maxLength: MAX_LENGTH })) steps.push([...tokens].map(Number));
  const expected = rows(io.greedy_sequences);
  t.is(steps.length, MAX_LENGTH - 1);
  t.deepEqual(
    expected.map((_, b) => [2, ...steps.map((s) => s[b])]),
    expected,
  );
  await t.throwsAsync(async () => {
    for await (const _ of model.stream(source, { numBeams: 3 })) void _;
  }, { code: 'E_INVALID_ARG', message: /numBeams/ });
  model.dispose();
});

withShared('fixtures/bart-tiny', 'fixtures/bart-tiny-cls')('generate: bad options and a classification model are coded errors; the model keeps working', async (t) => {
  const { io, source } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny'));
  const cases: [string, unknown, RegExp][] = [
    ['numBeams 0', { numBeams: 0 }, /numBeams/],
    ['numReturnSequences > numBeams', { numBeams: 3, numReturnSequences: 4 }, /numReturnSequences/],
    ['numReturnSequences without beams (config: 1 beam)', { numReturnSequences: 2 }, /num_return_sequences 2 must be <= num_beams 1/],
    ['maxLength 0', { maxLength: 0 }, /maxLength/],
    ['maxLength 1.5', { maxLength: 1.5 }, /maxLength/],
    ['minLength -1', { minLength: -1 }, /minLength/],
    ['lengthPenalty NaN', { lengthPenalty: NaN }, /lengthPenalty/],
    ['earlyStopping "yes"', { earlyStopping: 'yes' }, /earlyStopping/],
    ['an unknown option', { numBeam: 3 }, /numBeam/],
    // Checked natively against the config (before the encoder runs).
    ['forcedEosTokenId past the vocabulary', { forcedEosTokenId: 5000 }, /forced_eos_token_id/],
    ['maxLength past the learned positions', { maxLength: 100 }, /max_position_embeddings/],
  ];
  for (const [name, options, message] of cases) await t.throwsAsync(model.generate(source, options as never), { code: 'E_INVALID_ARG', message }, name);
  // Bad inputs: named by the native check.
  const bad = { ...source, inputIds: (source.inputIds as BigInt64Array).map((x, i) => (i === 0 ? 4096n : x)) };
  await t.throwsAsync(model.generate(bad), { code: 'E_INVALID_ARG', message: /input_ids must be in \[0, 1024\)/ });
  t.deepEqual(rows((await model.generate(source, { maxLength: MAX_LENGTH })).sequences), rows(io.greedy_sequences));
  model.dispose();

  const cls = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny-cls'));
  await t.throwsAsync(cls.generate(source), { code: 'E_INVALID_ARG', message: /BartForSequenceClassification does not generate/ });
  const handle = await native().loadSeq2Seq(shared('fixtures/bart-tiny-cls'));
  const oneStep = { ...source, decoderInputIds: new BigInt64Array(source.batchSize).fill(2n), targetLen: 1 };
  await t.throwsAsync(handle.decodeSteps(oneStep), { code: 'E_INVALID_ARG', message: /does not generate/ });
  handle.dispose();
  cls.dispose();
});

withShared('fixtures/bart-tiny')('generate: unset options come from config.json; processors it does not apply are refused', async (t) => {
  const { io, source } = await fixture();
  const dir = shared('fixtures/bart-tiny');
  const tmp = tempDir('blockprune-bartgen-');
  t.teardown(tmp.cleanup);
  copyFileSync(join(dir, 'model.safetensors'), join(tmp.path, 'model.safetensors'));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const withConfig = async (extra: Record<string, unknown>) => {
    writeFileSync(join(tmp.path, 'config.json'), JSON.stringify({ ...config, ...extra }));
    return Seq2SeqModel.fromPretrained(tmp.path);
  };
  // config.json's num_beams 3 and max_length 12: the fixture's beam search with no options given.
  const beamy = await withConfig({ num_beams: 3, max_length: 12 });
  const out = await beamy.generate(source);
  t.deepEqual(rows(out.sequences), rows(io.beam_sequences));
  expectClose(t, 'beam scores from config', out.scores!, io.beam_sequences_scores, SCORE_ATOL);
  beamy.dispose();
  for (const extra of [{ repetition_penalty: 1.2 }, { bad_words_ids: [[5]] }, { encoder_no_repeat_ngram_size: 3 }, { num_beam_groups: 2 }]) {
    const m = await withConfig(extra);
    await t.throwsAsync(m.generate(source), { code: 'E_BAD_CONFIG', message: new RegExp(Object.keys(extra)[0]) }, JSON.stringify(extra));
    m.dispose();
  }
});
