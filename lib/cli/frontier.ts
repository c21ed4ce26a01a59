/**
 * The pruning frontier (`blockprune frontier`): one dense model (trained once as the job does, or --model),
 * then for each regularization lambda, or each speed-up target (pruning to a budget: job-budget.ts), the job's
 * own stages (job.ts: fine-prune from the dense model, compact, evaluate, latency dense vs compact), and a table
 * and a plot of accuracy vs speed-up with the dense model as a point: frontier.json, frontier.md, frontier.png
 * and frontier.svg.
 */
import { join, resolve } from 'node:path';
import { resolveModel } from '../hub/hub';
import type { PruningConfig } from '../pruning/config';
import { DENSITY_DEFINITION } from '../report/report';
import { plotFrontier, type FrontierPoint, type PlotFiles } from '../report/plot';
import { writeFileAtomicSync } from '../runtime/atomic';
import { clearProgress } from '../runtime/progress';
import * as v from '../runtime/validate';
import { compactAndMeasure, JobResult, prunePass, trainDense } from './job';
import type { JobBudgetResult } from './job-budget';
import { checkFinePruneJobOptions, FinePruneJobOptions } from './job-options';

/**
 * The job's options without the single lambda or budget (`lambdas` or `speedups` replaces them), resuming,
 * and data-parallel ranks.
 */
export interface FrontierOptions extends Omit<FinePruneJobOptions, 'lambda' | 'budget' | 'resume' | 'allowResumeMismatch' | 'distributed'> {
  /** The regularization lambdas to fine-prune with, one compact model each (distinct, >= 0). */
  lambdas?: number[];
  /** Or speed-up targets (distinct, > 1): each point pruned to a budget at `shape` (train --target-speedup). */
  speedups?: number[];
  /** The speed-up targets' batch x sequence length (default [1, 128]). */
  shape?: [number, number];
}

/** One point of the sweep: a lambda or a speed-up target, its folder name and its job's options. */
interface SweepPoint {
  label: string;
  folder: string;
  lambda?: number;
  speedup?: number;
}

function sweepOf(o: Pick<FrontierOptions, 'lambdas' | 'speedups'>): SweepPoint[] {
  return o.lambdas
    ? o.lambdas.map((lambda) => ({ label: `lambda ${lambda}`, folder: `lambda-${lambda}`, lambda }))
    : o.speedups!.map((speedup) => ({ label: `target ${speedup}x`, folder: `speedup-${speedup}`, speedup }));
}

/** One model of the frontier, as frontier.json and frontier.md show it. */
export interface FrontierRow {
  /** The lambda it was fine-pruned with; undefined for the dense model and budget points. */
  lambda?: number;
  /** A budget point: its target, the cost model's prediction and the measurement at the budget's shape. */
  budget?: JobBudgetResult;
  /** Encoder density (DENSITY_DEFINITION) of the pruned model; 1 for the dense model. */
  density: number;
  /** Accuracy of the compact model (of the dense model for its row), in percent. */
  accuracy: number;
  parameters: number;
  /** Dense latency over this model's, per measured shape (batch x sequence); 1 for the dense model. */
  speedups: Array<{ batch: number; seq: number; speedup: number }>;
  /**
   * The compact model quantized to int8 (model.quantize()): its accuracy and the dense fp32 model's latency
   * over its own, per shape. Absent for the dense row.
   */
  int8?: { accuracy: number; kernels: string; speedups: Array<{ batch: number; seq: number; speedup: number }> };
  /** The lambda's folder (pruned/, compact/, masks/, report.json, log.jsonl); the dense model's for its row. */
  outputDir: string;
}

export interface FrontierResult {
  rows: FrontierRow[];
  files: { json: string; markdown: string } & PlotFiles;
}

/** The option keys the frontier has no use for, and why they are refused. */
const NOT_FOR_FRONTIER: Record<string, string> = {
  lambda: 'lambdas gives the lambdas',
  budget: 'speedups gives the targets',
  resume: 'each lambda fine-prunes from the start',
  allowResumeMismatch: 'each lambda fine-prunes from the start',
  distributed: 'the frontier runs in one process',
};

/**
 * Every option checked before any work (the CLI calls it first too): the job's checks once per point (each
 * builds its pruning config), and either `lambdas` (distinct numbers >= 0) or `speedups` (distinct, > 1), not
 * both. Returns the configs.
 */
