/**
 * Resume refuses a changed run (issue 12): a checkpoint records what defined its run (seed, batch size, world
 * size, a data fingerprint, the pruning plan, the model's geometry, epochs/maxSteps); resuming with another
 * value is E_RESUME_MISMATCH naming the field and both values, unless allowResumeMismatch allows it. Old
 * checkpoints (no record) resume with a warning. keepCheckpoints never deletes the checkpoint just written.
 */
import test from 'ava';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { LogEntry, SparseTrainer, SparseTrainerOptions } from '../../lib/training/trainer';
import { tempDir } from '../helpers';
import { TINY, ToyData } from '../toy';

const DATA = new ToyData(48, 1);
const PRUNING = PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 });
/** 6 steps an epoch; a checkpoint every 2. */
const COMMON = { train: DATA, pruning: PRUNING, epochs: 1, batchSize: 8, seed: 5, learningRate: 1e-3, checkpointEvery: 2, logEvery: 1, handleSigint: false };

/** Trains until step `stopAt`, then stops (which writes a checkpoint there); returns its directory. */
async function interruptedRun(outputDir: string, stopAt: number, extra: Partial<SparseTrainerOptions> = {}): Promise<string> {
  let trainer!: SparseTrainer;
  trainer = new SparseTrainer({
    ...COMMON,
    model: await BertModel.fromConfig(TINY, { seed: 1 }),
    outputDir,
    ...extra,
    onLog: (e) => e.type === 'step' && e.step === stopAt && trainer.stop(),
  });
  const r = await trainer.train();
  r.model.dispose();
  return r.lastCheckpoint!;
}

test.serial('a resume with another seed, batch size, data, preset, model or epochs is refused naming the field; allowed, it resumes', async (t) => {
  const tmp = tempDir();
  try {
    const ckpt = await interruptedRun(join(tmp.path, 'a'), 2);
    t.regex(ckpt, /checkpoint-2$/);
    const state = JSON.parse(readFileSync(join(ckpt, 'blockprune_trainer_state.json'), 'utf8'));
    t.like(state.run, { seed: 5, batchSize: 8, worldSize: 1, epochs: 1, maxSteps: null, totalSteps: 6, data: { length: 48 } });
    t.regex(state.run.data.hash, /^[0-9a-f]{16}$/);
    t.deepEqual(state.run.model.layers, [[2, 64], [2, 64]]);

    const model = await BertModel.fromConfig(TINY, { seed: 9 });
    const other = await BertModel.fromConfig({ ...TINY, intermediate_size: 48 }, { seed: 9 });
    const resume = (o: Partial<SparseTrainerOptions>) => new SparseTrainer({ ...COMMON, model, resume: ckpt, ...o }).train();
    const cases: Array<[string, Partial<SparseTrainerOptions>, RegExp]> = [
      ['seed', { seed: 7 }, /seed is 5 in the checkpoint, 7 in this run/],
      ['batchSize', { batchSize: 4 }, /batchSize is 8 in the checkpoint, 4 in this run/],
      ['data (same size, other rows)', { train: new ToyData(48, 2) }, /data\.hash is "[0-9a-f]+" in the checkpoint, "[0-9a-f]+" in this run/],
      ['data (fewer rows)', { train: new ToyData(40, 1) }, /data\.length is 48 in the checkpoint, 40 in this run/],
      ['preset', { pruning: PruningConfig.heads(10) }, /pruning\.densePruningMethod is "sigmoied_threshold:1d_alt" in the checkpoint, "disabled" in this run/],
      ['lambda', { pruning: PruningConfig.hybrid(20, { attentionBlockRows: 16, attentionBlockCols: 16 }) }, /pruning\.regularizationFinalLambda is 10 in the checkpoint, 20/],
      ['no pruning', { pruning: undefined }, /pruning is \{.*\} in the checkpoint, null in this run/],
      ['model', { model: other }, /model\.layers is \[\[2,64\],\[2,64\]\] in the checkpoint, \[\[2,48\],\[2,48\]\] in this run/],
      ['epochs', { epochs: 2 }, /epochs is 1 in the checkpoint, 2 in this run/],
      ['maxSteps', { maxSteps: 4 }, /maxSteps is null in the checkpoint, 4 in this run/],
    ];
    for (const [field, o, re] of cases) {
      const err = (await t.throwsAsync(resume(o), undefined, field)) as Error & { code?: string };
      t.is(err?.code, 'E_RESUME_MISMATCH', field);
      t.regex(err?.message ?? '', re, field);
      t.regex(err?.message ?? '', /allowResumeMismatch/, field);
    }
    t.log(`${cases.length} changed runs refused with E_RESUME_MISMATCH naming the field and both values`);

    // Allowed: the run resumes (from step 2) and the log says what differed.
    for (const [field, o] of [
      ['seed', { seed: 7 }],
      ['batchSize', { batchSize: 4 }],
      ['data', { train: new ToyData(48, 2) }],
    ] as const) {
      const logs: LogEntry[] = [];
      const r = await new SparseTrainer({
        ...COMMON,
        model,
        resume: ckpt,
        outputDir: join(tmp.path, `allowed-${field}`),
        allowResumeMismatch: [field],
        ...o,
        onLog: (e) => logs.push(e),
      }).train();
      t.true(logs.some((e) => e.type === 'stage' && e.resumedFrom === ckpt), field);
      const allowed = logs.find((e) => e.resumeMismatchAllowed) as { resumeMismatchAllowed: string[] } | undefined;
      t.regex(allowed?.resumeMismatchAllowed.join(' ') ?? '', new RegExp(`^${field}`), field);
      t.true(r.steps > 2, `${field}: trained on from step 2 (${r.steps} steps)`);
      r.model.dispose();
    }
    // true allows any field but the world size.
    const r = await new SparseTrainer({ ...COMMON, model, resume: ckpt, seed: 8, epochs: 2, outputDir: join(tmp.path, 'any'), allowResumeMismatch: true }).train();
    t.is(r.steps, 12);
    r.model.dispose();
    model.dispose();
    other.dispose();
  } finally {
    tmp.cleanup();
  }
});

