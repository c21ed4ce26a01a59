/**
 * The child process of test/concurrency.test.ts (not a test file itself): runs a model's synchronous getters
 * and its native jobs at the same time, in loops, so that a race on the model's native state (a SIGSEGV, a
 * torn read) kills this process, and the parent reports the phase, instead of killing the test runner.
 * Each phase runs for a tiny model (hidden 64, 2 layers) and a hidden-256, 4-layer one:
 *
 *   getters  the public API: while each job of a cycle (forward, patch, setThreshold, regularization, masks,
 *            trainStep, gradients, save, loadState, compact, fillZeros, compile, resetOptimizer) runs on the
 *            pool, the getters (config, layers, patched, threshold, numParameters, parameterShapes, task,
 *            device, disposed, stateDict) run in a tight loop; every reading must be consistent in itself.
 *   native   the NativeModel handle (and its NativeTrainingState) without BertModel's queue: a burst of every
 *            job at once (the native lock alone must keep them apart), the handle's info() and stateDict() in
 *            between.
 *   teacher  model T is the teacher of S.trainStep while T's own jobs run (two queues, one native model).
 *   sync     ProcessGroup.syncModel (a one-rank Gloo group) while the model's own jobs run (Gloo builds).
 *   dispose  dispose() with jobs in flight and queued: in-flight jobs finish, queued and later calls reject
 *            with E_DISPOSED, getters throw E_DISPOSED; a teacher disposed during the student's step.
 *
 * Allowed errors: E_BUSY from stateDict() while a job is in flight, E_DISPOSED after dispose(), and, where
 * calls race by design (the native bursts run in any order), E_INVALID_ARG from patch (already patched),
 * compile and setThreshold (not patched) and fillZeros (patched). Anything else, and any inconsistent
 * reading, is a problem.
 *
 * Environment: BLOCKPRUNE_STRESS_SECONDS (seconds per phase and model, default 1.5).
 * Protocol on stdout (synchronous writes, so the last line survives a crash):
 *   PHASE <model> <phase>        before a phase
 *   JOB <name> after <n> ...     before each job (or burst of jobs) of the phase
 *   DONE <model> <phase> <json>  after it, with its counts
 *   SUMMARY <json>               at the end
 */
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { BertConfigJson, BertModel } from '../../lib/model/model';
import { freePort, ProcessGroup } from '../../lib/training/distributed';
import { native, NativeModel, NativeModelInfo, NativeTrainingState } from '../../lib/runtime/native';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import '../../lib/training/model-training';
import { tempDir } from '../helpers';

const SECONDS = Number(process.env.BLOCKPRUNE_STRESS_SECONDS ?? 1.5);

const MODELS: Record<string, BertConfigJson> = {
  tiny: { vocab_size: 300, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 64 },
  h256: { vocab_size: 1000, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024, max_position_embeddings: 64 },
};
const PRUNING = PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 });

function emit(line: string): void {
  writeSync(1, line + '\n');
}

function batch(vocab: number, labelled: boolean, seed = 1) {
  const B = 4;
  const S = 16;
  let s = seed;
  const inputIds = new Int32Array(B * S).map(() => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return 1 + (s % (vocab - 1));
  });
  // Padding at the end of two rows: forwards take the packed fast path too.
  const attentionMask = new Int32Array(B * S).map((_, i) => (i % S < S - (i < 2 * S ? 4 : 0) ? 1 : 0));
  return { inputIds, attentionMask, batchSize: B, seqLen: S, ...(labelled ? { labels: new Int32Array([0, 1, 1, 0]) } : {}) };
}

const codeOf = (e: unknown): string => (e as { code?: string } | undefined)?.code ?? `uncoded(${String((e as Error)?.message ?? e).slice(0, 80)})`;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Counts of one phase. */
class Phase {
  getterRounds = 0;
  stateDicts = 0;
  busy = 0;
  disposedErrors = 0;
  jobs: Record<string, Record<string, number>> = {};
  problems: string[] = [];

