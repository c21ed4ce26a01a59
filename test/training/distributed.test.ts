/**
 * Data-parallel fine-pruning on c10d/Gloo over 127.0.0.1: two processes match one process with the same
 * global batch (loss curve, final weights and masks), a dying rank or a rendezvous that times out ends every
 * rank with a clear error in bounded time (the last checkpoint intact), a stop on one rank stops all at the
 * same step, and resume with the same world size reproduces the uninterrupted run. Each rank is a child
 * process running test/dist-worker.ts.
 */
import test, { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassificationDataset } from '../../lib/data/classification-dataset';
import { QADataset } from '../../lib/data/qa-dataset';
import { loadSquad } from '../../lib/data/squad';
import { freePort, launch, ProcessGroup, shardBatch } from '../../lib/training/distributed';
import { native } from '../../lib/runtime/native';
import { BertModel } from '../../lib/model/model';
import { latestCheckpoint, readCheckpointState } from '../../lib/training/trainer';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { DATA, shared, skipped, tempDir, withShared } from '../helpers';

const WORKER = join(__dirname, 'dist-worker.js');
const gloo = native().buildInfo().distributedBackends.includes('gloo');

interface Result {
  rank: number;
  worldSize: number;
  steps: number;
  interrupted: boolean;
  losses: number[];
  history: Array<Record<string, number>>;
  weights: Record<string, number[]>;
  masks: Record<string, number[]>;
}

interface Run {
  codes: number[];
  stderr: string[];
  ms: number;
}

