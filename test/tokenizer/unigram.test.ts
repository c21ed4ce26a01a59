/**
 * XLM-R's Unigram (Metaspace pre-tokenizer) on a small tokenizer.json built here: a handful of pieces with
 * scores, and tokens, ids and offsets derived by hand (the best segmentation is the one with the highest total
 * score, Viterbi).
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { AutoTokenizer } from '../../lib/tokenizer/auto-tokenizer';
import { PreTrainedTokenizer } from '../../lib/tokenizer/tokenizer';
import { tmpDir } from './helpers';

const PIECES: Array<[string, number]> = [
  ['<s>', 0],
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ['\u2581', -3], // 4
  ['\u2581he', -4], // 5
  ['\u2581hel', -6], // 6
  ['\u2581hell', -9], // 7
  ['llo', -3], // 8
  ['lo', -2.5], // 9
  ['l', -4], // 10
  ['o', -4], // 11
  ['h', -5], // 12
  ['e', -5], // 13
  ['\u2581wor', -5], // 14
  ['ld', -3], // 15
  ['\u2581world', -9], // 16
  ['lo\u2581wor', -1], // 17: a piece across a word boundary, which SentencePiece never uses
  ['<mask>', 0], // 18
];

/** The tokenizer.json transformers 4.4.2's XLMRobertaConverter writes (its Precompiled normalizer left out). */
function xlmrJson(): Record<string, unknown> {
  const special = (id: number, content: string, lstrip = false) => ({ id, content, single_word: false, lstrip, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [special(0, '<s>'), special(1, '<pad>'), special(2, '</s>'), special(3, '<unk>'), special(18, '<mask>', true)],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: true },
    decoder: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true },
    model: { type: 'Unigram', unk_id: 3, vocab: PIECES },
  };
}

function load(config: Record<string, unknown> = { tokenizer_class: 'XLMRobertaTokenizer' }): PreTrainedTokenizer {
  const d = tmpDir();
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(xlmrJson()));
  fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(config));
  return AutoTokenizer.fromDir(d);
}

test('Viterbi: the best total score wins, word by word', (t) => {
  const tk = load();
  t.is(tk.family, 'xlm-roberta');
  t.deepEqual({ cls: tk.clsId, pad: tk.padId, sep: tk.sepId, unk: tk.unkId, mask: tk.maskId, size: tk.vocabSize }, { cls: 0, pad: 1, sep: 2, unk: 3, mask: 18, size: 19 });
  // "▁hello": ▁he + llo = -7 beats ▁hel + lo = -8.5, ▁he + l + lo = -10.5, ▁hell + o = -13 (the longest first
  // piece). "▁world": ▁wor + ld = -8 beats the whole-word piece ▁world = -9. The piece "lo▁wor" (-1) would win
  // across the words (▁hel lo▁wor ld = -10 < -15) but each word is segmented on its own.
  const r = tk.tokenizeWithOffsets('hello world');
  t.deepEqual(r.tokens, ['\u2581he', 'llo', '\u2581wor', 'ld']);
  t.deepEqual(r.ids, [5, 8, 14, 15]);
  // The '▁' covers no character: "▁wor" spans "wor", not the space before it.
  t.deepEqual(r.offsets, [[0, 2], [2, 5], [6, 9], [9, 11]]);
  t.deepEqual(tk.encodeText('  hello\t\n world  '), [5, 8, 14, 15]);
});

test('unknown characters: one fused <unk> over a run, spans in UTF-16 units', (t) => {
  const tk = load();
  // "▁héé😀": ▁ and h are pieces, é é 😀 are not: one <unk> over the three (😀 is 2 UTF-16 units).
  const r = tk.tokenizeWithOffsets('x héé😀');
  // "▁x": x is no piece either: ▁ then <unk>.
  t.deepEqual(r.ids, [4, 3, 4, 12, 3]);
  t.deepEqual(r.offsets, [[0, 0], [0, 1], [2, 2], [2, 3], [3, 7]]);
});

test('special tokens in text, <s> A </s></s> B </s> pairs, padding with 1, all token types 0', (t) => {
  const tk = load();
  // Added tokens split the text; every section's first word gets its '▁' (prepend scheme "always").
  const r = tk.tokenizeWithOffsets('hello</s>world');
  t.deepEqual(r.tokens, ['\u2581he', 'llo', '</s>', '\u2581wor', 'ld']);
  t.deepEqual(r.offsets, [[0, 2], [2, 5], [5, 9], [9, 12], [12, 14]]);
  // <mask> eats the spaces on its left.
  t.deepEqual(tk.encodeText('hello   <mask>'), [5, 8, 18]);
  const e = tk.encode('hello', 'world');
  t.deepEqual(e.inputIds, [0, 5, 8, 2, 2, 14, 15, 2]);
  t.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 0, 0, 0, 0]);
  const b = tk.encodeBatch(['hello', ['hello', 'world']]);
  t.deepEqual(Array.from(b.inputIds), [0, 5, 8, 2, 1, 1, 1, 1, 0, 5, 8, 2, 2, 14, 15, 2]);
  t.deepEqual(Array.from(b.attentionMask), [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  const [w] = tk.encodeQuestionContext('hello', 'hello world', { maxLength: 16, docStride: 2 });
  t.deepEqual(w.inputIds, [0, 5, 8, 2, 2, 5, 8, 14, 15, 2]);
  t.deepEqual(w.offsets.slice(w.contextStart, w.contextEnd), [[0, 2], [2, 5], [6, 9], [9, 11]]);
});

test('prepend_scheme "first" and "never"', (t) => {
  const json = xlmrJson();
  json.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first' };
  const first = new PreTrainedTokenizer(json, { family: 'xlm-roberta' });
  // Only the text's first section gets the '▁': the "hello" after </s> starts without one (h e llo = -13).
  t.deepEqual(first.tokenize('hello</s>hello'), ['\u2581he', 'llo', '</s>', 'h', 'e', 'llo']);
  json.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'never' };
  const never = new PreTrainedTokenizer(json, { family: 'xlm-roberta' });
  t.deepEqual(never.tokenize('hello hello'), ['h', 'e', 'llo', '\u2581he', 'llo']);
});
