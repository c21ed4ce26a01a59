/**
 * BertModel: a BERT (bare, sequence classification or question answering) held by the native core.
 * Loading, forward and saving run off the event loop and return Promises; calls on one model are queued
 * and run one at a time, in call order. Every async method reports every error by rejecting (never a
 * synchronous throw); getters and stateDict() throw.
 *
 * Safety does not rest on the queue (a model used as another's teacher, or a second object on one native
 * handle, bypass it): the native core locks a model for each job that uses it, and the getters read a
 * description the last job published, never the model itself (see ModelCell in native/bindings/worker.h).
 *
 * The class is only a model: lib/pruning/model-pruning.ts and lib/training/model-training.ts add their methods
 * to it from their own folders (as sharp's lib/resize.js adds resize() to Sharp), through extendModel and
 * modelInternals below; lib/index.ts loads both, so a user of the package always has them.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HUB_OPTIONS, resolveModel, type HubOptions } from '../hub/hub';
import { BlockpruneError, invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';
import { ModelDtype, NativeForwardInputs, NativeForwardOptions, NativeLayerInfo, NativeLoadReport, NativeModel, NativeModelDimensions, NativeModelStructure, NativePrunableBlock, TensorData, native } from '../runtime/native';
import { TOKENIZER_FILES } from '../tokenizer/tokenizer-json';

export type Task = 'bare' | 'text-classification' | 'question-answering';

/**
 * The HF config.json fields of a BERT (others are kept as they are). RoBERTa and XLM-R use the same names;
 * DistilBERT's are its own ("dim", "n_layers", "n_heads", "hidden_dim", "activation", ...): read sizes from
 * `model.dimensions`, which names them alike for every family.
 */
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

/** DistilBERT's config.json fields (its own names for BERT's sizes; others are kept as they are). */
export interface DistilBertConfigJson {
  model_type: 'distilbert';
  vocab_size: number;
  dim: number;
  n_layers: number;
  n_heads: number;
  hidden_dim: number;
  activation?: string;
  dropout?: number;
  attention_dropout?: number;
  max_position_embeddings?: number;
  initializer_range?: number;
  pad_token_id?: number;
  qa_dropout?: number;
  seq_classif_dropout?: number;
  num_labels?: number;
  id2label?: Record<string, string>;
  pruned_heads?: Record<string, number[]>;
  intermediate_sizes?: number[];
  architectures?: string[];
  [key: string]: unknown;
}

/** A config.json of any family: BERT's names (BERT, RoBERTa, XLM-R: set `model_type`) or DistilBERT's. */
export type ModelConfigJson = BertConfigJson | DistilBertConfigJson;

