/**
 * Encoder-decoder models (issue 18): BART (BartForConditionalGeneration, BartForSequenceClassification) and T5
 * (T5ForConditionalGeneration), as transformers 4.4.2 computes them (native/seq2seq.h; bart.cc, t5.cc). Loaded
 * from a local HF-layout directory; each call runs on the worker pool, one at a time per model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlockpruneError } from '../runtime/errors';
import { extendClass, tokenizerCopies, type ModelGeometry } from './model';
import {
  native,
  NativeGenerateOptions,
  NativeSeq2Seq,
  NativeSeq2SeqInfo,
  NativeRegularization,
  NativeSeq2SeqInputs,
  NativeSeq2SeqRegularizationOptions,
  NativeSeq2SeqTrainStepOptions,
  NativeSeq2SeqTrainStepResult,
  TensorData,
} from '../runtime/native';
import * as v from '../runtime/validate';
import { OPTIMIZER_RANGES } from './train-ranges';
import { writeSeq2SeqOnnx, type Seq2SeqOnnxReport } from './onnx-seq2seq';

export type { Seq2SeqOnnxReport } from './onnx-seq2seq';

export type Seq2SeqInputs = NativeSeq2SeqInputs;
export type Seq2SeqInfo = NativeSeq2SeqInfo;

export interface Seq2SeqForwardOptions {
  /** Adds "encoder_hidden_states.{0..L}" and "decoder_hidden_states.{0..L}". */
  hiddenStates?: boolean;
  /** Adds "encoder_attentions.i", "decoder_attentions.i" and "cross_attentions.i" ([batch, heads, target, source]). */
  attentions?: boolean;
}

/** The source of generate(): token ids [batchSize, seqLen] and their padding mask. */
export type GenerateInputs = Pick<NativeSeq2SeqInputs, 'inputIds' | 'attentionMask' | 'batchSize' | 'seqLen'>;

/**
 * transformers 4.4.2's generate() options (do_sample false). Unset ones come from the model's config.json, then
 * 4.4.2's defaults: maxLength 20 (the decoder start token included), minLength 0, numBeams 1, lengthPenalty 1,
 * earlyStopping false, noRepeatNgramSize 0, numReturnSequences 1, forced tokens none (BART's config forces eos).
 */
export type GenerateOptions = Omit<NativeGenerateOptions, 'onStep'>;

export interface GenerateResult {
  /** [rows * numReturnSequences, length] int64: the decoder start token first, padded with pad after eos. */
  sequences: TensorData;
  /** Beam search: each returned sequence's score (sum of log-probs / length ** lengthPenalty). */
  scores?: TensorData;
}

const GENERATE_KEYS = [
  'maxLength',
  'minLength',
  'numBeams',
  'lengthPenalty',
  'earlyStopping',
  'noRepeatNgramSize',
  'numReturnSequences',
  'forcedBosTokenId',
  'forcedEosTokenId',
] as const;

/** Types and ranges of generate()'s arguments, before any work (the native side checks them against the config). */
function checkGenerate(inputs: unknown, options: unknown): GenerateOptions {
  v.object('inputs', inputs);
  const o = v.options('options', options, GENERATE_KEYS);
  for (const k of ['maxLength', 'numBeams', 'numReturnSequences']) if (o[k] !== undefined) v.positiveInteger(`options.${k}`, o[k]);
  for (const k of ['minLength', 'noRepeatNgramSize']) if (o[k] !== undefined) v.integer(`options.${k}`, o[k], { min: 0 });
  if (o.lengthPenalty !== undefined) v.number('options.lengthPenalty', o.lengthPenalty);
  if (o.earlyStopping !== undefined) v.boolean('options.earlyStopping', o.earlyStopping);
  for (const k of ['forcedBosTokenId', 'forcedEosTokenId']) if (o[k] !== undefined && o[k] !== null) v.integer(`options.${k}`, o[k], { min: 0 });
  // Against numBeams when both are given; otherwise natively, against config.json's num_beams.
  if (o.numReturnSequences !== undefined && o.numBeams !== undefined && (o.numReturnSequences as number) > (o.numBeams as number))
    throw v.invalidParameterError('options.numReturnSequences', `an integer <= numBeams (${o.numBeams})`, o.numReturnSequences, 'range');
  return o as GenerateOptions;
}

