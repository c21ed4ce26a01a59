/**
 * POST /summarize and POST /generate (issue 18): a TextGenerationPipeline behind the service's batching, and
 * its Server-Sent Events stream. One GenerationRoute a pipeline; routes over the same model share a lane, so
 * the model runs one job at a time (a batch, or a stream from its first step to its last) and no job waits on
 * the model's lock in a worker thread.
 *
 * A batch groups its requests by generation options: each group is one pipeline call (one generate() when the
 * pipeline's batchSize >= maxBatch), since generate() takes one set of options for all its rows.
 */
import type { ServerResponse } from 'node:http';
import { taskDefaults, type GenerationResult, type TextGenerationPipeline } from '../model/generation-pipeline';
import type { GenerateOptions } from '../model/seq2seq';
import * as v from '../runtime/validate';
import { BatcherStats, DynamicBatcher, newUnbatched } from './batcher';
import { HttpError, toHttpError, unavailable } from './http-error';
import { generationRequest, type GenerationLimits } from './generation-requests';

/** What a route handler returns when it has answered by itself (a stream), so that nothing else is sent. */
export const STREAMED = Symbol('streamed');

export interface GenerationRouteStats extends BatcherStats {
  /** Requests answered 200 (streams that ran to their end included). */
  ok: number;
  /** Pipeline calls: one generate() each when the pipeline's batchSize >= maxBatch. */
  generateCalls: number;
  /** Streams started, those whose client left before the end, and those running now. */
  streams: number;
  streamsAborted: number;
  streamsRunning: number;
}

interface Item {
  text: string;
  options: GenerateOptions;
  key: string;
}

