/**
 * createInferenceServer: an HTTP inference service on node:http, with dynamic batching (its routes, limits
 * and close; the batcher, request checks and options live beside it in lib/serve/):
 *
 *   const classify = await pipeline('text-classification', dir, { batchSize: 32 });
 *   const service = createInferenceServer({ classify, batching: { maxBatch: 32, windowMs: 5 } });
 *   await service.listen(8080, '127.0.0.1');
 *   // POST /classify {"text": "..."} | {"text": "...", "textPair": "..."} | {"inputs": [...]}  (optional "topK")
 *   //                or the Inference API's {"inputs": "..."} (one result) | {"inputs": [...], "parameters": {"top_k": 2}}
 *   // POST /qa       {"question": "...", "context": "..."} | {"inputs": {"question": "...", "context": "..."}}
 *   // POST /summarize, /generate (createInferenceServer({ summarize, generate }), BART / T5: generation-routes.ts)
 *   //                {"inputs": "..." | [...], "parameters": {"max_length": 60, "num_beams": 4, ...}} | {"text": "..."};
 *   //                "stream": true answers Server-Sent Events
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
import type { TextGenerationPipeline } from '../model/generation-pipeline';
import type { BertModel } from '../model/model';
import type { ClassificationBatchItem, ClassificationResult, QAResult, QuestionAnsweringPipeline, TextClassificationPipeline } from '../model/pipelines';
import { answerWindows } from '../model/pipelines';
import { type QAOptions, qaWindowOptions } from '../model/qa-options';
import type { QuestionContextWindow } from '../tokenizer/tokenizer';
import { BatcherStats, DynamicBatcher, newUnbatched, Unbatched } from './batcher';
import { ClientGone, HttpError, toHttpError, unavailable } from './http-error';
import { GenerationRoute, GenerationRouteStats, lane, STREAMED } from './generation-routes';
import { classifyRequest, qaRequest, readJson } from './requests';
import { InferenceServerOptions, serverSettings } from './server-options';
import { approxTokens, splitByLength } from './split-by-length';

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
  summarize?: GenerationRouteStats;
  generate?: GenerationRouteStats;
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

/** A service over one or both pipelines; every option is checked before a socket is opened (serverSettings). */
export function createInferenceServer(options: InferenceServerOptions): InferenceServer {
  const { classify, qa, summarize, generate, maxGenerateLength, maxBeams, batching, maxTextChars, maxBodyBytes, maxInputs, disposeOnClose, maxContextTokens, windowsPerForward, closeGraceMs, headersTimeoutMs, requestTimeoutMs, maxPadding } =
    serverSettings(options);

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
      maxLength: Math.min(512, m.dimensions.maxSequenceLength),
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
    // The pipeline's own scoring, the windows of every request sharing forwards.
    return (await answerWindows(pipe.model, items, QA, windowsPerForward, () => counters.qaForwards++)) as QAResult[];
  };
  const classifyBatcher = classify && batching ? new DynamicBatcher(runClassify, batching) : undefined;
  const qaBatcher = qa && batching ? new DynamicBatcher(runQA, batching) : undefined;
  // Generation routes; two over one model share its lane (one job at a time).
  const lanes = new Map<unknown, ReturnType<typeof lane>>();
  const generationRoute = (path: string, pipe: TextGenerationPipeline) => {
    if (!lanes.has(pipe.model)) lanes.set(pipe.model, lane());
    const limits = { maxTextChars, maxInputs, maxGenerateLength, maxBeams };
    const count = (status: number) => (counters.responses[status] = (counters.responses[status] ?? 0) + 1);
    return new GenerationRoute(path, pipe, { batching, limits, lane: lanes.get(pipe.model)!, count });
  };
  const generation = {
    summarize: summarize ? generationRoute('/summarize', summarize) : undefined,
    generate: generate ? generationRoute('/generate', generate) : undefined,
  };

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

  const routes: Record<string, { method: string; run(req: IncomingMessage, res: ServerResponse): Promise<unknown> }> = {
    '/classify': { method: 'POST', run: (req) => handleClassify(req) },
    '/qa': { method: 'POST', run: (req) => handleQA(req) },
    '/summarize': { method: 'POST', run: (req, res) => handleGeneration(req, res, generation.summarize, 'summarization') },
    '/generate': { method: 'POST', run: (req, res) => handleGeneration(req, res, generation.generate, 'text2text-generation') },
    '/health': { method: 'GET', run: async () => health() },
  };
  // The routes this service answers, for a 404's message.
  const served = [classify && 'POST /classify', qa && 'POST /qa', summarize && 'POST /summarize', generate && 'POST /generate', 'GET /health'].filter(Boolean);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const route = Object.prototype.hasOwnProperty.call(routes, path) ? routes[path] : undefined;
    if (!route) throw new HttpError(404, 'not_found', `no route ${truncate(path, 100)}: the routes are ${served.join(', ')}`);
    if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('Allow', route.method === 'GET' ? 'GET, HEAD' : route.method);
      throw new HttpError(405, 'method_not_allowed', `${path} takes ${route.method}, not ${truncate(String(req.method), 20)}`);
    }
    if (closing && path !== '/health') throw unavailable('the service is shutting down');
    const out = await route.run(req, res);
    if (out !== STREAMED) send(res, 200, out);
  }

  async function handleGeneration(req: IncomingMessage, res: ServerResponse, route: GenerationRoute | undefined, task: string): Promise<unknown> {
    if (!route) throw new HttpError(404, 'not_found', `this service has no ${task} model: the routes are ${served.join(', ')}`);
    return route.handle(await readJson(req, maxBodyBytes, bodies.signal), res);
  }

  async function handleClassify(req: IncomingMessage): Promise<unknown> {
    if (!classify) throw new HttpError(404, 'not_found', `this service has no text-classification model: the routes are ${served.join(', ')}`);
    const body = await readJson(req, maxBodyBytes, bodies.signal);
    const { items, topK, single } = classifyRequest(body, { maxTextChars, maxInputs }, numLabels);
    const batch = items.map((input) => ({ input, topK }));
    let results: Array<ClassificationResult | ClassificationResult[]>;
    if (classifyBatcher) results = await Promise.all(batch.map((x) => classifyBatcher.submit(x)));
    else results = await unbatched.classify.run(batch, runClassify);
    counters.classifyOk++;
    return single ? results[0] : results;
  }

  async function handleQA(req: IncomingMessage): Promise<unknown> {
    if (!qa || !qaInfo) throw new HttpError(404, 'not_found', `this service has no question-answering model: the routes are ${served.join(', ')}`);
    const body = await readJson(req, maxBodyBytes, bodies.signal);
    const input = qaRequest(body, maxTextChars);
    let windows: QuestionContextWindow[];
    try {
      windows = await oneAtATime(() => {
        // Queued behind others when close() began: the request could not run any more.
        if (closing) throw unavailable();
        return qa.tokenizer.encodeQuestionContext(input.question, input.context, qaWindowOptions(QA, qaInfo.maxLength));
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
        ...Object.fromEntries(Object.entries(generation).flatMap(([k, r]) => (r ? [[k, { route: `POST ${r.path}`, ...r.info, disposed: r.pipe.model.disposed }]] : []))),
      },
      batching: batching ? { maxBatch: batching.maxBatch, windowMs: batching.windowMs } : false,
      limits: { maxTextChars, maxContextTokens, maxBodyBytes, maxInputs, ...(summarize || generate ? { maxGenerateLength, maxBeams } : {}) },
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
      ...(generation.summarize ? { summarize: generation.summarize.stats() } : {}),
      ...(generation.generate ? { generate: generation.generate.stats() } : {}),
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
    if (closing) throw unavailable('the service was closed');
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
      const reason = unavailable();
      classifyBatcher?.close(reason);
      qaBatcher?.close(reason);
      generation.summarize?.close(reason);
      generation.generate?.close(reason);
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
        // One model behind both routes: disposing it twice is a no-op.
        summarize?.dispose();
        generate?.dispose();
      }
      const late = unavailable(`the service shut down before the request finished (close grace ${closeGraceMs} ms)`);
      // Streams have sent their 200: an error event ends them.
      generation.summarize?.endStreams(late);
      generation.generate?.endStreams(late);
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

/**
 * The service answers questions as the pipeline does by default (QA_DEFAULTS: 384-token windows, stride 128,
 * the best answer of up to 15 tokens): the same options for windowing and scoring.
 */
const QA: QAOptions = {};

/** close(): how long the last answers have to leave before every connection is cut. */
const CLOSE_FLUSH_MS = 250;

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

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
