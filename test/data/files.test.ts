/** lib/data/files: what every loader does with a path that is not a readable file. */
import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoolQ, loadGlue } from '../../lib/data/glue';
import { loadSquad } from '../../lib/data/squad';
import { rejectsWith } from './helpers';

test('missing files throw E_FILE_NOT_FOUND naming the path', async (t) => {
  const missing = join(tmpdir(), 'blockprune-no-such-dir', 'val.jsonl');
  await rejectsWith(t, loadBoolQ(missing), 'E_FILE_NOT_FOUND', missing);
  await rejectsWith(t, loadGlue('mnli', missing.replace('.jsonl', '.tsv')), 'E_FILE_NOT_FOUND', 'val.tsv');
  await rejectsWith(t, loadSquad(missing), 'E_FILE_NOT_FOUND', missing);
  await rejectsWith(t, loadBoolQ(missing.replace('.jsonl', '.parquet')), 'E_FILE_NOT_FOUND', 'val.parquet');
  const err = await t.throwsAsync(loadGlue('stsb' as never, missing));
  t.is((err as Error & { code?: string }).code, 'E_INVALID_ARG');
});
