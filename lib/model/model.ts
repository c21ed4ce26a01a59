/**
 * BertModel: a BERT (bare, sequence classification or question answering) held by the native core.
 * Loading, forward and saving run off the event loop and return Promises; calls on one model are queued
 * and run one at a time, in call order. Every async method reports every error by rejecting (never a
 * synchronous throw); getters and stateDict() throw.
 *
 * Safety does not rest on the queue (a model used as another's teacher, or a second object on one native
 * handle, bypass it): the native core locks a model for each job that uses it, and the getters read a
 * description the last job published, never the model itself (see ModelCell in native/bindings/worker.h).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ProcessGroup } from '../training/distributed';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import { PlanGeometry, PruningConfig } from '../pruning/config';
import * as v from '../runtime/validate';
import {
  NativeForwardInputs,
  NativeCompactReport,
  NativeGradients,
  NativeLossOptions,
  NativeRegularization,
  NativeTrainStepOptions,
  NativeTrainStepResult,
  NativeForwardOptions,
  NativeLayerInfo,
  NativeLoadReport,
  NativeModel,
  TensorData,
  native,
} from '../runtime/native';

export type Task = 'bare' | 'text-classification' | 'question-answering';

/** The HF config.json fields of a BERT (others are kept as they are). */
export interface BertConfigJson {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act?: string;
  hidden_dropout_prob?: number;
  attention_probs_dropout_prob?: number;
  max_position_embeddings?: number;
  type_vocab_size?: number;
  layer_norm_eps?: number;
  initializer_range?: number;
  pad_token_id?: number;
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  pruned_heads?: Record<string, number[]>;
  /** blockprune's per-layer FFN widths (compact models). */
  intermediate_sizes?: number[];
  architectures?: string[];
  [key: string]: unknown;
}

export interface FromPretrainedOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
  /** Which head to build; 'auto' (default) follows the checkpoint. A missing head is created at random. */
  task?: Task | 'auto';
  /** Label count for a classification head the checkpoint lacks. */
  numLabels?: number;
  /** Seed for weights the checkpoint lacks. */
  seed?: number;
}

export interface FromConfigOptions {
  task?: Task;
  device?: string;
  seed?: number;
}

/** A batch of token ids, flat row-major [batchSize, seqLen] (labels/positions add a loss). */
export type ForwardBatch = NativeForwardInputs;

export type ForwardOptions = NativeForwardOptions;
export type LossOptions = NativeLossOptions;
export type Gradients = NativeGradients;
export type RegularizationInfo = NativeRegularization;
export type CompactReport = NativeCompactReport;
export type TrainStepOptions = NativeTrainStepOptions;
export type TrainStepResult = NativeTrainStepResult;

export interface PatchReport {
  /** Linears that got masks, by HF name. */
  modules: string[];
  /** Number of masked linears. */
  patched: number;
  /** Learnable scores added. */
  scoreParameters: number;
  /** What the config cannot do on this model (e.g. it prunes nothing structured). */
  warnings: string[];
}
export type ForwardOutput = Record<string, TensorData>;
export type LayerInfo = NativeLayerInfo;
export type LoadReport = NativeLoadReport;

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.txt', 'special_tokens_map.json'];

/** fromPretrained / fromConfig options (`known`: the keys each takes), checked before the native call. */
function checkLoadOptions(options: FromPretrainedOptions | FromConfigOptions, known: readonly string[]): void {
  const o = v.options('options', options, known) as FromPretrainedOptions;
  if (o.device !== undefined) v.string('options.device', o.device, { nonEmpty: true });
  if (o.task !== undefined) v.oneOf('options.task', o.task, known.includes('numLabels') ? ['auto', 'bare', 'text-classification', 'question-answering'] : ['bare', 'text-classification', 'question-answering']);
  if (o.numLabels !== undefined) v.positiveInteger('options.numLabels', o.numLabels);
  if (o.seed !== undefined) v.integer('options.seed', o.seed, { min: 0 });
}

