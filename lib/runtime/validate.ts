/**
 * One module checks options for the whole library, so that the API, the CLI and the HTTP service give the
 * same message for the same mistake (sharp's lib/is.js is the model): a few predicates (`is`), one error
 * builder (`invalidParameterError`: "Expected X for NAME but received Y", code E_INVALID_ARG), and checkers
 * that return the checked value or throw that error. CLI flags go through the same checkers after their
 * text is read as a number (`flagNumber`), so `--batch-size 0` and `{ batchSize: 0 }` are refused alike.
 *
 * Errors: a value of the wrong type is a TypeError, a value of the right type out of range a RangeError;
 * both carry `code: 'E_INVALID_ARG'`.
 */
import { accessSync, constants, existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeError } from './atomic';
import { BlockpruneError, describeValue, type ErrorCode } from './errors';

export type InvalidParameterError = (TypeError | RangeError) & { code: ErrorCode };

/** Predicates: true or false, never a throw. */
export const is = {
  defined: (v: unknown): boolean => v !== undefined && v !== null,
  /** A plain object: not null, not an array, not a typed array. */
  object: (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v),
  bool: (v: unknown): v is boolean => typeof v === 'boolean',
  string: (v: unknown): v is string => typeof v === 'string',
  /** A string with something other than whitespace in it. */
  text: (v: unknown): v is string => typeof v === 'string' && v.trim().length > 0,
  number: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  integer: (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v),
  inRange: (v: number, min: number, max: number): boolean => v >= min && v <= max,
  oneOf: <T>(v: unknown, values: readonly T[]): v is T => values.includes(v as T),
  function: (v: unknown): v is (...args: unknown[]) => unknown => typeof v === 'function',
};

/** The one error for a bad option: TypeError when `type` (default), RangeError for a value out of range. */
export function invalidParameterError(
  name: string,
  expected: string,
  actual: unknown,
  kind: 'type' | 'range' = 'type',
): InvalidParameterError {
  const message = `Expected ${expected} for ${name} but received ${describeValue(actual)}`;
  const err = (kind === 'range' ? new RangeError(message) : new TypeError(message)) as InvalidParameterError;
  err.code = 'E_INVALID_ARG';
  return err;
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** min itself is not allowed (e.g. a temperature > 0). */
  exclusiveMin?: boolean;
}

function rangeText(what: string, r: NumberRange): string {
  const lo = r.min === undefined ? undefined : `${r.exclusiveMin ? '>' : '>='} ${r.min}`;
  const hi = r.max === undefined ? undefined : `<= ${r.max}`;
  if (r.min === 1 && !r.exclusiveMin && r.max === undefined && what === 'an integer') return 'a positive integer';
  if (r.min === 0 && !r.exclusiveMin && r.max === undefined && what === 'an integer') return 'a non-negative integer';
  if (r.min === 0 && r.exclusiveMin && r.max === undefined && what === 'a number') return 'a positive number';
  if (r.min === 0 && !r.exclusiveMin && r.max === undefined && what === 'a number') return 'a non-negative number';
  if (lo && hi) return `${what} ${lo} and ${hi}`;
  return lo || hi ? `${what} ${lo ?? hi}` : what;
}

function checkRange(name: string, v: number, what: string, r: NumberRange): number {
  const low = r.min !== undefined && (r.exclusiveMin ? v <= r.min : v < r.min);
  const high = r.max !== undefined && v > r.max;
  if (low || high) throw invalidParameterError(name, rangeText(what, r), v, 'range');
  return v;
}

/** A finite number in range. */
export function number(name: string, v: unknown, range: NumberRange = {}): number {
  if (!is.number(v)) throw invalidParameterError(name, rangeText('a number', range), v);
  return checkRange(name, v, 'a number', range);
}

/** A safe integer in range. */
export function integer(name: string, v: unknown, range: NumberRange = {}): number {
  if (!is.integer(v)) throw invalidParameterError(name, rangeText('an integer', range), v);
  return checkRange(name, v, 'an integer', range);
}