  /** Names the job about to start (the parent reports the last one when this process dies). */
  started(name: string): void {
    emit(`JOB ${name} after ${this.getterRounds} getter rounds`);
  }

  problem(msg: string): void {
    if (this.problems.length < 20) this.problems.push(msg);
  }

  count(name: string, outcome: string): void {
    const j = (this.jobs[name] ??= {});
    j[outcome] = (j[outcome] ?? 0) + 1;
  }

  /** Awaits a job, counting its outcome; an error outside `allowed` is a problem. */
  async settle<T>(name: string, p: Promise<T>, allowed: string[] = []): Promise<T | undefined> {
    try {
      const v = await p;
      this.count(name, 'ok');
      return v;
    } catch (e) {
      const c = codeOf(e);
      this.count(name, c);
      if (c === 'E_DISPOSED') this.disposedErrors++;
      if (!allowed.includes(c)) this.problem(`${name}: ${c}: ${(e as Error)?.message}`);
      return undefined;
    }
  }

  /** Runs `probe` in bursts of ~2 ms, yielding to the event loop in between, until `job` settles. */
  async hammer(job: Promise<unknown>, probe: () => void): Promise<void> {
    let done = false;
    job.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done) {
      const until = performance.now() + 2;
      do probe();
      while (performance.now() < until);
      await tick();
    }
  }

  toJSON() {
    return { getterRounds: this.getterRounds, stateDicts: this.stateDicts, busy: this.busy, disposedErrors: this.disposedErrors, jobs: this.jobs, problems: this.problems };
  }
}

/** A promise for a call that may also throw synchronously (the NativeModel surface does for bad input). */
function call<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** What every reading of a model's description must satisfy, whatever runs meanwhile. */
function checkDescription(ph: Phase, where: string, d: { config: BertConfigJson; layers: unknown[]; patched: boolean; threshold?: number; numParameters: number; parameters: Array<[string, number[]]>; task: string; device: string }, task: string): void {
  if (d.layers.length !== d.config.num_hidden_layers) ph.problem(`${where}: ${d.layers.length} layers but config says ${d.config.num_hidden_layers}`);
  if (d.patched !== (d.threshold !== undefined)) ph.problem(`${where}: patched ${d.patched} but threshold ${d.threshold}`);
  // The hybrid plan gives every patched model scores; an unpatched one has none.
  const scores = d.parameters.some(([n]) => n.includes('mask_scores'));
  if (scores !== d.patched) ph.problem(`${where}: patched ${d.patched} but ${scores ? 'has' : 'no'} mask scores in parameterShapes`);
  const counted = d.parameters.filter(([n]) => !n.includes('mask_scores')).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  if (counted !== d.numParameters) ph.problem(`${where}: numParameters ${d.numParameters} but parameterShapes add up to ${counted}`);
  if (d.task !== task) ph.problem(`${where}: task ${d.task}, expected ${task}`);
  if (d.device !== 'cpu') ph.problem(`${where}: device ${d.device}`);
}

/** The state dict agrees with the description read in the same tick (or the read is refused with E_BUSY). */
function checkStateDict(ph: Phase, where: string, read: () => Record<string, { shape: number[] }>, parameters: Array<[string, number[]]>): void {
  let sd: Record<string, { shape: number[] }>;
  try {
    sd = read();
  } catch (e) {
    if (codeOf(e) === 'E_BUSY') ph.busy++;
    else ph.problem(`${where}: stateDict: ${codeOf(e)}: ${(e as Error).message}`);
    return;
  }
  ph.stateDicts++;
  const names = Object.keys(sd);
  if (names.length !== parameters.length) ph.problem(`${where}: stateDict has ${names.length} tensors, parameterShapes ${parameters.length}`);
  for (const [n, shape] of parameters)
    if (!sd[n] || sd[n].shape.join('x') !== shape.join('x')) {
      ph.problem(`${where}: stateDict ${n} is ${sd[n]?.shape.join('x')}, parameterShapes says ${shape.join('x')}`);
      break;
    }
}

