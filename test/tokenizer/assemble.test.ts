/** lib/tokenizer/assemble: the [CLS] a [SEP] b [SEP] layout and HF's truncation strategies, through encode. */
import type { TokenizerError } from '../../lib/tokenizer/tokenizer';
import { st, tok } from './helpers';

st('encode: pair layout, truncation strategies and errors', (t) => {
  const tk = tok('tokenizer.json');
  const a = 'one two three four five six seven eight nine ten'; // 10 tokens
  const b = 'alpha beta gamma delta'; // 4 tokens
  t.is(tk.encodeText(a).length, 10);
  t.is(tk.encodeText(b).length, 4);
  const full = tk.encode(a, b);
  t.is(full.inputIds.length, 17);
  t.is(full.inputIds[0], tk.clsId!);
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
