/**
 * Pruning configuration with the reference's vocabulary and defaults (nn_pruning's SparseTrainingArguments),
 * the presets users know (hybrid, block, heads, unstructured), the cubic threshold schedule, and the plan
 * that tells the native core which linear gets which mask.
 */
import { BERT_STRUCTURE } from '../model/model';
import type { ModelGeometry } from '../model/model';
import { BlockpruneError } from '../runtime/errors';
import type { NativePrunableBlock } from '../runtime/native';
import * as v from '../runtime/validate';

export type PruningMethod = 'disabled' | 'topK' | 'threshold' | 'sigmoied_threshold' | 'magnitude' | 'l0';
export type PruningSubmethod = 'default' | '1d' | '1d_alt' | 'joint';
export type Regularization = 'disabled' | 'l1' | 'l0';
/** A block dimension: a number, 'head' (the head size) or 'full' (the whole dimension). */
export type BlockDim = number | 'head' | 'full';

/** The reference's SparseTrainingArguments, camelCased. Defaults are the reference's. */
export interface PruningOptions {
  /**
   * `method[:submethod]` for the FFN (and the attention output when attentionOutputWithDense): topK,
   * threshold, sigmoied_threshold, l0, magnitude or disabled; submethods default, 1d, 1d_alt, joint
   * (default 'topK'; the reference's `dense_pruning_method`).
   */
  densePruningMethod: string;
  /** `method[:submethod]` for q, k, v (and the attention output otherwise) (default 'topK'; `attention_pruning_method`). */
  attentionPruningMethod: string;
  /** Rows of an attention score block: a number, 'head' (the head size) or 'full' (default 1; `attention_block_rows`). */
  attentionBlockRows: BlockDim;
  /** Columns of an attention score block (default 1; `attention_block_cols`). */
  attentionBlockCols: BlockDim;
  /** Rows of a dense score block (default 1; `dense_block_rows`). */
  denseBlockRows: BlockDim;
  /** Columns of a dense score block (default 1; `dense_block_cols`). */
  denseBlockCols: BlockDim;
  /**
   * true: the attention output uses the dense method and the "dense" group; false: the attention method, with
   * the attention block transposed (default true; `attention_output_with_dense`).
   */
  attentionOutputWithDense: boolean;
  /** Mask a linear's bias where its whole row is masked (default true; `bias_mask`). */
  biasMask: boolean;
  /** The schedule's threshold before the initial warm-up (default 1.0; `initial_threshold`). */
  initialThreshold: number;
  /** The threshold after the cubic decrease, and at evaluation (default 0.5; `final_threshold`). */
  finalThreshold: number;
  /** Steps at the initial threshold, in multiples of warmupSteps (default 1; `initial_warmup`). */
  initialWarmup: number;
  /** Steps at the final threshold at the end, in multiples of warmupSteps (default 2; `final_warmup`). */
  finalWarmup: number;
  /** Penalty on the scores: 'l1', 'l0' or 'disabled' (default 'disabled'; `regularization`). */
  regularization: Regularization;
  /** The penalty's weight at the final threshold, scaled with the threshold before (default 0; `regularization_final_lambda`). */
  regularizationFinalLambda: number;
  /** Weight of the attention group in the penalty (default 1; `attention_lambda`). */
  attentionLambda: number;
  /** Weight of the dense group in the penalty (default 1; `dense_lambda`). */
  denseLambda: number;
  /** Learning rate of the mask scores, without weight decay (default 1e-2; `mask_scores_learning_rate`). */
  maskScoresLearningRate: number;
  /** Threshold binarizers keep at least this fraction of each matrix (default 0.005; `linear_min_parameters`). */
  linearMinParameters: number;
  /** Initial value of every score (default 0; the reference's mask_init "constant" with mask_scale). */
  maskInit: number;
  /** Encoder-decoders: the decoder's attention group's weight (default attentionLambda; `decoder_attention_lambda`). */
  decoderAttentionLambda?: number;
  /** Encoder-decoders: the decoder's FFN group's weight (default denseLambda; `decoder_dense_lambda`). */
  decoderDenseLambda?: number;
}
const OPTIONAL_PRUNING = ['decoderAttentionLambda', 'decoderDenseLambda'] as const; // no default: a run without them keeps its fingerprint

