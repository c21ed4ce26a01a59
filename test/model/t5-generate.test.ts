/**
 * T5's incremental decoding (issue 18; native/t5.cc start / step / select, through the binding's decodeSteps):
 * feeding the fixture's decoder_input_ids one token at a time, with the encoder run once, cross-attention keys
 * and values cached at start and self-attention ones appended per step, gives at every position the logits of
 * the full forward; also after select expands, reorders and drops cache rows (as beam search does), and for the
 * gated-gelu / untied-head variant. Teacher-forced on the fixture's generate() outputs, the steps give 4.4.2's
 * greedy ids and beam scores.
 */
import type { ExecutionContext } from 'ava';
import { native, NativeSeq2Seq, TensorData } from '../../lib/runtime/native';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { maxAbsDiff, shared } from '../helpers';
import { f32, FIX, fixture, gatedGelu, modelCopy, t5Test, Weights } from './t5-fixture';

// The brief's bound: step and forward compute the same float32 operations but with different matrix shapes
// (one query row against the cached keys vs the full causal square), so BLAS sums in another order; the
// fixture's logits are O(1) (README), where float32 rounding of a 64-long dot product is ~1e-6.
const ATOL = 1e-5;

type Selects = { at: number; index: BigInt64Array }[];

/** Rows `rows` of a [B, L] int64 tensor, as a flat array. */
function gatherRows(t: TensorData, rows: number[]): BigInt64Array {
  const [, L] = t.shape;
  const src = t.data as BigInt64Array;
  const out = new BigInt64Array(rows.length * L);
  rows.forEach((r, i) => out.set(src.subarray(r * L, (r + 1) * L), i * L));
  return out;
}

/** The batch of input rows `rows` (source ids, mask and the stored decoder inputs). */
function batchOf(io: Weights, rows: number[]) {
  return {
    inputIds: gatherRows(io.input_ids, rows),
    attentionMask: gatherRows(io.attention_mask, rows),
    decoderInputIds: gatherRows(io.decoder_input_ids, rows),
    batchSize: rows.length,
    seqLen: io.input_ids.shape[1],
    targetLen: io.decoder_input_ids.shape[1],
  };
}

/**
 * decodeSteps of the fixture batch with `selects` against forward() of the input rows the cache ends with
 * (the composition of the selects, checked against the binding's "rows"): max |diff| over every position.
 */
async function stepsMatchForward(t: ExecutionContext, name: string, model: NativeSeq2Seq, io: Weights, selects: Selects = []) {
  const B = io.input_ids.shape[0];
  let rows = Array.from({ length: B }, (_, i) => i);
  for (const s of selects) rows = Array.from(s.index, (i) => rows[Number(i)]);
  const stepped = await model.decodeSteps(batchOf(io, Array.from({ length: B }, (_, i) => i)), { selects });
  t.deepEqual(Array.from(stepped.rows.data as BigInt64Array, Number), rows, `${name}: rows`);
  const full = await model.forward(batchOf(io, rows));
  t.deepEqual(stepped.logits.shape, full.logits.shape, `${name}: shape`);
  const d = maxAbsDiff(stepped.logits.data as Float32Array, full.logits.data as Float32Array);
  t.log(`${name}: ${stepped.logits.shape.join('x')} logits, max |diff| step vs forward = ${d.toExponential(3)} (atol ${ATOL})`);
  t.true(d <= ATOL, `${name}: ${d} > ${ATOL}`);
}

const idx = (...rows: number[]) => BigInt64Array.from(rows, BigInt);
// Expanded to 2 beams per row right after start (row 1 is the padded one), reversed mid-way, then shrunk with
// a repeat: every cache tensor (cross keys/values, source mask, self keys/values) must follow its row.
const SELECTS: Selects = [
  { at: 0, index: idx(0, 0, 1, 1, 2, 2) },
  { at: 4, index: idx(5, 4, 3, 2, 1, 0) },
  { at: 9, index: idx(3, 3, 0) },
];

