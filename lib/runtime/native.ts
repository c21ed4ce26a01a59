/**
 * The contract between TypeScript and the C++ addon: every native function and object, typed here and
 * nowhere else. The addon itself lives in native/bindings/; this module finds and loads it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BlockpruneError } from './errors';

export type DType = 'F32' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

/** A tensor copied out of the native core: flat row-major data plus its shape. */
export interface TensorData {
  data: Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;
  shape: number[];
  dtype: DType;
}

export type IntArray = Int32Array | BigInt64Array | Uint32Array;

export interface NativeForwardInputs {
  inputIds: IntArray;
  attentionMask?: IntArray;
  tokenTypeIds?: IntArray;
  batchSize: number;
  seqLen: number;
  /** [batch] class ids: adds "loss" to the outputs (classification). */
  labels?: IntArray;
  /** [batch] token positions: adds "loss" (question answering). */
  startPositions?: IntArray;
  endPositions?: IntArray;
}

/** An encoder-decoder batch (native/seq2seq.h): the source [batchSize, seqLen], the target [batchSize, targetLen]. */
export interface NativeSeq2SeqInputs {
  inputIds: IntArray;
  attentionMask?: IntArray;
  batchSize: number;
  seqLen: number;
  /** The decoder's length; needed with decoderInputIds, decoderAttentionMask or token labels. */
  targetLen?: number;
  /** Default: shifted right from labels, by the family's rule. */
  decoderInputIds?: IntArray;
  decoderAttentionMask?: IntArray;
  /** [batchSize, targetLen] token ids (-100 ignored) for generation models, [batchSize] for classification: adds "loss". */
  labels?: IntArray;
}

/** What an encoder-decoder model says of itself. */
export interface NativeSeq2SeqInfo {
  modelType: 'bart' | 't5';
  architecture: string;
  /** config.json as loaded (JSON text). */
  config: string;
  vocabSize: number;
  dModel: number;
  encoderLayers: number;
  decoderLayers: number;
  heads: number;
  numLabels: number;
  padTokenId: number;
  eosTokenId: number;
  decoderStartTokenId: number;
  numParameters: number;
  /** What pruning may mask, in forward order (seq2seq.h PrunableBlock). */
  prunableBlocks: NativePrunableBlock[];
}

/**
 * One unit pruning masks, by HF module names: an attention block (linears q, k, v, out) or an FFN (intermediate,
 * output; or intermediate, gate, output for T5's gated GELU, the gate sharing the intermediate's unit scores).
 */
export interface NativePrunableBlock {
  kind: 'attention' | 'ffn';
  stack?: 'encoder' | 'decoder';
  layer?: number;
  /** attention: 'self' | 'cross'. */
  role?: 'self' | 'cross';
  linears: string[];
  /** attention only. */
  heads?: number;
  /** attention only; the geometry's headDim when absent. */
  headDim?: number;
  /** ffn only: intermediate units. */
  width?: number;
}

/** generate()'s options (native/generate.h); unset ones come from config.json, then transformers 4.4.2's defaults. */
export interface NativeGenerateOptions {
  maxLength?: number;
  minLength?: number;
  numBeams?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean;
  noRepeatNgramSize?: number;
  numReturnSequences?: number;
  /** undefined: config.json's; null: none. */
  forcedBosTokenId?: number | null;
  forcedEosTokenId?: number | null;
  /**
   * Called on the main thread with each step's tokens (one per row, or per beam), before the Promise settles.
   * Returning false stops the generation at its next step or the one after: the Promise rejects with E_ABORTED.
   */
  onStep?: (tokens: BigInt64Array) => boolean | void;
}

