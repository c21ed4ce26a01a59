/**
 * Reading and checking a request: the body as a JSON object within its byte limit, then the fields of a
 * /classify or /qa body within the text limits (/summarize and /generate: generation-requests.ts). Every
 * mistake is an HttpError (400 or 413) naming the field.
 */
import type { IncomingMessage } from 'node:http';
import type { ClassificationBatchItem, QAInput } from '../model/pipelines';
import { didYouMean } from '../runtime/validate';
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

/** The fields of an item object (`{ text, textPair }`); `text_pair` is HF's spelling of textPair. */
const ITEM_FIELDS = ['text', 'textPair', 'text_pair'];

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
    const field = (k: string) => (where === 'body' ? `"${k}"` : `${where}.${k}`);
    if (where !== 'body') knownFields(o, ITEM_FIELDS, `${where} (an item: { text, textPair })`);
    if (o.textPair !== undefined && o.text_pair !== undefined) throw new HttpError(400, 'invalid_request', `${field('textPair')} and ${field('text_pair')} are the same field: send one`);
    const text = check(o.text, field('text'));
    const pairKey = o.text_pair !== undefined ? 'text_pair' : 'textPair';
    if (o[pairKey] === undefined) return text;
    return [text, check(o[pairKey], field(pairKey))];
  }
  throw new HttpError(400, 'invalid_request', `${where} must be a string, a [text, textPair] pair or { text, textPair }, not ${describe(x)}`);
}

function optionalTopK(v: unknown, numLabels: number, name = '"topK"'): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new HttpError(400, 'invalid_request', `${name} must be a positive integer, not ${describe(v)}`);
  return Math.min(v, numLabels);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string`;
  return `a ${typeof v}`;
}

export function objectField(v: unknown, name: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'invalid_request', `${name} must be an object, not ${describe(v)}`);
}

/**
 * Refuses a field the route does not read, naming it and the closest known one: ignored, a misspelt field
 * would change the answer without a word (`textpair` would classify the text alone). An "options" field (the
 * Inference API's) must be an object.
 */
export function knownFields(o: Record<string, unknown>, known: readonly string[], what: string): void {
  if (o.options !== undefined && known.includes('options')) objectField(o.options, '"options"');
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const hint = didYouMean(k, known);
    throw new HttpError(400, 'invalid_request', `unknown field "${k}" in ${what}${hint ? ` (did you mean "${hint}"?)` : ''}; the fields are ${known.map((f) => `"${f}"`).join(', ')}`);
  }
}

/**
 * The fields of a /classify body. `inputs`, `parameters` ({ top_k }) and `options` are the Hugging Face
 * Inference API's; `options` ({ use_cache, wait_for_model }) is about the hosted service and changes no answer
 * here, so it is accepted and not read.
 */
const CLASSIFY_FIELDS = ['text', 'textPair', 'inputs', 'topK', 'parameters', 'options'];
const CLASSIFY_SHAPES = '{ "text", "textPair"?, "topK"? } or { "inputs": a text, { text, textPair } or an array of them, "topK"? }';

export interface ClassifyRequest {
  items: ClassificationBatchItem[];
  /** The labels each item wants (capped at the model's), undefined: the best one as an object. */
  topK: number | undefined;
  /** The body was one input ("text", or "inputs" a string or one { text, textPair }), answered with one result. */
  single: boolean;
}

/**
 * A /classify body: { text, textPair?, topK? }, or the Inference API's { inputs, parameters?: { top_k } }
 * where inputs is one text, one { text, textPair } (answered with one result, as "text" is) or an array of
 * items (one result each).
 */
export function classifyRequest(body: Record<string, any>, limits: { maxTextChars: number; maxInputs: number }, numLabels: number): ClassifyRequest {
  knownFields(body, CLASSIFY_FIELDS, 'the /classify body');
  const topK = classifyTopK(body, numLabels);
  const hasText = body.text !== undefined;
  const hasInputs = body.inputs !== undefined;
  if (hasText && hasInputs) throw new HttpError(400, 'invalid_request', `the body has both "text" and "inputs": send one, as ${CLASSIFY_SHAPES}`);
  if (!hasText && !hasInputs) throw new HttpError(400, 'invalid_request', `the body has no "text" and no "inputs": send ${CLASSIFY_SHAPES}`);
  if (hasText) return { items: [classificationItem(body, 'body', limits.maxTextChars)], topK, single: true };
  if (body.textPair !== undefined) throw new HttpError(400, 'invalid_request', '"textPair" goes with "text"; with "inputs", send { "inputs": { "text", "textPair" } }');
  if (!Array.isArray(body.inputs)) return { items: [classificationItem(body.inputs, 'inputs', limits.maxTextChars)], topK, single: true };
  if (body.inputs.length === 0) throw new HttpError(400, 'invalid_request', '"inputs" must be a non-empty array (or one text, or one { text, textPair }), not an empty one');
  if (body.inputs.length > limits.maxInputs)
    throw new HttpError(413, 'too_many_inputs', `"inputs" has ${body.inputs.length} items; the limit is ${limits.maxInputs}`);
  const items = body.inputs.map((x: unknown, i: number) => classificationItem(x, `inputs[${i}]`, limits.maxTextChars));
  return { items, topK, single: false };
}

/** "topK", or the Inference API's "parameters": { "top_k" } (not both). */
function classifyTopK(body: Record<string, any>, numLabels: number): number | undefined {
  if (body.parameters === undefined) return body.topK === undefined ? undefined : optionalTopK(body.topK, numLabels);
  objectField(body.parameters, '"parameters"');
  knownFields(body.parameters, ['top_k'], '"parameters"');
  if (body.parameters.top_k === undefined) return body.topK === undefined ? undefined : optionalTopK(body.topK, numLabels);
  if (body.topK !== undefined) throw new HttpError(400, 'invalid_request', '"topK" and "parameters.top_k" are the same option: send one');
  return optionalTopK(body.parameters.top_k, numLabels, '"parameters.top_k"');
}

/**
 * A /qa body: { question, context }, or the Inference API's { inputs: { question, context } }; both non-blank
 * strings within maxTextChars. One question a request.
 */
export function qaRequest(body: Record<string, any>, maxTextChars: number): QAInput {
  knownFields(body, ['question', 'context', 'inputs', 'options'], 'the /qa body');
  let fields = body;
  let where = '';
  if (body.inputs !== undefined) {
    if (body.question !== undefined || body.context !== undefined)
      throw new HttpError(400, 'invalid_request', 'the body has "inputs" and "question"/"context": send { "question", "context" } or { "inputs": { "question", "context" } }');
    objectField(body.inputs, '"inputs" (one { "question", "context" } a request)');
    knownFields(body.inputs, ['question', 'context'], '"inputs"');
    fields = body.inputs;
    where = 'inputs.';
  }
  for (const k of ['question', 'context'] as const) {
    if (typeof fields[k] !== 'string' || fields[k].trim() === '')
      throw new HttpError(400, 'invalid_request', `"${where}${k}" must be a non-empty string, not ${typeof fields[k] === 'string' ? 'a blank one' : describe(fields[k])}`);
    if (fields[k].length > maxTextChars)
      throw new HttpError(413, 'text_too_long', `"${where}${k}" has ${fields[k].length} characters; the limit is ${maxTextChars}`);
  }
  return { question: fields.question, context: fields.context };
}
