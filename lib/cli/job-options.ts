/**
 * The fine-pruning job's options (`runFinePruneJob`, `blockprune train`) and their checks, made before anything
 * is read or written; the one place the job's pruning config is built from its preset, lambda and overrides.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkModelSource, localModelPath } from '../hub/hub';
import { BertConfigJson, MODEL_FAMILIES } from '../model/model';
import type { ModelFamily } from '../model/model';
import { normalizePruningOptions, PRUNING_JSON_FIELDS, PruningConfig, PruningOptions } from '../pruning/config';
import * as v from '../runtime/validate';
import { ProcessGroup } from '../training/distributed';
import { checkAllowResumeMismatch, RunField } from '../training/trainer';
import { checkMixedPrecision } from '../training/model-training';
import { JOB_TASKS, JobTask } from './task-data';

export interface FinePruneJobOptions {
  task: JobTask;
  /** Data directory: a folder laid out like ../shared/data (sst2/, boolq/, superglue_rte/), or the task's own folder. */
  data?: string;
  output: string;
  /** Start from this checkpoint (HF layout, with its tokenizer; a directory or a hub id) instead of a small random BERT. */
  model?: string;
  /** Tokenizer directory (tokenizer.json, vocab.txt, or vocab.json + merges.txt); default: the model's, else built from the training text. */
  tokenizer?: string;
  /** Geometry of the random model (default hidden 128, 2 layers, 4 heads, FFN 512), in BERT's config names. */
  modelConfig?: Partial<BertConfigJson>;
  /** The random model's family (default 'bert'): the same geometry as a DistilBERT, RoBERTa or XLM-R. */
  family?: ModelFamily;
  /** Where the job's models live and train: 'cpu' (default), 'cuda' or 'cuda:N' (a CUDA build of libtorch). */
  device?: string;
  maxLength?: number;
  batchSize?: number;
  /** Dense training epochs before pruning (0 when starting from a fine-tuned checkpoint). */
  denseEpochs?: number;
  denseLearningRate?: number;
  pruneEpochs?: number;
  learningRate?: number;
  preset?: string;
  lambda?: number;
  /** Overrides of the preset's pruning options (camelCase, or the reference's snake_case names). */
  pruning?: Partial<PruningOptions>;
  /**
   * Prune to a budget (issue 17) instead of a lambda: one of a speed-up or a latency at `shape` (by a latency
   * profile of the dense model on this machine, cached in its directory) or a parameter count. The L1 penalty's
   * lambda defaults to 0 then (the budget's Lagrangian term replaces it). The compact model is timed at `shape`
   * against the dense one, and the report says whether the target was met.
   */
  budget?: JobBudget;
  /** Distil from this teacher directory; default: the dense model trained here (if any). 'none' disables. */
  teacher?: string;
  alphaCe?: number;
  alphaTeacher?: number;
  temperature?: number;
  filledEpochs?: number;
  warmupSteps?: number;
  /** 'bf16': both training stages in bf16 mixed precision (SparseTrainerOptions.mixedPrecision; `--bf16`). */
  mixedPrecision?: 'bf16';
  /** Stop fine-pruning after this many optimizer steps (its schedule's length; transformers' `max_steps`). */
  maxSteps?: number;
  /** Also evaluate every N steps, in both training stages (default: epoch ends only; `eval_steps`). */
  evalSteps?: number;
  /** Also checkpoint every N steps, in both training stages (default: epoch ends only; `save_steps`). */
  saveSteps?: number;
  /** Log a step entry (loss, threshold, lambda, density) every N steps (default 10; transformers' `logging_steps`). */
  logEvery?: number;
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

export interface JobBudget {
  speedup?: number;
  latencyMs?: number;
  parameters?: number;
  /** Batch x sequence length of the latency targets (default [1, 128]). */
  shape?: [number, number];
}

/** Every option's name (a --config file may hold all but log and distributed). */
export const JOB_OPTIONS: ReadonlyArray<keyof FinePruneJobOptions> = [
  'task', 'data', 'output', 'model', 'tokenizer', 'modelConfig', 'family', 'device', 'maxLength', 'batchSize', 'denseEpochs', 'denseLearningRate',
  'pruneEpochs', 'learningRate', 'preset', 'lambda', 'pruning', 'budget', 'teacher', 'alphaCe', 'alphaTeacher', 'temperature',
  'filledEpochs', 'warmupSteps', 'mixedPrecision', 'maxSteps', 'evalSteps', 'saveSteps', 'logEvery', 'seed', 'limit', 'evalLimit', 'skipInvalid', 'latencyRuns', 'resume', 'allowResumeMismatch',
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
  warmup_steps: 'warmupSteps',
  max_steps: 'maxSteps',
  eval_steps: 'evalSteps',
  save_steps: 'saveSteps',
  logging_steps: 'logEvery',
};

/**
 * Each pruning option's name in the reference (nn_pruning's sparse args: `final_threshold`, `mask_scale`...),
 * read off the pruning config's own table of them (normalizePruningOptions), so the two cannot drift: the
 * train command's flags and the job's log use these names.
 */