/** The native encoder-decoder model (native/bindings/seq2seq_handle.h). */
export interface NativeSeq2Seq {
  forward(inputs: NativeSeq2SeqInputs, options?: { hiddenStates?: boolean; attentions?: boolean }): Promise<Record<string, TensorData>>;
  /** sequences [rows, length] int64 (padded after eos); scores [rows] for beam search. */
  generate(
    inputs: Pick<NativeSeq2SeqInputs, 'inputIds' | 'attentionMask' | 'batchSize' | 'seqLen'>,
    options?: NativeGenerateOptions,
  ): Promise<{ sequences: TensorData; scores?: TensorData }>;
  /**
   * Teacher-forced incremental decoding (seq2seq.h start / step / select): the encoder once, then one step per
   * position of `decoderInputIds` ([batchSize, targetLen]). Each `selects` entry keeps the cache rows `index`
   * before the step at position `at` (earlier logits follow). "logits" [rows, targetLen, vocab]; "rows": the
   * input row each final cache row decoded.
   */
  decodeSteps(
    inputs: NativeSeq2SeqInputs & { targetLen: number; decoderInputIds: IntArray },
    options?: { selects?: { at: number; index: BigInt64Array | Int32Array }[] },
  ): Promise<{ logits: TensorData; rows: TensorData }>;
  info(): NativeSeq2SeqInfo;
  /** Pruning (native/patch.h patch_seq2seq), as NativeModel's. */
  patch(planJson: string): Promise<{ modules: string[]; scoreParameters: number }>;
  setThreshold(t: number): Promise<void>;
  masks(): Promise<Record<string, TensorData>>;
  loadState(path: string, options?: { strict?: boolean }): Promise<string[]>;
  /** Compaction (native/seq2seq.h compact_seq2seq): a new model; this one is unchanged. */
  compact(mode: 'dense' | 'heads', deadHeads?: 'exact' | 'reference'): Promise<{ model: NativeSeq2Seq; report: Seq2SeqCompactReport }>;
  dispose(): void;
  isDisposed(): boolean;
}

/** What Seq2SeqModel.compact() did, per prunable block (the source's prunable_blocks order). */
export interface Seq2SeqCompactReport {
  parametersBefore: number;
  parametersAfter: number;
  blocks: {
    kind: 'attention' | 'ffn';
    stack: 'encoder' | 'decoder';
    layer: number;
    /** attention: 'self' | 'cross'. */
    role?: 'self' | 'cross';
    /** attention: original head indices kept and removed (a compact source's own removals not repeated). */
    keptHeads?: number[];
    removedHeads?: number[];
    /** ffn: intermediate units before and after. */
    widthBefore?: number;
    widthAfter?: number;
  }[];
}

export interface NativeForwardOptions {
  /** Adds "hidden_states.0" .. "hidden_states.L" (0 is the embeddings output). */
  hiddenStates?: boolean;
  /** Adds "attentions.0" .. "attentions.L-1" (softmax probabilities). */
  attentions?: boolean;
  /** Adds "last_hidden_state" and "pooler_output" to task models' outputs. */
  extras?: boolean;
  /** Run in training mode (dropout on). Default false: forwards are evaluations. */
  training?: boolean;
}

export interface NativeLayerInfo {
  heads: number;
  keptHeads: number[];
  intermediateSize: number;
}

/**
 * Where a family keeps its encoder layers and each layer's six linears (names inside a layer), as pruning plans
 * and masks name them: nn_pruning's ModelStructure. `layers` is "bert.encoder.layer", "roberta.encoder.layer"
 * or "distilbert.transformer.layer".
 */
export interface NativeModelStructure {
  modelType: 'bert' | 'roberta' | 'xlm-roberta' | 'distilbert';
  /** The base model's attribute in task models: "bert", "roberta", "distilbert". */
  prefix: string;
  layers: string;
  linears: { query: string; key: string; value: string; attentionOutput: string; intermediate: string; output: string };
  /** The two LayerNorms of a layer (after attention, after the FFN). */
  norms: { attention: string; output: string };
  /** Whether the model has token_type_embeddings (DistilBERT has none and ignores token_type_ids). */
  tokenTypes: boolean;
  /** 'arange' (0..S-1), or 'input_ids' (RoBERTa: counted over the tokens that are not padding, after pad_token_id). */
  positions: 'arange' | 'input_ids';
  /** The classification head on the first token: activation(pre(h0)) then out; BERT's pre is its pooler. */
  classifier: { pre: string; activation: 'tanh' | 'relu'; out: string; preIsPooler: boolean };
  /** The bare model's pooler ("bert.pooler.dense"), where the family has one. */
  pooler?: string;
}

