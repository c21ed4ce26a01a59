/**
 * Every command's flags are checked before any work (issue 12): a bad value exits 2 at once with one line that
 * names the flag, no C++ `terminate`, no libtorch or JavaScript stack, and nothing written. A missing model
 * directory or a file in its place is a coded error (exit 1) that says which.
 */
import test from 'ava';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { native, packageRoot } from '../../lib/runtime/native';
import { buildWordPieceVocab, writeVocab } from '../../lib/tokenizer/vocab';
import { shared, skipped, tempDir, withShared } from '../helpers';
import { TINY } from '../toy';

const CLI = join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

/** What must never reach the user for a bad value. */
const CRASH = /terminate called|libtorch|Exception raised from|^\s+at .+:\d+/m;

test('bad flag values of every command: exit 2, one line naming the flag, no stack, nothing written, fast', async (t) => {
  const tmp = tempDir();
  try {
    // A model folder for the commands that need one (its check comes first), a file, and a config file per mistake.
    const model = join(tmp.path, 'model');
    const m = await BertModel.fromConfig({ ...TINY, vocab_size: 128 }, { task: 'text-classification' });
    await m.save(model);
    m.dispose();
    writeVocab(model, buildWordPieceVocab(['a film', 'a dull film'], { size: 100 }));
    const file = join(tmp.path, 'file');
    writeFileSync(file, 'x');
    const config = (name: string, body: string) => {
      writeFileSync(join(tmp.path, name), body);
      return join(tmp.path, name);
    };
    const cwd = join(tmp.path, 'cwd');
    mkdirSync(cwd);
    const out = join(cwd, 'out');
    const train = (...a: string[]) => ['train', '--output', out, ...a];
    const cases: Array<[string[], RegExp]> = [
      ...['0', 'abc', '-3', '1.5', 'Infinity', ''].map((x): [string[], RegExp] => [train('--batch-size', x), /--batch-size/]),
      [train('--epochs', '0'), /--epochs/],
      [train('--dense-epochs', '-1'), /--dense-epochs/],
      [train('--lr', 'NaN'), /--lr/],
      [train('--lr', '-1'), /--lr/],
      [train('--dense-lr', 'abc'), /--dense-lr/],
      [train('--seed', '-1'), /--seed/],
      [train('--max-length', '100000'), /<= 512 for --max-length/],
      [train('--max-length', '2'), /--max-length/],
      [train('--model', model, '--max-length', '64'), /<= 32 for --max-length/],
      [train('--limit', '0'), /--limit/],
      [train('--eval-limit', 'x'), /--eval-limit/],
      [train('--hidden', '0'), /--hidden/],
      [train('--hidden', '65536', '--heads', '4'), /<= 4096 for --hidden/],
      [train('--layers', '1.5'), /--layers/],
      [train('--heads', 'x'), /--heads/],
      [train('--ffn', '-5'), /--ffn/],
      [train('--warmup-steps', '-1'), /--warmup-steps/],
      [train('--filled-epochs', 'x'), /--filled-epochs/],
      [train('--latency-runs', '0'), /--latency-runs/],
      [train('--lambda', '-5'), /--lambda/],
      [train('--final-threshold', 'abc'), /--final-threshold/],
      [train('--mask-lr', '-1'), /--mask-lr/],
      [train('--dense-lambda', '-1'), /--dense-lambda/],
      [train('--attention-block', '32'), /--attention-block/],
      [train('--attention-block', '0x32'), /--attention-block/],
      [train('--dense-block', 'axb'), /--dense-block/],
      [train('--regularization', 'l2'), /--regularization/],
      [train('--alpha-ce', '-1'), /--alpha-ce/],
      [train('--temperature', '0'), /--temperature/],
      [train('--nproc', '0'), /--nproc/],
      [train('--nnodes', '0'), /--nnodes/],
      [train('--master-port', '70000'), /--master-port/],
      [train('--world-size', '0'), /--world-size/],
      [train('--rank', '-1'), /--rank/],
      [train('--dist-timeout', '0'), /--dist-timeout/],
      [train('--dist-backend', 'mpi'), /--dist-backend/],
      [train('--task', 'imagenet'), /--task/],
      [train('--preset', 'diagonal'), /preset "diagonal"/],
      [train('--allow-resume-mismatch', 'sead'), /--allow-resume-mismatch/],
      [train('--config', config('null.json', 'null')), /--config .*null\.json/],
      [train('--config', config('array.json', '[1,2]')), /--config .*array\.json/],
      [train('--config', config('typo.json', '{"batchsize": 8}')), /"batchsize" in --config .*did you mean "batchSize"/],
      [train('--config', config('hf.json', '{"num_train_epoch": 8}')), /did you mean "num_train_epochs"/],
      [train('--config', config('pruning.json', '{"pruning": 5}')), /--config .*pruning/],
      [train('--config', config('values.json', '{"batchSize": 0}')), /for batchSize in --config .*values\.json/],
      [train('--config', config('geometry.json', '{"modelConfig": {"hidden_size": 30}}')), /for modelConfig\.hidden_size in --config/],
      [train('--hidden', '30'), /multiple of num_attention_heads \(4\) for --hidden/],
      [train('--config', config('bad.json', '{"batchSize": ')), /--config .*not valid JSON/],
      [train('--batch-sise', '8'), /unknown option --batch-sise for train \(did you mean --batch-size\?\)/],
      [['info', model, '--device', 'gpu9'], /--device/],
      [['compact', model, join(cwd, 'c'), '--mode', 'fast'], /--mode/],
      [['export', model, '--onnx', join(cwd, 'm.onnx'), '--opset', '13'], /--opset/],
      [['export', model, '--onnx', join(cwd, 'm.onnx'), '--opset', 'x'], /--opset/],
      [['predict', model, '--text', 'hi', '--top-k', '0'], /--top-k/],
      [['predict', model, '--text', 'hi', '--top-k', 'abc'], /--top-k/],
      [['bench', '--batches', 'abc'], /--batches/],
      [['bench', '--batches', '-3'], /--batches/],
      [['bench', '--batches', '1,0'], /--batches/],
      [['bench', '--seq', '100000'], /<= 512 for --seq/],
      [['bench', '--runs', '0'], /--runs/],
      [['bench', '--warmup', '-1'], /--warmup/],
      [['bench', '--rounds', 'x'], /--rounds/],
      [['bench', '--shapes', '1x1000'], /--shapes/],
      [['bench', '--shapes', '0x8'], /--shapes/],
      [['bench', '--models', 'sparse'], /--models/],
      [['bench', '--frob'], /unknown option --frob for bench/],
      [['bench', '--rnus', '3'], /unknown option --rnus for bench \(did you mean --runs\?\)/],
      [['bench', 'a', 'b', 'c'], /bench needs <model-dir> .*, or --synthetic/],
      [['bench', '--runs'], /--runs/],
      [['serve', '--model', model, '--port', '99999'], /--port/],
      [['serve', '--model', model, '--max-batch', '0'], /--max-batch/],
      [['serve', '--model', model, '--window-ms', '-1'], /--window-ms/],
      [['serve', '--model', model, '--threads', '0'], /--threads/],
      [['serve', '--model', model, '--max-text-chars', 'x'], /--max-text-chars/],
      [['serve', '--model', model, '--task', 'summarize'], /--task/],
      [['serve'], /--model/],
      [['serve', '--model', model, '--prot', '8080'], /unknown option --prot for serve \(did you mean --port\?\)/],
      [['serve', '--model', model, '--close-grace-ms', '-1'], /--close-grace-ms/],
      [['serve', '--model', model, '--device', 'gpu'], /--device/],
      [train('--device', 'tpu'), /--device/],
    ];
    let slowest = 0;
    for (const [args, re] of cases) {
      const label = args.join(' ').replace(tmp.path, '$TMP');
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      t.is(r.status, 2, `${label}: exit ${r.status}\n${r.stderr}`);
      const first = r.stderr.split('\n')[0];
      t.regex(first, re, `${label}: ${first}`);
      t.notRegex(r.stderr, CRASH, label);
      t.true(ms < 5000, `${label}: ${ms.toFixed(0)} ms`);
    }
    t.deepEqual(readdirSync(cwd), [], 'nothing written');
    t.log(`${cases.length} bad command lines: exit 2 naming the flag, no stack, nothing written; slowest ${slowest.toFixed(0)} ms`);

    // Missing inputs are coded errors (exit 1) that say what is wrong with the path.
    for (const [args, re] of [
      [['info', file], /\[E_FILE_NOT_FOUND\] .*file is a file, not a model directory/],
      [['info', join(tmp.path, 'none')], /\[E_FILE_NOT_FOUND\] model directory .*none does not exist/],
      [['serve', '--model', join(tmp.path, 'none')], /\[E_FILE_NOT_FOUND\] model directory .*none does not exist/],
      [['serve', '--model', model, '--tokenizer', join(tmp.path, 'none')], /\[E_FILE_NOT_FOUND\] tokenizer directory .*none does not exist/],
      [['predict', model, '--question', 'q', '--context-file', join(tmp.path, 'none')], /\[E_FILE_NOT_FOUND\] --context-file/],
      [['train', '--output', out, '--model', join(tmp.path, 'none')], /\[E_FILE_NOT_FOUND\] model directory .*none does not exist/],
      // An output place that cannot be written is the same error the write would give, found before any work.
      [['train', '--output', file], /\[E_WRITE_FAILED\] --output: .*is a file/],
      [['compact', model, file], /\[E_WRITE_FAILED\] <out-dir>: .*is a file/],
      [['export', model, '--onnx', tmp.path], /\[E_WRITE_FAILED\] --onnx: .*is a directory/],
      [['report', model, '--images', file], /\[E_WRITE_FAILED\] --images: .*is a file/],
      [['bench', '--json', tmp.path], /\[E_WRITE_FAILED\] --json: .*is a directory/],
    ] as Array<[string[], RegExp]>) {
      const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
      t.is(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      t.regex(r.stderr.split('\n')[0], re);
    }
    t.deepEqual(readdirSync(cwd), [], 'nothing written');
  } finally {
    tmp.cleanup();
  }
});

/**
 * A train command line on a tiny SST-2 folder written under `dir` (32 training and 8 test rows, hidden 32, one
 * layer, no dense epochs, one fine-pruning epoch: seconds); returns a runner taking extra flags.
 */
function tinyJob(dir: string): (...extra: string[]) => SpawnSyncReturns<string> {
  mkdirSync(join(dir, 'sst2'));
  const rows = (n: number) => 'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => `${i % 2 ? 'a fine good film' : 'a dull bad film'} ${i}\t${i % 2}\n`).join('');
  writeFileSync(join(dir, 'sst2', 'train.tsv'), rows(32));
  writeFileSync(join(dir, 'sst2', 'test.tsv'), rows(8));
  const args = ['train', '--task', 'sst2', '--data', dir, '--dense-epochs', '0', '--epochs', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '16', '--batch-size', '8', '--latency-runs', '1', '--output', join(dir, 'out')];
  return (...extra) => spawnSync(process.execPath, [CLI, ...args, ...extra], { encoding: 'utf8', timeout: 120_000 });
}

test('train builds its pruning config once from the --config file\'s "pruning" (either spelling) and the flags over it', (t) => {
  const tmp = tempDir();
  try {
    const run = tinyJob(tmp.path);
    const config = join(tmp.path, 'config.json');
    writeFileSync(config, JSON.stringify({ preset: 'heads', lambda: 3, pruning: { finalThreshold: 0.4, final_threshold: 0.3, maskScoresLearningRate: 0.05, initial_threshold: 0.02 } }));
    // The flag wins over the file's fields of the same option in either spelling; the file's other fields stay.
    const r = run('--config', config, '--final-threshold', '0.2');
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /fine-pruning \(heads, lambda 3, threshold 0\.02 -> 0\.2, mask lr 0\.05/);
    // A field of the file the pruning config does not know: a usage error naming it, before any work.
    writeFileSync(config, JSON.stringify({ pruning: { final_treshold: 0.3 } }));
    const bad = run('--config', config);
    t.is(bad.status, 2, bad.stderr);
    t.regex(bad.stderr.split('\n')[0], /pruning config: unknown field "final_treshold" \(did you mean "final_threshold"\?\)/);
  } finally {
    tmp.cleanup();
  }
});

// Reported as skipped, saying why, on a CPU without the bf16 kernels (AVX-512 BF16).
const bf16Test = native().buildInfo().quantKernels.bf16 === 'none' ? skipped('this CPU has no bf16 kernels (quantKernels.bf16: none)') : test;

bf16Test('train --bf16 (transformers\' flag) trains both stages in bf16 mixed precision', (t) => {
  const tmp = tempDir();
  try {
    const r = tinyJob(tmp.path)('--bf16', '--max-steps', '2', '--dense-epochs', '1');
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /dense training: 1 epochs, .*, bf16 mixed precision/);
    t.regex(r.stdout, /fine-pruning .*, bf16 mixed precision/);
  } finally {
    tmp.cleanup();
  }
});

