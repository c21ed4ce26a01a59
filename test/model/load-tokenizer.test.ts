/** lib/model/pipelines loadTokenizer: the tokenizer follows the model's family (config.json model_type). */
import * as fs from 'fs';
import * as path from 'path';
import { loadTokenizer } from '../../lib/model/pipelines';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { shared, withShared } from '../helpers';
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