export function checkFrontierOptions(o: FrontierOptions, nameOf: (key: string) => string = (k) => `options.${k}`): PruningConfig[] {
  const { lambdas, speedups, shape, ...job } = v.object('options', o) as unknown as FrontierOptions;
  for (const [k, why] of Object.entries(NOT_FOR_FRONTIER))
    if ((job as Record<string, unknown>)[k] !== undefined) throw v.invalidParameterError(nameOf(k), `no value (${why})`, (job as Record<string, unknown>)[k]);
  if ((lambdas === undefined) === (speedups === undefined)) throw v.argumentError(`${nameOf('lambdas')} or ${nameOf('speedups')}: one of them (the points of the sweep)`);
  const [key, values, min] = lambdas !== undefined ? (['lambdas', lambdas, { min: 0 }] as const) : (['speedups', speedups, { min: 1, exclusiveMin: true }] as const);
  if (!Array.isArray(values) || values.length === 0) throw v.invalidParameterError(nameOf(key), `a non-empty array of numbers ${key === 'lambdas' ? '>= 0' : '> 1'}`, values, 'type');
  values.forEach((l, i) => v.number(`${nameOf(key)}[${i}]`, l, min));
  if (new Set(values).size !== values.length) throw v.invalidParameterError(nameOf(key), `distinct ${key}`, values.join(','), 'range');
  if (shape !== undefined && speedups === undefined) throw v.argumentError(`${nameOf('shape')} is the shape of the speed-up targets: give ${nameOf('speedups')}`);
  // A pruning override of the final lambda would give every point the same one.
  const p = (job.pruning ?? {}) as Record<string, unknown>;
  for (const k of ['regularizationFinalLambda', 'regularization_final_lambda'])
    if (lambdas && p[k] !== undefined) throw v.invalidParameterError(nameOf('pruning'), `no ${k} (lambdas gives the lambdas)`, p[k]);
  return sweepOf({ lambdas, speedups }).map((pt) =>
    checkFinePruneJobOptions({ ...job, ...(pt.lambda !== undefined ? { lambda: pt.lambda } : { budget: { speedup: pt.speedup, shape } }) }, nameOf),
  );
}

/** The speed-up the plot shows: the largest batch measured (throughput, where compaction shows most). */
function plotted(speedups: FrontierRow['speedups']): number {
  return speedups.reduce((a, b) => (b.batch >= a.batch ? b : a)).speedup;
}

/** frontier.md: one row per model, the dense model first. */
export function frontierMarkdown(rows: readonly FrontierRow[], title: string): string {
  const shapes = rows[0].speedups.map((s) => `${s.batch}x${s.seq}`);
  const int8 = rows.some((r) => r.int8);
  const budgets = rows.some((r) => r.budget);
  const head = [budgets ? 'target speed-up' : 'lambda', 'encoder density', 'accuracy (%)', 'parameters', ...shapes.map((s) => `speed-up ${s}`), ...(int8 ? ['int8 accuracy (%)', ...shapes.map((s) => `int8 speed-up ${s}`)] : [])];
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `# ${title}`,
    '',
    line(head),
    line(head.map((_, i) => (i === 0 ? '---' : '---:'))),
    ...rows.map((r) =>
      line([
        r.budget ? `${r.budget.target}x (measured ${r.budget.measured.toFixed(2)}x at ${r.budget.shape.join('x')})` : r.lambda === undefined ? 'dense' : String(r.lambda),
        `${(100 * r.density).toFixed(1)}%`,
        r.accuracy.toFixed(2),
        r.parameters.toLocaleString('en-US'),
        ...r.speedups.map((s) => `${s.speedup.toFixed(2)}x`),
        ...(!int8 ? [] : r.int8 ? [r.int8.accuracy.toFixed(2), ...r.int8.speedups.map((s) => `${s.speedup.toFixed(2)}x`)] : ['-', ...shapes.map(() => '-')]),
      ]),
    ),
    '',
    `Encoder density: ${DENSITY_DEFINITION}. Accuracy and parameters are the compact model's; speed-up is the`,
    `dense model's latency over the compact model's, measured in the same run (batch x sequence length).`,
    ...(int8 ? ['int8: the compact model quantized by model.quantize({ dtype: \'int8\' }); its speed-up is over the dense fp32 model.'] : []),
    '',
  ].join('\n');
}

/** The dense row and one row per point, from the job's results (the dense figures are each run's). */
function rowsOf(points: readonly SweepPoint[], results: readonly JobResult[], denseDir: string): FrontierRow[] {
  const first = results[0];
  const dense: FrontierRow = {
    density: 1,
    accuracy: first.dense!.accuracy,
    parameters: first.parameters.dense,
    speedups: first.latency.map((l) => ({ batch: l.batch, seq: l.seq, speedup: 1 })),
    outputDir: denseDir,
  };
  return [
    dense,
    ...results.map((r, i) => ({
      ...(points[i].lambda !== undefined ? { lambda: points[i].lambda } : { budget: r.budget }),
      density: r.density.encoder ?? 1,
      accuracy: r.compact.accuracy,
      parameters: r.parameters.compact,
      speedups: r.latency.map((l) => ({ batch: l.batch, seq: l.seq, speedup: l.speedup })),
      ...int8Of(r),
      outputDir: r.outputDir,
    })),
  ];
}

