/**
 * The one command-line reader of `blockprune` and of the scripts: node:util parseArgs plus the few things it
 * lacks (negative numbers as values, did-you-mean for an unknown flag), the flag readers that turn text into
 * checked values through lib/runtime/validate.ts (so `--batch-size 0` and `{ batchSize: 0 }` get the same
 * message), and the exit policy: a usage error exits 2, any other error 1 with its code.
 */
import { parseArgs } from 'node:util';
import * as v from '../runtime/validate';

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type FlagValues = Record<string, string | boolean | undefined>;
export interface ParsedFlags {
  values: FlagValues;
  positionals: string[];
}

/** A flag that takes a value, and a switch: the two kinds of FlagSpec entries. */
export const str = { type: 'string' as const };
export const bool = { type: 'boolean' as const };

/** A mistake on the command line: exit 2 with the message, and the whole usage when `showUsage`. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * node's parseArgs with --help/-h added, after our own pass over the words so that every mistake gets one
 * line of ours that names the flag (node's texts are several lines, or end in an unbalanced quote):
 * an unknown flag names the closest known one; a flag that takes a value and has none, or is followed by
 * another flag, says so; a switch given a value says it takes none. A negative number after a flag that
 * takes a value is that value (`--lambda -5` reads as `--lambda=-5`, then refused by its range with the
 * flag's own message). `where` names the command or script in the messages.
 */
export function parseFlags(argv: readonly string[], spec: FlagSpec, where: string): ParsedFlags {
  const options: FlagSpec = { ...spec, help: { type: 'boolean', short: 'h' } };
  const longOf = new Map(Object.entries(options).flatMap(([k, o]) => (o.short ? [[o.short, k]] : [])));
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // After `--` every word is a positional.
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const m = /^(--?)([^=]+)(=.*)?$/.exec(a);
    if (!m || a === '-' || /^-\d/.test(a)) {
      args.push(a);
      continue;
    }
    const [, dashes, raw, inline] = m;
    const name = dashes === '--' ? raw : longOf.get(raw);
    const opt = name === undefined ? undefined : options[name];
    if (!opt || name === undefined) {
      const hint = v.didYouMean(raw, Object.keys(options));
      throw new UsageError(`unknown option ${dashes}${raw} for ${where}${hint ? ` (did you mean --${hint}?)` : ''}`);
    }
    if (opt.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} is a switch and takes no value (got ${a})`);
      args.push(`--${name}`);
      continue;
    }
    if (inline !== undefined) {
      args.push(`--${name}${inline}`);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined) throw new UsageError(`--${name} needs a value`);
    if (/^-/.test(next) && !/^-(\d|\.\d|Infinity)/.test(next))
      throw new UsageError(`--${name} needs a value, got the option ${next} (a value that starts with '-' is written --${name}=VALUE)`);
    args.push(`--${name}=${next}`);
    i++;
  }
  try {
    return parseArgs({ args, allowPositionals: true, options }) as ParsedFlags;
  } catch (e) {
    // Not expected after the pass above; one line of node's text, in case.
    throw new UsageError(`${where}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * Runs a command line's checks: a bad value (E_INVALID_ARG from lib/runtime/validate.ts, the same checks the
 * API makes) becomes a usage error, before any work is done or any file written. Other errors (a missing
 * model directory: E_FILE_NOT_FOUND) pass as they are; E_INVALID_ARG thrown later, by the work, is not a
 * mistake on the command line and is not wrapped.
 */
export function usageChecked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if ((e as { code?: unknown }).code === 'E_INVALID_ARG') throw new UsageError((e as Error).message);
    throw e;
  }
}

/** The exit policy: a UsageError exits 2 with its line and then `hint`; any other error exits 1 as `PROGRAM: [CODE] message`. */
export function exitWithError(program: string, e: unknown, hint: (u: UsageError) => string): never {
  if (e instanceof UsageError) {
    console.error(`${program}: ${e.message}`);
    console.error(hint(e));
    process.exit(2);
  }
  const code = (e as { code?: unknown }).code;
  console.error(`${program}: ${typeof code === 'string' ? `[${code}] ` : ''}${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

/** A flag's number (undefined when absent), checked by lib/runtime/validate.ts: the error names the flag. */
export function numFlag(values: FlagValues, key: string, range: v.NumberRange & { integer?: boolean } = {}): number | undefined {
  return values[key] === undefined ? undefined : v.flagNumber(`--${key}`, values[key], range);
}

/** A flag's integer in [min, max] (undefined when absent). */
export function intFlag(values: FlagValues, key: string, min = 0, max?: number): number | undefined {
  return numFlag(values, key, { integer: true, min, max });
}

/** A comma-separated list of integers in [min, max] (`--batches 1,8`), undefined when absent. */
export function intsFlag(values: FlagValues, key: string, min: number, max?: number): number[] | undefined {
  return values[key] === undefined ? undefined : v.flagNumbers(`--${key}`, values[key], { integer: true, min, max });
}

/** A comma-separated list of `allowed` words (`--models dense,compact`), undefined when absent. */
export function listFlag<T extends string>(values: FlagValues, key: string, allowed: readonly T[]): T[] | undefined {
  const s = values[key];
  return s === undefined ? undefined : String(s).split(',').map((x) => v.oneOf(`--${key}`, x.trim(), allowed));
}

/** One of `allowed` (undefined when absent). */
export function choiceFlag<T extends string>(values: FlagValues, key: string, allowed: readonly T[]): T | undefined {
  return values[key] === undefined ? undefined : v.oneOf(`--${key}`, values[key], allowed);
}

/** An `RxC` pair of positive integers (`--attention-block 32x32`), undefined when absent. */
export function pairFlag(values: FlagValues, key: string): [number, number] | undefined {
  return values[key] === undefined ? undefined : v.flagPair(`--${key}`, values[key], { min: 1 });
}

/** --device cpu|cuda|cuda:N (default cpu). */
export function deviceFlag(values: FlagValues): string {
  const d = values.device ?? 'cpu';
  if (typeof d !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(d)) throw v.invalidParameterError('--device', 'cpu, cuda or cuda:N', d, 'range');
  return d;
}
