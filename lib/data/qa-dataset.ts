/** QADataset: question-answering windows with training targets, and SQuAD post-processing of predicted logits. */
import { invalidArg } from '../runtime/errors';
import * as v from '../runtime/validate';
import type { PreTrainedTokenizer } from '../tokenizer/tokenizer';
import { batchRows, makeIdStore, numBatchesOf, packRows, sampleFingerprint } from './batches';
import type { BatchOptions, IdStore, QABatch } from './batches';
import type { QAExample } from './squad';

export interface QADatasetOptions {
  /** Window length (default 384). */
  maxLength?: number;
  /** Context tokens shared by consecutive windows (default 128). */
  docStride?: number;
  /** Question tokens kept (default 64). */
  maxQuestionLength?: number;
}

export interface PostprocessOptions {
  /** Candidates per window for start and end (default 20). */
  nBest?: number;
  /** Longest answer in tokens (default 30). */
  maxAnswerLength?: number;
  /** Allow the null answer (SQuAD 2.0). Default: true when any example is impossible. */
  version2?: boolean;
  /** Predict '' when null score − best span score > this (default 0). */
  nullScoreDiffThreshold?: number;
}

export interface QAFeature {
  exampleIndex: number;
  inputIds: number[];
  tokenTypeIds: number[];
  contextStart: number;
  contextEnd: number;
  /** Per position: [start, end) character span in the context, or null (question, special tokens). */
  offsets: Array<[number, number] | null>;
  startPosition: number;
  endPosition: number;
}

/**
 * Gathers per-batch QA logits (each [batchSize, batch seqLen]) into one [features, maxLength] layout for
 * `QADataset.postprocess(c.start, c.end, c.seqLen)`.
 */
export class QALogitCollector {
  readonly seqLen: number;
  readonly start: Float32Array;
  readonly end: Float32Array;
  private readonly seen: Uint8Array;
  private count = 0;
  constructor(numFeatures: number, seqLen: number) {
    this.seqLen = seqLen;
    this.start = new Float32Array(numFeatures * seqLen);
    this.end = new Float32Array(numFeatures * seqLen);
    this.seen = new Uint8Array(numFeatures);
  }
  add(batch: Pick<QABatch, 'featureIndices' | 'batchSize' | 'seqLen'>, startLogits: ArrayLike<number>, endLogits: ArrayLike<number>): void {
    const { featureIndices, batchSize, seqLen } = batch;
    if (seqLen > this.seqLen) throw invalidArg('batch.seqLen', `at most ${this.seqLen}`, seqLen);
    if (startLogits.length !== batchSize * seqLen || endLogits.length !== batchSize * seqLen) {
      throw invalidArg('startLogits/endLogits', `arrays of batchSize*seqLen = ${batchSize * seqLen} values`, startLogits);
    }
    for (let r = 0; r < batchSize; r++) {
      const f = featureIndices[r];
      for (let k = 0; k < seqLen; k++) {
        this.start[f * this.seqLen + k] = startLogits[r * seqLen + k];
        this.end[f * this.seqLen + k] = endLogits[r * seqLen + k];
      }
      if (!this.seen[f]) {
        this.seen[f] = 1;
        this.count++;
      }
    }
  }
  /** True once every feature got its logits. */
  get complete(): boolean {
    return this.count === this.seen.length;
  }
}

/**
 * Question answering features: sliding windows over each (question, context) from
 * `tokenizer.encodeQuestionContext` (HF run_qa layout `[CLS] question [SEP] context-slice [SEP]`, RoBERTa's
 * `<s> question </s></s> context-slice </s>`).
 *
 * Training targets (HF `prepare_train_features`): the first answer's token span when it lies entirely inside the
 * window's context, otherwise start = end = 0 ([CLS] / <s>); impossible questions get 0/0 everywhere.
 * Evaluation: `exampleIndex`, `contextStart`/`contextEnd` per window and `offsets(f)` back to context characters,
 * and `postprocess` (HF `postprocess_qa_predictions`).
 *
 * Context token offsets are stored once per distinct context (questions of a paragraph share them).
 */