export const DEFAULT_PRUNING: Readonly<PruningOptions> = Object.freeze({
  densePruningMethod: 'topK',
  attentionPruningMethod: 'topK',
  attentionBlockRows: 1,
  attentionBlockCols: 1,
  denseBlockRows: 1,
  denseBlockCols: 1,
  attentionOutputWithDense: true,
  biasMask: true,
  initialThreshold: 1.0,
  finalThreshold: 0.5,
  initialWarmup: 1,
  finalWarmup: 2,
  regularization: 'disabled',
  regularizationFinalLambda: 0,
  attentionLambda: 1,
  denseLambda: 1,
  maskScoresLearningRate: 1e-2,
  linearMinParameters: 0.005,
  maskInit: 0,
});

/** The reference's snake_case names, accepted in JSON config files. */
const SNAKE: Record<string, keyof PruningOptions> = {
  dense_pruning_method: 'densePruningMethod',
  attention_pruning_method: 'attentionPruningMethod',
  attention_block_rows: 'attentionBlockRows',
  attention_block_cols: 'attentionBlockCols',
  dense_block_rows: 'denseBlockRows',
  dense_block_cols: 'denseBlockCols',
  attention_output_with_dense: 'attentionOutputWithDense',
  bias_mask: 'biasMask',
  initial_threshold: 'initialThreshold',
  final_threshold: 'finalThreshold',
  initial_warmup: 'initialWarmup',
  final_warmup: 'finalWarmup',
  regularization: 'regularization',
  regularization_final_lambda: 'regularizationFinalLambda',
  attention_lambda: 'attentionLambda',
  dense_lambda: 'denseLambda',
  mask_scores_learning_rate: 'maskScoresLearningRate',
  linear_min_parameters: 'linearMinParameters',
  mask_scale: 'maskInit',
  decoder_attention_lambda: 'decoderAttentionLambda', decoder_dense_lambda: 'decoderDenseLambda',
};
/** Reference fields we accept and ignore because they select features we do not have (with their inert values). */
const IGNORED_REFERENCE_FIELDS: Record<string, unknown[]> = {
  ampere_pruning_method: ['disabled'],
  mask_init: ['constant'],
  distil_teacher_name_or_path: [null],
  distil_alpha_ce: [],
  distil_alpha_teacher: [],
  distil_temperature: [],
  final_finetune: [false],
  layer_norm_patch: [false],
  layer_norm_patch_steps: [],
  layer_norm_patch_start_delta: [],
  gelu_patch: [false],
  gelu_patch_steps: [],
  rewind_model_name_or_path: [null],
  eval_with_current_patch_params: [false],
  qat: [false],
  qconfig: [],
  initial_ampere_temperature: [],
  final_ampere_temperature: [],
};

const METHODS: PruningMethod[] = ['disabled', 'topK', 'threshold', 'sigmoied_threshold', 'magnitude', 'l0'];
const SUBMETHODS: PruningSubmethod[] = ['default', '1d', '1d_alt', 'joint'];

function configError(message: string): BlockpruneError {
  return new BlockpruneError('E_INVALID_ARG', `pruning config: ${message}`);
}

export function parseMethod(spec: string, field: string): { method: PruningMethod; sub: PruningSubmethod } {
  if (typeof spec !== 'string') throw configError(`${field} must be a string like "sigmoied_threshold:1d_alt"`);
  const [m, s = 'default', ...rest] = spec.split(':');
  if (rest.length) throw configError(`${field} "${spec}" has more than one ':'`);
  if (!METHODS.includes(m as PruningMethod)) throw configError(`${field}: unknown method "${m}" (expected ${METHODS.join(', ')})`);
  if (!SUBMETHODS.includes(s as PruningSubmethod))
    throw configError(`${field}: unknown submethod "${s}" (expected ${SUBMETHODS.join(', ')})`);
  return { method: m as PruningMethod, sub: s as PruningSubmethod };
}

/** What a plan is made for: BertModel.geometry() (its `structure` names the family's linears; BERT's when absent). */
export type PlanGeometry = ModelGeometry;

/**
 * The units a plan masks: the geometry's own list (encoder-decoder models), or for an encoder, per layer its
 * attention block (query, key, value, attention output) and its FFN pair (intermediate, output) under the
 * structure's names.
 */
