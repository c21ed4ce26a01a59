/** lib/data/rng: the seeded generator, shuffling and per-epoch permutations. */
import test from 'ava';
import { permutation, rng, shuffle } from '../../lib/data/rng';

test('rng and shuffle are deterministic permutations', (t) => {
  const a = rng(42);
  const b = rng(42);
  const xs = Array.from({ length: 5 }, () => a());
  t.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b()),
  );
  t.true(xs.every((x) => x >= 0 && x < 1));
  t.notDeepEqual(xs, Array.from({ length: 5 }, rng(43)));
  const p = shuffle(Array.from({ length: 100 }, (_, i) => i), rng(7));
  t.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  t.notDeepEqual(p, Array.from({ length: 100 }, (_, i) => i));
  t.deepEqual(permutation(50, 1, 0), permutation(50, 1, 0));
  t.notDeepEqual(permutation(50, 1, 0), permutation(50, 1, 1));
  t.notDeepEqual(permutation(50, 1, 0), permutation(50, 2, 0));
});
