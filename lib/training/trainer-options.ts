/**
 * SparseTrainerOptions (and the types it names: distillation, the filled stage, log entries), and the check
 * that runs on them before any work: types, ranges, unknown keys (with Hugging Face's names pointed to ours),
 * output locations probed.
 */
import { BlockpruneError } from '../runtime/errors';
import { BertModel } from '../model/model';
import { parseMethod, PruningConfig } from '../pruning/config';
import { BudgetOptions, checkBudgetOptions } from '../pruning/budget';

/** The mask methods whose scores give keep probabilities (native/budget.h). */
const BUDGET_METHODS: readonly string[] = ['threshold', 'sigmoied_threshold', 'l0'];
import * as v from '../runtime/validate';
import { ProcessGroup } from './distributed';
import { checkMixedPrecision, TRAIN_STEP_RANGES } from './model-training';
import { checkAllowResumeMismatch, RunField } from './run-fingerprint';
import type { TrainData } from './train-data';

export type Metrics = Record<string, number>;

/** Knowledge distillation from a teacher (nn_pruning / transformers' distillation examples). */
export interface DistillationOptions {
  /** The teacher: any family that shares the student's vocabulary and task (a dense model fine-tuned on it). */
  teacher: BertModel;
  /** Weight of the task loss against the labels (default 0.5; the reference's `alpha_ce`). */
  alphaCe?: number;
  /** Weight of the KL term to the teacher's softened outputs (default 0.5; the reference's `alpha_teacher`). */
  alphaTeacher?: number;
  /** Softmax temperature of both outputs in the KL term (default 2; the reference's `temperature`). */
  temperature?: number;
}

export interface FilledOptions {
  /** Epochs of the filled stage (compact, zeros filled with noise, no masks, distillation when a teacher is given). */
  epochs: number;
  /** The filled stage's learning rate (default: the trainer's `learningRate`). */
  learningRate?: number;
}