/** A model's sizes under one set of names, whatever its family's config.json calls them. */
export interface NativeModelDimensions {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** Heads per layer before pruning (num_attention_heads / n_heads). */
  numHeads: number;
  headDim: number;
  /** The config's FFN width (before pruning; per-layer widths are in `layers`). */
  intermediateSize: number;
  maxPositions: number;
  /** The longest input: maxPositions, less RoBERTa's padding_idx + 1. */
  maxSequenceLength: number;
  /** 0 when the family has no token types. */
  typeVocabSize: number;
  padTokenId: number;
  numLabels: number;
}

export type ModelDtype = 'fp32' | 'int8' | 'bf16';

export interface NativeModelInfo {
  task: 'bare' | 'text-classification' | 'question-answering';
  architecture: string;
  structure: NativeModelStructure;
  dimensions: NativeModelDimensions;
  /** config.json as the model would save it (JSON text). */
  config: string;
  numParameters: number;
  device: string;
  /** The encoder linears' number format (native/quantize.h): 'fp32', or 'int8' / 'bf16' once quantized. */
  dtype: ModelDtype;
  /** Bytes every parameter holds (int8 / bf16 weights count 1 / 2 bytes each, their scales 4). */
  weightBytes: number;
  layers: NativeLayerInfo[];
  /** [HF state-dict name, shape] in named_parameters() order. */
  parameters: Array<[string, number[]]>;
  patched: boolean;
  threshold?: number;
  /** The patch plan (JSON text) while patched. */
  pruningPlan?: string;
}

export interface NativeRegularization {
  loss: number;
  groups: Record<string, { loss: number; density: number; tensors: number }>;
}

export interface NativeLossOptions {
  regularization?: 'disabled' | 'l1' | 'l0';
  lambda?: number;
  attentionLambda?: number;
  denseLambda?: number;
  /** Pruning to a budget: the Lagrangian term of native/budget.h joins the loss. */
  budget?: NativeBudget;
}

/** native/budget.h's BudgetSpec: a cost model (lib/pruning/cost-model.ts), the target and the multipliers. */
export interface NativeBudget {
  constant: number;
  heads: { x: number[]; y: number[] };
  units: { x: number[]; y: number[] };
  /** In the cost's unit. */
  target: number;
  /** The unpruned model's cost: the term is lambda1 r + lambda2 r^2 with r = (expected - target) / dense. */
  dense: number;
  lambda1: number;
  lambda2: number;
  /** The final threshold: the masks the budget is about. */
  threshold: number;
}

/** What the masks cost: expected (from the scores' probabilities) and hard (the compact model they give now). */
export interface NativeBudgetCost {
  expected: number;
  /** The Lagrangian term's value. */
  term: number;
  hard: number;
  /** Expected heads and FFN units per layer. */
  heads: number[];
  units: number[];
  /** The compact model's heads and FFN units per layer (at least one of each, as compaction keeps). */
  hardHeads: number[];
  hardUnits: number[];
}

export interface NativeGradients {
  loss: number;
  taskLoss: number;
  reguLoss: number;
  regularization: NativeRegularization;
  outputs: Record<string, TensorData>;
  grads: Record<string, TensorData>;
}

