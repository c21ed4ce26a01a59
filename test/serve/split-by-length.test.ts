/** How a classification batch is cut into forwards (lib/serve/split-by-length.ts), no model. */
import test from 'ava';
import { approxTokens, splitByLength } from '../../lib/serve/split-by-length';

test('splitByLength: groups by length within the padding budget, every index once', (t) => {
  // Classification batches are cut by length so that padding stays small.
  t.deepEqual(splitByLength([40, 10, 42, 11, 12, 41], 0.25), [[1, 3, 4], [0, 5, 2]]);
  t.deepEqual(splitByLength([40, 10, 42], Infinity), [[0, 1, 2]]);
  t.deepEqual(splitByLength([5, 9, 7], 0), [[0, 2, 1]], 'up to 16 tokens of padding are always allowed');
  t.deepEqual(splitByLength([], 0.25), []);
  // Every index lands in exactly one group, and each group's padding is within the budget (or 16 tokens).
  const lengths = Array.from({ length: 200 }, (_, i) => 5 + ((i * 7919) % 120));
  const groups = splitByLength(lengths, 0.25);
  t.deepEqual(groups.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
  for (const g of groups) {
    const real = g.reduce((s, i) => s + lengths[i], 0);
    const padding = g.length * Math.max(...g.map((i) => lengths[i])) - real;
    t.true(padding <= Math.max(0.25 * real, 16), `padding ${padding} for ${real} real tokens`);
  }
});

test('approxTokens: about 4 characters a token plus the special tokens, for each input form', (t) => {
  t.is(approxTokens('abcdefgh'), 2 + 2);
  t.is(approxTokens(['abcd', 'efghi']), 3 + 3);
  t.is(approxTokens({ text: 'abcd', textPair: 'efghi' }), 3 + 3);
  t.is(approxTokens({ text: 'abcd' }), 3 + 1);
});
