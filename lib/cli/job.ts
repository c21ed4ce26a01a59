/**
 * The end-to-end fine-pruning job (`blockprune train`, and the README's main command): load data, train a
 * dense model (or start from a checkpoint), fine-prune it with a preset, compact it, and report accuracy,
 * parameters, the per-layer table, latency dense vs compact, and mask pictures. Its options and their checks
 * are in job-options.ts, its data in task-data.ts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClassificationDataset } from '../data/classification-dataset';
import type { PostprocessOptions, QADataset } from '../data/qa-dataset';
import { resolveModel } from '../hub/hub';
import { BertConfigJson, BertModel, QUANT_DTYPES } from '../model/model';
import { configForFamily } from '../model/family-config';
import { PruningConfig, type PruningOptions } from '../pruning/config';
import { buildReport, DENSITY_DEFINITION, densityFigures, formatReport, withDensities } from '../report/report';
import { writeMaskImages } from '../report/mask-plots';
import { copyFileAtomicSync, ensureDir, writeFileAtomicSync } from '../runtime/atomic';
import { clearProgress } from '../runtime/progress';
import { BlockpruneError } from '../runtime/errors';
import { native } from '../runtime/native';
import { AutoTokenizer } from '../tokenizer/auto-tokenizer';
import { hasTokenizerFiles, TOKENIZER_FILES } from '../tokenizer/tokenizer-json';
import { loadTokenizer } from '../model/pipelines';
import { buildWordPieceVocab, writeVocab } from '../tokenizer/vocab';
import { ProcessGroup } from '../training/distributed';
import { accuracy as accuracyOf, argmax, f1Binary, squadMetrics, type SquadMetrics } from '../training/metrics';
import { BudgetResult, LogEntry, Metrics, SparseTrainer } from '../training/trainer';
import { checkFinePruneJobOptions, FinePruneJobOptions, REFERENCE_PRUNING_NAMES } from './job-options';
import { formatBudget, JobBudgetPlan, JobBudgetResult, measureBudget, planBudget } from './job-budget';
import { countProgress, trainingProgress } from './progress';
import { loadTaskData } from './task-data';

export interface JobResult {
  dense?: Metrics;
  pruned: Metrics;
  compact: Metrics;
  parameters: { dense: number; compact: number; reduction: number };
  /** The pruned model's density (DENSITY_DEFINITION): encoder, and its attention and dense (FFN) linears. */
  density: Record<string, number>;
  heads: number[];
  ffn: number[];
  latency: Array<{ batch: number; seq: number; denseMs: number; compactMs: number; speedup: number }>;
  /**
   * The compact model quantized (model.quantize(): int8 per channel, bf16), evaluated and timed as the fp32
   * compact model is: accuracy, latency per batch shape and the speed-up over the fp32 compact model. `kernels`
   * is what ran its layers (buildInfo().quantKernels): 'none' means they ran in fp32.
   */
  quantized: Array<{ dtype: 'int8' | 'bf16'; kernels: string; metrics: Metrics; latency: Array<{ batch: number; seq: number; ms: number; speedup: number }> }>;
  /** Pruning to a budget: the target, the cost model's prediction and the measured figure (job-budget.ts). */
  budget?: JobBudgetResult;
  outputDir: string;
  images: string[];
}

/**
 * Accuracy (and F1 of class 1 for two classes) of a classifier on a dataset, in percent. `labelMap[k]` is the
 * dataset's class of the model's class k, for a model whose id2label orders the task's labels otherwise
 * (default: the same order). `onBatch` is told the batches done of all.
 */