export interface SparseTrainerOptions {
  /** The model to train (required): patched for fine-pruning, or as loaded for plain fine-tuning (transformers' `model`). */
  model: BertModel;
  /** Fine-pruning config; omit for plain (dense) fine-tuning. */
  pruning?: PruningConfig;
  /** The training set (required): a ClassificationDataset, QADataset or any TrainData (transformers' `train_dataset`). */
  train: TrainData;
  /** Called after each epoch with the model in eval mode at the final threshold. */
  evaluate?: (model: BertModel) => Promise<Metrics>;
  /** Passes over `train` (default 3; transformers' `num_train_epochs`). */
  epochs?: number;
  /** Stop after this many optimizer steps (overrides epochs for the schedule's length; transformers' `max_steps`). */
  maxSteps?: number;
  /** Examples per optimizer step, over all ranks when distributed (default 32; `per_device_train_batch_size` x ranks). */
  batchSize?: number;
  /** Peak learning rate of the weights, decayed linearly to 0 (default 5e-5; `learning_rate`). */
  learningRate?: number;
  /** AdamW's decoupled weight decay, not applied to biases and LayerNorm weights (default 0; `weight_decay`). */
  weightDecay?: number;
  /** Linear warm-up of the learning rate, and the unit of the pruning schedule's warm-ups (default 0; `warmup_steps`). */
  warmupSteps?: number;
  /** Gradient clipping by global norm; 0 or less disables it (default 1.0; `max_grad_norm`). */
  maxGradNorm?: number;
  /**
   * 'bf16': the linear layers' products in bf16 forward and backward, weights and optimizer in fp32 (default
   * fp32; transformers' `bf16: true`). Needs a CPU with AVX-512 BF16 (buildInfo().quantKernels.bf16).
   */
  mixedPrecision?: 'bf16';
  /** Distil from a teacher: see DistillationOptions (default none). */
  distillation?: DistillationOptions;
  /**
   * Prune to a budget (needs `pruning` with threshold, sigmoied_threshold or l0 methods): a speed-up or latency
   * (by a latency profile: lib/pruning/latency-profile.ts) or a parameter count; a Lagrangian term on the masks'
   * expected cost joins the loss, and at the end the final threshold is raised until the hard masks meet the
   * target (lib/pruning/budget.ts). The result's `budget` says what was reached.
   */
  budget?: BudgetOptions;
  /** Seed of data order, dropout and initialisation of missing heads (default 42; `seed`). */
  seed?: number;
  /** Checkpoints go to outputDir/checkpoint-<step>; the last `keepCheckpoints` are kept. */
  outputDir?: string;
  /**
   * Also checkpoint every N optimizer steps (default: epoch ends only; transformers' `save_steps`). Epoch ends
   * always checkpoint when outputDir is set.
   */
  saveSteps?: number;
  /** @deprecated The former name of `saveSteps`, still read (both given must agree). */
  checkpointEvery?: number;
  /**
   * Also evaluate every N optimizer steps (default: epoch ends only; transformers' `eval_steps`), logged as
   * `eval` entries and kept in the history. Needs `evaluate`. Epoch ends always evaluate.
   */
  evalSteps?: number;
  /** Checkpoints kept in outputDir, newest first (default 2; transformers' `save_total_limit`). */
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
  /**
   * A progress bar with rate and ETA on stderr (rank 0; plain periodic lines when stderr is no terminal).
   * Default: on when stderr is a terminal and no `onProgress` is given.
   */
  progress?: boolean;
  /** Called after every optimizer step with the step, the schedule's length, the loss and the rate (on every rank). */
  onProgress?: (progress: TrainProgress) => void;
  /**
   * Also write the log as TensorBoard event files in this folder (rank 0): `tensorboard --logdir` plots
   * train/loss, train/lambda, train/threshold, train/density/*, eval/accuracy... (transformers' `logging_dir`).
   */
  tensorboardDir?: string;
  /** Extra stage after pruning: see FilledOptions. */
  filled?: FilledOptions;
  /** Write a checkpoint and stop on SIGINT (default true). */
  handleSigint?: boolean;
  /** Called with every log entry (steps every `logEvery`, evaluations, checkpoints, stages), as the log file gets them. */
  onLog?: (entry: LogEntry) => void;
  /**
   * Data-parallel training over this process group: `batchSize` is the global batch (split over the ranks),
   * and every rank must run the same trainer options. See the file comment.
   */
  distributed?: ProcessGroup;
  /** Data-parallel: how long the other ranks wait for rank 0's evaluation (default 6 hours). */
  evaluationTimeoutMs?: number;
}

/** What `onProgress` gets after each optimizer step. */
export interface TrainProgress {
  /** Optimizer steps done. */
  step: number;
  /** Steps of the whole run (maxSteps, or epochs x steps per epoch). */
  totalSteps: number;
  /** Epochs done, fractional (as log entries say it). */
  epoch: number;
  /** This step's loss (the combined one: task, distillation, regularization). */
  loss: number;
  /** Steps per second since this run (or its resume) began. */
  rate: number;
  /** The pruning schedule's threshold at this step (when pruning). */
  threshold?: number;
  /** The masks' density per group at this step (when pruning). */
  density?: Record<string, number>;
}

export interface LogEntry {
  type: 'step' | 'eval' | 'checkpoint' | 'stage';
  /** Optimizer steps done. */
  step: number;
  /**
   * Epochs of training done, fractional, as transformers logs it: step / steps per epoch (1 at the first
   * epoch's end, its evaluation and checkpoint). Checkpoints say the same (checkpoint.ts).
   */
  epoch: number;
  [key: string]: unknown;
}

/** Hugging Face TrainingArguments names users bring along, pointed to ours in the unknown-option message. */
export const HF_TRAINER_NAMES: Record<string, string> = {
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
  bf16: 'mixedPrecision',
  output_dir: 'outputDir',
  save_steps: 'saveSteps',
  eval_steps: 'evalSteps',
  save_total_limit: 'keepCheckpoints',
  logging_steps: 'logEvery',
  resume_from_checkpoint: 'resume',
  logging_dir: 'tensorboardDir',
};

