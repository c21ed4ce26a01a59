/**
 * The sparse trainer on a small synthetic task (is token 7 in the sequence?): it learns, prunes on
 * schedule, evaluates each epoch, logs JSON lines, checkpoints atomically, resumes to the same result as an
 * uninterrupted run, refuses partial checkpoints, and runs the filled stage.
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertConfigJson, BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { latestCheckpoint, LogEntry, SparseTrainer } from '../../lib/training/trainer';
import { maxAbsDiff, skipped, tempDir } from '../helpers';
import { native } from '../../lib/runtime/native';
import { TINY, ToyData } from '../toy';

// The toy task with dropout on: resume must restore the dropout generator too.
const CONFIG: BertConfigJson = { ...TINY, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 };

async function accuracy(model: BertModel, data: ToyData): Promise<{ accuracy: number }> {
  let ok = 0;
  for (const b of data.batches(64)) {
    const logits = (await model.forward(b)).logits.data as Float32Array;
    for (let i = 0; i < b.batchSize; i++) ok += (logits[2 * i + 1] > logits[2 * i] ? 1 : 0) === b.labels![i] ? 1 : 0;
  }
  return { accuracy: ok / data.length };
}

const train = new ToyData(256, 1);
const evalSet = new ToyData(128, 2);

test.serial('dense fine-tuning learns the toy task, evaluates each epoch and logs JSON lines', async (t) => {
  const tmp = tempDir();
  try {
    const model = await BertModel.fromConfig(CONFIG, { seed: 1 });
    const before = await accuracy(model, evalSet);
    const logFile = join(tmp.path, 'log.jsonl');
    // lr 4e-3: at 2e-3 the task is learnt within these 64 steps for only some dropout streams (3 of seeds 1-6),
    // at 4e-3 for all six.
    const r = await new SparseTrainer({ model, train, evaluate: (m) => accuracy(m, evalSet), epochs: 4, batchSize: 16, learningRate: 4e-3, warmupSteps: 4, logFile, seed: 3 }).train();
    t.is(r.steps, 64);
    t.is(r.history.length, 4);
    t.log(`accuracy ${before.accuracy.toFixed(3)} -> ${r.history.map((h) => h.accuracy.toFixed(3)).join(' -> ')}`);
    t.true(r.history[3].accuracy > 0.9, `accuracy ${r.history[3].accuracy}`);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    t.true(lines.some((l) => l.type === 'step' && typeof l.loss === 'number' && typeof l.lr === 'number'));
    t.is(lines.filter((l) => l.type === 'eval').length, 4);
    model.dispose();
  } finally {
    tmp.cleanup();
  }
});

// Reported as skipped, saying why, on a CPU without the bf16 kernels (AVX-512 BF16).
const bf16Test = native().buildInfo().quantKernels.bf16 === 'none' ? skipped('this CPU has no bf16 kernels (quantKernels.bf16: none)').serial : test.serial;

bf16Test('bf16 mixed precision (mixedPrecision, transformers\' bf16) learns the toy task as fp32 does; a bad value is refused at construction', async (t) => {
  const model = await BertModel.fromConfig(CONFIG, { seed: 1 });
  try {
    const r = await new SparseTrainer({ model, train, evaluate: (m) => accuracy(m, evalSet), epochs: 4, batchSize: 16, learningRate: 4e-3, warmupSteps: 4, seed: 3, mixedPrecision: 'bf16' }).train();
    t.log(`accuracy ${r.history.map((h) => h.accuracy.toFixed(3)).join(' -> ')}`);
    t.true(r.history[3].accuracy > 0.9, `accuracy ${r.history[3].accuracy}`);
    t.throws(() => new SparseTrainer({ model, train, mixedPrecision: 'fp16' as 'bf16' }), { message: /options\.mixedPrecision/, code: 'E_INVALID_ARG' });
  } finally {
    model.dispose();
  }
});

test.serial('fine-pruning follows the schedule to the final threshold, density drops, compaction keeps accuracy', async (t) => {
  const model = await BertModel.fromConfig(CONFIG, { seed: 1 });
  const logs: LogEntry[] = [];
  const pruning = PruningConfig.hybrid(20, { attentionBlockRows: 16, attentionBlockCols: 16, maskScoresLearningRate: 0.1 });
  const r = await new SparseTrainer({
    model,
    pruning,
    train,
    evaluate: (m) => accuracy(m, evalSet),
    epochs: 6,
    batchSize: 16,
    learningRate: 2e-3,
    warmupSteps: 8,
    logEvery: 1,
    seed: 3,
    onLog: (e) => logs.push(e),
  }).train();
  const steps = logs.filter((l) => l.type === 'step');
  t.is(steps[0].threshold, 0);
  t.is(steps[steps.length - 1].threshold, 0.1);
  const densities = logs.filter((l) => l.type === 'eval').map((l) => (l.density as Record<string, number>).dense);
  t.log(`FFN density per epoch: ${densities.map((d) => (100 * d).toFixed(1) + '%').join(' ')}; accuracy ${r.history.map((h) => h.accuracy.toFixed(2)).join(' ')}`);
  t.true(densities[densities.length - 1] < densities[0] || densities[0] < 1);
  const { model: small, report } = await r.model.compact();
  t.log(`compact: ${report.parametersBefore} -> ${report.parametersAfter}, FFN ${report.ffnWidths}, heads ${report.heads}`);
  const acc = await accuracy(small, evalSet);
  t.is(acc.accuracy, r.history[r.history.length - 1].accuracy, 'compact model scores exactly as the masked one');
  model.dispose();
  small.dispose();
});

test.serial('interrupt + resume reaches exactly the result of a straight run; partial checkpoints are refused', async (t) => {
  const tmp = tempDir();
  try {
    const pruning = PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 });
    const common = { pruning, train, evaluate: (m: BertModel) => accuracy(m, evalSet), epochs: 3, batchSize: 16, learningRate: 2e-3, warmupSteps: 4, seed: 5, handleSigint: false };
    const a = await new SparseTrainer({ ...common, model: await BertModel.fromConfig(CONFIG, { seed: 2 }), outputDir: join(tmp.path, 'a') }).train();

    const outB = join(tmp.path, 'b');
    let trainer!: SparseTrainer;
    trainer = new SparseTrainer({
      ...common,
      model: await BertModel.fromConfig(CONFIG, { seed: 2 }),
      outputDir: outB,
      onLog: (e) => {
        if (e.type === 'step' && e.step === 20) trainer.stop(); // mid-epoch 1 (16 steps per epoch; logged every 10)
      },
    });
    const b1 = await trainer.train();
    t.true(b1.interrupted);
    t.is(b1.steps, 20);
    t.true(existsSync(join(outB, 'checkpoint-20', 'optimizer.safetensors')));
    // A newer, partial checkpoint (a crash while writing) must be skipped in favour of the last good one.
    mkdirSync(join(outB, 'checkpoint-30'));
    writeFileSync(join(outB, 'checkpoint-30', 'config.json'), '{}');
    t.is(latestCheckpoint(outB), join(outB, 'checkpoint-20'));
    const b2 = await new SparseTrainer({ ...common, model: await BertModel.fromConfig(CONFIG, { seed: 99 }), outputDir: outB, resume: true }).train();
    t.is(b2.steps, a.steps);
    t.deepEqual(b2.history, a.history, 'same metrics every epoch');
    const sa = a.model.stateDict();
    const sb = b2.model.stateDict();
    let worst = 0;
    for (const k of Object.keys(sa)) worst = Math.max(worst, maxAbsDiff(sa[k].data as Float32Array, sb[k].data as Float32Array));
    t.log(`straight vs interrupted+resumed: final weights max |diff| ${worst}`);
    t.is(worst, 0);
    // A directory given explicitly that is partial: clear error.
    const err: any = await t.throwsAsync(new SparseTrainer({ ...common, model: a.model, resume: join(outB, 'checkpoint-30') }).train());
    t.is(err.code, 'E_BAD_CHECKPOINT');
    t.regex(err.message, /checkpoint-30 is incomplete: \w+\.json is missing/);
    const kept = readdirSync(outB).filter((d) => d.startsWith('checkpoint-'));
    t.deepEqual(kept.sort(), ['checkpoint-32', 'checkpoint-48'], 'the last 2 complete checkpoints are kept');
    a.model.dispose();
    b2.model.dispose();
  } finally {
    tmp.cleanup();
    rmSync(tmp.path, { recursive: true, force: true });
  }
});

test.serial('the filled stage: compact, fill zeros, fine-tune with distillation from the dense teacher', async (t) => {
  const teacherModel = await BertModel.fromConfig(CONFIG, { seed: 1 });
  const dense = await new SparseTrainer({ model: teacherModel, train, epochs: 5, batchSize: 16, learningRate: 2e-3, seed: 1, handleSigint: false }).train();
  const student = await BertModel.fromConfig(CONFIG, { seed: 1 });
  const r = await new SparseTrainer({
    model: student,
    pruning: PruningConfig.hybrid(2, { attentionBlockRows: 16, attentionBlockCols: 16, maskScoresLearningRate: 0.05 }),
    train,
    evaluate: (m) => accuracy(m, evalSet),
    epochs: 5,
    batchSize: 16,
    learningRate: 2e-3,
    distillation: { teacher: dense.model, alphaCe: 0.1, alphaTeacher: 0.9, temperature: 2 },
    filled: { epochs: 1 },
    seed: 4,
    handleSigint: false,
  }).train();
  t.false(r.model.patched, 'the filled model is plain and compact');
  t.is(r.history.filter((h) => h.stage === 1).length, 1);
  const pruned = r.history[4].accuracy;
  const filled = r.history[5].accuracy;
  t.log(`accuracy: pruned ${pruned}, filled ${filled}`);
  t.true(filled >= pruned - 0.05, 'the filled stage does not lose what pruning kept');
  t.true(filled > 0.9);
  for (const m of [teacherModel, student, r.model]) m.dispose();
});

test.serial('distillation across families: a DistilBERT student fine-pruned with a BERT teacher that shares its vocabulary', async (t) => {
  const teacherModel = await BertModel.fromConfig(CONFIG, { seed: 1 });
  const dense = await new SparseTrainer({ model: teacherModel, train, epochs: 5, batchSize: 16, learningRate: 2e-3, seed: 1, handleSigint: false }).train();
  const student = await BertModel.fromConfig(
    { model_type: 'distilbert', vocab_size: TINY.vocab_size, dim: 32, n_layers: 2, n_heads: 2, hidden_dim: 64, max_position_embeddings: 32 },
    { task: 'text-classification', seed: 1 },
  );
  t.is(student.family, 'distilbert');
  const r = await new SparseTrainer({
    model: student,
    pruning: PruningConfig.hybrid(2, { attentionBlockRows: 16, attentionBlockCols: 16, maskScoresLearningRate: 0.05 }),
    train,
    evaluate: (m) => accuracy(m, evalSet),
    epochs: 8,
    batchSize: 16,
    learningRate: 3e-3,
    distillation: { teacher: dense.model, alphaCe: 0.5, alphaTeacher: 0.5, temperature: 2 },
    seed: 4,
    handleSigint: false,
  }).train();
  t.log(`DistilBERT student accuracy by epoch: ${r.history.map((h) => h.accuracy.toFixed(3)).join(' -> ')}`);
  t.true(r.history[r.history.length - 1].accuracy > 0.9);
  const { model: small } = await r.model.compact();
  t.is(small.family, 'distilbert');
  t.true((await accuracy(small, evalSet)).accuracy > 0.9);
  for (const m of [teacherModel, student, r.model, small]) m.dispose();
});
