/**
 * The main job's text-to-text variant (`blockprune train --task summarize`, issue 18): an encoder-decoder model
 * (a small random BART or T5, or --model) learns to write an email's subject from its body (SpamAssassin, the
 * job's bundled data), is fine-pruned with a preset (distilling from the dense model), compacted (heads removed
 * in every attention block, empty FFN units), and reported: ROUGE of the dense, pruned and compact models on the
 * held-out emails, parameters, the compact shapes, and generation latency in ms per generated token, dense vs
 * compact, at batch 1.
 */
import { join } from 'node:path';
import { textInfilling } from '../data/noise';
import { epochSeed, permutation, rng } from '../data/rng';
import { loadSubjectPairs, type Seq2SeqExample } from '../data/spam-assassin';
import { generationPipeline } from '../model/generation-pipeline';
import { loadTokenizer } from '../model/pipelines';
import { Seq2SeqModel } from '../model/seq2seq';
import type { PruningConfig } from '../pruning/config';
import '../pruning/seq2seq-pruning'; // model.patch(), compact()
import type { Seq2SeqCompactReport } from '../pruning/seq2seq-pruning';
import { ensureDir, writeFileAtomicSync } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';
import type { PreTrainedTokenizer } from '../tokenizer/tokenizer';
import { AutoTokenizer } from '../tokenizer/auto-tokenizer';
import { hasTokenizerFiles, TOKENIZER_FILES } from '../tokenizer/tokenizer-json';
import { buildWordPieceVocab, writeVocab } from '../tokenizer/vocab';
import { rouge, type RougeScores } from '../training/metrics';
import { Seq2SeqTrainer, seq2seqBatch, type Seq2SeqTrainerOptions, type Seq2SeqTrainExample } from '../training/seq2seq-trainer';
import { maxPositions, type FinePruneJobOptions } from './job-options';
import { latencyStats } from './latency-stats';
import { trainingProgress } from './progress';
import { copyFileSync, existsSync } from 'node:fs';

/** The options of the fine-pruning job that mean the same here. */
const SHARED = [
  'output', 'model', 'device', 'batchSize', 'denseEpochs', 'denseLearningRate', 'pruneEpochs', 'learningRate', 'preset', 'lambda', 'pruning',
  'teacher', 'alphaCe', 'alphaTeacher', 'temperature', 'warmupSteps', 'maxSteps', 'logEvery', 'seed', 'limit', 'evalLimit', 'skipInvalid',
  'latencyRuns', 'log',
] as const satisfies ReadonlyArray<keyof FinePruneJobOptions>;
type SharedOptions = Pick<FinePruneJobOptions, (typeof SHARED)[number]>;

/**
 * The text-to-text tasks on the bundled emails: summarize (the subject from the body: little of a subject is in
 * the body's start, so a small model trained for minutes mostly learns the subjects' style), reconstruct (the
 * subject from itself under BART's text infilling: a model must read its source to score).
 */
export const TEXT_TASKS = ['summarize', 'reconstruct'] as const;
export type TextTask = (typeof TEXT_TASKS)[number];

export interface SummarizeJobOptions extends SharedOptions {
  task: TextTask;
  /** The random model's family (default 'bart'). */
  family?: 'bart' | 't5';
  /** The random model's geometry in BERT's names (the CLI's --hidden/--layers/--heads/--ffn): d_model 128, 2+2 layers, 4 heads, FFN 512. */
  modelConfig?: { hidden_size?: number; num_hidden_layers?: number; num_attention_heads?: number; intermediate_size?: number };
  /** Source tokens (the body), special tokens included (default 128). */
  maxLength?: number;
  /** Target tokens (the subject), special tokens included (default 24). */
  targetLength?: number;
  /** Beams of the evaluation's generation (default 1: greedy). */
  numBeams?: number;
}

/** The fine-pruning job's options that have no meaning for this variant: refused rather than ignored. */
const NOT_HERE: ReadonlyArray<keyof FinePruneJobOptions> = [
  'data', 'tokenizer', 'budget', 'filledEpochs', 'mixedPrecision', 'evalSteps', 'saveSteps', 'resume', 'allowResumeMismatch', 'distributed',
];

export const SUMMARIZE_FAMILIES = ['bart', 't5'] as const;

/**
 * The variant's options from the train command's (already checked there for types), with its own checks; the
 * options it cannot use are refused naming them. `nameOf` names an option as the CLI spells it.
 */
