/**
 * What `blockprune evaluate` reads: one split of a task's data under --data, as the files name it (GLUE's
 * train.tsv / dev.tsv / test.tsv, SuperGLUE's val.jsonl, SQuAD's dev-v2.0.json...), or by default the set the
 * fine-pruning job evaluates on (task-data.ts), so that `evaluate` on the job's output reproduces its figures.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClassificationExample, hasLabels, loadBoolQ, loadGlue } from '../data/glue';
import { loadSquad, type QAExample } from '../data/squad';
import { TASK_COLUMNS } from '../data/tasks';
import { BlockpruneError } from '../runtime/errors';
import { firstExisting, JOB_TASKS, JobTask, loadTaskData } from './task-data';

export type EvalTask = JobTask | 'squad';
export const EVAL_TASKS: readonly EvalTask[] = [...JOB_TASKS, 'squad'];
export type EvalSplit = 'dev' | 'test' | 'train';
export const EVAL_SPLITS: readonly EvalSplit[] = ['dev', 'test', 'train'];

export interface EvalData<T> {
  examples: T[];
  /** What was read, for the log line and the JSON output: the file, or the job's split. */
  source: string;
}

/** Every `folder/name` pair, folders first: the task's own folder under --data, then --data itself. */
const under = (folders: string[], names: string[]): string[] => [...folders.flatMap((f) => names.map((n) => join(f, n))), ...names];

/** Where each classification split is looked for under --data (the first existing path wins). */
const SPLIT_FILES: Record<Exclude<JobTask, 'spam'>, Record<EvalSplit, string[]>> = {
  sst2: {
    train: under(['sst2', 'SST-2'], ['train.tsv']),
    dev: under(['sst2', 'SST-2'], ['dev.tsv']),
    test: under(['sst2', 'SST-2'], ['test.tsv']),
  },
  boolq: {
    train: under(['boolq'], ['train.jsonl', 'train.parquet']),
    dev: under(['boolq'], ['val.jsonl', 'validation.jsonl', 'validation.parquet']),
    test: under(['boolq'], ['test.jsonl', 'test.parquet']),
  },
  rte: {
    train: under(['superglue_rte', 'RTE'], ['train.jsonl', 'train.tsv']),
    dev: under(['superglue_rte', 'RTE'], ['val.jsonl', 'dev.tsv', 'validation.jsonl']),
    test: under(['superglue_rte', 'RTE'], ['test.jsonl', 'test.tsv']),
  },
};

/**
 * A classification task's examples: `split` names a file (refused when the folder has none, or when it has no
 * labels, as GLUE's test.tsv), undefined is the job's evaluation set (with the job's seed for the tasks it
 * splits 80/20). At most `limit` examples, the file's first.
 */
export async function loadClassificationSplit(
  task: JobTask,
  dataDir: string | undefined,
  split: EvalSplit | undefined,
  o: { seed: number; limit?: number },
): Promise<EvalData<ClassificationExample>> {
  if (split === undefined) {
    const d = await loadTaskData(task, dataDir, o.seed, { evalLimit: o.limit });
    return { examples: d.eval, source: `the job's evaluation set (${d.source})` };
  }
  if (task === 'spam') throw new BlockpruneError('E_INVALID_ARG', `--split ${split}: spam is one corpus that the job splits 80/20 (--seed); leave out --split to evaluate on its 20%`);
  const d = resolve(dataDir ?? '.');
  const file = firstExisting(...SPLIT_FILES[task][split].map((p) => join(d, p)));
  if (!file) throw new BlockpruneError('E_FILE_NOT_FOUND', `${task}: no ${split} split under ${d} (looked for ${SPLIT_FILES[task][split].join(', ')})`);
  if (!(await hasLabels(file, TASK_COLUMNS[task]))) throw new BlockpruneError('E_BAD_DATA', `${task}: ${file} has no labels (GLUE's and SuperGLUE's test files have none): evaluate on --split dev`);
  const opts = { limit: o.limit };
  const r = task === 'boolq' ? await loadBoolQ(file, opts) : await loadGlue(task, file, opts);
  return { examples: r.examples, source: file };
}

/** The SQuAD files of a split: official JSON (dev-v2.0.json, train-v1.1.json) or HF rows (validation.jsonl, *.parquet). */
function squadFile(dir: string, split: EvalSplit): string | undefined {
  const prefixes = split === 'dev' ? ['dev', 'validation'] : [split];
  const names = readdirSync(dir)
    .filter((f) => prefixes.some((p) => f.startsWith(p)) && /\.(json|jsonl|parquet)$/.test(f))
    .sort();
  return names.length ? join(dir, names[0]) : undefined;
}

/**
 * SQuAD (v1.1 or v2.0, detected): --data is the file itself, or a folder (its squad/ subfolder first) holding
 * one whose name starts with the split (dev or validation by default). At most `limit` questions, the file's first.
 */
export async function loadSquadSplit(dataDir: string | undefined, split: EvalSplit | undefined, limit?: number): Promise<EvalData<QAExample> & { version2: boolean }> {
  const d = resolve(dataDir ?? '.');
  let file: string | undefined;
  if (existsSync(d) && statSync(d).isFile()) file = d;
  else for (const dir of [join(d, 'squad'), d]) if (!file && existsSync(dir) && statSync(dir).isDirectory()) file = squadFile(dir, split ?? 'dev');
  if (!file) throw new BlockpruneError('E_FILE_NOT_FOUND', `squad: no ${split ?? 'dev'} file (${split ?? 'dev'}*.json, .jsonl or .parquet) in ${join(d, 'squad')} or ${d}`);
  const r = await loadSquad(file, { limit });
  return { examples: r.examples, source: file, version2: r.version2 };
}
