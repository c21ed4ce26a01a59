/**
 * TensorBoard event files (lib/training/tensorboard.ts) and the trainer's progress hook, read back with a
 * decoder written here from the format's documentation, independent of the writer: TFRecord frames (both
 * masked CRC-32C computed bit by bit, not from the writer's table), Event and Summary protobufs decoded by
 * wire type. Then a fine-pruning run on the toy task writes the curves TensorBoard shows (loss, lambda,
 * threshold, density, accuracy) and calls onProgress after every step. When python3 has tensorboard, its
 * own reader loads the same file; otherwise that test is skipped, saying so.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { logEntryScalars, TensorBoardWriter } from '../../lib/training/tensorboard';
import { SparseTrainer, TrainProgress } from '../../lib/training/trainer';
import { skipped, tempDir } from '../helpers';
import { TINY, ToyData } from '../toy';

/** CRC-32C bit by bit (RFC 3720's definition), and TFRecord's mask. */
function crc32cBitwise(data: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}
const mask = (c: number) => ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;

interface Field {
  field: number;
  wire: number;
  value: bigint | Uint8Array | number;
}

/** Decodes one protobuf message into its fields (varint, 64-bit, length-delimited, 32-bit). */
function fields(buf: Uint8Array): Field[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1) (out.push({ field, wire, value: view.getFloat64(i, true) }), (i += 8));
    else if (wire === 5) (out.push({ field, wire, value: view.getFloat32(i, true) }), (i += 4));
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, wire, value: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`wire type ${wire} at ${i}`);
  }
  return out;
}

interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: Record<string, number>;
}

/** Every record of an events file, with both CRCs checked. */
function readEvents(file: string): { events: DecodedEvent[]; badCrc: number } {
  const buf = new Uint8Array(readFileSync(file));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const events: DecodedEvent[] = [];
  let badCrc = 0;
  for (let i = 0; i < buf.length; ) {
    const len = Number(view.getBigUint64(i, true));
    if (view.getUint32(i + 8, true) !== mask(crc32cBitwise(buf.subarray(i, i + 8)))) badCrc++;
    const data = buf.subarray(i + 12, i + 12 + len);
    if (view.getUint32(i + 12 + len, true) !== mask(crc32cBitwise(data))) badCrc++;
    i += 12 + len + 4;
    const e: DecodedEvent = { wallTime: NaN, step: NaN, values: {} };
    for (const f of fields(data)) {
      if (f.field === 1) e.wallTime = f.value as number;
      else if (f.field === 2) e.step = Number(f.value);
      else if (f.field === 3) e.fileVersion = Buffer.from(f.value as Uint8Array).toString('utf8');
      else if (f.field === 5)
        for (const v of fields(f.value as Uint8Array).filter((x) => x.field === 1)) {
          const vf = fields(v.value as Uint8Array);
          const tag = Buffer.from(vf.find((x) => x.field === 1)!.value as Uint8Array).toString('utf8');
          e.values[tag] = vf.find((x) => x.field === 2 && x.wire === 5)!.value as number;
        }
    }
    events.push(e);
  }
  return { events, badCrc };
}

test('CRC-32C of the standard check string is 0xe3069283 (the bitwise decoder used below is right)', (t) => {
  t.is(crc32cBitwise(new Uint8Array(Buffer.from('123456789'))), 0xe3069283);
});

test('the writer frames a file_version event then scalar events that an independent decoder reads back', (t) => {
  const tmp = tempDir();
  try {
    const w = new TensorBoardWriter(join(tmp.path, 'runs'));
    t.regex(w.file, /events\.out\.tfevents\.\d+\./);
    w.scalars(10, { 'train/loss': 0.75, 'train/density/attention': 0.5, 'eval/nan': NaN }, 1700000000.25);
    w.scalars(20, { 'train/loss': 0.5 });
    w.scalars(30, { skipped: Infinity }); // nothing finite: no event
    const { events, badCrc } = readEvents(w.file);
    t.is(badCrc, 0);
    t.is(events.length, 3);
    t.is(events[0].fileVersion, 'brain.Event:2');
    t.true(Math.abs(events[0].wallTime - Date.now() / 1000) < 60);
    t.deepEqual(events[1], { wallTime: 1700000000.25, step: 10, values: { 'train/loss': 0.75, 'train/density/attention': 0.5 } });
    t.is(events[2].step, 20);
    t.deepEqual(events[2].values, { 'train/loss': 0.5 });
  } finally {
    tmp.cleanup();
  }
});

