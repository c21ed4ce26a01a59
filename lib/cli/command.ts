/**
 * What a `blockprune` command is (node-llama-cpp's `src/cli/commands/*Command.ts`, smaller): its name, its
 * line in the global usage, its help, its flags and its handler. main.ts dispatches over a table of these.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRevision } from '../hub/cache';
import { checkModelSource, type HubOptions } from '../hub/hub';
import { bool, str, UsageError, type FlagSpec, type FlagValues, type ParsedFlags } from './flags';
import { downloadProgress } from './progress';

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
 * `n` positionals, the first a model directory that must exist or a hub id (`org/name`, read from the
 * Hugging Face cache or downloaded at run time); anything else is E_FILE_NOT_FOUND (exit 1, as for any missing
 * input). `usage` is the message when the count is wrong. Returns the model as given.
 */
export function modelDirArg(positionals: readonly string[], n: number, usage: string): string {
  if (positionals.length !== n) throw new UsageError(usage);
  return checkModelSource('<model-dir>', positionals[0]);
}

/** The flags of every command that reads a model (a directory or a hub id). */
export const HUB_FLAGS: FlagSpec = { revision: str, offline: bool };
export const HUB_HELP = `A model may be a hub id (org/name): read from the Hugging Face cache (HF_HUB_CACHE, HF_HOME), else downloaded
into it (HF_ENDPOINT, HF_TOKEN; progress on stderr). --revision REV picks a branch, tag or commit (main);
--offline (or HF_HUB_OFFLINE=1) never touches the network.`;

/**
 * --revision and --offline as hub options, with a progress display on stderr. The token comes from HF_TOKEN
 * only: a flag would show it in `ps` and in shell history.
 */
export function hubFlags(values: FlagValues): HubOptions {
  return {
    revision: values.revision === undefined ? undefined : checkRevision('--revision', values.revision),
    offline: values.offline === true ? true : undefined,
    onProgress: downloadProgress(),
  };
}

/** For commands that take flags only (train, bench, serve). */
export function noPositionals(name: string, positionals: readonly string[]): void {
  if (positionals.length) throw new UsageError(`${name} takes options only, got ${positionals.join(' ')}`);
}

/** The tasks a checkpoint's head serves ('bare': an encoder without a head). */
export type ModelTask = 'text-classification' | 'question-answering' | 'bare';

/**
 * The task config.json's architectures name (…ForQuestionAnswering, …ForSequenceClassification, a bare
 * …Model), as transformers' pipelines read it; undefined when the file names none or cannot be read (loading
 * the model then says why).
 */
export function configTask(dir: string): { task: ModelTask; architecture: string } | undefined {
  let architectures: unknown;
  try {
    architectures = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))?.architectures;
  } catch {
    return undefined;
  }
  for (const a of Array.isArray(architectures) ? architectures.map(String) : []) {
    if (a.endsWith('ForQuestionAnswering')) return { task: 'question-answering', architecture: a };
    if (a.endsWith('ForSequenceClassification')) return { task: 'text-classification', architecture: a };
    if (a.endsWith('Model')) return { task: 'bare', architecture: a };
  }
  return undefined;
}

/**
 * Refuses (a usage error: exit 2) a model whose head does not serve what the command line asks for, naming
 * both: a classifier asked a question would otherwise get a random QA head and answer noise with exit 0.
 * `dir` is the model's local directory, `shown` how the user named it, `asked` what `by` (the flags) ask for.
 */
export function checkModelTask(dir: string, shown: string, asked: Exclude<ModelTask, 'bare'>, by: string): void {
  const has = configTask(dir);
  if (!has || has.task === asked) return;
  const what = has.task === 'bare' ? 'a bare encoder with no task head' : `a ${has.task} model`;
  throw new UsageError(`${by} asks for ${asked}, but ${shown} is ${what} (${has.architecture} in its config.json)`);
}
