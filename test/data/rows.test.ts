/** lib/data/rows: the Collector's limit and skipInvalid, for synchronous and asynchronous rows. */
import test from 'ava';
import { Collector, RowError } from '../../lib/data/rows';

test('Collector: a RowError is E_BAD_DATA naming the row, or a counted skip; other errors pass through', async (t) => {
  const strict = new Collector<number>({});
  t.true(strict.add('f:1', () => 1));
  const err = (await t.throwsAsync(strict.addAsync('f:2', async () => Promise.reject(new RowError('bad email'))))) as Error & { code?: string };
  t.is(err.code, 'E_BAD_DATA');
  t.is(err.message, 'f:2: bad email');

  const lenient = new Collector<number>({ skipInvalid: true, limit: 2 });
  t.true(await lenient.addAsync('r0', async () => 10));
  t.true(await lenient.addAsync('r1', async () => {
    throw new RowError('unreadable');
  }));
  t.true(await lenient.addAsync('r2', async () => null), 'null: left out, not an error');
  t.false(await lenient.addAsync('r3', async () => 30), 'false once the limit is reached');
  t.false(await lenient.addAsync('r4', async () => t.fail('not called once full')));
  t.deepEqual(lenient.result(), { examples: [10, 30], skipped: 1, skippedReasons: ['r1: unreadable'] });

  await t.throwsAsync(new Collector<number>({ skipInvalid: true }).addAsync('r', async () => Promise.reject(new TypeError('a bug'))), { instanceOf: TypeError });
});