test('train reads transformers\' TrainingArguments names in --config (max_steps, learning_rate, save_steps) as the options they name', (t) => {
  const tmp = tempDir();
  try {
    const run = tinyJob(tmp.path);
    const config = join(tmp.path, 'hf.json');
    writeFileSync(config, JSON.stringify({ max_steps: 2, learning_rate: 0.001, save_steps: 1, final_threshold: 0.2 }));
    const r = run('--config', config);
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /threshold 0 -> 0\.2, .*: 2 steps \(--max-steps\), lr 0\.001, .*checkpointing every 1 steps/);

    // The same option twice, in transformers' name and in ours: refused before any work.
    writeFileSync(config, JSON.stringify({ max_steps: 2, maxSteps: 3 }));
    const twice = run('--config', config);
    t.is(twice.status, 2, twice.stderr);
    t.regex(twice.stderr, /maxSteps is given twice \(as max_steps and as maxSteps\)/);
  } finally {
    tmp.cleanup();
  }
});

test('train reads a flat --config in the reference\'s names (nn_pruning\'s shape, 0/1 booleans), on --device cpu; unknown or doubled fields refused', (t) => {
  const tmp = tempDir();
  try {
    const run = tinyJob(tmp.path);
    const config = join(tmp.path, 'flat.json');
    // What nn_pruning's README and example configs write: the pruning fields at the top level, booleans as 0/1.
    writeFileSync(config, JSON.stringify({ final_threshold: 0.3, mask_scores_learning_rate: 0.5, regularization_final_lambda: 5, attention_output_with_dense: 0, bias_mask: 1, final_finetune: 0, distil_temperature: 3 }));
    const r = run('--config', config, '--device', 'cpu');
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /fine-pruning \(hybrid, lambda 5, threshold 0 -> 0\.3, mask lr 0\.5/);
    for (const [body, re] of [
      [{ final_treshold: 0.3 }, /unknown option "final_treshold" in --config .*flat\.json \(did you mean "final_threshold"\?\)/],
      [{ final_threshold: 0.3, pruning: { finalThreshold: 0.2 } }, /the pruning field finalThreshold is given twice \(at the top level and under "pruning"\)/],
      [{ temperature: 2, distil_temperature: 3 }, /temperature is given twice/],
      [{ attention_output_with_dense: 2 }, /attentionOutputWithDense/],
      [{ final_finetune: 1 }, /"final_finetune": 1 selects a reference feature blockprune does not have/],
    ] as Array<[object, RegExp]>) {
      writeFileSync(config, JSON.stringify(body));
      const bad = run('--config', config);
      t.is(bad.status, 2, `${JSON.stringify(body)}: ${bad.stderr}`);
      t.regex(bad.stderr.split('\n')[0], re);
    }
    // The API reads the reference's 0/1 booleans too (PruningConfig.fromJSON), and nothing else as a boolean.
    const o = PruningConfig.fromJSON({ attention_output_with_dense: 0, bias_mask: 1 }).options;
    t.deepEqual([o.attentionOutputWithDense, o.biasMask], [false, true]);
    t.throws(() => PruningConfig.fromJSON({ bias_mask: 'yes' }), { message: /biasMask/ });
  } finally {
    tmp.cleanup();
  }
});

