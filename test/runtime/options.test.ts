/**
 * Options are checked before any work (issue 12): at every public entry point, a bad option (wrong type, NaN,
 * Infinity, negative, non-integer, an unknown key, with a did-you-mean) is E_INVALID_ARG naming the option
 * (a TypeError or RangeError from lib/validate.ts), and nothing is written: the output folders stay empty.
 * Blank texts are bad data rows, counted by skipInvalid.
 */
import test from 'ava';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClassificationDataset } from '../../lib/data/classification-dataset';
import { loadGlue } from '../../lib/data/glue';
import { QADataset } from '../../lib/data/qa-dataset';
import { loadSpamAssassin } from '../../lib/data/spam-assassin';
import { loadSquad } from '../../lib/data/squad';
import { launch, ProcessGroup } from '../../lib/training/distributed';
import { runFinePruneJob } from '../../lib/cli/job';
import { BertModel } from '../../lib/model/model';
import { exportOnnx } from '../../lib/model/onnx';
import { pipeline } from '../../lib/model/pipelines';
import { PruningConfig } from '../../lib/pruning/config';
import { buildReport } from '../../lib/report/report';
import { writeMaskImages } from '../../lib/report/mask-plots';
import { createInferenceServer } from '../../lib/serve/server';
import { DynamicBatcher } from '../../lib/serve/batcher';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { SparseTrainer, SparseTrainerOptions } from '../../lib/training/trainer';
import { buildWordPieceVocab, writeVocab } from '../../lib/tokenizer/vocab';
import { tempDir } from '../helpers';
import { TINY, ToyData } from '../toy';

/** [what is called, the call, what the message must say (the option's name, and the suggestion for a typo)]. */
type Case = [string, () => unknown];
/** [label, call, message pattern, code (default E_INVALID_ARG; an output place that cannot be written is E_WRITE_FAILED)]. */
type Table = Array<[string, () => unknown, RegExp, string?]>;

const SENTENCES = ['a gripping film', 'a dull film', 'the plot is thin', 'the actors are great', 'why is the sky blue', 'because of scattering'];

/** A model folder with a vocabulary: what pipelines and the server need. */
async function modelDir(dir: string, task: 'text-classification' | 'question-answering'): Promise<string> {
  const m = await BertModel.fromConfig({ ...TINY, vocab_size: 256 }, { task, seed: 1 });
  await m.save(dir);
  m.dispose();
  writeVocab(dir, buildWordPieceVocab(SENTENCES, { size: 200 }));
  return dir;
}

/**
 * Runs each case; each must fail with its code (E_INVALID_ARG: a TypeError or RangeError) and a message
 * matching its pattern.
 */
async function expectRefused(t: import('ava').ExecutionContext, cases: Table, anyClass = false): Promise<number> {
  for (const [label, run, re, code = 'E_INVALID_ARG'] of cases) {
    let err: (Error & { code?: string }) | undefined;
    try {
      await run();
    } catch (e) {
      err = e as Error & { code?: string };
    }
    if (!err) {
      t.fail(`${label}: accepted`);
      continue;
    }
    t.is(err.code, code, `${label}: ${err.message}`);
    if (!anyClass && code === 'E_INVALID_ARG') t.true(err instanceof TypeError || err instanceof RangeError, `${label}: a ${err.constructor.name}`);
    t.regex(err.message, re, label);
  }
  return cases.length;
}

