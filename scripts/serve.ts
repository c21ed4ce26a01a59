#!/usr/bin/env node
/**
 * The inference service from the command line:
 *
 *   node dist/scripts/serve.js --model DIR [--task text-classification|question-answering] [--port 8080]
 *        [--host 127.0.0.1] [--no-batching] [--max-batch 32] [--window-ms 5] [--tokenizer DIR]
 *        [--max-text-chars 20000] [--max-context-tokens 8192] [--windows-per-forward 8] [--max-body-bytes 1048576]
 *        [--close-grace-ms 3000] [--threads N]
 *
 * Without --task the task follows config.json's architectures (…ForQuestionAnswering: question-answering,
 * else text-classification). Prints "listening on http://HOST:PORT" once it accepts requests (--port 0
 * picks a free port; scripts/load.ts reads that line). SIGINT / SIGTERM close it: no new connections, idle
 * ones closed, requests still sending their body and those waiting for a batch answered 503 at once, model
 * work already running given --close-grace-ms to finish (then 503), every connection cut, and the process
 * exits (within the grace plus about 250 ms). A second signal exits at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../lib/index';
import { pipeline } from '../lib/model/pipelines';
import { createInferenceServer } from '../lib/serve/server';
import type { InferenceServerOptions } from '../lib/serve/server-options';
import { flagNumber, invalidParameterError, oneOf } from '../lib/runtime/validate';
import { exitWithError, FlagReader, parseFlags } from './common';

type ServeTask = 'text-classification' | 'question-answering';

interface ServeArgs {
  model: string;
  task?: ServeTask;
  port: number;
  host: string;
  batching: boolean;
  maxBatch: number;
  windowMs: number;
  tokenizer?: string;
  maxTextChars?: number;
  maxContextTokens?: number;
  windowsPerForward?: number;
  maxBodyBytes?: number;
  closeGraceMs?: number;
  threads?: number;
}

const USAGE =
  'usage: node dist/scripts/serve.js --model DIR [--task text-classification|question-answering] [--port 8080] [--host 127.0.0.1]\n' +
  '       [--no-batching] [--max-batch 32] [--window-ms 5] [--tokenizer DIR] [--max-text-chars N] [--max-context-tokens N]\n' +
  '       [--windows-per-forward N] [--max-body-bytes N] [--close-grace-ms N] [--threads N]';

function parseArgs(argv: string[]): ServeArgs {
  const a: Partial<ServeArgs> = { port: 8080, host: '127.0.0.1', batching: true, maxBatch: 32, windowMs: 5 };
  const f = new FlagReader(argv, USAGE);
  for (let k = f.next(); k !== undefined; k = f.next()) {
    if (k === '--model') a.model = f.value();
    else if (k === '--task') a.task = oneOf(k, f.value(), ['text-classification', 'question-answering'] as const);
    else if (k === '--port') a.port = f.num(0, true, 65535);
    else if (k === '--host') a.host = f.value();
    else if (k === '--no-batching') a.batching = false;
    else if (k === '--max-batch') a.maxBatch = f.num(1);
    else if (k === '--window-ms') a.windowMs = f.num(0, false);
    else if (k === '--tokenizer') a.tokenizer = f.value();
    else if (k === '--max-text-chars') a.maxTextChars = f.num(1);
    else if (k === '--max-context-tokens') a.maxContextTokens = flagNumber(k, f.value(), { integer: true, min: 1 });
    else if (k === '--windows-per-forward') a.windowsPerForward = flagNumber(k, f.value(), { integer: true, min: 1 });
    else if (k === '--max-body-bytes') a.maxBodyBytes = f.num(1);
    else if (k === '--close-grace-ms') a.closeGraceMs = flagNumber(k, f.value(), { min: 0 });
    // The addon's range for its thread pools.
    else if (k === '--threads') a.threads = f.num(1, true, 1024);
    else throw f.unknown();
  }
  if (!a.model) throw invalidParameterError('--model', 'a model directory (it is required)', a.model);
  return a as ServeArgs;
}

/** question-answering when config.json names a …ForQuestionAnswering architecture, else text-classification. */
function taskOf(dir: string): ServeTask {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) return 'text-classification';
  try {
    const c = JSON.parse(readFileSync(p, 'utf8'));
    return Array.isArray(c.architectures) && c.architectures.some((x: unknown) => String(x).endsWith('ForQuestionAnswering'))
      ? 'question-answering'
      : 'text-classification';
  } catch {
    return 'text-classification';
  }
}

async function main(): Promise<void> {
  const args = parseFlags('blockprune serve', USAGE, () => parseArgs(process.argv.slice(2)));
  if (args.threads) setNumThreads(args.threads);
  const task = args.task ?? taskOf(args.model);
  // The pipeline's batchSize is the batch limit, so that one batch is one forward pass.
  const popts = { tokenizer: args.tokenizer, batchSize: args.maxBatch };
  const options: InferenceServerOptions = {
    batching: args.batching ? { maxBatch: args.maxBatch, windowMs: args.windowMs } : false,
    maxTextChars: args.maxTextChars,
    maxContextTokens: args.maxContextTokens,
    windowsPerForward: args.windowsPerForward,
    maxBodyBytes: args.maxBodyBytes,
    closeGraceMs: args.closeGraceMs,
  };
  if (task === 'question-answering') options.qa = await pipeline('question-answering', args.model, popts);
  else options.classify = await pipeline('text-classification', args.model, popts);
  const service = createInferenceServer(options);
  const { url } = await service.listen(args.port, args.host);
  const b = args.batching ? `batching: up to ${args.maxBatch} per batch, ${args.windowMs} ms window` : 'no batching';
  console.log(`blockprune serve: ${task} model ${args.model} (${b})`);
  console.log(`listening on ${url}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    const t0 = performance.now();
    console.log(`${signal}: closing`);
    service.close().then(
      () => {
        console.log(`closed in ${Math.round(performance.now() - t0)} ms`);
        process.exit(0);
      },
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e) => exitWithError('blockprune serve', e));
