/**
 * SparseTrainer: fine-pruning as the reference does it (weights and mask scores trained together, cubic
 * threshold schedule, L1 on scores, optional distillation from a dense teacher, evaluation each epoch),
 * with checkpoints that work: model + scores + optimizer + RNG + schedule position, written atomically, and
 * resumable to the same result. Each step's arithmetic is one native call (BertModel.trainStep).
 *
 * Dropout draws from libtorch's process-wide generator, seeded at the start and saved in checkpoints: a run
 * is reproducible when it is the only training in its process at a time.
 *
 * Data-parallel (`distributed`: a ProcessGroup): each rank reads its own rows of every global batch, the
 * gradients of weights and mask scores are averaged over the global batch (bucketed all-reduce) before the
 * step, so every rank applies the same update and schedules run on the global step. Only rank 0 writes logs
 * and checkpoints (with every rank's generator state) and runs `evaluate`; the others wait for its metrics.
 * A Ctrl-C on any rank makes all of them checkpoint and stop at the same step. Resume needs the same world
 * size and a checkpoint directory every rank can read.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { appendDurableSync, ensureDir, removeStaleTemps, removeTreeSync, renameDirectorySync, tempSibling, writeFileAtomicSync } from '../runtime/atomic';
import { ProcessGroup, shardBatch } from './distributed';
import { BlockpruneError } from '../runtime/errors';
import { BertModel, ForwardBatch, TrainStepResult } from '../model/model';
import { native } from '../runtime/native';
import { PruningConfig } from '../pruning/config';
import * as v from '../runtime/validate';

/** What the trainer needs of a training set: a size and deterministic batches per (seed, epoch). */
export interface TrainData {
  readonly length: number;
  /**
   * True when batches() honours `shard` (yields only that rank's rows of each global batch, the same number of
   * batches on every rank). Otherwise a data-parallel trainer takes its rows from each global batch itself.
   */
  readonly shardable?: boolean;
  batches(
    batchSize: number,
    options: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean; shard?: { rank: number; worldSize: number } },
  ): Iterable<ForwardBatch>;
  /**
   * A short hash of the data (cheap: a sample of rows), stored in checkpoints so that a resume on other data
   * is refused. Without it the trainer hashes the first unshuffled batch.
   */
  fingerprint?(): string;
}

export type Metrics = Record<string, number>;

export interface DistillationOptions {
  teacher: BertModel;
  alphaCe?: number;
  alphaTeacher?: number;
  temperature?: number;
}

export interface FilledOptions {
  /** Epochs of the filled stage (compact, zeros filled with noise, no masks, distillation when a teacher is given). */
  epochs: number;
  learningRate?: number;
}

export interface SparseTrainerOptions {
  model: BertModel;
  /** Fine-pruning config; omit for plain (dense) fine-tuning. */
  pruning?: PruningConfig;
  train: TrainData;
  /** Called after each epoch with the model in eval mode at the final threshold. */
  evaluate?: (model: BertModel) => Promise<Metrics>;
  epochs?: number;
  /** Stop after this many optimizer steps (overrides epochs for the schedule's length). */
  maxSteps?: number;
  batchSize?: number;
  learningRate?: number;
  weightDecay?: number;
  /** Linear warm-up of the learning rate, and the unit of the pruning schedule's warm-ups. */
  warmupSteps?: number;
  maxGradNorm?: number;
  distillation?: DistillationOptions;
  seed?: number;
  /** Checkpoints go to outputDir/checkpoint-<step>; the last `keepCheckpoints` are kept. */
  outputDir?: string;
  /** Also checkpoint every N steps (epoch ends always checkpoint when outputDir is set). */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  /**
   * Resume from a checkpoint directory, or `true` for the latest one in outputDir. The checkpoint must come
   * from the same run (RUN_FIELDS: seed, batch size, data, pruning plan, model, epochs...): one that differs
   * is refused with E_RESUME_MISMATCH naming the field, unless allowResumeMismatch allows it.
   */
  resume?: string | boolean;
  /**
   * Resume although these fields differ from the checkpoint's (true: any of them), for a deliberate change,
   * e.g. ['batchSize'] or ['data']. worldSize cannot be allowed (the checkpoint holds one generator per rank).
   */
  allowResumeMismatch?: boolean | readonly RunField[];
  /** JSON lines log file. */
  logFile?: string;
  /** Log every N steps (default 10). */
  logEvery?: number;
  /** Progress line on stderr when it is a terminal (default: process.stderr.isTTY). */
  progress?: boolean;
  /** Extra stage after pruning: see FilledOptions. */
  filled?: FilledOptions;
  /** Write a checkpoint and stop on SIGINT (default true). */
  handleSigint?: boolean;
  onLog?: (entry: LogEntry) => void;
  /**
   * Data-parallel training over this process group: `batchSize` is the global batch (split over the ranks),
   * and every rank must run the same trainer options. See the file comment.
   */
  distributed?: ProcessGroup;
  /** Data-parallel: how long the other ranks wait for rank 0's evaluation (default 6 hours). */
  evaluationTimeoutMs?: number;
}