const TRAINER_OPTIONS: ReadonlyArray<keyof SparseTrainerOptions> = [
  'model', 'pruning', 'train', 'evaluate', 'epochs', 'maxSteps', 'batchSize', 'learningRate', 'weightDecay', 'warmupSteps',
  'maxGradNorm', 'mixedPrecision', 'distillation', 'budget', 'seed', 'outputDir', 'saveSteps', 'checkpointEvery', 'evalSteps', 'keepCheckpoints', 'resume', 'allowResumeMismatch',
  'logFile', 'logEvery', 'progress', 'onProgress', 'tensorboardDir', 'filled', 'handleSigint', 'onLog', 'distributed', 'evaluationTimeoutMs',
];

/**
 * Every option checked before any work: type, range, integer-ness, unknown keys; the output locations are
 * probed (rank 0 writes them), so that a bad one fails now rather than at the first checkpoint. The ranges of
 * learning rates, weight decay and distillation weights are the native step's.
 */
export function checkTrainerOptions(options: SparseTrainerOptions): void {
  const o = v.object('options', options) as Partial<SparseTrainerOptions>;
  v.knownKeys('SparseTrainer options', o, TRAINER_OPTIONS, HF_TRAINER_NAMES);
  v.instance('options.model', o.model, BertModel, 'a BertModel');
  const train = o.train as TrainData;
  if (typeof train !== 'object' || train === null || !v.is.function(train.batches))
    throw v.invalidParameterError('options.train', 'a dataset with length and batches()', train);
  v.integer('options.train.length', train.length, { min: 0 });
  if (train.fingerprint !== undefined) v.func('options.train.fingerprint', train.fingerprint);
  if (o.pruning !== undefined) v.instance('options.pruning', o.pruning, PruningConfig, 'a PruningConfig');
  checkLoopOptions(o as Record<string, unknown>);
  if (o.checkpointEvery !== undefined) v.integer('options.checkpointEvery', o.checkpointEvery, { min: 1 });
  if (o.evalSteps !== undefined) v.integer('options.evalSteps', o.evalSteps, { min: 1 });
  if (o.saveSteps !== undefined && o.checkpointEvery !== undefined && o.saveSteps !== o.checkpointEvery)
    throw v.invalidParameterError('options.checkpointEvery', `the same as options.saveSteps (${o.saveSteps}), its new name, or left out`, o.checkpointEvery, 'range');
  if (o.evalSteps !== undefined && o.evaluate === undefined) throw v.invalidParameterError('options.evaluate', 'a function (options.evalSteps evaluates with it)', undefined);
  if (o.mixedPrecision !== undefined) checkMixedPrecision('options.mixedPrecision', o.mixedPrecision);
  if (o.evaluationTimeoutMs !== undefined) v.number('options.evaluationTimeoutMs', o.evaluationTimeoutMs, { min: 0, exclusiveMin: true });
  if (o.progress !== undefined) v.boolean('options.progress', o.progress);
  if (o.distributed !== undefined) v.instance('options.distributed', o.distributed, ProcessGroup, 'a ProcessGroup');
  if (o.distillation !== undefined) checkDistillation(o.distillation, o.model, BertModel, 'a BertModel');
  if (o.budget !== undefined) {
    checkBudgetOptions('options.budget', o.budget);
    if (o.pruning === undefined) throw v.invalidParameterError('options.pruning', 'a PruningConfig (options.budget prunes to its target)', undefined);
    for (const field of ['attentionPruningMethod', 'densePruningMethod'] as const) {
      const { method } = parseMethod(o.pruning.options[field], field);
      if (method !== 'disabled' && !BUDGET_METHODS.includes(method))
        throw v.invalidParameterError(`options.pruning ${field}`, `one of ${BUDGET_METHODS.join(', ')} with options.budget (its masks need keep probabilities)`, method, 'range');
    }
  }
  if (o.filled !== undefined) {
    const f = v.options('options.filled', o.filled, ['epochs', 'learningRate']);
    v.positiveInteger('options.filled.epochs', f.epochs);
    if (f.learningRate !== undefined) v.number('options.filled.learningRate', f.learningRate, { min: 0, max: 10 });
  }
  if (o.allowResumeMismatch !== undefined) checkAllowResumeMismatch('options.allowResumeMismatch', o.allowResumeMismatch);
  if (train.length === 0) throw new BlockpruneError('E_INVALID_ARG', 'the training set is empty');
  // Only rank 0 writes logs and checkpoints: the others need not see those folders.
  const writes = !o.distributed || o.distributed.isMain;
  checkOutputs(o as Record<string, unknown>, writes);
  if (o.tensorboardDir !== undefined) {
    if (writes) v.writableDirectory('options.tensorboardDir', o.tensorboardDir);
    else v.string('options.tensorboardDir', o.tensorboardDir, { nonEmpty: true });
  }
}