test('SparseTrainer: every option checked (type, range, integer, unknown keys with HF names mapped) before anything is written', async (t) => {
  const tmp = tempDir();
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  const teacher = await BertModel.fromConfig(TINY, { seed: 2 });
  try {
    const out = join(tmp.path, 'out');
    mkdirSync(out);
    const aFile = join(tmp.path, 'file');
    writeFileSync(aFile, 'x');
    const base: SparseTrainerOptions = { model, train: new ToyData(32, 1), batchSize: 8, outputDir: join(out, 'run'), logFile: join(out, 'log.jsonl'), handleSigint: false };
    const make = (o: Record<string, unknown>) => () => new SparseTrainer({ ...base, ...o } as SparseTrainerOptions);
    const cases: Table = [];
    for (const k of [Number.NaN, 0, -1, 1.5, Infinity, '2']) cases.push([`keepCheckpoints ${String(k)}`, make({ keepCheckpoints: k }), /options\.keepCheckpoints/]);
    for (const [k, bad] of [
      ['epochs', [-1, 1.5, Number.NaN]],
      ['batchSize', [0, Infinity, '32', 2.5]],
      ['maxSteps', [0, -3]],
      ['warmupSteps', [-1, 2.5]],
      ['seed', [-1, 1.5, Number.NaN]],
      ['checkpointEvery', [0, Infinity]],
      ['logEvery', [0]],
      ['learningRate', [Number.NaN, -1, Infinity, 11, '5e-5']],
      ['weightDecay', [-0.1, Number.NaN]],
      ['maxGradNorm', [Number.NaN, -1]],
      ['evaluationTimeoutMs', [0, -1]],
      ['progress', ['yes']],
      ['handleSigint', [1]],
      ['evaluate', ['accuracy']],
      ['onProgress', ['bar']],
      ['resume', ['', 3]],
    ] as const)
      for (const x of bad) cases.push([`${k} ${String(x)}`, make({ [k]: x }), new RegExp(`options\\.${k}`)]);
    cases.push(
      ['model {}', make({ model: {} }), /options\.model/],
      ['train without batches()', make({ train: { length: 4 } }), /options\.train/],
      ['train.length -1', make({ train: { length: -1, batches: () => [] } }), /options\.train\.length/],
      ['pruning as a plain object', make({ pruning: { finalThreshold: 0.1 } }), /options\.pruning/],
      ['learningrate', make({ learningrate: 1e-4 }), /"learningrate".*did you mean "learningRate"/],
      ['num_train_epochs', make({ num_train_epochs: 3 }), /"num_train_epochs".*did you mean "epochs"/],
      ['per_device_train_batch_size', make({ per_device_train_batch_size: 8 }), /did you mean "batchSize"/],
      ['save_total_limit', make({ save_total_limit: 2 }), /did you mean "keepCheckpoints"/],
      ['keep_checkpoints', make({ keep_checkpoints: 2 }), /did you mean "keepCheckpoints"/],
      ['distillation: teacher is the student', make({ distillation: { teacher: model } }), /options\.distillation\.teacher/],
      ['distillation.temperature 0', make({ distillation: { teacher, temperature: 0 } }), /options\.distillation\.temperature/],
      ['distillation.alphaCe NaN', make({ distillation: { teacher, alphaCe: Number.NaN } }), /options\.distillation\.alphaCe/],
      ['distillation.alpha', make({ distillation: { teacher, alpha_ce: 1 } }), /"alpha_ce".*did you mean "alphaCe"/],
      ['filled.epochs 0', make({ filled: { epochs: 0 } }), /options\.filled\.epochs/],
      ['filled.lr', make({ filled: { epochs: 1, lr: 1e-4 } }), /"lr" in options\.filled/],
      ['allowResumeMismatch ["sead"]', make({ allowResumeMismatch: ['sead'] }), /options\.allowResumeMismatch\[0\]/],
      ['allowResumeMismatch "seed"', make({ allowResumeMismatch: 'seed' }), /options\.allowResumeMismatch/],
      ['resume: true without outputDir', make({ resume: true, outputDir: undefined }), /options\.resume/],
      ['epochs 0 without maxSteps', make({ epochs: 0 }), /options\.epochs/],
      ['outputDir is a file', make({ outputDir: aFile }), /options\.outputDir.*is a file/, 'E_WRITE_FAILED'],
      ['outputDir under a file', make({ outputDir: join(aFile, 'sub') }), /options\.outputDir.*is a file/, 'E_WRITE_FAILED'],
      ['logFile is a directory', make({ logFile: out }), /options\.logFile.*is a directory/, 'E_WRITE_FAILED'],
      ['tensorboardDir is a file', make({ tensorboardDir: aFile }), /options\.tensorboardDir.*is a file/, 'E_WRITE_FAILED'],
      ['logging_dir', make({ logging_dir: out }), /"logging_dir".*did you mean "tensorboardDir"/],
    );
    const n = await expectRefused(t, cases);
    t.deepEqual(readdirSync(out), [], 'nothing written');
    t.log(`SparseTrainer: ${n} bad options refused with E_INVALID_ARG naming the option; output folder empty`);
  } finally {
    model.dispose();
    teacher.dispose();
    tmp.cleanup();
  }
});

