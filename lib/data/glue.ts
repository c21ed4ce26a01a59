/**
 * Sentence / sentence-pair classification files (GLUE, SuperGLUE BoolQ and RTE): TSV as GLUE distributes it,
 * JSON Lines, JSON arrays and HF parquet, read through a task's columns (tasks.ts).
 */
import { invalidArg } from '../runtime/errors';
import { checkFile, checkLoadOptions, guessFormat, lines, readText } from './files';
import type { LoadOptions } from './files';
import { eachParquetRow, openParquet, resolveParquetColumn } from './parquet';
import { badData, Collector, findColumn, isPlainObject, parseId, pick, requireText, RowError } from './rows';
import type { LoadResult } from './rows';
import { GLUE_TASKS, parseLabel, TASK_COLUMNS } from './tasks';
import type { ClassificationColumns, GlueTask } from './tasks';

export interface ClassificationExample {
  text: string;
  textPair?: string;
  /** Class index into the task's label names (`TASK_LABELS`). */
  label: number;
  id?: string | number;
}

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

/**
 * Whether a classification file has labels: the task's label column in its header (TSV), its first row (JSON:
 * a label other than HF's -1 of unlabelled splits) or its columns (parquet). GLUE's test.tsv files have none
 * ("index  sentence"). A file this cannot tell about (no recognisable header) counts as labelled: its loader
 * then says what is wrong with it.
 */
export async function hasLabels(file: string, cols: ClassificationColumns, opts: Pick<LoadOptions, 'format'> = {}): Promise<boolean> {
  checkFile(file, 'dataset');
  const format = guessFormat(file, opts);
  if (format === 'parquet') return resolveParquetColumn(await openParquet(file), cols.label, 'label', false) !== null;
  const text = readText(file);
  let first: string | undefined;
  for (const [line] of lines(text))
    if (line.trim() !== '') {
      first = line;
      break;
    }
  if (first === undefined) return true;
  if (format === 'tsv') {
    const header = first.split('\t');
    return findColumn(header, cols.text) < 0 || findColumn(header, cols.label) >= 0;
  }
  let row: unknown;
  try {
    row = format === 'json' && first.trimStart().startsWith('[') ? (JSON.parse(text) as unknown[])[0] : JSON.parse(first);
  } catch {
    return true;
  }
  if (!isPlainObject(row)) return true;
  const label = pick(row, cols.label);
  return label !== undefined && label !== null && label !== -1 && label !== '-1';
}