function probeModel(ph: Phase, m: BertModel, task: string, withStateDict: boolean): void {
  const d = { config: m.config, layers: m.layers, patched: m.patched, threshold: m.threshold, numParameters: m.numParameters, parameters: m.parameterShapes, task: m.task, device: m.device };
  if (m.disposed) ph.problem('disposed is true on a live model');
  ph.getterRounds++;
  checkDescription(ph, 'getters', d, task);
  if (withStateDict) checkStateDict(ph, 'getters', () => m.stateDict(), d.parameters);
}

function probeHandle(ph: Phase, h: NativeModel, task: string, withStateDict: boolean): void {
  const i: NativeModelInfo = h.info();
  ph.getterRounds++;
  if (i.patched !== (i.pruningPlan !== undefined)) ph.problem(`info: patched ${i.patched} but pruningPlan ${i.pruningPlan === undefined ? 'absent' : 'present'}`);
  checkDescription(ph, 'info', { ...i, config: JSON.parse(i.config) }, task);
  if (withStateDict) checkStateDict(ph, 'info', () => h.stateDict(), i.parameters);
}

/** Phase "getters": the public API, getters hammered while each job runs. */
async function gettersPhase(ph: Phase, cfg: BertConfigJson, deadline: number): Promise<void> {
  const task = 'text-classification';
  const m = await BertModel.fromConfig(cfg, { task, seed: 1 });
  const tmp = tempDir('blockprune-stress-');
  try {
    const plain = join(tmp.path, 'plain');
    await m.save(plain);
    let round = 0;
    // `expect`: what the getters must say as soon as the job has resolved (its description is published
    // before its Promise settles).
    const run = async (name: string, job: () => Promise<unknown>, expect?: { patched: boolean; threshold?: number }): Promise<unknown> => {
      ph.started(name);
      const p = job();
      await ph.hammer(p, () => probeModel(ph, m, task, ++round % 8 === 0));
      const v = await ph.settle(name, p);
      if (expect && (m.patched !== expect.patched || m.threshold !== expect.threshold))
        ph.problem(`after ${name}: patched ${m.patched}, threshold ${m.threshold}; expected ${JSON.stringify(expect)}`);
      return v;
    };
    const x = batch(cfg.vocab_size, false);
    const y = batch(cfg.vocab_size, true);
    do {
      await run('forward', () => m.forward(x), { patched: false });
      await run('patch', () => m.patch(PRUNING), { patched: true, threshold: PRUNING.options.initialThreshold });
      await run('setThreshold', () => m.setThreshold(0.05), { patched: true, threshold: 0.05 });
      await run('regularization', () => m.regularization({ regularization: 'l1' }));
      await run('masks', () => m.masks());
      await run('trainStep', () => m.trainStep(y, { threshold: 0.1, lr: 1e-4, regularization: 'l1', lambda: 1 }), { patched: true, threshold: 0.1 });
      await run('gradients', () => m.gradients(y));
      await run('forward', () => m.forward(x));
      await run('save', () => m.save(join(tmp.path, 'patched')));
      await run('loadState', () => m.loadState(join(tmp.path, 'patched', 'model.safetensors')));
      const c = (await run('compact', () => m.compact())) as { model: BertModel } | undefined;
      if (c) {
        probeModel(ph, c.model, task, true);
        c.model.dispose();
      }
      await run('compile', () => m.compile(), { patched: false });
      await run('fillZeros', () => m.fillZeros(round));
      await run('loadState', () => m.loadState(join(plain, 'model.safetensors')), { patched: false });
      await run('resetOptimizer', () => m.resetOptimizer());
      await run('readStateDict', () => m.readStateDict());
    } while (Date.now() < deadline);
    probeModel(ph, m, task, true);
  } finally {
    m.dispose();
    tmp.cleanup();
  }
}

