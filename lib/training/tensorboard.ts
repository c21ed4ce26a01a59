/**
 * TensorBoard event files, so that `tensorboard --logdir <dir>` plots a run's curves. The npm registry had no
 * TensorBoard event writer when this was written (@tensorflow/tfjs-node has one, behind the native TensorFlow
 * library its install downloads), and the format is small: a file of TFRecords (length, masked CRC32C of the length, data, masked CRC32C of the data), each an
 * `Event` protobuf (tensorflow/core/util/event.proto): the first says `file_version: "brain.Event:2"`, the
 * others carry a step, a wall time and a Summary of scalar values (summary.proto: tag, simple_value).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { appendDurableSync, ensureDir } from '../runtime/atomic';
import { ProtoWriter } from '../runtime/protobuf';
import type { LogEntry } from './trainer-options';

// Field numbers of event.proto's Event and summary.proto's Summary and Summary.Value.
const EVENT = { wallTime: 1, step: 2, fileVersion: 3, summary: 5 } as const;
const SUMMARY_VALUE = 1;
const VALUE = { tag: 1, simpleValue: 2 } as const;

/** CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum TFRecord uses; a table of 256 words. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits plus a constant (a CRC of data holding CRCs stays strong). */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 length, uint32 masked CRC of those 8 bytes, the data, uint32 masked CRC of the data (little-endian). */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

function eventBytes(wallTime: number, step: number, fill: (e: ProtoWriter) => void): Uint8Array {
  const e = new ProtoWriter().double(EVENT.wallTime, wallTime).int(EVENT.step, step);
  fill(e);
  return new Uint8Array(Buffer.concat(e.finish()));
}

let fileCount = 0;

/**
 * Appends scalar events to one new events file in `dir` (created if needed). Each write is one durable append
 * (appendDurableSync: fsync, a failed append cut back), so a crash loses at most the last event, never the file.
 */
export class TensorBoardWriter {
  /** The events file, named as TensorFlow names them (tensorboard finds `*tfevents*`), unique in this process. */
  readonly file: string;

  constructor(dir: string) {
    ensureDir(dir);
    this.file = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.${fileCount++}`);
    appendDurableSync(this.file, tfRecord(eventBytes(Date.now() / 1000, 0, (e) => e.string(EVENT.fileVersion, 'brain.Event:2'))));
  }

  /** One event at `step` holding every finite value of `scalars` (tag -> value); nothing when there is none. */
  scalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    const values = Object.entries(scalars).filter(([, x]) => Number.isFinite(x));
    if (values.length === 0) return;
    const data = eventBytes(wallTime, step, (e) => {
      const summary = new ProtoWriter();
      for (const [tag, x] of values) summary.message(SUMMARY_VALUE, new ProtoWriter().string(VALUE.tag, tag).float(VALUE.simpleValue, x));
      e.message(EVENT.summary, summary);
    });
    appendDurableSync(this.file, tfRecord(data));
  }
}

/** TensorBoard's groups, as transformers' TensorBoardCallback names them: train/loss, eval/accuracy... */
const GROUP: Partial<Record<LogEntry['type'], string>> = { step: 'train', eval: 'eval' };
/** Log fields that are no curve: the x axis itself, and wall-clock time (TensorBoard has its own). */
const NOT_PLOTTED = new Set(['type', 'step', 'elapsedSec']);

/**
 * The scalars of a trainer log entry: its numbers as `<group>/<name>`, and each value of a number map (the
 * masks' density per group) as `<group>/<name>/<key>`. Checkpoints and stages are no curve: none.
 */
export function logEntryScalars(entry: LogEntry): Record<string, number> {
  const group = GROUP[entry.type];
  const out: Record<string, number> = {};
  if (!group) return out;
  for (const [k, x] of Object.entries(entry)) {
    if (NOT_PLOTTED.has(k)) continue;
    if (typeof x === 'number') out[`${group}/${k}`] = x;
    else if (x && typeof x === 'object')
      for (const [sub, y] of Object.entries(x)) if (typeof y === 'number') out[`${group}/${k}/${sub}`] = y;
  }
  return out;
}
