/**
 * lib/tokenizer/auto-tokenizer: the family of a tokenizer directory (tokenizer_class, model_type, the files),
 * the layout each family gets, and the errors when they disagree. Small vocabularies built here, plus the
 * shared roberta-base and bert-base-uncased files where present.
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { AutoTokenizer } from '../../lib/tokenizer/auto-tokenizer';
import { BertTokenizer, buildRobertaTokenizerJson, PreTrainedTokenizer, TOKENIZER_FAMILIES, TokenizerError } from '../../lib/tokenizer/tokenizer';
import { tmpDir } from './helpers';
import { t5TokenizerJson as t5Json } from '../helpers';

const WORDPIECE = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'hello', 'world'];

function dirWith(files: Record<string, unknown>): string {
  const d = tmpDir();
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(d, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return d;
}

const vocabTxt = WORDPIECE.join('\n') + '\n';
/** A tiny byte-level BPE: the specials, "h", "i", "hi" and the merge "h i". */
const bpeFiles = {
  'vocab.json': { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3, h: 4, i: 5, hi: 6, 'Ġ': 7, 'Ġhi': 8, '<mask>': 9 },
  'merges.txt': '#version: 0.2\nh i\nĠ hi\n',
};

test('WordPiece: bert gives a BertTokenizer with token types 0/1; distilbert gives zeros', (t) => {
  const bert = AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt }));
  t.true(bert instanceof BertTokenizer);
  t.is(bert.family, 'bert');
  t.deepEqual(bert.encode('hello', 'world').tokenTypeIds, [0, 0, 0, 1, 1]);
  const viaConfig = AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt, 'config.json': { model_type: 'distilbert' } }));
  const viaClass = AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt, 'tokenizer_config.json': { tokenizer_class: 'DistilBertTokenizerFast' } }));
  const viaOption = AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt }), { modelType: 'distilbert' });
  for (const tk of [viaConfig, viaClass, viaOption]) {
    t.is(tk.family, 'distilbert');
    const e = tk.encode('hello', 'world');
    t.deepEqual(e.inputIds, [2, 5, 3, 6, 3]);
    // DistilBERT has no token type embeddings: the ids are given as zeros, which the model ignores.
    t.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 0]);
  }
});

test('byte-level BPE from vocab.json + merges.txt: RoBERTa layout, pad 1, add_prefix_space from tokenizer_config.json', (t) => {
  const tk = AutoTokenizer.fromDir(dirWith(bpeFiles));
  t.is(tk.family, 'roberta');
  t.false(tk instanceof BertTokenizer);
  t.deepEqual(tk.tokenize('hi hi'), ['hi', 'Ġhi']);
  t.deepEqual(tk.encode('hi', 'hi').inputIds, [0, 6, 2, 2, 6, 2]);
  t.deepEqual(tk.encode('hi', 'hi').tokenTypeIds, [0, 0, 0, 0, 0, 0]);
  const b = tk.encodeBatch(['hi', 'hi hi']);
  t.deepEqual(Array.from(b.inputIds), [0, 6, 2, 1, 0, 6, 8, 2]);
  const prefixed = AutoTokenizer.fromDir(dirWith({ ...bpeFiles, 'tokenizer_config.json': { add_prefix_space: true, model_max_length: 512 } }));
  t.deepEqual(prefixed.tokenize('hi'), ['Ġhi']);
  // The added space stands for no character: "Ġhi" spans "hi".
  t.deepEqual(prefixed.tokenizeWithOffsets('hi').offsets, [[0, 2]]);
  t.is(prefixed.modelMaxLength, 512);
  t.is(tk.modelMaxLength, undefined);
});

