/** lib/tokenizer/tokenizer: BertTokenizer against transformers' fixtures on both loading paths, speed, encodeBatch. */
import * as fs from 'fs';
import type { TokenizerError } from '../../lib/tokenizer/tokenizer';
import { loaders, readJson, S, st, stSerial, tok } from './helpers';

interface TrickyString {
  text: string;
  tokens: string[];
  ids: number[];
  encoded_input_ids: number[];
}
interface BoolqRow {
  line: number;
  question: string;
  passage: string;
  untruncated_length: number;
  encodings: Record<string, { input_ids: number[]; token_type_ids: number[] }>;
}

// ---------------------------------------------------------------------------------------------------------
// Fixture parity (both loading paths)
// ---------------------------------------------------------------------------------------------------------

for (const kind of Object.keys(loaders)) {
  st(`[${kind}] special ids and vocabulary`, (t) => {
    const tk = tok(kind);
    t.is(tk.vocabSize, 30522);
    t.is(tk.padId, 0);
    t.is(tk.unkId, 100);
    t.is(tk.clsId, 101);
    t.is(tk.sepId, 102);
    t.is(tk.maskId, 103);
    t.is(tk.tokenToId('the'), 1996);
    t.is(tk.idToToken(1997), 'of');
    t.is(tk.tokenToId('no-such-token-xyz'), undefined);
    t.true(tk.doLowerCase);
  });

  st(`[${kind}] tricky.json: tokens, ids and encoded ids match exactly`, (t) => {
    const tk = tok(kind);
    const fx = readJson<{ strings: TrickyString[] }>(S('fixtures', 'tokenizer', 'tricky.json'));
    t.is(fx.strings.length, 12);
    for (const s of fx.strings) {
      const label = JSON.stringify(s.text).slice(0, 60);
      t.deepEqual(tk.tokenize(s.text), s.tokens, `tokens of ${label}`);
      t.deepEqual(tk.encodeText(s.text), s.ids, `ids of ${label}`);
      const enc = tk.encode(s.text);
      t.deepEqual(enc.inputIds, s.encoded_input_ids, `encoded ids of ${label}`);
      t.deepEqual(enc.tokenTypeIds, new Array(s.encoded_input_ids.length).fill(0));
      t.deepEqual(enc.attentionMask, new Array(s.encoded_input_ids.length).fill(1));
      // the offsets path must produce the same ids
      t.deepEqual(tk.tokenizeWithOffsets(s.text).ids, s.ids, `offset-path ids of ${label}`);
    }
  });

  st(`[${kind}] boolq_pairs.json: only_second truncation at 128 and 256 matches exactly`, (t) => {
    const tk = tok(kind);
    const fx = readJson<{ rows: BoolqRow[]; max_lengths: number[] }>(S('fixtures', 'tokenizer', 'boolq_pairs.json'));
    const lines = fs.readFileSync(S('data', 'boolq', 'val.jsonl'), 'utf8').split('\n');
    t.is(fx.rows.length, 20);
    const lengths: number[] = [];
    for (const row of fx.rows) {
      const src = JSON.parse(lines[row.line]) as { question: string; passage: string };
      t.is(src.question, row.question);
      t.is(src.passage, row.passage);
      const full = tk.encode(row.question, row.passage);
      t.is(full.inputIds.length, row.untruncated_length, `untruncated length, line ${row.line}`);
      lengths.push(full.inputIds.length);
      for (const L of fx.max_lengths) {
        const exp = row.encodings[String(L)];
        const enc = tk.encode(row.question, row.passage, { maxLength: L, truncation: 'only_second' });
        t.deepEqual(enc.inputIds, exp.input_ids, `input_ids line ${row.line} L=${L}`);
        t.deepEqual(enc.tokenTypeIds, exp.token_type_ids, `token_type_ids line ${row.line} L=${L}`);
        t.true(enc.attentionMask.every((x) => x === 1));
        t.true(enc.inputIds.length <= L);
      }
    }
    // the fixture's boundary rows: one exactly 128 tokens, one 129
    t.true(lengths.includes(128));
    t.true(lengths.includes(129));
  });
}

st('both loading paths agree on SST-2 sentences and BoolQ pairs', (t) => {
  const a = tok('tokenizer.json');
  const b = tok('vocab.txt');
  const sst = fs.readFileSync(S('data', 'sst2', 'dev.tsv'), 'utf8').split('\n').slice(1, 1501).map((l) => l.split('\t')[0]);
  for (const s of sst) t.deepEqual(a.encode(s).inputIds, b.encode(s).inputIds);
  const boolq = fs.readFileSync(S('data', 'boolq', 'val.jsonl'), 'utf8').split('\n').slice(20, 120).map((l) => JSON.parse(l) as { question: string; passage: string });
  for (const r of boolq) {
    const ea = a.encode(r.question, r.passage, { maxLength: 256, truncation: 'only_second' });
    const eb = b.encode(r.question, r.passage, { maxLength: 256, truncation: 'only_second' });
    t.deepEqual(ea, eb);
  }
});