t5Test('t5-tiny: one step at a time gives the full forward logits at every position (also with select)', async (t) => {
  const { dir, io } = await fixture();
  const model = await native().loadSeq2Seq(dir);
  await stepsMatchForward(t, 't5-tiny', model, io);
  await stepsMatchForward(t, 't5-tiny, rows expanded / reordered / dropped by select', model, io, SELECTS);
  // The stored forward logits too (4.4.2's): step is forward's equal, not only our own forward's.
  const stepped = await model.decodeSteps(batchOf(io, [0, 1, 2]));
  const d = maxAbsDiff(stepped.logits.data as Float32Array, io.logits.data as Float32Array);
  t.log(`t5-tiny: max |diff| step vs 4.4.2's logits = ${d.toExponential(3)}`);
  t.true(d <= ATOL);
  model.dispose();
});

t5Test('t5: gated-gelu FFN with an untied lm_head: step equals forward (also with select)', async (t) => {
  const { dir, io, weights } = await fixture();
  const sd = weights['shared.weight'].data as Float32Array;
  // An untied head that is not shared * d_model^-0.5 (rolled by one row), so the scaling rule is really not applied.
  const lm = f32(weights['shared.weight'].shape, (i) => sd[(i + 64) % sd.length] / 4);
  const tmp = modelCopy(dir, { ...gatedGelu(weights, 64), 'lm_head.weight': lm }, (c) => {
    c.feed_forward_proj = 'gated-gelu';
    c.tie_word_embeddings = false;
  });
  t.teardown(tmp.cleanup);
  const model = await native().loadSeq2Seq(tmp.path);
  t.like(model.info(), { numParameters: 230_208 + 2 * 2 * 128 * 64 + 65_536 }); // wi_1 per block, the untied head
  await stepsMatchForward(t, 'gated-gelu / untied', model, io);
  await stepsMatchForward(t, 'gated-gelu / untied, select', model, io, SELECTS);
  model.dispose();
});

/** Log-softmax of row `r` of [.., vocab] logits at index `i`, in float64. */
function logProb(logits: Float32Array, vocab: number, r: number, i: number): number {
  const row = logits.subarray(r * vocab, (r + 1) * vocab);
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - m);
  return row[i] - m - Math.log(s);
}

t5Test('t5-tiny: step reproduces 4.4.2 generate(): greedy_sequences are its argmax, beam_sequences_scores its log-probs', async (t) => {
  const { dir, io } = await fixture();
  const model = await native().loadSeq2Seq(dir);
  // README: no logits processor applies to t5-tiny (no forced eos, min_length 0) and no row reaches eos, so
  // greedy search is the argmax of each step's logits and a beam's score is the sum of its log-softmax terms
  // over hyp_len = max_length = 12 (the start token counted). Teacher-forcing a sequence gives those steps.
  const [B, L] = io.greedy_sequences.shape;
  const V = 1024;
  const source = { inputIds: io.gen_input_ids.data as BigInt64Array, attentionMask: io.gen_attention_mask.data as BigInt64Array, batchSize: B, seqLen: io.gen_input_ids.shape[1] };
  const forced = async (seqs: TensorData) => {
    const ids = seqs.data as BigInt64Array;
    const dec = BigInt64Array.from({ length: B * (L - 1) }, (_, k) => ids[Math.floor(k / (L - 1)) * L + (k % (L - 1))]);
    return (await model.decodeSteps({ ...source, targetLen: L - 1, decoderInputIds: dec })).logits.data as Float32Array;
  };
  const greedy = io.greedy_sequences.data as BigInt64Array;
  const g = await forced(io.greedy_sequences);
  const argmax: bigint[] = [];
  for (let r = 0; r < B * (L - 1); r++) {
    const row = g.subarray(r * V, (r + 1) * V);
    argmax.push(BigInt(row.indexOf(Math.max(...row))));
  }
  const want = Array.from({ length: B * (L - 1) }, (_, k) => greedy[Math.floor(k / (L - 1)) * L + (k % (L - 1)) + 1]);
  t.deepEqual(argmax, want, 'greedy: argmax of every step = the next token of greedy_sequences');
  const beams = io.beam_sequences.data as BigInt64Array;
  const b = await forced(io.beam_sequences);
  const stored = io.beam_sequences_scores.data as Float32Array;
  for (let r = 0; r < B; r++) {
    let sum = 0;
    for (let p = 0; p < L - 1; p++) sum += logProb(b, V, r * (L - 1) + p, Number(beams[r * L + p + 1]));
    const d = Math.abs(sum / L - stored[r]);
    t.log(`beam row ${r}: score ${(sum / L).toFixed(6)} vs stored ${stored[r].toFixed(6)}, |diff| ${d.toExponential(3)} (atol ${ATOL})`);
    t.true(d <= ATOL);
  }
  model.dispose();
});

