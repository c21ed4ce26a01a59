/**
 * Seq2SeqTrainer (issue 18): fine-pruning of a BART or T5 as nn_pruning does it for summarization: weights and
 * mask scores trained together under the cubic threshold schedule, the scores' regularization with the decoder's
 * groups, optional distillation from a dense teacher (KL per target token), evaluation after each epoch at the
 * final threshold. Each step is one native call (Seq2SeqModel.trainStep).
 *
 * What it shares with SparseTrainer (trainer.ts), rather than repeats: the option names and checks
 * (trainer-options.ts), the learning-rate schedule, checkpoints (checkpoint.ts: model + scores, optimizer and
 * generator in a temporary sibling renamed into place), the run fingerprint a resume is checked against
 * (run-fingerprint.ts) and the log entries' shape. A checkpoint resumes to the same result as an uninterrupted run:
 * the data order is a function of (seed, epoch), dropout draws from the generator the checkpoint holds.
 *
 * Unlike SparseTrainer, a resume loads the checkpoint into the model it is given (patched from `pruning` first,
 * as the run that wrote it was): result.model is that model.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { permutation } from '../data/rng';
import { Seq2SeqModel, type Seq2SeqInputs, type Seq2SeqTrainStepOptions } from '../model/seq2seq';
import { appendDurableSync, ensureDir } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import { native } from '../runtime/native';
import * as v from '../runtime/validate';
import { PruningConfig } from '../pruning/config';
import '../pruning/seq2seq-pruning'; // model.patch(), setThreshold()
import { latestCheckpoint, readCheckpointState, TrainerState, writeCheckpoint } from './checkpoint';
import { checkResume, RunFingerprint } from './run-fingerprint';
import { stopOnSigint } from './sigint';
import { linearSchedule } from './trainer';
import { checkDistillation, checkLoopOptions, checkOutputs, HF_TRAINER_NAMES, LogEntry, Metrics, type SparseTrainerOptions } from './trainer-options';

/** One training pair: unpadded source ids and target ids (ending with eos, as the caller tokenized them). */
export interface Seq2SeqTrainExample {
  inputIds: number[];
  labels: number[];
}

export interface Seq2SeqDistillationOptions {
  /** A dense model of the student's family and vocabulary (fine-tuned on the task). */
  teacher: Seq2SeqModel;
  /** Default 0.5 (`distil_alpha_ce`). */
  alphaCe?: number;
  /** Default 0.5 (`distil_alpha_teacher`). */
  alphaTeacher?: number;
  /** Default 2 (`distil_temperature`). */
  temperature?: number;
}

/** The loop's options SparseTrainer has too, with the same meaning (documented there). */
type LoopOptions = Pick<
  SparseTrainerOptions,
  'epochs' | 'maxSteps' | 'batchSize' | 'learningRate' | 'weightDecay' | 'warmupSteps' | 'maxGradNorm' | 'outputDir' | 'saveSteps' | 'keepCheckpoints' | 'resume' | 'logFile' | 'logEvery' | 'onLog' | 'onProgress' | 'handleSigint'
>;

/** SparseTrainerOptions' names where they mean the same (see trainer-options.ts for each one's meaning). */
export interface Seq2SeqTrainerOptions extends LoopOptions {
  /** The model to train: patched (its plan stays), or not (patched here from `pruning`, or trained dense). */
  model: Seq2SeqModel;
  /** Fine-pruning: schedule, regularization and its lambdas (decoderAttentionLambda, decoderDenseLambda too). */
  pruning?: PruningConfig;
  /** The training pairs; padded per batch with the model's pad id (labels with -100). */
  train: Seq2SeqTrainExample[];
  /** After each epoch, at the final threshold. */
  evaluate?: (model: Seq2SeqModel) => Promise<Metrics>;
  distillation?: Seq2SeqDistillationOptions;
  /** Data order and dropout (default 42). */
  seed?: number;
}

export interface Seq2SeqTrainResult {
  model: Seq2SeqModel;
  steps: number;
  /** Epochs begun and finished (the index of the next one). */
  epochs: number;
  interrupted: boolean;
  history: Metrics[];
  lastCheckpoint?: string;
}