export function planBlocks(g: PlanGeometry): NativePrunableBlock[] {
  if (g.blocks) return g.blocks;
  const s = g.structure ?? BERT_STRUCTURE;
  const L = s.linears;
  return g.layers.flatMap((layer, i) => {
    const p = `${s.layers}.${i}.`;
    return [
      { kind: 'attention' as const, linears: [L.query, L.key, L.value, L.attentionOutput].map((n) => p + n), heads: layer.heads, headDim: g.headDim },
      { kind: 'ffn' as const, linears: [p + L.intermediate, p + L.output], width: layer.intermediateSize },
    ];
  });
}

export interface PlanEntry {
  module: string;
  method: PruningMethod;
  layout: 'block' | 'rows' | 'cols' | 'rows_cols';
  blockRows: number;
  blockCols: number;
  biasMask: boolean;
  minElements: number;
  group: 'attention' | 'dense';
  shareWith?: string;
  init: number;
}

export interface PruningPlan {
  threshold: number;
  modules: PlanEntry[];
}

export interface ScheduleValue {
  threshold: number;
  lambda: number;
  /** 0 before the cubic ramp, 1 after it. */
  progress: number;
}

/** Every field name a pruning JSON object may hold: ours, the reference's, and the reference's we ignore. */
export const PRUNING_JSON_FIELDS: readonly string[] = [...Object.keys(DEFAULT_PRUNING), ...Object.keys(SNAKE), ...Object.keys(IGNORED_REFERENCE_FIELDS)];

/** The reference writes its booleans as 0 / 1 in JSON (attention_output_with_dense: 0): read those as false / true. */
function referenceBoolean(value: unknown): unknown {
  return value === 0 ? false : value === 1 ? true : value;
}

/**
 * The options a JSON object gives, camelCased (the reference's snake_case names are accepted), without
 * defaults filled in: suitable as overrides of a preset. A boolean field may be 0 or 1, as the reference
 * writes them. Unknown fields and reference features we do not have are errors.
 */
