/**
 * Question-answering options and their defaults (HF's QuestionAnsweringPipeline), defined once: the
 * pipeline (pipelines.ts) and the HTTP service (serve/) window and score with the same values.
 */
import type { QuestionContextOptions } from '../tokenizer/tokenizer';
import * as v from '../runtime/validate';

export interface QAOptions {
  /** Answers to return (default 1: a single object; more: an array). */
  topK?: number;
  /** Longest answer in tokens (default 15, as HF). */
  maxAnswerLength?: number;
  /** Window length in tokens (default 384, as HF). */
  maxSeqLength?: number;
  /** Tokens shared by consecutive windows (default 128, as HF). */
  docStride?: number;
  /** Question tokens kept (default 64, as HF). */
  maxQuestionLength?: number;
  /** Allow the empty answer (SQuAD v2 style), scored from [CLS]. Default false. */
  handleImpossibleAnswer?: boolean;
}

/**
 * HF's defaults (transformers' QuestionAnsweringPipeline: max_seq_len 384, doc_stride 128,
 * max_question_len 64, max_answer_len 15, top_k 1). docStride is also capped at a third of the window
 * (qaWindowOptions), so a model with short positions still gets windows that advance.
 */
export const QA_DEFAULTS: Readonly<Required<QAOptions>> = Object.freeze({
  topK: 1,
  maxAnswerLength: 15,
  maxSeqLength: 384,
  docStride: 128,
  maxQuestionLength: 64,
  handleImpossibleAnswer: false,
});

const QA_OPTIONS = ['topK', 'maxAnswerLength', 'maxSeqLength', 'docStride', 'maxQuestionLength', 'handleImpossibleAnswer'] as const;

/** A QA call's options, all checked before any window is encoded. */
export function checkQAOptions(opts: unknown): QAOptions {
  const o = v.options('options', opts, QA_OPTIONS) as QAOptions;
  for (const k of ['topK', 'maxAnswerLength', 'maxSeqLength', 'maxQuestionLength'] as const) if (o[k] !== undefined) v.positiveInteger(`options.${k}`, o[k]);
  if (o.docStride !== undefined) v.integer('options.docStride', o.docStride, { min: 0 });
  if (o.handleImpossibleAnswer !== undefined) v.boolean('options.handleImpossibleAnswer', o.handleImpossibleAnswer);
  return o;
}

/**
 * The tokenizer's windowing (encodeQuestionContext) for checked `opts` on a model that takes at most
 * `maxLength` tokens: the window is cut to the model, the default stride to a third of the window.
 */
export function qaWindowOptions(opts: QAOptions, maxLength: number): QuestionContextOptions {
  const maxSeq = Math.min(opts.maxSeqLength ?? QA_DEFAULTS.maxSeqLength, maxLength);
  return {
    maxLength: maxSeq,
    docStride: opts.docStride ?? Math.min(QA_DEFAULTS.docStride, Math.floor(maxSeq / 3)),
    maxQuestionLength: opts.maxQuestionLength ?? QA_DEFAULTS.maxQuestionLength,
  };
}
