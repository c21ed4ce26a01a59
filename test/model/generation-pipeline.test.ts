/**
 * pipeline('summarization' | 'text2text-generation') over the bart-tiny and t5-tiny fixtures (issue 18), each
 * with a 1024-token tokenizer in its family's format (test/seq2seq-dirs.ts) (byte-level BPE for BART, a T5-shaped Unigram
 * tokenizer.json for T5): the pipeline's text is the tokenizer's decoding of the model's generate() ids, a batch
 * gives one result per input, stream() pieces concatenate to the same text, config.json's task_specific_params
 * (prefix, lengths) apply under the call's options, and bad input is a coded error.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from '../../lib/model/pipelines';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { loadTokenizer } from '../../lib/model/pipelines';
import { shared, tempDir } from '../helpers';
import { bartDir, seq2seqTest, t5Dir } from '../seq2seq-dirs';

const fixtureTest = seq2seqTest;

for (const [family, make] of [['bart', bartDir], ['t5', t5Dir]] as const) {
  fixtureTest(`${family}: summarization and text2text-generation give the tokenizer's text of generate()'s ids; stream() the same text`, async (t) => {
    const tmp = tempDir();
    try {
      const dir = make(tmp.path);
      const texts = ['a quiet film about the sea', 'the end'];
      const tokenizer = loadTokenizer(dir);
      t.is(tokenizer.family, family);
      const enc = tokenizer.encodeBatch(texts, { maxLength: 16, truncation: 'longest_first' });
      const model = await Seq2SeqModel.fromPretrained(dir);
      const ids = await model.generate(enc, { maxLength: 10 });
      const [, L] = ids.sequences.shape;
      const expected = [0, 1].map((r) => tokenizer.decode((ids.sequences.data as BigInt64Array).subarray(r * L, (r + 1) * L), { skipSpecialTokens: true }));
      model.dispose();
      t.true(expected.every((x) => x.length > 0), JSON.stringify(expected));

      const summarize = await pipeline('summarization', dir, { maxLength: 16 });
      t.is(summarize.task, 'summarization');
      t.deepEqual(await summarize(texts, { maxLength: 10 }), expected.map((summary_text) => ({ summary_text })));
      t.deepEqual(await summarize(texts[0], { maxLength: 10 }), { summary_text: expected[0] });
      let streamed = '';
      for await (const piece of summarize.stream(texts[0], { maxLength: 10 })) streamed += piece;
      t.is(streamed, expected[0]);
      // Beam search through the pipeline, several sequences per input.
      const beams = await summarize(texts[0], { maxLength: 10, numBeams: 3, numReturnSequences: 2 });
      t.true(Array.isArray(beams) && beams.length === 2);
      await t.throwsAsync(summarize(texts, { numBeams: 0 }), { code: 'E_INVALID_ARG', message: /numBeams/ });
      await t.throwsAsync(summarize([texts[0], 7 as never]), { code: 'E_INVALID_ARG', message: /inputs\[1\]/ });
      summarize.dispose();

      const generate = await pipeline('text2text-generation', dir, { maxLength: 16 });
      t.deepEqual(await generate(texts[1], { maxLength: 10 }), { generated_text: expected[1] });
      generate.dispose();
    } finally {
      tmp.cleanup();
    }
  });
}

fixtureTest("t5: config.json's task_specific_params give the task's prefix and lengths under the call's options", async (t) => {
  const tmp = tempDir();
  try {
    const dir = t5Dir(tmp.path, (c) => (c.task_specific_params = { summarization: { prefix: 'summarize: ', max_length: 6, num_beams: 1 } }));
    const tokenizer = loadTokenizer(dir);
    const model = await Seq2SeqModel.fromPretrained(dir);
    const enc = tokenizer.encodeBatch(['summarize: the sea'], {});
    const ids = await model.generate(enc, { maxLength: 6 });
    model.dispose();
    t.is(ids.sequences.shape[1], 6);
    const want = tokenizer.decode(ids.sequences.data as BigInt64Array, { skipSpecialTokens: true });
    const summarize = await pipeline('summarization', dir);
    t.deepEqual(await summarize('the sea'), { summary_text: want });
    // The call's own options win over the config's.
    const longer = await summarize('the sea', { maxLength: 9 });
    t.not((longer as { summary_text: string }).summary_text, want);
    summarize.dispose();
  } finally {
    tmp.cleanup();
  }
});

fixtureTest('a classification checkpoint or a tokenizer larger than the vocabulary is refused, coded', async (t) => {
  const tmp = tempDir();
  try {
    const cls = join(tmp.path, 'cls');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(cls);
    bartDir(cls);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(shared('fixtures/bart-tiny-cls'), f), join(cls, f));
    await t.throwsAsync(pipeline('summarization', cls), { code: 'E_BAD_CONFIG', message: /BartForSequenceClassification does not generate/ });
    await t.throwsAsync(pipeline('translation' as never, cls), { code: 'E_INVALID_ARG', message: /summarization/ });
    // roberta-base's 50,265 tokens on a 1,024-token model: ids past its embedding table.
    const big = shared('data/roberta-base');
    if (existsSync(join(big, 'vocab.json')))
      await t.throwsAsync(pipeline('summarization', bartDir(tmp.path), { tokenizer: big }), { code: 'E_BAD_CONFIG', message: /50265 tokens but the model's vocab_size is 1024/ });
    else t.log('../shared/data/roberta-base is absent: the tokenizer-size case was not run');
  } finally {
    tmp.cleanup();
  }
});