test('an outputDir that is a file is refused at construction, before any step', async (t) => {
  const tmp = tempDir();
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  try {
    const file = join(tmp.path, 'file');
    writeFileSync(file, 'x');
    let steps = 0;
    const t0 = performance.now();
    const err = t.throws(
      () => new SparseTrainer({ model, train: new ToyData(64, 1), batchSize: 8, outputDir: file, handleSigint: false, onLog: () => steps++ }),
    ) as Error & { code?: string };
    const ms = performance.now() - t0;
    t.log(`refused in ${ms.toFixed(1)} ms: ${err.message}`);
    t.is(err.code, 'E_WRITE_FAILED');
    t.is(steps, 0);
    t.true(ms < 200);
  } finally {
    model.dispose();
    tmp.cleanup();
  }
});

test('PruningConfig and its presets: ranges of lambda, blocks, penalties, warm-ups; unknown options with a suggestion', async (t) => {
  const cases: Table = [
    ['hybrid(-5)', () => PruningConfig.hybrid(-5), /lambda/],
    ['hybrid(NaN)', () => PruningConfig.hybrid(Number.NaN), /lambda/],
    ['hybrid(Infinity)', () => PruningConfig.hybrid(Infinity), /lambda/],
    ['hybrid("20")', () => PruningConfig.hybrid('20' as unknown as number), /lambda/],
    ['hybrid(20, null)', () => PruningConfig.hybrid(20, null as unknown as object), /overrides/],
    ['block(0, 32)', () => PruningConfig.block(0, 32), /rows/],
    ['block(32, 1.5)', () => PruningConfig.block(32, 1.5), /cols/],
    ['block(32, 32, -1)', () => PruningConfig.block(32, 32, -1), /lambda/],
    ['heads(-1)', () => PruningConfig.heads(-1), /lambda/],
    ['unstructured(NaN)', () => PruningConfig.unstructured(Number.NaN), /lambda/],
    ['preset("hybrid", -5)', () => PruningConfig.preset('hybrid', -5), /lambda/],
    ['preset("block:0x32")', () => PruningConfig.preset('block:0x32'), /rows/],
    ['preset(5)', () => PruningConfig.preset(5 as unknown as string), /preset/],
    ['regularizationFinalLambda -1', () => new PruningConfig({ regularizationFinalLambda: -1 }), /regularizationFinalLambda/],
    ['attentionLambda -1', () => new PruningConfig({ attentionLambda: -1 }), /attentionLambda/],
    ['denseLambda Infinity', () => new PruningConfig({ denseLambda: Infinity }), /denseLambda/],
    ['maskScoresLearningRate -1', () => new PruningConfig({ maskScoresLearningRate: -1 }), /maskScoresLearningRate/],
    ['initialWarmup Infinity', () => new PruningConfig({ initialWarmup: Infinity }), /initialWarmup/],
    ['finalWarmup -1', () => new PruningConfig({ finalWarmup: -1 }), /finalWarmup/],
    ['maskInit NaN', () => new PruningConfig({ maskInit: Number.NaN }), /maskInit/],
    ['denseBlockRows "half"', () => new PruningConfig({ denseBlockRows: 'half' as unknown as number }), /denseBlockRows/],
    ['attentionBlockCols -32', () => new PruningConfig({ attentionBlockCols: -32 }), /attentionBlockCols/],
    ['finalthreshold', () => new PruningConfig({ finalthreshold: 0.1 } as object), /did you mean "finalThreshold"/],
    ['final_threshold (snake_case)', () => new PruningConfig({ final_threshold: 0.1 } as object), /did you mean "finalThreshold"/],
  ];
  const n = await expectRefused(t, cases);
  // The reference's JSON names: a typo there gets a suggestion too (a pruning-config error, not a TypeError).
  const m = await expectRefused(t, [['fromJSON final_treshold', () => PruningConfig.fromJSON({ final_treshold: 0.1 }), /did you mean "final_threshold"/]], true);
  t.log(`PruningConfig: ${n + m} bad options refused`);
});

