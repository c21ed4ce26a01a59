/**
 * A latency model of the compact network on this machine (issue 17): what a compact model of this geometry
 * costs at one batch x sequence shape, in fp32, as a CostModel (cost-model.ts: a constant plus, per layer, a
 * piecewise-linear cost of its kept heads and of its kept FFN units), so that the trainer can turn a budget in
 * milliseconds into a differentiable cost of the masks.
 *
 * How it is measured: random-weight models of the model's config with heads and FFN units removed per layer
 * (`pruned_heads`, `intermediate_sizes`: what compaction produces, so the same forward runs) are built for a
 * grid of layer shapes and timed in alternating rounds (the VM drifts 15-25% over minutes: every point sees
 * the same drift), medians kept. The grid: a sweep of heads (FFN fixed), a sweep of FFN widths (heads fixed),
 * a few non-uniform models (random heads and widths per layer, off the breakpoints: they check additivity and
 * interpolation) and the dense model (the base of a speed-up). Attention and FFN costs add up, so one
 * non-negative least-squares fit on relative errors gives the constant and the slopes of both tables,
 * breakpoints at the grid values (heads 1 to all, units 1 to all: compaction keeps at least one of each).
 * The grid and the fit are latency-fit.ts's.
 *
 * Cached as `<model-dir>/latency-profile-<batch>x<seq>.json` (atomic write), reused while the shape, the thread
 * count, the CPU kernels and the geometry match, measured again otherwise.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel, type ForwardBatch, type ModelConfigJson } from '../model/model';
import { writeFileAtomicSync } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import { native } from '../runtime/native';
import * as v from '../runtime/validate';
import { checkCostModel, predictCost, type CostModel } from './cost-model';
import { fitLatency, latencyGrid, type LatencyGridKind, type LayerShape } from './latency-fit';

export type { LayerShape };

/** What the cache file says it is; another version is measured again, another tag is refused. */
export const LATENCY_PROFILE_FORMAT = 'blockprune-latency-profile/1';

/** The model a profile was measured for (the cache key with the shape, threads and kernels). */
export interface LatencyGeometry {
  family: string;
  task: string;
  hidden: number;
  layers: number;
  /** Heads per layer before pruning, and their size. */
  heads: number;
  headDim: number;
  /** The FFN width before pruning. */
  intermediate: number;
  vocab: number;
}

/** One measured model of the grid: each layer's heads and FFN units, its median and the fit's prediction. */
export interface LatencyGridPoint {
  kind: LatencyGridKind;
  heads: number[];
  units: number[];
  ms: number;
  predictedMs: number;
}

export interface LatencyProfile extends CostModel {
  unit: 'ms';
  format: typeof LATENCY_PROFILE_FORMAT;
  batch: number;
  seq: number;
  dtype: 'fp32';
  /** Intra-op threads (getNumThreads) when measured. */
  threads: number;
  /** The CPU inference kernels (buildInfo().cpuKernels, or "libtorch" when they are off). */
  kernels: string;
  geometry: LatencyGeometry;
  grid: LatencyGridPoint[];
  /** The dense model: measured, and as the fit predicts it. */
  dense: { ms: number; predictedMs: number };
  /** The largest |predicted - measured| / measured over the grid. */
  maxFitError: number;
  runs: number;
  rounds: number;
  /** Seconds the profile took (building and timing). */
  seconds: number;
  createdAt: string;
}

export interface LatencyProgress {
  stage: 'build' | 'time';
  done: number;
  total: number;
}

export interface ProfileLatencyOptions {
  batch: number;
  seq: number;
  /** Timed forwards per model per round (more for models under a few ms, see timeModels); default 3. */
  runs?: number;
  /** Alternating rounds over the grid; default 3. */
  rounds?: number;
  onProgress?: (p: LatencyProgress) => void;
}

export interface LoadOrProfileOptions extends ProfileLatencyOptions {
  /** Measure again even when the cache matches. */
  force?: boolean;
  /** The model of `dir` when the caller has it loaded (it is loaded from `dir` otherwise). */
  model?: BertModel;
}