/** The jobs of the native phase, all fired at once on one handle. */
function nativeBurst(h: NativeModel, ts: NativeTrainingState, plan: string, x: ReturnType<typeof batch>, y: ReturnType<typeof batch>, file: string, dir: string, i: number): Array<[string, Promise<unknown>, string[]]> {
  return [
    ['forward', call(() => h.forward(x)), []],
    ['patch', call(() => h.patch(plan)), ['E_INVALID_ARG']],
    ['setThreshold', call(() => h.setThreshold(0.02 * (i % 5))), ['E_INVALID_ARG']],
    ['trainStep', call(() => ts.trainStep(h, y, { threshold: 0.1, lr: 1e-4 })), []],
    ['masks', call(() => h.masks()), []],
    ['regularization', call(() => h.regularization({ regularization: 'l1' })), []],
    ['forward', call(() => h.forward(x, { hiddenStates: true })), []],
    ['fillZeros', call(() => h.fillZeros(i)), ['E_INVALID_ARG']],
    ['loadState', call(() => h.loadState(file, { strict: false })), []],
    ['gradients', call(() => h.gradients(y, {})), []],
    ['compile', call(() => h.compile()), ['E_INVALID_ARG']],
    ['resetOptimizer', call(() => ts.resetOptimizer(h)), []],
    ['save', call(() => h.save(dir)), []],
    ['saveTraining', call(() => ts.save(h, file.replace(/model\.safetensors$/, ''))), []],
    ['readStateDict', call(() => h.readStateDict()), []],
    ['timeForward', call(() => h.timeForward(x, { runs: 2 })), []],
    [
      'compact',
      call(() => h.compact()).then((r) => {
        r.model.dispose();
        return r;
      }),
      [],
    ],
  ];
}

async function burstWithProbes(ph: Phase, h: NativeModel, task: string, jobs: Array<[string, Promise<unknown>, string[]]>, round: { n: number }): Promise<void> {
  ph.started(`burst of ${jobs.map(([n]) => n).join(',')}`);
  await ph.hammer(
    Promise.allSettled(jobs.map(([, p]) => p)),
    () => probeHandle(ph, h, task, ++round.n % 8 === 0),
  );
  for (const [name, p, allowed] of jobs) await ph.settle(name, p, allowed);
}

async function planFor(cfg: BertConfigJson): Promise<string> {
  const m = await BertModel.fromConfig(cfg, { seed: 0 });
  try {
    return JSON.stringify(PRUNING.plan(m.geometry()));
  } finally {
    m.dispose();
  }
}

/** Phase "native": no TS queue, every job at once. */
async function nativePhase(ph: Phase, cfg: BertConfigJson, deadline: number): Promise<void> {
  const task = 'text-classification';
  const plan = await planFor(cfg);
  const h = await native().createModel(JSON.stringify(cfg), { task, seed: 2 });
  const tmp = tempDir('blockprune-stress-');
  try {
    await h.save(tmp.path);
    const file = join(tmp.path, 'model.safetensors');
    const x = batch(cfg.vocab_size, false);
    const y = batch(cfg.vocab_size, true);
    const round = { n: 0 };
    let i = 0;
    const ts = new (native().NativeTrainingState)(h);
    do await burstWithProbes(ph, h, task, nativeBurst(h, ts, plan, x, y, file, join(tmp.path, `out${i % 2}`), i++), round);
    while (Date.now() < deadline);
  } finally {
    h.dispose();
    tmp.cleanup();
  }
}