export interface NativeTrainStepOptions extends NativeLossOptions {
  lr?: number;
  maskLr?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Multiplies both learning rates (warm-up / decay). */
  lrScale?: number;
  /** Gradient clipping (global L2 norm); <= 0 disables. Default 1. */
  maxGradNorm?: number;
  /** Mask threshold for this step (patched models). */
  threshold?: number;
  alphaCe?: number;
  alphaTeacher?: number;
  temperature?: number;
  /**
   * 'bf16': the linear layers' products in bf16 (operands rounded to bf16, sums in fp32) forward and backward;
   * weights, gradients and the optimizer stay fp32 (transformers' `bf16: true`). Needs the bf16 kernels
   * (buildInfo().quantKernels.bf16 not 'none'). Default: fp32.
   */
  mixedPrecision?: 'bf16';
}

export interface NativeTrainStepResult {
  loss: number;
  taskLoss: number;
  reguLoss: number;
  distilLoss: number;
  gradNorm: number;
  /** Rows of the batch (data-parallel: of the global batch, summed over ranks). */
  examples: number;
  /** Data-parallel: some rank voted to stop after this step. */
  stop: boolean;
  /** Data-parallel: ms this rank waited for the all-reduce after its backward (what overlapping did not hide). */
  syncMs: number;
  regularization: NativeRegularization;
  /** With a budget: what the masks cost before this step. */
  budget?: NativeBudgetCost;
}

export interface NativeProcessGroupOptions {
  backend?: 'gloo' | 'nccl';
  rank: number;
  worldSize: number;
  masterAddr?: string;
  masterPort?: number;
  timeoutMs?: number;
  bucketBytes?: number;
  /** Gloo's network interface (GLOO_SOCKET_IFNAME). */
  interface?: string;
}

/** A c10d process group (TCPStore rendezvous + Gloo or NCCL); lib/distributed.ts wraps it. */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  /** Elementwise sum over ranks. */
  allreduce(values: Float64Array): Promise<Float64Array>;
  /** Every rank's bytes, in rank order (lengths may differ). */
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  storeSet(key: string, value: string): Promise<void>;
  /** Waits for a key in rank 0's store (fails at once if the store goes away). */
  storeWait(key: string, timeoutMs: number): Promise<string>;
  /** Checks every rank's model has the same structure, then copies rank 0's weights and buffers to all. */
  syncModel(model: NativeModel): Promise<void>;
  /** Closes the group; with `barrier` (default) once every rank got here. */
  shutdown(barrier?: boolean): Promise<void>;
}

export interface NativeCompactReport {
  parametersBefore: number;
  parametersAfter: number;
  removedHeads: number[][];
  heads: number[];
  ffnWidths: number[];
}

export interface NativeLoadReport {
  weightsFile: string;
  newlyInitialized: string[];
  ignored: string[];
}

/**
 * One native model: its weights. Every method that returns a Promise is a job on the libuv pool that holds the
 * model's lock for its whole run; info() and the getters built on it read the description the last job
 * published (never the model); stateDict() throws E_BUSY while a job uses the model.
 */
export interface NativeModel {
  forward(inputs: NativeForwardInputs, options?: NativeForwardOptions): Promise<Record<string, TensorData>>;
  /** Diagnostic for the bench: times `runs` forwards in one native loop (ms each, after `warmup`). */
  timeForward(inputs: NativeForwardInputs, options?: { runs?: number; warmup?: number }): Promise<Float64Array>;
  /** Replaces `dir` atomically with the model's files and copies of `copyFiles` (native/atomic_file.h). */
  save(dir: string, copyFiles?: string[]): Promise<void>;
  info(): NativeModelInfo;
  /** Synchronous: E_BUSY while a job uses the model. */
  stateDict(): Record<string, TensorData>;
  /** The same, as a job: waits for the jobs before it, never E_BUSY. */
  readStateDict(): Promise<Record<string, TensorData>>;
  patch(planJson: string): Promise<{ modules: string[]; scoreParameters: number }>;
  setThreshold(t: number): Promise<void>;
  compile(): Promise<void>;
  compact(mode?: 'dense' | 'heads', deadHeads?: 'exact' | 'reference'): Promise<{ model: NativeModel; report: NativeCompactReport }>;
  padFfn(): Promise<NativeModel>;
  /** A quantized copy (native/quantize.h); this model is unchanged. */
  quantize(dtype: 'int8' | 'bf16', perChannel: boolean): Promise<NativeModel>;
  masks(): Promise<Record<string, TensorData>>;
  regularization(options?: NativeLossOptions): Promise<NativeRegularization>;
  budgetCost(budget: NativeBudget): Promise<NativeBudgetCost>;
  gradients(inputs: NativeForwardInputs, options?: NativeLossOptions): Promise<NativeGradients>;
  loadState(path: string, options?: { strict?: boolean }): Promise<string[]>;
  fillZeros(seed?: number): Promise<number>;
  dispose(): void;
  readonly disposed: boolean;
}

