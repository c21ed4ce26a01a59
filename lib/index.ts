/**
 * blockprune: block movement pruning for BERT-style transformers in Node.js, over a C++ libtorch core.
 *
 * The public API. Everything slow returns a Promise and runs off the event loop.
 */
export { BertModel, MODEL_FAMILIES } from './model/model';
export { configForFamily } from './model/family-config';
export type {
  BertConfigJson,
  DistilBertConfigJson,
  ModelConfigJson,
  ModelDimensions,
  ModelDtype,
  ModelFamily,
  ModelGeometry,
  ModelStructure,
  ForwardBatch,
  ForwardOptions,
  ForwardOutput,
  FromConfigOptions,
  FromPretrainedOptions,
  LayerInfo,
  LoadReport,
  QuantizeOptions,
  Task,
} from './model/model';
export { pipeline, loadTokenizer, answerWindows } from './model/pipelines';
export type { GenerationResult, GenerationTask, TextGenerationPipeline } from './model/generation-pipeline';
export { resolveModel } from './hub/hub';
export { hubCacheDir, isHubId } from './hub/cache';
export type { DownloadProgress, HubOptions } from './hub/hub';
export type {
  ClassificationBatchItem,
  ClassificationInput,
  ClassificationOutput,
  ClassificationResult,
  ClassifyOptions,
  PipelineOptions,
  QAInput,
  QAOutput,
  QAResult,
  QuestionAnsweringPipeline,
  TextClassificationPipeline,
} from './model/pipelines';
export type { QAOptions } from './model/qa-options';
export { BertTokenizer, PreTrainedTokenizer, TokenizerError, TOKENIZER_FAMILIES, buildRobertaTokenizerJson } from './tokenizer/tokenizer';
export type {
  BatchEncoded,
  BatchEncodeOptions,
  Encoded,
  EncodeOptions,
  PreTrainedTokenizerOptions,
  QuestionContextOptions,
  QuestionContextWindow,
  TokenizerFamily,
  TokenizerModelKind,
} from './tokenizer/tokenizer';
export { AutoTokenizer } from './tokenizer/auto-tokenizer';
export type { AutoTokenizerOptions } from './tokenizer/auto-tokenizer';
export { BlockpruneError } from './runtime/errors';
export type { ErrorCode } from './runtime/errors';
export type { AddonSource, BuildInfo, TensorData } from './runtime/native';
export { addonSource } from './runtime/native';
import { native, BuildInfo, TensorData } from './runtime/native';

/**
 * Threads for libtorch's intra-op pool and OpenBLAS's pool together. The default is every CPU this process
 * may use (libtorch alone would take the physical core count, 1 on a 2-vCPU VM); OMP_NUM_THREADS overrides.
 */
export function setNumThreads(n: number): void {
  native().setNumThreads(n);
}

/**
 * Inference on CPU runs BERT layers on blockprune's own kernels (packed-weight GEMM with fused bias, GELU and
 * residual; attention per head; a spinning thread pool) when the CPU has AVX-512 or AVX2: about 1.3x faster
 * than libtorch's ops here, equal to them within 1e-5. Off, every op is libtorch's (the reference path; the
 * one training always uses). BLOCKPRUNE_FAST_KERNELS=0 in the environment turns them off at start.
 */
export function setFastKernels(on: boolean): void {
  native().setFastKernels(on);
}

/** Seeds libtorch's global generator (dropout masks, heads created at random). */
export function manualSeed(seed: number): void {
  native().manualSeed(seed);
}

export function getNumThreads(): number {
  return native().getNumThreads();
}

/** libtorch version, CUDA build/availability, C++ ABI, thread settings of the loaded addon. */
export function buildInfo(): BuildInfo {
  return native().buildInfo();
}

/** Reads every tensor of a safetensors file (validated before any data is read). */
export async function readSafetensors(path: string): Promise<{ tensors: Record<string, TensorData>; metadata: Record<string, string> }> {
  return native().readSafetensors(path);
}