export function summarizeOptions(job: FinePruneJobOptions, extra: { targetLength?: number; numBeams?: number }, nameOf: (k: string) => string): SummarizeJobOptions {
  for (const k of NOT_HERE)
    if (job[k] !== undefined) throw v.invalidParameterError(nameOf(k), `no value with the ${job.task} task (it trains on the bundled SpamAssassin emails, on one process)`, job[k]);
  if (job.family !== undefined) v.oneOf(nameOf('family'), job.family, SUMMARIZE_FAMILIES);
  if (job.model !== undefined) v.modelDirectory(nameOf('model'), job.model, 'BART or T5 model directory');
  const shared = Object.fromEntries(SHARED.filter((k) => job[k] !== undefined).map((k) => [k, job[k]])) as SharedOptions;
  const o: SummarizeJobOptions = { ...shared, task: v.oneOf(nameOf('task'), job.task as string, TEXT_TASKS), family: job.family as 'bart' | 't5' | undefined, modelConfig: job.modelConfig, maxLength: job.maxLength, ...extra };
  // A checkpoint's position table bounds both lengths (BART's learned positions; T5 has none: 512 here).
  const positions = o.model !== undefined ? maxPositions(o) : 1024;
  v.integer(nameOf('maxLength'), o.maxLength ?? 128, { min: 4, max: positions });
  v.integer(nameOf('targetLength'), o.targetLength ?? 24, { min: 3, max: Math.min(512, positions) });
  if (o.numBeams !== undefined) v.integer(nameOf('numBeams'), o.numBeams, { min: 1, max: 64 });
  v.writableDirectory(nameOf('output'), o.output);
  return o;
}

export interface SummarizeJobResult {
  examples: { train: number; eval: number };
  rouge: { dense: RougeScores; pruned: RougeScores; compact: RougeScores };
  parameters: { dense: number; compact: number; reduction: number };
  blocks: Seq2SeqCompactReport['blocks'];
  /** Largest |logit| difference between the compact and the masked model on 32 held-out pairs (teacher-forced). */
  logitsDiff: number;
  /** Batch-1 greedy generation of `tokens` tokens per source, alternating rounds, medians. */
  latency: { tokens: number; sources: number; denseMsPerToken: number; compactMsPerToken: number; speedup: number };
  outputDir: string;
}

/** A random model of the family over the tokenizer's vocabulary (BART: [CLS]/[SEP] as <s>/</s>; T5 starts from pad). */
function randomConfig(o: SummarizeJobOptions, tok: PreTrainedTokenizer, positions: number): Record<string, unknown> {
  const g = o.modelConfig ?? {};
  const d = g.hidden_size ?? 128;
  const layers = g.num_hidden_layers ?? 2;
  const heads = g.num_attention_heads ?? 4;
  const ffn = g.intermediate_size ?? 512;
  if (d % heads !== 0) throw v.invalidParameterError('modelConfig.hidden_size', `a multiple of num_attention_heads (${heads})`, d, 'range');
  const ids = { vocab_size: tok.vocabSize, pad_token_id: tok.padId, eos_token_id: tok.sepId };
  if ((o.family ?? 'bart') === 't5')
    return { model_type: 't5', architectures: ['T5ForConditionalGeneration'], d_model: d, d_kv: d / heads, d_ff: ffn, num_layers: layers, num_decoder_layers: layers, num_heads: heads, decoder_start_token_id: tok.padId, ...ids };
  return {
    model_type: 'bart',
    architectures: ['BartForConditionalGeneration'],
    d_model: d,
    encoder_layers: layers,
    decoder_layers: layers,
    encoder_attention_heads: heads,
    decoder_attention_heads: heads,
    encoder_ffn_dim: ffn,
    decoder_ffn_dim: ffn,
    max_position_embeddings: positions,
    bos_token_id: tok.clsId ?? tok.sepId,
    decoder_start_token_id: tok.sepId,
    // BartConfig's default (2) would force another token at max_length.
    forced_eos_token_id: tok.sepId,
    ...ids,
  };
}