/** The largest batch and sequence a profile takes (bench's limits: bert-base's 512 positions, 256 rows). */
const MAX_BATCH = 256;
const MAX_SEQ = 512;
/** Profiling models read a vocabulary this small: the lookup gathers batch x seq rows whatever the table's size, and a 30522-row table takes 0.3 s to build per model. */
const PROFILE_VOCAB = 1024;

/** The cache file of one shape. */
export function latencyProfilePath(dir: string, batch: number, seq: number): string {
  return join(dir, `latency-profile-${batch}x${seq}.json`);
}

/** The predicted milliseconds of a compact model keeping these heads and units per layer (cost-model.ts's predictCost). */
export function predictLatency(profile: CostModel, layers: ReadonlyArray<LayerShape>): number {
  return predictCost(profile, layers);
}

function checkShape(o: Record<string, unknown>): { batch: number; seq: number } {
  return { batch: v.integer('options.batch', o.batch, { min: 1, max: MAX_BATCH }), seq: v.integer('options.seq', o.seq, { min: 1, max: MAX_SEQ }) };
}

const PROFILE_KEYS = ['batch', 'seq', 'runs', 'rounds', 'onProgress'] as const;

function checkProfileOptions(options: unknown, extra: readonly string[] = []): Record<string, unknown> {
  const o = v.options('options', options, [...PROFILE_KEYS, ...extra]);
  if (o.runs !== undefined) v.integer('options.runs', o.runs, { min: 1, max: 1000 });
  if (o.rounds !== undefined) v.integer('options.rounds', o.rounds, { min: 1, max: 100 });
  if (o.onProgress !== undefined) v.func('options.onProgress', o.onProgress);
  checkShape(o);
  return o;
}

/** `config` with each layer keeping `layers[l]` (its first heads, removed ones listed in pruned_heads): what compaction writes. */
export function compactLayersConfig<C extends ModelConfigJson>(config: C, numHeads: number, layers: ReadonlyArray<LayerShape>): C {
  return {
    ...config,
    pruned_heads: Object.fromEntries(layers.map((l, i) => [String(i), Array.from({ length: numHeads - l.heads }, (_, k) => l.heads + k)])),
    intermediate_sizes: layers.map((l) => l.intermediateSize),
  };
}

/** A batch x seq batch of ids spread over `vocab` (above the special ids), every token attended. */
export function latencyBatch(batch: number, seq: number, vocab: number): ForwardBatch {
  const n = batch * seq;
  return { inputIds: new Int32Array(n).map((_, i) => 5 + ((i * 7919) % (vocab - 5))), attentionMask: new Int32Array(n).fill(1), batchSize: batch, seqLen: seq };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/**
 * The median forward milliseconds of each model, timed in alternating rounds (forward order, then backward:
 * every model sees the same drift of the machine). A first pass warms each model and estimates its time: a
 * model under a few milliseconds gets more runs per round (at least `minRoundMs`, default 100, of them: 30 let
 * a 0.8 ms model's profile move by 10% between runs of the SST-2 job), so that its median
 * rests on enough runs. The forward is timed in the addon's loop (model.timeForward), as the fine-pruning job
 * times its compact model: JS between runs would add the event loop's noise to a few milliseconds.
 */
export async function timeModels(
  models: readonly BertModel[],
  batch: ForwardBatch,
  o: { runs?: number; rounds?: number; minRoundMs?: number; onRound?: (done: number, total: number) => void } = {},
): Promise<number[]> {
  const runs = o.runs ?? 3;
  const rounds = o.rounds ?? 3;
  const first = [];
  // Its first forward also packs the model's weights for the kernels: an overestimate, which only costs a small model a few runs.
  for (const m of models) first.push((await m.timeForward(batch, { runs: 1, warmup: 0 }))[0]);
  const perRound = first.map((ms) => Math.min(200, Math.max(runs, Math.ceil((o.minRoundMs ?? 100) / Math.max(ms, 1e-3)))));
  const times: number[][] = models.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = models.map((_, k) => (r % 2 ? models.length - 1 - k : k));
    for (const k of order) times[k].push(...(await models[k].timeForward(batch, { runs: perRound[k], warmup: 0 })));
    o.onRound?.(r + 1, rounds);
  }
  return times.map(median);
}

