/** What the benchmark scripts share: the bert-base geometry, its compact form, and where ../shared is. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { BertConfigJson } from '../lib/model/model';
import { argumentError, flagNumber, flagNumbers, invalidParameterError, NumberRange, oneOf } from '../lib/runtime/validate';

export const BERT_BASE: BertConfigJson = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  type_vocab_size: 2,
};

/** The compact geometry of the reference's speed figures: `heads` heads and FFN `ffn` in every layer of `base`. */
export function compactConfig(heads = 4, ffn = 552, base: BertConfigJson = BERT_BASE): BertConfigJson {
  return {
    ...base,
    pruned_heads: Object.fromEntries(
      Array.from({ length: base.num_hidden_layers }, (_, i) => [String(i), Array.from({ length: base.num_attention_heads - heads }, (_, k) => heads + k)]),
    ),
    intermediate_sizes: Array(base.num_hidden_layers).fill(ffn),
  };
}

/**
 * ../shared beside the checkout (or BLOCKPRUNE_SHARED): the first `shared/` found walking up from here that
 * holds one of `marks` (default data/ or fixtures/); undefined when absent.
 */
export function sharedDir(marks: readonly string[] = ['data', 'fixtures']): string | undefined {
  if (process.env.BLOCKPRUNE_SHARED) return resolve(process.env.BLOCKPRUNE_SHARED);
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'shared');
    if (marks.some((m) => existsSync(join(candidate, m)))) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/** The training benchmarks' geometries: hidden 256 / 4 layers, and bert-base. */
export const TRAIN_GEOMETRIES: Record<string, BertConfigJson> = {
  small: { ...BERT_BASE, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024 },
  base: BERT_BASE,
};

/** `--name value` from process.argv, or `def`. */
export function argValue(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

/** `--name value` from process.argv as a number checked by lib/validate.ts (the error names the flag), or `def`. */
export function argNumber(name: string, def: number, range: NumberRange & { integer?: boolean }): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? flagNumber(`--${name}`, process.argv[i + 1], range) : def;
}

/** `--name value` from process.argv, one of `values`, or `def`. */
export function argChoice<T extends string>(name: string, def: T, values: readonly T[]): T {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? oneOf(`--${name}`, process.argv[i + 1], values) : def;
}

/** A script's failure after its flags were read: `NAME: [CODE] message`, exit 1 (as `blockprune` prints it). */
export function exitWithError(script: string, e: unknown): never {
  const code = (e as { code?: unknown }).code;
  console.error(`${script}: ${typeof code === 'string' ? `[${code}] ` : ''}${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

/**
 * A script's command line, read by `parse` before any work: a bad value (E_INVALID_ARG, the message names
 * the flag) prints that one line and the usage, and exits 2, as `blockprune` does; nothing has run yet.
 */
export function parseFlags<T>(script: string, usage: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'E_INVALID_ARG') throw e;
    console.error(`${script}: ${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
}

/**
 * Reads a `--flag [value]` command line one flag at a time; errors name the flag (and end with the usage
 * where the value is missing or the flag unknown).
 */
export class FlagReader {
  private i = -1;
  constructor(
    private readonly argv: readonly string[],
    private readonly usage: string,
  ) {}

  /** The next flag, or undefined at the end. */
  next(): string | undefined {
    return this.argv[++this.i];
  }

  private get flag(): string {
    return this.argv[this.i];
  }

  /** The current flag's value. */
  value(): string {
    const flag = this.flag;
    const v = this.argv[++this.i];
    if (v === undefined) throw invalidParameterError(flag, 'a value', v);
    return v;
  }

  /** The current flag's value as a number in [min, max] (an integer unless `integer` is false), by lib/validate.ts. */
  num(min: number, integer = true, max?: number): number {
    const flag = this.flag;
    return flagNumber(flag, this.value(), { min, max, integer });
  }

  /** The current flag's value as a comma-separated list of integers in [min, max] (`--clients 1,8,32`). */
  nums(min: number, max?: number): number[] {
    const flag = this.flag;
    return flagNumbers(flag, this.value(), { min, max, integer: true });
  }

  /** The current flag's value as a comma-separated list of `allowed` words. */
  list<T extends string>(allowed: readonly T[]): T[] {
    const flag = this.flag;
    return this.value()
      .split(',')
      .map((x) => oneOf(flag, x, allowed));
  }

  /** The error for a flag nobody handled (`--help` prints the usage and exits instead). */
  unknown(): Error {
    if (this.flag === '--help' || this.flag === '-h') {
      console.log(this.usage);
      process.exit(0);
    }
    return argumentError(`unknown argument ${this.flag}`, 'type');
  }
}

/** The q-quantile (0 < q <= 1) of ascending `sorted` values by nearest rank (no interpolation); NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export interface LatencyStats {
  mean: number;
  std: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Mean and standard deviation, and the percentiles a service counts on (p50, p90, p99): a mean hides the
 * stalls that p99 shows. With fewer than 100 values p99 is the largest.
 */
export function latencyStats(xs: readonly number[]): LatencyStats {
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
}

/** "p50 / p90 / p99 ms" of latencyStats, for one line of a report. */
export function formatPercentiles(s: Pick<LatencyStats, 'p50' | 'p90' | 'p99'>, digits = 1): string {
  return `p50 ${s.p50.toFixed(digits)} / p90 ${s.p90.toFixed(digits)} / p99 ${s.p99.toFixed(digits)} ms`;
}
