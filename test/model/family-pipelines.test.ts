/**
 * Pipelines for the other families, end to end on real text: a small random RoBERTa with roberta-base's
 * byte-level BPE (vocab.json + merges.txt) and a small random DistilBERT with bert-base-uncased's WordPiece,
 * saved with their tokenizers, answer through pipeline(...) as their own forward does; QA answers are the
 * context's characters; a batch (padded with RoBERTa's pad id 1) answers as one request at a time.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configForFamily } from '../../lib/model/family-config';
import { BertModel } from '../../lib/model/model';
import type { ModelFamily, Task } from '../../lib/model/model';
import { pipeline } from '../../lib/model/pipelines';
import { shared, tempDir, withShared } from '../helpers';

const SETUPS: Array<{ family: ModelFamily; tokenizer: string; files: string[]; vocab: number }> = [
  { family: 'roberta', tokenizer: 'data/roberta-base', files: ['vocab.json', 'merges.txt'], vocab: 50265 },
  { family: 'distilbert', tokenizer: 'data/bert-base-uncased', files: ['vocab.txt'], vocab: 30522 },
];

/** A random tiny model of `family` saved with the tokenizer files. */
async function modelDir(s: (typeof SETUPS)[number], task: Task) {
  const tmp = tempDir();
  const config = configForFamily(s.family, {
    vocab_size: s.vocab,
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    max_position_embeddings: 256,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  });
  const m = await BertModel.fromConfig(config, { task, seed: 3 });
  await m.save(tmp.path);
  m.dispose();
  for (const f of s.files) copyFileSync(join(shared(s.tokenizer), f), join(tmp.path, f));
  return tmp;
}

const CONTEXT =
  'The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after the engineer ' +
  'Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.';

for (const s of SETUPS) {
  withShared(s.tokenizer)(`${s.family}: text-classification and question-answering pipelines with its own tokenizer`, async (t) => {
    const cls = await modelDir(s, 'text-classification');
    const qaDir = await modelDir(s, 'question-answering');
    try {
      const classify = await pipeline('sentiment-analysis', cls.path);
      t.is(classify.model.family, s.family);
      t.is(classify.tokenizer.family, s.family);
      const text = 'a gripping, well acted film';
      const one = (await classify(text)) as { label: string; score: number };
      // The same through the model and the tokenizer: softmax of its logits.
      const enc = classify.tokenizer.encodeBatch([text]);
      const logits = Array.from((await classify.model.forward(enc)).logits.data as Float32Array);
      const max = Math.max(...logits);
      const z = logits.reduce((a, v) => a + Math.exp(v - max), 0);
      t.is(one.label, classify.model.labels[logits.indexOf(max)]);
      t.true(Math.abs(one.score - 1 / z) < 1e-6);
      // A pair: one token type for RoBERTa, none for DistilBERT; either way it runs.
      t.truthy(((await classify({ text: 'is it good', textPair: text })) as { label: string }).label);
      const saved = JSON.parse(readFileSync(join(cls.path, 'config.json'), 'utf8'));
      t.is(saved.model_type, s.family);

      const qa = await pipeline('question-answering', qaDir.path);
      t.is(qa.tokenizer.family, s.family);
      const questions = ['Who designed the tower?', 'Where is the Eiffel Tower?'];
      const alone = [];
      for (const question of questions) {
        const r = (await qa({ question, context: CONTEXT })) as { answer: string; start: number; end: number; score: number };
        t.is(CONTEXT.slice(r.start, r.end), r.answer, 'the answer is the context between its offsets');
        t.true(r.answer.length > 0 && r.score > 0 && r.score <= 1);
        alone.push(r);
      }
      // Both at once: windows of different lengths in one padded batch give the same answers.
      const both = (await qa(questions.map((question) => ({ question, context: CONTEXT })))) as typeof alone;
      for (let i = 0; i < questions.length; i++) {
        t.is(both[i].answer, alone[i].answer);
        t.true(Math.abs(both[i].score - alone[i].score) < 1e-5, `${both[i].score} vs ${alone[i].score}`);
      }
      t.log(`${s.family}: "${one.label}" ${one.score.toFixed(3)}; answers ${alone.map((r) => JSON.stringify(r.answer)).join(', ')}`);
      classify.dispose();
      qa.dispose();
    } finally {
      cls.cleanup();
      qaDir.cleanup();
    }
  });
}
