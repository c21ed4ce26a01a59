/** Helpers of the data tests: tests that need ../shared, the bert-base-uncased tokenizer, error checks. */
import type { ExecutionContext } from 'ava';
import { loadSquad } from '../../lib/data/squad';
import type { QAExample } from '../../lib/data/squad';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { shared } from '../helpers';

export { shared, sharedPath, withShared } from '../helpers';

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
