/**
 * Pipelines end to end on real text: a small random BERT with the bert-base-uncased vocabulary, saved
 * with its tokenizer, answers through pipeline(...) exactly as the model's own forward does.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { pipeline } from '../../lib/model/pipelines';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { shared, tempDir, withShared } from '../helpers';

const TINY = {
  vocab_size: 30522,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 512,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
};

const BERT = 'data/bert-base-uncased';
const SQUAD_DEV = 'data/squad/dev-v2.0-first5articles.json';

/** A random tiny model saved with bert-base-uncased's tokenizer (tests registered with `withShared(BERT)`). */
async function makeModelDir(task: 'text-classification' | 'question-answering', extra: Record<string, unknown> = {}, tokenizerFile = 'tokenizer.json') {
  const tokDir = shared(BERT);
  const tmp = tempDir();
  const m = await BertModel.fromConfig({ ...TINY, ...extra }, { task, seed: 7 });
  await m.save(tmp.path);
  m.dispose();
  copyFileSync(join(tokDir, tokenizerFile), join(tmp.path, tokenizerFile));
  return tmp;
}

withShared(BERT)('text-classification: labels from id2label, scores are softmax of the logits, pairs, batches', async (t) => {
  const tmp = await makeModelDir('text-classification', {
    num_labels: 3,
    id2label: { '0': 'negative', '1': 'neutral', '2': 'positive' },
    label2id: { negative: 0, neutral: 1, positive: 2 },
  });
  try {
    const classify = await pipeline('text-classification', tmp.path);
    const one = (await classify('it \'s a charming and often affecting journey .')) as { label: string; score: number };
    t.true(['negative', 'neutral', 'positive'].includes(one.label));
    // The same through the model: softmax of its logits.
    const tok = BertTokenizer.fromDir(tmp.path);
    const enc = tok.encodeBatch(["it 's a charming and often affecting journey ."]);
    const logits = (await classify.model.forward(enc)).logits.data as Float32Array;
    const max = Math.max(...logits);
    const z = Array.from(logits).reduce((a, v) => a + Math.exp(v - max), 0);
    const best = Array.from(logits).indexOf(max);
    t.is(one.label, ['negative', 'neutral', 'positive'][best]);
    t.true(Math.abs(one.score - 1 / z) < 1e-6, `score ${one.score} vs ${1 / z}`);
    const all = (await classify('a gripping film', { topK: 3 })) as Array<{ label: string; score: number }>;
    t.is(all.length, 3);
    t.true(Math.abs(all.reduce((a, r) => a + r.score, 0) - 1) < 1e-5);
    const pair = await classify({ text: 'is the sky blue', textPair: 'the sky is blue on a clear day' });
    t.truthy((pair as any).label, '{ text, textPair } is one pair');
    const two = (await classify(['is the sky blue', 'the sky is blue on a clear day'])) as any[];
    t.is(two.length, 2, 'an array of two strings is a batch of two, as in HF');
    const many = (await classify(['good', ['a question?', 'a passage.'], { text: 'q?', textPair: 'p.' }, 'x'.repeat(5000)])) as any[];
    t.is(many.length, 4);
    // The run-time shapes the call signatures promise (test/package/types.test.ts checks the types): one input
    // gives an object, or an array with topK; a batch gives one of those per input.
    t.false(Array.isArray(one));
    t.true(Array.isArray(await classify('x', { topK: 1 })));
    const batch = await classify(['good', 'bad']);
    t.true(batch.every((r) => !Array.isArray(r) && typeof r.label === 'string'));
    const batchK = await classify(['good', 'bad'], { topK: 2 });
    t.true(batchK.every((r) => Array.isArray(r) && r.length === 2));
    const err: any = await t.throwsAsync(async () => classify([42 as any, 'ok']));
    t.is(err.code, 'E_INVALID_ARG');
    classify.dispose();
  } finally {
    tmp.cleanup();
  }
});

withShared(SQUAD_DEV, BERT)('question-answering: answers are exact substrings of long contexts; vocab.txt-only dirs work', async (t) => {
  const squad = shared(SQUAD_DEV);
  for (const tokFile of ['tokenizer.json', 'vocab.txt']) {
    const tmp = await makeModelDir('question-answering', {}, tokFile);
    try {
      const qa = await pipeline('question-answering', tmp.path);
      const data = JSON.parse(readFileSync(squad, 'utf8'));
      const paragraphs = data.data.flatMap((a: any) => a.paragraphs).slice(0, 6);
      let n = 0;
      for (const p of paragraphs) {
        const q = p.qas.find((x: any) => !x.is_impossible);
        // Small windows force several per context, so the best-over-windows logic is exercised.
        const r = (await qa({ question: q.question, context: p.context }, { maxSeqLength: 96, docStride: 32 })) as any;
        t.is(p.context.slice(r.start, r.end), r.answer, 'answer is the context substring at [start, end)');
        t.true(r.answer.length > 0);
        t.true(r.score > 0 && r.score <= 1);
        n++;
      }
      const top = (await qa({ question: 'Who?', context: paragraphs[0].context }, { topK: 3 })) as any[];
      t.is(top.length, 3);
      t.true(top[0].score >= top[1].score && top[1].score >= top[2].score);
      // Shapes as typed: topK 1 (the default) an object, larger an array; an array of questions one result each.
      t.false(Array.isArray(await qa({ question: 'Who?', context: paragraphs[0].context }, { topK: 1 })));
      const asked = [{ question: 'Who?', context: paragraphs[0].context }, { question: 'When?', context: paragraphs[1].context }];
      t.true((await qa(asked)).every((r) => !Array.isArray(r) && typeof r.answer === 'string'));
      t.true((await qa(asked, { topK: 2 })).every((r) => Array.isArray(r) && r.length === 2));
      const withNull = (await qa({ question: 'Who?', context: 'Nobody is here.' }, { handleImpossibleAnswer: true })) as any;
      t.true(typeof withNull.answer === 'string');
      const err: any = await t.throwsAsync(async () => qa({ question: 'q' } as any));
      t.is(err.code, 'E_INVALID_ARG');
      t.log(`${tokFile}: ${n} SQuAD contexts answered with exact substrings`);
      qa.dispose();
    } finally {
      tmp.cleanup();
    }
  }
});

withShared('fixtures/bert-tiny-cls', BERT)('pipeline errors: no tokenizer, unknown task, missing directory', async (t) => {
  const fixtures = shared('fixtures/bert-tiny-cls');
  let err: any = await t.throwsAsync(pipeline('text-classification', fixtures));
  t.is(err.code, 'E_FILE_NOT_FOUND');
  t.regex(err.message, /tokenizer\.json/);
  err = await t.throwsAsync(pipeline('translation' as any, fixtures));
  t.is(err.code, 'E_INVALID_ARG');
  // A tokenizer bigger than the model's vocabulary would produce out-of-range ids: refused up front.
  const tok = shared(BERT);
  err = await t.throwsAsync(pipeline('text-classification', fixtures, { tokenizer: tok }));
  t.is(err.code, 'E_BAD_CONFIG');
});
