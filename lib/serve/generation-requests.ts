/**
 * A /summarize or /generate body (issue 18), as the Hugging Face Inference API's summarization and
 * text2text-generation tasks take it: { "inputs": a text or an array of texts, "parameters"?: { max_length,
 * min_length, num_beams, length_penalty, no_repeat_ngram_size, early_stopping }, "options"? }, or { "text" }
 * with the same "parameters"; "stream": true asks for Server-Sent Events (one text). Every mistake is an
 * HttpError (400 or 413) naming the field and, for a limit, the service's option that sets it.
 */
import { TASK_PARAMS } from '../model/generation-pipeline';
import type { GenerateOptions } from '../model/seq2seq';
import { HttpError } from './http-error';
import { describe, knownFields, objectField } from './requests';

/** The service's bounds on one request's work (server-options.ts) and the model's defaults under them. */
export interface GenerationLimits {
  maxTextChars: number;
  maxInputs: number;
  /** Largest max_length (tokens, the decoder start token included, as transformers counts). */
  maxGenerateLength: number;
  maxBeams: number;
  /** What the pipeline uses when a request sets none (config.json's task_specific_params, config, 4.4.2's). */
  defaults: { maxLength: number; numBeams: number };
}

export interface GenerationRequest {
  texts: string[];
  /** The request's own generation options (the pipeline fills in the rest from its defaults). */
  options: GenerateOptions;
  /** The options as a canonical string: requests batch together only when theirs are equal. */
  key: string;
  stream: boolean;
}

const FIELDS = ['text', 'inputs', 'parameters', 'options', 'stream'];
const SHAPES = '{ "inputs": a text or an array of texts, "parameters"? } or { "text", "parameters"? }';

function text(x: unknown, name: string, maxChars: number): string {
  if (typeof x !== 'string' || x.trim() === '')
    throw new HttpError(400, 'invalid_request', `${name} must be a non-empty string, not ${typeof x === 'string' ? 'a blank one' : describe(x)}`);
  if (x.length > maxChars) throw new HttpError(413, 'text_too_long', `${name} has ${x.length} characters; the limit is ${maxChars}`);
  return x;
}

function integerIn(x: unknown, name: string, min: number, max: number, why: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max)
    throw new HttpError(400, 'invalid_request', `"parameters.${name}" must be an integer in [${min}, ${max}]${why}, not ${typeof x === 'number' ? x : describe(x)}`);
  return x;
}

/** "parameters": each of transformers' names checked against its range and the service's limits. */
function generationParameters(p: Record<string, unknown>, limits: GenerationLimits, stream: boolean): GenerateOptions {
  const hf = Object.keys(TASK_PARAMS);
  knownFields(p, hf, '"parameters"');
  const maxLength = p.max_length === undefined ? undefined : integerIn(p.max_length, 'max_length', 1, limits.maxGenerateLength, " (the service's maxGenerateLength)");
  const ceiling = maxLength ?? limits.defaults.maxLength;
  const checks: Record<string, (x: unknown) => unknown> = {
    max_length: () => maxLength,
    min_length: (x) => integerIn(x, 'min_length', 0, ceiling, maxLength === undefined ? ` (the model's default max_length)` : ' (max_length)'),
    // A stream is greedy search: beams would be a different answer than the one streamed.
    num_beams: (x) => integerIn(x, 'num_beams', 1, stream ? 1 : limits.maxBeams, stream ? ' (a stream is greedy search)' : " (the service's maxBeams)"),
    no_repeat_ngram_size: (x) => integerIn(x, 'no_repeat_ngram_size', 0, limits.maxGenerateLength, " (the service's maxGenerateLength)"),
    length_penalty: (x) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new HttpError(400, 'invalid_request', `"parameters.length_penalty" must be a finite number, not ${describe(x)}`);
      return x;
    },
    early_stopping: (x) => {
      if (typeof x !== 'boolean') throw new HttpError(400, 'invalid_request', `"parameters.early_stopping" must be true or false, not ${describe(x)}`);
      return x;
    },
  };
  // In TASK_PARAMS' order, so that equal options give equal keys.
  const out: Record<string, unknown> = {};
  for (const k of hf) if (p[k] !== undefined) out[TASK_PARAMS[k]] = checks[k](p[k]);
  return out as GenerateOptions;
}

/** A /summarize or /generate body, checked whole before any work. */
export function generationRequest(body: Record<string, any>, limits: GenerationLimits, route: string): GenerationRequest {
  knownFields(body, FIELDS, `the ${route} body`);
  if (body.stream !== undefined && typeof body.stream !== 'boolean') throw new HttpError(400, 'invalid_request', `"stream" must be true or false, not ${describe(body.stream)}`);
  const stream = body.stream === true;
  if (body.parameters !== undefined) objectField(body.parameters, '"parameters"');
  const options = generationParameters(body.parameters ?? {}, limits, stream);
  const hasText = body.text !== undefined;
  if (hasText === (body.inputs !== undefined))
    throw new HttpError(400, 'invalid_request', `the body has ${hasText ? 'both "text" and "inputs": send one' : 'no "text" and no "inputs": send one'}, as ${SHAPES}`);
  let texts: string[];
  if (hasText) texts = [text(body.text, '"text"', limits.maxTextChars)];
  else if (!Array.isArray(body.inputs)) texts = [text(body.inputs, '"inputs"', limits.maxTextChars)];
  else {
    if (body.inputs.length === 0) throw new HttpError(400, 'invalid_request', '"inputs" must be a text or a non-empty array of texts, not an empty array');
    if (body.inputs.length > limits.maxInputs) throw new HttpError(413, 'too_many_inputs', `"inputs" has ${body.inputs.length} items; the limit is ${limits.maxInputs}`);
    if (stream) throw new HttpError(400, 'invalid_request', '"stream": true takes one text ("text" or "inputs" a string), not an array');
    texts = body.inputs.map((x: unknown, i: number) => text(x, `inputs[${i}]`, limits.maxTextChars));
  }
  return { texts, options, key: JSON.stringify(options), stream };
}
