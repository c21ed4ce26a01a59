/**
 * Reading and checking a request: the body as a JSON object within its byte limit, then the fields of a
 * /classify or /qa body within the text limits. Every mistake is an HttpError (400 or 413) naming the field.
 */
import type { IncomingMessage } from 'node:http';
import type { ClassificationBatchItem, QAInput } from '../model/pipelines';
import { ClientGone, HttpError, unavailable } from './http-error';

/**
 * Reads the body (at most `limit` bytes: 413 past it) and parses it as a JSON object (400 otherwise).
 * `signal` (the service closing) stops the reading with a 503.
 */
export function readJson(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<Record<string, any>> {
  const shutdown = () => unavailable('the service is shutting down; the rest of the body was not read');
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

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string`;
  return `a ${typeof v}`;
}

export interface ClassifyRequest {
  items: ClassificationBatchItem[];
  /** The labels each item wants (capped at the model's), undefined: the best one as an object. */
  topK: number | undefined;
  /** The body was one "text" (answered with one result), not "inputs". */
  single: boolean;
}

/** A /classify body: { text, textPair?, topK? } or { inputs: [...], topK? }. */
export function classifyRequest(body: Record<string, any>, limits: { maxTextChars: number; maxInputs: number }, numLabels: number): ClassifyRequest {
  const topK = body.topK === undefined ? undefined : optionalTopK(body.topK, numLabels);
  const hasText = body.text !== undefined;
  const hasInputs = body.inputs !== undefined;
  if (hasText === hasInputs)
    throw new HttpError(400, 'invalid_request', 'the body must have either "text" (with an optional "textPair") or "inputs", not both');
  if (hasText) return { items: [classificationItem(body, 'body', limits.maxTextChars)], topK, single: true };
  if (!Array.isArray(body.inputs) || body.inputs.length === 0)
    throw new HttpError(400, 'invalid_request', `"inputs" must be a non-empty array, not ${describe(body.inputs)}`);
  if (body.inputs.length > limits.maxInputs)
    throw new HttpError(413, 'too_many_inputs', `"inputs" has ${body.inputs.length} items; the limit is ${limits.maxInputs}`);
  const items = body.inputs.map((x: unknown, i: number) => classificationItem(x, `inputs[${i}]`, limits.maxTextChars));
  return { items, topK, single: false };
}

/** A /qa body: { question, context }, both non-blank strings within maxTextChars. */
export function qaRequest(body: Record<string, any>, maxTextChars: number): QAInput {
  for (const k of ['question', 'context'] as const) {
    if (typeof body[k] !== 'string' || body[k].trim() === '')
      throw new HttpError(400, 'invalid_request', `"${k}" must be a non-empty string, not ${typeof body[k] === 'string' ? 'a blank one' : describe(body[k])}`);
    if (body[k].length > maxTextChars)
      throw new HttpError(413, 'text_too_long', `"${k}" has ${body[k].length} characters; the limit is ${maxTextChars}`);
  }
  return { question: body.question, context: body.context };
}
