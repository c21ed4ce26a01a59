/**
 * Fine-pruning encoder-decoders (issue 18): the scores' regularization against a reference computed here from the
 * scores (nn_pruning's regularization_loss: mean penalty per group x group lambda / groups, the decoder's linears
 * in groups of their own), and Seq2SeqTrainer on tiny random BART and T5: a copy task whose loss and density fall
 * with the schedule, distillation from a dense teacher, interrupted + resumed = uninterrupted (bytes of the
 * weights, scores included, and the last loss), and bad options refused before any work or file. Serial: dropout
 * draws from the process's generator, which concurrent training would share.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/seq2seq-pruning';
import type { LogEntry } from '../../lib/training/trainer-options';
import { Seq2SeqTrainer, Seq2SeqTrainExample, Seq2SeqTrainerOptions } from '../../lib/training/seq2seq-trainer';
import { readTensors, tempDir, writeSafetensorsFile } from '../helpers';
import { TINY_BART as BART, TINY_T5 as T5 } from '../toy';

/** Hybrid pruning at this size: 8x8 attention blocks (one head's rows), FFN units (1d_alt). */
const hybrid = (overrides = {}) => PruningConfig.hybrid(10, { attentionBlockRows: 8, attentionBlockCols: 8, ...overrides });

/** `n` copy pairs: source `len` ids in [3, vocab), target = source + eos. */
function copyTask(n: number, len: number, eos: number, vocab = 24, seed = 3): Seq2SeqTrainExample[] {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648), 3 + (s % (vocab - 3)));
  return Array.from({ length: n }, () => {
    const inputIds = Array.from({ length: len }, next);
    return { inputIds, labels: [...inputIds, eos] };
  });
}

