/**
 * One row at a time: the loaders' result type, row errors and the Collector that turns a bad row into
 * E_BAD_DATA or a skip; field lookup and checks.
 */
import { BlockpruneError } from '../runtime/errors';

export interface LoadResult<T> {
  examples: T[];
  /** Rows skipped as invalid (only with `skipInvalid: true`). */
  skipped: number;
  /** The first few skip reasons (file and line/row included). */
  skippedReasons: string[];
}

const MAX_REASONS = 10;

export function badData(message: string): BlockpruneError {
  return new BlockpruneError('E_BAD_DATA', message);
}

/** A problem with one row; the collector turns it into E_BAD_DATA or a skip. */
export class RowError extends Error {}

/** Accumulates examples, applies limit / skipInvalid. `add` returns false once the limit is reached. */
export class Collector<T> {
  readonly examples: T[] = [];
  skipped = 0;
  readonly skippedReasons: string[] = [];
  constructor(private readonly opts: { limit?: number; skipInvalid?: boolean }) {}
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
  /** `add` for an async `make` (a RowError it rejects with is handled the same way). */
  async addAsync(where: string, make: () => Promise<T | null>): Promise<boolean> {
    if (this.full) return false;
    let made: T | null | RowError;
    try {
      made = await make();
    } catch (e) {
      if (!(e instanceof RowError)) throw e;
      made = e;
    }
    return this.add(where, () => {
      if (made instanceof RowError) throw made;
      return made;
    });
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

export function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return `${v}`;
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

/** The value of the first candidate key present in `row` (exact, then case-insensitive); undefined if none. */
export function pick(row: Record<string, unknown>, candidates: readonly string[] | undefined): unknown {
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

export function findColumn(header: readonly string[], candidates: readonly string[] | undefined): number {
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

export function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new RowError(`field ${field} is ${describe(value)}, expected a string`);
  return value;
}

/** A string with something to tokenize: an empty or blank text would train on [CLS] [SEP] under some label. */
export function requireText(value: unknown, field: string): string {
  const s = requireString(value, field);
  if (s.trim() === '') throw new RowError(`field ${field} is ${s === '' ? 'empty' : 'only whitespace'}`);
  return s;
}

export function parseId(v: unknown): string | number | undefined {
  if (typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