/** A lambda's int8 figures from its job result: speed-ups over the dense fp32 model of the same run. */
function int8Of(r: JobResult): Pick<FrontierRow, 'int8'> {
  const q = r.quantized.find((x) => x.dtype === 'int8');
  if (!q) return {};
  const denseMs = (batch: number) => r.latency.find((l) => l.batch === batch)!.denseMs;
  return { int8: { accuracy: q.metrics.accuracy, kernels: q.kernels, speedups: q.latency.map((l) => ({ batch: l.batch, seq: l.seq, speedup: denseMs(l.batch) / l.ms })) } };
}

function labelOf(r: FrontierRow): string {
  return r.budget ? `${r.budget.target}x` : r.lambda === undefined ? 'dense' : `λ ${r.lambda}`;
}

/** The plot's points of a frontier's rows (frontier.json): each model in fp32, and each lambda's int8 model. */
export function frontierPoints(rows: readonly FrontierRow[]): FrontierPoint[] {
  return [
    ...rows.map((r) => ({ label: labelOf(r), lambda: r.lambda, accuracy: r.accuracy, speedup: plotted(r.speedups) })),
    ...rows.flatMap((r) => (r.int8 ? [{ label: `${labelOf(r)} int8`, lambda: r.lambda, dtype: 'int8' as const, accuracy: r.int8.accuracy, speedup: plotted(r.int8.speedups) }] : [])),
  ];
}

/** Runs the frontier: options checked first, then the dense model once and each lambda in its own folder. */
export async function runFrontier(o: FrontierOptions): Promise<FrontierResult> {
  const configs = checkFrontierOptions(o);
  const { lambdas, speedups, shape: budgetShape, ...rest } = o;
  const points = sweepOf({ lambdas, speedups });
  let job: FinePruneJobOptions = rest;
  if (job.model !== undefined) job = { ...job, model: await resolveModel(job.model, {}, 'options.model') };
  const print = o.log ?? ((l: string) => console.log(l));
  // A line logged while a progress bar is drawn clears the bar first (as the job's log does).
  const log = (l: string) => (clearProgress(), print(l));
  const out = resolve(o.output);
  const s = await trainDense(job, undefined, true, log, out, out);
  const results: JobResult[] = [];
  try {
    for (const [i, pt] of points.entries()) {
      const dir = join(out, pt.folder);
      log(`\n[${s.elapsed()}] ${pt.label} (${i + 1} of ${points.length}): ${dir}`);
      // A budget point is the job with its budget (the job's state carries its options).
      const sp = pt.speedup !== undefined ? { ...s, o: { ...s.o, budget: { speedup: pt.speedup, shape: budgetShape } } } : s;
      const p = await prunePass(sp, configs[i], dir);
      try {
        results.push(await compactAndMeasure(sp, p, dir, `${o.task}, ${pt.label}`));
      } finally {
        p.dispose();
      }
    }
  } finally {
    s.dense.dispose();
  }
  const rows = rowsOf(points, results, s.denseDir);
  const title = `${o.task}: accuracy vs speed-up`;
  const plotPoints = frontierPoints(rows);
  const shape = rows[0].speedups.reduce((a, b) => (b.batch >= a.batch ? b : a));
  const plot = await plotFrontier(plotPoints, join(out, 'frontier.png'), { title, xTitle: `speed-up over the dense model (x, batch ${shape.batch} x ${shape.seq})` });
  const files = { json: join(out, 'frontier.json'), markdown: join(out, 'frontier.md'), ...plot };
  writeFileAtomicSync(files.json, JSON.stringify({ task: o.task, densityDefinition: DENSITY_DEFINITION, rows }, null, 2));
  writeFileAtomicSync(files.markdown, frontierMarkdown(rows, title));
  log(`\n[${s.elapsed()}] frontier of ${points.length} ${lambdas ? 'lambdas' : 'speed-up targets'} and the dense model:\n${frontierMarkdown(rows, title).split('\n').slice(2, 4 + rows.length).join('\n')}`);
  log(`  table: ${files.markdown}; data: ${files.json}; plot: ${files.png} (${plot.width}x${plot.height}), ${files.svg}`);
  return { rows, files };
}
