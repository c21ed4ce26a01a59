/** Helpers of the data tests: tests that need ../shared, the bert-base-uncased tokenizer, error checks. */
import test from 'ava';
import type { ExecutionContext, TestFn } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSquad } from '../../lib/data/squad';
import type { QAExample } from '../../lib/data/squad';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { SHARED } from '../helpers';

/** The path of `sub` in ../shared (BLOCKPRUNE_SHARED), or undefined when it is not there. */
export function sharedPath(sub: string): string | undefined {
  const p = SHARED ? join(SHARED, sub) : undefined;
  return p && existsSync(p) ? p : undefined;
}

/**
 * `test` when every path in `subs` is in ../shared, else `test.skip` (reported as skipped, not passed), with
 * a line saying what is missing.
 */
export function withShared(...subs: string[]): TestFn {
  const missing = subs.filter((s) => sharedPath(s) === undefined);
  if (missing.length === 0) return test;
  console.log(`skipping tests that need ${missing.join(', ')} (set BLOCKPRUNE_SHARED to the shared/ folder)`);
  return test.skip as unknown as TestFn;
}

/** `sharedPath(sub)` in a test registered with `withShared(sub)`. */
export function shared(sub: string): string {
  const p = sharedPath(sub);
  if (!p) throw new Error(`${sub} is not in the shared folder (register the test with withShared)`);
  return p;
}

export const BERT = 'data/bert-base-uncased';
export const SQUAD_DEV = 'data/squad/dev-v2.0-first5articles.json';

let tokCache: BertTokenizer | undefined;
/** bert-base-uncased's tokenizer (for tests registered with `withShared(BERT)`), loaded once. */
export function bertTokenizer(): BertTokenizer {
  tokCache ??= BertTokenizer.fromDir(shared(BERT));
  return tokCache;
}

/** The 1,407 questions of the first five SQuAD 2.0 dev articles (tests registered with `withShared(SQUAD_DEV)`). */
export async function squadExamples(): Promise<QAExample[]> {
  return (await loadSquad(shared(SQUAD_DEV))).examples;
}

export function count<T>(xs: readonly T[], pred: (x: T) => boolean): number {
  let n = 0;
  for (const x of xs) if (pred(x)) n++;
  return n;
}

/** Asserts that `p` rejects with `code` and a message holding every fragment; returns the error. */
export async function rejectsWith(t: ExecutionContext, p: Promise<unknown>, code: string, ...fragments: string[]): Promise<Error> {
  const err = (await t.throwsAsync(p)) as Error & { code?: string };
  t.is(err.code, code, err.message);
  for (const f of fragments) t.true(err.message.includes(f), `"${err.message}" should mention ${f}`);
  return err;
}
