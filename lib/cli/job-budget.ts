/**
 * The job's budget (issue 17: `train --target-speedup 3 | --target-latency 20ms | --target-params 30M`): the
 * latency profile of the dense model at the budget's shape (cached in its directory, rank 0 measures it and the
 * other ranks take its figures), the trainer's budget options, and after compaction the compact model timed
 * against the dense one at that shape: the target, what the cost model predicted, and what was measured.
 */
import type { BertModel } from '../model/model';
import type { BudgetOptions } from '../pruning/budget';
import { latencyBatch, LatencyProfile, loadOrProfileLatency, predictLatency, timeModels } from '../pruning/latency-profile';
import type { ProcessGroup } from '../training/distributed';
import type { BudgetResult } from '../training/trainer';
import type { JobBudget } from './job-options';

export interface JobBudgetPlan {
  budget: JobBudget;
  shape: [number, number];
  options: BudgetOptions;
  profile?: LatencyProfile;
}

export interface JobBudgetResult {
  /** What was asked: 'speedup' (x), 'latencyMs' (ms) or 'parameters'. */
  kind: 'speedup' | 'latencyMs' | 'parameters';
  target: number;
  shape: [number, number];
  /** Predicted by the cost model for the compact model (speed-up, ms or parameters). */
  predicted: number;
  /** Measured on the compact model: its speed-up or latency at `shape` (alternating rounds), or its parameters. */
  measured: number;
  denseMs?: number;
  compactMs?: number;
  /** Measured within 10% of the target (latency: at most 1.1x it; speed-up: at least 0.9x it; parameters: at most it). */
  met: boolean;
  /** The threshold the trainer fitted the masks to. */
  threshold?: number;
}

/** The trainer's budget for the job's targets: a latency profile of `dense` (from `denseDir`) where one is needed. */
export async function planBudget(b: JobBudget, dense: BertModel, denseDir: string, group: ProcessGroup | undefined, log: (line: string) => void): Promise<JobBudgetPlan> {
  const shape = b.shape ?? [1, 128];
  if (b.parameters !== undefined) return { budget: b, shape, options: { target: { parameters: b.parameters } } };
  let profile: LatencyProfile;
  if (group && !group.isMain) {
    profile = await group.shareFromMain<LatencyProfile>('latency-profile', undefined, 3600_000);
  } else {
    const r = await loadOrProfileLatency(denseDir, { batch: shape[0], seq: shape[1], model: dense });
    profile = r.profile;
    log(`  latency profile at ${shape[0]}x${shape[1]}: ${r.cached ? 'cached' : 'measured'} (${r.path}); dense ${predictLatency(profile, dense.layers).toFixed(2)} ms predicted`);
    if (group) await group.shareFromMain('latency-profile', profile, 0);
  }
  const target = b.speedup !== undefined ? { speedup: b.speedup } : { latencyMs: b.latencyMs! };
  return { budget: b, shape, options: { target, cost: profile }, profile };
}

/** The compact model against the plan's target, measured. */
export async function measureBudget(plan: JobBudgetPlan, trained: BudgetResult | undefined, dense: BertModel, compact: BertModel, runs: number): Promise<JobBudgetResult> {
  const { budget: b, shape } = plan;
  if (b.parameters !== undefined) {
    const measured = compact.numParameters;
    return { kind: 'parameters', target: b.parameters, shape, predicted: trained?.cost ?? NaN, measured, met: measured <= b.parameters, threshold: trained?.threshold };
  }
  const vocab = Math.min(dense.dimensions.vocabSize, compact.dimensions.vocabSize);
  const [denseMs, compactMs] = await timeModels([dense, compact], latencyBatch(shape[0], shape[1], vocab), { runs, rounds: 3 });
  const predictedMs = predictLatency(plan.profile!, compact.layers);
  const base = { shape, denseMs, compactMs, threshold: trained?.threshold };
  if (b.speedup !== undefined) {
    const measured = denseMs / compactMs;
    return { ...base, kind: 'speedup', target: b.speedup, predicted: predictLatency(plan.profile!, dense.layers) / predictedMs, measured, met: measured >= 0.9 * b.speedup };
  }
  return { ...base, kind: 'latencyMs', target: b.latencyMs!, predicted: predictedMs, measured: compactMs, met: compactMs <= 1.1 * b.latencyMs! };
}

/** One summary line. */
export function formatBudget(r: JobBudgetResult): string {
  const unit = r.kind === 'speedup' ? 'x' : r.kind === 'latencyMs' ? ' ms' : ' parameters';
  const f = (x: number) => (r.kind === 'parameters' ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
  const times = r.denseMs !== undefined ? ` (dense ${r.denseMs.toFixed(2)} ms, compact ${r.compactMs!.toFixed(2)} ms at ${r.shape[0]}x${r.shape[1]})` : '';
  return `  budget: target ${r.kind === 'speedup' ? 'speed-up ' : r.kind === 'latencyMs' ? 'latency ' : ''}${f(r.target)}${unit}; predicted ${f(r.predicted)}${unit}, measured ${f(r.measured)}${unit}${times}: ${r.met ? 'met' : 'missed'}${r.kind === 'parameters' ? '' : ' (within 10%)'}${r.threshold !== undefined ? `; masks at threshold ${r.threshold.toPrecision(4)}` : ''}`;
}