/** Runs jobs one after another, in order: a model's lane. */
export function lane(): <T>(job: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(job: () => Promise<T>): Promise<T> => {
    const run = tail.then(job);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** The generation options a pipeline uses when a request sets none: task_specific_params, config.json, 4.4.2's. */
export function generationDefaults(pipe: TextGenerationPipeline): { maxLength: number; numBeams: number; minLength: number } {
  const config = JSON.parse(pipe.model.info.config) as Record<string, unknown>;
  const task = taskDefaults(config, pipe.task).options;
  const pick = (ours: keyof GenerateOptions, hf: string, fallback: number) => {
    const x = task[ours] ?? config[hf];
    return typeof x === 'number' ? x : fallback;
  };
  return { maxLength: pick('maxLength', 'max_length', 20), numBeams: pick('numBeams', 'num_beams', 1), minLength: pick('minLength', 'min_length', 0) };
}

export interface GenerationRouteSettings {
  batching: { maxBatch: number; windowMs: number; idleStart?: boolean } | false;
  limits: Omit<GenerationLimits, 'defaults'>;
  /** The lane of the pipeline's model (shared with the other route over the same model). */
  lane: <T>(job: () => Promise<T>) => Promise<T>;
  /** Counts a response the route sent itself (a stream's 200). */
  count(status: number): void;
}

export class GenerationRoute {
  readonly path: string;
  readonly pipe: TextGenerationPipeline;
  /** Read once: a disposed model can no longer answer these. */
  readonly info: Record<string, unknown>;
  readonly #limits: GenerationLimits;
  readonly #key: 'summary_text' | 'generated_text';
  readonly #settings: GenerationRouteSettings;
  readonly #batcher: DynamicBatcher<Item, GenerationResult> | undefined;
  readonly #unbatched = newUnbatched();
  readonly #streams = new Set<ServerResponse>();
  #counts = { ok: 0, generateCalls: 0, streams: 0, streamsAborted: 0 };
  #closed = false;

  constructor(path: string, pipe: TextGenerationPipeline, settings: GenerationRouteSettings) {
    this.path = path;
    this.pipe = pipe;
    this.#settings = settings;
    this.#key = pipe.task === 'summarization' ? 'summary_text' : 'generated_text';
    const defaults = generationDefaults(pipe);
    const { maxGenerateLength, maxBeams } = settings.limits;
    // The model's own defaults must be within the limits, or a request that sets nothing would pass them.
    if (defaults.maxLength > maxGenerateLength)
      throw v.invalidParameterError('options.maxGenerateLength', `at least the ${pipe.task} model's default max_length (${defaults.maxLength})`, maxGenerateLength, 'range');
    if (defaults.numBeams > maxBeams) throw v.invalidParameterError('options.maxBeams', `at least the ${pipe.task} model's default num_beams (${defaults.numBeams})`, maxBeams, 'range');
    this.#limits = { ...settings.limits, defaults };
    const i = pipe.model.info;
    this.info = {
      task: pipe.task,
      modelType: i.modelType,
      architecture: i.architecture,
      numParameters: i.numParameters,
      dModel: i.dModel,
      encoderLayers: i.encoderLayers,
      decoderLayers: i.decoderLayers,
      defaults,
    };
    this.#batcher = settings.batching ? new DynamicBatcher((items: Item[]) => this.#run(items), settings.batching) : undefined;
  }

  /** Answers a parsed body: the results (one per input, as the Inference API: always an array), or STREAMED. */
  async handle(body: Record<string, any>, res: ServerResponse): Promise<unknown> {
    const r = generationRequest(body, this.#limits, this.path);
    if (r.stream) return this.#stream(r.texts[0], r.options, res);
    const items = r.texts.map((text) => ({ text, options: r.options, key: r.key }));
    const b = this.#batcher;
    const results = b ? await Promise.all(items.map((x) => b.submit(x))) : await this.#unbatched.run(items, (xs) => this.#run(xs));
    this.#counts.ok++;
    return results;
  }

  stats(): GenerationRouteStats {
    return { ...(this.#batcher ? this.#batcher.stats() : this.#unbatched.stats()), ...this.#counts, streamsRunning: this.#streams.size };
  }

  /** close() began: waiting requests are rejected with `reason`; batches and streams running go on. */
  close(reason: unknown): void {
    this.#closed = true;
    this.#batcher?.close(reason);
  }

  /** After close()'s grace: each stream still open gets an error event and its end (its generation drains). */
  endStreams(reason: HttpError): void {
    for (const res of this.#streams) if (!res.writableEnded) res.end(event({ error: reason.code, message: reason.message }, 'error'));
  }

  /** One batch, on the model's lane: a pipeline call per set of options, each input given its own result. */
  #run(items: Item[]): Promise<GenerationResult[]> {
    return this.#settings.lane(async () => {
      const groups = new Map<string, number[]>();
      items.forEach((x, i) => groups.set(x.key, [...(groups.get(x.key) ?? []), i]));
      const out: GenerationResult[] = new Array(items.length);
      for (const idx of groups.values()) {
        this.#counts.generateCalls++;
        const results = (await this.pipe(
          idx.map((i) => items[i].text),
          items[idx[0]].options,
        )) as GenerationResult[];
        idx.forEach((i, k) => (out[i] = results[k]));
      }
      return out;
    });
  }

  /**
   * Server-Sent Events: the 200 and its headers once the first piece is ready (an error before it is a plain
   * coded response), then `data: {"token"}` a piece and `data: {"done": true, summary_text | generated_text}`.
   * A client that leaves gets nothing more and its generation stops (leaving the pieces' loop stops the native
   * loop within a step or two); the lane is held until it has, so that the next job finds the model free.
   */
  async #stream(input: string, options: GenerateOptions, res: ServerResponse): Promise<typeof STREAMED> {
    this.#counts.streams++;
    let gone = false;
    const onClose = () => {
      if (!res.writableEnded) gone = true;
    };
    res.once('close', onClose);
    this.#streams.add(res);
    try {
      await this.#settings.lane(async () => {
        // Queued behind other jobs when close() began: it could not run any more.
        if (this.#closed) throw unavailable();
        const pieces = this.pipe.stream(input, options);
        let text = '';
        let started = false;
        try {
          for await (const piece of pieces) {
            if (gone || res.writableEnded) break;
            text += piece;
            if (!started && !gone && !res.writableEnded) {
              started = true;
              res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' });
              this.#settings.count(200);
            }
            if (!gone && !res.writableEnded) res.write(event({ token: piece }));
          }
        } catch (e) {
          // Before the first piece: the handler's coded response; after it: an error event ends the stream.
          if (!started) throw e;
          const h = toHttpError(e);
          if (!res.writableEnded) res.end(event({ error: h.code, message: h.message }, 'error'));
          return;
        }
        if (gone || res.writableEnded) return;
        if (!started) {
          // A generation with no piece of text (only special tokens): the empty stream's events.
          res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' });
          this.#settings.count(200);
        }
        res.end(event({ done: true, [this.#key]: text }));
        this.#counts.ok++;
      });
    } finally {
      if (gone) this.#counts.streamsAborted++;
      res.off('close', onClose);
      this.#streams.delete(res);
    }
    return STREAMED;
  }
}

function event(payload: unknown, name?: string): string {
  return `${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(payload)}\n\n`;
}
