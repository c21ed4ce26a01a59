/**
 * `blockprune train` to a budget (issue 17): --target-params ends with a compact model within the target, the
 * summary and report.json say so; a speed-up target profiles the dense model's latency (cached beside it), and
 * the summary gives target, prediction and measurement; bad budget flags exit 2 before any work.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, shared, tempDir, withShared } from '../helpers';

const cli = (args: string[]) => runCli(args, 180_000);

/** A small job on 160 SST-2 sentences: hidden 64, 2 layers of 4 heads, 16x16 attention blocks, 20 pruning steps. */
const JOB = (out: string) => [
  'train', '--task', 'sst2', '--data', shared('data'), '--limit', '160', '--eval-limit', '48', '--hidden', '64', '--layers', '2', '--heads', '4',
  '--ffn', '128', '--max-length', '32', '--batch-size', '16', '--dense-epochs', '1', '--max-steps', '20', '--attention-block', '16x16',
  '--mask-lr', '0.1', '--latency-runs', '2', '--output', out,
];

withShared('data/sst2/train.tsv').serial('train --target-params: the compact model has at most the target, and the summary says met', (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'job');
    const r = cli([...JOB(out), '--target-params', '90K']);
    t.is(r.code, 0, r.err + r.out.slice(-3000));
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    t.is(report.budget.kind, 'parameters');
    t.is(report.budget.target, 90_000);
    t.true(report.budget.met);
    t.is(report.budget.measured, report.parameters.compact);
    t.true(report.parameters.compact <= 90_000, `compact ${report.parameters.compact}`);
    // The cost model's prediction of the compact model's parameters is exact.
    t.is(report.budget.predicted, report.parameters.compact);
    t.regex(r.out, /budget: target 90,000 parameters; predicted [\d,]+ parameters, measured [\d,]+ parameters: met/);
    // Lambda 0 with a budget: its Lagrangian term drives the masks; each step's log entry has the budget.
    t.regex(r.out, /fine-pruning \(hybrid, lambda 0,/);
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'step' && e.budget);
    t.true(steps.length >= 2);
    for (const e of steps) t.is(e.budget.finalTarget, 90_000);
  } finally {
    tmp.cleanup();
  }
});

withShared('data/sst2/train.tsv').serial('train --target-speedup: the dense model is profiled at --shape, and the summary gives target, prediction and measurement', (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'job');
    const r = cli([...JOB(out), '--target-speedup', '1.1', '--shape', '16x32']);
    t.is(r.code, 0, r.err + r.out.slice(-3000));
    t.true(existsSync(join(out, 'dense', 'latency-profile-16x32.json')));
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    t.like(report.budget, { kind: 'speedup', target: 1.1, shape: [16, 32] });
    for (const k of ['predicted', 'measured', 'denseMs', 'compactMs']) t.true(Number.isFinite(report.budget[k]) && report.budget[k] > 0, k);
    // The masks were fitted to the target by the cost model: it predicts at least the speed-up asked for.
    t.true(report.budget.predicted >= 1.1 - 1e-9, `predicted ${report.budget.predicted}`);
    t.regex(r.out, /budget: target speed-up 1\.10x; predicted [\d.]+x, measured [\d.]+x \(dense [\d.]+ ms, compact [\d.]+ ms at 16x32\): (met|missed)/);
  } finally {
    tmp.cleanup();
  }
});

test('bad budget flags exit 2 naming the flag, before any work', (t) => {
  const tmp = tempDir();
  try {
    for (const [args, re] of [
      [['--target-speedup', '2', '--target-params', '1M'], /one budget at a time/],
      [['--shape', '1x128'], /--shape is the shape of a --target-speedup or --target-latency budget/],
      [['--target-params', 'lots'], /--target-params/],
      [['--target-speedup', '0.5'], /--target-speedup/],
      [['--target-latency', '-3ms'], /--target-latency/],
      [['--target-params', '1M', '--shape', '1x64'], /--shape goes with --target-speedup or --target-latency/],
    ] as Array<[string[], RegExp]>) {
      const out = join(tmp.path, 'never');
      const r = cli(['train', '--task', 'sst2', '--output', out, ...args]);
      t.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
      t.regex(r.err, re);
      t.false(existsSync(out), 'nothing written');
    }
  } finally {
    tmp.cleanup();
  }
});
