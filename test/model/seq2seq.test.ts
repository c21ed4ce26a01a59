/**
 * The encoder-decoder seam (issue 18): Seq2SeqModel.fromPretrained refuses what is not an encoder-decoder
 * checkpoint with coded errors naming the file, checks its options before any work, and a disposed model
 * refuses every call. The families' parity is in bart.test.ts and t5.test.ts.
 */
import test from 'ava';
import { join } from 'node:path';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { shared, skipped, tempDir } from '../helpers';
import { existsSync, writeFileSync } from 'node:fs';

test('a missing directory, a config without an encoder-decoder model_type and bad options are coded errors', async (t) => {
  const tmp = tempDir();
  try {
    await t.throwsAsync(Seq2SeqModel.fromPretrained(join(tmp.path, 'nope')), { code: 'E_FILE_NOT_FOUND', message: /config\.json/ });
    writeFileSync(join(tmp.path, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: 32 }));
    await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path), { code: 'E_BAD_CONFIG', message: /model_type 'bert' is not an encoder-decoder family blockprune knows \(bart, t5\)/ });
    writeFileSync(join(tmp.path, 'config.json'), '{ not json');
    await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path), { code: 'E_BAD_CONFIG' });
    await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path, { device: 3 } as never), { code: 'E_INVALID_ARG', message: /options\.device/ });
    await t.throwsAsync(Seq2SeqModel.fromPretrained(tmp.path, { dtype: 'fp16' } as never), { code: 'E_INVALID_ARG', message: /dtype/ });
    await t.throwsAsync(Seq2SeqModel.fromPretrained(''), { code: 'E_INVALID_ARG' });
  } finally {
    tmp.cleanup();
  }
});

const fixture = shared('fixtures/bart-tiny');
(existsSync(join(fixture, 'config.json')) ? test : skipped('../shared/fixtures/bart-tiny is absent'))('a disposed model refuses every call with E_DISPOSED', async (t) => {
  let model: Seq2SeqModel;
  try {
    model = await Seq2SeqModel.fromPretrained(fixture);
  } catch (e) {
    // Until the family lands its loader refuses it, coded.
    t.is((e as { code?: string }).code, 'E_BAD_CONFIG');
    return;
  }
  t.is(model.info.modelType, 'bart');
  model.dispose();
  t.throws(() => model.info, { code: 'E_DISPOSED' });
  await t.throwsAsync(model.forward({ inputIds: new Int32Array([0, 2]), batchSize: 1, seqLen: 2 }), { code: 'E_DISPOSED' });
});

const t5Fixture = shared('fixtures/t5-tiny');
(existsSync(join(t5Fixture, 'config.json')) ? test : skipped('../shared/fixtures/t5-tiny is absent'))('info does not wait for a generate in flight (it is read once, at load)', async (t) => {
  const model = await Seq2SeqModel.fromPretrained(t5Fixture);
  try {
    const source = { inputIds: new Int32Array(2 * 16).fill(5), batchSize: 2, seqLen: 16 };
    const t0 = performance.now();
    const running = model.generate(source, { maxLength: 400, numBeams: 4 });
    // Let the job start on the pool before asking.
    await new Promise((r) => setTimeout(r, 20));
    const asked = performance.now();
    const info = model.info;
    const infoMs = performance.now() - asked;
    await running;
    const generateMs = performance.now() - t0;
    t.is(info.modelType, 't5');
    t.log(`info ${infoMs.toFixed(2)} ms during a generate of ${generateMs.toFixed(0)} ms`);
    // Before, info took the model's mutex on the main thread and returned only when the generate ended.
    t.true(generateMs > 100, `the generate took ${generateMs} ms: too short to show anything`);
    t.true(infoMs < generateMs / 4, `info took ${infoMs} ms`);
  } finally {
    model.dispose();
  }
});
