/**
 * Hostile and broken checkpoints: every case is a JS Error with a code whose message names the file and
 * the tensor; the process stays alive and keeps working afterwards.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { native, TensorData } from '../../lib/runtime/native';
import { shared, tempDir, withShared } from '../helpers';

interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

function toRaw(t: TensorData): RawTensor {
  const d = t.data;
  return { dtype: t.dtype, shape: t.shape, bytes: Buffer.from(d.buffer, d.byteOffset, d.byteLength) };
}

/** Writes a safetensors file; `mutate` may edit the header object before it is serialised. */
function writeSafetensors(path: string, tensors: Record<string, RawTensor>, mutate?: (h: Record<string, any>) => void, tail?: Buffer): void {
  const header: Record<string, any> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    parts.push(t.bytes);
    off += t.bytes.length;
  }
  mutate?.(header);
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, ...parts, ...(tail ? [tail] : [])]));
}

async function fixtureTensors(dir: string): Promise<Record<string, RawTensor>> {
  const { tensors } = await native().readSafetensors(join(dir, 'model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, toRaw(v)]));
}

async function expectLoadError(t: any, dir: string, code: string, ...mustMention: string[]): Promise<void> {
  const err: any = await t.throwsAsync(BertModel.fromPretrained(dir));
  t.is(err.code, code, err.message);
  for (const m of mustMention) t.true(err.message.includes(m), `message "${err.message}" should mention ${m}`);
  t.log(`${code}: ${err.message}`);
}

const Q = 'bert.encoder.layer.0.attention.self.query.weight';

const cases: Array<[string, string, (dir: string, ts: Record<string, RawTensor>, src: string) => void, string[]]> = [
  [
    'header length beyond the file',
    'E_BAD_CHECKPOINT',
    (dir) => {
      const b = Buffer.alloc(64);
      b.writeBigUInt64LE(1n << 40n);
      writeFileSync(join(dir, 'model.safetensors'), b);
    },
    ['model.safetensors', 'header length'],
  ],
  ['file shorter than the length prefix', 'E_BAD_CHECKPOINT', (dir) => writeFileSync(join(dir, 'model.safetensors'), Buffer.from([1, 2, 3])), ['model.safetensors']],
  [
    'header is not JSON',
    'E_BAD_CHECKPOINT',
    (dir) => {
      const h = Buffer.from('{"a": [1, 2', 'utf8');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, h]));
    },
    ['model.safetensors', 'JSON'],
  ],
  ['offsets beyond the buffer', 'E_BAD_CHECKPOINT', (dir, ts) => writeSafetensors(join(dir, 'model.safetensors'), ts, (h) => (h[Q].data_offsets[1] += 1 << 20)), [Q, 'beyond']],
  [
    'overlapping tensors',
    'E_BAD_CHECKPOINT',
    (dir, ts) =>
      writeSafetensors(join(dir, 'model.safetensors'), ts, (h) => {
        // Point the key weight at the query weight's bytes (same size): two tensors aliasing one range.
        h['bert.encoder.layer.0.attention.self.key.weight'].data_offsets = [...h[Q].data_offsets];
      }),
    ['overlaps'],
  ],
  ['hole in the buffer', 'E_BAD_CHECKPOINT', (dir, ts) => writeSafetensors(join(dir, 'model.safetensors'), ts, undefined, Buffer.alloc(16)), ['model.safetensors', 'cover']],
  ['unknown dtype', 'E_BAD_CHECKPOINT', (dir, ts) => writeSafetensors(join(dir, 'model.safetensors'), ts, (h) => (h[Q].dtype = 'F13')), [Q, 'F13']],
  ['byte size not shape x dtype', 'E_BAD_CHECKPOINT', (dir, ts) => writeSafetensors(join(dir, 'model.safetensors'), ts, (h) => (h[Q].dtype = 'F16')), [Q, 'bytes']],
  ['negative shape', 'E_BAD_CHECKPOINT', (dir, ts) => writeSafetensors(join(dir, 'model.safetensors'), ts, (h) => (h[Q].shape = [-32, -32])), [Q, 'shape']],
  [
    'missing tensor',
    'E_MISSING_TENSOR',
    (dir, ts) => {
      delete ts['bert.encoder.layer.1.output.dense.bias'];
      writeSafetensors(join(dir, 'model.safetensors'), ts);
    },
    ['model.safetensors', 'bert.encoder.layer.1.output.dense.bias'],
  ],
  [
    'unexpected tensor',
    'E_UNEXPECTED_TENSOR',
    (dir, ts) => {
      ts['bert.encoder.layer.0.attention.self.rotary.weight'] = { dtype: 'F32', shape: [2], bytes: Buffer.alloc(8) };
      writeSafetensors(join(dir, 'model.safetensors'), ts);
    },
    ['bert.encoder.layer.0.attention.self.rotary.weight'],
  ],
  [
    'tensor shape disagrees with the config',
    'E_SHAPE',
    (dir, ts) => {
      const b = ts['bert.pooler.dense.weight'];
      ts['bert.pooler.dense.weight'] = { dtype: 'F32', shape: [16, 64], bytes: b.bytes };
      writeSafetensors(join(dir, 'model.safetensors'), ts);
    },
    ['bert.pooler.dense.weight', '[16, 64]', '[32, 32]'],
  ],
  [
    'head count disagrees with the config',
    'E_SHAPE',
    (dir) => {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      c.pruned_heads = { '0': [1] };
      writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    },
    [Q, 'heads'],
  ],
  [
    'NaN in a weight',
    'E_BAD_CHECKPOINT',
    (dir, ts) => {
      const w = ts['bert.encoder.layer.1.intermediate.dense.weight'];
      const f = new Float32Array(w.bytes.buffer.slice(w.bytes.byteOffset, w.bytes.byteOffset + w.bytes.byteLength));
      f[5] = Number.NaN;
      f[9] = Number.POSITIVE_INFINITY;
      ts['bert.encoder.layer.1.intermediate.dense.weight'] = { ...w, bytes: Buffer.from(f.buffer) };
      writeSafetensors(join(dir, 'model.safetensors'), ts);
    },
    ['bert.encoder.layer.1.intermediate.dense.weight', '2 NaN or infinite'],
  ],
  ['config.json is not JSON', 'E_BAD_CONFIG', (dir) => writeFileSync(join(dir, 'config.json'), '{"hidden_size": 32,'), ['config.json', 'JSON']],
  [
    'config field of the wrong type',
    'E_BAD_CONFIG',
    (dir) => {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      c.num_hidden_layers = 'two';
      writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    },
    ['config.json', 'num_hidden_layers'],
  ],
  [
    'hidden size not a multiple of the heads',
    'E_BAD_CONFIG',
    (dir) => {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      c.num_attention_heads = 5;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    },
    ['num_attention_heads'],
  ],
  [
    'sharded index naming a missing shard',
    'E_FILE_NOT_FOUND',
    (dir, ts) => {
      rmSync(join(dir, 'model.safetensors'));
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: Object.fromEntries(Object.keys(ts).map((k) => [k, 'model-00001-of-00001.safetensors'])) }));
    },
    ['model-00001-of-00001.safetensors'],
  ],
  [
    'truncated pytorch_model.bin',
    'E_BAD_CHECKPOINT',
    (dir, _ts, src) => {
      rmSync(join(dir, 'model.safetensors'));
      const bin = readFileSync(join(src, '..', 'bert-tiny-cls-bin', 'pytorch_model.bin'));
      writeFileSync(join(dir, 'pytorch_model.bin'), bin.subarray(0, Math.floor(bin.length / 2)));
    },
    ['pytorch_model.bin'],
  ],
];