/** A hub id (`org/name`) is found in the Hugging Face cache, or downloaded into it: see HubOptions. */
export interface FromPretrainedOptions extends HubOptions {
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
export type ForwardOutput = Record<string, TensorData>;
export type LayerInfo = NativeLayerInfo;
export type LoadReport = NativeLoadReport;
export type ModelStructure = NativeModelStructure;
export type ModelDimensions = NativeModelDimensions;
export type { ModelDtype };

/** model.quantize()'s options. */
/** The number formats model.quantize() makes. */
export const QUANT_DTYPES = ['int8', 'bf16'] as const;

export interface QuantizeOptions {
  /** 'int8': weights symmetric int8, activations quantized per row at run time; 'bf16': weights and activations in bf16, fp32 sums. */
  dtype: (typeof QUANT_DTYPES)[number];
  /** int8: one scale per output channel (default), or one per weight tensor (false). */
  perChannel?: boolean;
}

/** The encoder families: config.json `model_type`. */
export type ModelFamily = NativeModelStructure['modelType'];
export const MODEL_FAMILIES: readonly ModelFamily[] = ['bert', 'distilbert', 'roberta', 'xlm-roberta'];

/** What a pruning plan is made for (PlanGeometry): hidden size, head size, and each layer's heads and FFN width. */
export interface ModelGeometry {
  hiddenSize: number;
  headDim: number;
  layers: Array<{ heads: number; intermediateSize: number }>;
  /** Where the linears live (the family's names); BERT's when absent. */
  structure?: Pick<ModelStructure, 'layers' | 'linears'>;
  /**
   * The units a plan masks, by full module names (encoder-decoder models list theirs, e.g. cross-attention); when
   * absent, each of `layers` gives an attention block and an FFN pair under `structure`'s names.
   */
  blocks?: NativePrunableBlock[];
}

/** BERT's structure: the names plans use when a geometry gives none. */
export const BERT_STRUCTURE: Pick<ModelStructure, 'layers' | 'linears'> = {
  layers: 'bert.encoder.layer',
  linears: {
    query: 'attention.self.query',
    key: 'attention.self.key',
    value: 'attention.self.value',
    attentionOutput: 'attention.output.dense',
    intermediate: 'intermediate.dense',
    output: 'output.dense',
  },
};

/** fromPretrained / fromConfig options (`known`: the keys each takes), checked before the native call. */
function checkLoadOptions(options: FromPretrainedOptions | FromConfigOptions, known: readonly string[]): void {
  const o = v.options('options', options, known) as FromPretrainedOptions;
  if (o.device !== undefined) v.string('options.device', o.device, { nonEmpty: true });
  if (o.task !== undefined) v.oneOf('options.task', o.task, known.includes('numLabels') ? ['auto', 'bare', 'text-classification', 'question-answering'] : ['bare', 'text-classification', 'question-answering']);
  if (o.numLabels !== undefined) v.positiveInteger('options.numLabels', o.numLabels);
  if (o.seed !== undefined) v.integer('options.seed', o.seed, { min: 0 });
}

/** The tokenizer files of `sourceDir` that a save into `dir` copies along (none when saving over the source). */
export function tokenizerCopies(sourceDir: string | undefined, dir: string): string[] {
  return sourceDir && sourceDir !== dir ? TOKENIZER_FILES.map((f) => join(sourceDir, f)).filter((p) => existsSync(p)) : [];
}

/** See ModelInternals (below): filled in by BertModel's static block, the one place that can reach its private fields. */
export const modelInternals = {} as ModelInternals;

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