export class BertModel {
  /** The directory the model was loaded from, if any (tokenizer files are looked for there). */
  readonly sourceDir: string | undefined;
  /** What loading read, created and ignored. */
  readonly loadReport: LoadReport | undefined;
  #handle: NativeModel | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(handle: NativeModel, sourceDir?: string, report?: LoadReport) {
    this.#handle = handle;
    this.sourceDir = sourceDir;
    this.loadReport = report;
  }

  /** Loads config.json plus model.safetensors / model.safetensors.index.json / pytorch_model.bin from `dir`. */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<BertModel> {
    checkLoadOptions(options, ['device', 'task', 'numLabels', 'seed']);
    const abs = v.modelDirectory('dir', dir);
    const { model, report } = await native().loadModel(abs, options);
    return new BertModel(model, abs, report);
  }

  /** A model with random weights (HF's initialisation), e.g. to train from scratch or to benchmark. */
  static async fromConfig(config: BertConfigJson, options: FromConfigOptions = {}): Promise<BertModel> {
    v.object('config', config);
    checkLoadOptions(options, ['device', 'task', 'seed']);
    const handle = await native().createModel(JSON.stringify(config), options);
    return new BertModel(handle);
  }

  get disposed(): boolean {
    return this.#handle === undefined || this.#handle.disposed;
  }

  private handle(): NativeModel {
    if (!this.#handle || this.#handle.disposed)
      throw new BlockpruneError('E_DISPOSED', 'this model was disposed');
    return this.#handle;
  }

  /**
   * Runs `fn` after every call queued before it (one native job per model at a time). A call on a disposed
   * model, or still waiting when the model is disposed, rejects with E_DISPOSED; so does anything `fn` throws.
   */
  private enqueue<T>(fn: (h: NativeModel) => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new BlockpruneError('E_DISPOSED', 'this model was disposed'));
    const step = (): Promise<T> => {
      const h = this.#handle;
      if (!h || h.disposed)
        return Promise.reject(new BlockpruneError('E_DISPOSED', 'the model was disposed before this call ran'));
      return fn(h);
    };
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The config as the model would save it. */
  get config(): BertConfigJson {
    return JSON.parse(this.handle().info().config) as BertConfigJson;
  }

  get task(): Task {
    return this.handle().info().task;
  }

  get numParameters(): number {
    return this.handle().info().numParameters;
  }

  /** Per-layer heads kept and FFN width. */
  get layers(): LayerInfo[] {
    return this.handle().info().layers;
  }

  /** [HF state-dict name, shape] of every parameter, in named_parameters() order. */
  get parameterShapes(): Array<[string, number[]]> {
    return this.handle().info().parameters;
  }

  get device(): string {
    return this.handle().info().device;
  }

  /** Label names by class id (config id2label, else LABEL_i). */
  get labels(): string[] {
    const c = this.config;
    const n = c.id2label ? Object.keys(c.id2label).length : (c.num_labels ?? 2);
    return Array.from({ length: n }, (_, i) => c.id2label?.[String(i)] ?? `LABEL_${i}`);
  }

  /**
   * One forward pass. Outputs by name: "logits" (classification), "start_logits"/"end_logits" (QA),
   * "last_hidden_state"/"pooler_output" (bare), "loss" when labels/positions are given.
   */
  async forward(batch: ForwardBatch, options: ForwardOptions = {}): Promise<ForwardOutput> {
    if (typeof batch !== 'object' || batch === null) throw invalidArg('batch', 'an object', batch);
    checkForwardOptions(options);
    return this.enqueue((h) => h.forward(batch, options));
  }

  /**
   * Benchmark helper: runs `runs` forwards (after `warmup`) in one native loop, without returning to JS in
   * between, and resolves with each one's milliseconds. `npm run bench` compares it with per-call forwards.
   */
  async timeForward(batch: ForwardBatch, options: { runs?: number; warmup?: number } = {}): Promise<Float64Array> {
    const o = v.options('options', options, ['runs', 'warmup']);
    if (o.runs !== undefined) v.integer('options.runs', o.runs, { min: 1, max: 1 << 20 });
    if (o.warmup !== undefined) v.integer('options.warmup', o.warmup, { min: 0, max: 1 << 20 });
    return this.enqueue((h) => h.timeForward(batch, options));
  }

  /**
   * Writes config.json and model.safetensors (and copies the tokenizer files of the source directory).
   * The directory is replaced atomically (staged beside it, then swapped in): a full disk (E_NO_SPACE),
   * another write failure (E_WRITE_FAILED) or a kill leaves the previous model whole and loadable.
   */
  async save(dir: string): Promise<void> {
    if (typeof dir !== 'string') throw invalidArg('dir', 'a directory path string', dir);
    const abs = resolve(dir);
    return this.enqueue(async (h) => {
      // The copies go into the same staged directory as the weights, so they are swapped in together.
      const copies = this.sourceDir && this.sourceDir !== abs ? TOKENIZER_FILES.map((f) => join(this.sourceDir!, f)).filter((p) => existsSync(p)) : [];
      await h.save(abs, copies);
    });
  }

  /** The geometry a pruning plan is made for. */
  geometry(): PlanGeometry {
    const c = this.config;
    return {
      hiddenSize: c.hidden_size,
      headDim: c.hidden_size / c.num_attention_heads,
      layers: this.layers.map((l) => ({ heads: l.heads, intermediateSize: l.intermediateSize })),
    };
  }

  get patched(): boolean {
    return this.handle().info().patched;
  }

  /** The mask threshold in force (patched models). */
  get threshold(): number | undefined {
    return this.handle().info().threshold;
  }

  /**
   * Replaces the q, k, v, attention-output, intermediate and output linears of every layer (6 per layer:
   * 72 in bert-base) with masked linears whose mask comes from learnable scores, as the config says.
   * Embeddings, pooler and classifier stay dense. Undone by compile() (masks baked into the weights).
   */
  async patch(config: PruningConfig): Promise<PatchReport> {
    if (!(config instanceof PruningConfig)) throw invalidArg('config', 'a PruningConfig', config);
    return this.enqueue(async (h) => {
      const plan = config.plan(this.geometry());
      const r = await h.patch(JSON.stringify(plan));
      const warnings = [...config.warnings];
      if (r.modules.length === 0) warnings.push('no linear layer was patched: every method is disabled');
      return { modules: r.modules, patched: r.modules.length, scoreParameters: r.scoreParameters, warnings };
    });
  }

  /** Sets the mask threshold (the schedule's value; evaluation uses the final one). */
  async setThreshold(threshold: number): Promise<void> {
    v.number('threshold', threshold);
    return this.enqueue((h) => h.setThreshold(threshold));
  }

  /** Bakes the masks (at the current threshold) into the weights and removes the scores. */
  async compile(): Promise<void> {
    return this.enqueue((h) => h.compile());
  }

  /**
   * A new, smaller dense model ('dense': heads and empty FFN units removed; 'heads': heads only) that gives
   * the same outputs as this (masked) model. This model is left as it is.
   */
  async compact(mode: 'dense' | 'heads' = 'dense'): Promise<{ model: BertModel; report: CompactReport }> {
    return this.enqueue(async (h) => {
      const { model, report } = await h.compact(mode);
      return { model: new BertModel(model, this.sourceDir), report };
    });
  }

  /**
   * Writes a checkpoint plain HF tools load with identical outputs: FFN widths zero-padded back to
   * intermediate_size (per-layer widths are not expressible in HF's config), heads via pruned_heads.
   */
  async exportFilled(dir: string): Promise<void> {
    if (typeof dir !== 'string') throw invalidArg('dir', 'a directory path string', dir);
    return this.enqueue(async (h) => {
      const padded = new BertModel(await h.padFfn(), this.sourceDir);
      try {
        await padded.save(dir);
      } finally {
        padded.dispose();
      }
    });
  }

  /**
   * The 0/1 mask of every encoder linear, expanded to its weight's shape ("mask.<name>"), and the bias
   * masks ("bias_mask.<name>"): from the scores at the current threshold when patched, else weight != 0.
   */
  async masks(): Promise<Record<string, TensorData>> {
    return this.enqueue((h) => h.masks());
  }

  /** The regularization term of the scores by group, and each group's density at the current threshold. */
  async regularization(options: LossOptions = {}): Promise<RegularizationInfo> {
    checkLossOptions(options, LOSS_OPTIONS);
    return this.enqueue((h) => h.regularization(options));
  }

  /** Loss (task + lambda x regularization) and every parameter's gradient, from one train-mode backward. */
  async gradients(batch: ForwardBatch, options: LossOptions = {}): Promise<Gradients> {
    checkLossOptions(options, LOSS_OPTIONS);
    return this.enqueue((h) => h.gradients(batch, options));
  }

  /** Loads tensors from a safetensors file into the parameters of the same names (mask scores too). */
  async loadState(path: string, options: { strict?: boolean } = {}): Promise<string[]> {
    const abs = resolve(v.string('path', path, { nonEmpty: true }));
    const o = v.options('options', options, ['strict']);
    if (o.strict !== undefined) v.boolean('options.strict', o.strict);
    return this.enqueue((h) => h.loadState(abs, options));
  }

  /**
   * One optimisation step in C++: train-mode forward, loss (task loss, plus lambda x regularization of the
   * scores, plus distillation from `teacher` when given), backward, gradient clipping, AdamW with the
   * reference's parameter groups. Resolves with the loss terms (before the update) and the gradient norm.
   */
  trainStep(batch: ForwardBatch, options?: TrainStepOptions, teacher?: BertModel): Promise<TrainStepResult>;
  /**
   * Data-parallel: `batch` is this rank's part of the global batch (null when it has none this step). The
   * gradients are averaged over the global batch across `dist.group` before clipping and AdamW, so every rank
   * takes the same step; the result's losses are the global batch's, and `stop` is true when any rank passed
   * `stop: true`.
   */
  trainStep(batch: ForwardBatch | null, options: TrainStepOptions, teacher: BertModel | undefined, dist: { group: ProcessGroup; stop?: boolean }): Promise<TrainStepResult>;
  async trainStep(batch: ForwardBatch | null, options: TrainStepOptions = {}, teacher?: BertModel, dist?: { group: ProcessGroup; stop?: boolean }): Promise<TrainStepResult> {
    const t = teacher ? teacher.handle() : undefined;
    if (!dist && (typeof batch !== 'object' || batch === null)) throw invalidArg('batch', 'an object', batch);
    checkLossOptions(options, TRAIN_STEP_OPTIONS);
    const g = dist ? dist.group.handle() : undefined;
    return this.enqueue((h) => h.trainStep(batch, options, t, g, dist?.stop ?? false));
  }

  /**
   * Data-parallel start (ProcessGroup.syncModel): checks that every rank of `group` holds a model of the same
   * structure, then copies rank 0's parameters and buffers into this one. Every rank must call it.
   */
  async syncAcross(group: ProcessGroup): Promise<void> {
    return this.enqueue((h) => group.handle().syncModel(h));
  }

  /**
   * Writes the optimizer state and the RNG state (optimizer.safetensors, rng.safetensors) into `dir`. In a
   * data-parallel run, rank 0 passes every rank's generator state (`rngStates`, in rank order).
   */
  async saveTrainingState(dir: string, rngStates?: Uint8Array[]): Promise<void> {
    const abs = resolve(v.string('dir', dir, { nonEmpty: true }));
    return this.enqueue((h) => h.saveTraining(abs, rngStates));
  }

  /** Restores what saveTrainingState wrote (`rank`: whose generator state to take, default 0). */
  async loadTrainingState(dir: string, rank = 0): Promise<void> {
    const abs = resolve(v.string('dir', dir, { nonEmpty: true }));
    return this.enqueue((h) => h.loadTraining(abs, rank));
  }

  /**
   * The "filled" stage's start: zeros inside the encoder's linear weights become small noise
   * (v += [v == 0] * (randn * std(v) * 0.01 + mean(v))). Resolves with the number of weights filled.
   */
  async fillZeros(seed = 0): Promise<number> {
    v.integer('seed', seed, { min: 0 });
    return this.enqueue((h) => h.fillZeros(seed));
  }

  /** Forgets the optimizer's moments (a new training stage). */
  async resetOptimizer(): Promise<void> {
    return this.enqueue((h) => h.resetOptimizer());
  }

  /**
   * Every parameter under its HF name, copied to JS, now. Throws E_BUSY while a native call runs on this
   * model (as itself, as another model's teacher): await it first, or use readStateDict().
   */
  stateDict(): Record<string, TensorData> {
    return this.handle().stateDict();
  }

  /** Every parameter under its HF name, copied to JS once the calls queued before this one are done. */
  async readStateDict(): Promise<Record<string, TensorData>> {
    return this.enqueue((h) => h.readStateDict());
  }

  /**
   * Frees the native model. A native job already running finishes (it holds its own reference to the
   * weights); queued calls and later calls reject with E_DISPOSED.
   */
  dispose(): void {
    const h = this.#handle;
    this.#handle = undefined;
    h?.dispose();
  }
}

