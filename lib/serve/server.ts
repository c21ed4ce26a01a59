/**
 * An HTTP inference service on node:http, with dynamic batching:
 *
 *   const classify = await pipeline('text-classification', dir, { batchSize: 32 });
 *   const service = createInferenceServer({ classify, batching: { maxBatch: 32, windowMs: 5 } });
 *   await service.listen(8080, '127.0.0.1');
 *   // POST /classify {"text": "..."} | {"text": "...", "textPair": "..."} | {"inputs": [...]}  (optional "topK")
 *   // POST /qa       {"question": "...", "context": "..."}
 *   // GET  /health   model info, limits, batching statistics, memory
 *   await service.close();  // running model work gets closeGraceMs, the rest 503; the pipelines are disposed
 *
 * Concurrent requests that arrive within `windowMs` of the first one share one batch; at most `maxBatch`
 * items go in a batch, and one batch runs at a time, so requests that arrive while the model is busy gather
 * into the next one. A classification batch is one forward: on CPU the model packs the sequences and never
 * computes padding (BertModel.forward). Where padding does cost (a GPU model, a patched one), `maxPadding`
 * (a fraction of the real tokens) sorts a batch by length and cuts it into as few forwards as keep the padding
 * under it. Question answering merges the context windows of every request of a batch into shared forwards.
 *
 * Every bad request is answered with a status (400, 404, 405, 413, 503) and `{ "error": code, "message" }`;
 * nothing a client sends can throw out of the request handler.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BertModel } from '../model/model';
import type {
  ClassificationBatchItem,
  ClassificationResult,
  QAInput,
  QAResult,
  QuestionAnsweringPipeline,
  TextClassificationPipeline,
} from '../model/pipelines';
import { answerWindows } from '../model/pipelines';
import type { BertTokenizer, QuestionContextWindow } from '../tokenizer/tokenizer';
import * as v from '../runtime/validate';

// ---------------------------------------------------------------------------------------------------------
// DynamicBatcher
// ---------------------------------------------------------------------------------------------------------

export interface DynamicBatcherOptions {
  /** Most items per batch (default 32). A batch starts at once when this many are waiting. */
  maxBatch?: number;
  /**
   * How long the first waiting item waits for company before its batch starts (default 5 ms), under load
   * (see idleStart).
   */
  windowMs?: number;
  /**
   * At low load (the previous batch held one item) an item that finds the batcher idle starts at once
   * (default true): a lone client pays no window (measured: 101.4 vs 58.3 requests/s with a fixed 5 ms
   * window, compact model, 1 client). false: every batch waits for its window.
   */
  idleStart?: boolean;
  /** Batches running at the same time (default 1: later items gather while the model is busy). */
  maxConcurrent?: number;
}

export interface BatcherStats {
  /** Calls of the batch function. */
  batches: number;
  /** Items that went through them. */
  items: number;
  /** Batches whose function threw (every caller of such a batch got the error). */
  failedBatches: number;
  /** items / batches (0 before the first batch). */
  meanBatchSize: number;
  maxBatchSize: number;
  /** Items waiting now. */
  pending: number;
  /** Batches running now. */
  running: number;
}

interface Waiting<I, O> {
  input: I;
  since: number;
  resolve(value: O): void;
  reject(err: unknown): void;
}

/**
 * Queues items and runs them in batches: a batch starts when `maxBatch` items wait, or when the oldest has
 * waited `windowMs`, and (with maxConcurrent 1) not before the previous batch has finished. The batch
 * function is called once per batch with the inputs in arrival order and must resolve with one output per
 * input, in the same order; each caller gets its own output. If it throws or returns the wrong number of
 * outputs, every caller of that batch is rejected with the error.
 */
export class DynamicBatcher<I, O> {
  readonly maxBatch: number;
  readonly windowMs: number;
  readonly maxConcurrent: number;
  readonly idleStart: boolean;
  readonly #run: (inputs: I[]) => Promise<ArrayLike<O>>;
  #queue: Array<Waiting<I, O>> = [];
  #timer: NodeJS.Timeout | undefined;
  #running = 0;
  #closed: unknown = undefined;
  #isClosed = false;
  #batches = 0;
  #items = 0;
  #failed = 0;
  #maxSeen = 0;
  #lastSize = 0;

