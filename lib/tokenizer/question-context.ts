/**
 * Question-answering windows sliding over a long context: `[CLS] question [SEP] context-slice [SEP]` (BERT),
 * `<s> question </s></s> context-slice </s>` (RoBERTa), as the family's layout says.
 */
import * as v from '../runtime/validate';
import { specialCount } from './assemble';
import type { Encoded } from './assemble';
import type { SpecialLayout } from './family';
import type { ContextToken } from './offset-tokenizer';
import { TokenizerError } from './tokenizer-error';

export interface QuestionContextOptions {
  /** Maximum window length including the special tokens, the question and the context slice. */
  maxLength: number;
  /** Number of context tokens shared by consecutive windows (HF `stride`). */
  docStride: number;
  /** If given, question tokens beyond this count are dropped (as in the original BERT run_squad). */
  maxQuestionLength?: number;
}

export interface QuestionContextWindow extends Encoded {
  /** Index (in this window) of the first context token. */
  contextStart: number;
  /** Index (in this window) one past the last context token. */
  contextEnd: number;
  /** Index of this window's first context token in the full tokenized context. */
  contextTokenOffset: number;
  /**
   * For each position in the window: the [start, end) span, in UTF-16 code units, of the ORIGINAL context
   * string that produced the token; `null` for special tokens and question tokens.
   */
  offsets: Array<[number, number] | null>;
}

/** `opts` checked, with the defaults filled in (before any text is tokenized). */
export function checkQuestionContextOptions(opts: QuestionContextOptions): QuestionContextOptions {
  const o = v.options('opts', opts, ['maxLength', 'docStride', 'maxQuestionLength']);
  return {
    maxLength: v.positiveInteger('opts.maxLength', o.maxLength),
    docStride: v.integer('opts.docStride', o.docStride, { min: 0 }),
    maxQuestionLength: o.maxQuestionLength === undefined ? undefined : v.positiveInteger('opts.maxQuestionLength', o.maxQuestionLength),
  };
}

/**
 * The windows over the tokens of one (question, context) pair (`contextTokens` gives the context's), like HF `tok(question, context,
 * truncation='only_second', max_length=maxLength, stride=docStride, return_overflowing_tokens=True,
 * return_offsets_mapping=True)`: every window is at most `maxLength` long and consecutive windows share
 * `docStride` context tokens.
 */
export function questionContextWindows(
  question: number[],
  contextTokens: () => readonly ContextToken[],
  opts: QuestionContextOptions,
  layout: SpecialLayout,
): QuestionContextWindow[] {
  const { maxLength, docStride, maxQuestionLength } = opts;
  const { clsId, sepId } = layout;
  // Extractive QA puts the question after a start token whose logits mean "no answer" (HF's cls_index).
  if (clsId === null) throw new TokenizerError('E_INVALID_ARG', 'question-context windows need a tokenizer family with a start token (T5 answers questions as text-to-text)');
  const q = maxQuestionLength !== undefined && question.length > maxQuestionLength ? question.slice(0, maxQuestionLength) : question;
  const nSpecial = specialCount(layout, true);
  const maxCtx = maxLength - q.length - nSpecial;
  if (maxCtx < 1) {
    throw new TokenizerError(
      'E_INVALID_ARG',
      `question is ${q.length} tokens; with its ${nSpecial} special tokens it leaves no room for context in maxLength ${maxLength}`,
    );
  }
  // Tokenized only once the question is known to leave room for it.
  const ctx = contextTokens();
  const starts: number[] = [0];
  if (ctx.length > maxCtx) {
    if (docStride >= maxCtx) {
      throw new TokenizerError(
        'E_INVALID_ARG',
        `docStride ${docStride} must be smaller than the ${maxCtx} context tokens that fit in a window (maxLength ${maxLength}, question ${q.length} tokens)`,
      );
    }
    const step = maxCtx - docStride;
    for (let s = step; s - step + maxCtx < ctx.length; s += step) starts.push(s);
  }
  const windows: QuestionContextWindow[] = [];
  for (const s of starts) {
    const e = Math.min(s + maxCtx, ctx.length);
    const inputIds: number[] = [clsId, ...q, ...new Array<number>(layout.pairSeparators).fill(sepId)];
    const offsets: Array<[number, number] | null> = new Array<[number, number] | null>(inputIds.length).fill(null);
    const contextStart = inputIds.length;
    for (let i = s; i < e; i++) {
      inputIds.push(ctx[i].id);
      offsets.push([ctx[i].start, ctx[i].end]);
    }
    const contextEnd = inputIds.length;
    inputIds.push(sepId);
    offsets.push(null);
    const tokenTypeIds = inputIds.map((_, i) => (i < contextStart ? 0 : layout.secondTypeId));
    const attentionMask = new Array<number>(inputIds.length).fill(1);
    windows.push({ inputIds, tokenTypeIds, attentionMask, contextStart, contextEnd, contextTokenOffset: s, offsets });
  }
  return windows;
}
