/**
 * What pruning adds to BertModel (sharp-style: one file per concept registers its methods on the one class):
 * patch with a PruningConfig, the mask threshold, compile, compact and its zero-padded export, masks, the
 * scores' regularization, and fillZeros (the filled stage's start: it reshapes pruned weights, no training state).
 * Declared on the class by module augmentation, installed when this module loads (lib/index.ts loads it).
 */
import { BertModel, extendModel, modelInternals } from '../model/model';
import { invalidArg } from '../runtime/errors';
import { NativeBudget, NativeBudgetCost, NativeCompactReport, NativeLossOptions, NativeRegularization, TensorData } from '../runtime/native';
import * as v from '../runtime/validate';
import { PruningConfig } from './config';
import { checkCostModel } from './cost-model';

export type LossOptions = NativeLossOptions;
export type RegularizationInfo = NativeRegularization;
export type CompactReport = NativeCompactReport;

export interface PatchReport {
  /** Linears that got masks, by HF name. */
  modules: string[];
  /** Number of masked linears. */
  patched: number;
  /** Learnable scores added. */
  scoreParameters: number;
  /** What the config cannot do on this model (e.g. it prunes nothing structured). */
  warnings: string[];
}

declare module '../model/model' {
  interface BertModel {
    /**
     * Replaces the q, k, v, attention-output, intermediate and output linears of every layer (6 per layer:
     * 72 in bert-base) with masked linears whose mask comes from learnable scores, as the config says.
     * Embeddings, pooler and classifier stay dense. Undone by compile() (masks baked into the weights).
     */
    patch(config: PruningConfig): Promise<PatchReport>;
    /** Sets the mask threshold (the schedule's value; evaluation uses the final one). */
    setThreshold(threshold: number): Promise<void>;
    /** Bakes the masks (at the current threshold) into the weights and removes the scores. */
    compile(): Promise<void>;
    /**
     * A new, smaller dense model ('dense': heads and empty FFN units removed; 'heads': heads only). This model is
     * left as it is. Which heads are dead: `deadHeads` 'reference' (default, nn_pruning's rule: no weight left in
     * q, k or v; a head with zero queries or keys still attended uniformly and added its values' mean, so the
     * outputs move by that) or 'exact' (its output is zero whatever it attends to: value rows with their bias,
     * or output columns; the outputs are the masked model's).
     */
    compact(mode?: 'dense' | 'heads', options?: { deadHeads?: 'exact' | 'reference' }): Promise<{ model: BertModel; report: CompactReport }>;
    /**
     * Writes a checkpoint plain HF tools load with identical outputs: FFN widths zero-padded back to
     * intermediate_size (per-layer widths are not expressible in HF's config), heads via pruned_heads.
     */
    exportFilled(dir: string): Promise<void>;
    /**
     * The 0/1 mask of every encoder linear, expanded to its weight's shape ("mask.<name>"), and the bias
     * masks ("bias_mask.<name>"): from the scores at the current threshold when patched, else weight != 0.
     */
    masks(): Promise<Record<string, TensorData>>;
    /** The regularization term of the scores by group, and each group's density at the current threshold. */
    regularization(options?: LossOptions): Promise<RegularizationInfo>;
    /**
     * What the masks cost under a budget (lib/pruning/budget.ts): expected from the scores' probabilities at
     * `budget.threshold`, and hard (the compact model they give now), with the Lagrangian term's value.
     */
    budgetCost(budget: NativeBudget): Promise<NativeBudgetCost>;
    /**
     * The "filled" stage's start: zeros inside the encoder's linear weights become small noise
     * (v += [v == 0] * (randn * std(v) * 0.01 + mean(v))). Resolves with the number of weights filled.
     */
    fillZeros(seed?: number): Promise<number>;
  }
}

const { enqueue, wrap } = modelInternals;

/** A PatchReport from the native patch's answer (BertModel's and Seq2SeqModel's). */
export function patchReport(config: PruningConfig, r: { modules: string[]; scoreParameters: number }): PatchReport {
  const warnings = [...config.warnings];
  if (r.modules.length === 0) warnings.push('no linear layer was patched: every method is disabled');
  return { modules: r.modules, patched: r.modules.length, scoreParameters: r.scoreParameters, warnings };
}