export { PruningConfig, DEFAULT_PRUNING, normalizePruningOptions, parseMethod } from './pruning/config';
export type { BlockDim, PlanEntry, PlanGeometry, PruningMethod, PruningOptions, PruningPlan, PruningSubmethod, Regularization, ScheduleValue } from './pruning/config';
export { LATENCY_PROFILE_FORMAT, latencyProfilePath, loadOrProfileLatency, predictLatency, profileLatency } from './pruning/latency-profile';
export type { LatencyGeometry, LatencyGridPoint, LatencyProfile, LatencyProgress, LayerShape, LoadOrProfileOptions, ProfileLatencyOptions } from './pruning/latency-profile';
export type { LatencyGridKind } from './pruning/latency-fit';
// Pruning and training add their methods to BertModel when their modules load: loaded here, so that a user of
// the package always has model.patch(), model.trainStep() and the rest (their declarations come along).
import './pruning/model-pruning';
import './pruning/seq2seq-pruning';
import './training/model-training';
export type { CompactReport, LossOptions, PatchReport, RegularizationInfo } from './pruning/model-pruning';
export type { Seq2SeqCompactReport } from './pruning/seq2seq-pruning';
export { evalPiecewise, parameterCostModel, predictCost } from './pruning/cost-model';
export type { CostModel, PiecewiseLinear } from './pruning/cost-model';
export { Budget, checkBudgetOptions } from './pruning/budget';
export type { BudgetOptions, BudgetState, BudgetTarget } from './pruning/budget';
export type { JobBudgetResult } from './cli/job-budget';
export type { NativeBudget, NativeBudgetCost, NativeGenerateOptions, NativePrunableBlock, NativeSeq2SeqInfo, NativeSeq2SeqInputs, NativeSeq2SeqRegularizationOptions, NativeSeq2SeqTrainStepOptions, NativeSeq2SeqTrainStepResult } from './runtime/native';
export { Seq2SeqModel } from './model/seq2seq';
export type { Seq2SeqOnnxReport } from './model/onnx-seq2seq';
export type { GenerateInputs, GenerateOptions, GenerateResult, Seq2SeqForwardOptions, Seq2SeqInfo, Seq2SeqInputs, Seq2SeqRegularizationOptions, Seq2SeqTrainStepOptions } from './model/seq2seq';
export { Seq2SeqTrainer, seq2seqBatch } from './training/seq2seq-trainer';
export type { Seq2SeqDistillationOptions, Seq2SeqTrainExample, Seq2SeqTrainerOptions, Seq2SeqTrainResult } from './training/seq2seq-trainer';
export type { Gradients, TrainStepOptions, TrainStepResult } from './training/model-training';
export { SparseTrainer, latestCheckpoint, linearSchedule, readCheckpointState, RUN_FIELDS } from './training/trainer';
export type { DistillationOptions, FilledOptions, LogEntry, Metrics, RunField, RunFingerprint, SparseTrainerOptions, TrainData, TrainProgress, TrainResult, BudgetResult } from './training/trainer';
export { TensorBoardWriter } from './training/tensorboard';
export { ProcessGroup, launch, freePort, shardBatch } from './training/distributed';
export type { DistributedBackend, DistributedOptions, LaunchOptions, LaunchResult } from './training/distributed';
export { writeMaskImages } from './report/mask-plots';
export { buildReport, formatReport, parameterSummary, shapeTable, BERT_BASE_PARAMETERS, DENSITY_DEFINITION, densityFigures, formatDensity } from './report/report';
export type { DensitySummary, LayerSummary, ModelReport, ParameterSummary, ShapeRow } from './report/report';
export { encodePng } from './report/png';
export { hasLabels, loadBoolQ, loadClassificationFile, loadGlue } from './data/glue';
export type { ClassificationExample } from './data/glue';
export { GLUE_TASKS, TASK_COLUMNS, TASK_LABELS, parseLabel } from './data/tasks';
export type { ClassificationColumns, GlueTask } from './data/tasks';
export type { DataFormat, LoadOptions } from './data/files';
export type { LoadResult } from './data/rows';
export { loadSquad } from './data/squad';
export type { QAAnswer, QAExample, SquadLoadOptions, SquadLoadResult } from './data/squad';
export { loadSpamAssassin, loadSubjectPairs } from './data/spam-assassin';
export type { Seq2SeqExample } from './data/spam-assassin';
export type { SpamAssassinOptions } from './data/spam-assassin';
export { emailParts, emailToText } from './data/mail';
export { epochSeed, permutation, rng, shuffle } from './data/rng';
export { textInfilling } from './data/noise';
export type { InfillingOptions } from './data/noise';
export type { BatchOptions, ClassificationBatch, QABatch } from './data/batches';
export { ClassificationDataset } from './data/classification-dataset';
export type { ClassificationDatasetOptions } from './data/classification-dataset';
export { QADataset, QALogitCollector } from './data/qa-dataset';
export type { PostprocessOptions, QADatasetOptions, QAFeature } from './data/qa-dataset';
export * from './training/metrics';
export { buildWordPieceVocab, writeVocab } from './tokenizer/vocab';
export { runFinePruneJob, evaluateClassifier, evaluateQuestionAnswering } from './cli/job';
export { loadTaskData, JOB_TASKS } from './cli/task-data';
export type { JobResult } from './cli/job';
export type { FinePruneJobOptions, JobBudget } from './cli/job-options';
export type { JobTask } from './cli/task-data';
export { exportOnnx } from './model/onnx';
export type { OnnxExportOptions, OnnxExportReport } from './model/onnx';
export { createInferenceServer } from './serve/server';
export type { InferenceServer, InferenceServerStats, RouteStats } from './serve/server';
export type { GenerationRouteStats } from './serve/generation-routes';
export type { BatchingOptions, InferenceServerOptions } from './serve/server-options';
export { DynamicBatcher } from './serve/batcher';
export type { BatcherStats, DynamicBatcherOptions } from './serve/batcher';
export { HttpError } from './serve/http-error';
// Types that the public types above refer to (fields, parameters, results): exported so a user can name them and
// the API docs (npm run docs, typedoc) document them instead of leaving dangling references.
export type {
  DType,
  IntArray,
  NativeCompactReport,
  NativeForwardInputs,
  NativeForwardOptions,
  NativeGradients,
  NativeLayerInfo,
  NativeLoadReport,
  NativeLossOptions,
  NativeModelDimensions,
  NativeModelStructure,
  NativeRegularization,
  NativeTrainStepOptions,
  NativeTrainStepResult,
} from './runtime/native';
export type { TokenizerErrorCode } from './tokenizer/tokenizer-error';
export type { BatchItem, PaddingStrategy, TokenizedWithOffsets } from './tokenizer/tokenizer';
export type { TruncationStrategy } from './tokenizer/assemble';
export type { BertTokenizerConfig } from './tokenizer/tokenizer-json';
export type { SpecialNames } from './tokenizer/family';
export type { VocabOptions } from './tokenizer/vocab';
export type { TaskData } from './cli/task-data';
export type { TrainerState } from './training/checkpoint';
