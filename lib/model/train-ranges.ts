import type { NumberRange } from '../runtime/validate';

/**
 * The ranges of the train-step options that BERT's step (lib/training/model-training.ts) and the encoder-decoders'
 * (Seq2SeqModel.trainStep) share: the native bindings' own bounds, so that TypeScript and C++ say the same.
 */
export const OPTIMIZER_RANGES = {
  lr: { min: 0, max: 10 },
  weightDecay: { min: 0, max: 10 },
  beta1: { min: 0, max: 1 },
  beta2: { min: 0, max: 1 },
  eps: { min: 0, max: 1 },
  lrScale: { min: 0, max: 1e6 },
  maxGradNorm: { min: -1, max: 1e12 },
  alphaCe: { min: 0, max: 1e6 },
  alphaTeacher: { min: 0, max: 1e6 },
  temperature: { min: 1e-6, max: 1e6 },
} as const satisfies Record<string, NumberRange>;