/**
 * One model's training state (native/bindings/training_handle.h): the AdamW moments, saved and restored with the
 * dropout generator. Each method takes the model it was created for (another model, or a disposed one, is
 * refused) and is a job that holds that model's lock, so the state is never used by two jobs at once.
 */
export interface NativeTrainingState {
  /** With `group`, `inputs` is this rank's part of the global batch, or null when it has no rows this step. */
  trainStep(
    model: NativeModel,
    inputs: NativeForwardInputs | null,
    options: NativeTrainStepOptions,
    teacher?: NativeModel,
    group?: NativeProcessGroup,
    stopVote?: boolean,
  ): Promise<NativeTrainStepResult>;
  /** optimizer.safetensors and rng.safetensors into `dir`; `rngStates[r]` (r >= 1): other ranks' generator states. */
  save(model: NativeModel, dir: string, rngStates?: Uint8Array[]): Promise<void>;
  /** Restores what save() wrote (all or nothing), taking rank `rank`'s generator state. */
  load(model: NativeModel, dir: string, rank?: number): Promise<void>;
  /** Forgets the moments. */
  resetOptimizer(model: NativeModel): Promise<void>;
}

export interface NativeLoadOptions {
  task?: string;
  numLabels?: number;
  device?: string;
  seed?: number;
}

export interface BuildInfo {
  torchVersion: string;
  cuda: boolean;
  cudaAvailable: boolean;
  cxx11Abi: boolean;
  parallel: string;
  openblasThreads: number;
  /** The CPU inference kernels this CPU gets: "avx512", "avx2" or "none" (libtorch's ops only). */
  cpuKernels: string;
  /** Whether inference uses them now (setFastKernels, BLOCKPRUNE_FAST_KERNELS=0). */
  fastKernels: boolean;
  /**
   * The quantized kernels per format (native/fast/quant.h): "avx512-vnni" / "avx2" (int8), "avx512-bf16", or
   * "none": quantized layers then run their dequantized weights on the fp32 kernels (said once on stderr).
   */
  quantKernels: { int8: string; bf16: string };
  /** Data-parallel backends this build has: "gloo" (c10d with Gloo), "nccl" (CUDA builds with NCCL). */
  distributedBackends: string[];
}

export interface NativeBinding {
  loadModel(dir: string, options?: NativeLoadOptions): Promise<{ model: NativeModel; report: NativeLoadReport }>;
  createModel(configJson: string, options?: { task?: string; device?: string; seed?: number }): Promise<NativeModel>;
  /** An empty training state (no moments yet) for `model`. */
  NativeTrainingState: new (model: NativeModel) => NativeTrainingState;
  loadSeq2Seq(dir: string, options?: { device?: string }): Promise<NativeSeq2Seq>;
  readSafetensors(path: string): Promise<{ tensors: Record<string, TensorData>; metadata: Record<string, string> }>;
  setNumThreads(n: number): void;
  setFastKernels(on: boolean): void;
  /** Seeds libtorch's global generator (dropout, random init of missing heads). */
  manualSeed(seed: number): void;
  getNumThreads(): number;
  buildInfo(): BuildInfo;
  initProcessGroup(options: NativeProcessGroupOptions): Promise<NativeProcessGroup>;
  /** This process's CPU generator state (dropout), as saved in checkpoints. */
  rngState(): Uint8Array;
}

