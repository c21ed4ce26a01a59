/**
 * Seq2SeqModel.exportOnnx (issue 18): BART and T5 as encoder / decoder / decoder-with-past graphs. onnxruntime's
 * greedy decoding on them (test/model/onnx-seq2seq-run.ts: past keys and values fed back each step) gives the
 * fixtures' 4.4.2 greedy ids exactly, and at every step the logits of our own incremental decoding
 * (decodeSteps, teacher-forced on those ids) within 1e-4. Also: the files' input and output names, and the
 * refusals (classification model, bad options) before anything is written.
 */
import test, { ExecutionContext } from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { native } from '../../lib/runtime/native';
import { maxAbsDiff, readTensors, rows, shared, tempDir, withShared } from '../helpers';
import { loadOnnxSeq2Seq, onnxGreedy } from './onnx-seq2seq-run';

// Two float32 implementations of the same operations in other orders (fused q|k|v, Div vs rsqrt in T5's norm):
// BART's logits reach |32| (fixture README), so ~1e-5 of rounding; 1e-4 is the brief's bound.
const ATOL = 1e-4;
const MAX_LENGTH = 12;
native().setNumThreads(1);

async function roundTrip(t: ExecutionContext, fixture: string, forcedEos?: number) {
  const dir = shared(fixture);
  const io = await readTensors(join(dir, 'io.safetensors'));
  const model = await Seq2SeqModel.fromPretrained(dir);
  const info = model.info;
  const out = tempDir('blockprune-onnx-s2s-');
  try {
    const report = await model.exportOnnx(out.path);
    t.deepEqual(report.files.map((f) => f.file).sort(), readdirSync(out.path).sort(), 'the three files, no temporary left');
    const [enc, dec, past] = report.files;
    t.deepEqual(enc.inputs, ['input_ids', 'attention_mask']);
    t.deepEqual(enc.outputs, ['last_hidden_state']);
    const L = info.decoderLayers;
    const kv = (prefix: string, kinds: string[]) => [...Array(L).keys()].flatMap((i) => kinds.flatMap((k) => ['key', 'value'].map((x) => `${prefix}.${i}.${k}.${x}`)));
    t.deepEqual(dec.inputs, ['input_ids', 'encoder_attention_mask', 'encoder_hidden_states']);
    t.deepEqual(dec.outputs.sort(), ['logits', ...kv('present', ['decoder', 'encoder'])].sort());
    t.deepEqual(past.inputs.sort(), ['input_ids', 'encoder_attention_mask', ...kv('past_key_values', ['decoder', 'encoder'])].sort());
    t.deepEqual(past.outputs.sort(), ['logits', ...kv('present', ['decoder'])].sort());
    t.is(report.positionBias, info.modelType === 't5' ? 'graph' : 'none');

    const sessions = await loadOnnxSeq2Seq(out.path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const [batchSize, seqLen] = io.gen_input_ids.shape;
    const source = { inputIds: io.gen_input_ids.data as BigInt64Array, attentionMask: io.gen_attention_mask.data as BigInt64Array, batchSize, seqLen };
    const g = await onnxGreedy(sessions, source, { start: info.decoderStartTokenId, eos: info.eosTokenId, pad: info.padTokenId, maxLength: MAX_LENGTH, forcedEos });
    t.deepEqual(g.sequences, rows(io.greedy_sequences), 'onnxruntime greedy = 4.4.2 greedy ids');

    // Our step logits on the same tokens (teacher-forced), position by position.
    const steps = g.logits.length;
    const handle = await native().loadSeq2Seq(dir);
    const ours = await handle.decodeSteps({ ...source, targetLen: steps, decoderInputIds: BigInt64Array.from(g.sequences.flatMap((s) => s.slice(0, steps)), BigInt) });
    handle.dispose();
    const V = info.vocabSize;
    let d = 0;
    for (let s = 0; s < steps; s++)
      for (let b = 0; b < batchSize; b++) {
        const o = (ours.logits.data as Float32Array).subarray((b * steps + s) * V, (b * steps + s + 1) * V);
        d = Math.max(d, maxAbsDiff(g.logits[s].subarray(b * V, (b + 1) * V), o));
      }
    t.log(`${fixture}: ${steps} steps x ${batchSize} rows, max |diff| onnxruntime vs ours = ${d.toExponential(3)} (atol ${ATOL}); files ${report.files.map((f) => `${f.file} ${f.nodes} nodes`).join(', ')}`);
    t.true(d <= ATOL, `${d} > ${ATOL}`);
  } finally {
    model.dispose();
    out.cleanup();
  }
}

withShared('fixtures/bart-tiny')('bart-tiny: onnxruntime greedy on the exported graphs gives 4.4.2 ids, and our logits within 1e-4', async (t) => {
  await roundTrip(t, 'fixtures/bart-tiny', 2); // BartConfig's forced_eos_token_id
});

withShared('fixtures/t5-tiny')('t5-tiny: onnxruntime greedy on the exported graphs (position bias in the graph) gives 4.4.2 ids, and our logits within 1e-4', async (t) => {
  await roundTrip(t, 'fixtures/t5-tiny');
});

withShared('fixtures/bart-tiny-cls')('exportOnnx refuses a classification model and bad options before writing', async (t) => {
  const out = tempDir('blockprune-onnx-s2s-');
  const cls = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny-cls'));
  try {
    await t.throwsAsync(cls.exportOnnx(out.path), { code: 'E_INVALID_ARG', message: /BartForSequenceClassification does not generate/ });
    const gen = await Seq2SeqModel.fromPretrained(shared('fixtures/bart-tiny'));
    await t.throwsAsync(gen.exportOnnx(out.path, { opset: 13 }), { code: 'E_INVALID_ARG', message: /options\.opset/ });
    await t.throwsAsync(gen.exportOnnx(out.path, { opst: 17 } as never), { code: 'E_INVALID_ARG', message: /opst/ });
    gen.dispose();
    t.false(existsSync(join(out.path, 'encoder_model.onnx')));
    t.deepEqual(readdirSync(out.path), []);
  } finally {
    cls.dispose();
    out.cleanup();
  }
});

test('exportOnnx checks the directory argument', async (t) => {
  await t.throwsAsync(Seq2SeqModel.prototype.exportOnnx.call({} as Seq2SeqModel, ''), { code: 'E_INVALID_ARG' });
});