export interface LogEntry {
  type: 'step' | 'eval' | 'checkpoint' | 'stage';
  step: number;
  epoch: number;
  [key: string]: unknown;
}

export interface TrainResult {
  /** The trained model (the compact filled model when `filled` was asked for). */
  model: BertModel;
  steps: number;
  epochs: number;
  interrupted: boolean;
  history: Metrics[];
  lastCheckpoint?: string;
  /** Processes that trained together (1 unless distributed). */
  worldSize: number;
}

/**
 * What defines a run, stored in each checkpoint's trainer_state.json: a resume whose own values differ is
 * another run. totalSteps follows from epochs, maxSteps, batch size and data, so it is not compared itself.
 */
export interface RunFingerprint {
  worldSize: number;
  seed: number;
  batchSize: number;
  epochs: number;
  maxSteps: number | null;
  totalSteps: number;
  /** Row count and a hash of a sample of rows (TrainData.fingerprint). */
  data: { length: number; hash: string };
  /** The pruning options (null: dense fine-tuning). */
  pruning: Record<string, unknown> | null;
  /** The model's geometry: hidden size, vocabulary, labels, heads and FFN width of each layer. */
  model: { hidden: number; vocab: number; labels: number; layers: Array<[number, number]> };
}

/** The fields a resume compares, in this order; allowResumeMismatch names them. */
export const RUN_FIELDS = ['worldSize', 'seed', 'batchSize', 'epochs', 'maxSteps', 'data', 'pruning', 'model'] as const;
export type RunField = (typeof RUN_FIELDS)[number];

interface TrainerState {
  format: 'blockprune-trainer-1';
  step: number;
  epoch: number;
  batchInEpoch: number;
  totalSteps: number;
  seed: number;
  history: Metrics[];
  pruning?: Record<string, unknown>;
  /** Ranks of the run that wrote it (absent: 1). */
  worldSize?: number;
  /** What defines the run (absent in checkpoints of older versions: resumed with a warning). */
  run?: RunFingerprint;
}

const STATE_FILE = 'trainer_state.json';
const REQUIRED_FILES = ['config.json', 'model.safetensors', 'optimizer.safetensors', 'rng.safetensors', STATE_FILE];

