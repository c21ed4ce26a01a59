/** lib/tokenizer/offset-tokenizer: spans of the original text behind each token, and ids equal to plain encoding. */
import { normalizeSpan, st, tok } from './helpers';

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
