/**
 * Assembling `[CLS] a [SEP] b [SEP]` (BERT) or `<s> a </s></s> b </s>` (RoBERTa) from token ids, as the family's
 * layout says, with HF's truncation strategies (done here rather than by the library's post-processor, because
 * truncation has to act on the two sequences before the special tokens are added).
 */
import * as v from '../runtime/validate';
import type { SpecialLayout } from './family';
import { TokenizerError } from './tokenizer-error';

export type TruncationStrategy = 'only_second' | 'longest_first' | 'only_first' | false;

export interface EncodeOptions {
  /** Maximum total length including special tokens. */
  maxLength?: number;
  /** Default: 'longest_first' when `maxLength` is given, otherwise no truncation. */
  truncation?: TruncationStrategy;
  /** Add the special tokens ([CLS]/[SEP], <s>/</s>) (default true). */
  addSpecialTokens?: boolean;
}

export interface Encoded {
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

export const ENCODE_OPTIONS = ['maxLength', 'truncation', 'addSpecialTokens'] as const;
const TRUNCATIONS: readonly unknown[] = ['only_second', 'longest_first', 'only_first', false];

/** `value` when it is one of `values` (which may hold `false`, so validate's oneOf does not fit). */
export function choice<T>(name: string, value: unknown, values: readonly unknown[]): T {
  if (!values.includes(value)) throw v.invalidParameterError(name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, value, typeof value === 'string' ? 'range' : 'type');
  return value as T;
}

/**
 * HF transformers 4.x `truncate_sequences` (stride 0) for a total that is `numToRemove` over `maxLength`.
 * Throws E_INVALID_ARG where HF would log "We need to remove N tokens ..." and return over-long sequences.
 */
function truncatePair(
  ids: number[],
  pair: number[] | null,
  numToRemove: number,
  strategy: Exclude<TruncationStrategy, false>,
  maxLength: number,
): [number[], number[] | null] {
  if (numToRemove <= 0) return [ids, pair];
  if (strategy === 'longest_first') {
    let la = ids.length;
    let lb = pair ? pair.length : 0;
    for (let k = 0; k < numToRemove; k++) {
      if (pair === null || la > lb) {
        if (la === 0) break;
        la--;
      } else {
        if (lb === 0) break;
        lb--;
      }
    }
    const removed = ids.length - la + (pair ? pair.length - lb : 0);
    if (removed < numToRemove) {
      throw new TokenizerError('E_INVALID_ARG', `cannot truncate to maxLength ${maxLength}: not enough tokens to remove ${numToRemove}`);
    }
    return [ids.slice(0, la), pair ? pair.slice(0, lb) : null];
  }
  if (strategy === 'only_first') {
    if (ids.length > numToRemove) return [ids.slice(0, ids.length - numToRemove), pair];
    throw new TokenizerError(
      'E_INVALID_ARG',
      `cannot truncate with 'only_first' to maxLength ${maxLength}: need to remove ${numToRemove} tokens but the first sequence has ${ids.length}`,
    );
  }
  if (strategy === 'only_second') {
    if (pair === null) {
      throw new TokenizerError('E_INVALID_ARG', `cannot truncate with 'only_second' to maxLength ${maxLength}: there is no second sequence`);
    }
    if (pair.length > numToRemove) return [ids, pair.slice(0, pair.length - numToRemove)];
    throw new TokenizerError(
      'E_INVALID_ARG',
      `cannot truncate with 'only_second' to maxLength ${maxLength}: need to remove ${numToRemove} tokens but the second sequence has ${pair.length} (the first sequence is too long)`,
    );
  }
  throw new TokenizerError('E_INVALID_ARG', `unknown truncation strategy ${String(strategy)}`);
}

/** The special tokens around one sequence (2; 1 for T5) or a pair (3 for BERT, 4 for RoBERTa, 2 for T5). */
export function specialCount(layout: SpecialLayout, pair: boolean): number {
  return (layout.clsId === null ? 0 : 1) + 1 + (pair ? layout.pairSeparators : 0);
}

/**
 * `cls a sep` or `cls a sep [sep] b sep` (no `cls` for T5) from ids without special tokens, truncated as `opts` says. Token types:
 * 0 up to the separators after `a`, then the layout's type of the second sequence.
 */
export function assembleIds(idsA: number[], idsB: number[] | null, opts: EncodeOptions, layout: SpecialLayout): Encoded {
  const { clsId, sepId } = layout;
  const addSpecial = v.boolean('opts.addSpecialTokens', opts.addSpecialTokens ?? true);
  const maxLength = opts.maxLength === undefined ? undefined : v.positiveInteger('opts.maxLength', opts.maxLength);
  const strategy: TruncationStrategy =
    opts.truncation === undefined ? (maxLength !== undefined ? 'longest_first' : false) : choice('opts.truncation', opts.truncation, TRUNCATIONS);
  let a = idsA;
  let b = idsB;
  if (strategy !== false && maxLength !== undefined) {
    const nSpecial = addSpecial ? specialCount(layout, b !== null) : 0;
    const total = a.length + (b ? b.length : 0) + nSpecial;
    [a, b] = truncatePair(a, b, total - maxLength, strategy, maxLength);
  } else if (strategy !== false && maxLength === undefined) {
    throw new TokenizerError('E_INVALID_ARG', `truncation '${strategy}' needs maxLength`);
  }
  const inputIds: number[] = [];
  const tokenTypeIds: number[] = [];
  if (addSpecial && clsId !== null) inputIds.push(clsId);
  for (const id of a) inputIds.push(id);
  if (addSpecial) inputIds.push(sepId);
  const nFirst = inputIds.length;
  if (b) {
    if (addSpecial) for (let k = 1; k < layout.pairSeparators; k++) inputIds.push(sepId);
    for (const id of b) inputIds.push(id);
    if (addSpecial) inputIds.push(sepId);
  }
  for (let i = 0; i < inputIds.length; i++) tokenTypeIds.push(i < nFirst ? 0 : layout.secondTypeId);
  const attentionMask = new Array<number>(inputIds.length).fill(1);
  return { inputIds, tokenTypeIds, attentionMask };
}
