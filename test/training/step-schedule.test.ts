/**
 * Step-based evaluation and checkpointing (transformers' eval_steps / save_steps): evalSteps and saveSteps
 * add evaluations and checkpoints inside epochs, next to those of every epoch end and of the last step
 * (maxSteps); checkpointEvery, saveSteps' former name, is still read; wrong combinations are refused up front.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { LogEntry, SparseTrainer, SparseTrainerOptions } from '../../lib/training/trainer';
import { tempDir } from '../helpers';
import { TINY, ToyData } from '../toy';

const train = new ToyData(256, 1); // 16 steps per epoch at batch 16
const evalSet = new ToyData(64, 2);
let evaluated = 0;
const evaluate = async (m: BertModel) => {
  evaluated++;
  let ok = 0;
  for (const b of evalSet.batches(64)) {
    const logits = (await m.forward(b)).logits.data as Float32Array;
    for (let i = 0; i < b.batchSize; i++) ok += (logits[2 * i + 1] > logits[2 * i] ? 1 : 0) === b.labels![i] ? 1 : 0;
  }
  return { accuracy: ok / evalSet.length };
};

const steps = (dir: string) =>
  readdirSync(dir)
    .filter((d) => /^checkpoint-\d+$/.test(d))
    .map((d) => Number(d.slice(11)))
    .sort((a, b) => a - b);

async function run(extra: Partial<SparseTrainerOptions>, dir: string) {
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  const logFile = join(dir, 'log.jsonl');
  const o = { model, train, evaluate, epochs: 2, maxSteps: 27, batchSize: 16, learningRate: 2e-3, seed: 3, keepCheckpoints: 100, outputDir: join(dir, 'ckpt'), logFile, handleSigint: false, progress: false };
  const r = await new SparseTrainer({ ...o, ...extra }).train();
  const log = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogEntry);
  model.dispose();
  r.model.dispose();
  return { r, log, checkpoints: steps(join(dir, 'ckpt')) };
}

test.serial('evalSteps and saveSteps: evaluations and checkpoints every N steps, plus every epoch end and the last step', async (t) => {
  const tmp = tempDir();
  try {
    evaluated = 0;
    const { r, log, checkpoints } = await run({ evalSteps: 5, saveSteps: 6 }, tmp.path);
    const evals = log.filter((e) => e.type === 'eval');
    t.log(`evaluations at steps ${evals.map((e) => e.step).join(', ')}; checkpoints at ${checkpoints.join(', ')}`);
    t.is(r.steps, 27);
    // 5, 10, 15 inside epoch 1; 16 its end; 20, 25 inside epoch 2; 27 the last step (maxSteps).
    t.deepEqual(evals.map((e) => e.step), [5, 10, 15, 16, 20, 25, 27]);
    t.deepEqual(evals.map((e) => e.epoch), [5, 10, 15, 16, 20, 25, 27].map((s) => Math.round((s / 16) * 1e4) / 1e4));
    t.is(evaluated, 7);
    t.deepEqual(r.history.map((h) => h.step), [5, 10, 15, 16, 20, 25, 27]);
    t.true(evals.every((e) => typeof e.accuracy === 'number'));
    t.deepEqual(checkpoints, [6, 12, 16, 18, 24, 27]);
    t.deepEqual(log.filter((e) => e.type === 'checkpoint').map((e) => e.step), [6, 12, 16, 18, 24, 27]);
    // Each checkpoint holds the evaluations made up to it.
    const state = JSON.parse(readFileSync(join(tmp.path, 'ckpt', 'checkpoint-12', 'blockprune_trainer_state.json'), 'utf8'));
    t.deepEqual(state.history.map((h: { step: number }) => h.step), [5, 10]);
  } finally {
    tmp.cleanup();
  }
});

test.serial('checkpointEvery is saveSteps under its former name; without either, epoch ends and the last step only', async (t) => {
  const a = tempDir();
  const b = tempDir();
  try {
    t.deepEqual((await run({ checkpointEvery: 6 }, a.path)).checkpoints, [6, 12, 16, 18, 24, 27]);
    const plain = await run({}, b.path);
    t.deepEqual(plain.checkpoints, [16, 27]);
    t.deepEqual(plain.log.filter((e) => e.type === 'eval').map((e) => e.step), [16, 27]);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('saveSteps and checkpointEvery that disagree, evalSteps without evaluate, eval_steps: refused before any work', async (t) => {
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  try {
    const base = { model, train };
    const e1 = t.throws(() => new SparseTrainer({ ...base, saveSteps: 5, checkpointEvery: 6 }));
    t.is((e1 as { code?: string }).code, 'E_INVALID_ARG');
    t.regex(e1!.message, /options\.checkpointEvery/);
    t.notThrows(() => new SparseTrainer({ ...base, saveSteps: 6, checkpointEvery: 6 }));
    const e2 = t.throws(() => new SparseTrainer({ ...base, evalSteps: 5 }));
    t.regex(e2!.message, /evalSteps evaluates with it.*options\.evaluate/);
    const e3 = t.throws(() => new SparseTrainer({ ...base, evaluate, evalSteps: 0 }));
    t.regex(e3!.message, /options\.evalSteps/);
    const e4 = t.throws(() => new SparseTrainer({ ...base, eval_steps: 5 } as unknown as SparseTrainerOptions));
    t.regex(e4!.message, /evalSteps/);
  } finally {
    model.dispose();
  }
});
