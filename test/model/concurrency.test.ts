/**
 * A model's native state under concurrency, and the API's errors being the same everywhere:
 * - stress (child process, test/concurrency-worker.ts): getters and every job of a model at the same time,
 *   without the TS queue too, a model as teacher and in syncModel while its own jobs run, dispose with jobs
 *   in flight, for a tiny and a hidden-256 model: no crash, consistent readings, only E_BUSY / E_DISPOSED
 *   (and the E_INVALID_ARG of calls that race by design) as errors;
 * - stateDict() refuses with E_BUSY while a job uses the model, readStateDict() and exportOnnx() wait;
 * - every async method of a disposed model rejects (never throws) with E_DISPOSED, every getter throws it;
 * - typed arrays on a SharedArrayBuffer are accepted;
 * - labels of another task are refused, naming the field and the task.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BertConfigJson, BertModel, Task } from '../../lib/model/model';
import { exportOnnx } from '../../lib/model/onnx';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import '../../lib/training/model-training';
import { maxAbsDiff, tempDir } from '../helpers';

const WORKER = join(__dirname, 'concurrency-worker.js');
const SECONDS = Number(process.env.BLOCKPRUNE_STRESS_SECONDS ?? 1.5);

const TINY: BertConfigJson = { vocab_size: 300, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 64 };

function batch(B = 2, S = 8) {
  const inputIds = Int32Array.from({ length: B * S }, (_, i) => 1 + ((i * 37) % 299));
  return { inputIds, attentionMask: new Int32Array(B * S).fill(1), batchSize: B, seqLen: S };
}

type PhaseResult = { getterRounds: number; stateDicts: number; busy: number; disposedErrors: number; jobs: Record<string, Record<string, number>>; problems: string[] };

test('stress: getters and jobs at once, a teacher, syncModel, dispose in flight: no crash, consistent readings', async (t) => {
  t.timeout(SECONDS * 10 * 2 * 1000 + 120_000);
  const child = spawn(process.execPath, [WORKER], {
    env: { ...process.env, OMP_NUM_THREADS: '1', BLOCKPRUNE_STRESS_SECONDS: String(SECONDS) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-3000)));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on('close', (c, s) => res([c, s])));
  const lines = out.split('\n');
  const summaryLine = lines.find((l) => l.startsWith('SUMMARY '));
  if (code !== 0 || signal !== null || !summaryLine) {
    const last = (prefix: string) => [...lines].reverse().find((l) => l.startsWith(prefix)) ?? '(none)';
    t.fail(`the stress child died: exit code ${code}, signal ${signal}\nin ${last('PHASE ')}, ${last('JOB ')}\n${lines.filter((l) => l.startsWith('FATAL')).join('\n')}\nstderr: ${err}`);
    return;
  }
  const summary = JSON.parse(summaryLine.slice(8)) as Record<string, Record<string, PhaseResult | string>>;
  const okByJob: Record<string, number> = {};
  let rounds = 0;
  let stateDicts = 0;
  let busy = 0;
  let calls = 0;
  for (const [model, phases] of Object.entries(summary)) {
    t.deepEqual(Object.keys(phases), ['getters', 'native', 'teacher', 'sync', 'dispose'], model);
    for (const [phase, r] of Object.entries(phases)) {
      if (typeof r === 'string') {
        t.log(`${model} ${phase}: ${r}`);
        continue;
      }
      const jobs = Object.entries(r.jobs).map(([name, outcomes]) => `${name} ${Object.entries(outcomes).map(([o, n]) => `${o}:${n}`).join('/')}`);
      t.log(`${model} ${phase}: ${r.getterRounds} getter rounds, ${r.stateDicts} stateDict reads, ${r.busy} E_BUSY, ${r.disposedErrors} E_DISPOSED; ${jobs.join(', ')}`);
      t.deepEqual(r.problems, [], `${model} ${phase}`);
      if (phase !== 'dispose') t.true(r.getterRounds > 0, `${model} ${phase}: the getters ran`);
      else t.true(r.disposedErrors > 0, `${model} dispose: E_DISPOSED seen`);
      for (const [name, outcomes] of Object.entries(r.jobs)) {
        okByJob[name] = (okByJob[name] ?? 0) + (outcomes.ok ?? 0);
        calls += Object.values(outcomes).reduce((a, b) => a + b, 0);
      }
      for (const name of Object.keys(r.jobs).filter((n) => n.startsWith('after.'))) t.false('ok' in r.jobs[name], `${model}: ${name} succeeded after dispose()`);
      rounds += r.getterRounds;
      stateDicts += r.stateDicts;
      busy += r.busy;
    }
  }
  t.log(`in all: ${rounds} getter rounds, ${calls} calls, ${stateDicts} stateDict reads, ${busy} refused with E_BUSY; exit code 0, no signal`);
  // Every job kind really ran (succeeded at least once somewhere), and both stateDict outcomes happened. Not
  // the calls made after dispose(), nor those queued behind the first when it came (they reject by design).
  const never = Object.entries(okByJob).filter(([name, n]) => n === 0 && !/^(after|inflight)\./.test(name)).map(([name]) => name);
  t.deepEqual(never, [], 'jobs that never succeeded');
  for (const name of ['forward', 'patch', 'compile', 'compact', 'setThreshold', 'trainStep', 'loadState', 'save', 'fillZeros', 'masks', 'regularization', 'student.trainStep'])
    t.true((okByJob[name] ?? 0) > 0, `${name} ran`);
  t.true(stateDicts > 0 && busy > 0, `stateDict read ${stateDicts} times, refused ${busy} times`);
});

test('stateDict() refuses with E_BUSY while a job uses the model (as itself or as a teacher); readStateDict() and exportOnnx() wait', async (t) => {
  const m = await BertModel.fromConfig(TINY, { seed: 1 });
  const teacher = await BertModel.fromConfig(TINY, { seed: 2 });
  const tmp = tempDir();
  try {
    const before = m.stateDict();
    const running = m.forward(batch());
    // The TS queue starts the native job in a microtask.
    await Promise.resolve();
    await Promise.resolve();
    const err: any = t.throws(() => m.stateDict());
    t.is(err?.code, 'E_BUSY');
    t.regex(err?.message ?? '', /await/);
    const read = await m.readStateDict();
    await running;
    t.deepEqual(Object.keys(read), Object.keys(before));
    t.is(maxAbsDiff(read['classifier.weight'].data as Float32Array, before['classifier.weight'].data as Float32Array), 0);
    t.deepEqual(Object.keys(m.stateDict()), Object.keys(before), 'free again once the job is done');

    const y = { ...batch(), labels: new Int32Array([0, 1]) };
    const step = m.trainStep(y, {}, teacher);
    await Promise.resolve();
    await Promise.resolve();
    t.is((t.throws(() => teacher.stateDict()) as any)?.code, 'E_BUSY', "the teacher's weights are in use");
    // An export queued behind a running step waits for it instead of refusing.
    const onnx = join(tmp.path, 'm.onnx');
    const exported = exportOnnx(m, onnx);
    await step;
    await exported;
    t.true(existsSync(onnx));
  } finally {
    m.dispose();
    teacher.dispose();
    tmp.cleanup();
  }
});

test('getters describe the model as the last finished job left it, and change when its Promise settles', async (t) => {
  const m = await BertModel.fromConfig(TINY, { seed: 3 });
  try {
    const patching = m.patch(PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }));
    await Promise.resolve();
    await Promise.resolve();
    t.false(m.patched, 'still unpatched while the patch runs');
    await patching;
    t.true(m.patched);
    t.true(m.parameterShapes.some(([n]) => n.includes('mask_scores')));
    const compiling = m.compile();
    t.true(m.patched, 'still patched while compile runs');
    await compiling;
    t.false(m.patched);
    t.is(m.threshold, undefined);
  } finally {
    m.dispose();
  }
});

test('a disposed model: every async method rejects with E_DISPOSED (no synchronous throw), every getter throws it', async (t) => {
  const m = await BertModel.fromConfig(TINY, { seed: 4 });
  const other = await BertModel.fromConfig(TINY, { seed: 5 });
  m.dispose();
  t.true(m.disposed);
  const x = batch();
  const calls: Record<string, () => Promise<unknown>> = {
    forward: () => m.forward(x),
    timeForward: () => m.timeForward(x),
    save: () => m.save('/tmp/never-written'),
    patch: () => m.patch(PruningConfig.hybrid()),
    setThreshold: () => m.setThreshold(0.1),
    compile: () => m.compile(),
    compact: () => m.compact(),
    exportFilled: () => m.exportFilled('/tmp/never-written'),
    masks: () => m.masks(),
    regularization: () => m.regularization(),
    gradients: () => m.gradients(x),
    loadState: () => m.loadState('/tmp/none.safetensors'),
    trainStep: () => m.trainStep(x),
    syncAcross: () => m.syncAcross({} as never),
    saveTrainingState: () => m.saveTrainingState('/tmp/never-written'),
    loadTrainingState: () => m.loadTrainingState('/tmp/none'),
    fillZeros: () => m.fillZeros(),
    resetOptimizer: () => m.resetOptimizer(),
    readStateDict: () => m.readStateDict(),
    'trainStep with a disposed teacher': () => other.trainStep({ ...x, labels: new Int32Array([0, 1]) }, {}, m),
  };
  for (const [name, f] of Object.entries(calls)) {
    let p: Promise<unknown> | undefined;
    t.notThrows(() => (p = f()), `${name} must reject, not throw`);
    const err: any = await t.throwsAsync(p!, undefined, name);
    t.is(err?.code, 'E_DISPOSED', `${name}: ${err?.message}`);
  }
  const getters = ['config', 'task', 'numParameters', 'layers', 'parameterShapes', 'device', 'labels', 'patched', 'threshold'] as const;
  for (const g of getters) t.is((t.throws(() => m[g]) as any)?.code, 'E_DISPOSED', g);
  t.is((t.throws(() => m.stateDict()) as any)?.code, 'E_DISPOSED');
  t.is((t.throws(() => m.geometry()) as any)?.code, 'E_DISPOSED');
  // A bad argument to a live model rejects too.
  const bad: any = await t.throwsAsync(() => other.loadState(42 as never));
  t.is(bad?.code, 'E_INVALID_ARG');
  t.log(`${Object.keys(calls).length} async calls rejected with E_DISPOSED, ${getters.length + 2} getters/sync methods threw it`);
  other.dispose();
});

test('typed arrays on a SharedArrayBuffer are accepted and give the same outputs', async (t) => {
  const m = await BertModel.fromConfig(TINY, { seed: 6 });
  try {
    const x = { ...batch(), tokenTypeIds: new Int32Array(16), labels: new Int32Array([1, 0]) };
    const shared = <T extends Int32Array | BigInt64Array>(a: T, ctor: new (b: SharedArrayBuffer, off: number, len: number) => T, pad: number): T => {
      // At an offset inside the buffer, so the element pointer is not the buffer's start.
      const out = new ctor(new SharedArrayBuffer((a.length + pad) * a.BYTES_PER_ELEMENT), pad * a.BYTES_PER_ELEMENT, a.length);
      out.set(a as never);
      return out;
    };
    const viaShared = {
      ...x,
      inputIds: shared(x.inputIds, Int32Array, 3),
      attentionMask: shared(BigInt64Array.from(x.attentionMask, BigInt), BigInt64Array, 1),
      tokenTypeIds: shared(x.tokenTypeIds, Int32Array, 0),
      labels: shared(x.labels, Int32Array, 2),
    };
    const a = await m.forward(x);
    const b = await m.forward(viaShared);
    t.is(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array), 0);
    t.is(maxAbsDiff(a.loss.data as Float32Array, b.loss.data as Float32Array), 0);
    const step = await m.trainStep(viaShared);
    t.true(Number.isFinite(step.loss));
  } finally {
    m.dispose();
  }
});

test("labels of another task are refused (forward, gradients, trainStep), naming the field and the task", async (t) => {
  const x = batch();
  const positions = { startPositions: new Int32Array([1, 2]), endPositions: new Int32Array([2, 3]) };
  const cases: Array<[Task, Record<string, Int32Array>, string]> = [
    ['text-classification', positions, 'startPositions'],
    ['question-answering', { labels: new Int32Array([0, 1]) }, 'labels'],
    ['bare', { labels: new Int32Array([0, 1]) }, 'labels'],
    ['bare', positions, 'startPositions'],
  ];
  let refused = 0;
  let example = '';
  for (const [task, extra, field] of cases) {
    const m = await BertModel.fromConfig(TINY, { task, seed: 7 });
    try {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['forward', () => m.forward({ ...x, ...extra })],
        ['gradients', () => m.gradients({ ...x, ...extra })],
        ['trainStep', () => m.trainStep({ ...x, ...extra })],
      ];
      for (const [name, f] of calls) {
        const err: any = await t.throwsAsync(f, undefined, `${task} ${name}`);
        t.is(err?.code, 'E_INVALID_ARG', `${task} ${name}: ${err?.message}`);
        t.true(err?.message.includes(field) && err?.message.includes(task), `${task} ${name}: ${err?.message}`);
        example ||= err?.message;
        refused++;
      }
      // The right batch for the task still works.
      await t.notThrowsAsync(m.forward(x));
    } finally {
      m.dispose();
    }
  }
  t.log(`${refused} calls refused, e.g. "${example}"`);
});
