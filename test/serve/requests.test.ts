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
  // The Hugging Face Inference API's: one text (one result, as "text"), one pair, a batch; top_k in "parameters".
  t.deepEqual(classifyRequest({ inputs: 'good' }, LIMITS, 2), { items: ['good'], topK: undefined, single: true });
  t.deepEqual(classifyRequest({ inputs: { text: 'a', text_pair: 'b' } }, LIMITS, 2), { items: [['a', 'b']], topK: undefined, single: true });
  t.deepEqual(classifyRequest({ inputs: ['a', 'b'], parameters: { top_k: 1 }, options: { use_cache: false } }, LIMITS, 2), { items: ['a', 'b'], topK: 1, single: false });
  t.deepEqual(classifyRequest({ text: 'a', parameters: {} }, LIMITS, 2), { items: ['a'], topK: undefined, single: true });
  t.deepEqual(qaRequest({ inputs: { question: 'q', context: 'c' } }, 10), { question: 'q', context: 'c' });
  t.deepEqual(qaRequest({ question: 'q', context: 'c', options: {} }, 10), { question: 'q', context: 'c' });
  t.deepEqual(classifyRequest({ text: 'a', textPair: 'b', topK: 5 }, LIMITS, 2), { items: [['a', 'b']], topK: 2, single: true });
  t.deepEqual(classifyRequest({ inputs: ['a', ['b', 'c'], { text: 'd' }, { text: 'e', textPair: 'f' }].slice(0, 3), topK: 1 }, LIMITS, 2), {
    items: ['a', ['b', 'c'], 'd'],
    topK: 1,
    single: false,
  });
});

test('classifyRequest and qaRequest: every bad body is an HttpError naming the field', (t) => {
  const cases: Array<[string, () => unknown, number, string, RegExp]> = [
    ['neither', () => classifyRequest({}, LIMITS, 2), 400, 'invalid_request', /the body has no "text" and no "inputs": send \{ "text"/],
    ['both', () => classifyRequest({ text: 'a', inputs: ['b'] }, LIMITS, 2), 400, 'invalid_request', /both "text" and "inputs": send one/],
    ['txt (issue 15)', () => classifyRequest({ txt: 'x' }, LIMITS, 2), 400, 'invalid_request', /unknown field "txt" in the \/classify body \(did you mean "text"\?\); the fields are "text", "textPair", "inputs"/],
    ['textpair', () => classifyRequest({ text: 'a', textpair: 'b' }, LIMITS, 2), 400, 'invalid_request', /unknown field "textpair".*did you mean "textPair"/],
    ['item txt', () => classifyRequest({ inputs: [{ txt: 'a' }] }, LIMITS, 2), 400, 'invalid_request', /unknown field "txt" in inputs\[0\].*did you mean "text"/],
    ['inputs with textPair', () => classifyRequest({ inputs: 'a', textPair: 'b' }, LIMITS, 2), 400, 'invalid_request', /"textPair" goes with "text"/],
    ['inputs a number', () => classifyRequest({ inputs: 3 }, LIMITS, 2), 400, 'invalid_request', /inputs must be a string.*not a number/],
    ['both pair spellings', () => classifyRequest({ inputs: { text: 'a', textPair: 'b', text_pair: 'b' } }, LIMITS, 2), 400, 'invalid_request', /same field/],
    ['parameters not an object', () => classifyRequest({ text: 'a', parameters: 2 }, LIMITS, 2), 400, 'invalid_request', /"parameters" must be an object, not a number/],
    ['parameters topk', () => classifyRequest({ text: 'a', parameters: { topk: 2 } }, LIMITS, 2), 400, 'invalid_request', /unknown field "topk" in "parameters" \(did you mean "top_k"\?\)/],
    ['top_k 0', () => classifyRequest({ inputs: 'a', parameters: { top_k: 0 } }, LIMITS, 2), 400, 'invalid_request', /"parameters\.top_k" must be a positive integer/],
    ['topK twice', () => classifyRequest({ inputs: 'a', topK: 1, parameters: { top_k: 1 } }, LIMITS, 2), 400, 'invalid_request', /same option: send one/],
    ['options an array', () => classifyRequest({ text: 'a', options: [] }, LIMITS, 2), 400, 'invalid_request', /"options" must be an object, not an array/],
    ['qa questoin', () => qaRequest({ questoin: 'q', context: 'c' }, 10), 400, 'invalid_request', /unknown field "questoin" in the \/qa body \(did you mean "question"\?\)/],
    ['qa inputs and question', () => qaRequest({ inputs: { question: 'q', context: 'c' }, question: 'q' }, 10), 400, 'invalid_request', /"inputs" and "question"\/"context"/],
    ['qa inputs an array', () => qaRequest({ inputs: [{ question: 'q', context: 'c' }] }, 10), 400, 'invalid_request', /"inputs" \(one \{ "question", "context" \} a request\) must be an object, not an array/],
    ['qa inputs.context missing', () => qaRequest({ inputs: { question: 'q' } }, 10), 400, 'invalid_request', /"inputs\.context" must be a non-empty string, not missing/],
    ['qa inputs.contxt', () => qaRequest({ inputs: { question: 'q', contxt: 'c' } }, 10), 400, 'invalid_request', /unknown field "contxt" in "inputs" \(did you mean "context"\?\)/],
    ['topK 0', () => classifyRequest({ text: 'a', topK: 0 }, LIMITS, 2), 400, 'invalid_request', /"topK" must be a positive integer/],
    ['topK string', () => classifyRequest({ text: 'a', topK: '1' }, LIMITS, 2), 400, 'invalid_request', /"topK".*a string/],
    ['text number', () => classifyRequest({ text: 5 }, LIMITS, 2), 400, 'invalid_request', /"text" must be a string, not a number/],
    ['textPair null', () => classifyRequest({ text: 'a', textPair: null }, LIMITS, 2), 400, 'invalid_request', /"textPair".*null/],
    ['text too long', () => classifyRequest({ text: 'x'.repeat(11) }, LIMITS, 2), 413, 'text_too_long', /"text" has 11 characters; the limit is 10/],
    ['inputs empty', () => classifyRequest({ inputs: [] }, LIMITS, 2), 400, 'invalid_request', /"inputs" must be a non-empty array/],
    ['inputs object without text', () => classifyRequest({ inputs: {} }, LIMITS, 2), 400, 'invalid_request', /inputs\.text must be a string, not missing/],
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
  // A field the service does not read is refused, not ignored (issue 15: a misspelt one changed the answer silently).
  t.throws(() => qaRequest({ question: 'q', context: 'c', extra: 1 }, 10), { instanceOf: HttpError, message: /unknown field "extra"/ });
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