test.serial('a checkpoint without a run record (older version) resumes with a warning; its step count is still checked', async (t) => {
  const tmp = tempDir();
  try {
    const ckpt = await interruptedRun(join(tmp.path, 'a'), 2);
    const old = join(tmp.path, 'old', 'checkpoint-2');
    cpSync(ckpt, old, { recursive: true });
    const statePath = join(old, 'blockprune_trainer_state.json');
    const { run: _dropped, ...state } = JSON.parse(readFileSync(statePath, 'utf8'));
    writeFileSync(statePath, JSON.stringify(state));
    const model = await BertModel.fromConfig(TINY, { seed: 9 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const r = await new SparseTrainer({ ...COMMON, model, resume: old, seed: 7 }).train();
      await new Promise((res) => setImmediate(res)); // 'warning' is emitted on the next tick
      t.is(r.steps, 6);
      t.true(warnings.some((w) => /does not record what defined its run/.test(w)), warnings.join('\n'));
      r.model.dispose();
    } finally {
      process.off('warning', onWarning);
    }
    const err = (await t.throwsAsync(new SparseTrainer({ ...COMMON, model, resume: old, batchSize: 4 }).train())) as Error & { code?: string };
    t.is(err.code, 'E_RESUME_MISMATCH');
    t.regex(err.message, /totalSteps is 6 in the checkpoint, 12 in this run/);
    model.dispose();
  } finally {
    tmp.cleanup();
  }
});

test.serial('keepCheckpoints: 1 never deletes the checkpoint just written (resuming before a later one of an earlier run)', async (t) => {
  const tmp = tempDir();
  try {
    const early = await interruptedRun(join(tmp.path, 'a'), 2);
    // An earlier, complete run left checkpoint-6 in `out`; resuming from step 2 into it writes checkpoint-4, the newest
    // of this run but not the highest number there.
    const out = join(tmp.path, 'out');
    const full = await new SparseTrainer({ ...COMMON, model: await BertModel.fromConfig(TINY, { seed: 1 }), outputDir: out, keepCheckpoints: 1 }).train();
    t.true(existsSync(join(out, 'checkpoint-6')));
    full.model.dispose();
    let trainer!: SparseTrainer;
    trainer = new SparseTrainer({
      ...COMMON,
      model: await BertModel.fromConfig(TINY, { seed: 1 }),
      resume: early,
      outputDir: out,
      keepCheckpoints: 1,
      onLog: (e) => e.type === 'step' && e.step === 4 && trainer.stop(),
    });
    const r = await trainer.train();
    t.true(r.interrupted);
    t.is(r.lastCheckpoint, join(out, 'checkpoint-4'));
    t.true(existsSync(join(r.lastCheckpoint!, 'blockprune_trainer_state.json')), 'result.lastCheckpoint exists');
    r.model.dispose();
  } finally {
    tmp.cleanup();
  }
});

test.serial('log and checkpoint agree on "epoch" (epochs done, fractional); the state file is ours, the old name still resumes', async (t) => {
  const tmp = tempDir();
  try {
    // 6 steps an epoch, 2 epochs, a checkpoint every 3 steps and at each epoch end.
    const logs: LogEntry[] = [];
    const out = join(tmp.path, 'a');
    const o = { ...COMMON, epochs: 2, checkpointEvery: 3, keepCheckpoints: 10, outputDir: out, evaluate: async () => ({ accuracy: 1 }) };
    const r = await new SparseTrainer({ ...o, model: await BertModel.fromConfig(TINY, { seed: 1 }), onLog: (e) => logs.push(e) }).train();
    r.model.dispose();
    const at = (type: string, step: number) => logs.find((e) => e.type === type && e.step === step)?.epoch;
    t.deepEqual([at('step', 3), at('step', 6), at('eval', 6), at('checkpoint', 6), at('step', 9), at('eval', 12)], [0.5, 1, 1, 1, 1.5, 2]);
    t.deepEqual(r.history.map((h) => h.epoch), [1, 2]);
    let checked = 0;
    for (const e of logs.filter((l) => l.type === 'checkpoint')) {
      const dir = e.dir as string;
      t.false(existsSync(join(dir, 'trainer_state.json')), "transformers' file name is not borrowed");
      const state = JSON.parse(readFileSync(join(dir, 'blockprune_trainer_state.json'), 'utf8'));
      t.is(state.epoch, e.epoch, `${dir}: the checkpoint's epoch is the log's`);
      t.is(state.epoch, at('step', e.step), `${dir}: and the step line's`);
      checked++;
    }
    t.is(checked, 4, 'checkpoints at steps 3, 6, 9, 12');

    // A checkpoint written before (trainer_state.json, format 1: epoch = the epoch in progress) resumes.
    const old = join(tmp.path, 'old', 'checkpoint-9');
    cpSync(join(out, 'checkpoint-9'), old, { recursive: true });
    const { epochIndex, ...state } = JSON.parse(readFileSync(join(old, 'blockprune_trainer_state.json'), 'utf8'));
    rmSync(join(old, 'blockprune_trainer_state.json'));
    writeFileSync(join(old, 'trainer_state.json'), JSON.stringify({ ...state, format: 'blockprune-trainer-1', epoch: epochIndex, history: [{ epoch: 0, step: 6, accuracy: 1 }] }));
    const resumed = await new SparseTrainer({ ...o, outputDir: join(tmp.path, 'b'), model: await BertModel.fromConfig(TINY, { seed: 1 }), resume: old }).train();
    t.is(resumed.steps, 12);
    t.deepEqual(resumed.history.map((h) => h.epoch), [1, 2], "the old history's epoch index is read as epochs done");
    resumed.model.dispose();

    // transformers' own trainer_state.json is not taken for ours.
    writeFileSync(join(old, 'trainer_state.json'), JSON.stringify({ epoch: 1.5, global_step: 9, log_history: [] }));
    const err = (await t.throwsAsync(new SparseTrainer({ ...o, outputDir: join(tmp.path, 'c'), model: await BertModel.fromConfig(TINY, { seed: 1 }), resume: old }).train())) as Error & { code?: string };
    t.is(err.code, 'E_BAD_CHECKPOINT');
    t.regex(err.message, /trainer_state\.json is not a blockprune trainer state \(it is transformers' Trainer state\)/);
  } finally {
    tmp.cleanup();
  }
});
