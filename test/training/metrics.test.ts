/** lib/metrics: classification metrics and the official SQuAD scoring, on hand-made cases with known values. */
import test from 'ava';
import { accuracy, argmax, f1Binary, matthews, normalizeAnswer, precisionRecallF1, rouge, squadF1, squadMetrics } from '../../lib/training/metrics';
import type { SquadGold } from '../../lib/training/metrics';

const close = (a: number, b: number, eps = 1e-9): boolean => Math.abs(a - b) <= eps;

test('accuracy, precision/recall/F1, argmax', (t) => {
  const gold = [1, 1, 1, 0, 0, 0];
  const pred = Int32Array.from([1, 1, 0, 0, 0, 1]);
  t.is(accuracy(pred, gold), 4 / 6);
  const prf = precisionRecallF1(pred, gold);
  t.true(close(prf.precision, 2 / 3) && close(prf.recall, 2 / 3) && close(prf.f1, 2 / 3));
  t.true(close(f1Binary(pred, gold, 0), 2 / 3));
  t.is(f1Binary([0, 0], [0, 0]), 0, 'no positives: 0 (zero_division=0)');
  t.true(close(f1Binary([1, 1, 1, 1], [1, 0, 0, 0]), 0.4)); // P 1/4, R 1
  t.deepEqual(Array.from(argmax(Float32Array.from([0.1, 0.9, 2, -1, 3, 3]), 2)), [1, 0, 0]);
  t.throws(() => accuracy([1, 0], [1]), { code: 'E_INVALID_ARG' });
  t.throws(() => accuracy([], []), { code: 'E_INVALID_ARG' });
});

test('matthews correlation (CoLA) matches scikit-learn values', (t) => {
  t.true(close(matthews([1, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0]), 1 / 3));
  // scikit-learn docstring example: matthews_corrcoef([+1, +1, +1, -1], [+1, -1, +1, +1]) = -0.33...
  t.true(close(matthews([1, -1, 1, 1], [1, 1, 1, -1]), -1 / 3));
  t.is(matthews([0, 1, 0, 1], [0, 1, 0, 1]), 1);
  t.is(matthews([1, 0, 1, 0], [0, 1, 0, 1]), -1);
  t.is(matthews([1, 1, 1, 1], [0, 1, 0, 1]), 0, 'constant prediction: 0');
  t.is(matthews([0, 1, 2, 2], [0, 1, 2, 2]), 1, 'multiclass perfect');
  // multiclass: C = [[1,1,0],[0,1,0],[0,0,1]] (rows gold) → (3*4 - (2*1+1*2+1*1)) / sqrt((16-6)*(16-6)) = 7/10
  t.true(close(matthews([0, 1, 1, 2], [0, 0, 1, 2]), 0.7));
});

test('normalizeAnswer: lowercase, punctuation, articles, whitespace (official SQuAD)', (t) => {
  t.is(normalizeAnswer('The  Denver Broncos!'), 'denver broncos');
  t.is(normalizeAnswer('an apple, a day'), 'apple day');
  t.is(normalizeAnswer('  Theater\tthe\nend '), 'theater end');
  t.is(normalizeAnswer("Newton's 1st law."), 'newtons 1st law');
  t.is(normalizeAnswer('éthe'), 'éthe', 'a Unicode letter before "the" is a word character, as in Python');
  t.is(normalizeAnswer('the'), '');
});