/** Phase "teacher": T's own jobs (its queue) while S trains with T as teacher (S's queue). */
async function teacherPhase(ph: Phase, cfg: BertConfigJson, deadline: number): Promise<void> {
  const task = 'text-classification';
  const s = await BertModel.fromConfig(cfg, { task, seed: 3 });
  const t = await BertModel.fromConfig(cfg, { task, seed: 4 });
  const tmp = tempDir('blockprune-stress-');
  try {
    await t.save(tmp.path);
    const x = batch(cfg.vocab_size, false);
    const y = batch(cfg.vocab_size, true);
    let stop = false;
    const student = (async () => {
      while (!stop) await ph.settle('student.trainStep', s.trainStep(y, { lr: 1e-4, alphaTeacher: 0.5, alphaCe: 0.5 }, t));
    })();
    let round = 0;
    const run = async (name: string, job: () => Promise<unknown>): Promise<void> => {
      ph.started(name);
      const p = job();
      await ph.hammer(p, () => probeModel(ph, t, task, ++round % 8 === 0));
      await ph.settle(name, p);
    };
    do {
      await run('teacher.patch', () => t.patch(PRUNING));
      await run('teacher.setThreshold', () => t.setThreshold(0.05));
      await run('teacher.forward', () => t.forward(x));
      await run('teacher.trainStep', () => t.trainStep(y, { threshold: 0.1 }));
      await run('teacher.masks', () => t.masks());
      await run('teacher.compile', () => t.compile());
      await run('teacher.fillZeros', () => t.fillZeros(round));
      await run('teacher.loadState', () => t.loadState(join(tmp.path, 'model.safetensors')));
    } while (Date.now() < deadline);
    stop = true;
    await student;
  } finally {
    s.dispose();
    t.dispose();
    tmp.cleanup();
  }
}

/** Phase "sync": a one-rank group's syncModel in the native bursts. */
async function syncPhase(ph: Phase, cfg: BertConfigJson, deadline: number): Promise<boolean> {
  if (!native().buildInfo().distributedBackends.includes('gloo')) return false;
  const task = 'text-classification';
  const plan = await planFor(cfg);
  const g = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 30_000 });
  const h = await native().createModel(JSON.stringify(cfg), { task, seed: 5 });
  const tmp = tempDir('blockprune-stress-');
  try {
    await h.save(tmp.path);
    const x = batch(cfg.vocab_size, false);
    const y = batch(cfg.vocab_size, true);
    const round = { n: 0 };
    const ts = new (native().NativeTrainingState)(h);
    let i = 0;
    do {
      const jobs = nativeBurst(h, ts, plan, x, y, join(tmp.path, 'model.safetensors'), join(tmp.path, 'out'), i++).filter(([n]) => ['forward', 'patch', 'trainStep', 'fillZeros', 'compile', 'setThreshold'].includes(n));
      jobs.splice(2, 0, ['syncModel', call(() => g.handle().syncModel(h)), []]);
      jobs.push(['syncModel', call(() => g.handle().syncModel(h)), []]);
      await burstWithProbes(ph, h, task, jobs, round);
    } while (Date.now() < deadline);
  } finally {
    h.dispose();
    await g.destroy();
    tmp.cleanup();
  }
  return true;
}

const GETTERS = ['config', 'task', 'numParameters', 'layers', 'parameterShapes', 'device', 'labels', 'patched', 'threshold'] as const;

