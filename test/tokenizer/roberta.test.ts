/**
 * RoBERTa's byte-level BPE against transformers 4.4.2's slow RobertaTokenizer (fixtures/tokenizer/roberta_cases.json),
 * loaded both ways: vocab.json + merges.txt, and a tokenizer.json (as RobertaConverter writes it, merges as
 * "a b" strings like the Hub's files).
 */
import * as fs from 'fs';
import * as path from 'path';
import { AutoTokenizer } from '../../lib/tokenizer/auto-tokenizer';
import { buildRobertaTokenizerJson, PreTrainedTokenizer } from '../../lib/tokenizer/tokenizer';
import { shared, withShared } from '../helpers';
import { readJson, tmpDir } from './helpers';

const DIR = 'data/roberta-base';
const CASES = 'fixtures/tokenizer/roberta_cases.json';
const test = withShared(DIR, CASES);

type Span = [number, number];
interface Row {
  text: string;
  tokens: string[];
  input_ids: number[];
}
interface Pair {
  line: number;
  question: string;
  passage: string;
  input_ids: number[];
  tokens: string[];
  offset_mapping: Span[];
  sequence_ids: Array<number | null>;
}
interface Tricky {
  name: string;
  text: string;
  tokens: string[];
  ids: number[];
  encoded_input_ids: number[];
  offset_mapping: Span[];
}
interface Cases {
  special_ids: Record<string, number>;
  vocab_size: number;
  sst2: { rows: Row[] };
  boolq_pairs: { max_length: number; rows: Pair[] };
  padded_batch: { texts: string[]; input_ids: number[][]; attention_mask: number[][] };
  tricky: { strings: Tricky[] };
}

const loaded = new Map<string, PreTrainedTokenizer>();
const loaders: Record<string, () => PreTrainedTokenizer> = {
  'vocab.json + merges.txt': () => AutoTokenizer.fromDir(shared(DIR)),
  'tokenizer.json': () => {
    const vocab = readJson<Record<string, number>>(path.join(shared(DIR), 'vocab.json'));
    const merges = fs.readFileSync(path.join(shared(DIR), 'merges.txt'), 'utf8').split('\n').slice(1).filter((l) => l !== '');
    const json = buildRobertaTokenizerJson(vocab, []);
    (json.model as Record<string, unknown>).merges = merges;
    const d = tmpDir();
    fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(json));
    return AutoTokenizer.fromDir(d);
  },
};
function tok(kind: string): PreTrainedTokenizer {
  let t = loaded.get(kind);
  if (!t) loaded.set(kind, (t = loaders[kind]()));
  return t;
}

/** The fixture's offsets are Python str indices (code points); ours are UTF-16 units. */
function utf16Span(text: string, [a, b]: Span): Span {
  const cps = Array.from(text);
  return [cps.slice(0, a).join('').length, cps.slice(0, b).join('').length];
}

