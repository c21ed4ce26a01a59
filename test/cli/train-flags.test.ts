/**
 * `blockprune train` with nn_pruning's arguments under their own names and transformers' step flags
 * (--max-steps, --eval-steps, --save-steps, --logging-steps, --initial-warmup, --final-warmup): the log shows
 * each one's effect (the schedule's thresholds step by step, evaluations and checkpoints where asked); two
 * spellings of one option are refused, and a mistake names the spelling typed.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REFERENCE_PRUNING_NAMES } from '../../lib/cli/job-options';
import { runCli, shared, tempDir, withShared } from '../helpers';

const cli = (args: string[]) => runCli(args, 180_000);

withShared('data/sst2/train.tsv').serial('train with nn_pruning\'s arguments and the step flags: the log shows their effect', (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'job');
    // 160 examples at batch 16: 10 steps an epoch; fine-pruning stops at 8 (--max-steps).
    const r = cli([
      'train', '--task', 'sst2', '--data', shared('data'), '--limit', '160', '--eval-limit', '48',
      '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '32', '--per-device-train-batch-size', '16',
      '--dense-epochs', '1', '--max-steps', '8', '--eval-steps', '3', '--save-steps', '4', '--logging-steps', '1', '--warmup-steps', '1',
      '--initial-warmup', '2', '--final-warmup', '3', '--initial-threshold', '0', '--final-threshold', '0.2',
      '--dense-pruning-method', 'sigmoied_threshold:1d_alt', '--attention-pruning-method', 'sigmoied_threshold',
      '--attention-block-rows', '16', '--attention-block-cols', '16', '--attention-output-with-dense', '0',
      '--mask-scores-learning-rate', '0.05', '--regularization', 'l1', '--regularization-final-lambda', '3', '--linear-min-parameters', '0.01',
      '--learning-rate', '1e-3', '--distil-temperature', '3', '--latency-runs', '1', '--output-dir', out,
    ]);
    t.is(r.code, 0, r.err + r.out.slice(-3000));
    const args = /pruning arguments: (.*)/.exec(r.out)?.[1] ?? '';
    t.log(args);
    for (const kv of [
      'dense_pruning_method=sigmoied_threshold:1d_alt', 'attention_pruning_method=sigmoied_threshold', 'attention_block_rows=16', 'attention_block_cols=16',
      'attention_output_with_dense=false', 'initial_threshold=0', 'final_threshold=0.2', 'initial_warmup=2', 'final_warmup=3', 'regularization=l1',
      'regularization_final_lambda=3', 'mask_scores_learning_rate=0.05', 'linear_min_parameters=0.01',
    ])
      t.true(args.split(' ').includes(kv), kv);
    t.regex(r.out, /fine-pruning \(hybrid, lambda 3, threshold 0 -> 0\.2, mask lr 0\.05, distilling from .* at temperature 3, alpha_ce 0\.5, alpha_teacher 0\.5\): 8 steps \(--max-steps\), lr 0\.001, warm-up 1 steps, evaluating every 3 and checkpointing every 4 steps/);
    // Evaluations every 3 steps inside the epoch, and at the last step.
    t.regex(r.out, /prune step 3 \(epoch 0\.30\): accuracy[^\n]*\n.*prune step 6 \(epoch 0\.60\): accuracy[^\n]*\n.*prune step 8 \(epoch 0\.80\): accuracy/);
    t.regex(r.out, /dense step 9 \(epoch 0\.90\): accuracy[^\n]*\n.*dense epoch 1: accuracy/);

    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const prune = log.filter((e) => e.type === 'step' && e.threshold !== undefined);
    t.log(`thresholds by step: ${prune.map((e) => `${e.step}:${e.threshold.toFixed(3)}`).join(' ')}`);
    t.deepEqual(prune.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7, 8], 'a step entry each step (--logging-steps 1), 8 of them (--max-steps)');
    // --initial-warmup 2 x --warmup-steps 1: steps run at 0 while their schedule position is <= 2; --final-warmup 3:
    // the last 3 at 0.2; the cubic decrease in between.
    const th = prune.map((e) => e.threshold as number);
    t.deepEqual(th.slice(0, 3), [0, 0, 0]);
    t.true(th.slice(5).every((x) => Math.abs(x - 0.2) < 1e-12), String(th));
    t.true(th[3] > 0 && th[3] < th[4] && th[4] < 0.2, String(th));
    t.true(prune.every((e) => e.lr !== undefined) && prune[0].lr === 0 && Math.abs(prune[1].lr - 1e-3) < 1e-12, 'the peak lr (--learning-rate) after 1 warm-up step');
    t.deepEqual(log.filter((e) => e.type === 'eval' && e.threshold === undefined && e.step <= 8 && e.density).map((e) => e.step), [3, 6, 8]);
    t.deepEqual(readdirSync(join(out, 'checkpoints', 'prune')).filter((d) => d.startsWith('checkpoint-')).sort(), ['checkpoint-4', 'checkpoint-8']);

    // evaluate on the job's output, by default on the set the job evaluated on: the figures of its report.
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    const ev = cli(['evaluate', join(out, 'compact'), '--task', 'sst2', '--data', shared('data'), '--limit', '48', '--max-length', '32', '--json']);
    t.is(ev.code, 0, ev.err);
    t.regex(ev.err, /sst2: 48 examples from the job's evaluation set \(train .*train\.tsv.*, eval .*test\.tsv\)/);
    const got = JSON.parse(ev.out);
    t.log(`job's report: compact accuracy ${report.compact.accuracy}, F1 ${report.compact.f1}; evaluate: ${got.accuracy}, ${got.f1}`);
    t.is(got.accuracy, report.compact.accuracy);
    t.is(got.f1, report.compact.f1);
  } finally {
    tmp.cleanup();
  }
});

test('every nn_pruning argument is a train flag the help lists; two spellings of one option are refused; a mistake names what was typed', (t) => {
  const help = cli(['train', '--help']).out;
  const names = Object.values(REFERENCE_PRUNING_NAMES);
  t.true(names.length >= 18, names.join(' '));
  for (const n of names) t.true(help.includes(`--${n.replace(/_/g, '-')}`), n);
  for (const f of ['--max-steps', '--eval-steps', '--save-steps', '--logging-steps', '--initial-warmup', '--final-warmup', '--num-train-epochs', '--learning-rate'])
    t.true(help.includes(f), f);

  const both = cli(['train', '--mask-lr', '0.1', '--mask-scores-learning-rate', '0.2']);
  t.is(both.code, 2);
  t.regex(both.err, /--mask-scores-learning-rate and --mask-lr both set mask_scores_learning_rate|--mask-lr and --mask-scores-learning-rate both set/);
  const twice = cli(['train', '--learning-rate', '1e-3', '--lr', '1e-3']);
  t.is(twice.code, 2);
  t.regex(twice.err, /--learning-rate and --lr are the same option/);
  const bad = cli(['train', '--learning-rate', 'fast']);
  t.is(bad.code, 2);
  t.regex(bad.err, /--learning-rate/);
  t.notRegex(bad.err, /--lr\b/);
  const flag = cli(['train', '--attention-output-with-dense', '2']);
  t.is(flag.code, 2);
  t.regex(flag.err, /--attention-output-with-dense/);
  const block = cli(['train', '--dense-block', '4x4', '--dense-block-rows', '8']);
  t.is(block.code, 2);
  t.regex(block.err, /both set dense_block_rows/);
  const steps = cli(['train', '--eval-steps', '0']);
  t.is(steps.code, 2);
  t.regex(steps.err, /--eval-steps/);
});