/** Each pair as ids: the body truncated to `maxLength`, the subject to `targetLength`, both with their special tokens. */
function encodePairs(tok: PreTrainedTokenizer, pairs: readonly Seq2SeqExample[], maxLength: number, targetLength: number): Seq2SeqTrainExample[] {
  return pairs.map((p) => ({ inputIds: tok.encode(p.source, null, { maxLength }).inputIds, labels: tok.encode(p.target, null, { maxLength: targetLength }).inputIds }));
}

/** ROUGE of the model's generated subjects against the real ones. */
async function evaluateRouge(model: Seq2SeqModel, tok: PreTrainedTokenizer, pairs: readonly Seq2SeqExample[], o: Required<Pick<SummarizeJobOptions, 'maxLength' | 'targetLength' | 'numBeams'>>): Promise<RougeScores> {
  const pipe = generationPipeline('summarization', model, tok, 32, o.maxLength);
  const out = (await pipe(
    pairs.map((p) => p.source),
    { maxLength: o.targetLength + 1, numBeams: o.numBeams },
  )) as Array<{ summary_text: string }>;
  return rouge(
    out.map((r) => r.summary_text),
    pairs.map((p) => p.target),
  );
}

/**
 * Median ms per generated token of each model: greedy search of exactly `tokens` tokens (minLength = maxLength)
 * from each source alone (batch 1), the models in alternating order each round.
 */
export async function timeGeneration(models: readonly Seq2SeqModel[], sources: ReadonlyArray<{ inputIds: number[] }>, tokens: number, rounds: number): Promise<number[]> {
  const times: number[][] = models.map(() => []);
  const opts = { maxLength: tokens + 1, minLength: tokens + 1, numBeams: 1 };
  const inputs = sources.map((s) => ({ inputIds: Int32Array.from(s.inputIds), batchSize: 1, seqLen: s.inputIds.length }));
  for (const m of models) await m.generate(inputs[0], opts); // warm-up: first calls allocate
  for (let r = 0; r < rounds; r++) {
    const order = models.map((_, k) => (r % 2 ? models.length - 1 - k : k));
    for (const k of order) {
      const t0 = process.hrtime.bigint();
      for (const input of inputs) await models[k].generate(input, opts);
      times[k].push(Number(process.hrtime.bigint() - t0) / 1e6 / (inputs.length * tokens));
    }
  }
  return times.map((t) => latencyStats(t).p50);
}

const fmt = (r: RougeScores) => `ROUGE-1 ${(100 * r.rouge1).toFixed(2)}, ROUGE-2 ${(100 * r.rouge2).toFixed(2)}, ROUGE-L ${(100 * r.rougeL).toFixed(2)}`;