// Per-call options, checked here with the messages every other entry point gives (lib/validate.ts); the
// native binding checks them again, as it checks everything that crosses into C++.
const FORWARD_OPTIONS = ['hiddenStates', 'attentions', 'extras', 'training'] as const;
const LOSS_OPTIONS = ['regularization', 'lambda', 'attentionLambda', 'denseLambda'] as const;
/** Each train-step option's range (the binding's). */
const TRAIN_STEP_RANGES: Record<string, v.NumberRange> = {
  lr: { min: 0, max: 10 },
  maskLr: { min: 0, max: 100 },
  weightDecay: { min: 0, max: 10 },
  beta1: { min: 0, max: 1 },
  beta2: { min: 0, max: 1 },
  eps: { min: 0, max: 1 },
  lrScale: { min: 0, max: 1e6 },
  maxGradNorm: { min: -1 },
  threshold: {},
  alphaCe: { min: 0 },
  alphaTeacher: { min: 0 },
  temperature: { min: 0, exclusiveMin: true },
};
const TRAIN_STEP_OPTIONS = [...LOSS_OPTIONS, ...Object.keys(TRAIN_STEP_RANGES)];

function checkForwardOptions(options: unknown): void {
  const o = v.options('options', options, FORWARD_OPTIONS);
  for (const k of FORWARD_OPTIONS) if (o[k] !== undefined) v.boolean(`options.${k}`, o[k]);
}

function checkLossOptions(options: unknown, known: readonly string[]): void {
  const o = v.options('options', options, known);
  if (o.regularization !== undefined) v.oneOf('options.regularization', o.regularization, ['disabled', 'l1', 'l0']);
  for (const k of ['lambda', 'attentionLambda', 'denseLambda']) if (o[k] !== undefined) v.number(`options.${k}`, o[k]);
  for (const [k, range] of Object.entries(TRAIN_STEP_RANGES)) if (known.includes(k) && o[k] !== undefined) v.number(`options.${k}`, o[k], range);
}