/** What extension folders (lib/pruning/seq2seq-pruning.ts) reach of a Seq2SeqModel; internal, as modelInternals. */
export interface Seq2SeqInternals {
  /** The model's native handle now; throws E_DISPOSED (a method called on another object: E_INVALID_ARG). */
  handle(model: Seq2SeqModel): NativeSeq2Seq;
  /** A new Seq2SeqModel over a native model a job created (compact); tokenizer files are looked for in `sourceDir`. */
  wrap(handle: NativeSeq2Seq, sourceDir?: string): Seq2SeqModel;
}
export const seq2seqInternals = {} as Seq2SeqInternals;

/** Adds extension methods to Seq2SeqModel.prototype (declared by module augmentation), as extendModel does. */
export function extendSeq2Seq<K extends keyof Seq2SeqModel>(methods: Pick<Seq2SeqModel, K> & ThisType<Seq2SeqModel>): void {
  extendClass(Seq2SeqModel, methods);
}

export class Seq2SeqModel {
  /** The directory the model was loaded from, if any (save() copies the tokenizer files found there). */
  readonly sourceDir: string | undefined;
  #handle: NativeSeq2Seq | undefined;

  private constructor(handle: NativeSeq2Seq, sourceDir?: string) {
    this.#handle = handle;
    this.sourceDir = sourceDir;
  }

