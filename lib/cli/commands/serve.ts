/**
 * `blockprune serve`: the inference service (lib/serve) from the command line, its start and its stop.
 *
 * Without --task the task follows config.json's architectures (…ForQuestionAnswering: question-answering,
 * else text-classification); a BART or T5 …ForConditionalGeneration serves POST /summarize and POST /generate
 * (one model behind both; --task summarization or text2text-generation: that route alone). A --task the
 * model's head does not serve, or a bare encoder, is refused (exit 2).
 * Prints "listening on http://HOST:PORT" once it accepts requests (--port 0
 * picks a free port; scripts/load.ts and the tests read that line). SIGINT / SIGTERM close it: no new
 * connections, idle ones closed, requests still sending their body and those waiting for a batch answered
 * 503 at once, model work already running given --close-grace-ms to finish (then 503), every connection
 * cut, and the process exits (within the grace plus about 250 ms). A second signal exits at once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkModelSource, resolveModel, type HubOptions } from '../../hub/hub';
import { generationPipeline, type GenerationTask } from '../../model/generation-pipeline';
import { pipeline } from '../../model/pipelines';
import { native } from '../../runtime/native';
import * as v from '../../runtime/validate';
import { createInferenceServer } from '../../serve/server';
import type { InferenceServerOptions } from '../../serve/server-options';
import { checkModelTask, Command, configTask, HUB_FLAGS, HUB_HELP, hubFlags, noPositionals } from '../command';
import { bool, choiceFlag, deviceFlag, intFlag, numFlag, str, UsageError } from '../flags';

type ServeTask = 'text-classification' | 'question-answering' | GenerationTask;
const TASKS = ['text-classification', 'question-answering', 'summarization', 'text2text-generation'] as const;

/**
 * A BART or T5 checkpoint with a generation head (config.json's model_type and architectures), which the
 * encoder-decoder pipelines serve; undefined when config.json names none (a BERT-family model).
 */
function generationArchitecture(dir: string): string | undefined {
  let config: { model_type?: unknown; architectures?: unknown };
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (config.model_type !== 'bart' && config.model_type !== 't5') return undefined;
  const a = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
  return a.find((x) => x.endsWith('ForConditionalGeneration'));
}

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
  maxGenerateLength?: number;
  maxBeams?: number;
  closeGraceMs?: number;
  threads?: number;
  device: string;
  hub: HubOptions;
}