test('pipelines, tokenizer, server, exportOnnx, fromPretrained, fromConfig: bad options refused, nothing written', async (t) => {
  const tmp = tempDir();
  try {
    const cls = await modelDir(join(tmp.path, 'cls'), 'text-classification');
    const qaDir = await modelDir(join(tmp.path, 'qa'), 'question-answering');
    const out = join(tmp.path, 'out');
    mkdirSync(out);
    const classify = await pipeline('text-classification', cls);
    const qa = await pipeline('question-answering', qaDir);
    const tok = BertTokenizer.fromDir(cls);
    const model = classify.model;
    const q = { question: 'why is the sky blue', context: 'because of scattering' };
    const cases: Table = [
      ['pipeline batchSize 0', () => pipeline('text-classification', cls, { batchSize: 0 }), /options\.batchSize/],
      ['pipeline batchSize NaN', () => pipeline('text-classification', cls, { batchSize: Number.NaN }), /options\.batchSize/],
      ['pipeline maxLength 1.5', () => pipeline('text-classification', cls, { maxLength: 1.5 }), /options\.maxLength/],
      ['pipeline maxLength past the position table', () => pipeline('text-classification', cls, { maxLength: 64 }), /at most 32 .* for options\.maxLength/],
      ['pipeline batchsize', () => pipeline('text-classification', cls, { batchsize: 4 } as object), /did you mean "batchSize"/],
      ['pipeline device 5', () => pipeline('text-classification', cls, { device: 5 as unknown as string }), /options\.device/],
      ['classify topK 0', () => classify('a film', { topK: 0 }), /options\.topK/],
      ['classify topK Infinity', () => classify('a film', { topK: Infinity }), /options\.topK/],
      ['classify topk', () => classify('a film', { topk: 1 } as object), /did you mean "topK"/],
      ['qa maxAnswerLength -1', () => qa(q, { maxAnswerLength: -1 }), /options\.maxAnswerLength/],
      ['qa docStride 1.5', () => qa(q, { docStride: 1.5 }), /options\.docStride/],
      ['qa handleImpossibleAnswer "yes"', () => qa(q, { handleImpossibleAnswer: 'yes' as unknown as boolean }), /options\.handleImpossibleAnswer/],
      ['qa max_answer_length', () => qa(q, { max_answer_length: 5 } as object), /did you mean "maxAnswerLength"/],
      ['encode maxLength 0', () => tok.encode('a film', null, { maxLength: 0 }), /opts\.maxLength/],
      ['encode maxLength NaN', () => tok.encode('a film', null, { maxLength: Number.NaN }), /opts\.maxLength/],
      ['encode truncation "yes"', () => tok.encode('a film', null, { truncation: 'yes' as 'only_first' }), /opts\.truncation/],
      ['encode addSpecialTokens 1', () => tok.encode('a film', null, { addSpecialTokens: 1 as unknown as boolean }), /opts\.addSpecialTokens/],
      ['encode maxlength', () => tok.encode('a film', null, { maxlength: 8 } as object), /did you mean "maxLength"/],
      ['encodeBatch padding "max"', () => tok.encodeBatch(['a film'], { padding: 'max' as 'longest' }), /opts\.padding/],
      ['encodeBatch maxLength -1', () => tok.encodeBatch(['a film'], { maxLength: -1 }), /opts\.maxLength/],
      ['encodeBatch pading', () => tok.encodeBatch(['a film'], { pading: 'longest' } as object), /did you mean "padding"/],
      ['encodeBatch items "a film"', () => tok.encodeBatch('a film' as unknown as string[]), /items/],
      ['encodeQuestionContext docStride -1', () => tok.encodeQuestionContext('q', 'c', { maxLength: 16, docStride: -1 }), /opts\.docStride/],
      ['encodeQuestionContext maxQuestionLen', () => tok.encodeQuestionContext('q', 'c', { maxLength: 16, docStride: 2, maxQuestionLen: 4 } as never), /did you mean "maxQuestionLength"/],
      ['server maxBodyBytes 0', () => createInferenceServer({ classify, maxBodyBytes: 0, disposeOnClose: false }), /maxBodyBytes/],
      ['server maxTextChars NaN', () => createInferenceServer({ classify, maxTextChars: Number.NaN }), /maxTextChars/],
      ['server closeGraceMs -1', () => createInferenceServer({ classify, closeGraceMs: -1 }), /closeGraceMs/],
      ['server closeTimeoutMs (removed)', () => createInferenceServer({ classify, closeTimeoutMs: -1 } as object), /did you mean "closeGraceMs"|closeTimeoutMs/],
      ['server maxPadding -1', () => createInferenceServer({ classify, maxPadding: -1 }), /maxPadding/],
      ['server disposeOnClose "no"', () => createInferenceServer({ classify, disposeOnClose: 'no' as unknown as boolean }), /disposeOnClose/],
      ['server batching.maxBatch 0', () => createInferenceServer({ classify, batching: { maxBatch: 0 } }), /batching\.maxBatch/],
      ['server batching 5', () => createInferenceServer({ classify, batching: 5 as unknown as false }), /options\.batching/],
      ['server batching.maxbatch', () => createInferenceServer({ classify, batching: { maxbatch: 4 } as object }), /did you mean "maxBatch"/],
      ['server maxInput', () => createInferenceServer({ classify, maxInput: 4 } as object), /did you mean "maxInputs"/],
      ['server classify: a string', () => createInferenceServer({ classify: 'cls' as unknown as typeof classify }), /options\.classify/],
      ['DynamicBatcher maxBatch 0', () => new DynamicBatcher(async (x: number[]) => x, { maxBatch: 0 }), /maxBatch/],
      ['DynamicBatcher windowMs NaN', () => new DynamicBatcher(async (x: number[]) => x, { windowMs: Number.NaN }), /windowMs/],
      ['DynamicBatcher idleStart 1', () => new DynamicBatcher(async (x: number[]) => x, { idleStart: 1 as unknown as boolean }), /idleStart/],
      ['DynamicBatcher maxconcurrent', () => new DynamicBatcher(async (x: number[]) => x, { maxconcurrent: 2 } as object), /did you mean "maxConcurrent"/],
      ['exportOnnx opset 13', () => exportOnnx(model, join(out, 'm.onnx'), { opset: 13 }), /options\.opset/],
      ['exportOnnx opset 15.5', () => exportOnnx(model, join(out, 'm.onnx'), { opset: 15.5 }), /options\.opset/],
      ['exportOnnx opset NaN', () => exportOnnx(model, join(out, 'm.onnx'), { opset: Number.NaN }), /options\.opset/],
      ['exportOnnx extras "yes"', () => exportOnnx(model, join(out, 'm.onnx'), { extras: 'yes' as unknown as boolean }), /options\.extras/],
      ['exportOnnx opsets', () => exportOnnx(model, join(out, 'm.onnx'), { opsets: 17 } as object), /did you mean "opset"/],
      ['exportOnnx to a directory', () => exportOnnx(model, out), /path.*is a directory/, 'E_WRITE_FAILED'],
      ['fromPretrained numLabels 0', () => BertModel.fromPretrained(cls, { numLabels: 0 }), /options\.numLabels/],
      ['fromPretrained seed -1', () => BertModel.fromPretrained(cls, { seed: -1 }), /options\.seed/],
      ['fromPretrained task "summarize"', () => BertModel.fromPretrained(cls, { task: 'summarize' as 'bare' }), /options\.task/],
      ['fromPretrained numlabels', () => BertModel.fromPretrained(cls, { numlabels: 2 } as object), /did you mean "numLabels"/],
      ['fromConfig seed 1.5', () => BertModel.fromConfig(TINY, { seed: 1.5 }), /options\.seed/],
      ['fromConfig task "auto"', () => BertModel.fromConfig(TINY, { task: 'auto' as 'bare' }), /options\.task/],
      ['fromConfig sed', () => BertModel.fromConfig(TINY, { sed: 1 } as object), /did you mean "seed"/],
    ];
    const n = await expectRefused(t, cases);
    t.deepEqual(readdirSync(out), [], 'nothing written');
    t.log(`pipelines, tokenizer, server, exportOnnx, model loading: ${n} bad options refused with E_INVALID_ARG; output folder empty`);
    classify.dispose();
    qa.dispose();
  } finally {
    tmp.cleanup();
  }
});