for (const [title, code, mutate, mentions] of cases) {
  withShared('fixtures/bert-tiny-cls')(`refuses: ${title} (${code})`, async (t) => {
    const src = shared('fixtures/bert-tiny-cls');
    const tmp = tempDir();
    const dir = tmp.path;
    copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
    try {
      mutate(dir, await fixtureTensors(src), src);
      await expectLoadError(t, dir, code, ...mentions);
    } finally {
      tmp.cleanup();
    }
  });
}

withShared('fixtures/bert-tiny-cls')('missing files are named: no directory, no config.json, no weights', async (t) => {
  const src = shared('fixtures/bert-tiny-cls');
  const tmp = tempDir();
  try {
    let err: any = await t.throwsAsync(BertModel.fromPretrained(join(tmp.path, 'nope')));
    t.is(err.code, 'E_FILE_NOT_FOUND');
    t.true(err.message.includes('nope'));
    err = await t.throwsAsync(BertModel.fromPretrained(tmp.path));
    t.is(err.code, 'E_FILE_NOT_FOUND');
    t.true(err.message.includes('config.json'), err.message);
    copyFileSync(join(src, 'config.json'), join(tmp.path, 'config.json'));
    err = await t.throwsAsync(BertModel.fromPretrained(tmp.path));
    t.is(err.code, 'E_FILE_NOT_FOUND');
    t.true(err.message.includes('model.safetensors') && err.message.includes('pytorch_model.bin'), err.message);
  } finally {
    tmp.cleanup();
  }
});

withShared('fixtures/bert-tiny-cls')('the process is alive and the good fixture still loads after every bad file', async (t) => {
  const src = shared('fixtures/bert-tiny-cls');
  const m = await BertModel.fromPretrained(src);
  const out = await m.forward({ inputIds: new Int32Array([101, 200, 102]), batchSize: 1, seqLen: 3 });
  t.deepEqual(out.logits.shape, [1, 2]);
  t.true(Number.isFinite((out.logits.data as Float32Array)[0]));
  m.dispose();
});