/**
 * The options every trainer (SparseTrainer, Seq2SeqTrainer) shares, with the same names and ranges: hooks, the
 * loop's integers, the optimizer's numbers, resume, SIGINT handling.
 */
export function checkLoopOptions(o: Record<string, unknown>): void {
  for (const k of ['evaluate', 'onLog', 'onProgress']) if (o[k] !== undefined) v.func(`options.${k}`, o[k]);
  const mins: Array<[string, number]> = [['epochs', 0], ['maxSteps', 1], ['batchSize', 1], ['warmupSteps', 0], ['seed', 0], ['saveSteps', 1], ['keepCheckpoints', 1], ['logEvery', 1]];
  for (const [k, min] of mins) if (o[k] !== undefined) v.integer(`options.${k}`, o[k], { min });
  if (o.learningRate !== undefined) v.number('options.learningRate', o.learningRate, { min: 0, max: 10 });
  if (o.weightDecay !== undefined) v.number('options.weightDecay', o.weightDecay, { min: 0, max: 10 });
  if (o.maxGradNorm !== undefined) v.number('options.maxGradNorm', o.maxGradNorm, { min: 0 });
  if (o.handleSigint !== undefined) v.boolean('options.handleSigint', o.handleSigint);
  if (o.resume !== undefined && typeof o.resume !== 'boolean') v.string('options.resume', o.resume, { nonEmpty: true });
  if (o.resume === true && o.outputDir === undefined)
    throw v.invalidParameterError('options.resume', 'a checkpoint directory (resume: true needs outputDir)', true);
  if (o.epochs === 0 && o.maxSteps === undefined) throw v.invalidParameterError('options.epochs', 'at least 1 when maxSteps is not set (nothing to train)', 0, 'range');
}

/** outputDir and logFile probed (created if need be) where this process writes them, else only typed. */
export function checkOutputs(o: Record<string, unknown>, writes: boolean): void {
  if (o.outputDir !== undefined) {
    if (writes) v.writableDirectory('options.outputDir', o.outputDir);
    else v.string('options.outputDir', o.outputDir, { nonEmpty: true });
  }
  if (o.logFile !== undefined) {
    if (writes) v.writableFile('options.logFile', o.logFile);
    else v.string('options.logFile', o.logFile, { nonEmpty: true });
  }
}

/** options.distillation: a teacher of `cls` other than the student, and the native step's ranges for the rest. */
export function checkDistillation(value: unknown, student: unknown, cls: { prototype: unknown }, expected: string): void {
  const d = v.options('options.distillation', value, ['teacher', 'alphaCe', 'alphaTeacher', 'temperature']);
  v.instance('options.distillation.teacher', d.teacher, cls, expected);
  if (d.teacher === student) throw v.invalidParameterError('options.distillation.teacher', 'another model than options.model', 'the student itself');
  for (const k of ['alphaCe', 'alphaTeacher', 'temperature'] as const) if (d[k] !== undefined) v.number(`options.distillation.${k}`, d[k], TRAIN_STEP_RANGES[k]);
}
