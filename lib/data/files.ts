/**
 * Reading dataset files: the format, the options every loader shares, path checks and a line iterator.
 *
 * Nothing here downloads anything. Formats are chosen by file extension (override with `opts.format`):
 *   - `.parquet` / `.pq`: Hugging Face `datasets` parquet files, read with `hyparquet` (parquet.ts).
 *   - `.jsonl` / `.ndjson`: one JSON object per line. `.json`: a JSON array of row objects, or JSON Lines (what HF
 *     `Dataset.to_json` writes); for SQuAD, the official `{version, data: [...]}` file.
 *   - anything else: tab-separated text with a header line, read with QUOTE_NONE semantics (quotes are data).
 *
 * Every loader resolves to `{ examples, skipped, skippedReasons }`. A bad row (bad JSON, missing field, empty or
 * blank text, unknown label, wrong column count) throws `BlockpruneError` with code `E_BAD_DATA` and a message
 * that names the file and the 1-based line (text formats) or the 0-based row index (parquet, JSON arrays, SQuAD
 * JSON paths); with `skipInvalid: true` such rows are skipped and counted instead (rows.ts). A missing file
 * throws `E_FILE_NOT_FOUND`. `limit` keeps the first N valid examples and stops reading there.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';

export type DataFormat = 'tsv' | 'jsonl' | 'json' | 'parquet';

export interface LoadOptions {
  /** Skip invalid rows (counted in `skipped`) instead of throwing E_BAD_DATA. Default false. */
  skipInvalid?: boolean;
  /** Keep only the first N valid examples. */
  limit?: number;
  /** Override the format guessed from the file extension. */
  format?: DataFormat;
}

export function checkFile(file: unknown, what: string): string {
  if (typeof file !== 'string' || file.length === 0) throw invalidArg('path', `a ${what} file path string`, file);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `${what} file not found: ${file}`);
  }
  if (!st.isFile()) throw new BlockpruneError('E_FILE_NOT_FOUND', `${what} path is not a file: ${file}`);
  return file;
}

export function readText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export const LOAD_OPTIONS = ['skipInvalid', 'limit', 'format'] as const;

/** The options every loader shares (`known`: the keys this loader takes), unknown keys refused. */
export function checkLoadOptions(opts: object | undefined, known: readonly string[] = LOAD_OPTIONS): void {
  const o = v.options('opts', opts, known);
  if (o.limit !== undefined) v.integer('opts.limit', o.limit, { min: 0 });
  if (o.skipInvalid !== undefined) v.boolean('opts.skipInvalid', o.skipInvalid);
  if (o.format !== undefined) v.oneOf('opts.format', o.format, ['tsv', 'jsonl', 'json', 'parquet'] as const);
}

export function guessFormat(file: string, opts: LoadOptions): DataFormat {
  if (opts.format) return opts.format;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  return 'tsv';
}

/** Iterates lines (without the line break) with their 1-based numbers, without splitting the whole file. */
export function* lines(text: string): Generator<[string, number]> {
  let pos = 0;
  let n = 0;
  while (pos < text.length) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    let line = text.slice(pos, nl);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    n++;
    yield [line, n];
    pos = nl + 1;
  }
}