stSerial('SST-2 train: all sentences tokenize in a few seconds', (t) => {
  const tk = tok('tokenizer.json');
  const lines = fs.readFileSync(S('data', 'sst2', 'train.tsv'), 'utf8').split('\n');
  t.is(lines[0], 'sentence\tlabel');
  const sentences = lines.slice(1).filter((l) => l.length > 0).map((l) => l.split('\t')[0]);
  t.is(sentences.length, 60614);
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const s of sentences) n += tk.encode(s).inputIds.length;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.log(`SST-2 train: ${sentences.length} sentences, ${n} tokens, ${ms.toFixed(0)} ms (encode)`);
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < sentences.length; i += 64) tk.encodeBatch(sentences.slice(i, i + 64), { maxLength: 128 });
  const msb = Number(process.hrtime.bigint() - t1) / 1e6;
  t.log(`SST-2 train: encodeBatch(64, maxLength 128) ${msb.toFixed(0)} ms`);
  t.true(ms < 30000, `took ${ms} ms`);
});

st('encodeBatch: flat row-major layout with dynamic and max_length padding', (t) => {
  const tk = tok('vocab.txt');
  const items: Array<string | [string, string]> = ['a short one', ['is it a pair?', 'yes it is a pair of sentences'], 'x'];
  const rows = items.map((it) => (typeof it === 'string' ? tk.encode(it) : tk.encode(it[0], it[1])));
  const b = tk.encodeBatch(items);
  t.is(b.batchSize, 3);
  t.deepEqual(b.lengths, rows.map((r) => r.inputIds.length));
  t.is(b.seqLen, Math.max(...b.lengths));
  t.true(b.inputIds instanceof Int32Array);
  t.is(b.inputIds.length, 3 * b.seqLen);
  for (let r = 0; r < 3; r++) {
    const L = b.lengths[r];
    const row = (arr: Int32Array): number[] => Array.from(arr.subarray(r * b.seqLen, (r + 1) * b.seqLen));
    t.deepEqual(row(b.inputIds), [...rows[r].inputIds, ...new Array(b.seqLen - L).fill(0)]);
    t.deepEqual(row(b.tokenTypeIds), [...rows[r].tokenTypeIds, ...new Array(b.seqLen - L).fill(0)]);
    t.deepEqual(row(b.attentionMask), [...new Array(L).fill(1), ...new Array(b.seqLen - L).fill(0)]);
  }
  const m = tk.encodeBatch(items, { padding: 'max_length', maxLength: 16 });
  t.is(m.seqLen, 16);
  t.deepEqual(m.lengths, b.lengths);
  const tr = tk.encodeBatch(items, { maxLength: 6 });
  t.is(tr.seqLen, 6);
  t.true(tr.lengths.every((l) => l <= 6));
  const e1 = t.throws(() => tk.encodeBatch(items, { padding: false }));
  t.is((e1 as TokenizerError).code, 'E_INVALID_ARG');
  t.regex((e1 as Error).message, /padding: false needs rows of equal length \(these have 3 to \d+ tokens\)/);
  const e2 = t.throws(() => tk.encodeBatch(items, { padding: 'max_length' }));
  t.is((e2 as TokenizerError).code, 'E_INVALID_ARG');
  const e3 = t.throws(() => tk.encodeBatch(items, { padding: 'max_length', maxLength: 5, truncation: false }));
  t.is((e3 as TokenizerError).code, 'E_INVALID_ARG');
  const empty = tk.encodeBatch([]);
  t.is(empty.batchSize, 0);
  t.is(empty.inputIds.length, 0);
});

// Issue 15 (3): the README's example. `true` is HF's "pad to the longest", false pads nothing.
st('encodeBatch: padding true is "longest" (the README example), false takes rows of equal length', (t) => {
  const tk = tok('vocab.txt');
  const longest = tk.encodeBatch(['a', 'b c'], { padding: 'longest' });
  const padded = tk.encodeBatch(['a', 'b c'], { padding: true });
  t.deepEqual(padded, longest);
  t.is(padded.seqLen, 4);
  t.deepEqual(Array.from(padded.attentionMask), [1, 1, 1, 0, 1, 1, 1, 1]);
  t.deepEqual(tk.encodeBatch(['a', 'b'], { padding: false }), tk.encodeBatch(['a', 'b']));
  const e = t.throws(() => tk.encodeBatch(['a'], { padding: 'true' as never }));
  t.is((e as TokenizerError).code, 'E_INVALID_ARG');
  t.regex((e as Error).message, /Expected one of "longest", "max_length", true, false for opts\.padding but received/);
});
