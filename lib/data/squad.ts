/**
 * SQuAD v1.1 / v2.0: the official JSON, or HF rows (JSON Lines, JSON arrays, parquet); every answer is checked
 * against its context.
 */
import * as v from '../runtime/validate';
import { checkFile, checkLoadOptions, guessFormat, lines, LOAD_OPTIONS, readText } from './files';
import type { LoadOptions } from './files';
import { eachParquetRow, openParquet, resolveParquetColumn } from './parquet';
import { badData, Collector, describe, isPlainObject, requireString, requireText, RowError } from './rows';
import type { LoadResult } from './rows';

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

export interface SquadLoadResult extends LoadResult<QAExample> {
  /** True when the file is SQuAD 2.0 style (given, or detected). */
  version2: boolean;
  /** Impossible questions left out because of `dropImpossible` (not counted in `skipped`). */
  dropped: number;
}

export interface SquadLoadOptions extends LoadOptions {
  /** SQuAD 2.0 semantics (questions without answers are impossible). Default: detected from the file. */
  version2?: boolean;
  /** Leave out impossible questions (v1.1-style training on a v2 file). Default false. */
  dropImpossible?: boolean;
}

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
