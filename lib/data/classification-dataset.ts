/** ClassificationDataset: pre-tokenized sentence / sentence-pair examples, batched with dynamic padding. */
import { invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';
import type { PreTrainedTokenizer } from '../tokenizer/tokenizer';
import { batchRows, makeIdStore, numBatchesOf, packRows, sampleFingerprint } from './batches';
import type { BatchOptions, ClassificationBatch, IdStore } from './batches';
import type { ClassificationExample } from './glue';

export interface ClassificationDatasetOptions {
  /** Maximum sequence length including [CLS]/[SEP] (default 128). */
  maxLength?: number;
  /** Token type 1 on a pair's second text (default true); false gives 0 everywhere, for models with one token type (RoBERTa). */
  tokenTypes?: boolean;
}

/**
 * Pre-tokenized sentence / sentence-pair classification data.
 *
 * Truncation to `maxLength`: a single text is cut at the end. A pair is cut with 'only_second' (the second text —
 * BoolQ's passage, a hypothesis — loses tokens at its end, the first is kept whole) when the second text alone can
 * absorb the excess while keeping at least one token; otherwise with 'longest_first' (HF's default: one token at a
 * time from the longer of the two).
 *
 * Token ids are stored in one flat Uint16Array (Int32Array for vocabularies over 65,536) with per-row offsets.
 */
export class ClassificationDataset {
  /** batches() honours BatchOptions.shard (the trainer then reads only this rank's rows). */
  readonly shardable = true;
  readonly length: number;
  readonly maxLength: number;
  /** Gold label of each example. */
  readonly labels: Int32Array;
  /** Examples that were truncated to fit `maxLength`. */
  readonly truncated: number;
  private readonly ids: IdStore;
  private readonly starts: Int32Array;
  private readonly typeStart: Int32Array;
  private readonly padId: number;

  constructor(examples: readonly ClassificationExample[], tokenizer: PreTrainedTokenizer, opts: ClassificationDatasetOptions = {}) {
    if (!Array.isArray(examples)) throw invalidArg('examples', 'an array of examples', examples);
    v.options('opts', opts, ['maxLength', 'tokenTypes']);
    const tokenTypes = opts.tokenTypes === undefined ? true : v.boolean('opts.tokenTypes', opts.tokenTypes);
    const maxLength = v.integer('opts.maxLength', opts.maxLength ?? 128, { min: 4 });
    this.maxLength = maxLength;
    this.padId = tokenizer.padId;
    const n = examples.length;
    this.length = n;
    this.labels = new Int32Array(n);
    this.starts = new Int32Array(n + 1);
    this.typeStart = new Int32Array(n);
    const rows: number[][] = new Array<number[]>(n);
    let total = 0;
    let truncated = 0;
    for (let i = 0; i < n; i++) {
      const ex = examples[i];
      // A blank text would train on [CLS] [SEP] under a label (the loaders refuse such rows too).
      v.string(`examples[${i}].text`, ex?.text, { nonEmpty: true });
      if (ex.textPair !== undefined && ex.textPair !== null) v.string(`examples[${i}].textPair`, ex.textPair, { nonEmpty: true });
      if (!Number.isInteger(ex.label) || ex.label < 0) throw invalidArg(`examples[${i}].label`, 'a non-negative integer', ex.label);
      const a = tokenizer.encodeText(ex.text);
      const hasPair = typeof ex.textPair === 'string';
      const b = hasPair ? tokenizer.encodeText(ex.textPair as string) : null;
      const full = a.length + (b ? b.length + 3 : 2);
      const excess = full - maxLength;
      let truncation: 'only_second' | 'longest_first' = 'longest_first';
      if (excess > 0) {
        truncated++;
        if (b && b.length > excess) truncation = 'only_second';
      }
      const enc = tokenizer.assemble(a, b, { maxLength, truncation });
      rows[i] = enc.inputIds;
      this.labels[i] = ex.label;
      const firstType1 = enc.tokenTypeIds.indexOf(1);
      this.typeStart[i] = firstType1 < 0 || !tokenTypes ? enc.inputIds.length : firstType1;
      total += enc.inputIds.length;
    }
    this.truncated = truncated;
    this.ids = makeIdStore(total, tokenizer.vocabSize);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      this.starts[i] = pos;
      this.ids.set(rows[i], pos);
      pos += rows[i].length;
    }
    this.starts[n] = pos;
  }

  /** Token count (with special tokens) of example i. */
  lengthOf(i: number): number {
    return this.starts[i + 1] - this.starts[i];
  }

  /** The encoded example i (unpadded). */
  get(i: number): { inputIds: number[]; tokenTypeIds: number[]; label: number } {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw invalidArg('i', `an index 0..${this.length - 1}`, i);
    const inputIds = Array.from(this.ids.subarray(this.starts[i], this.starts[i + 1]));
    const tokenTypeIds = inputIds.map((_, k) => (k >= this.typeStart[i] ? 1 : 0));
    return { inputIds, tokenTypeIds, label: this.labels[i] };
  }

  numBatches(batchSize: number, dropLast = false): number {
    return numBatchesOf(this.length, batchSize, dropLast);
  }

  /** A short hash of the set (sizes and a sample of rows: ids, token types, labels); see TrainData. */
  fingerprint(): string {
    const { ids, starts, labels, typeStart } = this;
    return sampleFingerprint(this.length, `cls:${this.length}:${starts[this.length]}:${this.maxLength}`, (i) => [
      ids.subarray(starts[i], starts[i + 1]),
      labels.subarray(i, i + 1),
      typeStart.subarray(i, i + 1),
    ]);
  }

  /**
   * Batches padded to their longest row. With `shuffle`, the order is the seeded permutation for (seed, epoch):
   * the same for the same pair, different across epochs, each example exactly once per epoch.
   */
  *batches(batchSize: number, opts: BatchOptions = {}): Generator<ClassificationBatch> {
    for (const rows of batchRows(this.length, batchSize, opts)) {
      const packed = packRows(this.ids, this.starts, rows, this.typeStart, this.padId);
      const labels = new Int32Array(rows.length);
      for (let r = 0; r < rows.length; r++) labels[r] = this.labels[rows[r]];
      yield { ...packed, batchSize: rows.length, labels, indices: rows };
    }
  }
}