  constructor(run: (inputs: I[]) => Promise<ArrayLike<O>>, options: DynamicBatcherOptions = {}) {
    this.#run = v.func('run', run);
    v.options('options', options, ['maxBatch', 'windowMs', 'idleStart', 'maxConcurrent']);
    this.maxBatch = v.positiveInteger('maxBatch', options.maxBatch ?? 32);
    this.windowMs = v.number('windowMs', options.windowMs ?? 5, { min: 0 });
    this.maxConcurrent = v.positiveInteger('maxConcurrent', options.maxConcurrent ?? 1);
    this.idleStart = v.boolean('idleStart', options.idleStart ?? true);
  }

  /** Queues one item; resolves with its own output. Rejects at once after close(). */
  submit(input: I): Promise<O> {
    if (this.#isClosed) return Promise.reject(this.#closed);
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ input, since: performance.now(), resolve, reject });
      this.#schedule();
    });
  }

  /** Starts a batch with what is waiting now, without waiting for the window (when a slot is free). */
  flush(): void {
    if (this.#queue.length > 0 && this.#running < this.maxConcurrent) this.#dispatch();
  }

  /**
   * Refuses new items and rejects every waiting one with `reason`. Batches already running finish and
   * their callers get their outputs (or the batch's error).
   */
  close(reason: unknown = new Error('the batcher was closed')): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#closed = reason;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiting = this.#queue;
    this.#queue = [];
    for (const w of waiting) w.reject(reason);
  }

  get closed(): boolean {
    return this.#isClosed;
  }

  stats(): BatcherStats {
    return {
      batches: this.#batches,
      items: this.#items,
      failedBatches: this.#failed,
      meanBatchSize: this.#batches ? this.#items / this.#batches : 0,
      maxBatchSize: this.#maxSeen,
      pending: this.#queue.length,
      running: this.#running,
    };
  }

  #schedule(): void {
    if (this.#isClosed || this.#queue.length === 0 || this.#running >= this.maxConcurrent) return;
    if (this.#queue.length >= this.maxBatch) return this.#dispatch();
    if (this.idleStart && this.#lastSize <= 1 && this.#running === 0) return this.#dispatch();
    const wait = this.windowMs - (performance.now() - this.#queue[0].since);
    if (wait <= 0) return this.#dispatch();
    if (!this.#timer)
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#schedule();
      }, Math.ceil(wait));
  }

  #dispatch(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#queue.splice(0, this.maxBatch);
    this.#running++;
    this.#batches++;
    this.#items += batch.length;
    this.#maxSeen = Math.max(this.#maxSeen, batch.length);
    this.#lastSize = batch.length;
    const settle = (outputs: ArrayLike<O> | undefined, err: unknown, failed: boolean) => {
      this.#running--;
      if (!failed && (!outputs || outputs.length !== batch.length)) {
        failed = true;
        err = new Error(`the batch function returned ${outputs ? outputs.length : 'no'} outputs for ${batch.length} inputs`);
      }
      if (failed) {
        this.#failed++;
        for (const w of batch) w.reject(err);
      } else batch.forEach((w, i) => w.resolve((outputs as ArrayLike<O>)[i]));
      this.#schedule();
    };
    let p: Promise<ArrayLike<O>>;
    try {
      p = Promise.resolve(this.#run(batch.map((w) => w.input)));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (out) => settle(out, undefined, false),
      (e) => settle(undefined, e, true),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------

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
  /** Most items in one /classify "inputs" array (default 256); more: 413. */
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

export interface RouteStats extends BatcherStats {
  /** Requests answered 200 on this route. */
  ok: number;
  /**
   * Model forward passes: classification, pipeline calls (a batch split by length; one forward each when
   * the pipeline's batchSize >= maxBatch); question answering, forwards over the windows of a batch.
   */
  forwards: number;
}

export interface InferenceServerStats {
  uptimeS: number;
  /** Requests received, of every route. */
  requests: number;
  /** Responses sent, by status. */
  responses: Record<string, number>;
  /** Requests being handled now. */
  inFlight: number;
  classify?: RouteStats;
  qa?: RouteStats;
}

export interface InferenceServer {
  readonly server: Server;
  /** Starts listening (port 0: any free port); resolves with the address. */
  listen(port?: number, host?: string): Promise<{ port: number; host: string; url: string }>;
  /**
   * Stops the service: no new connections, idle keep-alive connections closed; requests still sending their
   * body, waiting for a batch, or new on an open connection get 503 at once; model work already running
   * has `closeGraceMs` to finish. Then the pipelines are disposed (a forward still running finishes, later
   * ones reject), every request not yet answered gets 503 and every connection is cut. Resolves once the
   * server is closed: within the grace plus about 250 ms.
   */
  close(): Promise<void>;
  stats(): InferenceServerStats;
  readonly closing: boolean;
}

/** An error that becomes an HTTP response: `status` and `{ error: code, message }`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
  }
}

interface ClassifyItem {
  input: ClassificationBatchItem;
  topK: number | undefined;
}

interface QAItem {
  context: string;
  windows: QuestionContextWindow[];
}

interface ModelInfo {
  task: string;
  architecture?: string;
  labels?: string[];
  numParameters: number;
  device: string;
  layers: Array<{ heads: number; intermediateSize: number }>;
  maxLength: number;
}

export function createInferenceServer(options: InferenceServerOptions): InferenceServer {
  v.options('options', v.object('options', options), SERVER_OPTIONS);
  const { classify, qa } = options;
  if (!classify && !qa) throw v.invalidParameterError('options.classify or options.qa', 'a pipeline', undefined);
  if (classify && (typeof classify !== 'function' || classify.task !== 'text-classification'))
    throw v.invalidParameterError('options.classify', "a 'text-classification' pipeline", classify);
  if (qa && (typeof qa !== 'function' || qa.task !== 'question-answering'))
    throw v.invalidParameterError('options.qa', "a 'question-answering' pipeline", qa);
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
  const maxPadding = options.maxPadding === undefined || options.maxPadding === Infinity ? Infinity : v.number('maxPadding', options.maxPadding ?? Infinity, { min: 0 });

  // Read once: a disposed model can no longer answer these.
  const info = (m: BertModel, labels: boolean): ModelInfo => {
    const c = m.config;
    return {
      task: m.task,
      architecture: c.architectures?.[0],
      labels: labels ? m.labels : undefined,
      numParameters: m.numParameters,
      device: m.device,
      layers: m.layers.map((l) => ({ heads: l.heads, intermediateSize: l.intermediateSize })),
      maxLength: Math.min(512, c.max_position_embeddings ?? 512),
    };
  };
  const classifyInfo = classify ? info(classify.model, true) : undefined;
  const qaInfo = qa ? info(qa.model, false) : undefined;
  const numLabels = classifyInfo?.labels?.length ?? 0;

  const counters = { requests: 0, responses: {} as Record<string, number>, classifyOk: 0, qaOk: 0, classifyForwards: 0, qaForwards: 0 };
  const unbatched = { classify: newUnbatched(), qa: newUnbatched() };
  const started = performance.now();

  // Classification: a pipeline call per group of similar lengths, every label ranked so that each item
  // takes its own topK.
  const runClassify = async (items: ClassifyItem[]): Promise<Array<ClassificationResult | ClassificationResult[]>> => {
    const pipe = classify as TextClassificationPipeline;
    const maxLength = classifyInfo?.maxLength ?? 512;
    const groups = splitByLength(items.map((x) => Math.min(maxLength, approxTokens(x.input))), maxPadding);
    counters.classifyForwards += groups.length;
    const out: Array<ClassificationResult | ClassificationResult[]> = new Array(items.length);
    await Promise.all(
      groups.map(async (g) => {
        const ranked = (await pipe(
          g.map((i) => items[i].input),
          { topK: numLabels },
        )) as ClassificationResult[][];
        g.forEach((i, k) => (out[i] = items[i].topK === undefined ? ranked[k][0] : ranked[k].slice(0, items[i].topK)));
      }),
    );
    return out;
  };
  const runQA = async (items: QAItem[]): Promise<QAResult[]> => {
    const pipe = qa as QuestionAnsweringPipeline;
    // The pipeline's own scoring (defaults: top 1, answers up to 15 tokens), the windows of every request sharing forwards.
    return (await answerWindows(pipe.model, items, {}, windowsPerForward, () => counters.qaForwards++)) as QAResult[];
  };
  const classifyBatcher = classify && batching ? new DynamicBatcher(runClassify, batching) : undefined;
  const qaBatcher = qa && batching ? new DynamicBatcher(runQA, batching) : undefined;

  // Tokenizing a long context takes 20-150 ms of this thread: one per turn of the event loop, so that
  // /health and other requests are served between two, never behind all of a burst's.
  const oneAtATime = turnTaker();
  let closing = false;
  let closePromise: Promise<void> | undefined;
  // Every request not yet answered, with a promise of its response's end.
  const inFlight = new Map<ServerResponse, Promise<void>>();
  // Aborted by close(): requests still reading their body stop and get 503 (see readJson). One listener a
  // request reading its body: no "possible leak" warning past 10.
  const bodies = new AbortController();
  setMaxListeners(0, bodies.signal);

  const server = createServer(
    {
      keepAlive: true,
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      // Node checks the two timeouts above every 30 s by default: a slow client would hold its socket that long.
      connectionsCheckingInterval: Math.min(1000, headersTimeoutMs),
    },
    (req, res) => {
      counters.requests++;
      inFlight.set(res, new Promise<void>((r) => res.once('close', () => (inFlight.delete(res), r()))));
      handle(req, res).catch((e) => sendError(res, e));
    },
  );
  server.keepAliveTimeout = 5000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP (bad request line, headers too large, timeouts): answer if the socket still can.
    const res = (socket as unknown as { _httpMessage?: ServerResponse })._httpMessage;
    if (res && err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.writable && !res.headersSent) {
      // A body still arriving at requestTimeoutMs: 408 through its response, then Node closes the socket.
      res.shouldKeepAlive = false;
      return sendError(res, new HttpError(408, 'timeout', `the request was not received within ${requestTimeoutMs} ms`));
    }
    if (!socket.writable || res) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({ error: status === 400 ? 'bad_request' : status === 431 ? 'headers_too_large' : 'timeout', message: `malformed HTTP request (${err.code ?? err.message})` });
    counters.responses[status] = (counters.responses[status] ?? 0) + 1;
    socket.end(
      `HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : status === 431 ? 'Request Header Fields Too Large' : 'Request Timeout'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  const routes: Record<string, { method: string; run(req: IncomingMessage): Promise<unknown> }> = {
    '/classify': { method: 'POST', run: (req) => handleClassify(req) },
    '/qa': { method: 'POST', run: (req) => handleQA(req) },
    '/health': { method: 'GET', run: async () => health() },
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const route = Object.prototype.hasOwnProperty.call(routes, path) ? routes[path] : undefined;
    if (!route) throw new HttpError(404, 'not_found', `no route ${truncate(path, 100)}: the routes are POST /classify, POST /qa and GET /health`);
    if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('Allow', route.method === 'GET' ? 'GET, HEAD' : route.method);
      throw new HttpError(405, 'method_not_allowed', `${path} takes ${route.method}, not ${truncate(String(req.method), 20)}`);
    }
    if (closing && path !== '/health') throw new HttpError(503, 'unavailable', 'the service is shutting down');
    send(res, 200, await route.run(req));
  }

  async function handleClassify(req: IncomingMessage): Promise<unknown> {
    if (!classify) throw new HttpError(404, 'not_found', 'this service has no text-classification model (POST /qa instead)');
    const body = await readJson(req, maxBodyBytes, bodies.signal);
    const topK = body.topK === undefined ? undefined : optionalTopK(body.topK, numLabels);
    const hasText = body.text !== undefined;
    const hasInputs = body.inputs !== undefined;
    if (hasText === hasInputs)
      throw new HttpError(400, 'invalid_request', 'the body must have either "text" (with an optional "textPair") or "inputs", not both');
    let items: ClassificationBatchItem[];
    if (hasText) {
      items = [classificationItem(body, 'body', maxTextChars)];
    } else {
      if (!Array.isArray(body.inputs) || body.inputs.length === 0)
        throw new HttpError(400, 'invalid_request', `"inputs" must be a non-empty array, not ${describe(body.inputs)}`);
      if (body.inputs.length > maxInputs)
        throw new HttpError(413, 'too_many_inputs', `"inputs" has ${body.inputs.length} items; the limit is ${maxInputs}`);
      items = body.inputs.map((x: unknown, i: number) => classificationItem(x, `inputs[${i}]`, maxTextChars));
    }
    const batch = items.map((input) => ({ input, topK }));
    let results: Array<ClassificationResult | ClassificationResult[]>;
    if (classifyBatcher) results = await Promise.all(batch.map((x) => classifyBatcher.submit(x)));
    else results = await unbatched.classify.run(batch, runClassify);
    counters.classifyOk++;
    return hasText ? results[0] : results;
  }

  async function handleQA(req: IncomingMessage): Promise<unknown> {
    if (!qa || !qaInfo) throw new HttpError(404, 'not_found', 'this service has no question-answering model (POST /classify instead)');
    const body = await readJson(req, maxBodyBytes, bodies.signal);
    for (const k of ['question', 'context'] as const) {
      if (typeof body[k] !== 'string' || body[k].trim() === '')
        throw new HttpError(400, 'invalid_request', `"${k}" must be a non-empty string, not ${typeof body[k] === 'string' ? 'a blank one' : describe(body[k])}`);
      if (body[k].length > maxTextChars)
        throw new HttpError(413, 'text_too_long', `"${k}" has ${body[k].length} characters; the limit is ${maxTextChars}`);
    }
    const input: QAInput = { question: body.question, context: body.context };
    let windows: QuestionContextWindow[];
    try {
      windows = await oneAtATime(() => {
        // Queued behind others when close() began: the request could not run any more.
        if (closing) throw new HttpError(503, 'unavailable', 'the service is shutting down; the request was not run');
        return encodeQA(qa.tokenizer, input, qaInfo.maxLength);
      });
    } catch (e) {
      // E.g. a question so long that no context fits in a window.
      if ((e as { code?: unknown }).code === 'E_INVALID_ARG') throw new HttpError(400, 'invalid_request', (e as Error).message);
      throw e;
    }
    const last = windows[windows.length - 1];
    const contextTokens = last.contextTokenOffset + last.contextEnd - last.contextStart;
    if (contextTokens > maxContextTokens)
      throw new HttpError(413, 'context_too_long', `"context" has ${contextTokens} tokens; the limit is ${maxContextTokens}`);
    const item = { context: input.context, windows };
    const result = qaBatcher ? await qaBatcher.submit(item) : (await unbatched.qa.run([item], runQA))[0];
    counters.qaOk++;
    return result;
  }

  function health(): unknown {
    const m = process.memoryUsage();
    return {
      status: closing ? 'closing' : 'ok',
      models: {
        ...(classify && classifyInfo ? { classify: { ...classifyInfo, disposed: classify.model.disposed } } : {}),
        ...(qa && qaInfo ? { qa: { ...qaInfo, disposed: qa.model.disposed } } : {}),
      },
      batching: batching ? { maxBatch: batching.maxBatch, windowMs: batching.windowMs } : false,
      limits: { maxTextChars, maxContextTokens, maxBodyBytes, maxInputs },
      stats: stats(),
      // maxRss: the peak since the process started (getrusage), which a sample of rss can miss.
      memory: { rss: m.rss, maxRss: process.resourceUsage().maxRSS * 1024, heapUsed: m.heapUsed, external: m.external },
      pid: process.pid,
    };
  }

  function stats(): InferenceServerStats {
    const route = (b: DynamicBatcher<any, any> | undefined, u: Unbatched, ok: number, forwards: number): RouteStats => ({
      ...(b ? b.stats() : u.stats()),
      ok,
      forwards,
    });
    return {
      uptimeS: (performance.now() - started) / 1000,
      requests: counters.requests,
      responses: { ...counters.responses },
      inFlight: inFlight.size,
      ...(classify ? { classify: route(classifyBatcher, unbatched.classify, counters.classifyOk, counters.classifyForwards) } : {}),
      ...(qa ? { qa: route(qaBatcher, unbatched.qa, counters.qaOk, counters.qaForwards) } : {}),
    };
  }

  function send(res: ServerResponse, status: number, payload: unknown): void {
    if (res.headersSent || res.destroyed || res.writableEnded) return;
    const body = JSON.stringify(payload);
    counters.responses[status] = (counters.responses[status] ?? 0) + 1;
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    if (closing) res.setHeader('Connection', 'close');
    res.end(res.req?.method === 'HEAD' ? undefined : body);
  }

  function sendError(res: ServerResponse, e: unknown): void {
    if (e instanceof ClientGone) return;
    const h = toHttpError(e);
    try {
      send(res, h.status, { error: h.code, message: h.message });
    } catch {
      res.destroy();
    }
  }

  async function listen(port = 8080, host = '127.0.0.1'): Promise<{ port: number; host: string; url: string }> {
    if (closing) throw new HttpError(503, 'unavailable', 'the service was closed');
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { port: a.port, host: a.address, url: `http://${h}:${a.port}` };
  }

  function close(): Promise<void> {
    if (closePromise) return closePromise;
    closing = true;
    closePromise = (async () => {
      const reason = new HttpError(503, 'unavailable', 'the service is shutting down; the request was not run');
      classifyBatcher?.close(reason);
      qaBatcher?.close(reason);
      // Requests still sending their body could not run any more: 503 now, not when (if ever) the body ends.
      bodies.abort();
      // No new connections; idle keep-alive ones close now, the others once their response is sent.
      const serverClosed = server.listening ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
      server.closeIdleConnections();
      // Model work already running may finish within the grace.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(inFlight.values()), new Promise<void>((r) => (timer = setTimeout(r, closeGraceMs)))]);
      clearTimeout(timer);
      // Later forwards of requests still running reject (503); one already running finishes in its thread.
      if (disposeOnClose) {
        classify?.dispose();
        qa?.dispose();
      }
      const late = new HttpError(503, 'unavailable', `the service shut down before the request finished (close grace ${closeGraceMs} ms)`);
      for (const res of inFlight.keys()) sendError(res, late);
      server.closeIdleConnections();
      // A short moment for those answers to leave, then every connection is cut: a client trickling a body or
      // headers, or one that never reads, cannot hold the service open.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_FLUSH_MS);
      await serverClosed;
      clearTimeout(cut);
    })();
    return closePromise;
  }

  return {
    server,
    listen,
    close,
    stats,
    get closing() {
      return closing;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------

class ClientGone extends Error {}

/** close(): how long the last answers have to leave before every connection is cut. */
const CLOSE_FLUSH_MS = 250;

/**
 * Reads the body (at most `limit` bytes: 413 past it) and parses it as a JSON object (400 otherwise).
 * `signal` (the service closing) stops the reading with a 503.
 */
function readJson(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<Record<string, any>> {
  const shutdown = () => new HttpError(503, 'unavailable', 'the service is shutting down; the rest of the body was not read');
  if (signal.aborted) return Promise.reject(shutdown());
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit)
    // Node reads and drops the rest of the body after the response, so the connection stays usable.
    return Promise.reject(new HttpError(413, 'body_too_large', `the body is ${declared} bytes; the limit is ${limit}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: unknown, value?: Record<string, any>) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value as Record<string, any>);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(new HttpError(413, 'body_too_large', `the body is over ${limit} bytes`));
      chunks.push(chunk);
    };
    const onAbort = () => finish(shutdown());
    signal.addEventListener('abort', onAbort);
    req.on('data', onData);
    req.once('error', () => finish(new ClientGone()));
    req.once('close', () => {
      if (!req.complete) finish(new ClientGone());
    });
    req.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return finish(new HttpError(400, 'invalid_json', 'the body is empty: send a JSON object'));
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        return finish(new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(e as Error).message}`));
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return finish(new HttpError(400, 'invalid_request', `the body must be a JSON object, not ${describe(value)}`));
      finish(undefined, value as Record<string, any>);
    });
  });
}