test('squadMetrics: exact, partial F1, articles/punctuation, max over gold answers', (t) => {
  const examples: SquadGold[] = [
    { id: 'exact', answers: [{ text: 'Denver Broncos' }] },
    { id: 'partial', answers: [{ text: 'Denver Broncos' }] },
    { id: 'articles', answers: [{ text: 'broncos' }] },
    { id: 'multi', answers: [{ text: 'Santa Clara' }, { text: "Levi's Stadium" }, { text: 'the San Francisco Bay Area' }] },
  ];
  const preds = { exact: 'Denver Broncos', partial: 'the Denver Broncos team', articles: 'The Broncos!', multi: 'San Francisco Bay Area at Santa Clara' };
  // partial: pred tokens [denver, broncos, team] vs [denver, broncos]: P 2/3, R 1, F1 0.8
  t.true(close(squadF1(preds.partial, 'Denver Broncos'), 0.8));
  // multi: vs "San Francisco Bay Area": P 4/7 R 1 → 8/11; vs "Santa Clara": P 2/7 R 1 → 4/9; max 8/11
  t.true(close(squadF1(preds.multi, 'the San Francisco Bay Area'), 8 / 11));
  const m = squadMetrics(preds, examples);
  t.is(m.total, 4);
  t.is(m.missing, 0);
  t.true(close(m.exactMatch, 50));
  t.true(close(m.f1, (100 * (1 + 0.8 + 1 + 8 / 11)) / 4));
  t.is(m.hasAns, undefined, 'no split without impossible questions');
  // Map input and a missing prediction (scored 0)
  const m2 = squadMetrics(new Map([['exact', 'denver broncos.']]), examples);
  t.is(m2.missing, 3);
  t.is(m2.exactMatch, 25);
  t.is(m2.f1, 25);
});

test('squadMetrics v2: impossible questions have the gold answer ""', (t) => {
  const examples: SquadGold[] = [
    { id: 'imp1', answers: [], isImpossible: true },
    { id: 'imp2', answers: [], isImpossible: true },
    { id: 'ans1', answers: [{ text: 'Normandy' }] },
    { id: 'ans2', answers: [{ text: 'in the 10th century' }, { text: '10th century' }] },
  ];
  const m = squadMetrics({ imp1: '', imp2: 'France', ans1: '', ans2: '10th and 11th centuries' }, examples);
  // imp1 1/1, imp2 0/0, ans1 0/0, ans2: EM 0; F1 vs "10th century": pred [10th, and, 11th, centuries] → P 1/4 R 1/2 → 1/3
  t.is(m.exactMatch, 25);
  t.true(close(m.f1, (100 * (1 + 0 + 0 + 1 / 3)) / 4));
  t.deepEqual(m.noAns, { exactMatch: 50, f1: 50, total: 2 });
  t.is(m.hasAns?.exactMatch, 0);
  t.true(close(m.hasAns?.f1 ?? NaN, (100 * (1 / 3)) / 2));
  t.is(squadF1('', ''), 1);
  t.is(squadF1('the', ''), 1, '"the" normalizes to empty');
  t.is(squadF1('', 'x'), 0);
});

test("rouge: Google rouge-score's published example (its README), averages, empty texts and bad input", (t) => {
  // rouge-score README: scorer.score('The quick brown fox jumps over the lazy dog', 'The quick brown dog jumps on
  // the log.') gives rouge1 fmeasure 0.7059 (P 0.75, R 0.6667) and rougeL fmeasure 0.5882 (P 0.625, R 0.5556).
  const r = rouge(['The quick brown dog jumps on the log.'], ['The quick brown fox jumps over the lazy dog']);
  t.true(Math.abs(r.rouge1 - 0.70588) < 1e-4, `rouge1 ${r.rouge1}`);
  t.true(Math.abs(r.rougeL - 0.58824) < 1e-4, `rougeL ${r.rougeL}`);
  // ROUGE-2 by hand: 2 of the candidate's 7 bigrams and of the reference's 8 match: F = 2 / (7 + 8) * 2.
  t.true(Math.abs(r.rouge2 - 4 / 15) < 1e-9, `rouge2 ${r.rouge2}`);
  // Identical texts score 1 (case and punctuation do not count); an empty prediction 0; the mean over pairs.
  t.deepEqual(rouge(['Hello, World'], ['hello world']), { rouge1: 1, rouge2: 1, rougeL: 1 });
  t.deepEqual(rouge(['', 'a b'], ['a b', 'a b']), { rouge1: 0.5, rouge2: 0.5, rougeL: 0.5 });
  t.throws(() => rouge(['a'], []), { code: 'E_INVALID_ARG', message: /1 predictions for 0 references/ });
  t.throws(() => rouge([], []), { code: 'E_INVALID_ARG' });
  t.throws(() => rouge([1 as never], ['a']), { code: 'E_INVALID_ARG', message: /pair 0/ });
});