function kernelsNow(): string {
  const info = native().buildInfo();
  return info.fastKernels ? info.cpuKernels : 'libtorch';
}

function geometryOf(model: BertModel): LatencyGeometry {
  const d = model.dimensions;
  return { family: model.family, task: model.task, hidden: d.hiddenSize, layers: d.numLayers, heads: d.numHeads, headDim: d.headDim, intermediate: d.intermediateSize, vocab: d.vocabSize };
}

/**
 * Measures the latency model of `model`'s geometry at options.batch x options.seq (see the module comment):
 * about 20 models for bert-base, built one by one and held until all are timed. `model` itself is only read
 * (its config, task and sizes).
 */
export async function profileLatency(model: BertModel, options: ProfileLatencyOptions): Promise<LatencyProfile> {
  const o = checkProfileOptions(options);
  const { batch, seq } = checkShape(o);
  const geometry = geometryOf(model);
  const maxSeq = model.dimensions.maxSequenceLength;
  if (seq > maxSeq) throw v.invalidParameterError('options.seq', `an integer <= ${maxSeq} (the model's positions)`, seq, 'range');
  const onProgress = o.onProgress as ProfileLatencyOptions['onProgress'];
  const started = performance.now();
  const { knots, points } = latencyGrid(geometry);
  const vocab = Math.min(geometry.vocab, PROFILE_VOCAB);
  // fp32: a quantized model's profile is of its fp32 form (quantization_config would quantize the random models).
  const config: Record<string, unknown> = { ...model.config, vocab_size: vocab };
  delete config.quantization_config;
  const models: BertModel[] = [];
  try {
    for (const p of points) {
      models.push(await BertModel.fromConfig(compactLayersConfig(config as ModelConfigJson, geometry.heads, p.layers), { task: model.task, seed: 0 }));
      onProgress?.({ stage: 'build', done: models.length, total: points.length });
    }
    const runs = (o.runs as number | undefined) ?? 3;
    const rounds = (o.rounds as number | undefined) ?? 3;
    const ms = await timeModels(models, latencyBatch(batch, seq, vocab), { runs, rounds, onRound: (done, total) => onProgress?.({ stage: 'time', done, total }) });
    const fit = fitLatency(points.map((p, k) => ({ layers: p.layers, ms: ms[k] })), knots);
    const grid: LatencyGridPoint[] = points.map((p, k) => ({
      kind: p.kind,
      heads: p.layers.map((l) => l.heads),
      units: p.layers.map((l) => l.intermediateSize),
      ms: ms[k],
      predictedMs: predictCost(fit, p.layers),
    }));
    const dense = grid.find((g) => g.heads.every((h) => h === geometry.heads) && g.units.every((u) => u === geometry.intermediate))!;
    return {
      ...fit,
      unit: 'ms',
      format: LATENCY_PROFILE_FORMAT,
      batch,
      seq,
      dtype: 'fp32',
      threads: native().getNumThreads(),
      kernels: kernelsNow(),
      geometry,
      grid,
      dense: { ms: dense.ms, predictedMs: dense.predictedMs },
      maxFitError: Math.max(...grid.map((g) => Math.abs(g.predictedMs - g.ms) / g.ms)),
      runs,
      rounds,
      seconds: (performance.now() - started) / 1000,
      createdAt: new Date().toISOString(),
    };
  } finally {
    for (const m of models) m.dispose();
  }
}

// ---- The cache.

function badProfile(path: string, why: string): BlockpruneError {
  return new BlockpruneError('E_BAD_PROFILE', `${path} is not a latency profile blockprune wrote (${why}): delete it, or measure again with force (--force), which replaces it`);
}

/**
 * The cached profile at `path` checked against what would be measured now: the profile, or why it is stale
 * (`stale`). A file that is not a profile is E_BAD_PROFILE: our writes are atomic, so it was written by
 * something else, and replacing it unasked could destroy someone's file.
 */