function classificationItem(x: unknown, where: string, maxChars: number): ClassificationBatchItem {
  const check = (s: unknown, name: string): string => {
    if (typeof s !== 'string') throw new HttpError(400, 'invalid_request', `${name} must be a string, not ${describe(s)}`);
    if (s.length > maxChars) throw new HttpError(413, 'text_too_long', `${name} has ${s.length} characters; the limit is ${maxChars}`);
    return s;
  };
  if (typeof x === 'string') return check(x, where);
  if (Array.isArray(x)) {
    if (x.length !== 2) throw new HttpError(400, 'invalid_request', `${where} must be a string, a [text, textPair] pair or { text, textPair }`);
    return [check(x[0], `${where}[0]`), check(x[1], `${where}[1]`)];
  }
  if (typeof x === 'object' && x !== null) {
    const o = x as Record<string, unknown>;
    const text = check(o.text, where === 'body' ? '"text"' : `${where}.text`);
    if (o.textPair === undefined) return text;
    return [text, check(o.textPair, where === 'body' ? '"textPair"' : `${where}.textPair`)];
  }
  throw new HttpError(400, 'invalid_request', `${where} must be a string, a [text, textPair] pair or { text, textPair }, not ${describe(x)}`);
}

function optionalTopK(v: unknown, numLabels: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new HttpError(400, 'invalid_request', `"topK" must be a positive integer, not ${describe(v)}`);
  return Math.min(v, numLabels);
}