for (const kind of Object.keys(loaders)) {
  test(`[${kind}] family, special ids and vocabulary`, (t) => {
    const c = readJson<Cases>(shared(CASES));
    const tk = tok(kind);
    t.is(tk.family, 'roberta');
    t.is(tk.vocabSize, c.vocab_size);
    t.deepEqual(
      { cls: tk.clsId, pad: tk.padId, sep: tk.sepId, unk: tk.unkId, mask: tk.maskId },
      { cls: c.special_ids['<s>'], pad: c.special_ids['<pad>'], sep: c.special_ids['</s>'], unk: c.special_ids['<unk>'], mask: c.special_ids['<mask>'] },
    );
  });

  test(`[${kind}] sst2 rows (trailing space) and padded_batch match exactly`, (t) => {
    const c = readJson<Cases>(shared(CASES));
    const tk = tok(kind);
    let exact = 0;
    for (const r of c.sst2.rows) {
      t.deepEqual(tk.tokenize(r.text), r.tokens, r.text);
      t.deepEqual(tk.encode(r.text).inputIds, r.input_ids, r.text);
      exact++;
    }
    t.is(exact, 40);
    const b = tk.encodeBatch(c.padded_batch.texts, { padding: 'max_length', maxLength: 24, truncation: 'longest_first' });
    t.deepEqual(Array.from(b.inputIds), c.padded_batch.input_ids.flat());
    t.deepEqual(Array.from(b.attentionMask), c.padded_batch.attention_mask.flat());
    t.true(b.tokenTypeIds.every((x) => x === 0));
    t.log(`${exact} SST-2 rows and ${c.padded_batch.texts.length} padded rows exact`);
  });

  test(`[${kind}] tricky strings: tokens, ids, encoded ids and offsets match exactly`, (t) => {
    const c = readJson<Cases>(shared(CASES));
    const tk = tok(kind);
    for (const s of c.tricky.strings) {
      t.deepEqual(tk.tokenize(s.text), s.tokens, s.name);
      t.deepEqual(tk.encodeText(s.text), s.ids, s.name);
      t.deepEqual(tk.encode(s.text).inputIds, s.encoded_input_ids, s.name);
      const w = tk.tokenizeWithOffsets(s.text);
      t.deepEqual(w.ids, s.ids, s.name);
      // whitespace_only: the slow tokenizer gives no tokens, so there are no offsets to compare with the fast one's.
      if (s.ids.length > 0) t.deepEqual(w.offsets, s.offset_mapping.slice(1, -1).map((o) => utf16Span(s.text, o)), s.name);
    }
    t.is(c.tricky.strings.length, 19);
  });

  test(`[${kind}] boolq pairs: <s> A </s></s> B </s>, only_second at 128, and QA windows with exact offsets`, (t) => {
    const c = readJson<Cases>(shared(CASES));
    const tk = tok(kind);
    const maxLength = c.boolq_pairs.max_length;
    for (const r of c.boolq_pairs.rows) {
      const e = tk.encode(r.question, r.passage, { truncation: 'only_second', maxLength });
      t.deepEqual(e.inputIds, r.input_ids, `line ${r.line}`);
      t.true(e.tokenTypeIds.every((x) => x === 0));
      // The first window of the question/context windows is HF's only_second truncation, with the fast
      // tokenizer's offsets on the passage's tokens.
      const [w] = tk.encodeQuestionContext(r.question, r.passage, { maxLength, docStride: 32 });
      t.deepEqual(w.inputIds, r.input_ids, `window of line ${r.line}`);
      t.deepEqual(w.offsets, r.offset_mapping.map((o, i) => (r.sequence_ids[i] === 1 ? o : null)), `offsets of line ${r.line}`);
      t.deepEqual(w.inputIds.slice(w.contextStart - 2, w.contextStart), [tk.sepId, tk.sepId]);
      t.deepEqual(tk.tokenizeWithOffsets(r.question).offsets, r.offset_mapping.filter((_, i) => r.sequence_ids[i] === 0));
    }
    t.is(c.boolq_pairs.rows.length, 20);
  });
}

test('long contexts: every RoBERTa window is well formed and its offsets point at its tokens', (t) => {
  const c = readJson<Cases>(shared(CASES));
  const tk = tok('vocab.json + merges.txt');
  const r = c.boolq_pairs.rows.reduce((a, b) => (b.passage.length > a.passage.length ? b : a));
  const windows = tk.encodeQuestionContext(r.question, r.passage, { maxLength: 64, docStride: 16 });
  t.true(windows.length > 3);
  const all = tk.tokenizeWithOffsets(r.passage);
  for (const w of windows) {
    t.true(w.inputIds.length <= 64);
    t.is(w.inputIds[0], tk.clsId!);
    t.is(w.inputIds[w.inputIds.length - 1], tk.sepId);
    for (let i = w.contextStart; i < w.contextEnd; i++) {
      const k = w.contextTokenOffset + i - w.contextStart;
      t.is(w.inputIds[i], all.ids[k]);
      t.deepEqual(w.offsets[i], all.offsets[k]);
    }
  }
  // Consecutive windows share docStride tokens of context.
  t.is(windows[1].contextTokenOffset, windows[0].contextEnd - windows[0].contextStart - 16);
});

test('whitespace is Python’s: the GPT-2 pattern’s \\s is Unicode White_Space, strip() is str.isspace()', (t) => {
  const tk = tok('vocab.json + merges.txt');
  // U+FEFF is not White_Space (JS's \s has it): " \uFEFF" is one pre-token, and merges.txt's "Ġ ï" joins its
  // space to the BOM's first byte. With JS's \s the space would stay alone ('Ġ').
  t.deepEqual(tk.tokenize('a \uFEFFb'), ['a', 'Ġï', '»', '¿', 'b']);
  // U+0085 is White_Space (JS's \s lacks it): the space goes alone (\s+(?!\S)), although "Ġ Â" is a merge that
  // would join it to U+0085's first byte in one pre-token; a second U+0085 takes the space with it.
  t.deepEqual(tk.tokenize('a \u0085b'), ['a', 'Ġ', 'Â', 'ħ', 'b']);
  t.deepEqual(tk.tokenize('a \u0085\u0085b'), ['a', 'ĠÂ', 'ħ', 'Â', 'ħ', 'b']);
  // U+001C is str.isspace(): alone it is whitespace-only text (no tokens), and <mask> (lstrip) eats it.
  t.deepEqual(tk.encode('\u001c').inputIds, [tk.clsId, tk.sepId]);
  t.deepEqual(tk.encodeText('a\u001c<mask>'), [tk.tokenToId('a'), tk.maskId]);
});
