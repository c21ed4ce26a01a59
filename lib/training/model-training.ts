/**
 * What training adds to BertModel (sharp-style: one file per concept registers its methods on the one class):
 * one optimisation step, the gradients of one batch, the data-parallel start, and the training state's
 * checkpoint and reset. Declared on the class by module augmentation, installed when this module loads
 * (lib/index.ts loads it; so does the trainer).
 *
 * The training state (AdamW moments; the dropout generator travels with it in checkpoints) is not the model's:
 * it is a native object of its own (NativeTrainingState), one per model, created by its first use and kept in
 * a WeakMap, so it goes when the model does. Its calls run in the model's queue, and natively under the
 * model's lock.
 */
import { resolve } from 'node:path';
import { BertModel, ForwardBatch, extendModel, modelInternals } from '../model/model';
import { OPTIMIZER_RANGES } from '../model/train-ranges';
import { invalidArg } from '../runtime/errors';
import { NativeGradients, NativeModel, NativeTrainStepOptions, NativeTrainStepResult, NativeTrainingState, native } from '../runtime/native';
import * as v from '../runtime/validate';
import { checkLossOptions, LossOptions } from '../pruning/model-pruning';
import { ProcessGroup } from './distributed';

export type Gradients = NativeGradients;
export type TrainStepOptions = NativeTrainStepOptions;
export type TrainStepResult = NativeTrainStepResult;

declare module '../model/model' {
  interface BertModel {
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
    /** Loss (task + lambda x regularization) and every parameter's gradient, from one train-mode backward. */
    gradients(batch: ForwardBatch, options?: LossOptions): Promise<Gradients>;
    /**
     * Data-parallel start (ProcessGroup.syncModel): checks that every rank of `group` holds a model of the same
     * structure, then copies rank 0's parameters and buffers into this one. Every rank must call it.
     */
    syncAcross(group: ProcessGroup): Promise<void>;
    /**
     * Writes the optimizer state and the RNG state (optimizer.safetensors, rng.safetensors) into `dir`. In a
     * data-parallel run, rank 0 passes every rank's generator state (`rngStates`, in rank order).
     */
    saveTrainingState(dir: string, rngStates?: Uint8Array[]): Promise<void>;
    /** Restores what saveTrainingState wrote (`rank`: whose generator state to take, default 0). */
    loadTrainingState(dir: string, rank?: number): Promise<void>;
    /** Forgets the optimizer's moments (a new training stage). */
    resetOptimizer(): Promise<void>;
  }
}

let bf16Kernels: string | undefined;

/**
 * A mixedPrecision option: 'bf16', on a CPU with the bf16 kernels (E_INVALID_ARG naming `name` otherwise, before
 * any step).
 */
export function checkMixedPrecision(name: string, value: unknown): 'bf16' {
  const mp = v.oneOf(name, value, ['bf16'] as const);
  // Asked once: the CPU does not change, and trainStep checks its options at every step.
  bf16Kernels ??= native().buildInfo().quantKernels.bf16;
  if (bf16Kernels === 'none')
    throw v.invalidParameterError(name, "no mixed precision on this CPU (bf16 training needs AVX-512 BF16: buildInfo().quantKernels.bf16 is 'none')", value, 'range');
  return mp;
}

/** Each train-step option's range (the binding's), beyond the loss options. */
export const TRAIN_STEP_RANGES: Record<string, v.NumberRange> = {
  ...OPTIMIZER_RANGES,
  maskLr: { min: 0, max: 100 },
  threshold: { min: -1e9, max: 1e9 },
};

const { enqueue, handle } = modelInternals;
const states = new WeakMap<BertModel, NativeTrainingState>();

/** The model's training state, created on first use. Called inside the model's queue, with its live handle. */
function stateOf(model: BertModel, h: NativeModel): NativeTrainingState {
  let s = states.get(model);
  if (!s) states.set(model, (s = new (native().NativeTrainingState)(h)));
  return s;
}

extendModel({
  async trainStep(batch: ForwardBatch | null, options: TrainStepOptions = {}, teacher?: BertModel, dist?: { group: ProcessGroup; stop?: boolean }): Promise<TrainStepResult> {
    const t = teacher ? handle(teacher) : undefined;
    if (!dist && (typeof batch !== 'object' || batch === null)) throw invalidArg('batch', 'an object', batch);
    const { mixedPrecision, ...rest } = v.object('options', options) as TrainStepOptions;
    checkLossOptions(rest, TRAIN_STEP_RANGES);
    if (mixedPrecision !== undefined) checkMixedPrecision('options.mixedPrecision', mixedPrecision);
    const g = dist ? dist.group.handle() : undefined;
    return enqueue(this, (h) => stateOf(this, h).trainStep(h, batch, options, t, g, dist?.stop ?? false));
  },

  async gradients(batch: ForwardBatch, options: LossOptions = {}): Promise<Gradients> {
    checkLossOptions(options);
    return enqueue(this, (h) => h.gradients(batch, options));
  },

  async syncAcross(group: ProcessGroup): Promise<void> {
    // The group is checked in the queue: on a disposed model, E_DISPOSED comes first, as from every method.
    return enqueue(this, (h) => v.instance('group', group, ProcessGroup, 'a ProcessGroup').handle().syncModel(h));
  },

  async saveTrainingState(dir: string, rngStates?: Uint8Array[]): Promise<void> {
    const abs = resolve(v.string('dir', dir, { nonEmpty: true }));
    return enqueue(this, (h) => stateOf(this, h).save(h, abs, rngStates));
  },

  async loadTrainingState(dir: string, rank = 0): Promise<void> {
    const abs = resolve(v.string('dir', dir, { nonEmpty: true }));
    return enqueue(this, (h) => stateOf(this, h).load(h, abs, rank));
  },

  async resetOptimizer(): Promise<void> {
    return enqueue(this, (h) => stateOf(this, h).resetOptimizer(h));
  },
});