test('the family and the files must agree; unknown classes and bad files are named', (t) => {
  const code = (f: () => unknown): string | undefined => (t.throws(f) as TokenizerError).code;
  const mismatch = t.throws(() => AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt, 'config.json': { model_type: 'roberta' } })));
  t.is((mismatch as TokenizerError).code, 'E_BAD_TOKENIZER');
  t.regex(mismatch!.message, /model_type 'roberta' needs a BPE tokenizer but the files hold a WordPiece model/);
  const cls = t.throws(() => AutoTokenizer.fromDir(dirWith({ ...bpeFiles, 'tokenizer_config.json': { tokenizer_class: 'GPT2Tokenizer' } })));
  t.regex(cls!.message, /tokenizer_class 'GPT2Tokenizer' is not supported; supported: BertTokenizer, DistilBertTokenizer, RobertaTokenizer, BartTokenizer, T5Tokenizer, XLMRobertaTokenizer/);
  // A model_type without a tokenizer family of its own: the files decide.
  t.is(AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt, 'config.json': { model_type: 'electra' } })).family, 'bert');
  t.is(code(() => AutoTokenizer.fromDir(dirWith({ ...bpeFiles, 'merges.txt': '#version: 0.2\nh i j\n' }))), 'E_BAD_TOKENIZER');
  t.is(code(() => AutoTokenizer.fromDir(dirWith({ 'vocab.json': bpeFiles['vocab.json'] }))), 'E_FILE_NOT_FOUND');
  t.is(code(() => AutoTokenizer.fromDir(dirWith({ 'tokenizer.json': { model: { type: 'WordLevel', vocab: {} } } }))), 'E_BAD_TOKENIZER');
  t.is(code(() => AutoTokenizer.fromDir(dirWith({ 'tokenizer.json': { model: { type: 'Unigram', vocab: [['a', 'x']], unk_id: 0 } } }))), 'E_BAD_TOKENIZER');
  t.is(code(() => AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt }), { modelType: 'bert', extra: 1 } as never)), 'E_INVALID_ARG');
  // BertTokenizer stays WordPiece only.
  t.is(code(() => BertTokenizer.fromDir(dirWith(bpeFiles))), 'E_BAD_TOKENIZER');
});

test('text that is not a string is refused with E_INVALID_ARG naming it, for every family', (t) => {
  for (const tk of [AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt })), AutoTokenizer.fromDir(dirWith(bpeFiles))]) {
    const calls: Array<[string, () => unknown]> = [
      ['text', () => tk.encode(42 as never)],
      ['pair', () => tk.encode('hi', 42 as never)],
      ['text', () => tk.tokenize({} as never)],
      ['text', () => tk.tokenizeWithOffsets(null as never)],
      ['context', () => tk.encodeQuestionContext('hi', undefined as never, { maxLength: 16, docStride: 2 })],
    ];
    for (const [name, call] of calls) {
      const err = t.throws(call) as TokenizerError;
      t.is(err.code, 'E_INVALID_ARG');
      t.true(err.message.includes(name), err.message);
    }
    t.deepEqual(tk.encode('').inputIds, [tk.clsId, tk.sepId]);
  }
});