const OPTION_KEYS: ReadonlyArray<keyof Seq2SeqTrainerOptions> = [
  'model', 'pruning', 'train', 'evaluate', 'epochs', 'maxSteps', 'batchSize', 'learningRate', 'weightDecay', 'warmupSteps', 'maxGradNorm',
  'distillation', 'seed', 'outputDir', 'saveSteps', 'keepCheckpoints', 'resume', 'logFile', 'logEvery', 'onLog', 'onProgress', 'handleSigint',
];

/** Every option and every example checked before any work or file: E_INVALID_ARG naming the first bad one. */
function checkOptions(options: Seq2SeqTrainerOptions): void {
  const o = v.object('options', options) as Record<string, unknown>;
  v.knownKeys('Seq2SeqTrainer options', o, OPTION_KEYS, HF_TRAINER_NAMES);
  const model = v.instance('options.model', o.model, Seq2SeqModel, 'a Seq2SeqModel');
  if (o.pruning !== undefined) v.instance('options.pruning', o.pruning, PruningConfig, 'a PruningConfig');
  if (!Array.isArray(o.train)) throw v.invalidParameterError('options.train', 'an array of {inputIds, labels}', o.train);
  if (o.train.length === 0) throw v.invalidParameterError('options.train', 'at least one example', o.train, 'range');
  const vocab = model.info.vocabSize;
  o.train.forEach((e: unknown, i: number) => {
    const ex = v.options(`options.train[${i}]`, e, ['inputIds', 'labels']);
    for (const k of ['inputIds', 'labels']) {
      const ids = ex[k];
      if (!Array.isArray(ids) || ids.length === 0) throw v.invalidParameterError(`options.train[${i}].${k}`, 'a non-empty array of token ids', ids);
      ids.forEach((id: unknown, j: number) => v.integer(`options.train[${i}].${k}[${j}]`, id, { min: 0, max: vocab - 1 }));
    }
  });
  checkLoopOptions(o);
  if (o.distillation !== undefined) checkDistillation(o.distillation, model, Seq2SeqModel, 'a Seq2SeqModel');
  checkOutputs(o, true);
}

/** A batch of examples, padded: source with pad (mask 0), labels with -100 (the native step shifts them into decoder inputs). */
export function seq2seqBatch(examples: readonly Seq2SeqTrainExample[], padTokenId: number): Seq2SeqInputs {
  const batchSize = examples.length;
  const seqLen = Math.max(...examples.map((e) => e.inputIds.length));
  const targetLen = Math.max(...examples.map((e) => e.labels.length));
  const inputIds = new Int32Array(batchSize * seqLen).fill(padTokenId);
  const attentionMask = new Int32Array(batchSize * seqLen);
  const labels = new Int32Array(batchSize * targetLen).fill(-100);
  examples.forEach((e, r) => {
    inputIds.set(e.inputIds, r * seqLen);
    attentionMask.fill(1, r * seqLen, r * seqLen + e.inputIds.length);
    labels.set(e.labels, r * targetLen);
  });
  return { inputIds, attentionMask, batchSize, seqLen, targetLen, labels };
}

/** Rows and a hash of every pair (they are small): a resume on other data is refused. */
function examplesFingerprint(train: readonly Seq2SeqTrainExample[]): { length: number; hash: string } {
  const h = createHash('sha256');
  for (const e of train) h.update(`${e.inputIds.join(',')}|${e.labels.join(',')};`);
  return { length: train.length, hash: h.digest('hex').slice(0, 16) };
}

/** Where the loop stands: what a checkpoint saves and a resume restores. */
interface Position {
  step: number;
  epochIndex: number;
  batchInEpoch: number;
  history: Metrics[];
}

export class Seq2SeqTrainer {
  readonly options: Seq2SeqTrainerOptions;
  private stopRequested = false;

  constructor(options: Seq2SeqTrainerOptions) {
    checkOptions(options);
    this.options = options;
  }

  /** Asks the loop to write a checkpoint (with outputDir) and stop after the current step. */
  stop(): void {
    this.stopRequested = true;
  }

  private log(entry: LogEntry): void {
    if (this.options.logFile) appendDurableSync(this.options.logFile, JSON.stringify(entry) + '\n');
    this.options.onLog?.(entry);
  }

