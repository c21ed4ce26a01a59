import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BertTokenizer, TokenizerError } from '../../lib/tokenizer/tokenizer';

// ---------------------------------------------------------------------------------------------------------
// Shared data: $BLOCKPRUNE_SHARED, else the first `shared/` with a `fixtures/` dir found walking up from this
// file (dist/test -> /work/shared), else walking up from the working directory (for out-of-tree builds).
// ---------------------------------------------------------------------------------------------------------

function findShared(): string | null {
  const env = process.env.BLOCKPRUNE_SHARED;
  if (env) return fs.existsSync(path.join(env, 'fixtures')) ? path.resolve(env) : null;
  for (const start of [__dirname, process.cwd()]) {
    let dir = path.resolve(start);
    for (;;) {
      const cand = path.join(dir, 'shared');
      if (fs.existsSync(path.join(cand, 'fixtures'))) return cand;
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return null;
}

const SHARED = findShared();
const st = SHARED ? test : test.skip;
const stSerial = SHARED ? test.serial : test.skip;
if (!SHARED) {
  console.log('tokenizer tests: shared data not found (set BLOCKPRUNE_SHARED); data-dependent tests are skipped');
}
const S = (...p: string[]): string => path.join(SHARED ?? '/nonexistent', ...p);
const BERT_DIR = S('data', 'bert-base-uncased');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'blockprune-tok-'));
}