export async function evaluateClassifier(
  model: BertModel,
  data: ClassificationDataset,
  batchSize = 64,
  labelMap?: ArrayLike<number>,
  onBatch?: (done: number, total: number) => void,
): Promise<Metrics> {
  const preds = new Int32Array(data.length);
  const batches = Math.ceil(data.length / batchSize);
  let k = 0;
  let done = 0;
  for (const b of data.batches(batchSize)) {
    const out = await model.forward(b);
    const n = out.logits.shape[1];
    const p = argmax(out.logits.data as Float32Array, n);
    for (let i = 0; i < p.length; i++) preds[b.indices ? b.indices[i] : k + i] = labelMap ? labelMap[p[i]] : p[i];
    k += b.batchSize;
    onBatch?.(++done, batches);
  }
  const m: Metrics = { accuracy: 100 * accuracyOf(preds, data.labels) };
  if (new Set(data.labels).size <= 2) m.f1 = 100 * f1Binary(preds, data.labels);
  return m;
}

/**
 * SQuAD exact match and F1 (percent, the official normalisation: lib/training/metrics squadMetrics) of a
 * question-answering model on a dataset's windows, with run_qa's post-processing (QADataset.postprocess:
 * best start + end logit over the windows, the null answer for SQuAD 2.0 data). Returns the figures and the
 * predictions {id: answer} (run_qa's predictions.json).
 */
export async function evaluateQuestionAnswering(
  model: BertModel,
  data: QADataset,
  batchSize = 32,
  postprocess: PostprocessOptions = {},
): Promise<{ metrics: SquadMetrics; predictions: Record<string, string> }> {
  const c = data.logitCollector();
  for (const b of data.batches(batchSize)) {
    const out = await model.forward(b);
    c.add(b, out.start_logits.data as Float32Array, out.end_logits.data as Float32Array);
  }
  const predictions = data.postprocess(c.start, c.end, c.seqLen, postprocess);
  return { metrics: squadMetrics(predictions, data.examples), predictions };
}

async function latency(model: BertModel, batch: number, seq: number, vocab: number, runs: number): Promise<number> {
  const n = batch * seq;
  const input = { inputIds: new Int32Array(n).map((_, i) => 5 + ((i * 7919) % (vocab - 5))), attentionMask: new Int32Array(n).fill(1), batchSize: batch, seqLen: seq };
  const t = await model.timeForward(input, { runs, warmup: 10 });
  return Array.from(t).reduce((a, b) => a + b, 0) / t.length;
}
export async function runFinePruneJob(o: FinePruneJobOptions & { distributed: ProcessGroup }): Promise<JobResult | null>;
export async function runFinePruneJob(o: FinePruneJobOptions): Promise<JobResult>;
export async function runFinePruneJob(o: FinePruneJobOptions): Promise<JobResult | null> {
  const pruning = checkFinePruneJobOptions(o);
  // A hub id is read as its directory in the cache (downloaded when needed): the job reads its tokenizer there.
  if (o.model !== undefined) o = { ...o, model: await resolveModel(o.model, {}, 'options.model') };
  const group = o.distributed;
  const main = !group || group.isMain;
  const print = o.log ?? ((l: string) => console.log(l));
  // A line logged while a progress bar is drawn on the terminal clears the bar first (it comes back below).
  const log = main ? (l: string) => (clearProgress(), print(l)) : () => {};
  const out = resolve(o.output);
  // Rank 0 writes the output folder; the other ranks save their intermediate models in a folder of their own.
  const work = main ? out : mkdtempSync(join(tmpdir(), `blockprune-rank${group!.rank}-`));
  try {
    return await fineprune(o, pruning, group, main, log, out, work);
  } finally {
    if (!main) rmSync(work, { recursive: true, force: true });
  }
}

async function fineprune(
  o: FinePruneJobOptions,
  pruning: PruningConfig,
  group: ProcessGroup | undefined,
  main: boolean,
  log: (line: string) => void,
  out: string,
  work: string,
): Promise<JobResult | null> {
  const s = await trainDense(o, group, main, log, out, work);
  const p = await prunePass(s, pruning, out);
  // No collective follows: release the group now, so that the other ranks need not wait for rank 0's report.
  if (group) await group.destroy();
  try {
    // Training is over: rank 0 alone compacts, evaluates, reports and benchmarks.
    return main ? await compactAndMeasure(s, p, out, `${o.task}`) : null;
  } finally {
    p.dispose();
    s.dense.dispose();
  }
}