test('data loaders and datasets: bad options refused; blank texts are bad rows that skipInvalid counts', async (t) => {
  const tmp = tempDir();
  try {
    const tok = BertTokenizer.fromDir(writeVocabDir(join(tmp.path, 'tok')));
    const tsv = join(tmp.path, 'train.tsv');
    writeFileSync(tsv, 'sentence\tlabel\na gripping film\t1\n\t0\n   \t1\na dull film\t0\n');
    const squad = join(tmp.path, 'squad.jsonl');
    writeFileSync(squad, '');
    const ds = new ClassificationDataset([{ text: 'a film', label: 0 }], tok, { maxLength: 16 });
    const cases: Table = [
      ['loadGlue limit -1', () => loadGlue('sst2', tsv, { limit: -1 }), /opts\.limit/],
      ['loadGlue limit 1.5', () => loadGlue('sst2', tsv, { limit: 1.5 }), /opts\.limit/],
      ['loadGlue skipInvalid "yes"', () => loadGlue('sst2', tsv, { skipInvalid: 'yes' as unknown as boolean }), /opts\.skipInvalid/],
      ['loadGlue format "csv"', () => loadGlue('sst2', tsv, { format: 'csv' as 'tsv' }), /opts\.format/],
      ['loadGlue limt', () => loadGlue('sst2', tsv, { limt: 5 } as object), /did you mean "limit"/],
      ['loadSquad version2 "yes"', () => loadSquad(squad, { version2: 'yes' as unknown as boolean }), /opts\.version2/],
      ['loadSquad dropimpossible', () => loadSquad(squad, { dropimpossible: true } as object), /did you mean "dropImpossible"/],
      ['loadSpamAssassin maxChars 0', () => loadSpamAssassin({ maxChars: 0 }), /opts\.maxChars/],
      ['loadSpamAssassin maxchars', () => loadSpamAssassin({ maxchars: 10 } as object), /did you mean "maxChars"/],
      ['ClassificationDataset maxLength 2', () => new ClassificationDataset([], tok, { maxLength: 2 }), /opts\.maxLength/],
      ['ClassificationDataset maxlength', () => new ClassificationDataset([], tok, { maxlength: 16 } as object), /did you mean "maxLength"/],
      ['ClassificationDataset blank text', () => new ClassificationDataset([{ text: '  ', label: 0 }], tok), /examples\[0\]\.text/],
      ['QADataset docStride -1', () => new QADataset([], tok, { docStride: -1 }), /opts\.docStride/],
      ['batches(0)', () => [...ds.batches(0)], /batchSize/],
      ['batches seed 1.5', () => [...ds.batches(4, { seed: 1.5 })], /opts\.seed/],
      ['batches epoch -1', () => [...ds.batches(4, { epoch: -1 })], /opts\.epoch/],
      ['batches shufle', () => [...ds.batches(4, { shufle: true } as object)], /did you mean "shuffle"/],
      ['batches shard.rank 2 of 2', () => [...ds.batches(4, { shard: { rank: 2, worldSize: 2 } })], /opts\.shard\.rank/],
    ];
    const n = await expectRefused(t, cases);
    t.log(`data: ${n} bad options refused`);

    // Blank texts: a row, not an option; E_BAD_DATA naming file and line, or skipped and counted.
    const err = (await t.throwsAsync(loadGlue('sst2', tsv))) as Error & { code?: string };
    t.is(err.code, 'E_BAD_DATA');
    t.regex(err.message, /train\.tsv:3: field sentence is empty/);
    const r = await loadGlue('sst2', tsv, { skipInvalid: true });
    t.is(r.examples.length, 2);
    t.is(r.skipped, 2);
    t.regex(r.skippedReasons.join('\n'), /:3: field sentence is empty\n.*:4: field sentence is only whitespace/);
    const boolq = join(tmp.path, 'val.jsonl');
    writeFileSync(boolq, JSON.stringify({ question: ' ', passage: 'p', label: true }) + '\n' + JSON.stringify({ question: 'q', passage: 'p', label: false }) + '\n');
    const { loadBoolQ } = await import('../../lib/data/glue');
    const b = await loadBoolQ(boolq, { skipInvalid: true });
    t.is(b.skipped, 1);
    t.is(b.examples.length, 1);
  } finally {
    tmp.cleanup();
  }
});