/** HF get_linear_schedule_with_warmup: 0 -> 1 over warmup steps, then linearly to 0 at the last step. */
export function linearSchedule(step: number, totalSteps: number, warmupSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** Checks a checkpoint directory; throws E_BAD_CHECKPOINT naming what is missing or broken. */
export function readCheckpointState(dir: string): TrainerState {
  for (const f of REQUIRED_FILES)
    if (!existsSync(join(dir, f))) throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir} is incomplete: ${f} is missing`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8'));
  } catch (e) {
    throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir}: ${STATE_FILE} is not valid JSON (${(e as Error).message})`);
  }
  if (state?.format !== 'blockprune-trainer-1' || !Number.isInteger(state.step) || !Number.isInteger(state.epoch) || !Number.isInteger(state.batchInEpoch))
    throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir}: ${STATE_FILE} is not a blockprune trainer state`);
  return state;
}

/** The newest complete checkpoint in outputDir (partial ones are skipped), or undefined. */
export function latestCheckpoint(outputDir: string): string | undefined {
  if (!existsSync(outputDir)) return undefined;
  const dirs = readdirSync(outputDir)
    .map((d) => /^checkpoint-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => !!m)
    .sort((a, b) => Number(b[1]) - Number(a[1]));
  for (const m of dirs) {
    try {
      readCheckpointState(join(outputDir, m[0]));
      return join(outputDir, m[0]);
    } catch {
      /* a partial or corrupt checkpoint: try the previous one */
    }
  }
  return undefined;
}

/** Hugging Face TrainingArguments names users bring along, pointed to ours in the unknown-option message. */
const HF_TRAINER_NAMES: Record<string, string> = {
  num_train_epochs: 'epochs',
  max_steps: 'maxSteps',
  per_device_train_batch_size: 'batchSize',
  per_gpu_train_batch_size: 'batchSize',
  train_batch_size: 'batchSize',
  learning_rate: 'learningRate',
  weight_decay: 'weightDecay',
  warmup_steps: 'warmupSteps',
  warmup_ratio: 'warmupSteps',
  max_grad_norm: 'maxGradNorm',
  output_dir: 'outputDir',
  save_steps: 'checkpointEvery',
  save_total_limit: 'keepCheckpoints',
  logging_steps: 'logEvery',
  resume_from_checkpoint: 'resume',
};

const TRAINER_OPTIONS: ReadonlyArray<keyof SparseTrainerOptions> = [
  'model', 'pruning', 'train', 'evaluate', 'epochs', 'maxSteps', 'batchSize', 'learningRate', 'weightDecay', 'warmupSteps',
  'maxGradNorm', 'distillation', 'seed', 'outputDir', 'checkpointEvery', 'keepCheckpoints', 'resume', 'allowResumeMismatch',
  'logFile', 'logEvery', 'progress', 'filled', 'handleSigint', 'onLog', 'distributed', 'evaluationTimeoutMs',
];

/**
 * Every option checked before any work: type, range, integer-ness, unknown keys; the output locations are
 * probed (rank 0 writes them), so that a bad one fails now rather than at the first checkpoint. The ranges of
 * learning rates, weight decay and distillation weights are the native step's.
 */
function checkTrainerOptions(options: SparseTrainerOptions): void {
  const o = v.object('options', options) as Partial<SparseTrainerOptions>;
  v.knownKeys('SparseTrainer options', o, TRAINER_OPTIONS, HF_TRAINER_NAMES);
  v.instance('options.model', o.model, BertModel, 'a BertModel');
  const train = o.train as TrainData;
  if (typeof train !== 'object' || train === null || !v.is.function(train.batches))
    throw v.invalidParameterError('options.train', 'a dataset with length and batches()', train);
  v.integer('options.train.length', train.length, { min: 0 });
  if (train.fingerprint !== undefined) v.func('options.train.fingerprint', train.fingerprint);
  if (o.pruning !== undefined) v.instance('options.pruning', o.pruning, PruningConfig, 'a PruningConfig');
  if (o.evaluate !== undefined) v.func('options.evaluate', o.evaluate);
  if (o.onLog !== undefined) v.func('options.onLog', o.onLog);
  const int = (name: keyof SparseTrainerOptions, min: number) => o[name] !== undefined && v.integer(`options.${name}`, o[name], { min });
  int('epochs', 0);
  int('maxSteps', 1);
  int('batchSize', 1);
  int('warmupSteps', 0);
  int('seed', 0);
  int('checkpointEvery', 1);
  int('keepCheckpoints', 1);
  int('logEvery', 1);
  if (o.learningRate !== undefined) v.number('options.learningRate', o.learningRate, { min: 0, max: 10 });
  if (o.weightDecay !== undefined) v.number('options.weightDecay', o.weightDecay, { min: 0, max: 10 });
  if (o.maxGradNorm !== undefined) v.number('options.maxGradNorm', o.maxGradNorm, { min: 0 });
  if (o.evaluationTimeoutMs !== undefined) v.number('options.evaluationTimeoutMs', o.evaluationTimeoutMs, { min: 0, exclusiveMin: true });
  if (o.progress !== undefined) v.boolean('options.progress', o.progress);
  if (o.handleSigint !== undefined) v.boolean('options.handleSigint', o.handleSigint);
  if (o.distributed !== undefined) v.instance('options.distributed', o.distributed, ProcessGroup, 'a ProcessGroup');
  if (o.distillation !== undefined) {
    const d = v.options('options.distillation', o.distillation, ['teacher', 'alphaCe', 'alphaTeacher', 'temperature']);
    v.instance('options.distillation.teacher', d.teacher, BertModel, 'a BertModel');
    if (d.teacher === o.model) throw v.invalidParameterError('options.distillation.teacher', 'another model than options.model', 'the student itself');
    if (d.alphaCe !== undefined) v.number('options.distillation.alphaCe', d.alphaCe, { min: 0, max: 1e6 });
    if (d.alphaTeacher !== undefined) v.number('options.distillation.alphaTeacher', d.alphaTeacher, { min: 0, max: 1e6 });
    if (d.temperature !== undefined) v.number('options.distillation.temperature', d.temperature, { min: 1e-6, max: 1e6 });
  }
  if (o.filled !== undefined) {
    const f = v.options('options.filled', o.filled, ['epochs', 'learningRate']);
    v.positiveInteger('options.filled.epochs', f.epochs);
    if (f.learningRate !== undefined) v.number('options.filled.learningRate', f.learningRate, { min: 0, max: 10 });
  }
  if (o.resume !== undefined && typeof o.resume !== 'boolean') v.string('options.resume', o.resume, { nonEmpty: true });
  if (o.allowResumeMismatch !== undefined) checkAllowResumeMismatch('options.allowResumeMismatch', o.allowResumeMismatch);
  if (o.resume === true && o.outputDir === undefined)
    throw v.invalidParameterError('options.resume', 'a checkpoint directory (resume: true needs outputDir)', true);
  if (o.epochs === 0 && o.maxSteps === undefined) throw v.invalidParameterError('options.epochs', 'at least 1 when maxSteps is not set (nothing to train)', 0, 'range');
  if (train.length === 0) throw new BlockpruneError('E_INVALID_ARG', 'the training set is empty');
  // Only rank 0 writes logs and checkpoints: the others need not see those folders.
  const writes = !o.distributed || o.distributed.isMain;
  if (o.outputDir !== undefined) {
    if (writes) v.writableDirectory('options.outputDir', o.outputDir);
    else v.string('options.outputDir', o.outputDir, { nonEmpty: true });
  }
  if (o.logFile !== undefined) {
    if (writes) v.writableFile('options.logFile', o.logFile);
    else v.string('options.logFile', o.logFile, { nonEmpty: true });
  }
}

/** allowResumeMismatch: a boolean or a list of RUN_FIELDS. */
export function checkAllowResumeMismatch(name: string, allow: unknown): void {
  if (typeof allow === 'boolean') return;
  if (!Array.isArray(allow)) throw v.invalidParameterError(name, `a boolean or an array of ${RUN_FIELDS.join(', ')}`, allow);
  allow.forEach((f, i) => v.oneOf(`${name}[${i}]`, f, RUN_FIELDS));
}

/** A short hash of the training data: its own fingerprint(), else its first unshuffled batch. */
function dataFingerprint(train: TrainData): { length: number; hash: string } {
  if (train.fingerprint) return { length: train.length, hash: String(train.fingerprint()) };
  const h = createHash('sha256');
  for (const b of train.batches(Math.min(16, train.length), { shuffle: false })) {
    for (const a of [b.inputIds, b.attentionMask, b.tokenTypeIds, b.labels])
      if (a && ArrayBuffer.isView(a)) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    h.update(`${b.batchSize}x${b.seqLen}`);
    break;
  }
  return { length: train.length, hash: h.digest('hex').slice(0, 16) };
}

/** The first place two JSON values differ (undefined when equal), descending into objects: 'pruning.finalThreshold'. */
function firstDifference(a: unknown, b: unknown, path: string): { path: string; a: unknown; b: unknown } | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (v.is.object(a) && v.is.object(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
  }
  return { path, a, b };
}

export class SparseTrainer {
  readonly options: SparseTrainerOptions;
  private model: BertModel;
  private stopRequested = false;
  /** This run's fingerprint, written into each checkpoint. */
  private fingerprint?: RunFingerprint;

  constructor(options: SparseTrainerOptions) {
    checkTrainerOptions(options);
    this.options = options;
    this.model = options.model;
  }

  /**
   * Refuses a checkpoint of another run (E_RESUME_MISMATCH naming the first field that differs and both
   * values) unless allowResumeMismatch allows that field. A checkpoint without a fingerprint (older
   * versions) is resumed with a warning, after the two checks those versions made (world size, total steps).
   */
  private checkResume(dir: string, state: TrainerState, run: RunFingerprint): void {
    const allow = this.options.allowResumeMismatch ?? false;
    const allowed = (f: RunField) => f !== 'worldSize' && (allow === true || (Array.isArray(allow) && allow.includes(f)));
    const mismatch = (field: string, theirs: unknown, ours: unknown, note = '') =>
      new BlockpruneError(
        'E_RESUME_MISMATCH',
        `checkpoint ${dir} was made by another run: ${field} is ${JSON.stringify(theirs)} in the checkpoint, ${JSON.stringify(ours)} in this run` +
          (note || ` (resume with the same value, or allow it: allowResumeMismatch: ['${field.split('.')[0]}'], --allow-resume-mismatch ${field.split('.')[0]})`),
      );
    const old = state.run;
    if (!old) {
      const msg = `checkpoint ${dir} does not record what defined its run (an older version wrote it): resuming without checking seed, batch size, data, pruning plan and model`;
      process.emitWarning(msg, { code: 'BLOCKPRUNE_RESUME_UNCHECKED' });
      this.log({ type: 'stage', step: state.step, epoch: state.epoch, warning: msg });
      if ((state.worldSize ?? 1) !== run.worldSize) throw mismatch('worldSize', state.worldSize ?? 1, run.worldSize, ': resume with the same world size');
      if (state.totalSteps !== run.totalSteps) throw mismatch('totalSteps', state.totalSteps, run.totalSteps, ': use the same epochs, batch size and data');
      return;
    }
    const differ: string[] = [];
    for (const f of RUN_FIELDS) {
      const d = firstDifference(old[f], run[f], f);
      if (!d) continue;
      if (f === 'worldSize') throw mismatch(f, d.a, d.b, ': resume with the same world size (the checkpoint holds one generator state per rank)');
      if (!allowed(f)) throw mismatch(d.path, d.a, d.b);
      differ.push(`${d.path} ${JSON.stringify(d.a)} -> ${JSON.stringify(d.b)}`);
    }
    if (differ.length) this.log({ type: 'stage', step: state.step, epoch: state.epoch, resumeMismatchAllowed: differ });
  }

  /** Asks the loop to write a checkpoint and stop after the current step (what Ctrl-C does). */
  stop(): void {
    this.stopRequested = true;
  }

  private get rank(): number {
    return this.options.distributed?.rank ?? 0;
  }

  /** Logs are rank 0's (the others' entries would repeat its global figures). */
  private log(entry: LogEntry): void {
    if (this.rank !== 0) return;
    // Durable, and a failed append is thrown (a full disk stops the run with E_NO_SPACE) with the file cut
    // back to its last complete line.
    if (this.options.logFile) appendDurableSync(this.options.logFile, JSON.stringify(entry) + '\n');
    this.options.onLog?.(entry);
  }

  async train(): Promise<TrainResult> {
    try {
      return await this.run();
    } catch (e) {
      // A failure on this rank (its data, its evaluation, a collective): close the group at once so that the
      // other ranks fail now rather than after the timeout, or hours later for one waiting on an evaluation.
      await this.options.distributed?.abort();
      throw e;
    }
  }

  private async run(): Promise<TrainResult> {
    const o = this.options;
    const batchSize = o.batchSize ?? 32;
    const stepsPerEpoch = Math.ceil(o.train.length / batchSize);
    const epochs = o.epochs ?? 3;
    const totalSteps = o.maxSteps ?? epochs * stepsPerEpoch;
    const seed = o.seed ?? 42;
    const warmup = o.warmupSteps ?? 0;
    const lr = o.learningRate ?? 5e-5;
    const pruning = o.pruning;
    const keep = o.keepCheckpoints ?? 2;
    const group = o.distributed;
    const worldSize = group?.worldSize ?? 1;
    if (o.logFile && this.rank === 0) ensureDir(resolve(o.logFile, '..'));
    if (group) {
      // Every rank must run the same schedule on the same data: compare what decides it before any step.
      const plan = { length: o.train.length, batchSize, totalSteps, seed, epochs, warmup, lr, pruning: pruning?.options ?? null, teacher: !!o.distillation };
      const plans = await group.allgatherJson(plan);
      plans.forEach((p, r) => {
        if (JSON.stringify(p) !== JSON.stringify(plans[0]))
          throw new BlockpruneError('E_DISTRIBUTED', `rank ${r} runs another plan than rank 0: ${JSON.stringify(p)} vs ${JSON.stringify(plans[0])} (same data, batch size, epochs and options on every rank)`);
      });
    }

    let step = 0;
    let epoch = 0;
    let batchInEpoch = 0;
    let history: Metrics[] = [];
    let lastCheckpoint: string | undefined;
    const m = this.model;
    this.fingerprint = {
      worldSize,
      seed,
      batchSize,
      epochs,
      maxSteps: o.maxSteps ?? null,
      totalSteps,
      data: dataFingerprint(o.train),
      pruning: pruning ? { ...pruning.options } : null,
      model: { hidden: m.config.hidden_size, vocab: m.config.vocab_size, labels: m.labels.length, layers: m.layers.map((l) => [l.heads, l.intermediateSize]) },
    };

    // Resume: the checkpoint's model (patched again from its saved plan), optimizer, RNG and position.
    const resumeDir = typeof o.resume === 'string' ? resolve(o.resume) : o.resume && o.outputDir ? latestCheckpoint(resolve(o.outputDir)) : undefined;
    if (o.resume && !resumeDir) throw new BlockpruneError('E_BAD_CHECKPOINT', `no complete checkpoint in ${o.outputDir}`);
    if (resumeDir) {
      const state = readCheckpointState(resumeDir);
      this.checkResume(resumeDir, state, this.fingerprint);
      // The checkpoint's model replaces the one given (which is left as it was): use result.model.
      const loaded = await BertModel.fromPretrained(resumeDir, { device: this.model.device });
      await loaded.loadTrainingState(resumeDir, this.rank);
      this.model = loaded;
      ({ step, epoch, batchInEpoch, history } = state);
      lastCheckpoint = resumeDir;
      this.log({ type: 'stage', step, epoch, resumedFrom: resumeDir });
    } else {
      native().manualSeed(seed);
      if (pruning && !this.model.patched) await this.model.patch(pruning);
    }
    if (group) {
      // Same weights, scores and (distillation) teacher on every rank before the first step.
      await group.syncModel(this.model);
      if (o.distillation) await group.syncModel(o.distillation.teacher);
    }

    const onSigint = () => {
      if (this.stopRequested) process.exit(130);
      this.stopRequested = true;
      process.stderr.write('\nblockprune: stopping after this step, writing a checkpoint (Ctrl-C again to quit now)\n');
    };
    const handleSigint = o.handleSigint ?? true;
    if (handleSigint) process.on('SIGINT', onSigint);
    const progress = o.progress ?? !!process.stderr.isTTY;
    const started = Date.now();
    let interrupted = false;
    try {
      const po = pruning?.options;
      const teacher = o.distillation?.teacher;
      const ownShards = !!group && o.train.shardable === true;
      const shard = group ? { rank: group.rank, worldSize } : undefined;
      while (step < totalSteps && !interrupted) {
        let i = 0;
        for (const global of o.train.batches(batchSize, { shuffle: true, seed, epoch, shard: ownShards ? shard : undefined })) {
          if (i++ < batchInEpoch) continue; // resuming inside an epoch: same order, skip what was done
          // A data-parallel rank's rows (none, in a short last batch, is fine: it still joins the all-reduce).
          const batch = !group ? global : ownShards ? (global.batchSize > 0 ? global : null) : shardBatch(global, group.rank, worldSize);
          const sched = pruning ? pruning.schedule(step, totalSteps, warmup) : undefined;
          const stepOptions = {
            lr,
            maskLr: po?.maskScoresLearningRate ?? 1e-2,
            weightDecay: o.weightDecay ?? 0,
            lrScale: linearSchedule(step, totalSteps, warmup),
            maxGradNorm: o.maxGradNorm ?? 1.0,
            threshold: sched?.threshold,
            regularization: po?.regularization ?? 'disabled',
            lambda: sched?.lambda ?? 0,
            attentionLambda: po?.attentionLambda ?? 1,
            denseLambda: po?.denseLambda ?? 1,
            alphaCe: o.distillation?.alphaCe ?? 0.5,
            alphaTeacher: o.distillation?.alphaTeacher ?? 0.5,
            temperature: o.distillation?.temperature ?? 2,
          };
          const r: TrainStepResult = group
            ? await this.model.trainStep(batch, stepOptions, teacher, { group, stop: this.stopRequested })
            : await this.model.trainStep(batch as ForwardBatch, stepOptions, teacher);
          step++;
          batchInEpoch++;
          if (step % (o.logEvery ?? 10) === 0 || step === totalSteps) {
            const groups = r.regularization.groups;
            const entry: LogEntry = {
              type: 'step',
              step,
              epoch,
              loss: r.loss,
              ce: r.taskLoss,
              distil: r.distilLoss,
              regu: r.reguLoss,
              threshold: sched?.threshold,
              lambda: sched?.lambda,
              lr: lr * linearSchedule(step - 1, totalSteps, warmup),
              gradNorm: r.gradNorm,
              ...(group ? { syncMs: r.syncMs } : {}),
              density: Object.fromEntries(Object.entries(groups).map(([k, g]) => [k, g.density])),
              elapsedSec: (Date.now() - started) / 1000,
            };
            this.log(entry);
            if (progress) {
              const d = Object.entries(groups).map(([k, g]) => `${k} ${(100 * g.density).toFixed(1)}%`).join(' ');
              process.stderr.write(`\r[${step}/${totalSteps}] epoch ${epoch} loss ${r.loss.toFixed(4)}${sched ? ` t ${sched.threshold.toFixed(4)}` : ''} ${d}   `);
            }
          }
          if (o.outputDir && o.checkpointEvery && step % o.checkpointEvery === 0 && batchInEpoch < stepsPerEpoch)
            lastCheckpoint = await this.checkpoint({ step, epoch, batchInEpoch, totalSteps, seed, history }, keep);
          // Data-parallel: stop when any rank asked (the vote rode on this step's all-reduce), all at this step.
          if (group ? r.stop : this.stopRequested) {
            interrupted = true;
            break;
          }
          if (step >= totalSteps) break;
        }
        if (interrupted) break;
        if (progress) process.stderr.write('\n');
        const metrics = await this.evaluateNow(epoch, step);
        if (metrics) history.push({ epoch, step, ...metrics });
        epoch++;
        batchInEpoch = 0;
        if (o.outputDir) lastCheckpoint = await this.checkpoint({ step, epoch, batchInEpoch, totalSteps, seed, history }, keep);
      }
      if (interrupted && o.outputDir) lastCheckpoint = await this.checkpoint({ step, epoch, batchInEpoch, totalSteps, seed, history }, keep);
    } finally {
      if (handleSigint) process.removeListener('SIGINT', onSigint);
    }
    if (pruning && !interrupted) await this.model.setThreshold(pruning.options.finalThreshold);
    let model = this.model;
    if (o.filled && !interrupted) model = await this.filledStage(o.filled, history, step, epoch);
    return { model, steps: step, epochs: epoch, interrupted, history, lastCheckpoint, worldSize };
  }

  private async evaluateNow(epoch: number, step: number): Promise<Metrics | undefined> {
    if (!this.options.evaluate) return undefined;
    const pruning = this.options.pruning;
    // Evaluation uses the final threshold, as the reference does.
    if (pruning && this.model.patched) await this.model.setThreshold(pruning.options.finalThreshold);
    const group = this.options.distributed;
    if (group && !group.isMain) {
      // Rank 0 evaluates; the others take its figures (and notice at once if it dies meanwhile).
      return group.shareFromMain<Metrics>('eval', undefined, this.options.evaluationTimeoutMs ?? 6 * 3600_000);
    }
    const metrics = await this.options.evaluate(this.model);
    if (group) await group.shareFromMain('eval', metrics, 0);
    const entry: LogEntry = { type: 'eval', step, epoch, ...metrics };
    if (this.model.patched) {
      const reg = await this.model.regularization({ regularization: 'l1' });
      entry.density = Object.fromEntries(Object.entries(reg.groups).map(([k, g]) => [k, g.density]));
    }
    this.log(entry);
    return metrics;
  }

  /**
   * Writes checkpoint-<step> atomically: every file durably into a `.tmp-<pid>-...` sibling directory, which
   * is then renamed into place (a kill leaves the checkpoint complete or absent, never partial; temporaries
   * of killed runs are removed here). Older ones are pruned only after, each renamed away before removal.
   */
  private async checkpoint(state: Omit<TrainerState, 'format' | 'pruning' | 'worldSize' | 'run'>, keep: number): Promise<string> {
    const out = resolve(this.options.outputDir!);
    const group = this.options.distributed;
    const final = join(out, `checkpoint-${state.step}`);
    // Every rank's dropout generator goes into rank 0's checkpoint (a collective: all ranks come here).
    const rngStates = group ? await group.allgather(native().rngState()) : undefined;
    if (group && !group.isMain) return final;
    ensureDir(out);
    removeStaleTemps(out);
    const tmp = tempSibling(final);
    try {
      await this.model.save(tmp);
      await this.model.saveTrainingState(tmp, rngStates);
      const full: TrainerState = {
        format: 'blockprune-trainer-1',
        ...state,
        pruning: this.options.pruning ? { ...this.options.pruning.options } : undefined,
        worldSize: group?.worldSize ?? 1,
        run: this.fingerprint,
      };
      writeFileAtomicSync(join(tmp, STATE_FILE), JSON.stringify(full, null, 2));
      renameDirectorySync(tmp, final);
    } catch (e) {
      removeTreeSync(tmp);
      const code = (e as { code?: string }).code;
      // Say which checkpoint, with the path the user knows rather than the temporary one.
      if (code === 'E_NO_SPACE' || code === 'E_WRITE_FAILED')
        throw new BlockpruneError(code, `checkpoint ${final} not written: ${(e as Error).message.split(tmp).join(final)}`, { cause: e });
      throw e;
    }
    // Only now that the new one is complete do older ones go.
    // The one just written always stays (a resume from an earlier step may leave later ones from before).
    const old = readdirSync(out)
      .map((d) => /^checkpoint-(\d+)$/.exec(d))
      .filter((m): m is RegExpExecArray => !!m && m[0] !== `checkpoint-${state.step}`)
      .sort((a, b) => Number(b[1]) - Number(a[1]))
      .slice(keep - 1);
    for (const m of old) removeTreeSync(join(out, m[0]));
    this.log({ type: 'checkpoint', step: state.step, epoch: state.epoch, dir: final });
    return final;
  }

  /** Compact, fill zeros with small noise, fine-tune without masks (with distillation if a teacher is set). */
  private async filledStage(f: FilledOptions, history: Metrics[], step: number, epoch: number): Promise<BertModel> {
    const { model: compact, report } = await this.model.compact('dense');
    const filled = await compact.fillZeros(this.options.seed ?? 42);
    this.log({ type: 'stage', step, epoch, stage: 'filled', parameters: report.parametersAfter, filled });
    const stage = new SparseTrainer({
      ...this.options,
      model: compact,
      pruning: undefined,
      epochs: f.epochs,
      maxSteps: undefined,
      learningRate: f.learningRate ?? this.options.learningRate,
      filled: undefined,
      resume: undefined,
      outputDir: this.options.outputDir ? join(this.options.outputDir, 'filled') : undefined,
    });
    const r = await stage.train();
    for (const h of r.history) history.push({ stage: 1, ...h });
    return r.model;
  }
}