/** Runs the worker as `ranks` (all of 0..world-1 by default) of a `world`-rank group, or alone (world 0). */
async function run(spec: Record<string, unknown>, world: number, ranks?: number[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  const port = await freePort();
  const started = Date.now();
  const list = world === 0 ? [0] : (ranks ?? Array.from({ length: world }, (_, r) => r));
  const procs = list.map(
    (rank) =>
      new Promise<{ code: number; stderr: string }>((res) => {
        const env: NodeJS.ProcessEnv = { ...process.env, DIST_TEST: JSON.stringify(spec), OMP_NUM_THREADS: '1', ...extraEnv };
        if (world > 0) Object.assign(env, { RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
        else delete env.WORLD_SIZE;
        const c = spawn(process.execPath, [WORKER], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        c.stderr!.on('data', (d) => (stderr += d));
        c.on('close', (code) => res({ code: code ?? -1, stderr }));
      }),
  );
  const out = await Promise.all(procs);
  return { codes: out.map((o) => o.code), stderr: out.map((o) => o.stderr), ms: Date.now() - started };
}

const result = (dir: string, rank = 0): Result => JSON.parse(readFileSync(join(dir, `result-${rank}.json`), 'utf8'));

function maxDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  let m = 0;
  for (const k of Object.keys(a)) for (let i = 0; i < a[k].length; i++) m = Math.max(m, Math.abs(a[k][i] - b[k][i]));
  return m;
}

function maskDiffs(a: Record<string, number[]>, b: Record<string, number[]>): number {
  let n = 0;
  for (const k of Object.keys(a)) for (let i = 0; i < a[k].length; i++) n += a[k][i] !== b[k][i] ? 1 : 0;
  return n;
}

// 41 examples in global batches of 8: the last batch has one row, so rank 1 has none at that step.
const base = (out: string) => ({ data: DATA, out, examples: 41, batchSize: 8, epochs: 2 });

/** Tests that need Gloo and SST-2: skipped, saying which is missing, otherwise. */
const glooSst2 = gloo ? withShared('data/sst2') : skipped('this build has no Gloo');

/** A serial test that needs Gloo and SST-2 (skipped with a message otherwise), given temp folders it removes. */
function distTest(title: string, dirs: number, fn: (t: ExecutionContext, ...dirs: string[]) => Promise<void>): void {
  glooSst2.serial(title, async (t) => {
    const made = Array.from({ length: dirs }, () => tempDir());
    try {
      await fn(t, ...made.map((d) => d.path));
    } finally {
      made.forEach((d) => d.cleanup());
    }
  });
}

/** Two worker ranks through launch(): every output line with its time since the start (ms). */
async function launchWorkers(spec: Record<string, unknown>, graceMs?: number) {
  const lines: Array<{ line: string; at: number }> = [];
  const started = Date.now();
  const r = await launch({
    nproc: 2,
    script: WORKER,
    env: { ...process.env, OMP_NUM_THREADS: '1', DIST_TEST: JSON.stringify(spec) },
    graceMs,
    onLine: (rank, _stream, line) => lines.push({ line: `[${rank}] ${line}`, at: Date.now() - started }),
  });
  const error = (rank: number) => lines.find((l) => l.line.startsWith(`[${rank}] dist-worker error`));
  return { ...r, ms: Date.now() - started, error };
}

for (const variant of [
  { name: 'SST-2, the dataset shards itself', extra: {}, env: {} },
  { name: 'a dataset that cannot shard (the trainer splits batches), with distillation', extra: { toy: true, distil: true }, env: {} },
  // Gradients read from .grad after backward instead of from the hooks that start buckets early.
  { name: 'all-reduce after backward (no overlap), 1 KiB buckets', extra: {}, env: { BLOCKPRUNE_DDP_OVERLAP: '0', BLOCKPRUNE_TEST_BUCKET_MB: '0.001' } },
]) {
  distTest(`2 Gloo processes match 1 process with the same global batch: ${variant.name}`, 2, async (t, one, two) => {
    const a = await run({ ...base(one), ...variant.extra }, 0);
    t.deepEqual(a.codes, [0], a.stderr.join('\n'));
    const b = await run({ ...base(two), ...variant.extra }, 2, undefined, variant.env);
    t.deepEqual(b.codes, [0, 0], b.stderr.join('\n'));
    const r1 = result(one);
    const r20 = result(two, 0);
    const r21 = result(two, 1);
    t.is(r1.steps, 12);
    t.is(r20.steps, 12);
    t.is(r20.worldSize, 2);
    let lossDiff = 0;
    r1.losses.forEach((l, i) => (lossDiff = Math.max(lossDiff, Math.abs(l - r20.losses[i]) / Math.max(1e-6, Math.abs(l)))));
    const w = maxDiff(r1.weights, r20.weights);
    t.log(`losses 1 proc: ${r1.losses.map((x) => x.toFixed(4)).join(' ')}`);
    t.log(`max relative loss diff ${lossDiff.toExponential(2)}, max |weight diff| ${w.toExponential(2)}, mask diffs ${maskDiffs(r1.masks, r20.masks)}`);
    t.is(r20.losses.length, 12);
    t.true(lossDiff <= 1e-5);
    t.true(w <= 1e-5);
    t.is(maskDiffs(r1.masks, r20.masks), 0);
    t.true(Object.keys(r1.masks).length > 0, 'the model was patched');
    // The ranks hold the very same model (same all-reduced gradient, same step), and both have the evaluations.
    t.is(maxDiff(r20.weights, r21.weights), 0);
    t.is(maskDiffs(r20.masks, r21.masks), 0);
    t.deepEqual(r21.history, r20.history);
    t.is(r20.history.length, 2);
    // Rank 0 alone wrote the log: one line per step.
    const steps = readFileSync(join(two, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'step');
    t.is(steps.length, 12);
  });
}

distTest('a rank that dies ends the other with E_DISTRIBUTED within seconds; the last checkpoint stays intact', 1, async (t, dir) => {
  const r = await run({ ...base(dir), checkpointEvery: 2, dieAtStep: 5, dieRank: 1 }, 2);
  t.log(`rank 0: ${r.stderr[0].trim().split('\n').pop()} (${r.ms} ms)`);
  t.is(r.codes[1], 3);
  t.is(r.codes[0], 1);
  t.regex(r.stderr[0], /E_DISTRIBUTED: rank 0 of 2: gradient all-reduce failed/);
  t.true(r.ms < 30_000);
  const last = latestCheckpoint(join(dir, 'checkpoints'));
  t.truthy(last);
  t.is(readCheckpointState(last!).step, 4);
  t.is(readCheckpointState(last!).worldSize, 2);
  const m = await BertModel.fromPretrained(last!);
  t.true(m.patched);
  m.dispose();
});

distTest('a rank that hangs ends the other with E_DISTRIBUTED after the timeout', 1, async (t, dir) => {
  const r = await launchWorkers({ ...base(dir), hangAtStep: 3, timeoutMs: 3000 }, 500);
  const err = r.error(0)?.line ?? '';
  t.log(`${err} (${r.ms} ms in all)`);
  t.is(r.firstFailure, 0);
  t.regex(err, /E_DISTRIBUTED: rank 0 of 2: gradient all-reduce failed: .*(Timed out|timeout)/i);
  t.is(r.exits[1].signal, 'SIGTERM');
  t.true(r.ms < 30_000);
});

distTest('an error on rank 0 (its evaluation) ends rank 1 at once, though rank 0 stays alive', 1, async (t, dir) => {
  const r = await launchWorkers({ ...base(dir), evalThrows: true, lingerMs: 8000 });
  const e0 = r.error(0);
  const e1 = r.error(1);
  t.log(`${e0?.line} at ${e0?.at} ms; ${e1?.line} at ${e1?.at} ms`);
  t.regex(e0?.line ?? '', /evaluation failed on purpose/);
  t.regex(e1?.line ?? '', /E_DISTRIBUTED: rank 1 of 2: waiting for rank 0 failed/);
  // Rank 1 learns of it from rank 0's closed connections, not from rank 0's exit 8 s later.
  t.true(e1!.at - e0!.at < 4000);
  t.is(r.firstFailure, 1);
});

distTest('a rendezvous that times out fails with a message that says what to check', 1, async (t, dir) => {
  // Rank 1 alone: nobody listens at MASTER_ADDR:MASTER_PORT.
  const a = await run({ ...base(dir), timeoutMs: 2000 }, 2, [1]);
  t.log(`${a.stderr[0].trim().split('\n').pop()} (${a.ms} ms)`);
  t.deepEqual(a.codes, [1]);
  t.regex(a.stderr[0], /E_DISTRIBUTED: rank 1 of 2: rendezvous at 127\.0\.0\.1:\d+ failed within 2\.000 s/);
  t.true(a.ms < 20_000);
  // Rank 0 alone: the others never join.
  const b = await run({ ...base(dir), timeoutMs: 2000 }, 2, [0]);
  t.log(`${b.stderr[0].trim().split('\n').pop()} (${b.ms} ms)`);
  t.deepEqual(b.codes, [1]);
  t.regex(b.stderr[0], /E_DISTRIBUTED: rank 0 of 2: .*(not every rank joined|rendezvous)/);
  t.true(b.ms < 20_000);
});

distTest('a stop on one rank stops both at the same step; resume with the same world size gives the uninterrupted result', 2, async (t, full, cut) => {
  // Dropout on: the resumed ranks must restore their own generator states.
  const a = await run({ ...base(full), dropout: 0.1 }, 2);
  t.deepEqual(a.codes, [0, 0], a.stderr.join('\n'));
  const b = await run({ ...base(cut), dropout: 0.1, stopAtStep: 3, stopRank: 1 }, 2);
  t.deepEqual(b.codes, [0, 0], b.stderr.join('\n'));
  const s0 = result(cut, 0);
  const s1 = result(cut, 1);
  t.true(s0.interrupted && s1.interrupted);
  t.is(s0.steps, s1.steps);
  t.true(s0.steps < 12);
  const ckpt = latestCheckpoint(join(cut, 'checkpoints'))!;
  t.is(readCheckpointState(ckpt).step, s0.steps);
  // A different world size is refused, naming both.
  const wrong = await run({ ...base(cut), dropout: 0.1, resume: true }, 0);
  t.deepEqual(wrong.codes, [1]);
  t.regex(wrong.stderr[0], /E_RESUME_MISMATCH: .*worldSize is 2 in the checkpoint, 1 in this run/);
  const c = await run({ ...base(cut), dropout: 0.1, resume: true }, 2);
  t.deepEqual(c.codes, [0, 0], c.stderr.join('\n'));
  const done = result(cut, 0);
  const ref = result(full, 0);
  t.is(done.steps, 12);
  const d = maxDiff(ref.weights, done.weights);
  t.log(`stopped at step ${s0.steps}, resumed: max |weight diff| vs uninterrupted ${d}`);
  t.true(d <= 1e-6);
  t.is(maskDiffs(ref.masks, done.masks), 0);
  t.is(maxDiff(done.weights, result(cut, 1).weights), 0);
});

test.serial('launch() runs N ranks with torchrun variables and stops the rest when one fails', async (t) => {
  const dir = tempDir();
  try {
    const script = join(dir.path, 'rank.js');
    writeFileSync(
      script,
      `const r = Number(process.env.RANK);
       console.log(JSON.stringify({ r, w: process.env.WORLD_SIZE, l: process.env.LOCAL_RANK, a: process.env.MASTER_ADDR, p: process.env.MASTER_PORT, t: process.env.OMP_NUM_THREADS }));
       if (process.env.FAIL && r === 1) process.exit(5);
       if (process.env.FAIL) setInterval(() => {}, 1000); // rank 0 would hang forever`,
    );
    const lines: string[] = [];
    const ok = await launch({ nproc: 2, script, env: { ...process.env, OMP_NUM_THREADS: undefined }, onLine: (r, s, l) => lines.push(l) });
    t.is(ok.code, 0);
    const seen = lines.map((l) => JSON.parse(l)).sort((a, b) => a.r - b.r);
    t.deepEqual(seen.map((s) => [s.r, s.w, s.l, s.a]), [[0, '2', '0', '127.0.0.1'], [1, '2', '1', '127.0.0.1']]);
    t.is(seen[0].p, seen[1].p);
    t.true(Number(seen[0].t) >= 1);
    const started = Date.now();
    const bad = await launch({ nproc: 2, script, env: { ...process.env, FAIL: '1' }, graceMs: 500, onLine: () => {} });
    t.is(bad.code, 5);
    t.is(bad.firstFailure, 1);
    t.is(bad.exits[0].signal, 'SIGTERM');
    t.true(Date.now() - started < 10_000);
  } finally {
    dir.cleanup();
  }
});

withShared('data/bert-base-uncased', 'data/squad/dev-v2.0-first5articles.json')('shards: the ranks of a global batch partition it (dataset and generic split agree)', async (t) => {
  const tok = BertTokenizer.fromDir(shared('data/bert-base-uncased'));
  const ex = Array.from({ length: 11 }, (_, i) => ({ text: `sentence number ${i} ${'word '.repeat(i % 4)}`, label: i % 2 }));
  const ds = new ClassificationDataset(ex, tok, { maxLength: 32 });
  const globals = [...ds.batches(4, { shuffle: true, seed: 3, epoch: 1 })];
  for (const world of [2, 3]) {
    const perRank = Array.from({ length: world }, (_, r) => [...ds.batches(4, { shuffle: true, seed: 3, epoch: 1, shard: { rank: r, worldSize: world } })]);
    perRank.forEach((b) => t.is(b.length, globals.length));
    globals.forEach((g, k) => {
      const union = perRank.flatMap((b) => Array.from(b[k].indices)).sort((x, y) => x - y);
      t.deepEqual(union, Array.from(g.indices).sort((x, y) => x - y));
      for (let r = 0; r < world; r++) {
        const mine = shardBatch(g, r, world);
        t.deepEqual(mine ? Array.from(mine.indices) : [], Array.from(perRank[r][k].indices));
        if (mine) t.deepEqual(Array.from(mine.labels), Array.from(perRank[r][k].labels));
      }
    });
  }
  // QA windows shard the same way.
  const squad = shared('data/squad/dev-v2.0-first5articles.json');
  const { examples: qa } = await loadSquad(squad, { limit: 12 });
  const qds = new QADataset(qa, tok, { maxLength: 96, docStride: 32 });
  const qGlobal = [...qds.batches(5, { shuffle: true, seed: 1 })];
  const qParts = [0, 1].map((r) => [...qds.batches(5, { shuffle: true, seed: 1, shard: { rank: r, worldSize: 2 } })]);
  qGlobal.forEach((g, k) => {
    const union = [...qParts[0][k].featureIndices, ...qParts[1][k].featureIndices].sort((x, y) => x - y);
    t.deepEqual(union, Array.from(g.featureIndices).sort((x, y) => x - y));
    t.deepEqual(Array.from(shardBatch(g, 1, 2)!.startPositions), Array.from(qParts[1][k].startPositions));
  });
  // The last global batch has 3 rows: with 4 ranks, rank 3 gets an empty batch.
  const last = [...ds.batches(4, { shard: { rank: 3, worldSize: 4 } })].pop()!;
  t.is(last.batchSize, 0);
  t.throws(() => [...ds.batches(4, { shard: { rank: 2, worldSize: 2 } })], { code: 'E_INVALID_ARG' });
});

test('ProcessGroup options from torchrun variables, and bad ones', async (t) => {
  t.is(ProcessGroup.optionsFromEnv({}), undefined);
  t.deepEqual(ProcessGroup.optionsFromEnv({ WORLD_SIZE: '4', RANK: '2', LOCAL_RANK: '0', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' }), {
    rank: 2,
    worldSize: 4,
    localRank: 0,
    masterAddr: '10.0.0.1',
    masterPort: 1234,
    interface: undefined,
  });
  t.throws(() => ProcessGroup.optionsFromEnv({ WORLD_SIZE: '2' }), { message: /RANK is not/ });
  t.throws(() => ProcessGroup.optionsFromEnv({ WORLD_SIZE: 'two', RANK: '0' }), { message: /WORLD_SIZE must be/ });
  await t.throwsAsync(ProcessGroup.init({ rank: 2, worldSize: 2 }), { code: 'E_INVALID_ARG' });
  await t.throwsAsync(ProcessGroup.init({ rank: 0, worldSize: 1, backend: 'nccl' }), { code: 'E_UNSUPPORTED' });
  if (!gloo) return;
  // A group of one works (and a second destroy is harmless).
  const g = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort() });
  t.deepEqual(Array.from(await g.allreduce([1, 2.5])), [1, 2.5]);
  t.deepEqual((await g.allgatherJson({ a: 1 }))[0], { a: 1 });
  await g.destroy();
  await g.destroy();
  await t.throwsAsync(g.allreduce([1]), { code: 'E_DISPOSED' });
});

glooSst2.serial('CLI: blockprune train --nproc 2 fine-prunes with two ranks; rank 0 alone writes and reports', async (t) => {
  const dir = tempDir();
  const cli = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
  const exec = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      const c = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (d) => (stdout += d));
      c.stderr!.on('data', (d) => (stderr += d));
      c.on('close', (code) => res({ code: code ?? -1, stdout, stderr }));
    });
  try {
    const out = join(dir.path, 'out');
    const common = ['--task', 'sst2', '--data', DATA!, '--limit', '120', '--eval-limit', '60', '--dense-epochs', '1', '--epochs', '2', '--filled-epochs', '1'];
    const r = await exec(['train', ...common, '--batch-size', '16', '--latency-runs', '2', '--output', out, '--nproc', '2']);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.match(/^Summary \(sst2/gm)?.length, 1, 'one summary, from rank 0');
    t.regex(r.stdout, /dense training: 1 epochs, batch 16 \(2 processes\)/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    t.true(report.parameters.dense > 0);
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'step');
    t.true(steps.length > 0);
    // One rank started by hand with nobody else: a clear error within the timeout.
    const port = await freePort();
    const lone = await exec(['train', ...common, '--output', join(dir.path, 'lone'), '--rank', '1', '--world-size', '2', '--master-port', String(port), '--dist-timeout', '2']);
    t.is(lone.code, 1);
    t.regex(lone.stderr, /\[E_DISTRIBUTED\] rank 1 of 2: rendezvous at 127\.0\.0\.1:\d+ failed/);
    const usage = await exec(['train', '--nproc', '2', '--rank', '0']);
    t.is(usage.code, 2);
  } finally {
    dir.cleanup();
  }
});