/** Phase "dispose": dispose with work in flight and queued; everything after is E_DISPOSED. */
async function disposePhase(ph: Phase, cfg: BertConfigJson, deadline: number): Promise<void> {
  const task = 'text-classification';
  const x = batch(cfg.vocab_size, false);
  const y = batch(cfg.vocab_size, true);
  let i = 0;
  do {
    // BertModel: the first job may already be running natively when dispose() comes, the others wait in the
    // queue: each either succeeds or rejects with E_DISPOSED.
    const m = await BertModel.fromConfig(cfg, { task, seed: 6 });
    const before: Array<[string, Promise<unknown>]> = [
      ['forward', m.forward(x)],
      ['trainStep', m.trainStep(y)],
      ['patch', m.patch(PRUNING)],
      ['masks', m.masks()],
    ];
    if (i % 2) await tick();
    m.dispose();
    for (const g of GETTERS) {
      try {
        void m[g];
        ph.problem(`getter ${g} did not throw after dispose()`);
      } catch (e) {
        if (codeOf(e) === 'E_DISPOSED') ph.disposedErrors++;
        else ph.problem(`getter ${g} after dispose(): ${codeOf(e)}`);
      }
    }
    if (!m.disposed) ph.problem('disposed is false after dispose()');
    const after: Array<[string, () => Promise<unknown>]> = [
      ['forward', () => m.forward(x)],
      ['trainStep', () => m.trainStep(y)],
      ['compile', () => m.compile()],
      ['stateDict', async () => m.stateDict()],
      ['readStateDict', () => m.readStateDict()],
    ];
    for (const [name, f] of after) {
      let p: Promise<unknown>;
      try {
        p = f();
      } catch (e) {
        ph.problem(`${name} after dispose() threw synchronously (${codeOf(e)}) instead of rejecting`);
        continue;
      }
      await ph.settle(`after.${name}`, p.then(() => Promise.reject(new Error(`${name} resolved after dispose()`))), ['E_DISPOSED']);
    }
    for (const [name, p] of before) await ph.settle(`inflight.${name}`, p, ['E_DISPOSED']);

    // The native handle: jobs in flight hold the model; they finish after dispose().
    const h = await native().createModel(JSON.stringify(cfg), { task, seed: 7 });
    const running: Array<[string, Promise<unknown>]> = [
      ['native.forward', h.forward(x)],
      ['native.trainStep', new (native().NativeTrainingState)(h).trainStep(h, y, {})],
      ['native.masks', h.masks()],
    ];
    h.dispose();
    try {
      h.info();
      ph.problem('info() did not throw after dispose()');
    } catch (e) {
      if (codeOf(e) !== 'E_DISPOSED') ph.problem(`info() after dispose(): ${codeOf(e)}`);
    }
    for (const [name, p] of running) await ph.settle(name, p);

    // A teacher disposed while the student's step uses it.
    const s = await BertModel.fromConfig(cfg, { task, seed: 8 });
    const t = await BertModel.fromConfig(cfg, { task, seed: 9 });
    const step = s.trainStep(y, {}, t);
    if (i % 2) await tick();
    t.dispose();
    await ph.settle('student.trainStep(disposed teacher)', step, ['E_DISPOSED']);
    s.dispose();
    i++;
  } while (Date.now() < deadline);
}

async function main(): Promise<void> {
  const summary: Record<string, Record<string, ReturnType<Phase['toJSON']> | 'skipped: no Gloo in this build'>> = {};
  const phases: Array<[string, (ph: Phase, cfg: BertConfigJson, deadline: number) => Promise<unknown>]> = [
    ['getters', gettersPhase],
    ['native', nativePhase],
    ['teacher', teacherPhase],
    ['sync', syncPhase],
    ['dispose', disposePhase],
  ];
  const only = process.env.BLOCKPRUNE_STRESS_PHASES?.split(',');
  for (const [model, cfg] of Object.entries(MODELS)) {
    summary[model] = {};
    for (const [name, fn] of phases) {
      if (only && !only.includes(name)) continue;
      emit(`PHASE ${model} ${name}`);
      const ph = new Phase();
      const ran = await fn(ph, cfg, Date.now() + SECONDS * 1000);
      summary[model][name] = ran === false ? 'skipped: no Gloo in this build' : ph.toJSON();
      emit(`DONE ${model} ${name} ${JSON.stringify(summary[model][name])}`);
    }
  }
  emit('SUMMARY ' + JSON.stringify(summary));
}

main().catch((e) => {
  emit(`FATAL ${codeOf(e)} ${(e as Error)?.stack ?? e}`);
  process.exit(2);
});
