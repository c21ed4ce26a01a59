/**
 * Pruning to a budget (issue 17): a speed-up, a latency or a parameter count asked for, turned into a cost of
 * the current masks (cost-model.ts, priced natively on the expected heads and units: native/budget.h) and a
 * Lagrangian term lambda1 r + lambda2 r^2, r = (expected cost - target) / dense cost, whose multipliers rise
 * by gradient ascent (lambda += lr * dr) after each step, as CoFi pruning (Xia et al., 2022) trains them: the
 * penalty grows while the masks cost more than the target and gives way once they cost less.
 *
 * The target is not asked for at once (all masks would be driven down together and overshoot it, as a fixed
 * target did in a tiny run: to one head and one unit per layer, from where the scores came back too slowly):
 * it goes from the dense cost to the target on the cubic shape of the threshold schedule, reached at 3/4 of
 * the schedule's ramp and held after, as CoFi warms its target sparsity up.
 *
 * At the end, fit() makes the hard masks meet the target: the Lagrangian holds the *expected* cost near it, and
 * the hard masks at the final threshold may cost more or less (scores trained together cross the threshold
 * together); the threshold whose masks cost at most the target, and closest to it, is found by bisection.
 */
import type { BertModel } from '../model/model';
import { BlockpruneError } from '../runtime/errors';
import type { NativeBudget, NativeBudgetCost } from '../runtime/native';
import * as v from '../runtime/validate';
import { CostModel, checkCostModel, parameterCostModel, predictCost } from './cost-model';

/** What to reach: a speed-up over the dense model and a latency (both by a latency profile), or parameters. */
export type BudgetTarget = { speedup: number } | { latencyMs: number } | { parameters: number };

export interface BudgetOptions {
  target: BudgetTarget;
  /**
   * The cost model the target is counted in: a latency profile (lib/pruning/latency-profile.ts) for speedup and
   * latencyMs; for parameters, the model's own count when absent.
   */
  cost?: CostModel;
  /** Step of the multipliers' gradient ascent (default 0.05). */
  multiplierLr?: number;
}

/** The multipliers, saved in checkpoints so that a resumed run goes on with them. */
export interface BudgetState {
  lambda1: number;
  lambda2: number;
  /** The expected cost the warm-up starts from. */
  start?: number;
}

/** Checks budget options before any work; returns the target's kind and value. */
export function checkBudgetOptions(name: string, options: unknown): BudgetOptions {
  const o = v.options(name, options, ['target', 'cost', 'multiplierLr']);
  const t = v.options(`${name}.target`, o.target, ['speedup', 'latencyMs', 'parameters']);
  const kinds = Object.keys(t).filter((k) => t[k] !== undefined);
  if (kinds.length !== 1) throw new BlockpruneError('E_INVALID_ARG', `${name}.target: give exactly one of speedup, latencyMs, parameters (got ${kinds.length ? kinds.join(', ') : 'none'})`);
  if (t.speedup !== undefined) v.number(`${name}.target.speedup`, t.speedup, { min: 1, exclusiveMin: true });
  if (t.latencyMs !== undefined) v.number(`${name}.target.latencyMs`, t.latencyMs, { min: 0, exclusiveMin: true });
  if (t.parameters !== undefined) v.number(`${name}.target.parameters`, t.parameters, { min: 0, exclusiveMin: true });
  if (o.cost !== undefined) {
    const c = checkCostModel(`${name}.cost`, o.cost);
    const wants = t.parameters !== undefined ? 'parameters' : 'ms';
    if (c.unit !== wants) throw new BlockpruneError('E_INVALID_ARG', `${name}.cost counts ${c.unit}, and a ${kinds[0]} target needs a cost model in ${wants}`);
  } else if (t.parameters === undefined) {
    throw new BlockpruneError('E_INVALID_ARG', `${name}: a ${kinds[0]} target needs a latency profile as its cost (profileLatency, or blockprune profile-latency)`);
  }
  if (o.multiplierLr !== undefined) v.number(`${name}.multiplierLr`, o.multiplierLr, { min: 0, exclusiveMin: true });
  return options as BudgetOptions;
}

/** Where in the threshold schedule's ramp the target is reached. */
const RAMP_END = 0.75;

export class Budget {
  readonly cost: CostModel;
  /** The dense model's cost and the target, in the cost's unit. */
  readonly dense: number;
  readonly target: number;
  readonly options: BudgetOptions;
  lambda1 = 0;
  lambda2 = 0;
  /**
   * The expected cost of the masks before training: the warm-up starts there (the expected counts of fresh
   * scores are below the dense ones: their mean keep probability is under 1).
   */
  start?: number;

