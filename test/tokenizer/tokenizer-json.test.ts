/** lib/tokenizer/tokenizer-json: loading a tokenizer directory (tokenizer.json, vocab.txt, tokenizer_config.json) and its errors. */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { BertTokenizer, TokenizerError } from '../../lib/tokenizer/tokenizer';
import { BERT_DIR, st, tmpDir } from './helpers';

test('fromDir: missing files -> E_FILE_NOT_FOUND naming both paths', (t) => {
  const d = tmpDir();
  const err = t.throws(() => BertTokenizer.fromDir(d));
  t.true(err instanceof TokenizerError);
  t.is((err as TokenizerError).code, 'E_FILE_NOT_FOUND');
  t.true(err!.message.includes(path.join(d, 'tokenizer.json')));
  t.true(err!.message.includes(path.join(d, 'vocab.txt')));
});

test('fromDir: invalid JSON -> E_BAD_TOKENIZER naming the file', (t) => {
  const d = tmpDir();
  fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"model": {');
  const err = t.throws(() => BertTokenizer.fromDir(d));
  t.is((err as TokenizerError).code, 'E_BAD_TOKENIZER');
  t.true(err!.message.includes(path.join(d, 'tokenizer.json')));

  const d2 = tmpDir();
  fs.writeFileSync(path.join(d2, 'vocab.txt'), '[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n');
  fs.writeFileSync(path.join(d2, 'tokenizer_config.json'), 'not json');
  const err2 = t.throws(() => BertTokenizer.fromDir(d2));
  t.is((err2 as TokenizerError).code, 'E_BAD_TOKENIZER');
  t.true(err2!.message.includes(path.join(d2, 'tokenizer_config.json')));

  const d3 = tmpDir();
  fs.writeFileSync(path.join(d3, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] } }));
  t.is((t.throws(() => BertTokenizer.fromDir(d3)) as TokenizerError).code, 'E_BAD_TOKENIZER');

  const d4 = tmpDir();
  fs.writeFileSync(path.join(d4, 'vocab.txt'), 'hello\nworld\n'); // no [CLS]/[SEP]/[UNK]
  t.is((t.throws(() => BertTokenizer.fromDir(d4)) as TokenizerError).code, 'E_BAD_TOKENIZER');
});

test('fromDir: small vocab.txt works end to end', (t) => {
  const d = tmpDir();
  fs.writeFileSync(path.join(d, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'hello', 'play', '##ing', ','].join('\n') + '\n');
  const tk = BertTokenizer.fromDir(d);
  t.is(tk.vocabSize, 9);
  t.deepEqual(tk.tokenize('Hello, playing xyz'), ['hello', ',', 'play', '##ing', '[UNK]']);
  t.deepEqual(tk.encode('Hello').inputIds, [2, 5, 3]);
  const o = tk.tokenizeWithOffsets('Playing');
  t.deepEqual(o.offsets, [[0, 4], [4, 7]]);
});

st('tokenizer_config.json do_lower_case=false is respected on both paths', (t) => {
  const dv = tmpDir();
  fs.copyFileSync(path.join(BERT_DIR, 'vocab.txt'), path.join(dv, 'vocab.txt'));
  fs.writeFileSync(path.join(dv, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
  const dj = tmpDir();
  fs.copyFileSync(path.join(BERT_DIR, 'tokenizer.json'), path.join(dj, 'tokenizer.json'));
  fs.writeFileSync(path.join(dj, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
  for (const d of [dv, dj]) {
    const tk = BertTokenizer.fromDir(d);
    t.false(tk.doLowerCase);
    // the uncased vocabulary has no capitalised words; accents are kept when not lowercasing
    t.deepEqual(tk.tokenize('hello Hello'), ['hello', '[UNK]']);
    t.notDeepEqual(tk.tokenize('café'), ['cafe']);
  }
});
