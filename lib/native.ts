/**
 * The contract between TypeScript and the C++ addon: every native function and object, typed here and
 * nowhere else. The addon itself lives in native/bindings/; this module finds and loads it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BlockpruneError } from './errors';

export type DType = 'F32' | 'I64' | 'I32' | 'U8' | 'BOOL';

/** A tensor copied out of the native core: flat row-major data plus its shape. */
export interface TensorData {
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
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

export interface NativeModelInfo {
  task: 'bare' | 'text-classification' | 'question-answering';
  architecture: string;
  /** config.json as the model would save it (JSON text). */
  config: string;
  numParameters: number;
  device: string;
  training: boolean;
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
}

export interface NativeTrainStepResult {
  loss: number;
  taskLoss: number;
  reguLoss: number;
  distilLoss: number;
  gradNorm: number;
  regularization: NativeRegularization;
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

export interface NativeModel {
  forward(inputs: NativeForwardInputs, options?: NativeForwardOptions): Promise<Record<string, TensorData>>;
  /** Diagnostic for the bench: times `runs` forwards in one native loop (ms each, after `warmup`). */
  timeForward(inputs: NativeForwardInputs, options?: { runs?: number; warmup?: number }): Promise<Float64Array>;
  save(dir: string): Promise<void>;
  info(): NativeModelInfo;
  stateDict(): Record<string, TensorData>;
  patch(planJson: string): { modules: string[]; scoreParameters: number };
  setThreshold(t: number): void;
  compile(): Promise<void>;
  compact(mode?: 'dense' | 'heads'): Promise<{ model: NativeModel; report: NativeCompactReport }>;
  padFfn(): Promise<NativeModel>;
  masks(): Promise<Record<string, TensorData>>;
  regularization(options?: NativeLossOptions): NativeRegularization;
  gradients(inputs: NativeForwardInputs, options?: NativeLossOptions): Promise<NativeGradients>;
  loadState(path: string, options?: { strict?: boolean }): Promise<string[]>;
  trainStep(inputs: NativeForwardInputs, options: NativeTrainStepOptions, teacher?: NativeModel): Promise<NativeTrainStepResult>;
  saveTraining(dir: string): Promise<void>;
  loadTraining(dir: string): Promise<void>;
  resetOptimizer(): void;
  fillZeros(seed?: number): Promise<number>;
  dispose(): void;
  readonly disposed: boolean;
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
}

export interface NativeBinding {
  loadModel(dir: string, options?: NativeLoadOptions): Promise<{ model: NativeModel; report: NativeLoadReport }>;
  createModel(configJson: string, options?: { task?: string; device?: string; seed?: number }): Promise<NativeModel>;
  readSafetensors(path: string): Promise<{ tensors: Record<string, TensorData>; metadata: Record<string, string> }>;
  setNumThreads(n: number): void;
  setFastKernels(on: boolean): void;
  /** Seeds libtorch's global generator (dropout, random init of missing heads). */
  manualSeed(seed: number): void;
  getNumThreads(): number;
  buildInfo(): BuildInfo;
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

let binding: NativeBinding | undefined;

/**
 * Loads the addon once. Thread pools: libtorch's OpenMP pool and OpenBLAS's pthreads share the cores, and
 * OpenMP threads that spin while OpenBLAS works made forwards ~3x slower on 2 cores (measured). libgomp
 * reads OMP_WAIT_POLICY when it is loaded, which is when the addon loads: so it is set here, before that,
 * unless the user chose a value.
 */
export function native(): NativeBinding {
  if (binding) return binding;
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  const root = packageRoot();
  const candidates = [
    process.env.BLOCKPRUNE_ADDON,
    join(root, 'build', 'Release', 'blockprune.node'),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'blockprune.node'),
  ].filter((p): p is string => !!p);
  const failures: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      failures.push(`${path}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      binding = require(path) as NativeBinding;
      return binding;
    } catch (e) {
      failures.push(`${path}: ${(e as Error).message}`);
    }
  }
  throw new BlockpruneError(
    'E_NO_ADDON',
    'blockprune: the native addon could not be loaded. Tried:\n' +
      failures.map((f) => `  - ${f}`).join('\n') +
      '\nPossible fixes:\n' +
      '  - install libtorch and OpenBLAS: apt-get install libtorch-dev libopenblas0-pthread nlohmann-json3-dev\n' +
      '  - or point the build at a libtorch: LIBTORCH=<root>, Torch_DIR=<cmake dir>, or LIBTORCH_USE_PYTORCH=1\n' +
      '  - if libtorch is outside the loader path: LD_LIBRARY_PATH=<libtorch>/lib\n' +
      '  - rebuild the addon: npm run build:native',
  );
}