test('the fine-pruning job checks every option before it reads or writes anything', async (t) => {
  const tmp = tempDir();
  try {
    const output = join(tmp.path, 'job');
    const base = { task: 'sst2' as const, data: tmp.path, output, log: () => {} };
    const job = (o: Record<string, unknown>): Case[1] => () => runFinePruneJob({ ...base, ...o } as Parameters<typeof runFinePruneJob>[0]);
    const cases: Table = [
      ['batchSize 0', job({ batchSize: 0 }), /options\.batchSize/],
      ['maxLength 100000', job({ maxLength: 100000 }), /<= 512 for options\.maxLength/],
      ['maxLength past modelConfig positions', job({ maxLength: 64, modelConfig: { max_position_embeddings: 32 } }), /<= 32 for options\.maxLength/],
      ['learningRate NaN', job({ learningRate: Number.NaN }), /options\.learningRate/],
      ['pruneEpochs 0', job({ pruneEpochs: 0 }), /options\.pruneEpochs/],
      ['seed -1', job({ seed: -1 }), /options\.seed/],
      ['lambda -5', job({ lambda: -5 }), /lambda/],
      ['task "imagenet"', job({ task: 'imagenet' }), /options\.task/],
      ['modelConfig hidden 30 / 4 heads', job({ modelConfig: { hidden_size: 30, num_attention_heads: 4 } }), /hidden_size/],
      ['modelConfig layers 0', job({ modelConfig: { num_hidden_layers: 0 } }), /num_hidden_layers/],
      ['epochs (the flag name)', job({ epochs: 2 }), /did you mean "pruneEpochs"/],
      ['output is a file', job({ output: join(tmp.path, 'f') }), /options\.output.*is a file/, 'E_WRITE_FAILED'],
    ];
    writeFileSync(join(tmp.path, 'f'), 'x');
    const n = await expectRefused(t, cases);
    t.deepEqual(readdirSync(tmp.path), ['f'], 'no output folder, no vocabulary file');
    t.log(`job: ${n} bad options refused before any file was written`);
  } finally {
    tmp.cleanup();
  }
});