  /** `model`: the model to prune, before pruning (its geometry is the dense cost's). */
  constructor(options: BudgetOptions, model: BertModel, state?: BudgetState) {
    this.options = checkBudgetOptions('budget', options);
    const t = options.target;
    this.cost = options.cost ?? parameterCostModel(model.geometry(), model.numParameters);
    this.dense = predictCost(this.cost, model.layers);
    this.target = 'speedup' in t ? this.dense / t.speedup : 'latencyMs' in t ? t.latencyMs : t.parameters;
    if (this.target >= this.dense)
      throw new BlockpruneError('E_INVALID_ARG', `budget: the target (${this.describeCost(this.target)}) is not below the dense model's ${this.describeCost(this.dense)}: nothing to prune for`);
    // Compaction keeps one head and one unit per layer: below that model's cost no masks can go. Refused now,
    // not found out after training (an SST-2 run asked 5x at 1x128 of a model whose embeddings, classifier
    // and call overhead allow 3.3x, and the fit pruned every matrix to its minimum: 49% accuracy).
    const floor = predictCost(this.cost, model.layers.map(() => ({ heads: 1, intermediateSize: 1 })));
    if (this.target < floor) {
      const most = 'speedup' in t ? ` (a speed-up of at most ${(this.dense / floor).toFixed(2)}x here)` : '';
      throw new BlockpruneError('E_INVALID_ARG', `budget: the target (${this.describeCost(this.target)}) is below the smallest compact model's ${this.describeCost(floor)}${most}: one head and one FFN unit per layer stay, and the rest of the network (embeddings, classifier, call overhead) costs ${this.describeCost(this.cost.constant)}`);
    }
    if (state) ({ lambda1: this.lambda1, lambda2: this.lambda2, start: this.start } = state);
  }

  get state(): BudgetState {
    return { lambda1: this.lambda1, lambda2: this.lambda2, start: this.start };
  }

  /** Reads the masks' expected cost before the first step (a resumed run keeps its own). */
  async begin(model: BertModel, finalThreshold: number): Promise<void> {
    this.start ??= (await model.budgetCost(this.spec(finalThreshold, 0))).expected;
  }

  /** The target at `progress` (0..1) of the threshold schedule's ramp (see above). */
  targetAt(progress: number): number {
    const x = Math.min(1, Math.max(0, progress) / RAMP_END);
    const from = Math.max(this.start ?? this.dense, this.target);
    return from - (from - this.target) * (1 - (1 - x) ** 3);
  }

  /** The native step's budget at the final threshold `threshold`, `progress` into the schedule's ramp (default: its end). */
  spec(threshold: number, progress = 1): NativeBudget {
    return { constant: this.cost.constant, heads: this.cost.heads, units: this.cost.units, target: this.targetAt(progress), dense: this.dense, lambda1: this.lambda1, lambda2: this.lambda2, threshold };
  }

  /** Gradient ascent on the multipliers from a step's expected cost: d/dlambda1 = r, d/dlambda2 = r^2. */
  update(cost: NativeBudgetCost, progress = 1): void {
    const r = (cost.expected - this.targetAt(progress)) / this.dense;
    const lr = this.options.multiplierLr ?? 0.05;
    this.lambda1 += lr * r;
    this.lambda2 += lr * r * r;
  }

  describeCost(c: number): string {
    return this.cost.unit === 'ms' ? `${c.toFixed(2)} ms` : `${Math.round(c).toLocaleString('en-US')} parameters`;
  }

  /**
   * The threshold whose hard masks meet the target most closely: the smallest one at which they cost at most
   * the target (the cost falls as the threshold rises), found by bisection from the final threshold up or
   * down, and set on the model. Downwards it brings back weights the scores rank just below the final
   * threshold (the densest masks within the budget); upwards it prunes the lowest-ranked ones. Sigmoied
   * thresholds are searched in (0, 1], raw ones on the line. `met` false: even the highest threshold tried
   * misses (the binarizers keep a minimum of each matrix, compaction one head and one unit per layer).
   */
  async fit(model: BertModel, finalThreshold: number, sigmoied: boolean): Promise<{ threshold: number; cost: NativeBudgetCost; met: boolean }> {
    const at = (t: number) => model.budgetCost(this.spec(t));
    // Steps away from the final threshold: halving / doubling in (0, 1] for sigmoid scores, doubling widths otherwise.
    const step = (t: number, k: number, up: boolean) => (sigmoied ? (up ? Math.min(1, t * 2 ** k) : t / 2 ** k) : t + (up ? 1 : -1) * 0.01 * 2 ** k);
    const start = await at(finalThreshold);
    const up = start.hard > this.target;
    // [lo, hi]: lo misses the target, hi meets it.
    let lo = finalThreshold, hi = finalThreshold;
    let hiCost = start;
    let loFound = !up;
    for (let k = 0; k < 30; k++) {
      const t = step(finalThreshold, k, up);
      const c = await at(t);
      if (up) {
        if (c.hard <= this.target) { hi = t; hiCost = c; break; }
        lo = t;
      } else {
        if (c.hard > this.target) { lo = t; loFound = true; break; }
        hi = t;
        hiCost = c;
        loFound = false;
      }
    }
    if (up && hiCost.hard > this.target) {
      await model.setThreshold(lo);
      return { threshold: lo, cost: await at(lo), met: false };
    }
    if (loFound || up)
      for (let i = 0; i < 40; i++) {
        const mid = (lo + hi) / 2;
        const c = await at(mid);
        if (c.hard <= this.target) [hi, hiCost] = [mid, c];
        else lo = mid;
      }
    await model.setThreshold(hi);
    return { threshold: hi, cost: hiCost, met: true };
  }
}
