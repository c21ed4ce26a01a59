/**
 * The HTTP service's options (InferenceServerOptions) and their defaults, checked in one place before a
 * server is created: what createInferenceServer runs with.
 */
import type { TextGenerationPipeline } from '../model/generation-pipeline';
import type { QuestionAnsweringPipeline, TextClassificationPipeline } from '../model/pipelines';
import * as v from '../runtime/validate';

export interface BatchingOptions {
  /** Most requests (classification: inputs) per batch; default 32. */
  maxBatch?: number;
  /** Batching window in milliseconds; default 5. */
  windowMs?: number;
  /** A request that finds the batcher idle at low load starts at once (default true; DynamicBatcherOptions). */
  idleStart?: boolean;
}

export interface InferenceServerOptions {
  /** Serves POST /classify. Give it batchSize >= maxBatch so that each pipeline call is one forward. */
  classify?: TextClassificationPipeline;
  /** Serves POST /qa. */
  qa?: QuestionAnsweringPipeline;
  /**
   * Serves POST /summarize: a 'summarization' pipeline (BART, T5). Give it batchSize >= maxBatch so that each
   * pipeline call is one generate(). `summarize` and `generate` may share one model (one job at a time).
   */
  summarize?: TextGenerationPipeline;
  /** Serves POST /generate: a 'text2text-generation' pipeline. */
  generate?: TextGenerationPipeline;
  /**
   * Largest "max_length" a /summarize or /generate request may ask (default 256 tokens, the decoder start token
   * included, as transformers counts); the model's own default must be within it. Larger: 400.
   */
  maxGenerateLength?: number;
  /** Largest "num_beams" (default 8); the model's own default must be within it. Larger: 400. */
  maxBeams?: number;
  /** Dynamic batching (default { maxBatch: 32, windowMs: 5 }); false: every request runs on its own. */
  batching?: BatchingOptions | false;
  /** Longest text, text pair, question or context in characters (default 20,000); longer: 413 text_too_long. */
  maxTextChars?: number;
  /**
   * Longest question-answering context in tokens (default 8,192, about 36,000 characters of English text, so
   * maxTextChars binds first there); longer: 413 context_too_long. Characters alone do not bound the work:
   * 20,000 characters of CJK or symbols are 20,000 tokens, 83 windows instead of 18.
   */
  maxContextTokens?: number;
  /**
   * Question-answering context windows per forward pass (default 8), whatever the number of requests in a
   * batch, so one forward's memory is bounded by it (bert-base width, 384-token windows: about 12 MB of
   * activations a window; measured on a one-layer model, a fresh process peaked 232-284 MB above idle at 8
   * windows, 314-402 MB at 32, most of it one-time buffers). The JS side keeps the best spans only.
   */
  windowsPerForward?: number;
  /** Largest request body in bytes (default 1 MiB); larger: 413 body_too_large. */
  maxBodyBytes?: number;
  /** Most items in one /classify, /summarize or /generate "inputs" array (default 256); more: 413. */
  maxInputs?: number;
  /**
   * Padding a classification forward may carry, as a fraction of its real tokens (or 16 tokens when that is
   * more), before a batch is split by length into several forwards. Default Infinity: one forward per batch
   * (up to the pipeline's batchSize), right for CPU models, which skip padding; 0.25 suits GPU models.
   */
  maxPadding?: number;
  /** close() disposes the pipelines (default true). */
  disposeOnClose?: boolean;
  /**
   * How long close() lets model work already running finish (default 3,000 ms). Requests still sending
   * their body get 503 at once, idle keep-alive connections are closed at once; after the grace every
   * request not yet answered gets 503 and every connection is cut. close() resolves within the grace plus
   * about 250 ms.
   */
  closeGraceMs?: number;
  /**
   * A client must send its request headers within this many milliseconds of starting them (default 10,000),
   * else 408 and the connection is closed: a client sending headers byte by byte cannot hold a socket.
   */
  headersTimeoutMs?: number;
  /** ... and the whole request, body included, within this many milliseconds (default 30,000), else 408. */
  requestTimeoutMs?: number;
}

const SERVER_OPTIONS = ['classify', 'qa', 'summarize', 'generate', 'maxGenerateLength', 'maxBeams', 'batching', 'maxTextChars', 'maxBodyBytes', 'maxInputs', 'maxPadding', 'disposeOnClose', 'maxContextTokens', 'windowsPerForward', 'closeGraceMs', 'headersTimeoutMs', 'requestTimeoutMs'];