  static {
    seq2seqInternals.handle = (model) => {
      if (typeof model !== 'object' || model === null || !(#handle in model)) throw v.invalidParameterError('this', 'a Seq2SeqModel', model);
      return model.#live();
    };
    seq2seqInternals.wrap = (handle, sourceDir) => new Seq2SeqModel(handle, sourceDir);
  }

  /** The model of `dir` (config.json with model_type bart or t5, and its weights). */
  static async fromPretrained(dir: string, options: { device?: string } = {}): Promise<Seq2SeqModel> {
    v.string('dir', dir, { nonEmpty: true });
    const o = v.options('options', options, ['device']);
    if (o.device !== undefined) v.string('options.device', o.device, { nonEmpty: true });
    return new Seq2SeqModel(await native().loadSeq2Seq(resolve(dir), { device: options.device ?? 'cpu' }), resolve(dir));
  }

  #live(): NativeSeq2Seq {
    if (!this.#handle) throw new BlockpruneError('E_DISPOSED', 'this model was disposed');
    return this.#handle;
  }

  /** dispose() was called: every later call throws E_DISPOSED (the server's /health reports it). */
  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** Family, architecture, sizes and special token ids. */
  get info(): Seq2SeqInfo {
    return this.#live().info();
  }

  /**
   * What a pruning plan is made for: d_model, the head size, and the prunable blocks (encoder self-attention,
   * decoder self- and cross-attention, both FFNs) by HF module name.
   */
  geometry(): ModelGeometry {
    const i = this.#live().info();
    const heads = i.prunableBlocks.find((b) => b.kind === 'attention');
    return { hiddenSize: i.dModel, headDim: heads?.headDim ?? 0, layers: [], blocks: i.prunableBlocks };
  }

  /**
   * Copies the tensors of a safetensors file into the model's parameters of the same names and shapes (mask
   * scores included once patched); every tensor is checked before any is copied. strict (default true): a
   * tensor the model does not have is E_UNEXPECTED_TENSOR. Resolves with the names loaded.
   */
  async loadState(path: string, options: { strict?: boolean } = {}): Promise<string[]> {
    v.string('path', path, { nonEmpty: true });
    const o = v.options('options', options, ['strict']);
    if (o.strict !== undefined) v.boolean('options.strict', o.strict);
    return this.#live().loadState(resolve(path), { strict: options.strict ?? true });
  }

  /**
   * One forward pass (eval mode): "logits" ([batch, target, vocab] for generation models, [batch, labels] for
   * classification), "loss" with labels, "encoder_last_hidden_state", and what `options` adds.
   */
  async forward(inputs: Seq2SeqInputs, options: Seq2SeqForwardOptions = {}): Promise<Record<string, TensorData>> {
    v.object('inputs', inputs);
    const o = v.options('options', options, ['hiddenStates', 'attentions']);
    for (const k of ['hiddenStates', 'attentions']) if (o[k] !== undefined) v.boolean(`options.${k}`, o[k]);
    return this.#live().forward(inputs, options);
  }

  /**
   * Text generation as transformers 4.4.2's generate() with do_sample false: greedy search (numBeams 1) or beam
   * search, with a self-attention key/value cache and cross-attention keys/values computed once. Bad options are
   * E_INVALID_ARG before any work; a classification model refuses (E_INVALID_ARG).
   */
  async generate(inputs: GenerateInputs, options: GenerateOptions = {}): Promise<GenerateResult> {
    const o = checkGenerate(inputs, options);
    return this.#live().generate(inputs, o);
  }

  /**
   * Greedy generation, one step at a time: yields each step's tokens (one per row; rows that have finished get
   * pad), the same ids generate() returns after the decoder start token. numBeams must be 1 (or unset). Leaving
   * the loop early stops the generation within a step or two; the iterator's return() resolves once it has stopped.
   */
  async *stream(inputs: GenerateInputs, options: GenerateOptions = {}): AsyncGenerator<BigInt64Array> {
    const o = checkGenerate(inputs, options);
    if (o.numBeams !== undefined && o.numBeams !== 1) throw v.invalidParameterError('options.numBeams', '1 (stream is greedy search)', o.numBeams, 'range');
    const queue: BigInt64Array[] = [];
    let wake: (() => void) | undefined;
    let settled = false;
    let failure: { error: unknown } | undefined;
    let steps = Infinity;
    let stopped = false;
    // Steps arrive through a thread-safe function, possibly after the Promise settles: the stream ends once it
    // has yielded as many steps as the result has tokens after the start token. A reader that stops early (a
    // `break`, a closed connection) makes the listener answer false: the native loop stops within a step or two.
    const done = this.#live()
      .generate(inputs, { ...o, numBeams: 1, onStep: (tokens) => !stopped && (queue.push(tokens), wake?.(), true) })
      .then(
        (r) => void (steps = r.sequences.shape[1] - 1),
        (error: unknown) => void (failure = { error }),
      )
      .finally(() => ((settled = true), wake?.()));
    try {
      for (let yielded = 0; ; ) {
        const next = queue.shift();
        if (next) {
          yielded++;
          yield next;
          continue;
        }
        if (failure) throw failure.error;
        if (settled && yielded >= steps) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      // Left early: the model is free again once the native loop has seen the answer (its E_ABORTED is ours).
      stopped = true;
      await done;
    }
  }

  /**
   * Writes `dir`/encoder_model.onnx, decoder_model.onnx (the first step) and decoder_with_past_model.onnx (each
   * later step, on the past keys and values), the layout of HF's ONNX exports (lib/model/onnx-seq2seq.ts has
   * every input and output); T5's position bias is computed in the decoder graphs. Opset 15 to 17 (default 17).
   * A classification model, or a patched one (masks not baked in), is refused (E_INVALID_ARG).
   */
  async exportOnnx(dir: string, options: { opset?: number } = {}): Promise<Seq2SeqOnnxReport> {
    const abs = v.writableDirectory('dir', dir);
    const o = v.options('options', options, ['opset']);
    const opset = v.integer('options.opset', o.opset ?? 17, { min: 15, max: 17 });
    const h = this.#live();
    const info = h.info();
    if (info.numLabels > 0) throw new BlockpruneError('E_INVALID_ARG', `ONNX export: a ${info.architecture} does not generate; only generation models are exported`);
    // The weights as save() writes them (the tied table once), read back: the one state-dict reader seq2seq
    // models have, and it runs after the calls queued before this one.
    const tmp = mkdtempSync(join(tmpdir(), 'blockprune-onnx-'));
    let tensors: Record<string, TensorData>;
    try {
      await h.save(join(tmp, 'model'));
      tensors = (await native().readSafetensors(join(tmp, 'model', 'model.safetensors'))).tensors;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    if (Object.keys(tensors).some((k) => k.endsWith('mask_scores')))
      throw new BlockpruneError('E_INVALID_ARG', 'cannot export a patched model to ONNX: its linears still hold mask scores; compact or compile it first');
    return writeSeq2SeqOnnx(abs, { modelType: info.modelType, config: JSON.parse(info.config) as Record<string, unknown>, tensors }, opset);
  }

  /** Frees the native model now (a call in flight finishes first). */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = undefined;
  }

  // ---- training (issue 18): random init, save, train step ----

  /**
   * A model of `config` (config.json's content, as an object or JSON text; model_type bart or t5) with random
   * weights as transformers 4.4.2's _init_weights draws them (native/seq2seq_init.h states the rules), from a
   * generator of its own: the same seed gives the same weights. Default seed 42.
   */
  static async fromConfig(config: string | Record<string, unknown>, options: { seed?: number; device?: string } = {}): Promise<Seq2SeqModel> {
    const json = typeof config === 'string' ? config : JSON.stringify(v.object('config', config));
    v.string('config', json, { nonEmpty: true });
    const o = v.options('options', options, ['seed', 'device']);
    const seed = o.seed === undefined ? 42 : v.integer('options.seed', o.seed, { min: 0, max: Number.MAX_SAFE_INTEGER });
    if (o.device !== undefined) v.string('options.device', o.device, { nonEmpty: true });
    return new Seq2SeqModel(await native().createSeq2Seq(json, { seed, device: (o.device as string | undefined) ?? 'cpu' }));
  }

  /**
   * Writes `dir`/config.json and `dir`/model.safetensors (the tied token table once), and copies the tokenizer
   * files of the source directory, replacing `dir` atomically; fromPretrained(dir) reads it back to the same weights.
   */
  async save(dir: string): Promise<void> {
    const abs = v.writableDirectory('dir', dir);
    return this.#live().save(abs, tokenizerCopies(this.sourceDir, abs));
  }

  /**
   * One optimisation step on `inputs` (labels required): train-mode forward (dropout as the config says), the
   * family's cross-entropy, with a `teacher` (a dense model of the same vocabulary) alphaTeacher x KL per target
   * token at `temperature` + alphaCe x CE; backward, gradient clipping, AdamW. The AdamW moments live with this
   * model (created by the first step). The model is left in eval mode. A patched model: `threshold` is set
   * before the forward, `regularization` adds lambda x its penalty (see regularization()), `maskLr` is the
   * scores' learning rate, and the result has each group's density.
   */
  async trainStep(inputs: Seq2SeqInputs, options: Seq2SeqTrainStepOptions = {}, teacher?: Seq2SeqModel): Promise<Seq2SeqTrainStepResult> {
    const h = this.#live();
    checkTrainInputs(inputs);
    const o = v.options('options', options, [...Object.keys(SEQ2SEQ_TRAIN_RANGES), 'regularization']);
    for (const [k, range] of Object.entries(SEQ2SEQ_TRAIN_RANGES)) if (o[k] !== undefined) v.number(`options.${k}`, o[k], range);
    if (o.regularization !== undefined) checkRegularization('options.regularization', o.regularization);
    let t: NativeSeq2Seq | undefined;
    if (teacher !== undefined) {
      if (teacher === this) throw v.invalidParameterError('teacher', 'another model than the student', 'the student itself', 'range');
      t = v.instance('teacher', teacher, Seq2SeqModel, 'a Seq2SeqModel').#live();
    }
    return h.trainStep(inputs, o as Seq2SeqTrainStepOptions, t);
  }

  /**
   * A patched model's penalty on its scores now (kind default 'l1') and each group's density at the current
   * threshold: nn_pruning's groups, the decoder's apart ("decoder_attention", "decoder_dense"). Not patched:
   * E_INVALID_ARG.
   */
  async regularization(options: Seq2SeqRegularizationOptions = {}): Promise<NativeRegularization> {
    const h = this.#live();
    return h.regularization(checkRegularization('options', options));
  }

  /**
   * Writes the training state (the AdamW moments, optimizer.safetensors; the CPU generator that draws dropout,
   * rng.safetensors) into `dir`, an existing directory: what a checkpoint holds besides the model.
   */
  async saveTrainingState(dir: string): Promise<void> {
    return this.#live().saveTrainingState(resolve(v.string('dir', dir, { nonEmpty: true })));
  }

  /** Restores what saveTrainingState wrote; a file that does not fit this model is E_BAD_CHECKPOINT and changes nothing. */
  async loadTrainingState(dir: string): Promise<void> {
    return this.#live().loadTrainingState(resolve(v.string('dir', dir, { nonEmpty: true })));
  }

  /**
   * The gradient of `inputs`' loss (labels required; train-mode forward, dropout as configured) for every
   * parameter under its HF name, without a step: what tests compare with finite differences.
   */
  async gradients(inputs: Seq2SeqInputs): Promise<{ loss: number; grads: Record<string, TensorData> }> {
    const h = this.#live();
    checkTrainInputs(inputs);
    return h.gradients(inputs);
  }
}

export type Seq2SeqTrainStepOptions = NativeSeq2SeqTrainStepOptions;
export type Seq2SeqTrainStepResult = NativeSeq2SeqTrainStepResult;
export type Seq2SeqRegularizationOptions = NativeSeq2SeqRegularizationOptions;

/** Each numeric train-step option's range (the binding's, native/bindings/seq2seq_training.cc, so both say the same). */
const SEQ2SEQ_TRAIN_RANGES: Record<Exclude<keyof Seq2SeqTrainStepOptions, 'regularization'>, v.NumberRange> = {
  ...OPTIMIZER_RANGES,
  maskLr: { min: 0, max: 100 },
  threshold: { min: -1e9, max: 1e9 },
};
const LAMBDA_KEYS = ['lambda', 'attentionLambda', 'denseLambda', 'decoderAttentionLambda', 'decoderDenseLambda'] as const;

/** The regularization option of trainStep and regularization(): its kind and lambdas (>= 0), unknown keys refused. */
function checkRegularization(name: string, value: unknown): Seq2SeqRegularizationOptions {
  const r = v.options(name, value, ['kind', ...LAMBDA_KEYS]);
  if (r.kind !== undefined) v.oneOf(`${name}.kind`, r.kind, ['disabled', 'l1', 'l0'] as const);
  for (const k of LAMBDA_KEYS) if (r[k] !== undefined) v.number(`${name}.${k}`, r[k], { min: 0, max: 1e12 });
  return r as Seq2SeqRegularizationOptions;
}

function checkTrainInputs(inputs: unknown): void {
  const i = v.object('inputs', inputs);
  if (i.labels === undefined || i.labels === null)
    throw v.invalidParameterError('inputs.labels', 'target token ids [batchSize, targetLen] (-100 ignored), or class ids [batchSize]', i.labels);
}
