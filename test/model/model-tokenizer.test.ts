/**
 * The model's tokenizer: loadTokenizer follows the model's family (config.json model_type), and save() copies a
 * RoBERTa tokenizer's files (vocab.json + merges.txt) with the model.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BertModel } from '../../lib/model/model';
import { loadTokenizer } from '../../lib/model/pipelines';
import { AutoTokenizer } from '../../lib/tokenizer/auto-tokenizer';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { shared, tempDir, withShared } from '../helpers';
import { tmpDir } from '../tokenizer/helpers';

function modelDir(modelType: string): string {
  const d = tmpDir();
  fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ model_type: modelType }));
  return d;
}

withShared('data/roberta-base', 'data/bert-base-uncased')('loadTokenizer follows the model config.json, with the tokenizer in another directory', (t) => {
  const robertaModel = modelDir('roberta');
  const tk = loadTokenizer(robertaModel, shared('data/roberta-base'));
  t.is(tk.family, 'roberta');
  t.deepEqual(tk.encode('Hello world').inputIds, [0, 31414, 232, 2]);
  const distil = loadTokenizer(modelDir('distilbert'), shared('data/bert-base-uncased'));
  t.is(distil.family, 'distilbert');
  t.true(distil.encode('a', 'b').tokenTypeIds.every((x) => x === 0));
  t.true(loadTokenizer(shared('data/bert-base-uncased')) instanceof BertTokenizer);
});

withShared('data/roberta-base')('save() copies vocab.json and merges.txt with the model', async (t) => {
  const a = tempDir();
  const b = tempDir();
  try {
    const m = await BertModel.fromConfig({ vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64 }, { seed: 1 });
    await m.save(a.path);
    m.dispose();
    for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(shared('data/roberta-base'), f), path.join(a.path, f));
    const loaded = await BertModel.fromPretrained(a.path);
    await loaded.save(b.path);
    loaded.dispose();
    for (const f of ['vocab.json', 'merges.txt']) t.deepEqual(fs.readFileSync(path.join(b.path, f)), fs.readFileSync(path.join(a.path, f)), f);
    t.deepEqual(AutoTokenizer.fromDir(b.path, { modelType: 'roberta' }).encode('Hello world').inputIds, [0, 31414, 232, 2]);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});