test('PreTrainedTokenizer: the family is a table entry or its name, else the model kind decides', (t) => {
  const json = buildRobertaTokenizerJson({ '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3, h: 4 }, []);
  t.is(new PreTrainedTokenizer(json).family, 'roberta');
  t.is(new PreTrainedTokenizer(json, { family: TOKENIZER_FAMILIES.roberta }).family, 'roberta');
  // A byte the tiny vocabulary lacks is <unk> by id and keeps its text (as the slow tokenize() does) and span.
  t.deepEqual(new PreTrainedTokenizer(json).tokenizeWithOffsets('hx'), { ids: [4, 3], tokens: ['h', 'x'], offsets: [[0, 1], [1, 2]] });
  const code = (f: () => unknown): string | undefined => (t.throws(f) as TokenizerError).code;
  t.is(code(() => new PreTrainedTokenizer(json, { family: 'gpt2' })), 'E_INVALID_ARG');
  t.is(code(() => new PreTrainedTokenizer(json, { family: { name: 'x' } as never })), 'E_INVALID_ARG');
  t.is(code(() => new PreTrainedTokenizer(json, { family: 'bert' })), 'E_BAD_TOKENIZER'); // a BPE model is not WordPiece
});

test('BART: model_type or BartTokenizerFast gives RoBERTa byte-level BPE and layout; decode gives the text back', (t) => {
  for (const clue of [{ 'config.json': { model_type: 'bart' } }, { 'tokenizer_config.json': { tokenizer_class: 'BartTokenizerFast' } }]) {
    const tk = AutoTokenizer.fromDir(dirWith({ ...bpeFiles, ...clue }));
    t.is(tk.family, 'bart');
    const e = tk.encode('hi hi', 'hi');
    // <s> hi Ġhi </s></s> hi </s>, one token type.
    t.deepEqual(Array.from(e.inputIds), [0, 6, 8, 2, 2, 6, 2]);
    t.deepEqual(Array.from(e.tokenTypeIds), [0, 0, 0, 0, 0, 0, 0]);
    t.is(tk.decode(e.inputIds), '<s>hi hi</s></s>hi</s>');
    t.is(tk.decode(e.inputIds, { skipSpecialTokens: true }), 'hi hihi');
  }
});

test('decode: every family maps ids back to text; special tokens dropped on request; bad ids and options are coded errors', (t) => {
  const bert = AutoTokenizer.fromDir(dirWith({ 'vocab.txt': vocabTxt }));
  const ids = bert.encode('hello', 'world').inputIds;
  t.is(bert.decode(ids), '[CLS] hello [SEP] world [SEP]');
  t.is(bert.decode(ids, { skipSpecialTokens: true }), 'hello world');
  t.is(bert.decode(BigInt64Array.from([5n, 6n])), 'hello world');
  t.throws(() => bert.decode([5, 99]), { code: 'E_INVALID_ARG', message: /ids\[1\] = 99 is not a token id/ });
  t.throws(() => bert.decode([5, -1]), { code: 'E_INVALID_ARG' });
  t.throws(() => bert.decode([5.5]), { code: 'E_INVALID_ARG' });
  t.throws(() => bert.decode([5], { skipSpecialTokens: 'yes' } as never), { code: 'E_INVALID_ARG', message: /skipSpecialTokens/ });
  t.throws(() => bert.decode([5], { skip_special_tokens: true } as never), { code: 'E_INVALID_ARG' });
  const roberta = AutoTokenizer.fromDir(dirWith(bpeFiles));
  t.is(roberta.decode(roberta.encode('hi hi').inputIds, { skipSpecialTokens: true }), 'hi hi');
});

/** A T5-shaped tokenizer.json, small enough to read. */
const t5TokenizerJson = t5Json([['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁', -2], ['▁hello', -3], ['▁world', -3], ['h', -6], ['e', -6], ['l', -6], ['o', -6], ['▁he', -5], ['llo', -5]]);

test('T5: Unigram with `A </s>` (no start token), pairs `A </s> B </s>`, decode drops </s> and pads', (t) => {
  for (const clue of [{ 'config.json': { model_type: 't5' } }, { 'tokenizer_config.json': { tokenizer_class: 'T5TokenizerFast' } }]) {
    const tk = AutoTokenizer.fromDir(dirWith({ 'tokenizer.json': t5TokenizerJson, ...clue }));
    t.is(tk.family, 't5');
    t.is(tk.clsId, null);
    t.is(tk.sepId, 1);
    t.is(tk.padId, 0);
    t.is(tk.maskId, undefined);
    t.deepEqual(Array.from(tk.encode('hello world').inputIds), [4, 5, 1]);
    const pair = tk.encode('hello', 'world');
    t.deepEqual(Array.from(pair.inputIds), [4, 1, 5, 1]);
    t.deepEqual(Array.from(pair.tokenTypeIds), [0, 0, 0, 0]);
    // Truncation counts one special token for a sequence, two for a pair.
    t.deepEqual(Array.from(tk.encode('hello world hello', null, { maxLength: 3 }).inputIds), [4, 5, 1]);
    t.is(tk.decode([4, 5, 1, 0, 0], { skipSpecialTokens: true }), 'hello world');
    t.is(tk.decode([4, 5, 1]), 'hello world</s>');
    t.throws(() => tk.encodeQuestionContext('hello', 'world', { maxLength: 16, docStride: 4 }), { code: 'E_INVALID_ARG', message: /start token/ });
  }
});
