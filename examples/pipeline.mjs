// The README's "## API" program, runnable (ESM): pipelines (classification and question answering), then the
// model itself: forward on typed arrays, save, reload, dispose. `node examples/pipeline.mjs`
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BertModel, pipeline, setNumThreads } from 'blockprune';
import tiny from './tiny-model.js';

setNumThreads(2);
const work = tiny.tempFolder();
try {
  const clsDir = await tiny.makeTinyModel(join(work.path, 'my-sst2-model'));
  const qaDir = await tiny.makeTinyModel(join(work.path, 'my-squad-model'), 'question-answering');

  const classify = await pipeline('text-classification', clsDir);
  const one = await classify('a gripping, well acted film'); // one input: one result (labels: config.json's id2label)
  console.log('classify:', one.label, one.score.toFixed(3));
  assert.ok(['negative', 'positive'].includes(one.label));
  const batch = await classify(['good', 'bad']); // a batch: one result each
  assert.equal(batch.length, 2);
  const pair = await classify({ text: 'is it raining', textPair: 'the sun is out' }); // a sentence pair
  console.log('pair:', pair.label);
  const top = await classify('meh', { topK: 2 }); // the two best labels: an array
  assert.deepEqual(top.map((r) => r.label).sort(), ['negative', 'positive']);
  console.log('topK 2:', top.map((r) => `${r.label} ${r.score.toFixed(3)}`).join(', '));

  const qa = await pipeline('question-answering', qaDir);
  const context = 'The Eiffel tower is in Paris.';
  const answer = await qa({ question: 'Where is the Eiffel tower?', context });
  assert.equal(context.slice(answer.start, answer.end), answer.answer); // offsets into the context
  console.log('qa:', JSON.stringify(answer));
  classify.dispose();
  qa.dispose();

  // The model itself: flat typed arrays in, named tensors out.
  const model = await BertModel.fromPretrained(clsDir, { device: 'cpu' });
  const inputIds = new Int32Array([2, 10, 11, 12, 3, 2, 13, 14, 3, 0]);
  const attentionMask = new Int32Array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
  const tokenTypeIds = new Int32Array(10);
  const out = await model.forward({ inputIds, attentionMask, tokenTypeIds, batchSize: 2, seqLen: 5 });
  console.log('logits:', out.logits.shape, out.logits.dtype);
  assert.deepEqual(out.logits.shape, [2, 2]);
  await model.save(join(work.path, 'copy')); // config.json + model.safetensors (+ tokenizer files)
  const copy = await BertModel.fromPretrained(join(work.path, 'copy'));
  const again = await copy.forward({ inputIds, attentionMask, tokenTypeIds, batchSize: 2, seqLen: 5 });
  assert.deepEqual(again.logits.data, out.logits.data); // the saved model gives the same logits
  console.log('saved and reloaded: same logits');
  model.dispose();
  copy.dispose();
} finally {
  work.cleanup();
}
