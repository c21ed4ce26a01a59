/**
 * T5's incremental decoding (issue 18; native/t5.cc start / step / select, through the binding's decodeSteps):
 * feeding the fixture's decoder_input_ids one token at a time, with the encoder run once, cross-attention keys
 * and values cached at start and self-attention ones appended per step, gives at every position the logits of
 * the full forward; also after select expands, reorders and drops cache rows (as beam search does), and for the
 * gated-gelu / untied-head variant.
 */
import type { ExecutionContext } from 'ava';
import { native, NativeSeq2Seq, TensorData } from '../../lib/runtime/native';
import { maxAbsDiff } from '../helpers';
import { f32, fixture, gatedGelu, modelCopy, t5Test, Weights } from './t5-fixture';

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