withShared('fixtures/pruning/hybrid')('train --config reads the sparse_args.json nn_pruning dumps (every field at the top level) as it is', (t) => {
  const tmp = tempDir();
  try {
    const r = tinyJob(tmp.path)('--config', join(shared('fixtures/pruning/hybrid'), 'sparse_args.json'));
    t.is(r.status, 0, r.stderr);
    // Its threshold 0 -> 0.1, lambda 10 and mask lr 0.01 are what the job prunes with (its alpha and temperature too).
    t.regex(r.stdout, /fine-pruning \(hybrid, lambda 10, threshold 0 -> 0\.1, mask lr 0\.01, distilling/);
  } finally {
    tmp.cleanup();
  }
});

test('predict and serve refuse a model whose head does not fit the flags (exit 2, naming both); a fitting one answers', async (t) => {
  const tmp = tempDir();
  try {
    const dirs: Record<string, string> = {};
    for (const task of ['text-classification', 'question-answering', 'bare'] as const) {
      dirs[task] = join(tmp.path, task);
      const m = await BertModel.fromConfig({ ...TINY, vocab_size: 128 }, { task });
      await m.save(dirs[task]);
      m.dispose();
      writeVocab(dirs[task], buildWordPieceVocab(['a film', 'a dull film', 'who is it'], { size: 100 }));
    }
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a], { encoding: 'utf8', timeout: 60_000 });
    const qa = ['--question', 'who', '--context', 'a film'];
    for (const [args, re] of [
      [['predict', dirs['text-classification'], ...qa], /--question asks for question-answering, but .*text-classification is a text-classification model \(BertForSequenceClassification in its config\.json\)/],
      [['predict', dirs['question-answering'], '--text', 'a film'], /--text asks for text-classification, but .*question-answering is a question-answering model \(BertForQuestionAnswering/],
      [['predict', dirs.bare, '--text', 'a film'], /--text asks for text-classification, but .*bare is a bare encoder with no task head \(BertModel/],
      [['serve', '--model', dirs['text-classification'], '--task', 'question-answering', '--port', '0'], /--task question-answering asks for question-answering, but .* is a text-classification model/],
      [['serve', '--model', dirs.bare, '--port', '0'], /serve \(no --task\) asks for text-classification, but .*bare is a bare encoder/],
    ] as Array<[string[], RegExp]>) {
      const r = cli(...args);
      t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
      t.regex(r.stderr.split('\n')[0], re);
      t.regex(r.stderr, new RegExp(`Usage: blockprune ${args[0]}`), 'the command\'s usage follows');
      t.notRegex(r.stderr, CRASH);
      t.is(r.stdout, '', 'no answer printed');
    }
    const ok = cli('predict', dirs['question-answering'], ...qa);
    t.is(ok.status, 0, ok.stderr);
    t.is(typeof JSON.parse(ok.stdout).answer, 'string');
    const cls = cli('predict', dirs['text-classification'], '--text', 'a film');
    t.is(cls.status, 0, cls.stderr);
    t.regex(JSON.parse(cls.stdout).label, /^LABEL_[01]$/);
  } finally {
    tmp.cleanup();
  }
});

test('a flag without its value, a switch with one, a flag as a value: one line of ours naming it, then the command\'s usage', (t) => {
  for (const [args, line] of [
    [['train', '--epochs'], 'blockprune: --epochs needs a value'],
    [['train', '--epoch', '1'], 'blockprune: unknown option --epoch for train (did you mean --epochs?)'],
    [['train', '--resume=yes'], 'blockprune: --resume is a switch and takes no value (got --resume=yes)'],
    [['train', '--lr', '--seed', '3'], "blockprune: --lr needs a value, got the option --seed (a value that starts with '-' is written --lr=VALUE)"],
    [['predict', 'x', '--top-k'], 'blockprune: --top-k needs a value'],
    [['bench', '-x'], 'blockprune: unknown option -x for bench'],
  ] as Array<[string[], string]>) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.is(r.status, 2, args.join(' '));
    const lines = r.stderr.split('\n');
    t.is(lines[0], line);
    // The command's own usage, not the list of commands; none of node's parser text.
    t.regex(lines[1], new RegExp(`^Usage: blockprune ${args[0]}\\b`), args.join(' '));
    t.regex(r.stderr, new RegExp(`Run 'blockprune ${args[0]} --help' for the options\\.`));
    t.notRegex(r.stderr, /Usage: blockprune <command>|Option '|ambiguous|To specify/);
  }
});

test('train --resume refuses a checkpoint of another run (exit 1, E_RESUME_MISMATCH naming the field); --allow-resume-mismatch resumes', (t) => {
  const tmp = tempDir();
  try {
    const run = tinyJob(tmp.path);
    let r = run();
    t.is(r.status, 0, r.stderr);
    r = run('--resume', '--seed', '7');
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, /\[E_RESUME_MISMATCH\] checkpoint .*checkpoint-4 was made by another run: seed is 42 in the checkpoint, 7 in this run/);
    t.notRegex(r.stderr, CRASH);
    r = run('--resume', '--seed', '7', '--allow-resume-mismatch', 'seed');
    t.is(r.status, 0, r.stderr);
  } finally {
    tmp.cleanup();
  }
});

