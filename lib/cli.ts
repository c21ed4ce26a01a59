#!/usr/bin/env node
/**
 * The blockprune command line.
 *
 *   blockprune info <model-dir>                       what a checkpoint holds: task, parameters, per-layer sizes
 *   blockprune predict <model-dir> --text T [--pair P]
 *   blockprune predict <model-dir> --question Q (--context C | --context-file F)
 *   blockprune report <model-dir> [--json] [--images DIR]   parameters, per-layer shapes, densities, mask pictures
 *   blockprune compact <model-dir> <out-dir> [--mode dense|heads] [--export-filled DIR]
 *   blockprune bench [bench options]                  forward latency, Node vs C++, vs the GEMM roofline
 *
 * Each command takes --help.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BertModel } from './model';
import { pipeline } from './pipelines';
import { buildReport, formatReport, writeMaskImages } from './report';

const USAGE = `Usage: blockprune <command> [options]

Commands:
  info <model-dir>       load a checkpoint and print its task, parameter count and per-layer sizes
  predict <model-dir>    classify a text (--text, --pair) or answer a question (--question, --context)
  report <model-dir>     parameters before/after, per-layer shapes and densities, mask pictures (--images DIR)
  compact <dir> <out>    drop pruned heads and empty FFN units: a smaller dense model with the same outputs
  bench                  forward latency of a bert-base-sized model (see: blockprune bench --help)

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

class UsageError extends Error {}

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
    case 'report':
      return cmdReport(rest);
    case 'compact':
      return cmdCompact(rest);
    case 'bench': {
      process.argv = [process.argv[0], 'bench', ...rest];
      await import('../scripts/bench');
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
