#!/usr/bin/env node
/**
 * The blockprune command line.
 *
 *   blockprune info <model-dir>                       what a checkpoint holds: task, parameters, per-layer sizes
 *   blockprune predict <model-dir> --text T [--pair P]
 *   blockprune predict <model-dir> --question Q (--context C | --context-file F)
 *   blockprune bench [bench options]                  forward latency, Node vs C++, vs the GEMM roofline
 *
 * Each command takes --help.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BertModel } from './model';
import { pipeline } from './pipelines';

const USAGE = `Usage: blockprune <command> [options]

Commands:
  info <model-dir>       load a checkpoint and print its task, parameter count and per-layer sizes
  predict <model-dir>    classify a text (--text, --pair) or answer a question (--question, --context)
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

class UsageError extends Error {}

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