// Both loading paths: tokenizer.json, and vocab.txt alone (tokenizer.json built in memory).
const loaders: Record<string, () => BertTokenizer> = {
  'tokenizer.json': () => BertTokenizer.fromDir(BERT_DIR),
  'vocab.txt': () => {
    const d = tmpDir();
    fs.copyFileSync(path.join(BERT_DIR, 'vocab.txt'), path.join(d, 'vocab.txt'));
    return BertTokenizer.fromDir(d);
  },
};
const cache = new Map<string, BertTokenizer>();
function tok(kind: string): BertTokenizer {
  let t = cache.get(kind);
  if (!t) {
    t = loaders[kind]();
    cache.set(kind, t);
  }
  return t;
}

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
interface SquadQa {
  question: string;
  id: string;
  answers: Array<{ text: string; answer_start: number }>;
  is_impossible?: boolean;
}
interface SquadFile {
  data: Array<{ title: string; paragraphs: Array<{ context: string; qas: SquadQa[] }> }>;
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

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

// ---------------------------------------------------------------------------------------------------------
// Where tokenizers.js differs from transformers 4.4.2 (fixed by BertTokenizer's pre-normalization).
// Expected values follow the 4.4.2 BasicTokenizer logic; the comments give what tokenizers.js alone returns.
// ---------------------------------------------------------------------------------------------------------

st('pre-normalization fixes for tokenizers.js discrepancies', (t) => {
  for (const kind of Object.keys(loaders)) {
    const tk = tok(kind);
    // CJK ext. B is a separate word in HF (tokenizers.js alone: "𠀀abc" -> [UNK])
    t.deepEqual(tk.tokenize('\u{20000}abc'), ['[UNK]', 'abc']);
    // unassigned code points are control chars for BERT (tokenizers.js alone keeps U+0378 -> [UNK])
    t.deepEqual(tk.tokenize('ab\u0378c'), ['abc']);
    // per-character lowercasing in HF: final capital sigma -> σ (tokenizers.js alone: ς)
    t.deepEqual(tk.tokenize('ΟΔΟΣ'), ['ο', '##δ', '##ο', '##σ']);
    // a special-token string formed only after dropping a control char is not special in HF (tokenizers.js
    // alone agrees; this guards our own control-char removal, which runs before the library's special split)
    t.deepEqual(tk.tokenize('[CL\u200bS] x'), ['[', 'cl', '##s', ']', 'x']);
    t.deepEqual(tk.tokenize('a [CLS]b'), ['a', '[CLS]', 'b']);
  }
});

// ---------------------------------------------------------------------------------------------------------
// encode / truncation / batch
// ---------------------------------------------------------------------------------------------------------

st('encode: pair layout, truncation strategies and errors', (t) => {
  const tk = tok('tokenizer.json');
  const a = 'one two three four five six seven eight nine ten'; // 10 tokens
  const b = 'alpha beta gamma delta'; // 4 tokens
  t.is(tk.encodeText(a).length, 10);
  t.is(tk.encodeText(b).length, 4);
  const full = tk.encode(a, b);
  t.is(full.inputIds.length, 17);
  t.is(full.inputIds[0], tk.clsId);
  t.is(full.inputIds[11], tk.sepId);
  t.is(full.inputIds[16], tk.sepId);
  t.deepEqual(full.tokenTypeIds, [...new Array(12).fill(0), ...new Array(5).fill(1)]);

  // longest_first (default with maxLength): trims the longer one token at a time, ties trim the second
  const lf = tk.encode(a, b, { maxLength: 10 });
  t.is(lf.inputIds.length, 10);
  t.deepEqual(lf.tokenTypeIds, [...new Array(6).fill(0), ...new Array(4).fill(1)]); // a: 4 tokens, b: 3
  t.deepEqual(lf.inputIds.slice(1, 5), tk.encodeText(a).slice(0, 4));
  t.deepEqual(lf.inputIds.slice(6, 9), tk.encodeText(b).slice(0, 3));
  t.deepEqual(tk.encode(a, null, { maxLength: 5 }).inputIds, [tk.clsId, ...tk.encodeText(a).slice(0, 3), tk.sepId]);

  const os1 = tk.encode(a, b, { maxLength: 15, truncation: 'only_second' });
  t.deepEqual(os1.inputIds, [tk.clsId, ...tk.encodeText(a), tk.sepId, ...tk.encodeText(b).slice(0, 2), tk.sepId]);
  const of1 = tk.encode(a, b, { maxLength: 15, truncation: 'only_first' });
  t.deepEqual(of1.inputIds, [tk.clsId, ...tk.encodeText(a).slice(0, 8), tk.sepId, ...tk.encodeText(b), tk.sepId]);
  // no truncation when it already fits
  t.deepEqual(tk.encode(a, b, { maxLength: 17, truncation: 'only_second' }), full);
  // truncation:false ignores maxLength
  t.is(tk.encode(a, b, { maxLength: 5, truncation: false }).inputIds.length, 17);

  // impossible: second sequence must keep at least one token (as in HF)
  const e1 = t.throws(() => tk.encode(a, b, { maxLength: 13, truncation: 'only_second' }));
  t.is((e1 as TokenizerError).code, 'E_INVALID_ARG');
  const e2 = t.throws(() => tk.encode(a, null, { maxLength: 8, truncation: 'only_second' }));
  t.is((e2 as TokenizerError).code, 'E_INVALID_ARG');
  const e3 = t.throws(() => tk.encode(a, null, { maxLength: 1 }));
  t.is((e3 as TokenizerError).code, 'E_INVALID_ARG');
  const e4 = t.throws(() => tk.encode(a, null, { maxLength: 0 }));
  t.is((e4 as TokenizerError).code, 'E_INVALID_ARG');

  // no special tokens
  const ns = tk.encode(a, b, { addSpecialTokens: false });
  t.deepEqual(ns.inputIds, [...tk.encodeText(a), ...tk.encodeText(b)]);
  t.deepEqual(ns.tokenTypeIds, [...new Array(10).fill(0), ...new Array(4).fill(1)]);
  // an empty second segment is still a segment
  t.deepEqual(tk.encode('hello', '').inputIds, [101, tk.tokenToId('hello'), 102, 102]);
  t.deepEqual(tk.encode('hello', '').tokenTypeIds, [0, 0, 0, 1]);
  t.deepEqual(tk.encode('').inputIds, [101, 102]);
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
  const e2 = t.throws(() => tk.encodeBatch(items, { padding: 'max_length' }));
  t.is((e2 as TokenizerError).code, 'E_INVALID_ARG');
  const e3 = t.throws(() => tk.encodeBatch(items, { padding: 'max_length', maxLength: 5, truncation: false }));
  t.is((e3 as TokenizerError).code, 'E_INVALID_ARG');
  const empty = tk.encodeBatch([]);
  t.is(empty.batchSize, 0);
  t.is(empty.inputIds.length, 0);
});

// ---------------------------------------------------------------------------------------------------------
// Offsets and question answering
// ---------------------------------------------------------------------------------------------------------

/** What BERT normalization does to a span of original text, for comparing with token text. */
function normalizeSpan(s: string): string {
  return s.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '').replace(/[\p{Cc}\p{Cf}]/gu, '');
}