/** Loads the model, listens, and closes the service on SIGINT / SIGTERM (a second one exits at once). */
async function serve(args: ServeArgs): Promise<void> {
  if (args.threads) native().setNumThreads(args.threads);
  // A hub id is resolved (downloaded when needed) before the task is read from its config.json.
  const model = await resolveModel(args.model, args.hub, '--model');
  // The task follows the model's head; a --task it does not have is refused (a random head would answer noise).
  const generating = generationArchitecture(model);
  const byTask = args.task === undefined ? 'serve (no --task)' : `--task ${args.task}`;
  const isGeneration = args.task === 'summarization' || args.task === 'text2text-generation';
  if (generating && args.task !== undefined && !isGeneration)
    throw new UsageError(`${byTask} asks for ${args.task}, but ${args.model} is a ${generating} (it serves summarization and text2text-generation)`);
  if (!generating && isGeneration) throw new UsageError(`${byTask} needs a BART or T5 …ForConditionalGeneration model, and ${args.model} is not one (its config.json)`);
  const task = args.task ?? (generating ? undefined : configTask(model)?.task === 'question-answering' ? 'question-answering' : 'text-classification');
  if (!generating) checkModelTask(model, args.model, task as 'text-classification' | 'question-answering', byTask);
  // The pipeline's batchSize is the batch limit, so that one batch is one forward pass (one generate()).
  const popts = { tokenizer: args.tokenizer, batchSize: args.maxBatch, device: args.device };
  const options: InferenceServerOptions = {
    batching: args.batching ? { maxBatch: args.maxBatch, windowMs: args.windowMs } : false,
    maxTextChars: args.maxTextChars,
    maxContextTokens: args.maxContextTokens,
    windowsPerForward: args.windowsPerForward,
    maxBodyBytes: args.maxBodyBytes,
    maxGenerateLength: args.maxGenerateLength,
    maxBeams: args.maxBeams,
    closeGraceMs: args.closeGraceMs,
  };
  if (generating) {
    // One model behind both routes: loaded once, its jobs one at a time.
    const first = await pipeline(task === 'text2text-generation' ? 'text2text-generation' : 'summarization', model, popts);
    if (first.task === 'summarization') options.summarize = first;
    else options.generate = first;
    if (task === undefined) options.generate = generationPipeline('text2text-generation', first.model, first.tokenizer, args.maxBatch);
  } else if (task === 'question-answering') options.qa = await pipeline('question-answering', model, popts);
  else options.classify = await pipeline('text-classification', model, popts);
  let service;
  try {
    service = createInferenceServer(options);
  } catch (e) {
    // A limit below the model's own defaults: the model is freed before the error is reported.
    options.summarize?.dispose();
    options.generate?.dispose();
    throw e;
  }
  const { url } = await service.listen(args.port, args.host);
  const b = args.batching ? `batching: up to ${args.maxBatch} per batch, ${args.windowMs} ms window` : 'no batching';
  const what = task ?? 'summarization and text2text-generation';
  console.log(`blockprune serve: ${what} model ${args.model} (${b})`);
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

export const serveCommand: Command<ServeArgs> = {
  name: 'serve',
  synopsis: 'serve --model DIR',
  summary: 'HTTP service: POST /classify, /qa, /summarize, /generate, GET /health, dynamic batching (serve --help)',
  help: `Usage: blockprune serve --model DIR [--task text-classification|question-answering|summarization|text2text-generation]
       [--port 8080] [--host 127.0.0.1] [--no-batching] [--max-batch 32] [--window-ms 5] [--tokenizer DIR]
       [--max-text-chars N] [--max-context-tokens N] [--windows-per-forward N] [--max-body-bytes N]
       [--max-generate-length 256] [--max-beams 8] [--close-grace-ms N] [--threads N] [--device cpu|cuda|cuda:N]
       [--revision REV] [--offline]

Serves the model over HTTP: POST /classify {"text"[, "textPair"]}, POST /qa {"question", "context"}, GET
/health. A BART or T5 ...ForConditionalGeneration model (config.json's model_type and architectures) serves
POST /summarize and POST /generate instead ({"inputs": "..." | [...], "parameters": {"max_length",
"min_length", "num_beams", "length_penalty", "no_repeat_ngram_size", "early_stopping"}}, "stream": true for
Server-Sent Events), one model behind both (--task summarization or text2text-generation: that route alone);
--max-generate-length and --max-beams bound max_length and num_beams. Requests arriving within --window-ms
are run as one batch of up to --max-batch (--no-batching: one forward or generate per request). Prints "listening on http://HOST:PORT" once it accepts requests (--port 0 picks a free
port). The task follows the model's head (config.json's architectures); a --task the model has no head for,
or a bare encoder, is refused (exit 2). SIGINT / SIGTERM close it: waiting requests get 503, model work already running gets --close-grace-ms
to finish, then the process exits; a second signal exits at once. --device puts the served model on a GPU
(a CUDA build of libtorch).

${HUB_HELP}`,
  flags: {
    model: str, task: str, port: str, host: str, 'no-batching': bool, 'max-batch': str, 'window-ms': str, tokenizer: str,
    'max-text-chars': str, 'max-context-tokens': str, 'windows-per-forward': str, 'max-body-bytes': str, 'max-generate-length': str, 'max-beams': str, 'close-grace-ms': str, threads: str, device: str, ...HUB_FLAGS,
  },
  args({ values, positionals }) {
    noPositionals('serve', positionals);
    const a: Omit<ServeArgs, 'model'> = {
      hub: hubFlags(values),
      task: choiceFlag(values, 'task', TASKS),
      port: intFlag(values, 'port', 0, 65535) ?? 8080,
      host: (values.host as string | undefined) ?? '127.0.0.1',
      batching: values['no-batching'] !== true,
      maxBatch: intFlag(values, 'max-batch', 1) ?? 32,
      windowMs: numFlag(values, 'window-ms', { min: 0 }) ?? 5,
      tokenizer: values.tokenizer as string | undefined,
      maxTextChars: intFlag(values, 'max-text-chars', 1),
      maxContextTokens: intFlag(values, 'max-context-tokens', 1),
      windowsPerForward: intFlag(values, 'windows-per-forward', 1),
      maxBodyBytes: intFlag(values, 'max-body-bytes', 1),
      maxGenerateLength: intFlag(values, 'max-generate-length', 1),
      maxBeams: intFlag(values, 'max-beams', 1),
      closeGraceMs: numFlag(values, 'close-grace-ms', { min: 0 }),
      // The addon's range for its thread pools.
      threads: intFlag(values, 'threads', 1, 1024),
      device: deviceFlag(values),
    };
    if (values.model === undefined) throw v.invalidParameterError('--model', 'a model directory or hub id (it is required)', undefined);
    // A missing model folder is the coded error of any missing input (exit 1), found before the addon loads.
    checkModelSource('--model', values.model);
    if (a.tokenizer !== undefined) v.modelDirectory('--tokenizer', a.tokenizer, 'tokenizer directory');
    return { ...a, model: String(values.model) };
  },
  run: serve,
};