test('log entries become train/* and eval/* scalars; checkpoints and stages none', (t) => {
  t.deepEqual(logEntryScalars({ type: 'step', step: 10, epoch: 0.5, loss: 1.5, threshold: 0.3, lambda: 2, elapsedSec: 3, density: { attention: 0.4, dense: 0.6 } }), {
    'train/epoch': 0.5,
    'train/loss': 1.5,
    'train/threshold': 0.3,
    'train/lambda': 2,
    'train/density/attention': 0.4,
    'train/density/dense': 0.6,
  });
  t.deepEqual(logEntryScalars({ type: 'eval', step: 16, epoch: 1, accuracy: 90 }), { 'eval/epoch': 1, 'eval/accuracy': 90 });
  t.deepEqual(logEntryScalars({ type: 'checkpoint', step: 16, epoch: 1, dir: '/x' }), {});
});

const python = spawnSync('python3', ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { encoding: 'utf8' });
// Reported as skipped, saying why, when python3 or its tensorboard package is missing.
const pyTest = python.status === 0 ? test.serial : skipped('python3 has no tensorboard package: its reader is not tried (the decoder here is)').serial;

let trainedRun: { dir: string; cleanup(): void } | undefined;

test.serial('a fine-pruning run writes loss, lambda, threshold, density and accuracy curves, and calls onProgress after every step', async (t) => {
  const tmp = tempDir();
  trainedRun = { dir: join(tmp.path, 'runs'), cleanup: tmp.cleanup };
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  const progress: TrainProgress[] = [];
  const evalSet = new ToyData(32, 2);
  const r = await new SparseTrainer({
    model,
    pruning: PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }),
    train: new ToyData(64, 1),
    evaluate: async () => ({ accuracy: evalSet.length }), // a known figure: the curve must carry it
    epochs: 2,
    batchSize: 16,
    logEvery: 2,
    handleSigint: false,
    tensorboardDir: trainedRun.dir,
    onProgress: (p) => progress.push(p),
  }).train();
  t.is(r.steps, 8);
  // onProgress: once per step, in order, with the schedule's length, epochs done, a loss, a rate and the masks' state.
  t.deepEqual(progress.map((p) => p.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.true(progress.every((p) => p.totalSteps === 8 && Number.isFinite(p.loss) && p.rate > 0 && p.threshold !== undefined && p.density?.attention !== undefined));
  t.deepEqual(progress.map((p) => p.epoch), [0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]);

  const files = readdirSync(trainedRun.dir).filter((f) => f.includes('tfevents'));
  t.is(files.length, 1);
  const { events, badCrc } = readEvents(join(trainedRun.dir, files[0]));
  t.is(badCrc, 0);
  t.is(events[0].fileVersion, 'brain.Event:2');
  const series = (tag: string) => events.filter((e) => tag in e.values).map((e) => [e.step, e.values[tag]]);
  t.deepEqual(series('train/loss').map(([s]) => s), [2, 4, 6, 8]);
  for (const tag of ['train/loss', 'train/lambda', 'train/threshold', 'train/lr', 'train/density/attention', 'train/density/dense'])
    t.is(series(tag).length, 4, tag);
  // The threshold moves with the cubic schedule, step after step (a curve, not a constant).
  const thresholds = series('train/threshold').map(([, x]) => x);
  t.true(thresholds.every((x, i) => i === 0 || x !== thresholds[i - 1]), `threshold ${thresholds.join(' ')}`);
  t.deepEqual(series('eval/accuracy'), [
    [4, 32],
    [8, 32],
  ]);
  t.is(series('eval/density/attention').length, 2);
  // The step's figures match what the progress hook saw at the same step (float32 in the file).
  t.true(Math.abs(series('train/loss')[0][1] - progress[1].loss) < 1e-5);
  model.dispose();
  r.model.dispose();
});

pyTest('tensorboard (python) reads the same curves', (t) => {
  if (!trainedRun) return t.fail('the training test did not run');
  const py = `
import sys, json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
a = EventAccumulator(sys.argv[1]); a.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in a.Scalars(tag)] for tag in a.Tags()['scalars']}))`;
  const r = spawnSync('python3', ['-c', py, trainedRun.dir], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const tags = JSON.parse(r.stdout);
  t.is(tags['train/loss'].length, 4);
  t.deepEqual(tags['eval/accuracy'], [
    [4, 32],
    [8, 32],
  ]);
});

test.after.always(() => trainedRun?.cleanup());