st('tokenizeWithOffsets: exact sub-word spans', (t) => {
  const tk = tok('tokenizer.json');
  const text = 'Playing pneumonoultramicroscopic, Ångström — 北京 don\u2019t x\u200byz';
  const r = tk.tokenizeWithOffsets(text);
  t.deepEqual(r.ids, tk.encodeText(text));
  const pairs = r.tokens.map((tok, i) => [tok, text.slice(r.offsets[i][0], r.offsets[i][1])]);
  t.deepEqual(pairs.slice(0, 1), [['playing', 'Playing']]);
  t.deepEqual(pairs.filter(([tk0]) => tk0 === 'ang' || tk0 === '##strom'), [['ang', 'Ång'], ['##strom', 'ström']]);
  t.true(pairs.some(([tk0, s]) => tk0 === '北' && s === '北'));
  t.true(pairs.some(([tk0, s]) => tk0 === '\u2019' && s === '\u2019'));
  // every non-[UNK] piece is (a normalized part of) its span
  for (const [tk0, s] of pairs) if (tk0 !== '[UNK]') t.true(normalizeSpan(s).includes(tk0.replace(/^##/, '')), `${tk0} vs ${s}`);
  // wordpiece split of a word: contiguous, adjacent spans
  const w = tk.tokenizeWithOffsets('unaffable');
  t.true(w.tokens.length > 1);
  t.deepEqual(w.tokens.map((p, i) => 'unaffable'.slice(...w.offsets[i])), w.tokens.map((p) => p.replace(/^##/, '')));
  // decomposed accents change the length: still exact per-character spans through the normalization map
  const dec = 'A\u030Angstro\u0308m';
  const d = tk.tokenizeWithOffsets(dec);
  t.deepEqual(d.tokens, ['ang', '##strom']);
  t.is(d.offsets[0][0], 0);
  t.is(d.offsets[d.offsets.length - 1][1], dec.length);
});

st('tokenizeWithOffsets agrees with encodeText on random mixed-script text', (t) => {
  const tk = tok('tokenizer.json');
  const pool = [
    ...'abcXYZ019 .,;:!?\'"()[]-#@$%&*/\\~`',
    ...'éÅøßÆ¡¿«»·°µ',
    '\u0301', '\u0308', 'Σ', 'ς', 'ώ', 'Ж', 'й', '北', '京', 'タ', 'ー', '서', '울', '\u{20000}', '\u{1F355}', '\u{1F3FD}', '\uFE0F',
    '\t', '\n', '\r', '\u0000', '\u0007', '\u00A0', '\u3000', '\u2028', '\u200B', '\u200D', '\uFEFF', '\u00AD', '\uFFFD', '\uE000', '\u0378',
    '「', '」', '、', '。', '—', '\u2019', '\u037E', '\u1FEF', '\u0130', '\uFB01', '\uFF21',
    '[CLS]', '[SEP]', '[cls]', '[MASK]', '##', 'playing', 'a'.repeat(60),
  ];
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let k = 0; k < 1500; k++) {
    let text = '';
    const n = rnd(25);
    for (let i = 0; i < n; i++) text += pool[rnd(pool.length)];
    const r = tk.tokenizeWithOffsets(text);
    t.deepEqual(r.ids, tk.encodeText(text), JSON.stringify(text));
    for (const [a, b] of r.offsets) t.true(a >= 0 && a < b && b <= text.length, JSON.stringify(text));
  }
});

function loadSquadQuestions(tk: BertTokenizer, n: number): Array<{ q: SquadQa; context: string; ctxLen: number }> {
  const squad = readJson<SquadFile>(S('data', 'squad', 'dev-v2.0-first5articles.json'));
  const paras = squad.data.flatMap((a) => a.paragraphs).map((p) => ({ p, ctxLen: tk.encodeText(p.context).length }));
  paras.sort((x, y) => y.ctxLen - x.ctxLen);
  const out: Array<{ q: SquadQa; context: string; ctxLen: number }> = [];
  for (const { p, ctxLen } of paras) {
    for (const q of p.qas) {
      if (q.is_impossible || q.answers.length === 0) continue;
      out.push({ q, context: p.context, ctxLen });
      if (out.length >= n) return out;
    }
  }
  return out;
}

st('encodeQuestionContext: windows, stride overlap and exact offsets on SQuAD', (t) => {
  for (const kind of Object.keys(loaders)) {
    const tk = tok(kind);
    const maxLength = 128;
    const docStride = 32;
    const picked = loadSquadQuestions(tk, 25);
    t.true(picked.length >= 25);
    t.true(picked[0].ctxLen > 300, 'long contexts are picked');
    let exact = 0;
    for (const { q, context } of picked) {
      const wins = tk.encodeQuestionContext(q.question, context, { maxLength, docStride });
      const full = tk.tokenizeWithOffsets(context);
      t.deepEqual(full.ids, tk.encodeText(context), 'offset path ids equal plain encoding');
      const qIds = tk.encodeText(q.question);
      const maxCtx = maxLength - qIds.length - 3;
      t.true(wins.length > 1, 'long context needs several windows');
      for (let k = 0; k < wins.length; k++) {
        const w = wins[k];
        t.true(w.inputIds.length <= maxLength);
        t.is(w.inputIds.length, w.tokenTypeIds.length);
        t.is(w.inputIds.length, w.attentionMask.length);
        t.is(w.inputIds.length, w.offsets.length);
        t.deepEqual(w.inputIds.slice(0, w.contextStart), [tk.clsId, ...qIds, tk.sepId]);
        t.is(w.contextEnd, w.inputIds.length - 1);
        t.is(w.inputIds[w.contextEnd], tk.sepId);
        t.deepEqual(w.tokenTypeIds, w.inputIds.map((_, i) => (i < w.contextStart ? 0 : 1)));
        t.true(w.offsets.slice(0, w.contextStart).every((o) => o === null));
        t.is(w.offsets[w.contextEnd], null);
        // the context slice is the full context tokenization at contextTokenOffset
        const n = w.contextEnd - w.contextStart;
        t.deepEqual(w.inputIds.slice(w.contextStart, w.contextEnd), full.ids.slice(w.contextTokenOffset, w.contextTokenOffset + n));
        for (let i = w.contextStart; i < w.contextEnd; i++) {
          const o = w.offsets[i] as [number, number];
          t.deepEqual(o, full.offsets[w.contextTokenOffset + i - w.contextStart]);
          t.true(o[0] >= 0 && o[0] < o[1] && o[1] <= context.length);
          const piece = tk.idToToken(w.inputIds[i]) as string;
          if (piece !== '[UNK]') t.true(normalizeSpan(context.slice(o[0], o[1])).includes(piece.replace(/^##/, '')), `${piece} vs ${context.slice(o[0], o[1])}`);
        }
        if (k < wins.length - 1) t.is(n, maxCtx, 'non-final windows are full');
        if (k > 0) {
          const prev = wins[k - 1];
          t.is(w.contextTokenOffset, prev.contextTokenOffset + maxCtx - docStride);
          // the last docStride context tokens of the previous window open this one
          t.deepEqual(w.inputIds.slice(w.contextStart, w.contextStart + docStride), prev.inputIds.slice(prev.contextEnd - docStride, prev.contextEnd));
          t.deepEqual(w.offsets.slice(w.contextStart, w.contextStart + docStride), prev.offsets.slice(prev.contextEnd - docStride, prev.contextEnd));
        }
      }
      const last = wins[wins.length - 1];
      t.is(last.contextTokenOffset + last.contextEnd - last.contextStart, full.ids.length, 'windows reach the end');

      // the known answer maps to token indices whose span slices back to the answer (or a superset within the same words)
      const ans = q.answers[0];
      const ansStart = ans.answer_start;
      const ansEnd = ansStart + ans.text.length;
      t.is(context.slice(ansStart, ansEnd), ans.text);
      let found = false;
      let isExact = false;
      for (const w of wins) {
        let si = -1;
        let ei = -1;
        for (let i = w.contextStart; i < w.contextEnd; i++) {
          const o = w.offsets[i] as [number, number];
          if (si < 0 && o[1] > ansStart) si = i;
          if (o[0] < ansEnd) ei = i;
        }
        if (si < 0 || ei < si) continue;
        const s0 = (w.offsets[si] as [number, number])[0];
        const e0 = (w.offsets[ei] as [number, number])[1];
        if (s0 > ansStart || e0 < ansEnd) continue; // answer not fully inside this window
        found = true;
        const span = context.slice(s0, e0);
        t.true(span.includes(ans.text));
        // any extra text belongs to the same words (no whitespace added)
        t.false(/\s/.test(context.slice(s0, ansStart)), `prefix of ${JSON.stringify(span)}`);
        t.false(/\s/.test(context.slice(ansEnd, e0)), `suffix of ${JSON.stringify(span)}`);
        if (span === ans.text) isExact = true;
        else t.log(`superset span ${JSON.stringify(span)} for answer ${JSON.stringify(ans.text)}`);
      }
      t.true(found, `answer ${JSON.stringify(ans.text)} is inside some window`);
      if (isExact) exact++;
    }
    t.true(exact >= picked.length - 3, `exact answer spans: ${exact}`);
    t.log(`[${kind}] ${picked.length} SQuAD questions, exact answer spans in windows: ${exact}`);
  }
});

st('encodeQuestionContext: short context, question truncation and errors', (t) => {
  const tk = tok('tokenizer.json');
  const one = tk.encodeQuestionContext('Who?', 'Rollo was a Viking.', { maxLength: 64, docStride: 16 });
  t.is(one.length, 1);
  t.deepEqual(one[0].inputIds, tk.encode('Who?', 'Rollo was a Viking.').inputIds);
  t.is(one[0].contextStart, 4);
  const empty = tk.encodeQuestionContext('Who?', '', { maxLength: 64, docStride: 16 });
  t.is(empty.length, 1);
  t.is(empty[0].contextStart, empty[0].contextEnd);

  const longQ = new Array(80).fill('why').join(' ');
  const e1 = t.throws(() => tk.encodeQuestionContext(longQ, 'some context', { maxLength: 64, docStride: 8 }));
  t.is((e1 as TokenizerError).code, 'E_INVALID_ARG');
  t.regex((e1 as Error).message, /question/);
  // with maxQuestionLength the question is cut and it works
  const cut = tk.encodeQuestionContext(longQ, 'some context', { maxLength: 64, docStride: 8, maxQuestionLength: 20 });
  t.is(cut[0].contextStart, 22);
  const longCtx = new Array(200).fill('word').join(' ');
  const e2 = t.throws(() => tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: 30 }));
  t.is((e2 as TokenizerError).code, 'E_INVALID_ARG');
  const e3 = t.throws(() => tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: -1 }));
  t.is((e3 as TokenizerError).code, 'E_INVALID_ARG');
  // stride 0: windows tile the context exactly
  const tiles = tk.encodeQuestionContext('q', longCtx, { maxLength: 32, docStride: 0 });
  t.is(tiles.reduce((s, w) => s + w.contextEnd - w.contextStart, 0), 200);
});

// ---------------------------------------------------------------------------------------------------------
// Loading errors and tokenizer_config.json
// ---------------------------------------------------------------------------------------------------------

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