test('process groups, launcher, report and vocabulary options', async (t) => {
  const tmp = tempDir();
  const model = await BertModel.fromConfig(TINY, { seed: 1 });
  try {
    const file = join(tmp.path, 'file');
    writeFileSync(file, 'x');
    const one = { rank: 0, worldSize: 1 };
    const cases: Table = [
      ['init worldSize 0', () => ProcessGroup.init({ rank: 0, worldSize: 0 }), /worldSize/],
      ['init rank 1 of 1', () => ProcessGroup.init({ rank: 1, worldSize: 1 }), /rank/],
      ['init timeoutMs NaN', () => ProcessGroup.init({ ...one, timeoutMs: Number.NaN }), /timeoutMs/],
      ['init bucketMb 0', () => ProcessGroup.init({ ...one, bucketMb: 0 }), /bucketMb/],
      ['init masterPort 70000', () => ProcessGroup.init({ ...one, masterPort: 70000 }), /masterPort/],
      ['init backend "mpi"', () => ProcessGroup.init({ ...one, backend: 'mpi' as 'gloo' }), /backend/],
      ['init bucketMB', () => ProcessGroup.init({ ...one, bucketMB: 25 } as object as typeof one), /did you mean "bucketMb"/],
      ['launch nproc 0', () => launch({ nproc: 0, script: file }), /nproc/],
      ['launch nnodes 1.5', () => launch({ nproc: 1, nnodes: 1.5, script: file }), /nnodes/],
      ['launch nodeRank 1 of 1', () => launch({ nproc: 1, nodeRank: 1, script: file }), /nodeRank/],
      ['launch graceMs -1', () => launch({ nproc: 1, graceMs: -1, script: file }), /graceMs/],
      ['launch scrpit', () => launch({ nproc: 1, scrpit: file } as object as { nproc: number; script: string }), /did you mean "script"/],
      ['buildReport mask', () => buildReport(model, { mask: true } as object), /did you mean "masks"/],
      ['buildReport masks "yes"', () => buildReport(model, { masks: 'yes' as unknown as boolean }), /options\.masks/],
      ['writeMaskImages into a file', () => writeMaskImages(model, file), /dir.*is a file/, 'E_WRITE_FAILED'],
      ['vocabulary size 0', () => buildWordPieceVocab(SENTENCES, { size: 0 }), /opts\.size/],
      ['vocabulary minCharCount -1', () => buildWordPieceVocab(SENTENCES, { minCharCount: -1 }), /opts\.minCharCount/],
      ['vocabulary maxchars', () => buildWordPieceVocab(SENTENCES, { maxchars: 10 } as object), /did you mean "maxChars"/],
    ];
    const n = await expectRefused(t, cases);
    t.log(`process groups, launcher, report, vocabulary: ${n} bad options refused`);
  } finally {
    model.dispose();
    tmp.cleanup();
  }
});

