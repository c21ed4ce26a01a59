/** lib/data/noise.ts: BART's text infilling at the word level. */
import test from 'ava';
import { rng } from '../../lib/data/rng';
import { textInfilling } from '../../lib/data/noise';

const TEXT = 'the quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat by the door';

test('textInfilling masks about the ratio of the words in spans, keeps the other words in order, and is reproducible', (t) => {
  const words = TEXT.split(' ');
  let kept = 0;
  let total = 0;
  for (let seed = 0; seed < 200; seed++) {
    const out = textInfilling(TEXT, { maskToken: '[MASK]', random: rng(seed) });
    t.is(out, textInfilling(TEXT, { maskToken: '[MASK]', random: rng(seed) }), 'the same seed, the same noise');
    const pieces = out.split(' ');
    t.false(pieces.some((w, i) => w === '[MASK]' && pieces[i + 1] === '[MASK]'), `adjacent masks merge: ${out}`);
    // The words left are a subsequence of the original.
    let j = 0;
    for (const w of pieces.filter((p) => p !== '[MASK]')) {
      while (j < words.length && words[j] !== w) j++;
      t.true(j < words.length, `${w} out of order in ${out}`);
      j++;
    }
    kept += pieces.filter((p) => p !== '[MASK]').length;
    total += words.length;
    t.true(pieces.includes('[MASK]'), out);
  }
  // 30% of the words masked: exactly round(0.3 * 20) = 6 per text (the last span is cut to the count).
  t.is(total - kept, 200 * 6);
});

test('textInfilling: ratio 0 leaves the text (whitespace normalised); a one-word text keeps its word; bad options are coded errors', (t) => {
  t.is(textInfilling('  a  b c ', { maskToken: '<mask>', ratio: 0, random: rng(1) }), 'a b c');
  t.is(textInfilling('hello', { maskToken: '<mask>', random: rng(1) }), 'hello');
  t.is(textInfilling('', { maskToken: '<mask>', random: rng(1) }), '');
  t.is(textInfilling('a b c d', { maskToken: 'M', ratio: 1, random: rng(3) }), 'M');
  for (const bad of [{ maskToken: '' }, { maskToken: 'M', ratio: 2 }, { maskToken: 'M', meanSpan: -1 }, { maskToken: 'M', random: 3 }, { maskToken: 'M', typo: 1 }]) {
    const e = t.throws(() => textInfilling('a b', { random: rng(1), ...bad } as never));
    t.is((e as { code?: string }).code, 'E_INVALID_ARG', JSON.stringify(bad));
  }
});