/** The package root (where package.json of blockprune is), from dist/lib or lib. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'blockprune') return dir;
      } catch {
        /* keep walking */
      }
    }
    dir = dirname(dir);
  }
  return join(__dirname, '..', '..');
}

/** blockprune's version, from its package.json ('0.0.0' if that cannot be read). */
export function packageVersion(): string {
  try {
    const j = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { name?: string; version?: string };
    if (j.name === 'blockprune' && j.version) return j.version;
  } catch {
    /* unreadable: the fallback below */
  }
  return '0.0.0';
}

let binding: NativeBinding | undefined;
let loaded: AddonSource | undefined;

/** Where the loaded addon came from. */
export interface AddonSource {
  path: string;
  /** env: BLOCKPRUNE_ADDON; build: built from source here (build/Release); prebuild: shipped in the package. */
  kind: 'env' | 'build' | 'prebuild';
  /** For prebuilds: the manifest's tags. */
  variant?: 'cpu' | 'cuda';
  torchVersion?: string;
}

interface PrebuildEntry {
  file: string;
  variant: 'cpu' | 'cuda';
  torchVersion: string;
  cxx11Abi: boolean;
  napi: number;
  needed: string[];
  runpath: string[];
}

/** Whether an NVIDIA GPU is visible to this process (driver loaded, not hidden by CUDA_VISIBLE_DEVICES). */
function gpuVisible(): boolean {
  const cvd = process.env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined && (cvd.trim() === '' || cvd.trim() === '-1')) return false;
  return existsSync('/proc/driver/nvidia/version') || existsSync('/dev/nvidiactl');
}

/** Folders the dynamic loader searches, roughly as ld.so does: LD_LIBRARY_PATH, the RUNPATH, ld.so.conf, defaults. */
function librarySearchPath(runpath: string[]): string[] {
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...runpath];
  if (process.env.LIBTORCH) dirs.push(join(process.env.LIBTORCH, 'lib'));
  try {
    for (const f of readdirSync('/etc/ld.so.conf.d'))
      for (const line of readFileSync(join('/etc/ld.so.conf.d', f), 'utf8').split('\n'))
        if (line.startsWith('/')) dirs.push(line.trim());
  } catch {
    /* no ld.so.conf.d */
  }
  dirs.push('/lib', '/usr/lib', '/lib64', '/usr/lib64', '/usr/local/lib', `/usr/lib/${process.arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`, `/lib/${process.arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`);
  return dirs;
}

/**
 * The prebuilt addons of this platform that fit, best first: CUDA before CPU when a GPU is visible (unless
 * BLOCKPRUNE_VARIANT=cpu|cuda says which), each checked against the libraries present: a prebuild whose
 * libtorch (e.g. libtorch_cpu.so.1.13) is not found is reported, not loaded.
 */