/** An integer >= 1 (or >= min). */
export function positiveInteger(name: string, v: unknown, max?: number): number {
  return integer(name, v, { min: 1, max });
}

export function boolean(name: string, v: unknown): boolean {
  if (!is.bool(v)) throw invalidParameterError(name, 'a boolean', v);
  return v;
}

/** A string; `nonEmpty` also refuses one that is empty or only whitespace. */
export function string(name: string, v: unknown, options: { nonEmpty?: boolean } = {}): string {
  if (options.nonEmpty ? !is.text(v) : !is.string(v)) throw invalidParameterError(name, options.nonEmpty ? 'a non-empty string' : 'a string', v);
  return v as string;
}

export function oneOf<T extends string | number>(name: string, v: unknown, values: readonly T[]): T {
  if (!is.oneOf(v, values)) throw invalidParameterError(name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v, is.string(v) || is.number(v) ? 'range' : 'type');
  return v as T;
}

/** A plain object (the options bag itself). */
export function object(name: string, v: unknown): Record<string, unknown> {
  if (!is.object(v)) throw invalidParameterError(name, 'an object', v);
  return v;
}

/**
 * An options bag: undefined is `{}`; anything else (null too: callers read its keys) must be a plain object
 * whose keys are all in `known` (see knownKeys, which names the closest one). Returns the bag.
 */
export function options(name: string, v: unknown, known: readonly string[], aliases: Record<string, string> = {}): Record<string, unknown> {
  if (v === undefined) return {};
  const o = object(name, v);
  knownKeys(name, o, known, aliases);
  return o;
}

/** An instance of `cls` (`what` names it in the message, e.g. 'a BertModel'). */
// `{ prototype: T }` rather than a constructor type: classes with private constructors (BertModel) qualify.
export function instance<T>(name: string, v: unknown, cls: { prototype: T }, what: string): T {
  if (!(v instanceof (cls as unknown as new () => T))) throw invalidParameterError(name, what, v);
  return v as T;
}

export function func<T extends (...args: never[]) => unknown>(name: string, v: unknown): T {
  if (!is.function(v)) throw invalidParameterError(name, 'a function', v);
  return v as unknown as T;
}


/**
 * Edit distance for did-you-mean suggestions: Levenshtein plus the swap of two neighbours as one edit (optimal
 * string alignment), since swapped letters are the commonest typo ('trian' is one edit from 'train', not two).
 */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/**
 * The candidate closest to `word` (case, '-', '_' ignored), if it is close enough to be a likely typo or
 * another spelling of the same name (num_train_epochs -> epochs is not; learningrate -> learningRate is).
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(w, norm(c));
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(w.length / 3)) ? best : undefined;
}

/**
 * Refuses keys of `options` that are not in `known`, naming the closest known one. `aliases` maps other
 * well-known spellings to ours (HF's `num_train_epochs` -> `epochs`), so the message can point there too.
 */
export function knownKeys(name: string, options: Record<string, unknown>, known: readonly string[], aliases: Record<string, string> = {}): void {
  for (const k of Object.keys(options)) {
    if (known.includes(k)) continue;
    const hint = aliases[k] ?? didYouMean(k, known);
    const err = new TypeError(
      `unknown option ${JSON.stringify(k)} in ${name}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}; known options: ${known.join(', ')}`,
    ) as InvalidParameterError;
    err.code = 'E_INVALID_ARG';
    throw err;
  }
}

/**
 * A command-line value read as a number, then checked as the API checks it: the error names the flag
 * (`--batch-size`) and says what it expects.
 */
export function flagNumber(flag: string, text: unknown, range: NumberRange & { integer?: boolean } = {}): number {
  const what = range.integer ? 'an integer' : 'a number';
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(Number(text)))
    throw invalidParameterError(flag, rangeText(what, range), text);
  const n = Number(text);
  return range.integer ? integer(flag, n, range) : number(flag, n, range);
}