  async train(): Promise<Seq2SeqTrainResult> {
    const o = this.options;
    const { model, batchSize = 8, epochs = 3, seed = 42, warmupSteps: warmup = 0, learningRate: lr = 5e-5 } = o;
    const stepsPerEpoch = Math.ceil(o.train.length / batchSize);
    const totalSteps = o.maxSteps ?? epochs * stepsPerEpoch;
    const po = o.pruning?.options;
    const epochsDone = (s: number) => Math.round((s / stepsPerEpoch) * 1e4) / 1e4;
    const info = model.info;
    const fingerprint: RunFingerprint = {
      worldSize: 1,
      seed,
      batchSize,
      epochs,
      maxSteps: o.maxSteps ?? null,
      totalSteps,
      data: examplesFingerprint(o.train),
      pruning: po ? { ...po } : null,
      model: { hidden: info.dModel, vocab: info.vocabSize, labels: 0, layers: [[info.encoderLayers, info.decoderLayers]] },
    };
    if (o.logFile) ensureDir(resolve(o.logFile, '..'));
    if (o.pruning && !model.isPatched()) await model.patch(o.pruning);

    let pos: Position = { step: 0, epochIndex: 0, batchInEpoch: 0, history: [] };
    let lastCheckpoint: string | undefined;
    const resumeDir = typeof o.resume === 'string' ? resolve(o.resume) : o.resume && o.outputDir ? latestCheckpoint(resolve(o.outputDir)) : undefined;
    if (o.resume && !resumeDir) throw new BlockpruneError('E_BAD_CHECKPOINT', `no complete checkpoint in ${o.outputDir}`);
    if (resumeDir) {
      const state = readCheckpointState(resumeDir);
      checkResume(resumeDir, state, fingerprint, false, (note) => this.log({ type: 'stage', step: state.step, epoch: epochsDone(state.step), ...note }));
      // Not strict: the file holds BART's final_logits_bias, a buffer (never trained), which loadState does not
      // take. The fingerprint above has checked the plan and geometry, and the optimizer's state below must match
      // every trained parameter by name and shape (E_BAD_CHECKPOINT otherwise).
      await model.loadState(join(resumeDir, 'model.safetensors'), { strict: false });
      await model.loadTrainingState(resumeDir);
      pos = { step: state.step, epochIndex: state.epochIndex, batchInEpoch: state.batchInEpoch, history: state.history };
      lastCheckpoint = resumeDir;
      this.log({ type: 'stage', step: pos.step, epoch: epochsDone(pos.step), resumedFrom: resumeDir });
    } else {
      native().manualSeed(seed);
    }

    const checkpoint = async (): Promise<string> => {
      const state: TrainerState = { format: 'blockprune-trainer-2', ...pos, epoch: epochsDone(pos.step), totalSteps, seed, pruning: po ? { ...po } : undefined, worldSize: 1, run: fingerprint };
      const dir = await writeCheckpoint(resolve(o.outputDir!), model, state, undefined, o.keepCheckpoints ?? 2);
      this.log({ type: 'checkpoint', step: pos.step, epoch: epochsDone(pos.step), dir });
      return dir;
    };
    const removeSigint =
      (o.handleSigint ?? true)
        ? stopOnSigint(() => {
            const again = this.stopRequested;
            this.stopRequested = true;
            return again;
          })
        : undefined;
    const started = Date.now();
    const firstStep = pos.step;
    const padTokenId = info.padTokenId;
    let interrupted = false;
    try {
      while (pos.step < totalSteps && !interrupted) {
        const order = permutation(o.train.length, seed, pos.epochIndex);
        // Resuming inside an epoch: the same order, from the batch after the last one done.
        for (let b = pos.batchInEpoch; b < stepsPerEpoch && pos.step < totalSteps; b++) {
          const rows = Array.from(order.subarray(b * batchSize, (b + 1) * batchSize), (i) => o.train[i]);
          const sched = o.pruning?.schedule(pos.step, totalSteps, warmup);
          const r = await model.trainStep(seq2seqBatch(rows, padTokenId), this.stepOptions(pos.step, totalSteps, lr, sched), o.distillation?.teacher);
          pos.step++;
          pos.batchInEpoch = b + 1;
          const density = Object.fromEntries(Object.entries(r.groups).map(([k, g]) => [k, g.density]));
          if (pos.step % (o.logEvery ?? 10) === 0 || pos.step === totalSteps) {
            this.log({
              type: 'step', step: pos.step, epoch: epochsDone(pos.step), loss: r.loss, ce: r.taskLoss, distil: r.distilLoss, regu: r.reguLoss,
              threshold: sched?.threshold, lambda: sched?.lambda, lr: lr * linearSchedule(pos.step - 1, totalSteps, warmup), gradNorm: r.gradNorm,
              density, elapsedSec: (Date.now() - started) / 1000,
            });
          }
          const rate = (pos.step - firstStep) / Math.max(1e-3, (Date.now() - started) / 1000);
          o.onProgress?.({ step: pos.step, totalSteps, epoch: epochsDone(pos.step), loss: r.loss, rate, threshold: sched?.threshold, ...(Object.keys(density).length ? { density } : {}) });
          if (this.stopRequested) {
            interrupted = true;
            break;
          }
          if (o.outputDir && o.saveSteps && pos.step % o.saveSteps === 0 && pos.batchInEpoch < stepsPerEpoch && pos.step < totalSteps) lastCheckpoint = await checkpoint();
        }
        if (interrupted) break;
        const metrics = await this.evaluateNow(pos.step, epochsDone(pos.step));
        if (metrics) pos.history.push({ epoch: epochsDone(pos.step), step: pos.step, ...metrics });
        pos = { ...pos, epochIndex: pos.epochIndex + 1, batchInEpoch: 0 };
        if (o.outputDir) lastCheckpoint = await checkpoint();
      }
      if (interrupted && o.outputDir) lastCheckpoint = await checkpoint();
    } finally {
      removeSigint?.();
    }
    if (po && !interrupted) await model.setThreshold(po.finalThreshold);
    return { model, steps: pos.step, epochs: pos.epochIndex, interrupted, history: pos.history, ...(lastCheckpoint ? { lastCheckpoint } : {}) };
  }

