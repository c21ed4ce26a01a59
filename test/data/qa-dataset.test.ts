/** lib/data/qa-dataset: SQuAD windows and training positions, post-processing, gathering batched logits. */
import { QADataset } from '../../lib/data/qa-dataset';
import { rng } from '../../lib/data/rng';
import { squadMetrics } from '../../lib/training/metrics';
import { BERT, bertTokenizer, count, SQUAD_DEV, squadExamples, withShared } from './helpers';

const qaTest = withShared(BERT, SQUAD_DEV);

qaTest('QADataset training positions slice the context to the answer (SQuAD, 384/128 and 128/32 windows)', async (t) => {
  const tok = bertTokenizer();
  const examples = await squadExamples();
  for (const [maxLength, docStride] of [
    [384, 128],
    [128, 32],
  ]) {
    const t0 = Date.now();
    const ds = new QADataset(examples, tok, { maxLength, docStride });
    t.log(`maxLength ${maxLength}/${docStride}: ${ds.length} windows for ${ds.numExamples} questions in ${Date.now() - t0} ms`);
    let inside = 0;
    let exact = 0;
    const problems: string[] = [];
    const covered = new Set<number>();
    for (let f = 0; f < ds.length; f++) {
      const ex = examples[ds.exampleIndex[f]];
      if (ds.lengthOf(f) > maxLength) problems.push(`window ${f} is ${ds.lengthOf(f)} long`);
      const s = ds.startPositions[f];
      const e = ds.endPositions[f];
      if (ex.isImpossible || s === 0) {
        if (s !== 0 || e !== 0) problems.push(`window ${f}: ${s}/${e} for an impossible question or a window without the answer`);
        continue;
      }
      inside++;
      covered.add(ds.exampleIndex[f]);
      if (!(s >= ds.contextStart[f] && e < ds.contextEnd[f] && s <= e)) problems.push(`window ${f}: ${s}/${e} outside its context`);
      const a = ds.offsetAt(f, s) as [number, number];
      const b = ds.offsetAt(f, e) as [number, number];
      const span = ex.context.slice(a[0], b[1]);
      const ans = ex.answers[0];
      if (!(a[0] <= ans.start && b[1] >= ans.start + ans.text.length)) problems.push(`window ${f}: ${span} does not cover ${ans.text}`);
      if (span === ans.text) exact++;
    }
    t.deepEqual(problems, []);
    const answerable = count(examples, (x) => !x.isImpossible);
    t.is(covered.size, answerable, 'every answerable question has a window with its answer');
    t.log(`windows with the answer: ${inside}; token span slices to exactly the answer text in ${exact} (${((100 * exact) / inside).toFixed(1)}%)`);
    t.true(exact / inside > 0.95);
    if (maxLength === 128) t.true(ds.length > ds.numExamples, 'long contexts need several windows');
  }
});

qaTest('QADataset.postprocess recovers answers from logits peaking at them; null answers win for impossible questions', async (t) => {
  const tok = bertTokenizer();
  const examples = await squadExamples();
  const ds = new QADataset(examples, tok, { maxLength: 192, docStride: 64 });
  t.true(ds.version2);
  const seqLen = ds.maxLength;
  const start = new Float32Array(ds.length * seqLen).fill(-5);
  const end = new Float32Array(ds.length * seqLen).fill(-5);
  for (let f = 0; f < ds.length; f++) {
    const s = ds.startPositions[f];
    const e = ds.endPositions[f];
    start[f * seqLen + s] = s === 0 ? 2 : 10;
    end[f * seqLen + e] = e === 0 ? 2 : 10;
  }
  const preds = ds.postprocess(start, end, seqLen);
  t.is(Object.keys(preds).length, examples.length);
  for (const ex of examples.slice(0, 50)) {
    if (ex.isImpossible) t.is(preds[ex.id], '');
    else t.true(preds[ex.id].includes(ex.answers[0].text) || ex.answers[0].text.includes(preds[ex.id]));
  }
  const m = squadMetrics(preds, examples);
  t.log(`oracle logits: EM ${m.exactMatch.toFixed(2)} F1 ${m.f1.toFixed(2)} (hasAns EM ${m.hasAns?.exactMatch.toFixed(2)}, noAns EM ${m.noAns?.exactMatch})`);
  t.is(m.noAns?.exactMatch, 100);
  t.true((m.hasAns as { exactMatch: number }).exactMatch > 95);

  // One hand-checked example: the first answerable question.
  const e0 = examples.findIndex((x) => !x.isImpossible);
  const f0 = ds.featureStart[e0];
  t.is(preds[examples[e0].id], examples[e0].answers[0].text);
  t.is(examples[e0].answers[0].text, 'France');

  // Without version2 the best span is always returned.
  const v1 = ds.postprocess(start, end, seqLen, { version2: false });
  t.true(count(Object.values(v1), (p) => p === '') < count(Object.values(preds), (p) => p === ''));
  // maxAnswerLength 1 rules out longer spans
  const short = ds.postprocess(start, end, seqLen, { version2: false, maxAnswerLength: 1 });
  t.not(short[examples[e0].id], undefined);
  t.true(ds.feature(f0).offsets.some((o) => o !== null));
});

qaTest('QALogitCollector gathers dynamically padded batches for postprocess', async (t) => {
  const tok = bertTokenizer();
  const examples = await squadExamples();
  const subset = examples.slice(0, 60);
  const ds = new QADataset(subset, tok, { maxLength: 128, docStride: 32 });
  const full = ds.maxLength;
  const start = new Float32Array(ds.length * full);
  const end = new Float32Array(ds.length * full);
  const r = rng(11);
  for (let i = 0; i < start.length; i++) {
    start[i] = r() * 4;
    end[i] = r() * 4;
  }
  const expected = ds.postprocess(start, end, full);
  const c = ds.logitCollector();
  for (const b of ds.batches(7, { shuffle: true, seed: 3 })) {
    t.true(b.seqLen <= full);
    t.is(b.startPositions.length, b.batchSize);
    const s = new Float32Array(b.batchSize * b.seqLen);
    const e = new Float32Array(b.batchSize * b.seqLen);
    for (let row = 0; row < b.batchSize; row++) {
      const f = b.featureIndices[row];
      for (let k = 0; k < b.seqLen; k++) {
        s[row * b.seqLen + k] = start[f * full + k];
        e[row * b.seqLen + k] = end[f * full + k];
      }
      t.is(b.tokenTypeIds[row * b.seqLen + ds.contextStart[f]], 1);
      t.is(b.tokenTypeIds[row * b.seqLen + ds.contextStart[f] - 1], 0);
    }
    c.add(b, s, e);
  }
  t.true(c.complete);
  t.deepEqual(ds.postprocess(c.start, c.end, c.seqLen), expected);
});