/** Standard normal draws x 2 (Box-Muller over a small LCG): scores spread around 0, as the fixtures draw them. */
function normals(n: number, seed: number): Float32Array {
  let s = seed;
  const u = () => ((s = (s * 1103515245 + 12345) % 2147483648), (s + 1) / 2147483649);
  return Float32Array.from({ length: n }, () => 2 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

/** Gives every score tensor of a patched model random values; returns them by name. */
async function randomScores(model: Seq2SeqModel, dir: string, seed: number): Promise<Record<string, Float32Array>> {
  await model.save(dir);
  const all = await readTensors(join(dir, 'model.safetensors'));
  const scores: Record<string, Float32Array> = {};
  const file: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }> = {};
  Object.entries(all)
    .filter(([name]) => name.endsWith('mask_scores'))
    .forEach(([name, t], i) => {
      scores[name] = normals(t.data.length, seed + i);
      file[name] = { dtype: 'F32', shape: t.shape, data: scores[name] };
    });
  writeSafetensorsFile(join(dir, 'scores.safetensors'), file);
  await model.loadState(join(dir, 'scores.safetensors'), { strict: true });
  return scores;
}

/**
 * nn_pruning's regularization_loss (patch_coordinator.py) from the scores: each score tensor's penalty (l1: mean
 * sigmoid; l0: mean sigmoid(s - 2/3 log(0.1/1.1))) joins its linear's group (decoder_ when under the decoder;
 * attention for the attention linears, dense for the FFN), a group's term is its mean x its lambda / groups.
 */
function reference(scores: Record<string, Float32Array>, kind: 'l1' | 'l0', lambdas: Record<string, number>): { loss: number; groups: Record<string, number> } {
  const shift = kind === 'l0' ? (2 / 3) * Math.log(0.1 / 1.1) : 0;
  const acc: Record<string, number[]> = {};
  for (const [name, s] of Object.entries(scores)) {
    const group = (/(^|\.)decoder\./.test(name) ? 'decoder_' : '') + (/attn|Attention/.test(name) ? 'attention' : 'dense');
    let sum = 0;
    for (const x of s) sum += 1 / (1 + Math.exp(-(x - shift)));
    (acc[group] ??= []).push(sum / s.length);
  }
  const n = Object.keys(acc).length;
  const groups: Record<string, number> = {};
  let loss = 0;
  for (const [g, terms] of Object.entries(acc)) {
    groups[g] = (terms.reduce((a, b) => a + b, 0) / terms.length) * lambdas[g] / n;
    loss += groups[g];
  }
  return { loss, groups };
}

for (const [family, config] of [['bart', BART], ['t5', T5]] as const) {
  test.serial(`${family}: regularization equals nn_pruning's from the scores (l1, l0; decoder groups and their lambdas); trainStep adds lambda x it`, async (t) => {
    const dir = tempDir();
    const model = await Seq2SeqModel.fromConfig(config, { seed: 5 });
    try {
      await model.patch(hybrid());
      const scores = await randomScores(model, dir.path, 17);
      // Per encoder layer q, k, v, out + one FFN unit vector (1d_alt); per decoder layer 4 + 4 (cross) + 1.
      t.is(Object.keys(scores).length, 2 * 5 + 2 * 9, 'score tensors');
      const cases: Array<[string, 'l1' | 'l0', Record<string, number>, Record<string, number>]> = [
        ['decoder lambdas unset (encoder ones)', 'l1', { attentionLambda: 1, denseLambda: 0.25 }, { attention: 1, dense: 0.25, decoder_attention: 1, decoder_dense: 0.25 }],
        ['decoder lambdas set', 'l1', { attentionLambda: 1, denseLambda: 0.25, decoderAttentionLambda: 3, decoderDenseLambda: 0.5 }, { attention: 1, dense: 0.25, decoder_attention: 3, decoder_dense: 0.5 }],
        ['l0', 'l0', { attentionLambda: 2, denseLambda: 1, decoderDenseLambda: 0 }, { attention: 2, dense: 1, decoder_attention: 2, decoder_dense: 0 }],
      ];
      for (const [what, kind, options, lambdas] of cases) {
        const r = await model.regularization({ kind, ...options });
        const ref = reference(scores, kind, lambdas);
        t.deepEqual(Object.keys(r.groups).sort(), ['attention', 'decoder_attention', 'decoder_dense', 'dense'], what);
        // float32 sums of a few thousand sigmoids against float64: 1e-6 relative is loose enough and tight enough.
        t.true(Math.abs(r.loss - ref.loss) <= 1e-6 * Math.max(1, ref.loss), `${what}: ${r.loss} vs ${ref.loss}`);
        for (const [g, v] of Object.entries(ref.groups)) t.true(Math.abs(r.groups[g].loss - v) <= 1e-6, `${what}: ${g} ${r.groups[g].loss} vs ${v}`);
        for (const g of Object.values(r.groups)) t.true(g.density > 0 && g.density <= 1);
      }
      // The step's loss is CE + lambda x the penalty of the scores before the update.
      const before = await model.regularization({ kind: 'l1', attentionLambda: 1, denseLambda: 0.25 });
      const [ex] = copyTask(1, 5, config.eos_token_id);
      const inputs = { inputIds: Int32Array.from(ex.inputIds), batchSize: 1, seqLen: 5, targetLen: 6, labels: Int32Array.from(ex.labels) };
      const step = await model.trainStep(inputs, { threshold: 0.1, maskLr: 0.1, regularization: { kind: 'l1', lambda: 3, attentionLambda: 1, denseLambda: 0.25 } });
      t.true(Math.abs(step.reguLoss - before.loss) <= 1e-6, `reguLoss ${step.reguLoss} vs ${before.loss}`);
      t.true(Math.abs(step.loss - (step.taskLoss + 3 * step.reguLoss)) <= 1e-5, 'loss = CE + lambda x regu');
      t.deepEqual(Object.keys(step.groups).sort(), ['attention', 'decoder_attention', 'decoder_dense', 'dense']);
      // The scores moved with maskLr (sigmoid scores and L1 push them down: the penalty falls).
      t.true((await model.regularization({ kind: 'l1', attentionLambda: 1, denseLambda: 0.25 })).loss < before.loss);
    } finally {
      model.dispose();
      dir.cleanup();
    }
  });
}

test.serial('PruningConfig: decoder_attention_lambda / decoder_dense_lambda read (null: unset, absent from the options), negatives refused', (t) => {
  const c = PruningConfig.fromJSON({ decoder_attention_lambda: 3, decoder_dense_lambda: null });
  t.is(c.options.decoderAttentionLambda, 3);
  t.false('decoderDenseLambda' in c.options);
  t.false('decoderAttentionLambda' in hybrid().options, 'a run that sets neither keeps the options it had');
  t.is(new PruningConfig({ decoderDenseLambda: 0.5 }).options.decoderDenseLambda, 0.5);
  t.throws(() => new PruningConfig({ decoderDenseLambda: -1 }), { code: 'E_INVALID_ARG', message: /decoderDenseLambda/ });
});

test.serial('trainStep: a threshold or regularization on an unpatched model, bad regularization options: coded errors, the model still works', async (t) => {
  const model = await Seq2SeqModel.fromConfig(BART, { seed: 1 });
  try {
    const [ex] = copyTask(1, 4, 2);
    const inputs = { inputIds: Int32Array.from(ex.inputIds), batchSize: 1, seqLen: 4, targetLen: 5, labels: Int32Array.from(ex.labels) };
    await t.throwsAsync(model.trainStep(inputs, { threshold: 0.1 }), { code: 'E_INVALID_ARG', message: /patched/ });
    await t.throwsAsync(model.trainStep(inputs, { regularization: { kind: 'l1', lambda: 1 } }), { code: 'E_INVALID_ARG', message: /patched/ });
    await t.throwsAsync(model.regularization(), { code: 'E_INVALID_ARG', message: /not patched/ });
    await t.throwsAsync(model.trainStep(inputs, { regularization: { kind: 'l2' as 'l1' } }), { code: 'E_INVALID_ARG', message: /regularization\.kind/ });
    await t.throwsAsync(model.trainStep(inputs, { regularization: { lamda: 1 } as never }), { code: 'E_INVALID_ARG', message: /lamda/ });
    await t.throwsAsync(model.trainStep(inputs, { regularization: { kind: 'l1', decoderDenseLambda: -1 } }), { code: 'E_INVALID_ARG', message: /decoderDenseLambda/ });
    const r = await model.trainStep(inputs, {});
    t.true(Number.isFinite(r.loss));
    t.deepEqual(r.groups, {});
    t.is(r.reguLoss, 0);
  } finally {
    model.dispose();
  }
});

test.serial('Seq2SeqTrainer: a patched BART fine-prunes a copy task: loss falls, density falls, threshold per step = PruningConfig.schedule', async (t) => {
  const model = await Seq2SeqModel.fromConfig(BART, { seed: 2 });
  try {
    const pruning = hybrid({ finalThreshold: 0.3, maskScoresLearningRate: 0.1, regularizationFinalLambda: 2 });
    await model.patch(pruning);
    const entries: LogEntry[] = [];
    const evals: number[] = [];
    const trainer = new Seq2SeqTrainer({
      model,
      pruning,
      train: copyTask(32, 6, 2),
      epochs: 12,
      batchSize: 8,
      learningRate: 1e-2,
      warmupSteps: 4,
      logEvery: 1,
      handleSigint: false,
      onLog: (e) => entries.push(e),
      evaluate: async (m) => (evals.push(evals.length), { density: Object.values((await m.regularization()).groups).reduce((a, g) => a + g.density, 0) / 4 }),
    });
    const r = await trainer.train();
    t.is(r.steps, 48);
    t.is(r.epochs, 12);
    t.false(r.interrupted);
    t.is(r.history.length, 12, 'an evaluation per epoch');
    const steps = entries.filter((e) => e.type === 'step');
    t.is(steps.length, 48);
    steps.forEach((e) => t.is(e.threshold, pruning.schedule(e.step - 1, 48, 4).threshold, `threshold at step ${e.step}`));
    steps.forEach((e) => t.is(e.lambda, pruning.schedule(e.step - 1, 48, 4).lambda, `lambda at step ${e.step}`));
    const mean = (xs: LogEntry[], k: string) => xs.reduce((a, e) => a + (e[k] as number), 0) / xs.length;
    const first = mean(steps.slice(0, 4), 'ce');
    const last = mean(steps.slice(-4), 'ce');
    t.log(`CE ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    t.true(last < 0.7 * first, `CE fell: ${first} -> ${last}`);
    const density = (e: LogEntry) => Object.values(e.density as Record<string, number>);
    t.deepEqual(Object.keys(steps[0].density as object).sort(), ['attention', 'decoder_attention', 'decoder_dense', 'dense']);
    t.true(density(steps[0]).every((d) => d === 1), 'threshold 0 at the start keeps every block');
    const end = density(steps[steps.length - 1]);
    t.log(`density at the end: ${JSON.stringify(steps[steps.length - 1].density)}`);
    t.true(end.every((d) => d < 1) && end.reduce((a, b) => a + b) / 4 < 0.9, 'density fell with the schedule');
    // The evaluations ran at the final threshold, and the model ends there.
    t.true((r.history[11].density as number) < 0.9);
  } finally {
    model.dispose();
  }
});

test.serial('Seq2SeqTrainer: distillation from a dense teacher (T5): loss = alphaTeacher x KL + alphaCe x CE + lambda x regu', async (t) => {
  const student = await Seq2SeqModel.fromConfig(T5, { seed: 4 });
  const teacher = await Seq2SeqModel.fromConfig(T5, { seed: 40 });
  try {
    const steps: LogEntry[] = [];
    const r = await new Seq2SeqTrainer({
      model: student,
      pruning: hybrid(),
      train: copyTask(12, 5, 1),
      maxSteps: 6,
      batchSize: 4,
      learningRate: 1e-3,
      logEvery: 1,
      handleSigint: false,
      distillation: { teacher, alphaCe: 0.3, alphaTeacher: 0.7, temperature: 2 },
      onLog: (e) => e.type === 'step' && steps.push(e),
    }).train();
    t.is(r.steps, 6);
    t.true(student.isPatched(), 'the trainer patched the unpatched student from `pruning`');
    for (const e of steps) {
      const [loss, ce, distil, regu, lambda] = ['loss', 'ce', 'distil', 'regu', 'lambda'].map((k) => e[k] as number);
      t.true(distil > 0, 'the teacher differs: KL > 0');
      t.true(Math.abs(loss - (0.7 * distil + 0.3 * ce + lambda * regu)) <= 1e-4 * Math.max(1, loss), `step ${e.step}: ${loss}`);
    }
  } finally {
    student.dispose();
    teacher.dispose();
  }
});

/** One run of the resume test: a fresh dropout-active BART, the same options; `stopAt` interrupts it. */
async function resumeRun(outputDir: string, stopAt?: number, resume = false): Promise<{ model: Seq2SeqModel; last: LogEntry; result: Awaited<ReturnType<Seq2SeqTrainer['train']>> }> {
  const model = await Seq2SeqModel.fromConfig({ ...BART, dropout: 0.1, attention_dropout: 0.1 }, { seed: 9 });
  let last: LogEntry | undefined;
  const trainer: Seq2SeqTrainer = new Seq2SeqTrainer({
    model,
    pruning: hybrid({ maskScoresLearningRate: 0.05 }),
    train: copyTask(20, 5, 2),
    maxSteps: 12,
    batchSize: 6,
    learningRate: 2e-3,
    warmupSteps: 2,
    seed: 5,
    outputDir,
    saveSteps: 5,
    logEvery: 1,
    resume,
    handleSigint: false,
    onLog: (e) => e.type === 'step' && (last = e),
    onProgress: (p) => p.step === stopAt && trainer.stop(),
  });
  const result = await trainer.train();
  return { model, last: last!, result };
}

test.serial('Seq2SeqTrainer: interrupted mid-epoch and resumed = uninterrupted (weights and scores byte for byte, last loss), with dropout', async (t) => {
  const dir = tempDir();
  const runs: Seq2SeqModel[] = [];
  try {
    const whole = await resumeRun(join(dir.path, 'whole'));
    runs.push(whole.model);
    const cut = await resumeRun(join(dir.path, 'cut'), 7);
    runs.push(cut.model);
    t.true(cut.result.interrupted);
    t.is(cut.result.steps, 7);
    t.is(cut.result.lastCheckpoint, join(dir.path, 'cut', 'checkpoint-7'));
    const resumed = await resumeRun(join(dir.path, 'cut'), undefined, true);
    runs.push(resumed.model);
    t.false(resumed.result.interrupted);
    t.is(resumed.result.steps, 12);
    t.is(resumed.last.loss, whole.last.loss, 'the last step loss, exactly');
    t.is(resumed.last.step, 12);
    await whole.model.save(join(dir.path, 'a'));
    await resumed.model.save(join(dir.path, 'b'));
    const a = readFileSync(join(dir.path, 'a', 'model.safetensors'));
    const b = readFileSync(join(dir.path, 'b', 'model.safetensors'));
    t.true(a.includes('mask_scores'), 'the scores are saved with the weights');
    t.true(a.equals(b), 'weights and scores byte for byte');
  } finally {
    runs.forEach((m) => m.dispose());
    dir.cleanup();
  }
});

test.serial('Seq2SeqTrainer: bad options are E_INVALID_ARG naming the option, before any work or file', async (t) => {
  const dir = tempDir();
  const model = await Seq2SeqModel.fromConfig(BART, { seed: 1 });
  try {
    const out = join(dir.path, 'out');
    const base: Seq2SeqTrainerOptions = { model, train: copyTask(4, 4, 2), outputDir: out, logFile: join(out, 'log.jsonl'), handleSigint: false };
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['unknown key (HF name)', { learning_rate: 1e-3 }, /learning_rate.*learningRate/],
      ['unknown key (typo)', { batchSise: 2 }, /batchSise.*batchSize/],
      ['model', { model: {} }, /options\.model/],
      ['empty train', { train: [] }, /options\.train/],
      ['train not an array', { train: 'copy' }, /options\.train/],
      ['an id outside the vocabulary', { train: [...copyTask(2, 4, 2), { inputIds: [3, 4], labels: [24, 2] }] }, /options\.train\[2\]\.labels\[0\]/],
      ['an empty source', { train: [{ inputIds: [], labels: [2] }] }, /options\.train\[0\]\.inputIds/],
      ['an unknown example key', { train: [{ inputIds: [3], labels: [2], target: [2] }] }, /target.*options\.train\[0\]/],
      ['batchSize 0', { batchSize: 0 }, /options\.batchSize/],
      ['epochs 1.5', { epochs: 1.5 }, /options\.epochs/],
      ['learningRate < 0', { learningRate: -1 }, /options\.learningRate/],
      ['pruning', { pruning: { regularization: 'l1' } }, /options\.pruning/],
      ['teacher = student', { distillation: { teacher: model } }, /options\.distillation\.teacher/],
      ['teacher not a model', { distillation: { teacher: 'bart' } }, /options\.distillation\.teacher/],
      ['temperature 0', { distillation: { teacher: undefined, temperature: 0 } }, /options\.distillation\.teacher/],
      ['resume true without outputDir', { resume: true, outputDir: undefined, logFile: undefined }, /options\.resume/],
      ['onLog', { onLog: 'print' }, /options\.onLog/],
    ];
    for (const [what, patch, message] of cases) {
      const error = t.throws(() => new Seq2SeqTrainer({ ...base, ...patch } as Seq2SeqTrainerOptions), { code: 'E_INVALID_ARG' }, what);
      t.regex(error?.message ?? '', message, what);
      t.false(existsSync(out), `${what}: nothing written`);
    }
    // Still usable afterwards.
    t.true(Number.isFinite((await model.forward({ inputIds: Int32Array.of(3, 4), batchSize: 1, seqLen: 2 })).logits.data[0] as number));
  } finally {
    model.dispose();
    dir.cleanup();
  }
});