export function normalizePruningOptions(json: Record<string, unknown>): Partial<PruningOptions> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw configError('expected a JSON object');
  const out: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(json)) {
    // Own keys only: "constructor" or "toString" in a file is an unknown field, not Object's.
    const optional = (f: string) => (OPTIONAL_PRUNING as readonly string[]).includes(f);
    const field = Object.hasOwn(DEFAULT_PRUNING, k) || optional(k) ? (k as keyof PruningOptions) : Object.hasOwn(SNAKE, k) ? SNAKE[k] : undefined;
    if (field !== undefined && value === null && optional(field)) continue; // the reference's unset decoder lambda
    if (field !== undefined) out[field] = typeof DEFAULT_PRUNING[field] === 'boolean' ? referenceBoolean(value) : value;
    else if (Object.hasOwn(IGNORED_REFERENCE_FIELDS, k)) {
      const inert = IGNORED_REFERENCE_FIELDS[k];
      const x = inert.includes(false) ? referenceBoolean(value) : value;
      if (inert.length && !inert.some((y) => y === x))
        throw configError(`"${k}": ${JSON.stringify(value)} selects a reference feature blockprune does not have`);
    } else {
      const hint = v.didYouMean(k, [...Object.keys(SNAKE), ...Object.keys(DEFAULT_PRUNING)]);
      throw configError(`unknown field "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
  return out as Partial<PruningOptions>;
}

/** A preset's own arguments: lambda weighs the L1 penalty (a negative one would reward keeping weights). */
function checkPreset(lambda: unknown, overrides: unknown): void {
  v.number('lambda', lambda, { min: 0 });
  v.object('overrides', overrides);
}

/** What the movement-pruning presets share: sigmoid scores cut at 0 -> 0.1 under L1 at lambda. */
function movementSchedule(lambda: number): Partial<PruningOptions> {
  return { initialThreshold: 0, finalThreshold: 0.1, regularization: 'l1', regularizationFinalLambda: lambda };
}

export class PruningConfig {
  readonly options: Readonly<PruningOptions>;
  /** Why this config might not do what one expects (it never throws for these). */
  readonly warnings: string[];

  constructor(options: Partial<PruningOptions> = {}) {
    // The reference's snake_case names are pointed to their camelCase ones (fromJSON accepts them).
    v.options('pruning options', options, [...Object.keys(DEFAULT_PRUNING), ...OPTIONAL_PRUNING], SNAKE);
    const o: PruningOptions = { ...DEFAULT_PRUNING, ...options };
    for (const k of OPTIONAL_PRUNING) (o[k] ?? null) === null ? delete o[k] : v.number(k, o[k], { min: 0 });
    const dense = parseMethod(o.densePruningMethod, 'densePruningMethod');
    const attn = parseMethod(o.attentionPruningMethod, 'attentionPruningMethod');
    for (const k of ['attentionBlockRows', 'attentionBlockCols', 'denseBlockRows', 'denseBlockCols'] as const) {
      const d = o[k];
      if (d !== 'head' && d !== 'full' && !(v.is.integer(d) && d >= 1))
        throw v.invalidParameterError(k, "a positive integer, 'head' or 'full'", d, v.is.number(d) ? 'range' : 'type');
    }
    v.number('initialThreshold', o.initialThreshold);
    v.number('finalThreshold', o.finalThreshold);
    v.number('maskInit', o.maskInit);
    // Weights of penalties and warm-ups in multiples of warmupSteps: a negative one would reward density or
    // run the schedule backwards.
    for (const k of ['regularizationFinalLambda', 'attentionLambda', 'denseLambda', 'initialWarmup', 'finalWarmup'] as const) v.number(k, o[k], { min: 0 });
    // The native step's range for the scores' learning rate.
    v.number('maskScoresLearningRate', o.maskScoresLearningRate, { min: 0, max: 100 });
    v.number('linearMinParameters', o.linearMinParameters, { min: 0, max: 1 });
    v.oneOf('regularization', o.regularization, ['disabled', 'l1', 'l0'] as const);
    v.boolean('biasMask', o.biasMask);
    v.boolean('attentionOutputWithDense', o.attentionOutputWithDense);
    const warnings: string[] = [];
    for (const [name, m, t0, t1] of [
      ['dense', dense.method, o.initialThreshold, o.finalThreshold],
      ['attention', attn.method, o.initialThreshold, o.finalThreshold],
    ] as const) {
      if ((m === 'topK' || m === 'magnitude' || m === 'sigmoied_threshold') && (t0 < 0 || t0 > 1 || t1 < 0 || t1 > 1))
        throw configError(`${name} method ${m} needs thresholds in [0, 1], got ${t0} -> ${t1}`);
    }
    if (dense.sub === 'joint') throw configError("densePruningMethod: 'joint' applies to attention (q, k, v share scores) only");
    if (attn.sub === '1d_alt') throw configError("attentionPruningMethod: '1d_alt' applies to the FFN pair only");
    if (o.regularization !== 'disabled' && o.regularizationFinalLambda <= 0)
      warnings.push(`regularization ${o.regularization} with regularizationFinalLambda ${o.regularizationFinalLambda} has no effect`);
    if (o.regularization === 'disabled' && o.regularizationFinalLambda > 0)
      warnings.push(`regularizationFinalLambda ${o.regularizationFinalLambda} is ignored: regularization is disabled`);
    if (dense.method === 'disabled' && attn.method === 'disabled') warnings.push('both methods are disabled: nothing will be pruned');
    const unit = (r: BlockDim, c: BlockDim) => r === 1 && c === 1;
    const denseStructured = dense.method !== 'disabled' && (dense.sub === '1d' || dense.sub === '1d_alt' || !unit(o.denseBlockRows, o.denseBlockCols));
    const attnStructured = attn.method !== 'disabled' && !unit(o.attentionBlockRows, o.attentionBlockCols);
    if (!denseStructured && !attnStructured && !(dense.method === 'disabled' && attn.method === 'disabled'))
      warnings.push(
        'this config prunes single weights (1x1 blocks, no 1d/1d_alt): compaction cannot remove heads or FFN units from it. ' +
          'Use PruningConfig.hybrid() or block sizes above 1 for a smaller dense model.',
      );
    if ((dense.method === 'topK' || attn.method === 'topK') && o.finalThreshold >= 1)
      warnings.push('topK with finalThreshold 1 keeps every weight');
    this.options = Object.freeze(o);
    this.warnings = warnings;
  }

  /** From a JSON object in either spelling (camelCase or the reference's snake_case). */
  static fromJSON(json: Record<string, unknown>): PruningConfig {
    return new PruningConfig(normalizePruningOptions(json));
  }

  /**
   * hybrid(lambda): the paper's "hybrid" setting. Attention: sigmoied_threshold with 32x32 blocks (the
   * attention output with the attention method, block transposed); FFN: sigmoied_threshold:1d_alt (whole units,
   * one score per unit shared by the intermediate row and the output column); threshold 0 -> 0.1; L1 at lambda.
   */
  static hybrid(lambda = 20, overrides: Partial<PruningOptions> = {}): PruningConfig {
    checkPreset(lambda, overrides);
    return new PruningConfig({
      densePruningMethod: 'sigmoied_threshold:1d_alt',
      attentionPruningMethod: 'sigmoied_threshold',
      attentionBlockRows: 32,
      attentionBlockCols: 32,
      attentionOutputWithDense: false,
      ...movementSchedule(lambda),
      ...overrides,
    });
  }

  /** block(rows, cols, lambda): sigmoied_threshold blocks of rows x cols in every linear. */
  static block(rows: number, cols: number, lambda = 20, overrides: Partial<PruningOptions> = {}): PruningConfig {
    v.positiveInteger('rows', rows);
    v.positiveInteger('cols', cols);
    checkPreset(lambda, overrides);
    return new PruningConfig({
      densePruningMethod: 'sigmoied_threshold',
      attentionPruningMethod: 'sigmoied_threshold',
      attentionBlockRows: rows,
      attentionBlockCols: cols,
      denseBlockRows: rows,
      denseBlockCols: cols,
      attentionOutputWithDense: true,
      ...movementSchedule(lambda),
      ...overrides,
    });
  }

  /** heads(lambda): whole heads (one score per head, shared by q, k and v); the FFN stays dense. */
  static heads(lambda = 20, overrides: Partial<PruningOptions> = {}): PruningConfig {
    checkPreset(lambda, overrides);
    return new PruningConfig({
      densePruningMethod: 'disabled',
      attentionPruningMethod: 'sigmoied_threshold:joint',
      attentionBlockRows: 'head',
      attentionBlockCols: 'full',
      attentionOutputWithDense: true,
      ...movementSchedule(lambda),
      ...overrides,
    });
  }

  /** unstructured(lambda): movement pruning of single weights (sigmoied_threshold, 1x1). Compaction gains nothing. */
  static unstructured(lambda = 20, overrides: Partial<PruningOptions> = {}): PruningConfig {
    checkPreset(lambda, overrides);
    return new PruningConfig({
      densePruningMethod: 'sigmoied_threshold',
      attentionPruningMethod: 'sigmoied_threshold',
      ...movementSchedule(lambda),
      ...overrides,
    });
  }

  static preset(name: string, lambda?: number, overrides: Partial<PruningOptions> = {}): PruningConfig {
    v.string('preset', name);
    switch (name) {
      case 'hybrid':
        return PruningConfig.hybrid(lambda, overrides);
      case 'heads':
        return PruningConfig.heads(lambda, overrides);
      case 'unstructured':
        return PruningConfig.unstructured(lambda, overrides);
      default: {
        const m = /^block(?::|-)?(\d+)x(\d+)$/.exec(name);
        if (m) return PruningConfig.block(Number(m[1]), Number(m[2]), lambda, overrides);
        throw configError(`unknown preset "${name}" (expected hybrid, heads, unstructured or block:RxC)`);
      }
    }
  }

  /**
   * The threshold and regularization lambda at a step (reference: schedule_threshold). s <= iw*W: initial;
   * s > T - fw*W: final; between, t = t_final + (t_initial - t_final) * (1 - (s - iw*W) / (T - (iw+fw)*W))^3.
   * lambda = lambda_final * t / t_final. Evaluation (training false) uses the final values.
   */
  schedule(step: number, totalSteps: number, warmupSteps: number, training = true): ScheduleValue {
    const o = this.options;
    const lambdaOf = (t: number) => (o.finalThreshold === 0 ? o.regularizationFinalLambda : (o.regularizationFinalLambda * t) / o.finalThreshold);
    if (!training) return { threshold: o.finalThreshold, lambda: o.regularizationFinalLambda, progress: 1 };
    const start = o.initialWarmup * warmupSteps;
    const end = totalSteps - o.finalWarmup * warmupSteps;
    let threshold: number;
    let progress: number;
    if (step <= start) {
      threshold = o.initialThreshold;
      progress = 0;
    } else if (step > end) {
      threshold = o.finalThreshold;
      progress = 1;
    } else {
      const mul = 1 - (step - start) / (totalSteps - (o.initialWarmup + o.finalWarmup) * warmupSteps);
      threshold = o.finalThreshold + (o.initialThreshold - o.finalThreshold) * mul ** 3;
      progress = 1 - mul;
    }
    return { threshold, lambda: lambdaOf(threshold), progress };
  }

  /** Which linear of each layer gets which mask. */
  plan(g: PlanGeometry): PruningPlan {
    const o = this.options;
    const dense = parseMethod(o.densePruningMethod, 'densePruningMethod');
    const attn = parseMethod(o.attentionPruningMethod, 'attentionPruningMethod');
    const resolve = (d: BlockDim, full: number, _name: string): number => (d === 'head' ? g.headDim : d === 'full' ? full : d);
    const modules: PlanEntry[] = [];
    const base = { biasMask: o.biasMask, minElements: o.linearMinParameters, init: o.maskInit };
    for (const block of planBlocks(g)) {
      if (block.kind === 'attention') {
        const [query, key, value, output] = block.linears;
        const heads = block.heads ?? 0;
        const headDim = block.headDim ?? g.headDim;
        const width = heads * headDim;
        const resolveA = (d: BlockDim, full: number): number => (d === 'head' ? headDim : d === 'full' ? full : d);
        if (attn.method !== 'disabled' && heads > 0) {
          const rows = resolveA(o.attentionBlockRows, width);
          const cols = resolveA(o.attentionBlockCols, g.hiddenSize);
          for (const module of [query, key, value]) {
            modules.push({
              ...base,
              module,
              method: attn.method,
              layout: attn.sub === '1d' ? 'rows_cols' : 'block',
              blockRows: rows,
              blockCols: cols,
              group: 'attention',
              shareWith: attn.sub === 'joint' && module !== query ? query : undefined,
            });
          }
        }
        // The attention output: [hidden, heads*headDim].
        const outWith = o.attentionOutputWithDense ? dense : attn;
        if (outWith.method !== 'disabled' && heads > 0) {
          const rows = o.attentionOutputWithDense ? resolveA(o.denseBlockRows, g.hiddenSize) : resolveA(o.attentionBlockCols, g.hiddenSize);
          const cols = o.attentionOutputWithDense ? resolveA(o.denseBlockCols, width) : resolveA(o.attentionBlockRows, width);
          modules.push({
            ...base,
            module: output,
            method: outWith.method,
            layout: outWith.sub === '1d' ? 'rows_cols' : 'block',
            blockRows: outWith.sub === '1d_alt' ? 1 : rows,
            blockCols: outWith.sub === '1d_alt' ? 1 : cols,
            group: o.attentionOutputWithDense ? 'dense' : 'attention',
          });
        }
      } else if (dense.method !== 'disabled' && (block.width ?? 0) > 0) {
        const width = block.width as number;
        // [intermediate, (gate,) output]: a gate (T5's gated GELU wi_1) is masked as the intermediate is.
        const intermediate = block.linears[0];
        const output = block.linears[block.linears.length - 1];
        const rows = resolve(o.denseBlockRows, width, 'denseBlockRows');
        const cols = resolve(o.denseBlockCols, g.hiddenSize, 'denseBlockCols');
        const alt = dense.sub === '1d_alt';
        for (const module of block.linears.slice(0, -1)) {
          modules.push({
            ...base,
            module,
            method: dense.method,
            layout: alt ? 'rows' : dense.sub === '1d' ? 'rows_cols' : 'block',
            blockRows: rows,
            blockCols: cols,
            group: 'dense',
            // 1d_alt: one score per unit, owned by the intermediate; the gate's rows are the same units.
            shareWith: alt && module !== intermediate ? intermediate : undefined,
          });
        }
        modules.push({
          ...base,
          module: output,
          method: dense.method,
          layout: alt ? 'cols' : dense.sub === '1d' ? 'rows_cols' : 'block',
          // [hidden, width]: the same block shape as the reference uses for every dense linear.
          blockRows: resolve(o.denseBlockRows, g.hiddenSize, 'denseBlockRows'),
          blockCols: resolve(o.denseBlockCols, width, 'denseBlockCols'),
          group: 'dense',
          shareWith: alt ? intermediate : undefined,
        });
      }
    }
    // magnitude has no scores, so it cannot share them.
    for (const m of modules) if (m.method === 'magnitude') delete m.shareWith;
    return { threshold: o.initialThreshold, modules: modules.map((m) => (m.shareWith === undefined ? (({ shareWith, ...rest }) => rest)(m) : m)) as PlanEntry[] };
  }
}