export class QADataset {
  /** batches() honours BatchOptions.shard (the trainer then reads only this rank's rows). */
  readonly shardable = true;
  readonly examples: readonly QAExample[];
  /** Number of features (windows). */
  readonly length: number;
  readonly maxLength: number;
  readonly docStride: number;
  readonly maxQuestionLength: number;
  /** Any impossible example: the default of `postprocess`'s `version2`. */
  readonly version2: boolean;
  readonly exampleIndex: Int32Array;
  readonly contextStart: Int32Array;
  readonly contextEnd: Int32Array;
  readonly startPositions: Int32Array;
  readonly endPositions: Int32Array;
  /** featureStart[e] .. featureStart[e+1]-1 are example e's windows. */
  readonly featureStart: Int32Array;
  private readonly ids: IdStore;
  private readonly starts: Int32Array;
  private readonly ctxId: Int32Array;
  private readonly ctxTokenOffset: Int32Array;
  /** Per distinct context: [start0, end0, start1, end1, ...] for its tokens. */
  private readonly ctxSpans: Int32Array[];
  private readonly padId: number;
  /** Where token type 1 starts in each window: the context, or nowhere for tokenizers whose pairs have one type (RoBERTa). */
  private readonly typeStart: Int32Array;

  constructor(examples: readonly QAExample[], tokenizer: PreTrainedTokenizer, opts: QADatasetOptions = {}) {
    if (!Array.isArray(examples as unknown)) throw invalidArg('examples', 'an array of QA examples', examples);
    v.options('opts', opts, ['maxLength', 'docStride', 'maxQuestionLength']);
    this.maxLength = v.integer('opts.maxLength', opts.maxLength ?? 384, { min: 8 });
    this.docStride = v.integer('opts.docStride', opts.docStride ?? 128, { min: 0 });
    this.maxQuestionLength = v.positiveInteger('opts.maxQuestionLength', opts.maxQuestionLength ?? 64);
    this.examples = examples;
    this.padId = tokenizer.padId;
    this.version2 = examples.some((e) => e.isImpossible);
    this.featureStart = new Int32Array(examples.length + 1);

    const exIdx: number[] = [];
    const cStart: number[] = [];
    const cEnd: number[] = [];
    const sPos: number[] = [];
    const ePos: number[] = [];
    const ctxIds: number[] = [];
    const ctxOff: number[] = [];
    const rows: number[][] = [];
    this.ctxSpans = [];
    const ctxIndex = new Map<string, number>();
    let total = 0;

    for (let e = 0; e < examples.length; e++) {
      const ex = examples[e];
      if (!ex || typeof ex.question !== 'string' || typeof ex.context !== 'string' || !Array.isArray(ex.answers)) {
        throw invalidArg(`examples[${e}]`, 'a QA example {id, question, context, answers, isImpossible}', ex);
      }
      this.featureStart[e] = exIdx.length;
      const windows = tokenizer.encodeQuestionContext(ex.question, ex.context, {
        maxLength: this.maxLength,
        docStride: this.docStride,
        maxQuestionLength: this.maxQuestionLength,
      });
      let cid = ctxIndex.get(ex.context);
      if (cid === undefined) {
        const last = windows[windows.length - 1];
        const nTok = last.contextTokenOffset + (last.contextEnd - last.contextStart);
        const spans = new Int32Array(2 * nTok);
        for (const w of windows) {
          for (let p = w.contextStart; p < w.contextEnd; p++) {
            const o = w.offsets[p] as [number, number];
            const t = w.contextTokenOffset + (p - w.contextStart);
            spans[2 * t] = o[0];
            spans[2 * t + 1] = o[1];
          }
        }
        cid = this.ctxSpans.length;
        this.ctxSpans.push(spans);
        ctxIndex.set(ex.context, cid);
      }
      const answer = !ex.isImpossible && ex.answers.length > 0 ? ex.answers[0] : null;
      for (const w of windows) {
        let sp = 0;
        let ep = 0;
        if (answer && w.contextEnd > w.contextStart) {
          const startChar = answer.start;
          const endChar = answer.start + answer.text.length;
          const off = w.offsets;
          const first = off[w.contextStart] as [number, number];
          const lastTok = off[w.contextEnd - 1] as [number, number];
          if (first[0] <= startChar && lastTok[1] >= endChar) {
            let ts = w.contextStart;
            while (ts < w.contextEnd && (off[ts] as [number, number])[0] <= startChar) ts++;
            sp = ts - 1;
            let te = w.contextEnd - 1;
            while (te >= w.contextStart && (off[te] as [number, number])[1] >= endChar) te--;
            ep = te + 1;
            if (ep < sp) ep = sp;
          }
        }
        exIdx.push(e);
        cStart.push(w.contextStart);
        cEnd.push(w.contextEnd);
        sPos.push(sp);
        ePos.push(ep);
        ctxIds.push(cid);
        ctxOff.push(w.contextTokenOffset);
        rows.push(w.inputIds);
        total += w.inputIds.length;
      }
    }
    this.featureStart[examples.length] = exIdx.length;
    const n = exIdx.length;
    this.length = n;
    this.exampleIndex = Int32Array.from(exIdx);
    this.contextStart = Int32Array.from(cStart);
    this.typeStart = tokenizer.secondTypeId === 1 ? this.contextStart : new Int32Array(this.contextStart.length).fill(this.maxLength + 1);
    this.contextEnd = Int32Array.from(cEnd);
    this.startPositions = Int32Array.from(sPos);
    this.endPositions = Int32Array.from(ePos);
    this.ctxId = Int32Array.from(ctxIds);
    this.ctxTokenOffset = Int32Array.from(ctxOff);
    this.ids = makeIdStore(total, tokenizer.vocabSize);
    this.starts = new Int32Array(n + 1);
    let pos = 0;
    for (let f = 0; f < n; f++) {
      this.starts[f] = pos;
      this.ids.set(rows[f], pos);
      pos += rows[f].length;
    }
    this.starts[n] = pos;
  }