extendModel({
  async patch(config: PruningConfig): Promise<PatchReport> {
    if (!(config instanceof PruningConfig)) throw invalidArg('config', 'a PruningConfig', config);
    return enqueue(this, async (h) => {
      const plan = config.plan(this.geometry());
      return patchReport(config, await h.patch(JSON.stringify(plan)));
    });
  },

  async setThreshold(threshold: number): Promise<void> {
    v.number('threshold', threshold);
    return enqueue(this, (h) => h.setThreshold(threshold));
  },

  async compile(): Promise<void> {
    return enqueue(this, (h) => h.compile());
  },

  async compact(mode: 'dense' | 'heads' = 'dense', options: { deadHeads?: 'exact' | 'reference' } = {}): Promise<{ model: BertModel; report: CompactReport }> {
    const o = v.options('options', options, ['deadHeads']);
    const rule = o.deadHeads === undefined ? 'reference' : v.oneOf('options.deadHeads', o.deadHeads, ['exact', 'reference'] as const);
    return enqueue(this, async (h) => {
      const { model, report } = await h.compact(mode, rule);
      return { model: wrap(model, this.sourceDir), report };
    });
  },

  async exportFilled(dir: string): Promise<void> {
    if (typeof dir !== 'string') throw invalidArg('dir', 'a directory path string', dir);
    return enqueue(this, async (h) => {
      const padded = wrap(await h.padFfn(), this.sourceDir);
      try {
        await padded.save(dir);
      } finally {
        padded.dispose();
      }
    });
  },

  async masks(): Promise<Record<string, TensorData>> {
    return enqueue(this, (h) => h.masks());
  },

  async regularization(options: LossOptions = {}): Promise<RegularizationInfo> {
    checkLossOptions(options);
    return enqueue(this, (h) => h.regularization(options));
  },

  async budgetCost(budget: NativeBudget): Promise<NativeBudgetCost> {
    checkBudget('budget', budget);
    return enqueue(this, (h) => h.budgetCost(budget));
  },

  async fillZeros(seed = 0): Promise<number> {
    v.integer('seed', seed, { min: 0 });
    return enqueue(this, (h) => h.fillZeros(seed));
  },
});

const LOSS_OPTIONS = ['regularization', 'lambda', 'attentionLambda', 'denseLambda', 'budget'];

/** A native budget (cost model, target, multipliers, threshold), checked before the call. */
function checkBudget(name: string, b: unknown): void {
  const o = v.options(name, b, ['constant', 'heads', 'units', 'target', 'dense', 'lambda1', 'lambda2', 'threshold']);
  checkCostModel(name, { ...o, unit: 'ms' });
  for (const k of ['target', 'lambda1', 'lambda2', 'threshold']) v.number(`${name}.${k}`, o[k]);
  v.number(`${name}.dense`, o.dense, { min: 0, exclusiveMin: true });
}

/**
 * The loss options of regularization() and gradients(), plus `ranges`: the numeric options a call takes beyond
 * them (a train step's), each with its range. Checked with the messages every entry point gives
 * (lib/runtime/validate.ts); the binding checks them again, as it checks everything that crosses into C++.
 */
export function checkLossOptions(options: unknown, ranges: Record<string, v.NumberRange> = {}): void {
  const o = v.options('options', options, [...LOSS_OPTIONS, ...Object.keys(ranges)]);
  if (o.regularization !== undefined) v.oneOf('options.regularization', o.regularization, ['disabled', 'l1', 'l0']);
  for (const k of ['lambda', 'attentionLambda', 'denseLambda']) if (o[k] !== undefined) v.number(`options.${k}`, o[k]);
  if (o.budget !== undefined) checkBudget('options.budget', o.budget);
  for (const [k, range] of Object.entries(ranges)) if (o[k] !== undefined) v.number(`options.${k}`, o[k], range);
}