export async function runSummarizeJob(o: SummarizeJobOptions, pruning: PruningConfig): Promise<SummarizeJobResult> {
  const log = o.log ?? ((line: string) => console.log(line));
  const seed = o.seed ?? 42;
  const maxLength = o.maxLength ?? 128;
  const targetLength = o.targetLength ?? 24;
  const numBeams = o.numBeams ?? 1;
  const batchSize = o.batchSize ?? 32;
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

  // Data before the output folder: a missing corpus leaves nothing behind.
  // A seeded split: the first evalLimit (300) emails of a permutation are held out. With --limit, only as many
  // emails are read as the two sets need (the corpus's first ones).
  const evalCount = o.evalLimit ?? 300;
  const loaded = await loadSubjectPairs({ skipInvalid: o.skipInvalid ?? true, limit: o.limit ? o.limit + evalCount : undefined });
  const order = permutation(loaded.examples.length, seed, 0);
  const shuffled = Array.from(order, (i) => loaded.examples[i]);
  let evalPairs = shuffled.slice(0, Math.min(evalCount, Math.floor(shuffled.length / 2)));
  let trainPairs = shuffled.slice(evalPairs.length, o.limit ? evalPairs.length + o.limit : undefined);
  if (trainPairs.length === 0 || evalPairs.length === 0) throw new BlockpruneError('E_BAD_DATA', `${o.task}: ${trainPairs.length} training and ${evalPairs.length} evaluation pairs: nothing to train or evaluate on`);
  const out = o.output;
  ensureDir(out);
  const reconstruct = o.task === 'reconstruct';
  log(`[${elapsed()}] ${o.task}: ${trainPairs.length} training and ${evalPairs.length} evaluation emails (${reconstruct ? "the subject from itself under BART's text infilling: 30% of its words masked in spans" : 'the subject from the body'}; ${loaded.skipped} without a subject or body skipped)`);

  // Tokenizer: the model's own, or a WordPiece vocabulary built from the training text (BertTokenizer in tokenizer_config.json).
  let tokDir = o.model;
  if (!tokDir || !hasTokenizerFiles(tokDir)) {
    tokDir = join(out, 'tokenizer');
    ensureDir(tokDir);
    const vocab = buildWordPieceVocab(trainPairs.flatMap((p) => (reconstruct ? [p.target] : [p.source, p.target])), { size: 8000 });
    writeVocab(tokDir, vocab);
    log(`[${elapsed()}] built a ${vocab.length}-token WordPiece vocabulary from the training text (${tokDir}/vocab.txt)`);
  }
  const tok = o.model ? loadTokenizer(o.model, tokDir) : AutoTokenizer.fromDir(tokDir);
  if (reconstruct) {
    // The noise is drawn once, seeded: every epoch sees the same corrupted sources (a fixed dataset).
    const maskToken = tok.maskId === undefined ? undefined : tok.idToToken(tok.maskId);
    if (maskToken === undefined) throw new BlockpruneError('E_INVALID_ARG', `reconstruct masks words: the tokenizer of ${o.model} has no mask token`);
    const random = rng(epochSeed(seed, 1));
    const noised = (p: Seq2SeqExample): Seq2SeqExample => ({ ...p, source: textInfilling(p.target, { maskToken, random }) });
    trainPairs = trainPairs.map(noised);
    evalPairs = evalPairs.map(noised);
  }
  const train = encodePairs(tok, trainPairs, maxLength, targetLength);
  const evalOpts = { maxLength, targetLength, numBeams };
  const withTokenizer = (dir: string) => {
    for (const f of TOKENIZER_FILES) if (existsSync(join(tokDir!, f)) && !existsSync(join(dir, f))) copyFileSync(join(tokDir!, f), join(dir, f));
  };

  let dense = o.model
    ? await Seq2SeqModel.fromPretrained(o.model, { device: o.device })
    : await Seq2SeqModel.fromConfig(randomConfig(o, tok, Math.max(maxLength, targetLength) + 2), { seed, device: o.device });
  const di = dense.info;
  log(`[${elapsed()}] ${o.model ? `loaded ${o.model}` : 'a random'} ${di.architecture}: d_model ${di.dModel}, ${di.encoderLayers}+${di.decoderLayers} layers, ${di.heads} heads (${di.numParameters.toLocaleString('en-US')} parameters)`);

  // A training stage: its progress on stderr, the job's seed and log.
  const logFile = join(out, 'log.jsonl');
  const stage = (label: string, options: Omit<Seq2SeqTrainerOptions, 'seed' | 'logFile' | 'logEvery' | 'onProgress' | 'train' | 'batchSize'>) => {
    const progress = trainingProgress(label);
    return new Seq2SeqTrainer({ ...options, train, batchSize, seed, logFile, logEvery: o.logEvery, onProgress: progress.onProgress })
      .train()
      .finally(() => progress.stop());
  };
  const denseEpochs = o.denseEpochs ?? (o.model ? 0 : 6);
  if (denseEpochs > 0) {
    log(`[${elapsed()}] dense training: ${denseEpochs} epochs, batch ${batchSize}, lr ${o.denseLearningRate ?? 1e-3}`);
    const r = await stage('dense', {
      model: dense,
      epochs: denseEpochs,
      learningRate: o.denseLearningRate ?? 1e-3,
      warmupSteps: o.warmupSteps ?? Math.ceil(0.06 * denseEpochs * Math.ceil(train.length / batchSize)),
    });
    dense = r.model;
  }
  const denseDir = join(out, 'dense');
  await dense.save(denseDir);
  withTokenizer(denseDir);
  const denseRouge = await evaluateRouge(dense, tok, evalPairs, evalOpts);
  log(`[${elapsed()}] dense: ${fmt(denseRouge)} (saved to ${denseDir})`);

  // Fine-pruning a copy, distilling from the dense model unless told otherwise.
  const student = await Seq2SeqModel.fromPretrained(denseDir, { device: o.device });
  await student.patch(pruning);
  const teacherDir = o.teacher === 'none' ? undefined : (o.teacher ?? denseDir);
  const teacher = teacherDir ? await Seq2SeqModel.fromPretrained(teacherDir, { device: o.device }) : undefined;
  const pruneEpochs = o.pruneEpochs ?? 4;
  const pruneSteps = o.maxSteps ?? pruneEpochs * Math.ceil(train.length / batchSize);
  log(`[${elapsed()}] fine-pruning (${o.preset ?? 'hybrid'}, lambda ${pruning.options.regularizationFinalLambda}, threshold ${pruning.options.initialThreshold} -> ${pruning.options.finalThreshold}${teacher ? `, distilling from ${teacherDir}` : ''}): ${pruneSteps} steps, lr ${o.learningRate ?? 5e-4}`);
  const pr = await stage('prune', {
    model: student,
    pruning,
    epochs: pruneEpochs,
    maxSteps: o.maxSteps,
    learningRate: o.learningRate ?? 5e-4,
    warmupSteps: o.warmupSteps ?? Math.max(1, Math.round((0.1 * pruneSteps) / 3)),
    distillation: teacher ? { teacher, alphaCe: o.alphaCe, alphaTeacher: o.alphaTeacher, temperature: o.temperature } : undefined,
  });
  teacher?.dispose();
  const pruned = pr.model;
  const prunedRouge = await evaluateRouge(pruned, tok, evalPairs, evalOpts);
  log(`[${elapsed()}] pruned: ${fmt(prunedRouge)}`);

  const { model: compact, report } = await pruned.compact('dense');
  const compactDir = join(out, 'compact');
  await compact.save(compactDir);
  withTokenizer(compactDir);
  const compactRouge = await evaluateRouge(compact, tok, evalPairs, evalOpts);
  // Compaction keeps what the masks compute: the two models' logits on held-out pairs (teacher-forced), side by side.
  const probe = seq2seqBatch(encodePairs(tok, evalPairs.slice(0, 32), maxLength, targetLength), dense.info.padTokenId);
  const [pl, cl] = [(await pruned.forward(probe)).logits.data as Float32Array, (await compact.forward(probe)).logits.data as Float32Array];
  const logitsDiff = pl.reduce((m, x, i) => Math.max(m, Math.abs(x - cl[i])), 0);
  log(`[${elapsed()}] compact: ${fmt(compactRouge)} (saved to ${compactDir}); logits vs the masked model's: max difference ${logitsDiff.toExponential(1)}`);
  log(`  parameters ${report.parametersBefore.toLocaleString('en-US')} -> ${report.parametersAfter.toLocaleString('en-US')} (${(100 * (1 - report.parametersAfter / report.parametersBefore)).toFixed(1)}% fewer)`);
  for (const b of report.blocks)
    log(`  ${b.stack} ${b.layer} ${b.kind === 'attention' ? `${b.role}-attention: heads ${b.keptHeads!.length} kept${b.removedHeads!.length ? ` (${b.removedHeads!.join(', ')} removed)` : ''}` : `FFN: ${b.widthBefore} -> ${b.widthAfter} units`}`);

  const sources = encodePairs(tok, evalPairs.slice(0, 8), maxLength, targetLength);
  // The models in memory as they are: every BART / T5 (random, loaded or compacted) has its weights on 2 MiB
  // pages, so where they were built does not move the figures (native/huge_pages.h).
  const [denseMs, compactMs] = await timeGeneration([dense, compact], sources, targetLength, Math.max(3, Math.min(9, o.latencyRuns ?? 5)));
  log(`  generation (batch 1, greedy, ${targetLength} tokens, ${sources.length} sources): dense ${denseMs.toFixed(2)} ms/token, compact ${compactMs.toFixed(2)} ms/token: ${(denseMs / compactMs).toFixed(2)}x`);

  const result: SummarizeJobResult = {
    examples: { train: train.length, eval: evalPairs.length },
    rouge: { dense: denseRouge, pruned: prunedRouge, compact: compactRouge },
    parameters: { dense: report.parametersBefore, compact: report.parametersAfter, reduction: 1 - report.parametersAfter / report.parametersBefore },
    blocks: report.blocks,
    logitsDiff,
    latency: { tokens: targetLength, sources: sources.length, denseMsPerToken: denseMs, compactMsPerToken: compactMs, speedup: denseMs / compactMs },
    outputDir: out,
  };
  writeFileAtomicSync(join(out, 'report.json'), JSON.stringify(result, null, 2) + '\n');
  for (const m of [dense, pruned, compact]) m.dispose();
  return result;
}