function writeVocabDir(dir: string): string {
  writeVocab(dir, buildWordPieceVocab(SENTENCES, { size: 200 }));
  return dir;
}

test('model calls: forward, timeForward, trainStep, gradients, regularization, setThreshold, loadState, fillZeros options', async (t) => {
  const model = await BertModel.fromConfig(TINY, { seed: 1, task: 'text-classification' });
  try {
    const batch = { inputIds: new Int32Array(8).fill(9), batchSize: 1, seqLen: 8, labels: new Int32Array([1]) };
    const before = model.stateDict()['classifier.weight'].data;
    const cases: Table = [
      ['forward hiddenstates', () => model.forward(batch, { hiddenstates: true } as object), /did you mean "hiddenStates"/],
      ['forward options null', () => model.forward(batch, null as unknown as object), /options/],
      ['forward attentions 1', () => model.forward(batch, { attentions: 1 as unknown as boolean }), /options\.attentions/],
      ['timeForward runs 0', () => model.timeForward(batch, { runs: 0 }), /options\.runs/],
      ['timeForward warmup -1', () => model.timeForward(batch, { warmup: -1 }), /options\.warmup/],
      ['timeForward run', () => model.timeForward(batch, { run: 3 } as object), /did you mean "runs"/],
      ['trainStep lr -1', () => model.trainStep(batch, { lr: -1 }), /options\.lr/],
      ['trainStep lr NaN', () => model.trainStep(batch, { lr: Number.NaN }), /options\.lr/],
      ['trainStep temperature 0', () => model.trainStep(batch, { temperature: 0 }), /options\.temperature/],
      ['trainStep beta1 2', () => model.trainStep(batch, { beta1: 2 }), /options\.beta1/],
      ['trainStep learningRate', () => model.trainStep(batch, { learningRate: 1e-3 } as object), /unknown option "learningRate"/],
      ['trainStep regularization l2', () => model.trainStep(batch, { regularization: 'l2' as 'l1' }), /options\.regularization/],
      ['gradients lambda Infinity', () => model.gradients(batch, { lambda: Infinity }), /options\.lambda/],
      ['gradients lr (not a loss option)', () => model.gradients(batch, { lr: 1 } as object), /unknown option "lr"/],
      ['regularization denselambda', () => model.regularization({ denselambda: 1 } as object), /did you mean "denseLambda"/],
      ['setThreshold NaN', () => model.setThreshold(Number.NaN), /threshold/],
      ['setThreshold "0.1"', () => model.setThreshold('0.1' as unknown as number), /threshold/],
      ['loadState strict "yes"', () => model.loadState('x.safetensors', { strict: 'yes' as unknown as boolean }), /options\.strict/],
      ['fillZeros seed -1', () => model.fillZeros(-1), /seed/],
    ];
    const n = await expectRefused(t, cases);
    t.deepEqual(model.stateDict()['classifier.weight'].data, before, 'no step was taken');
    t.log(`model calls: ${n} bad options refused with E_INVALID_ARG before any native work`);
  } finally {
    model.dispose();
  }
});
