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
import { describeValue, type ErrorCode } from './errors';

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

/** `v` when defined, else `def`, then checked by `check` (for optional options with defaults). */
export function optional<T>(v: T | undefined | null, def: T, check: (v: unknown) => T): T {
  return check(v === undefined || v === null ? def : v);
}

/** Levenshtein distance, for did-you-mean suggestions. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
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
      `Unknown option ${JSON.stringify(k)} in ${name}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}; known options: ${known.join(', ')}`,
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
