/**
 * What a `blockprune` command is (node-llama-cpp's `src/cli/commands/*Command.ts`, smaller): its name, its
 * line in the global usage, its help, its flags and its handler. main.ts dispatches over a table of these.
 */
import * as v from '../runtime/validate';
import { UsageError, type FlagSpec, type ParsedFlags } from './flags';

export interface Command<Args> {
  name: string;
  /** How the command is called, in the global usage: `info <model-dir>`. */
  synopsis: string;
  /** What it does, in one line of the global usage. */
  summary: string;
  /** `blockprune <name> --help`. */
  help: string;
  /** Its flags, for node:util parseArgs (--help/-h is added). */
  flags: FlagSpec;
  /**
   * Reads and checks the command line before any work: a bad value throws (E_INVALID_ARG or a UsageError:
   * exit 2), a missing input its coded error (exit 1). `argv` is the command's own, for commands that pass
   * it on (train --nproc starts ranks with it).
   */
  args(flags: ParsedFlags, argv: readonly string[]): Args;
  // A method, not a property: its parameter is then bivariant, so a table can hold every command's type.
  run(args: Args): Promise<void>;
}

/**
 * `n` positionals, the first a model directory that must exist (E_FILE_NOT_FOUND: exit 1, as for any missing
 * input); `usage` is the message when the count is wrong. Returns the directory as given.
 */
export function modelDirArg(positionals: readonly string[], n: number, usage: string): string {
  if (positionals.length !== n) throw new UsageError(usage);
  v.modelDirectory('<model-dir>', positionals[0]);
  return positionals[0];
}

/** For commands that take flags only (train, bench, serve). */
export function noPositionals(name: string, positionals: readonly string[]): void {
  if (positionals.length) throw new UsageError(`${name} takes options only, got ${positionals.join(' ')}`);
}