/**
 * What the dense stage leaves to the stages after it: the tokenized data, the dense model (saved in
 * `denseDir` with its tokenizer) and its figures. `blockprune frontier` fine-prunes from one of these at
 * each lambda.
 */
export interface DenseStage {
  o: FinePruneJobOptions;
  group?: ProcessGroup;
  main: boolean;
  log: (line: string) => void;
  /** Seconds since the job started, as its log lines show them. */
  elapsed: () => string;
  tokDir: string;
  trainSet: ClassificationDataset;
  evalSet: ClassificationDataset;
  /** Accuracy (and F1) on the evaluation set, with a progress display on rank 0. */
  evaluate: (m: BertModel) => Promise<Metrics>;
  dense: BertModel;
  /** Rank 0's (or a single process's) figures of the dense model; undefined on the other ranks. */
  denseMetrics?: Metrics;
  denseDir: string;
}

/** One fine-pruning run from the dense model: the pruned model, its figures, and the models to dispose. */
export interface PrunePass {
  pruned: BertModel;
  /** Pruning to a budget: the plan and what the trainer reached. */
  budget?: { plan: JobBudgetPlan; trained?: BudgetResult };
  prunedMetrics?: Metrics;
  logFile: string;
  runsDir: string;
  dispose(): void;
}

/** Where an evaluation stands: "epoch 2", or "step 30 (epoch 1.88)" for one of evalSteps inside an epoch. */
const at = (e: LogEntry) => (Number.isInteger(e.epoch) ? `epoch ${e.epoch}` : `step ${e.step} (epoch ${e.epoch.toFixed(2)})`);

/**
 * The job's first stage: data, tokenizer, the dense model (random and trained, or --model), evaluated and
 * saved in `<work>/dense`. Logs and TensorBoard runs go under `out`.
 */