test('the scripts read their flags with the same parser: --help exits 0, a bad flag exits 2 naming it, before any work', (t) => {
  const script = (name: string) => join(packageRoot(), 'dist', 'scripts', `${name}.js`);
  const cases: Array<[string, string[], RegExp]> = [
    ['load', ['--clients', '0'], /--clients/],
    ['load', ['--clients', '1,x'], /--clients/],
    ['load', ['--modes', 'fast'], /--modes/],
    ['load', ['--duration', '0'], /--duration/],
    ['load', ['--threads', '-2'], /--threads/],
    ['load', ['--jsno', 'x.json'], /unknown option --jsno for load \(did you mean --json\?\)/],
    ['load', ['extra'], /load takes options only, got extra/],
    ['bench-train', ['--steps', '0'], /--steps/],
    ['bench-train', ['--geometry', 'huge'], /--geometry/],
    ['bench-train', ['--device', 'gpu'], /--device/],
    ['bench-dist', ['--nproc', '4', '--batch', '2'], /at least --nproc \(4\)/],
    ['bench-dist', ['--seq', '1000'], /<= 512 for --seq/],
    ['bench-dist', ['--warmup'], /--warmup/],
  ];
  for (const [name, args, re] of cases) {
    const r = spawnSync(process.execPath, [script(name), ...args], { encoding: 'utf8', timeout: 30_000 });
    const label = `${name} ${args.join(' ')}`;
    t.is(r.status, 2, `${label}: exit ${r.status}\n${r.stderr}`);
    t.regex(r.stderr.split('\n')[0], new RegExp(`^${name}: .*${re.source}`), label);
    t.regex(r.stderr, /usage: node dist\/scripts\//, `${label}: the usage follows`);
    t.notRegex(r.stderr, CRASH, label);
  }
  for (const name of ['load', 'bench-train', 'bench-dist']) {
    const r = spawnSync(process.execPath, [script(name), '--help'], { encoding: 'utf8', timeout: 30_000 });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`^usage: node dist/scripts/${name}\\.js`));
  }
  t.log(`${cases.length} bad script command lines: exit 2 naming the flag, then the usage`);
});