/** A comma-separated list of flag numbers (`--batches 1,8`). */
export function flagNumbers(flag: string, text: unknown, range: NumberRange & { integer?: boolean } = {}): number[] {
  if (typeof text !== 'string' || text.trim() === '') throw invalidParameterError(flag, 'a comma-separated list of numbers', text);
  return text.split(',').map((x) => flagNumber(flag, x.trim(), range));
}

/** An E_INVALID_ARG error whose message is not of the "Expected X but received Y" kind. */
export function argumentError(message: string, kind: 'type' | 'range' = 'range'): InvalidParameterError {
  const err = (kind === 'range' ? new RangeError(message) : new TypeError(message)) as InvalidParameterError;
  err.code = 'E_INVALID_ARG';
  return err;
}

/** The nearest existing path at or above `abs` (the root exists). */
function existingAncestor(abs: string): string {
  let p = abs;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** A place that cannot be written: the same code whether found here, before the work, or by the write itself. */
function notWritable(name: string, message: string): BlockpruneError {
  return new BlockpruneError('E_WRITE_FAILED', `${name}: ${message}`);
}

/**
 * A directory the caller will write into, checked before any work: it exists and is a directory, or it can
 * be created (its nearest existing ancestor is a writable directory). An existing one is probed by creating
 * and removing a file, which catches read-only mounts and permissions that access() does not report. A path
 * that is (or lies under) a file, or cannot be written, is E_WRITE_FAILED (E_NO_SPACE when the disk is full),
 * as the write itself would say (lib/atomic.ts). Nothing is left behind. Returns the absolute path.
 */
export function writableDirectory(name: string, v: unknown): string {
  const abs = resolve(string(name, v, { nonEmpty: true }));
  const at = existingAncestor(abs);
  if (!statSync(at).isDirectory())
    throw notWritable(name, at === abs ? `cannot write in ${abs}: it is a file, not a directory` : `cannot create ${abs}: ${at} is a file`);
  if (at !== abs) {
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch (e) {
      throw writeError(e, `${name}: cannot create a directory in`, at);
    }
    return abs;
  }
  const probe = join(abs, `.blockprune-probe-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(probe, '', { flag: 'wx' });
  } catch (e) {
    throw writeError(e, `${name}: cannot write in`, abs);
  }
  unlinkSync(probe);
  return abs;
}

/** A file the caller will write (or append to): not a directory, and its folder is writable (or creatable). */
export function writableFile(name: string, v: unknown): string {
  const abs = resolve(string(name, v, { nonEmpty: true }));
  if (existsSync(abs) && statSync(abs).isDirectory()) throw notWritable(name, `cannot write ${abs}: it is a directory, not a file`);
  writableDirectory(`${name} (its folder)`, dirname(abs));
  return abs;
}

/**
 * A model directory (or another input folder: `what`) that must exist: a missing one or a file in its place
 * is E_FILE_NOT_FOUND, with a message that says which (a file is not "missing", but it is not the folder of
 * config.json and weights either).
 */
export function modelDirectory(name: string, v: unknown, what = 'model directory (a folder holding config.json and the weights)'): string {
  const abs = resolve(string(name, v, { nonEmpty: true }));
  const short = what.replace(/ \(.*$/, '');
  if (!existsSync(abs)) throw new BlockpruneError('E_FILE_NOT_FOUND', `${short} ${abs} does not exist`);
  if (!statSync(abs).isDirectory()) throw new BlockpruneError('E_FILE_NOT_FOUND', `${abs} is a file, not a ${what}`);
  return abs;
}

/** A command-line `AxB` pair of integers (`--attention-block 32x32`, `--shapes 1x128`), each checked by `range`. */
export function flagPair(flag: string, text: unknown, range: NumberRange = {}): [number, number] {
  const m = typeof text === 'string' ? /^\s*([^x]+)x([^x]+)\s*$/.exec(text) : null;
  if (!m) throw invalidParameterError(flag, 'RxC (two integers, e.g. 32x32)', text);
  return [flagNumber(flag, m[1], { ...range, integer: true }), flagNumber(flag, m[2], { ...range, integer: true })];
}