function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'E_DISPOSED') return new HttpError(503, 'unavailable', `the model is no longer available (${message}); the service is shutting down`);
  if (code === 'E_INVALID_ARG' || e instanceof TypeError || e instanceof RangeError) return new HttpError(400, 'invalid_request', message);
  return new HttpError(500, 'internal', message);
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string`;
  return `a ${typeof v}`;
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

const SERVER_OPTIONS = ['classify', 'qa', 'batching', 'maxTextChars', 'maxBodyBytes', 'maxInputs', 'maxPadding', 'disposeOnClose', 'maxContextTokens', 'windowsPerForward', 'closeGraceMs', 'headersTimeoutMs', 'requestTimeoutMs'];



/**
 * Runs synchronous jobs one per turn of the event loop, in order: each starts from setImmediate once the
 * previous has finished, so I/O (other requests) is handled between two jobs.
 */
function turnTaker(): <T>(job: () => T) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  const nextTurn = () => new Promise<void>((r) => setImmediate(r));
  return <T>(job: () => T): Promise<T> => {
    const run = tail.then(nextTurn).then(job);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** Tokens of a classification input, roughly (about 4 characters a token, plus [CLS] and [SEP]s). */
function approxTokens(x: ClassificationBatchItem): number {
  const chars = (s: unknown) => (typeof s === 'string' ? s.length : 0);
  if (typeof x === 'string') return 2 + Math.ceil(x.length / 4);
  if (Array.isArray(x)) return 3 + Math.ceil((chars(x[0]) + chars(x[1])) / 4);
  return 3 + Math.ceil((chars(x.text) + chars(x.textPair)) / 4);
}

/**
 * Indices grouped for forwards: sorted by length, a group grows while its padding (rows x longest - real
 * tokens) stays within maxPadding x its real tokens, or 16 tokens.
 */
export function splitByLength(lengths: number[], maxPadding: number): number[][] {
  const order = lengths.map((_, i) => i);
  if (maxPadding === Infinity || lengths.length <= 1) return lengths.length ? [order] : [];
  order.sort((a, b) => lengths[a] - lengths[b] || a - b);
  const groups: number[][] = [];
  let cur: number[] = [];
  let sum = 0;
  for (const i of order) {
    const l = lengths[i];
    const padded = (cur.length + 1) * l;
    if (cur.length > 0 && padded - (sum + l) > Math.max(maxPadding * (sum + l), 16)) {
      groups.push(cur);
      cur = [];
      sum = 0;
    }
    cur.push(i);
    sum += l;
  }
  if (cur.length) groups.push(cur);
  return groups;
}

/** Without batching: every request is its own batch, counted the same way as batches are. */
interface Unbatched {
  run<I, O>(items: I[], fn: (items: I[]) => Promise<O[]>): Promise<O[]>;
  stats(): BatcherStats;
}

function newUnbatched(): Unbatched {
  let batches = 0;
  let items = 0;
  let failed = 0;
  let maxSeen = 0;
  let running = 0;
  return {
    async run(xs, fn) {
      batches++;
      items += xs.length;
      maxSeen = Math.max(maxSeen, xs.length);
      running++;
      try {
        return await fn(xs);
      } catch (e) {
        failed++;
        throw e;
      } finally {
        running--;
      }
    },
    stats: () => ({ batches, items, failedBatches: failed, meanBatchSize: batches ? items / batches : 0, maxBatchSize: maxSeen, pending: 0, running }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Question answering over several requests at once
// ---------------------------------------------------------------------------------------------------------

/** The question-answering pipeline's default windowing (HF's: 384 tokens, stride 128, question 64). */
function encodeQA(tokenizer: BertTokenizer, input: QAInput, maxLength: number): QuestionContextWindow[] {
  const maxSeq = Math.min(384, maxLength);
  return tokenizer.encodeQuestionContext(input.question, input.context, {
    maxLength: maxSeq,
    docStride: Math.min(128, Math.floor(maxSeq / 3)),
    maxQuestionLength: 64,
  });
}