/** Every option checked and defaulted; `batching` false when off. */
export interface ServerSettings {
  classify?: TextClassificationPipeline;
  qa?: QuestionAnsweringPipeline;
  summarize?: TextGenerationPipeline;
  generate?: TextGenerationPipeline;
  maxGenerateLength: number;
  maxBeams: number;
  batching: { maxBatch: number; windowMs: number; idleStart?: boolean } | false;
  maxTextChars: number;
  maxBodyBytes: number;
  maxInputs: number;
  disposeOnClose: boolean;
  maxContextTokens: number;
  windowsPerForward: number;
  closeGraceMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxPadding: number;
}

/** Checks `options` (E_INVALID_ARG naming the option) and fills in the defaults. */
export function serverSettings(options: InferenceServerOptions): ServerSettings {
  v.options('options', v.object('options', options), SERVER_OPTIONS);
  const { classify, qa, summarize, generate } = options;
  if (!classify && !qa && !summarize && !generate) throw v.invalidParameterError('options.classify, qa, summarize or generate', 'a pipeline', undefined);
  if (classify && (typeof classify !== 'function' || classify.task !== 'text-classification'))
    throw v.invalidParameterError('options.classify', "a 'text-classification' pipeline", classify);
  if (qa && (typeof qa !== 'function' || qa.task !== 'question-answering'))
    throw v.invalidParameterError('options.qa', "a 'question-answering' pipeline", qa);
  if (summarize && (typeof summarize !== 'function' || summarize.task !== 'summarization'))
    throw v.invalidParameterError('options.summarize', "a 'summarization' pipeline", summarize);
  if (generate && (typeof generate !== 'function' || generate.task !== 'text2text-generation'))
    throw v.invalidParameterError('options.generate', "a 'text2text-generation' pipeline", generate);
  const maxGenerateLength = v.positiveInteger('maxGenerateLength', options.maxGenerateLength ?? 256);
  const maxBeams = v.positiveInteger('maxBeams', options.maxBeams ?? 8);
  const b = options.batching;
  if (b !== undefined && b !== false && (typeof b !== 'object' || b === null || Array.isArray(b))) throw v.invalidParameterError('options.batching', '{ maxBatch, windowMs, idleStart } or false', b);
  if (b) v.knownKeys('options.batching', b as Record<string, unknown>, ['maxBatch', 'windowMs', 'idleStart']);
  const batching =
    b === false
      ? false
      : { maxBatch: v.positiveInteger('batching.maxBatch', b?.maxBatch ?? 32), windowMs: v.number('batching.windowMs', b?.windowMs ?? 5, { min: 0 }), idleStart: b?.idleStart };
  const maxTextChars = v.positiveInteger('maxTextChars', options.maxTextChars ?? 20_000);
  const maxBodyBytes = v.positiveInteger('maxBodyBytes', options.maxBodyBytes ?? 1 << 20);
  const maxInputs = v.positiveInteger('maxInputs', options.maxInputs ?? 256);
  const disposeOnClose = v.boolean('disposeOnClose', options.disposeOnClose ?? true);
  const maxContextTokens = v.positiveInteger('maxContextTokens', options.maxContextTokens ?? 8192);
  const windowsPerForward = v.positiveInteger('windowsPerForward', options.windowsPerForward ?? 8);
  const closeGraceMs = v.number('closeGraceMs', options.closeGraceMs ?? 3000, { min: 0 });
  const headersTimeoutMs = v.number('headersTimeoutMs', options.headersTimeoutMs ?? 10_000, { min: 1 });
  const requestTimeoutMs = v.number('requestTimeoutMs', options.requestTimeoutMs ?? 30_000, { min: headersTimeoutMs });
  const maxPadding = options.maxPadding === undefined || options.maxPadding === Infinity ? Infinity : v.number('maxPadding', options.maxPadding, { min: 0 });
  return { classify, qa, summarize, generate, maxGenerateLength, maxBeams, batching, maxTextChars, maxBodyBytes, maxInputs, disposeOnClose, maxContextTokens, windowsPerForward, closeGraceMs, headersTimeoutMs, requestTimeoutMs, maxPadding };
}