t5Test('t5: bad select rows and out-of-vocabulary step tokens are coded errors naming them', async (t) => {
  const { dir, io } = await fixture();
  const model = await native().loadSeq2Seq(dir);
  const batch = batchOf(io, [0, 1, 2]);
  const e1 = await t.throwsAsync(model.decodeSteps(batch, { selects: [{ at: 2, index: idx(0, 3) }] }), { code: 'E_INVALID_ARG' } as never);
  t.regex(e1?.message ?? '', /index .*3 rows/);
  const e2 = await t.throwsAsync(model.decodeSteps(batch, { selects: [{ at: 2, index: idx() }] }), { code: 'E_SHAPE' } as never);
  t.regex(e2?.message ?? '', /index/);
  const bad = BigInt64Array.from(batch.decoderInputIds);
  bad[1 * 12 + 3] = 5000n;
  const e3 = await t.throwsAsync(model.decodeSteps({ ...batch, decoderInputIds: bad }), { code: 'E_INVALID_ARG' } as never);
  t.regex(e3?.message ?? '', /tokens\[1\]\[0\] is 5000, outside the vocabulary/);
  // The model still serves after each refusal.
  const ok = await model.decodeSteps(batch);
  t.true(maxAbsDiff(ok.logits.data as Float32Array, io.logits.data as Float32Array) <= ATOL);
  model.dispose();
});

t5Test('t5-tiny: generate() gives 4.4.2 greedy and beam ids exactly, beam scores within 1e-5; stream() the greedy steps', async (t) => {
  const { io } = await fixture();
  const model = await Seq2SeqModel.fromPretrained(shared(FIX));
  try {
    const [B, S] = io.gen_input_ids.shape;
    const source = { inputIds: io.gen_input_ids.data as BigInt64Array, attentionMask: io.gen_attention_mask.data as BigInt64Array, batchSize: B, seqLen: S };
    const L = io.greedy_sequences.shape[1];
    const flat = (x: TensorData) => Array.from(x.data as BigInt64Array, Number);
    const greedy = await model.generate(source, { maxLength: L, numBeams: 1 });
    t.deepEqual(greedy.sequences.shape, [B, L]);
    t.deepEqual(flat(greedy.sequences), flat(io.greedy_sequences));
    const beam = await model.generate(source, { maxLength: L, numBeams: 3 });
    t.deepEqual(flat(beam.sequences), flat(io.beam_sequences));
    const d = maxAbsDiff(beam.scores!.data as Float32Array, io.beam_sequences_scores.data as Float32Array);
    t.log(`beam scores max |diff| = ${d.toExponential(2)}`);
    t.true(d <= 1e-5);
    // Streaming: each step's token per row, in order, rebuilds the greedy ids (after the decoder start token).
    const steps: number[][] = [];
    for await (const tokens of model.stream(source, { maxLength: L })) steps.push(Array.from(tokens, Number));
    t.is(steps.length, L - 1);
    for (let b = 0; b < B; b++) t.deepEqual(steps.map((s) => s[b]), flat(io.greedy_sequences).slice(b * L + 1, (b + 1) * L));
  } finally {
    model.dispose();
  }
});
