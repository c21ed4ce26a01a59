/** lib/data/parquet: HF parquet files through the loaders (hyparquet-writer round trips, files written by pyarrow). */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadBoolQ, loadGlue } from '../../lib/data/glue';
import { loadSquad } from '../../lib/data/squad';
import { tempDir } from '../helpers';
import { count, rejectsWith } from './helpers';

const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<unknown>;

interface ParquetWriter {
  parquetWriteFile(options: { filename: string; columnData: unknown[]; codec?: string; rowGroupSize?: number }): void;
}
async function parquetWriter(): Promise<ParquetWriter> {
  return (await dynamicImport(pathToFileURL(require.resolve('hyparquet-writer')).href)) as ParquetWriter;
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