function prebuildCandidates(dir: string, failures: string[]): Array<{ path: string; entry: PrebuildEntry }> {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) {
    failures.push(`${dir}: no prebuilt addon for ${process.platform}-${process.arch}`);
    return [];
  }
  let entries: PrebuildEntry[];
  try {
    entries = (JSON.parse(readFileSync(manifestPath, 'utf8')) as { prebuilds: PrebuildEntry[] }).prebuilds;
  } catch (e) {
    failures.push(`${manifestPath}: unreadable (${(e as Error).message})`);
    return [];
  }
  const want = process.env.BLOCKPRUNE_VARIANT;
  const order = want === 'cpu' || want === 'cuda' ? [want] : gpuVisible() ? ['cuda', 'cpu'] : ['cpu', 'cuda'];
  const out: Array<{ path: string; entry: PrebuildEntry }> = [];
  for (const variant of order)
    for (const entry of entries.filter((e) => e.variant === variant)) {
      const path = join(dir, entry.file);
      const tag = `${entry.file} (${entry.variant}, libtorch ${entry.torchVersion})`;
      if (entry.napi > Number(process.versions.napi ?? 0)) {
        failures.push(`${tag}: needs Node-API ${entry.napi}, this Node has ${process.versions.napi}`);
        continue;
      }
      if (entry.variant === 'cuda' && !gpuVisible() && want !== 'cuda') {
        failures.push(`${tag}: skipped, no GPU visible`);
        continue;
      }
      const search = librarySearchPath(entry.runpath ?? []);
      const missing = (entry.needed ?? []).filter((lib) => !search.some((d) => existsSync(join(d, lib))));
      if (missing.length) {
        failures.push(`${tag}: needs ${missing.join(', ')}, not found in ${[...new Set(search)].slice(0, 6).join(':')}...`);
        continue;
      }
      out.push({ path, entry });
    }
  if (entries.length === 0) failures.push(`${manifestPath}: lists no prebuilds`);
  return out;
}

/**
 * Where the addon was loaded from. Loads it if no native call has yet (so the answer never depends on what ran
 * before); when none loads, the E_NO_ADDON error that lists every file tried and the fixes.
 */
export function addonSource(): AddonSource {
  native();
  return loaded as AddonSource;
}

/**
 * Loads the addon once: BLOCKPRUNE_ADDON if set, then a build from source (build/Release), then the
 * prebuilt addons that fit (prebuilds/<platform>-<arch>/manifest.json). When none loads, one error lists
 * every attempt and the fixes.
 *
 * Thread pools: libtorch's OpenMP pool and OpenBLAS's pthreads share the cores, and OpenMP threads that spin
 * while OpenBLAS works made forwards ~3x slower on 2 cores (measured). libgomp reads OMP_WAIT_POLICY when it
 * is loaded, which is when the addon loads: so it is set here, before that, unless the user chose a value.
 */