  get numExamples(): number {
    return this.examples.length;
  }

  /** Token count of window f. */
  lengthOf(f: number): number {
    return this.starts[f + 1] - this.starts[f];
  }

  /** [start, end) character span of token `pos` of window f, or null outside its context. */
  offsetAt(f: number, pos: number): [number, number] | null {
    if (pos < this.contextStart[f] || pos >= this.contextEnd[f]) return null;
    const t = this.ctxTokenOffset[f] + (pos - this.contextStart[f]);
    const spans = this.ctxSpans[this.ctxId[f]];
    return [spans[2 * t], spans[2 * t + 1]];
  }

  /** Per-position offsets of window f (null for question and special tokens). */
  offsets(f: number): Array<[number, number] | null> {
    const len = this.lengthOf(f);
    const out: Array<[number, number] | null> = new Array<[number, number] | null>(len);
    for (let p = 0; p < len; p++) out[p] = this.offsetAt(f, p);
    return out;
  }

  /** Everything about window f. */
  feature(f: number): QAFeature {
    if (!Number.isInteger(f) || f < 0 || f >= this.length) throw invalidArg('f', `a feature index 0..${this.length - 1}`, f);
    const inputIds = Array.from(this.ids.subarray(this.starts[f], this.starts[f + 1]));
    return {
      exampleIndex: this.exampleIndex[f],
      inputIds,
      tokenTypeIds: inputIds.map((_, k) => (k >= this.typeStart[f] ? 1 : 0)),
      contextStart: this.contextStart[f],
      contextEnd: this.contextEnd[f],
      offsets: this.offsets(f),
      startPosition: this.startPositions[f],
      endPosition: this.endPositions[f],
    };
  }

  numBatches(batchSize: number, dropLast = false): number {
    return numBatchesOf(this.length, batchSize, dropLast);
  }

  /** A short hash of the set (sizes and a sample of windows: ids, context and answer positions); see TrainData. */
  fingerprint(): string {
    const { ids, starts } = this;
    return sampleFingerprint(this.length, `qa:${this.length}:${starts[this.length]}:${this.maxLength}:${this.docStride}`, (f) => [
      ids.subarray(starts[f], starts[f + 1]),
      this.contextStart.subarray(f, f + 1),
      this.startPositions.subarray(f, f + 1),
      this.endPositions.subarray(f, f + 1),
    ]);
  }

