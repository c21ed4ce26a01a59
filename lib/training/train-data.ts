/**
 * TrainData: what the trainer needs of a training set (lib/data's datasets are ones), and the short hash of it
 * that a checkpoint keeps so that a resume on other data is refused.
 */
import { createHash } from 'node:crypto';
import type { ForwardBatch } from '../model/model';

/** What the trainer needs of a training set: a size and deterministic batches per (seed, epoch). */
export interface TrainData {
  readonly length: number;
  /**
   * True when batches() honours `shard` (yields only that rank's rows of each global batch, the same number of
   * batches on every rank). Otherwise a data-parallel trainer takes its rows from each global batch itself.
   */
  readonly shardable?: boolean;
  batches(
    batchSize: number,
    options: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean; shard?: { rank: number; worldSize: number } },
  ): Iterable<ForwardBatch>;
  /**
   * A short hash of the data (cheap: a sample of rows), stored in checkpoints so that a resume on other data
   * is refused. Without it the trainer hashes the first unshuffled batch.
   */
  fingerprint?(): string;
}

/** A short hash of the training data: its own fingerprint(), else its first unshuffled batch. */
export function dataFingerprint(train: TrainData): { length: number; hash: string } {
  if (train.fingerprint) return { length: train.length, hash: String(train.fingerprint()) };
  const h = createHash('sha256');
  for (const b of train.batches(Math.min(16, train.length), { shuffle: false })) {
    for (const a of [b.inputIds, b.attentionMask, b.tokenTypeIds, b.labels])
      if (a && ArrayBuffer.isView(a)) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    h.update(`${b.batchSize}x${b.seqLen}`);
    break;
  }
  return { length: train.length, hash: h.digest('hex').slice(0, 16) };
}
