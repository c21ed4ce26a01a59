/**
 * Request checks of the service (lib/serve/requests.ts, lib/serve/http-error.ts), no model and no socket:
 * each bad /classify or /qa body is an HttpError with the status and code the service answers, naming the
 * field; good bodies come out as the pipeline's inputs.
 */
import test from 'ava';
import { HttpError, toHttpError } from '../../lib/serve/http-error';
import { classifyRequest, qaRequest } from '../../lib/serve/requests';
import { BlockpruneError } from '../../lib/runtime/errors';

const LIMITS = { maxTextChars: 10, maxInputs: 3 };

test('classifyRequest: the accepted forms', (t) => {
  t.deepEqual(classifyRequest({ text: 'a' }, LIMITS, 2), { items: ['a'], topK: undefined, single: true });
  t.deepEqual(classifyRequest({ text: 'a', textPair: 'b', topK: 5 }, LIMITS, 2), { items: [['a', 'b']], topK: 2, single: true });
  t.deepEqual(classifyRequest({ inputs: ['a', ['b', 'c'], { text: 'd' }, { text: 'e', textPair: 'f' }].slice(0, 3), topK: 1 }, LIMITS, 2), {
    items: ['a', ['b', 'c'], 'd'],
    topK: 1,
    single: false,
  });
});

test('classifyRequest and qaRequest: every bad body is an HttpError naming the field', (t) => {
  const cases: Array<[string, () => unknown, number, string, RegExp]> = [
    ['neither', () => classifyRequest({}, LIMITS, 2), 400, 'invalid_request', /either "text".*or "inputs"/],
    ['both', () => classifyRequest({ text: 'a', inputs: ['b'] }, LIMITS, 2), 400, 'invalid_request', /not both/],
    ['topK 0', () => classifyRequest({ text: 'a', topK: 0 }, LIMITS, 2), 400, 'invalid_request', /"topK" must be a positive integer/],
    ['topK string', () => classifyRequest({ text: 'a', topK: '1' }, LIMITS, 2), 400, 'invalid_request', /"topK".*a string/],
    ['text number', () => classifyRequest({ text: 5 }, LIMITS, 2), 400, 'invalid_request', /"text" must be a string, not a number/],
    ['textPair null', () => classifyRequest({ text: 'a', textPair: null }, LIMITS, 2), 400, 'invalid_request', /"textPair".*null/],
    ['text too long', () => classifyRequest({ text: 'x'.repeat(11) }, LIMITS, 2), 413, 'text_too_long', /"text" has 11 characters; the limit is 10/],
    ['inputs empty', () => classifyRequest({ inputs: [] }, LIMITS, 2), 400, 'invalid_request', /"inputs" must be a non-empty array/],
    ['inputs object', () => classifyRequest({ inputs: {} }, LIMITS, 2), 400, 'invalid_request', /not a object/],
    ['inputs too many', () => classifyRequest({ inputs: ['a', 'b', 'c', 'd'] }, LIMITS, 2), 413, 'too_many_inputs', /4 items; the limit is 3/],
    ['inputs[1] triple', () => classifyRequest({ inputs: ['a', ['b', 'c', 'd']] }, LIMITS, 2), 400, 'invalid_request', /inputs\[1\] must be/],
    ['inputs[0][1] number', () => classifyRequest({ inputs: [['a', 1]] }, LIMITS, 2), 400, 'invalid_request', /inputs\[0\]\[1\] must be a string/],
    ['inputs[2].text too long', () => classifyRequest({ inputs: ['a', 'b', { text: 'y'.repeat(12) }] }, LIMITS, 2), 413, 'text_too_long', /inputs\[2\]\.text has 12/],
    ['inputs[0] null', () => classifyRequest({ inputs: [null] }, LIMITS, 2), 400, 'invalid_request', /inputs\[0\].*not null/],
    ['question missing', () => qaRequest({ context: 'c' }, 10), 400, 'invalid_request', /"question" must be a non-empty string, not missing/],
    ['question blank', () => qaRequest({ question: '  ', context: 'c' }, 10), 400, 'invalid_request', /"question".*a blank one/],
    ['context array', () => qaRequest({ question: 'q', context: ['c'] }, 10), 400, 'invalid_request', /"context".*an array/],
    ['context too long', () => qaRequest({ question: 'q', context: 'z'.repeat(11) }, 10), 413, 'text_too_long', /"context" has 11 characters/],
  ];
  for (const [name, run, status, code, message] of cases) {
    const e = t.throws(run, { instanceOf: HttpError }, name) as HttpError;
    t.is(e.status, status, name);
    t.is(e.code, code, name);
    t.regex(e.message, message, name);
  }
  t.deepEqual(qaRequest({ question: 'q', context: 'c', extra: 1 }, 10), { question: 'q', context: 'c' });
});

test('toHttpError: disposed model 503, bad argument 400, anything else 500', (t) => {
  const same = new HttpError(418, 'teapot', 'x');
  t.is(toHttpError(same), same);
  const cases: Array<[unknown, number, string]> = [
    [new BlockpruneError('E_DISPOSED', 'gone'), 503, 'unavailable'],
    [new BlockpruneError('E_INVALID_ARG', 'bad'), 400, 'invalid_request'],
    [new RangeError('range'), 400, 'invalid_request'],
    [new Error('boom'), 500, 'internal'],
    ['a string', 500, 'internal'],
  ];
  for (const [err, status, code] of cases) {
    const h = toHttpError(err);
    t.is(h.status, status, String(err));
    t.is(h.code, code, String(err));
  }
});