export function native(): NativeBinding {
  if (binding) return binding;
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  const root = packageRoot();
  const failures: string[] = [];
  const candidates: Array<{ path: string; source: AddonSource; check?: (b: NativeBinding) => string | undefined }> = [];
  if (process.env.BLOCKPRUNE_ADDON) candidates.push({ path: process.env.BLOCKPRUNE_ADDON, source: { path: process.env.BLOCKPRUNE_ADDON, kind: 'env' } });
  const build = join(root, 'build', 'Release', 'blockprune.node');
  candidates.push({ path: build, source: { path: build, kind: 'build' } });
  const prebuildDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  for (const { path, entry } of prebuildCandidates(prebuildDir, failures))
    candidates.push({
      path,
      source: { path, kind: 'prebuild', variant: entry.variant, torchVersion: entry.torchVersion },
      // The libtorch it loaded against must be the one it was built for.
      check: (b) => {
        const v = b.buildInfo().torchVersion;
        return v === entry.torchVersion ? undefined : `built for libtorch ${entry.torchVersion} but reports ${v}`;
      },
    });
  for (const c of candidates) {
    if (!existsSync(c.path)) {
      failures.push(`${c.path}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const b = require(c.path) as NativeBinding;
      const bad = c.check?.(b);
      if (bad) {
        failures.push(`${c.path}: ${bad}`);
        continue;
      }
      binding = b;
      loaded = c.source;
      return binding;
    } catch (e) {
      failures.push(`${c.path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new BlockpruneError(
    'E_NO_ADDON',
    'blockprune: the native addon could not be loaded. Tried:\n' +
      failures.map((f) => `  - ${f}`).join('\n') +
      '\nPossible fixes:\n' +
      '  - install libtorch and OpenBLAS: apt-get install libtorch-dev libopenblas0-pthread libgloo-dev nlohmann-json3-dev\n' +
      '  - or point the build at a libtorch: LIBTORCH=<root>, Torch_DIR=<cmake dir>, or LIBTORCH_USE_PYTORCH=1\n' +
      '  - if libtorch is outside the loader path: LD_LIBRARY_PATH=<libtorch>/lib\n' +
      '  - rebuild the addon from source: npm rebuild blockprune (or npm run build:native in a checkout)',
  );
}

// ---- encoder-decoder training (issue 18; native/bindings/seq2seq_training.cc) ----

/**
 * An encoder-decoder train step's hyper-parameters: the BERT step's names and defaults (AdamW, lrScale, clipping,
 * distillation weights and temperature, the scores' maskLr and the step's threshold), and the regularization
 * as one object (its decoder groups have lambdas of their own).
 */
export type NativeSeq2SeqTrainStepOptions = Pick<
  NativeTrainStepOptions,
  'lr' | 'weightDecay' | 'beta1' | 'beta2' | 'eps' | 'lrScale' | 'maxGradNorm' | 'alphaCe' | 'alphaTeacher' | 'temperature' | 'maskLr' | 'threshold'
> & { regularization?: NativeSeq2SeqRegularizationOptions };

/** nn_pruning's penalty on an encoder-decoder's scores: lambda x sum over groups of mean penalty x group lambda / groups. */
export interface NativeSeq2SeqRegularizationOptions {
  /** 'l1' (mean sigmoid of the scores), 'l0' or 'disabled' (default). */
  kind?: 'disabled' | 'l1' | 'l0';
  /** The schedule's lambda at this step (default 0). */
  lambda?: number;
  /** Encoder attention (default 1). */
  attentionLambda?: number;
  /** Encoder FFN (default 1). */
  denseLambda?: number;
  /** Decoder self- and cross-attention (default attentionLambda). */
  decoderAttentionLambda?: number;
  /** Decoder FFN (default denseLambda). */
  decoderDenseLambda?: number;
}

export interface NativeSeq2SeqTrainStepResult {
  /** The optimised loss (with a teacher: alphaTeacher x distilLoss + alphaCe x taskLoss). */
  loss: number;
  /** The family's cross-entropy (labels -100 ignored). */
  taskLoss: number;
  /** KL per target token (batchmean over tokens not -100) x T^2; 0 without a teacher. */
  distilLoss: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  /** Target tokens counted (classification: rows). */
  tokens: number;
  /** Optimizer steps taken on this model so far. */
  steps: number;
  /** The regularization before lambda (0 when disabled). */
  reguLoss: number;
  /**
   * A patched model's groups ("attention", "dense", "decoder_attention", "decoder_dense"): each one's term in
   * reguLoss and its density at this step's threshold (before the update). Empty when not patched.
   */
  groups: NativeRegularization['groups'];
}

export interface NativeSeq2Seq {
  regularization(options?: NativeSeq2SeqRegularizationOptions): Promise<NativeRegularization>;
  /** optimizer.safetensors (the AdamW moments) and rng.safetensors (the CPU generator) into `dir`. */
  saveTrainingState(dir: string): Promise<void>;
  /** Restores what saveTrainingState wrote (E_BAD_CHECKPOINT naming what does not fit). */
  loadTrainingState(dir: string): Promise<void>;
  trainStep(inputs: NativeSeq2SeqInputs, options: NativeSeq2SeqTrainStepOptions, teacher?: NativeSeq2Seq): Promise<NativeSeq2SeqTrainStepResult>;
  gradients(inputs: NativeSeq2SeqInputs): Promise<{ loss: number; grads: Record<string, TensorData> }>;
  /** config.json and model.safetensors, plus copies of `copyFiles` (the tokenizer's) in the same atomic replacement. */
  save(dir: string, copyFiles?: string[]): Promise<void>;
}

export interface NativeBinding {
  createSeq2Seq(configJson: string, options?: { seed?: number; device?: string }): Promise<NativeSeq2Seq>;
}