  /** Batches of windows padded to their longest, with start/end positions (see the class comment). */
  *batches(batchSize: number, opts: BatchOptions = {}): Generator<QABatch> {
    for (const rows of batchRows(this.length, batchSize, opts)) {
      const packed = packRows(this.ids, this.starts, rows, this.typeStart, this.padId);
      const startPositions = new Int32Array(rows.length);
      const endPositions = new Int32Array(rows.length);
      for (let r = 0; r < rows.length; r++) {
        startPositions[r] = this.startPositions[rows[r]];
        endPositions[r] = this.endPositions[rows[r]];
      }
      yield { ...packed, batchSize: rows.length, startPositions, endPositions, featureIndices: rows };
    }
  }

  /** A collector for per-batch logits, laid out [features, maxLength] for `postprocess`. */
  logitCollector(): QALogitCollector {
    return new QALogitCollector(this.length, this.maxLength);
  }

  /**
   * Predictions `{id → answer text}` from start/end logits laid out [features, seqLen] (row f = window f; only
   * its first `lengthOf(f)` positions are read), the HF `postprocess_qa_predictions` way: per window, the top
   * `nBest` start and end positions; spans inside the context with start <= end and at most `maxAnswerLength`
   * tokens score start + end logit; the best over all windows of an example wins. With `version2`, the null
   * score is the smallest [CLS] start + end over the example's windows, and '' is predicted when it beats the
   * best span by more than `nullScoreDiffThreshold`. An example without any valid span gets '' (HF: "empty").
   */
  postprocess(startLogits: ArrayLike<number>, endLogits: ArrayLike<number>, seqLen: number, opts: PostprocessOptions = {}): Record<string, string> {
    v.positiveInteger('seqLen', seqLen);
    const need = this.length * seqLen;
    if (!startLogits || startLogits.length < need) throw invalidArg('startLogits', `at least features*seqLen = ${need} values`, startLogits);
    if (!endLogits || endLogits.length < need) throw invalidArg('endLogits', `at least features*seqLen = ${need} values`, endLogits);
    v.options('opts', opts, ['nBest', 'maxAnswerLength', 'version2', 'nullScoreDiffThreshold']);
    const nBest = v.positiveInteger('opts.nBest', opts.nBest ?? 20);
    const maxAnswerLength = v.positiveInteger('opts.maxAnswerLength', opts.maxAnswerLength ?? 30);
    if (opts.version2 !== undefined) v.boolean('opts.version2', opts.version2);
    if (opts.nullScoreDiffThreshold !== undefined) v.number('opts.nullScoreDiffThreshold', opts.nullScoreDiffThreshold);
    const version2 = opts.version2 ?? this.version2;
    const threshold = opts.nullScoreDiffThreshold ?? 0;
    const predictions: Record<string, string> = {};
    const topK = (logits: ArrayLike<number>, base: number, len: number): number[] => {
      const idx = Array.from({ length: len }, (_, k) => k);
      idx.sort((a, b) => logits[base + b] - logits[base + a] || a - b);
      return idx.slice(0, nBest);
    };
    for (let e = 0; e < this.examples.length; e++) {
      const ex = this.examples[e];
      let bestScore = -Infinity;
      let bestText: string | null = null;
      let nullScore = Infinity;
      for (let f = this.featureStart[e]; f < this.featureStart[e + 1]; f++) {
        const len = this.lengthOf(f);
        if (len > seqLen) throw invalidArg('seqLen', `at least the window length ${len}`, seqLen);
        const base = f * seqLen;
        const featureNull = startLogits[base] + endLogits[base];
        if (featureNull < nullScore) nullScore = featureNull;
        const cs = this.contextStart[f];
        const ce = this.contextEnd[f];
        const starts = topK(startLogits, base, len);
        const ends = topK(endLogits, base, len);
        for (const s of starts) {
          if (s < cs || s >= ce) continue;
          for (const en of ends) {
            if (en < cs || en >= ce || en < s || en - s + 1 > maxAnswerLength) continue;
            const score = startLogits[base + s] + endLogits[base + en];
            if (score > bestScore) {
              const a = this.offsetAt(f, s) as [number, number];
              const b = this.offsetAt(f, en) as [number, number];
              const text = ex.context.slice(a[0], b[1]);
              if (text.length === 0) continue;
              bestScore = score;
              bestText = text;
            }
          }
        }
      }
      if (bestText === null) predictions[ex.id] = '';
      else if (version2 && nullScore - bestScore > threshold) predictions[ex.id] = '';
      else predictions[ex.id] = bestText;
    }
    return predictions;
  }
}