export const REFERENCE_PRUNING_NAMES: Readonly<Partial<Record<keyof PruningOptions, string>>> = Object.freeze(
  Object.fromEntries(
    PRUNING_JSON_FIELDS.filter((k) => !/[A-Z]/.test(k)).flatMap((k) => {
      let fields: string[];
      try {
        // The reference's features we do not have are accepted only with their inert value: not ours.
        fields = Object.keys(normalizePruningOptions({ [k]: 0 }));
      } catch {
        fields = [];
      }
      return fields.map((f) => [f, k]);
    }),
  ),
);

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
      n = JSON.parse(readFileSync(join(localModelPath(o.model), 'config.json'), 'utf8'))?.max_position_embeddings;
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
  return checkJobOptions(o, nameOf);
}

/** checkFinePruneJobOptions but the task: the checks the summarize variant (summarize-job.ts) shares. */
export function checkJobOptions(o: Omit<FinePruneJobOptions, 'task'>, nameOf: (key: string) => string): PruningConfig {
  if (o.distributed !== undefined) v.instance(nameOf('distributed'), o.distributed, ProcessGroup, 'a ProcessGroup');
  const main = !o.distributed || o.distributed.isMain;
  if (main) v.writableDirectory(nameOf('output'), o.output);
  else v.string(nameOf('output'), o.output, { nonEmpty: true });
  if (o.data !== undefined) v.modelDirectory(nameOf('data'), o.data, 'data directory');
  if (o.model !== undefined) checkModelSource(nameOf('model'), o.model);
  if (o.tokenizer !== undefined) v.modelDirectory(nameOf('tokenizer'), o.tokenizer, 'tokenizer directory (holding tokenizer.json, vocab.txt, or vocab.json + merges.txt)');
  if (o.teacher !== undefined && o.teacher !== 'none') checkModelSource(nameOf('teacher'), o.teacher);
  if (o.modelConfig !== undefined) {
    const name = nameOf('modelConfig');
    if (o.model !== undefined) throw v.invalidParameterError(name, `no value with ${nameOf('model')} (it describes a random model)`, o.modelConfig);
    const c = v.object(name, o.modelConfig);
    for (const [k, max] of Object.entries(GEOMETRY_LIMITS)) if (c[k] !== undefined) v.positiveInteger(nameOf(`modelConfig.${k}`), c[k], max);
    const hidden = (c.hidden_size as number | undefined) ?? 128;
    const heads = (c.num_attention_heads as number | undefined) ?? 4;
    if (hidden % heads !== 0) throw v.invalidParameterError(nameOf('modelConfig.hidden_size'), `a multiple of num_attention_heads (${heads})`, hidden, 'range');
  }
  if (o.device !== undefined) v.string(nameOf('device'), o.device, { nonEmpty: true });
  if (o.family !== undefined) {
    v.oneOf(nameOf('family'), o.family, MODEL_FAMILIES);
    if (o.model !== undefined) throw v.invalidParameterError(nameOf('family'), `no value with ${nameOf('model')} (the checkpoint's config says its family)`, o.family);
  }
  // The sequence length indexes the position table: longer would read past it (4: [CLS] a [SEP] b [SEP] needs room).
  if (o.maxLength !== undefined) v.integer(nameOf('maxLength'), o.maxLength, { min: 4, max: maxPositions(o) });
  const int = (k: Exclude<keyof FinePruneJobOptions, 'task'>, min: number) => o[k] !== undefined && v.integer(nameOf(k), o[k], { min });
  int('batchSize', 1);
  int('denseEpochs', 0);
  int('pruneEpochs', 1);
  int('filledEpochs', 0);
  int('warmupSteps', 0);
  int('maxSteps', 1);
  int('evalSteps', 1);
  int('saveSteps', 1);
  int('logEvery', 1);
  int('seed', 0);
  int('limit', 1);
  int('evalLimit', 1);
  int('latencyRuns', 1);
  if (o.mixedPrecision !== undefined) checkMixedPrecision(nameOf('mixedPrecision'), o.mixedPrecision);
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
  if (o.budget !== undefined) {
    const b = v.options(nameOf('budget'), o.budget, ['speedup', 'latencyMs', 'parameters', 'shape']);
    const given = (['speedup', 'latencyMs', 'parameters'] as const).filter((k) => b[k] !== undefined);
    if (given.length !== 1) throw v.argumentError(`${nameOf('budget')}: one target of speedup, latencyMs, parameters (got ${given.length ? given.join(', ') : 'none'})`);
    if (b.speedup !== undefined) v.number(nameOf('budget.speedup'), b.speedup, { min: 1, exclusiveMin: true });
    for (const k of ['latencyMs', 'parameters'] as const) if (b[k] !== undefined) v.number(nameOf(`budget.${k}`), b[k], { min: 0, exclusiveMin: true });
    if (b.shape !== undefined) {
      if (!Array.isArray(b.shape) || b.shape.length !== 2) throw v.invalidParameterError(nameOf('budget.shape'), '[batch, sequence length]', b.shape);
      v.integer(nameOf('budget.shape[0]'), b.shape[0], { min: 1, max: 256 });
      v.integer(nameOf('budget.shape[1]'), b.shape[1], { min: 1, max: 512 });
    }
  }
  // The one place the job's pruning config is made: the CLI passes its pruning flags and its --config file's
  // "pruning" object here as they are (either spelling), and this builds the config the job trains with.
  return PruningConfig.preset(o.preset ?? 'hybrid', o.lambda ?? (o.budget ? 0 : 20), normalizePruningOptions(o.pruning ?? {}));
}