  /** The step's hyper-parameters: learning rates and their schedule, the pruning schedule's threshold and lambda. */
  private stepOptions(step: number, totalSteps: number, lr: number, sched: { threshold: number; lambda: number } | undefined): Seq2SeqTrainStepOptions {
    const o = this.options;
    const po = o.pruning?.options;
    const d = o.distillation;
    return {
      lr,
      lrScale: linearSchedule(step, totalSteps, o.warmupSteps ?? 0),
      weightDecay: o.weightDecay ?? 0,
      maxGradNorm: o.maxGradNorm ?? 1,
      ...(d ? { alphaCe: d.alphaCe ?? 0.5, alphaTeacher: d.alphaTeacher ?? 0.5, temperature: d.temperature ?? 2 } : {}),
      ...(po && sched
        ? {
            maskLr: po.maskScoresLearningRate,
            threshold: sched.threshold,
            regularization: {
              kind: po.regularization,
              lambda: sched.lambda,
              attentionLambda: po.attentionLambda,
              denseLambda: po.denseLambda,
              ...(po.decoderAttentionLambda !== undefined ? { decoderAttentionLambda: po.decoderAttentionLambda } : {}),
              ...(po.decoderDenseLambda !== undefined ? { decoderDenseLambda: po.decoderDenseLambda } : {}),
            },
          }
        : {}),
    };
  }

  /** `evaluate` at the final threshold, logged with the groups' densities there. */
  private async evaluateNow(step: number, epoch: number): Promise<Metrics | undefined> {
    const o = this.options;
    if (!o.evaluate) return undefined;
    const po = o.pruning?.options;
    if (po) await o.model.setThreshold(po.finalThreshold);
    const metrics = await o.evaluate(o.model);
    const entry: LogEntry = { type: 'eval', step, epoch, ...metrics };
    if (po) entry.density = Object.fromEntries(Object.entries((await o.model.regularization()).groups).map(([k, g]) => [k, g.density]));
    this.log(entry);
    return metrics;
  }
}
