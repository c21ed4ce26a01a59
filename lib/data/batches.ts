/**
 * What both pre-tokenized datasets share: batch options and batch types, token-id storage, the seeded batch
 * order, padding rows into a batch, and the fingerprint of a set.
 */
import { createHash } from 'crypto';
import type { ForwardBatch } from '../model/model';
import * as v from '../runtime/validate';
import { permutation } from './rng';

export interface BatchOptions {
  /** Shuffle with the seeded permutation for (seed, epoch). Default false (file order). */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Default 0. Each epoch gets a different permutation. */
  epoch?: number;
  /** Drop the last, smaller batch. Default false. */
  dropLast?: boolean;
  /**
   * Data-parallel: yield only this rank's rows of each global batch (positions rank, rank + W, ... within it;
   * the union over ranks is the global batch). Every rank gets the same number of batches; a rank with no rows
   * in a short last batch gets one with batchSize 0.
   */
  shard?: { rank: number; worldSize: number };
}

export interface ClassificationBatch extends ForwardBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  labels: Int32Array;
  /** Dataset indices of the rows. */
  indices: Int32Array;
}

export interface QABatch extends ForwardBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  /** Token index of the answer start in each window (0 = [CLS]: no answer in this window). */
  startPositions: Int32Array;
  endPositions: Int32Array;
  /** Dataset feature (window) indices of the rows. */
  featureIndices: Int32Array;
}

export type IdStore = Uint16Array | Int32Array;

export function makeIdStore(n: number, vocabSize: number): IdStore {
  return vocabSize <= 65536 ? new Uint16Array(n) : new Int32Array(n);
}

function batchOrder(n: number, batchSize: number, opts: BatchOptions): Int32Array {
  v.positiveInteger('batchSize', batchSize);
  v.options('opts', opts, ['shuffle', 'seed', 'epoch', 'dropLast', 'shard']);
  const seed = v.integer('opts.seed', opts.seed ?? 0);
  const epoch = v.integer('opts.epoch', opts.epoch ?? 0, { min: 0 });
  if (opts.shuffle !== undefined) v.boolean('opts.shuffle', opts.shuffle);
  if (opts.dropLast !== undefined) v.boolean('opts.dropLast', opts.dropLast);
  if (opts.shuffle) return permutation(n, seed, epoch);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

export function numBatchesOf(n: number, batchSize: number, dropLast: boolean): number {
  v.positiveInteger('batchSize', batchSize);
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The dataset indices of each batch, in the (seeded) order of `opts`. */
export function* batchRows(n: number, batchSize: number, opts: BatchOptions): Generator<Int32Array> {
  const order = batchOrder(n, batchSize, opts);
  const count = numBatchesOf(n, batchSize, opts.dropLast ?? false);
  const shard = opts.shard;
  if (shard !== undefined) {
    v.options('opts.shard', shard, ['rank', 'worldSize']);
    v.positiveInteger('opts.shard.worldSize', shard.worldSize);
    v.integer('opts.shard.rank', shard.rank, { min: 0, max: shard.worldSize - 1 });
  }
  for (let k = 0; k < count; k++) {
    const rows = order.slice(k * batchSize, Math.min(n, (k + 1) * batchSize));
    yield shard ? rows.filter((_, j) => j % shard.worldSize === shard.rank) : rows;
  }
}

/**
 * A short hash of a pre-tokenized set (what the trainer stores in checkpoints to refuse a resume on other
 * data): `head` (sizes) and up to 256 rows spread evenly over the set. Cheap at any size, and another file,
 * another limit, other labels or another tokenizer all change it.
 */
export function sampleFingerprint(n: number, head: string, row: (i: number) => ArrayBufferView[]): string {
  const h = createHash('sha256').update(head);
  const m = Math.min(n, 256);
  for (let k = 0; k < m; k++)
    for (const a of row(Math.floor((k * n) / m))) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 16);
}

/** Packs rows (id slices of a store) into padded row-major Int32Arrays. */
export function packRows(
  store: IdStore,
  starts: Int32Array,
  rows: Int32Array,
  typeStart: Int32Array,
  padId: number,
): { inputIds: Int32Array; attentionMask: Int32Array; tokenTypeIds: Int32Array; seqLen: number } {
  let seqLen = 0;
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r];
    seqLen = Math.max(seqLen, starts[i + 1] - starts[i]);
  }
  const b = rows.length;
  const inputIds = new Int32Array(b * seqLen);
  const attentionMask = new Int32Array(b * seqLen);
  const tokenTypeIds = new Int32Array(b * seqLen);
  if (padId !== 0) inputIds.fill(padId);
  for (let r = 0; r < b; r++) {
    const i = rows[r];
    const s = starts[i];
    const len = starts[i + 1] - s;
    const base = r * seqLen;
    inputIds.set(store.subarray(s, s + len), base);
    attentionMask.fill(1, base, base + len);
    if (typeStart[i] < len) tokenTypeIds.fill(1, base + typeStart[i], base + len);
  }
  return { inputIds, attentionMask, tokenTypeIds, seqLen };
}
