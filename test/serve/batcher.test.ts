/**
 * DynamicBatcher (lib/serve/batcher.ts) on its own, no model: the window, maxBatch, each caller's own
 * output, a failing batch, close(), idleStart; and the no-batching stand-in counting the same way.
 */
import test from 'ava';
import { DynamicBatcher, newUnbatched } from '../../lib/serve/batcher';

test('DynamicBatcher: window, maxBatch, per-caller results, errors, close', async (t) => {
  const calls: number[][] = [];
  const b = new DynamicBatcher<number, number>(
    async (xs) => {
      calls.push(xs);
      if (xs.includes(-1)) throw new Error('boom');
      return xs.map((x) => x * 10);
    },
    { maxBatch: 4, windowMs: 20, idleStart: false },
  );
  const out = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.submit(x)));
  t.deepEqual(out, [10, 20, 30, 40, 50, 60]);
  t.deepEqual(calls, [[1, 2, 3, 4], [5, 6]], 'a full batch starts at once, the rest after the window');
  const failed = await Promise.allSettled([b.submit(7), b.submit(-1)]);
  t.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected'], 'a failed batch rejects each of its callers');
  t.is((failed[0] as PromiseRejectedResult).reason.message, 'boom');
  const bad = new DynamicBatcher<number, number>(async () => [1], { maxBatch: 8, windowMs: 5, idleStart: false });
  const wrong = await Promise.allSettled([bad.submit(1), bad.submit(2)]);
  t.true(wrong.some((r) => r.status === 'rejected'), 'a wrong number of outputs is an error');
  const slow = new DynamicBatcher<number, number>(async (xs) => xs, { maxBatch: 8, windowMs: 10_000, idleStart: false });
  const waiting = slow.submit(1);
  slow.close(new Error('closed'));
  await t.throwsAsync(waiting, { message: 'closed' });
  await t.throwsAsync(slow.submit(2), { message: 'closed' });
  // idleStart (the default): a lone item that finds the batcher idle runs at once, however long the window;
  // those arriving meanwhile gather behind it, and under load the window applies again.
  const eagerCalls: number[][] = [];
  const eager = new DynamicBatcher<number, number>(async (xs) => (eagerCalls.push(xs), xs), { maxBatch: 4, windowMs: 10_000 });
  const t0 = Date.now();
  t.is(await eager.submit(1), 1);
  t.true(Date.now() - t0 < 1000, 'no window for a lone request');
  await Promise.all([2, 3, 4, 5, 6].map((x) => eager.submit(x)));
  t.deepEqual(eagerCalls, [[1], [2], [3, 4, 5, 6]]);
  const s = b.stats();
  t.is(s.batches, 3);
  t.is(s.items, 8);
  t.is(s.failedBatches, 1);
});

test('without batching: every call is its own batch, counted as the batcher counts', async (t) => {
  const u = newUnbatched();
  t.deepEqual(await u.run([1, 2, 3], async (xs) => xs.map((x) => x + 1)), [2, 3, 4]);
  t.deepEqual(await u.run([4], async (xs) => xs), [4]);
  await t.throwsAsync(u.run([5, 6], async () => Promise.reject(new Error('boom'))), { message: 'boom' });
  t.deepEqual(u.stats(), { batches: 3, items: 6, failedBatches: 1, meanBatchSize: 2, maxBatchSize: 3, pending: 0, running: 0 });
});
