/** lib/data/classification-dataset: tokenized classification sets, seeded batches, dynamic padding, truncation. */
import { join } from 'node:path';
import { ClassificationDataset } from '../../lib/data/classification-dataset';
import { loadGlue } from '../../lib/data/glue';
import type { ClassificationExample } from '../../lib/data/glue';
import { rng } from '../../lib/data/rng';
import { BERT, bertTokenizer, shared, withShared } from './helpers';

const SST2 = 'data/sst2';

withShared(SST2, BERT)('SST-2 train+dev (67,349 sentences) tokenizes in seconds', async (t) => {
  const dir = shared(SST2);
  const tok = bertTokenizer();
  const all = [...(await loadGlue('sst2', join(dir, 'train.tsv'))).examples, ...(await loadGlue('sst2', join(dir, 'dev.tsv'))).examples];
  const t0 = process.hrtime.bigint();
  const ds = new ClassificationDataset(all, tok, { maxLength: 128 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.log(`ClassificationDataset over ${ds.length} SST-2 sentences: ${ms.toFixed(0)} ms`);
  t.is(ds.length, 67349);
  t.is(ds.labels.reduce((a, b) => a + b, 0), 37569);
  t.true(ms < 60_000, `took ${ms} ms`);
});

function toyExamples(): ClassificationExample[] {
  const words = ['good', 'bad', 'movie', 'plot', 'actor', 'boring', 'great', 'film', 'the', 'a'];
  const r = rng(3);
  return Array.from({ length: 103 }, (_, i) => {
    const n = 1 + Math.floor(r() * 12);
    const text = Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ');
    return i % 4 === 0 ? { text, textPair: 'why ' + text, label: i % 2 } : { text, label: i % 2, id: i };
  });
}

withShared(BERT)('ClassificationDataset batches: seeded, epoch-dependent, each example once, dynamic padding', (t) => {
  const tok = bertTokenizer();
  const examples = toyExamples();
  const ds = new ClassificationDataset(examples, tok, { maxLength: 32 });
  t.is(ds.length, 103);
  t.deepEqual(Array.from(ds.labels), examples.map((e) => e.label));
  const enc0 = tok.encode(examples[0].text, examples[0].textPair, { maxLength: 32 });
  t.deepEqual(ds.get(0), { inputIds: enc0.inputIds, tokenTypeIds: enc0.tokenTypeIds, label: 0 });

  const order = (epoch: number, seed = 1): number[] => [...ds.batches(16, { shuffle: true, seed, epoch })].flatMap((b) => Array.from(b.indices));
  t.deepEqual(order(0), order(0), 'same seed and epoch: same order');
  t.notDeepEqual(order(0), order(1), 'epochs differ');
  t.notDeepEqual(order(0), order(0, 2), 'seeds differ');
  for (const e of [0, 1, 2]) {
    t.deepEqual(
      [...order(e)].sort((a, b) => a - b),
      Array.from({ length: 103 }, (_, i) => i),
      'every example exactly once per epoch',
    );
  }
  const plain = [...ds.batches(16)];
  t.is(plain.length, 7);
  t.is(ds.numBatches(16), 7);
  t.deepEqual(
    plain.flatMap((b) => Array.from(b.indices)),
    Array.from({ length: 103 }, (_, i) => i),
  );
  t.is([...ds.batches(16, { dropLast: true })].length, 6);
  t.is(ds.numBatches(16, true), 6);

  const seqLens = new Set<number>();
  for (const b of ds.batches(16, { shuffle: true, seed: 5 })) {
    const lens = Array.from(b.indices).map((i) => ds.lengthOf(i));
    t.is(b.seqLen, Math.max(...lens), 'padded to the longest row of the batch');
    seqLens.add(b.seqLen);
    t.is(b.inputIds.length, b.batchSize * b.seqLen);
    for (let r = 0; r < b.batchSize; r++) {
      const i = b.indices[r];
      const row = ds.get(i);
      const base = r * b.seqLen;
      t.deepEqual(Array.from(b.inputIds.subarray(base, base + lens[r])), row.inputIds);
      t.deepEqual(Array.from(b.tokenTypeIds.subarray(base, base + lens[r])), row.tokenTypeIds);
      t.true(b.inputIds.subarray(base + lens[r], base + b.seqLen).every((x) => x === tok.padId));
      t.is(
        b.attentionMask.subarray(base, base + b.seqLen).reduce((a, x) => a + x, 0),
        lens[r],
      );
      t.is(b.labels[r], examples[i].label);
    }
  }
  t.true(seqLens.size > 1, 'batch lengths vary');
});

withShared(BERT)('ClassificationDataset pair truncation: only_second keeps the question, longest_first otherwise', (t) => {
  const tok = bertTokenizer();
  const long = Array.from({ length: 60 }, (_, i) => `word${i % 10}`).join(' ');
  const ds = new ClassificationDataset(
    [
      { text: 'is the sky blue', textPair: long, label: 1 },
      { text: long, textPair: 'short', label: 0 },
    ],
    tok,
    { maxLength: 24 },
  );
  t.is(ds.truncated, 2);
  const q = tok.encodeText('is the sky blue');
  const a = ds.get(0);
  t.is(a.inputIds.length, 24);
  t.deepEqual(a.inputIds.slice(1, 1 + q.length), q, 'question kept whole');
  const b = ds.get(1);
  t.is(b.inputIds.length, 24);
  t.deepEqual(b.inputIds.slice(-2), [...tok.encodeText('short'), tok.sepId]);
});