  static {
    // A method called on another object (`BertModel.prototype.patch.call({})`, a teacher that is not a model)
    // gets a coded error naming it, not the TypeError of a missing private field.
    const own = (model: BertModel, name: string): BertModel => {
      if (typeof model !== 'object' || model === null || !(#handle in model)) throw v.invalidParameterError(name, 'a BertModel', model);
      return model;
    };
    const open: ModelInternals = {
      enqueue: (model, fn) => {
        try {
          return own(model, 'this').#enqueue(fn);
        } catch (e) {
          return Promise.reject(e);
        }
      },
      handle: (model) => own(model, 'model').#live(),
      wrap: (handle, sourceDir) => new BertModel(handle, sourceDir),
    };
    Object.assign(modelInternals, open);
  }

  /**
   * Loads config.json plus model.safetensors / model.safetensors.index.json / pytorch_model.bin from `dir`:
   * a directory, or a hub id (`org/name`) resolved through the Hugging Face cache (downloaded when online).
   */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<BertModel> {
    checkLoadOptions(options, ['device', 'task', 'numLabels', 'seed', ...HUB_OPTIONS]);
    const { revision, offline, token, cacheDir, onProgress, ...load } = options;
    const abs = await resolveModel(dir, { revision, offline, token, cacheDir, onProgress }, 'dir');
    const { model, report } = await native().loadModel(abs, load);
    return new BertModel(model, abs, report);
  }

  /** A model with random weights (HF's initialisation), e.g. to train from scratch or to benchmark. */
  static async fromConfig(config: ModelConfigJson, options: FromConfigOptions = {}): Promise<BertModel> {
    v.object('config', config);
    checkLoadOptions(options, ['device', 'task', 'seed']);
    const handle = await native().createModel(JSON.stringify(config), options);
    return new BertModel(handle);
  }

  get disposed(): boolean {
    return this.#handle === undefined || this.#handle.disposed;
  }

  #live(): NativeModel {
    if (!this.#handle || this.#handle.disposed)
      throw new BlockpruneError('E_DISPOSED', 'this model was disposed');
    return this.#handle;
  }

  /**
   * Runs `fn` after every call queued before it (one native job per model at a time). A call on a disposed
   * model, or still waiting when the model is disposed, rejects with E_DISPOSED; so does anything `fn` throws.
   */
  #enqueue<T>(fn: (h: NativeModel) => Promise<T>): Promise<T> {
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

  /**
   * The config as the model would save it, in its family's names: a DistilBERT's has "dim", "n_layers", ...
   * where the type says "hidden_size", ...; `dimensions` names the sizes alike for every family.
   */
  get config(): BertConfigJson {
    return JSON.parse(this.#live().info().config) as BertConfigJson;
  }

  /** The family (config.json model_type): 'bert', 'distilbert', 'roberta' or 'xlm-roberta'. */
  get family(): ModelFamily {
    return this.#live().info().structure.modelType;
  }

  /** Where the family keeps its layers and linears (the names pruning plans and masks use). */
  get structure(): ModelStructure {
    return this.#live().info().structure;
  }

  /** Sizes under one set of names for every family. */
  get dimensions(): ModelDimensions {
    return this.#live().info().dimensions;
  }

  get task(): Task {
    return this.#live().info().task;
  }

  get numParameters(): number {
    return this.#live().info().numParameters;
  }

  /** Per-layer heads kept and FFN width. */
  get layers(): LayerInfo[] {
    return this.#live().info().layers;
  }

  /** [HF state-dict name, shape] of every parameter, in named_parameters() order. */
  get parameterShapes(): Array<[string, number[]]> {
    return this.#live().info().parameters;
  }

  get device(): string {
    return this.#live().info().device;
  }

  /** The number format of the encoder linears: 'fp32', or 'int8' / 'bf16' after quantize(). */
  get dtype(): ModelDtype {
    return this.#live().info().dtype;
  }

  /** Bytes the parameters hold (quantized weights count 1 or 2 bytes each). */
  get weightBytes(): number {
    return this.#live().info().weightBytes;
  }

  /** Label names by class id (config id2label, else LABEL_i). */
  get labels(): string[] {
    const c = this.config;
    const n = c.id2label ? Object.keys(c.id2label).length : this.dimensions.numLabels;
    return Array.from({ length: n }, (_, i) => c.id2label?.[String(i)] ?? `LABEL_${i}`);
  }

  /** Whether the model carries masks (model.patch() of lib/pruning; its description says so, as it says its layers). */
  get patched(): boolean {
    return this.#live().info().patched;
  }

  /** The mask threshold in force (patched models). */
  get threshold(): number | undefined {
    return this.#live().info().threshold;
  }

  /** The geometry a pruning plan is made for. */
  geometry(): ModelGeometry {
    // One description read: each getter would build it again.
    const { dimensions: d, layers, structure } = this.#live().info();
    return {
      hiddenSize: d.hiddenSize,
      headDim: d.headDim,
      layers: layers.map((l) => ({ heads: l.heads, intermediateSize: l.intermediateSize })),
      structure: { layers: structure.layers, linears: structure.linears },
    };
  }

  /**
   * One forward pass. Outputs by name: "logits" (classification), "start_logits"/"end_logits" (QA),
   * "last_hidden_state"/"pooler_output" (bare), "loss" when labels/positions are given.
   */
  async forward(batch: ForwardBatch, options: ForwardOptions = {}): Promise<ForwardOutput> {
    if (typeof batch !== 'object' || batch === null) throw invalidArg('batch', 'an object', batch);
    checkForwardOptions(options);
    return this.#enqueue((h) => h.forward(batch, options));
  }

  /**
   * Benchmark helper: runs `runs` forwards (after `warmup`) in one native loop, without returning to JS in
   * between, and resolves with each one's milliseconds. `npm run bench` compares it with per-call forwards.
   */
  async timeForward(batch: ForwardBatch, options: { runs?: number; warmup?: number } = {}): Promise<Float64Array> {
    const o = v.options('options', options, ['runs', 'warmup']);
    if (o.runs !== undefined) v.integer('options.runs', o.runs, { min: 1, max: 1 << 20 });
    if (o.warmup !== undefined) v.integer('options.warmup', o.warmup, { min: 0, max: 1 << 20 });
    return this.#enqueue((h) => h.timeForward(batch, options));
  }

  /**
   * Writes config.json and model.safetensors (and copies the tokenizer files of the source directory).
   * The directory is replaced atomically (staged beside it, then swapped in): a full disk (E_NO_SPACE),
   * another write failure (E_WRITE_FAILED) or a kill leaves the previous model whole and loadable.
   */
  async save(dir: string): Promise<void> {
    if (typeof dir !== 'string') throw invalidArg('dir', 'a directory path string', dir);
    const abs = resolve(dir);
    return this.#enqueue(async (h) => {
      // The copies go into the same staged directory as the weights, so they are swapped in together.
      await h.save(abs, tokenizerCopies(this.sourceDir, abs));
    });
  }

  /**
   * A quantized copy for inference, as compact() gives a compact copy (this model is unchanged): the six linears
   * of every encoder layer in int8 (symmetric weights, per output channel unless perChannel is false;
   * activations quantized per row at run time) or bf16; embeddings, LayerNorms, pooler and heads stay fp32.
   * The number semantics are native/fast/quant.h's. Saved and reloaded as such (README, "Quantized models").
   * Refused (E_INVALID_ARG) for a patched model (compile or compact it first) and a model already quantized;
   * the quantized model refuses training, gradients, patching and compaction.
   */
  async quantize(options: QuantizeOptions): Promise<BertModel> {
    const o = v.object('options', options);
    v.knownKeys('options', o, ['dtype', 'perChannel']);
    const dtype = v.oneOf('options.dtype', o.dtype, QUANT_DTYPES);
    const perChannel = o.perChannel === undefined ? true : v.boolean('options.perChannel', o.perChannel);
    return this.#enqueue(async (h) => new BertModel(await h.quantize(dtype, perChannel), this.sourceDir));
  }

  /** Loads tensors from a safetensors file into the parameters of the same names (mask scores too). */
  async loadState(path: string, options: { strict?: boolean } = {}): Promise<string[]> {
    const abs = resolve(v.string('path', path, { nonEmpty: true }));
    const o = v.options('options', options, ['strict']);
    if (o.strict !== undefined) v.boolean('options.strict', o.strict);
    return this.#enqueue((h) => h.loadState(abs, options));
  }

  /**
   * Every parameter under its HF name, copied to JS, now. Throws E_BUSY while a native call runs on this
   * model (as itself, as another model's teacher): await it first, or use readStateDict().
   */
  stateDict(): Record<string, TensorData> {
    return this.#live().stateDict();
  }

  /** Every parameter under its HF name, copied to JS once the calls queued before this one are done. */
  async readStateDict(): Promise<Record<string, TensorData>> {
    return this.#enqueue((h) => h.readStateDict());
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

const FORWARD_OPTIONS = ['hiddenStates', 'attentions', 'extras', 'training'] as const;

/** forward()'s options, checked here with the messages every entry point gives; the binding checks them again. */
function checkForwardOptions(options: unknown): void {
  const o = v.options('options', options, FORWARD_OPTIONS);
  for (const k of FORWARD_OPTIONS) if (o[k] !== undefined) v.boolean(`options.${k}`, o[k]);
}

/**
 * What lib/pruning and lib/training need to add methods to BertModel: internal, not part of the public API
 * (lib/index.ts does not export it). It opens the class's private state through functions only, so an
 * extension cannot bypass the queue: every native call of an extension method runs as one of the model's calls.
 */
export interface ModelInternals {
  /** Runs `fn` on the model's native handle once the calls queued before it are done (see BertModel's queue). */
  enqueue<T>(model: BertModel, fn: (handle: NativeModel) => Promise<T>): Promise<T>;
  /** The model's native handle now, for a model passed as another's argument (a teacher); throws E_DISPOSED. */
  handle(model: BertModel): NativeModel;
  /** A new BertModel over a native model a job created (compact, padFfn); tokenizer files are looked for in `sourceDir`. */
  wrap(handle: NativeModel, sourceDir?: string): BertModel;
}

/**
 * Adds `methods` to BertModel.prototype as class methods are (non-enumerable): each extension folder declares
 * its methods on the class by module augmentation (`declare module '../model/model' { interface BertModel {..} }`)
 * and calls this once, when it loads. A name the class already has is refused: two folders cannot silently
 * replace each other's methods, nor the model's own. Internal, as modelInternals.
 */
export function extendModel<K extends keyof BertModel>(methods: Pick<BertModel, K> & ThisType<BertModel>): void {
  extendClass(BertModel, methods);
}

/** extendModel's rule for any model class (Seq2SeqModel's extensions use it too). */
export function extendClass(cls: { name: string; prototype: object }, methods: object): void {
  for (const name of Object.keys(methods))
    if (name in cls.prototype) throw new Error(`blockprune: ${cls.name}.${name} is defined twice (two extensions, or an extension loaded twice)`);
  for (const [name, value] of Object.entries(methods))
    Object.defineProperty(cls.prototype, name, { value, writable: true, configurable: true, enumerable: false });
}
