/**
 * The BertModel API: work runs off the event loop, calls on one model queue, bad arguments and disposed
 * models give coded errors (never a crash), save -> load is bit-identical, sharded checkpoints load; the
 * class is only a model, pruning and training add their methods from their folders.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel, BertConfigJson, extendModel } from '../../lib/model/model';
import { native } from '../../lib/runtime/native';
import { maxAbsDiff, shared, tempDir, withShared, writeSafetensorsFile } from '../helpers';

const SMALL: BertConfigJson = {
  vocab_size: 1000,
  hidden_size: 256,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 1024,
  max_position_embeddings: 128,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
};

function randomBatch(batchSize: number, seqLen: number, vocab: number, seed = 1) {
  let s = seed;
  const ids = new Int32Array(batchSize * seqLen).map(() => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return 1 + (s % (vocab - 1));
  });
  return { inputIds: ids, attentionMask: new Int32Array(ids.length).fill(1), batchSize, seqLen };
}

test('forward runs off the event loop: a timer fires while it runs', async (t) => {
  const m = await BertModel.fromConfig(SMALL, { seed: 3 });
  const batch = randomBatch(8, 128, SMALL.vocab_size);
  await m.forward(batch); // warm-up
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  await m.forward(batch);
  await m.forward(batch);
  const ms = performance.now() - t0;
  clearInterval(timer);
  t.log(`2 forwards of 8x128 took ${ms.toFixed(1)} ms; the 1 ms timer fired ${ticks} times meanwhile`);
  t.true(ticks >= 2, `timer fired ${ticks} times`);
  m.dispose();
});

test('concurrent calls on one model are queued and each gets its own result', async (t) => {
  const m = await BertModel.fromConfig({ ...SMALL, num_hidden_layers: 1 }, { seed: 4 });
  const batches = [1, 2, 3, 4, 5].map((n) => randomBatch(n, 16, SMALL.vocab_size, n));
  const sequential = [];
  for (const b of batches) sequential.push(await m.forward(b));
  const concurrent = await Promise.all(batches.map((b) => m.forward(b)));
  for (let i = 0; i < batches.length; i++) {
    t.deepEqual(concurrent[i].logits.shape, [i + 1, 2]);
    t.is(maxAbsDiff(concurrent[i].logits.data as Float32Array, sequential[i].logits.data as Float32Array), 0);
  }
  m.dispose();
});

test('bad arguments are coded errors naming the argument, and the model keeps working', async (t) => {
  const m = await BertModel.fromConfig({ ...SMALL, num_hidden_layers: 1 }, { seed: 5 });
  const ok = randomBatch(2, 8, SMALL.vocab_size);
  const cases: Array<[string, any, string, string]> = [
    ['wrong typed array', { ...ok, inputIds: new Float32Array(16) }, 'TypeError', 'inputs.inputIds'],
    ['a plain array', { ...ok, inputIds: Array.from(ok.inputIds) }, 'TypeError', 'inputs.inputIds'],
    ['wrong length', { ...ok, inputIds: ok.inputIds.subarray(0, 15) }, 'RangeError', 'inputs.inputIds'],
    ['mask of the wrong length', { ...ok, attentionMask: new Int32Array(3) }, 'RangeError', 'inputs.attentionMask'],
    ['token id >= vocab size', { ...ok, inputIds: new Int32Array(16).fill(SMALL.vocab_size) }, 'RangeError', 'vocab_size'],
    ['negative token id', { ...ok, inputIds: new Int32Array(16).fill(-1) }, 'RangeError', 'input_ids'],
    ['token type out of range', { ...ok, tokenTypeIds: new Int32Array(16).fill(2) }, 'RangeError', 'token_type_ids'],
    ['missing batchSize', { ...ok, batchSize: undefined }, 'TypeError', 'batchSize'],
    ['fractional seqLen', { ...ok, seqLen: 7.5 }, 'RangeError', 'seqLen'],
    ['sequence longer than max positions', randomBatch(1, 129, SMALL.vocab_size), 'RangeError', 'max_position_embeddings'],
    ['label out of range', { ...ok, labels: new Int32Array([0, 7]) }, 'RangeError', 'labels'],
  ];
  for (const [title, batch, kind, mention] of cases) {
    const err: any = await t.throwsAsync(async () => m.forward(batch), undefined, title);
    t.is(err?.code, 'E_INVALID_ARG', `${title}: ${err?.message}`);
    t.is(err?.name, kind, `${title}: ${err?.message}`);
    t.true(String(err?.message).includes(mention), `${title}: "${err?.message}" should name ${mention}`);
  }
  const out = await m.forward(ok);
  t.deepEqual(out.logits.shape, [2, 2]);
  m.dispose();
});

test('a disposed model rejects with E_DISPOSED; queued calls reject, the running one completes', async (t) => {
  const m = await BertModel.fromConfig(SMALL, { seed: 6 });
  const b = randomBatch(8, 128, SMALL.vocab_size);
  const first = m.forward(b);
  const second = m.forward(b);
  m.dispose();
  t.true(m.disposed);
  const [r1, r2] = await Promise.allSettled([first, second]);
  // The first call was already running natively or gets rejected: either way no crash and a clear outcome.
  if (r1.status === 'fulfilled') t.deepEqual(r1.value.logits.shape, [8, 2]);
  else t.is((r1.reason as any).code, 'E_DISPOSED');
  t.is(r2.status, 'rejected');
  t.is((r2 as PromiseRejectedResult).reason.code, 'E_DISPOSED');
  const err: any = await t.throwsAsync(async () => m.forward(b));
  t.is(err.code, 'E_DISPOSED');
  t.throws(() => m.numParameters, { message: /disposed/ });
  m.dispose(); // twice is fine
});

withShared('fixtures')('save -> load gives bit-identical outputs (classification, QA, bare, pruned heads)', async (t) => {
  const fixtures = shared('fixtures');
  for (const name of ['bert-tiny-cls', 'bert-tiny-qa', 'bert-tiny-bare', 'bert-tiny-pruned-heads', 'bert-tiny-cls-bin']) {
    const tmp = tempDir();
    try {
      const a = await BertModel.fromPretrained(join(fixtures, name));
      await a.save(tmp.path);
      const b = await BertModel.fromPretrained(tmp.path);
      t.deepEqual(b.config.pruned_heads, a.config.pruned_heads);
      t.is(b.task, a.task);
      const batch = randomBatch(3, 16, 1024, 9);
      const oa = await a.forward(batch, { extras: true });
      const ob = await b.forward(batch, { extras: true });
      for (const k of Object.keys(oa)) t.is(maxAbsDiff(oa[k].data as Float32Array, ob[k].data as Float32Array), 0, `${name} ${k}`);
      // The saved file is a valid safetensors file our reader and HF's would accept, with HF names.
      const sd = await native().readSafetensors(join(tmp.path, 'model.safetensors'));
      t.deepEqual(Object.keys(sd.tensors).sort(), Object.keys(a.stateDict()).sort());
      a.dispose();
      b.dispose();
    } finally {
      tmp.cleanup();
    }
  }
});

withShared('fixtures/bert-tiny-cls')('a sharded checkpoint (model.safetensors.index.json) loads like the single file', async (t) => {
  const src = shared('fixtures/bert-tiny-cls');
  const tmp = tempDir();
  try {
    const a = await BertModel.fromPretrained(src);
    // Save twice and split the names across two shards.
    await a.save(join(tmp.path, 'one'));
    await a.save(join(tmp.path, 'two'));
    const names = Object.keys(a.stateDict()).sort();
    const half = Math.floor(names.length / 2);
    const dir = join(tmp.path, 'sharded');
    require('node:fs').mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), readFileSync(join(src, 'config.json')));
    const sd = a.stateDict();
    const writeShard = (file: string, keys: string[]) => writeSafetensorsFile(join(dir, file), Object.fromEntries(keys.map((k) => [k, sd[k]])));
    writeShard('model-00001-of-00002.safetensors', names.slice(0, half));
    writeShard('model-00002-of-00002.safetensors', names.slice(half));
    const weightMap = Object.fromEntries(names.map((n, i) => [n, i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const b = await BertModel.fromPretrained(dir);
    t.true(b.loadReport!.weightsFile.endsWith('model.safetensors.index.json'));
    const batch = randomBatch(2, 10, 1024, 11);
    const oa = await a.forward(batch);
    const ob = await b.forward(batch);
    t.is(maxAbsDiff(oa.logits.data as Float32Array, ob.logits.data as Float32Array), 0);
    // A shard the index does not map a tensor to is refused.
    renameSync(join(dir, 'model-00002-of-00002.safetensors'), join(dir, 'tmp'));
    writeShard('model-00002-of-00002.safetensors', names.slice(half - 1));
    const err: any = await t.throwsAsync(BertModel.fromPretrained(dir));
    t.is(err.code, 'E_BAD_CHECKPOINT');
    a.dispose();
    b.dispose();
    rmSync(join(dir, 'tmp'));
  } finally {
    tmp.cleanup();
  }
});

withShared('fixtures/bert-tiny-bare')('a checkpoint without a task head gets one created at random, reported', async (t) => {
  const src = shared('fixtures/bert-tiny-bare');
  const m = await BertModel.fromPretrained(src, { task: 'text-classification', numLabels: 3, seed: 1 });
  t.is(m.task, 'text-classification');
  t.deepEqual(m.loadReport!.newlyInitialized, ['classifier.weight', 'classifier.bias']);
  t.deepEqual(m.labels, ['LABEL_0', 'LABEL_1', 'LABEL_2']);
  const out = await m.forward(randomBatch(1, 5, 1024));
  t.deepEqual(out.logits.shape, [1, 3]);
  m.dispose();
});

withShared('fixtures/bert-tiny-cls')('bad options: unknown task, bad device, no CUDA in this build', async (t) => {
  const src = shared('fixtures/bert-tiny-cls');
  let err: any = await t.throwsAsync(BertModel.fromPretrained(src, { task: 'translation' as any }));
  t.is(err.code, 'E_INVALID_ARG');
  err = await t.throwsAsync(BertModel.fromPretrained(src, { device: 'tpu' }));
  t.is(err.code, 'E_INVALID_ARG');
  t.true(err.message.includes('tpu'));
  if (!native().buildInfo().cudaAvailable) {
    err = await t.throwsAsync(BertModel.fromPretrained(src, { device: 'cuda' }));
    t.is(err.code, 'E_INVALID_ARG');
    t.regex(err.message, /CUDA/);
  }
});

withShared('fixtures/bert-tiny-cls')('loadState: a file with a bad tensor changes nothing (all checked before any copy)', async (t) => {
  const src = shared('fixtures/bert-tiny-cls');
  const tmp = tempDir();
  try {
    const m = await BertModel.fromPretrained(src);
    const before = m.stateDict();
    const sd = before;
    // A valid tensor first (changed values), then one of the wrong shape.
    const good = new Float32Array(sd['bert.pooler.dense.bias'].data as Float32Array).map((x) => x + 1);
    const badShape = new Float32Array(10);
    const header = JSON.stringify({
      'bert.pooler.dense.bias': { dtype: 'F32', shape: [32], data_offsets: [0, 128] },
      'classifier.bias': { dtype: 'F32', shape: [10], data_offsets: [128, 168] },
    });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    const file = join(tmp.path, 'bad.safetensors');
    writeFileSync(file, Buffer.concat([len, Buffer.from(header), Buffer.from(good.buffer), Buffer.from(badShape.buffer)]));
    const err: any = await t.throwsAsync(m.loadState(file));
    t.is(err.code, 'E_SHAPE');
    t.regex(err.message, /classifier\.bias/);
    const after = m.stateDict();
    t.is(maxAbsDiff(after['bert.pooler.dense.bias'].data as Float32Array, before['bert.pooler.dense.bias'].data as Float32Array), 0, 'unchanged');
    m.dispose();
  } finally {
    tmp.cleanup();
  }
});

test('the model alone has no pruning or training methods; their folders add them, as class methods, once', (t) => {
  // A fresh process per import: what each module brings on its own.
  const probe = (mod: string) =>
    execFileSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(join(__dirname, '..', '..', 'lib', mod))}); const { BertModel } = require(${JSON.stringify(join(__dirname, '..', '..', 'lib', 'model', 'model'))}); console.log(['patch', 'compact', 'trainStep', 'saveTrainingState'].map((n) => typeof BertModel.prototype[n]).join(','))`],
      { encoding: 'utf8' },
    ).trim();
  t.is(probe('model/model'), 'undefined,undefined,undefined,undefined');
  t.is(probe('pruning/model-pruning'), 'function,function,undefined,undefined');
  t.is(probe('index'), 'function,function,function,function');
  // Installed like class methods (not enumerable); a second definition of a name is refused.
  require('../../lib/pruning/model-pruning');
  t.false(Object.keys(BertModel.prototype).includes('patch'));
  t.is(typeof Object.getOwnPropertyDescriptor(BertModel.prototype, 'patch')?.value, 'function');
  for (const name of ['patch', 'forward'])
    t.throws(() => extendModel({ [name]: async () => undefined } as never), { message: new RegExp(`BertModel\\.${name} is defined twice`) });
});