export async function trainDense(
  o: FinePruneJobOptions,
  group: ProcessGroup | undefined,
  main: boolean,
  log: (line: string) => void,
  out: string,
  work: string,
): Promise<DenseStage> {
  const seed = o.seed ?? 42;
  const maxLength = o.maxLength ?? 128;
  const batchSize = o.batchSize ?? 32;
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

  // Data before the output folder: a missing or bad data file leaves nothing behind.
  const data = await loadTaskData(o.task, o.data, seed, { limit: o.limit, evalLimit: o.evalLimit, skipInvalid: o.skipInvalid });
  if (data.train.length === 0 || data.eval.length === 0)
    throw new BlockpruneError('E_BAD_DATA', `${o.task}: ${data.train.length} training and ${data.eval.length} evaluation examples in ${data.source}: nothing to train or evaluate on`);
  if (main) ensureDir(out);
  log(`[${elapsed()}] ${o.task}: ${data.train.length} training and ${data.eval.length} evaluation examples: ${data.source}`);
  if (data.skipped) log(`  skipped ${data.skipped} invalid rows, e.g. ${data.skippedReasons?.join('; ')}`);

  // Tokenizer: given, the model's own, or a WordPiece vocabulary built from the training text.
  let tokDir = o.tokenizer ?? (o.model && hasTokenizerFiles(o.model) ? o.model : undefined);
  if (!tokDir) {
    tokDir = join(work, 'tokenizer');
    const vocab = buildWordPieceVocab(data.train.flatMap((e) => (e.textPair ? [e.text, e.textPair] : [e.text])), { size: 8000 });
    writeVocab(tokDir, vocab);
    log(`[${elapsed()}] built a ${vocab.length}-token WordPiece vocabulary from the training text (${tokDir}/vocab.txt)`);
  }
  // The model's family picks its tokenizer (RoBERTa's BPE, ...); the vocabulary built here is WordPiece.
  const tokenizer = o.model ? loadTokenizer(o.model, tokDir) : AutoTokenizer.fromDir(tokDir);
  const logFile = join(out, 'log.jsonl');

  let dense: BertModel;
  let denseMetrics: Metrics | undefined;
  if (o.model) {
    dense = await BertModel.fromPretrained(o.model, { task: 'text-classification', numLabels: data.labels.length, seed, device: o.device });
    log(`[${elapsed()}] loaded ${o.model} (${dense.numParameters.toLocaleString('en-US')} parameters)`);
  } else {
    const family = o.family ?? 'bert';
    const geometry: BertConfigJson = {
      vocab_size: tokenizer.vocabSize,
      hidden_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 512,
      max_position_embeddings: 512,
      num_labels: data.labels.length,
      id2label: Object.fromEntries(data.labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(data.labels.map((l, i) => [l, i])),
      // The tokenizer's padding is the model's padding_idx (RoBERTa's positions skip it).
      pad_token_id: tokenizer.padId,
      ...o.modelConfig,
    };
    dense = await BertModel.fromConfig(configForFamily(family, geometry), { task: 'text-classification', seed, device: o.device });
    const d = dense.dimensions;
    log(`[${elapsed()}] a random ${dense.config.architectures?.[0] ?? family}: hidden ${d.hiddenSize}, ${d.numLayers} layers, ${d.numHeads} heads, FFN ${d.intermediateSize} (${dense.numParameters.toLocaleString('en-US')} parameters)`);
  }
  // A family with one token type (RoBERTa) gets none from a WordPiece tokenizer's pairs.
  const tokenTypes = dense.dimensions.typeVocabSize > 1;
  const trainSet = new ClassificationDataset(data.train, tokenizer, { maxLength, tokenTypes });
  const evalSet = new ClassificationDataset(data.eval, tokenizer, { maxLength, tokenTypes });
  log(`[${elapsed()}] tokenized (max length ${maxLength}; ${trainSet.truncated} training examples truncated)`);
  // Progress on stderr (a bar on a terminal, periodic lines otherwise), rank 0's only.
  const evaluate = (m: BertModel) => {
    const bar = main ? countProgress('evaluate', Math.ceil(evalSet.length / 64), 'batches') : undefined;
    return evaluateClassifier(m, evalSet, 64, undefined, (done) => bar?.update(done)).finally(() => bar?.stop());
  };
  // TensorBoard event files: one run per stage, so that `tensorboard --logdir <out>/runs` shows both.
  const runsDir = join(out, 'runs');
  const stage = (label: string) => (main ? trainingProgress(label) : undefined);
  const denseEpochs = o.denseEpochs ?? (o.model ? 0 : 3);
  if (denseEpochs > 0) {
    const progress = stage('dense');
    log(`[${elapsed()}] dense training: ${denseEpochs} epochs, batch ${batchSize}${group ? ` (${group.worldSize} processes)` : ''}, lr ${o.denseLearningRate ?? 5e-4}${o.mixedPrecision ? ', bf16 mixed precision' : ''}`);
    const r = await new SparseTrainer({
      model: dense,
      train: trainSet,
      evaluate,
      epochs: denseEpochs,
      batchSize,
      learningRate: o.denseLearningRate ?? 5e-4,
      warmupSteps: o.warmupSteps ?? Math.ceil(0.06 * denseEpochs * Math.ceil(trainSet.length / batchSize)),
      mixedPrecision: o.mixedPrecision,
      seed,
      logFile,
      outputDir: join(out, 'checkpoints', 'dense'),
      keepCheckpoints: 1,
      evalSteps: o.evalSteps,
      saveSteps: o.saveSteps,
      logEvery: o.logEvery,
      distributed: group,
      tensorboardDir: join(runsDir, 'dense'),
      onProgress: progress?.onProgress,
      progress: false,
      onLog: (e) => e.type === 'eval' && log(`[${elapsed()}]   dense ${at(e)}: accuracy ${(e.accuracy as number).toFixed(2)}%`),
    })
      .train()
      .finally(() => progress?.stop());
    dense = r.model;
    if (r.interrupted) throw new BlockpruneError('E_INVALID_ARG', `interrupted; a checkpoint is in ${r.lastCheckpoint}`);
    denseMetrics = r.history[r.history.length - 1];
  } else if (main) {
    denseMetrics = await evaluate(dense);
  }
  await dense.save(join(work, 'dense'));
  if (!hasTokenizerFiles(join(work, 'dense'))) writeVocabFrom(tokDir, join(work, 'dense'));
  if (denseMetrics) log(`[${elapsed()}] dense: accuracy ${denseMetrics.accuracy.toFixed(2)}% (saved to ${join(out, 'dense')})`);
  return { o, group, main, log, elapsed, tokDir, trainSet, evalSet, evaluate, dense, denseMetrics, denseDir: join(work, 'dense') };
}

/**
 * Fine-prunes a copy of the dense model with `pruning`, distilling from the dense model unless told
 * otherwise; its log, checkpoints and TensorBoard run go under `out`.
 */
export async function prunePass(s: DenseStage, pruning: PruningConfig, out: string): Promise<PrunePass> {
  const { o, group, main, log, elapsed, trainSet, evaluate } = s;
  const seed = o.seed ?? 42;
  const batchSize = o.batchSize ?? 32;
  const logFile = join(out, 'log.jsonl');
  const runsDir = join(out, 'runs');
  const stage = (label: string) => (main ? trainingProgress(label) : undefined);

  // Fine-pruning: a copy of the dense model, patched; the dense model is the teacher unless told otherwise.
  const student = await BertModel.fromPretrained(s.denseDir, { device: o.device });
  const teacherDir = o.teacher === 'none' ? undefined : (o.teacher ?? s.denseDir);
  const teacher = teacherDir ? await BertModel.fromPretrained(teacherDir, { device: o.device }) : undefined;
  for (const w of pruning.warnings) log(`  warning: ${w}`);
  const pruneEpochs = o.pruneEpochs ?? 4;
  const stepsPerEpoch = Math.ceil(trainSet.length / batchSize);
  const pruneSteps = o.maxSteps ?? pruneEpochs * stepsPerEpoch;
  const warmupSteps = o.warmupSteps ?? Math.max(1, Math.round((0.1 * pruneSteps) / 3));
  const every = [o.evalSteps && `evaluating every ${o.evalSteps}`, o.saveSteps && `checkpointing every ${o.saveSteps}`].filter(Boolean);
  log(`[${elapsed()}] fine-pruning (${o.preset ?? 'hybrid'}, lambda ${pruning.options.regularizationFinalLambda}, threshold ${pruning.options.initialThreshold} -> ${pruning.options.finalThreshold}, mask lr ${pruning.options.maskScoresLearningRate}${teacher ? `, distilling from ${teacherDir} at temperature ${o.temperature ?? 2}, alpha_ce ${o.alphaCe ?? 0.5}, alpha_teacher ${o.alphaTeacher ?? 0.5}` : ''}): ${o.maxSteps ? `${pruneSteps} steps (--max-steps)` : `${pruneEpochs} epochs (${pruneSteps} steps)`}, lr ${o.learningRate ?? 2e-4}, warm-up ${warmupSteps} steps${every.length ? `, ${every.join(' and ')} steps` : ''}${o.mixedPrecision ? ', bf16 mixed precision' : ''}`);
  // Every pruning argument in force, in the reference's names: what a flag or a --config field changed shows here.
  log(`  pruning arguments: ${Object.entries(pruning.options).map(([k, x]) => `${REFERENCE_PRUNING_NAMES[k as keyof PruningOptions] ?? k}=${x}`).join(' ')}`);
  const budget = o.budget ? await planBudget(o.budget, s.dense, s.denseDir, group, log) : undefined;
  const pruneProgress = stage('prune');
  const pr = await new SparseTrainer({
    model: student,
    pruning,
    budget: budget?.options,
    train: trainSet,
    evaluate,
    epochs: pruneEpochs,
    maxSteps: o.maxSteps,
    evalSteps: o.evalSteps,
    saveSteps: o.saveSteps,
    logEvery: o.logEvery,
    batchSize,
    learningRate: o.learningRate ?? 2e-4,
    warmupSteps,
    mixedPrecision: o.mixedPrecision,
    distillation: teacher ? { teacher, alphaCe: o.alphaCe ?? 0.5, alphaTeacher: o.alphaTeacher ?? 0.5, temperature: o.temperature ?? 2 } : undefined,
    filled: o.filledEpochs ? { epochs: o.filledEpochs } : undefined,
    seed,
    logFile,
    outputDir: join(out, 'checkpoints', 'prune'),
    resume: o.resume ? true : undefined,
    allowResumeMismatch: o.allowResumeMismatch,
    distributed: group,
    tensorboardDir: join(runsDir, 'prune'),
    onProgress: pruneProgress?.onProgress,
    progress: false,
    onLog: (e) => {
      if (e.type === 'eval') {
        const d = e.density as Record<string, number> | undefined;
        log(`[${elapsed()}]   prune ${at(e)}: accuracy ${(e.accuracy as number).toFixed(2)}%` + (d ? `, density of the masks: ${Object.entries(d).map(([k, v]) => `${k === 'dense' ? 'FFN' : k} ${(100 * v).toFixed(1)}%`).join(', ')}` : ''));
      }
    },
  })
    .train()
    .finally(() => pruneProgress?.stop());
  if (pr.interrupted) throw new BlockpruneError('E_INVALID_ARG', `interrupted; resume with --resume (checkpoint ${pr.lastCheckpoint})`);
  const pruned = pr.model;
  const dispose = () => {
    for (const m of new Set([student, pruned, teacher].filter((x): x is BertModel => !!x && x !== s.dense))) m.dispose();
  };
  // The last figures of the pruning stage (compactAndMeasure evaluates the model when there are none).
  return { pruned, prunedMetrics: pr.history.filter((h) => h.stage === undefined).pop(), logFile, runsDir, dispose, budget: budget && { plan: budget, trained: pr.budget } };
}

/**
 * The job's last stage, on rank 0: mask pictures, the compact model (evaluated), latency dense vs compact,
 * report.json and the summary, all under `out`. `name` heads the summary.
 */
export async function compactAndMeasure(s: DenseStage, p: PrunePass, out: string, name: string): Promise<JobResult> {
  const { o, log, elapsed, evaluate, dense, tokDir } = s;
  const { pruned, logFile, runsDir } = p;
  const prunedMetrics = p.prunedMetrics ?? (await evaluate(pruned));
  const maxLength = o.maxLength ?? 128;
  const denseScore = s.denseMetrics as Metrics; // rank 0 (or a single process) always evaluated the dense model

  // Masks, then the compact model.
  // One definition of density everywhere (report.ts DENSITY_DEFINITION); the keys are those of the scores' groups.
  // The masks are read once, for the densities and the pictures.
  const masks = pruned.patched ? await pruned.masks() : undefined;
  const prunedReport = masks ? withDensities(await buildReport(pruned), pruned, masks) : undefined;
  const images = masks ? await writeMaskImages(pruned, join(out, 'masks'), { masks, report: prunedReport! }) : [];
  const prunedWeights = prunedReport?.weights;
  const density: Record<string, number> = prunedWeights ? { attention: prunedWeights.attention, dense: prunedWeights.ffn, encoder: prunedWeights.density } : {};
  if (pruned.patched) await pruned.save(join(out, 'pruned'));
  const { model: compact, report } = pruned.patched ? await pruned.compact('dense') : { model: pruned, report: undefined };
  const compactMetrics = await evaluate(compact);
  await compact.save(join(out, 'compact'));
  if (!hasTokenizerFiles(join(out, 'compact'))) writeVocabFrom(tokDir, join(out, 'compact'));
  const rep = await buildReport(compact, { masks: true });
  const denseParams = dense.numParameters;
  log(`\n[${elapsed()}] compact model (${join(out, 'compact')}):\n${formatReport(rep)}`);

  const runs = o.latencyRuns ?? 30;
  const lat: JobResult['latency'] = [];
  for (const b of [1, 8]) {
    const d = await latency(dense, b, maxLength, dense.dimensions.vocabSize, runs);
    const c = await latency(compact, b, maxLength, compact.dimensions.vocabSize, runs);
    lat.push({ batch: b, seq: maxLength, denseMs: d, compactMs: c, speedup: d / c });
  }
  const budget: JobBudgetResult | undefined = p.budget ? await measureBudget(p.budget.plan, p.budget.trained, dense, compact, runs) : undefined;
  // The compact model in each number format: accuracy and latency beside fp32's (issue 16).
  const quantized: JobResult['quantized'] = [];
  for (const dtype of QUANT_DTYPES) {
    const q = await compact.quantize({ dtype });
    try {
      const metrics = await evaluate(q);
      const qlat = [];
      for (const l of lat) {
        const ms = await latency(q, l.batch, maxLength, q.dimensions.vocabSize, runs);
        qlat.push({ batch: l.batch, seq: l.seq, ms, speedup: l.compactMs / ms });
      }
      quantized.push({ dtype, kernels: native().buildInfo().quantKernels[dtype], metrics, latency: qlat });
    } finally {
      q.dispose();
    }
  }
  const result: JobResult = {
    dense: denseScore,
    pruned: prunedMetrics,
    compact: compactMetrics,
    parameters: { dense: denseParams, compact: compact.numParameters, reduction: denseParams / compact.numParameters },
    density,
    heads: compact.layers.map((l) => l.heads),
    ffn: compact.layers.map((l) => l.intermediateSize),
    latency: lat,
    quantized,
    ...(budget ? { budget } : {}),
    outputDir: out,
    images,
  };
  writeFileAtomicSync(join(out, 'report.json'), JSON.stringify({ ...result, densityDefinition: DENSITY_DEFINITION, report: rep, compaction: report }, null, 2));
  log(
    [
      '',
      `Summary (${name}, ${elapsed()}):`,
      `  accuracy: dense ${denseScore.accuracy.toFixed(2)}% -> pruned ${prunedMetrics.accuracy.toFixed(2)}% -> compact ${compactMetrics.accuracy.toFixed(2)}%`,
      `  density, ${DENSITY_DEFINITION}: pruned ${prunedWeights ? densityFigures(prunedWeights) : 'n/a (not patched)'}; compact ${densityFigures(rep.weights!)}`,
      `  heads kept per layer: ${result.heads.join(' ')} of ${dense.dimensions.numHeads}; FFN widths ${result.ffn.join(' ')} of ${dense.dimensions.intermediateSize}`,
      `  parameters: ${denseParams.toLocaleString('en-US')} -> ${compact.numParameters.toLocaleString('en-US')} (${result.parameters.reduction.toFixed(2)}x fewer)`,
      ...lat.map((l) => `  latency ${l.batch}x${l.seq}: dense ${l.denseMs.toFixed(2)} ms, compact ${l.compactMs.toFixed(2)} ms (${l.speedup.toFixed(2)}x faster; ${runs} runs after 10 warm-ups)`),
      ...(budget ? [formatBudget(budget)] : []),
      ...quantized.map(
        (q) =>
          `  compact ${q.dtype}${q.kernels === 'none' ? ' (no kernels for this CPU: its layers ran in fp32)' : ` (${q.kernels} kernels)`}: accuracy ${q.metrics.accuracy.toFixed(2)}% (fp32 ${compactMetrics.accuracy.toFixed(2)}%); ` +
          q.latency.map((l) => `${l.batch}x${l.seq} ${l.ms.toFixed(2)} ms (${l.speedup.toFixed(2)}x the fp32 compact)`).join(', '),
      ),
      `  mask pictures: ${images.length ? join(out, 'masks') : 'none'}; report: ${join(out, 'report.json')}; log: ${logFile}; curves: tensorboard --logdir ${runsDir}`,
    ].join('\n'),
  );
  if (compact !== pruned) compact.dispose();
  return result;
}

function writeVocabFrom(tokDir: string, dest: string): void {
  for (const f of TOKENIZER_FILES) if (existsSync(join(tokDir, f))) copyFileAtomicSync(join(tokDir, f), join(dest, f));
}