function readCachedProfile(path: string, want: Pick<LatencyProfile, 'batch' | 'seq' | 'threads' | 'kernels' | 'geometry'>): { profile?: LatencyProfile; stale?: string } {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw badProfile(path, `not JSON: ${e.message}`);
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read the latency profile ${path}: ${(e as Error).message}`);
  }
  const format = v.is.object(data) ? data.format : undefined;
  if (typeof format !== 'string' || !format.startsWith('blockprune-latency-profile/')) throw badProfile(path, `format ${JSON.stringify(format)}`);
  if (format !== LATENCY_PROFILE_FORMAT) return { stale: `format ${format}, this version writes ${LATENCY_PROFILE_FORMAT}` };
  const p = data as unknown as LatencyProfile;
  try {
    checkCostModel('profile', p);
    if (p.unit !== 'ms') throw new Error(`unit ${JSON.stringify(p.unit)}`);
    for (const k of ['batch', 'seq', 'threads', 'runs', 'rounds'] as const) v.integer(k, p[k], { min: 1 });
    v.oneOf('dtype', p.dtype, ['fp32']);
    for (const k of ['maxFitError', 'seconds'] as const) v.number(k, p[k], { min: 0 });
    if (!Array.isArray(p.grid)) throw new Error('grid: not an array');
    v.string('kernels', p.kernels);
    const g = v.object('geometry', p.geometry);
    for (const k of Object.keys(want.geometry)) if (typeof g[k] !== typeof (want.geometry as unknown as Record<string, unknown>)[k]) throw new Error(`geometry.${k} missing`);
    v.object('dense', p.dense);
    v.number('dense.ms', p.dense.ms);
    v.number('dense.predictedMs', p.dense.predictedMs);
  } catch (e) {
    throw badProfile(path, (e as Error).message);
  }
  const differ: string[] = [];
  if (p.batch !== want.batch || p.seq !== want.seq) differ.push(`shape ${p.batch}x${p.seq}, wanted ${want.batch}x${want.seq}`);
  if (p.threads !== want.threads) differ.push(`threads ${p.threads}, now ${want.threads}`);
  if (p.kernels !== want.kernels) differ.push(`kernels ${p.kernels}, now ${want.kernels}`);
  for (const [k, x] of Object.entries(want.geometry)) if ((p.geometry as unknown as Record<string, unknown>)[k] !== x) differ.push(`${k} ${(p.geometry as unknown as Record<string, unknown>)[k]}, the model's ${x}`);
  return differ.length ? { stale: `measured for ${differ.join('; ')}` } : { profile: p };
}

/**
 * The latency profile of the model in `dir` at options.batch x options.seq: read from
 * `dir/latency-profile-<batch>x<seq>.json` when it matches this machine and model (`cached: true`), measured
 * and written there otherwise (`reason` says why). The trainer's `--target-latency` calls this.
 */
export async function loadOrProfileLatency(dir: string, options: LoadOrProfileOptions): Promise<{ profile: LatencyProfile; cached: boolean; path: string; reason?: string }> {
  const o = checkProfileOptions(options, ['force', 'model']);
  const { batch, seq } = checkShape(o);
  const force = o.force === undefined ? false : v.boolean('options.force', o.force);
  if (o.model !== undefined) v.instance('options.model', o.model, BertModel, 'a BertModel');
  const abs = v.modelDirectory('dir', dir);
  const path = latencyProfilePath(abs, batch, seq);
  const model = (o.model as BertModel | undefined) ?? (await BertModel.fromPretrained(abs));
  try {
    const want = { batch, seq, threads: native().getNumThreads(), kernels: kernelsNow(), geometry: geometryOf(model) };
    let reason = force ? 'forced' : 'no profile yet';
    if (!force && existsSync(path)) {
      const c = readCachedProfile(path, want);
      if (c.profile) return { profile: c.profile, cached: true, path };
      reason = c.stale!;
    }
    // Checked before minutes of measuring, not by the write at the end.
    v.writableDirectory('dir', abs);
    const profile = await profileLatency(model, { batch, seq, runs: o.runs as number | undefined, rounds: o.rounds as number | undefined, onProgress: o.onProgress as ProfileLatencyOptions['onProgress'] });
    writeFileAtomicSync(path, JSON.stringify(profile, null, 1) + '\n');
    return { profile, cached: false, path, reason };
  } finally {
    if (o.model === undefined) model.dispose();
  }
}
