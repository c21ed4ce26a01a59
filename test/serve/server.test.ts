/**
 * The HTTP inference service (lib/serve/server.ts) on the tiny fixtures: answers equal the pipelines' own,
 * concurrent requests share batches and each gets its own answer, bad requests get 4xx JSON errors and
 * leave the service up, and close() with requests in flight answers them 503.
 *
 * The fixtures have a 1,024-token vocabulary, so the tokenizer is bert-base-uncased's vocab.txt cut to
 * 1,024 entries: the special tokens, the ASCII characters alone and as "##" pieces, then the most frequent
 * words, written to a temp dir and passed as the pipeline's `tokenizer` option.
 */
import type { ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pipeline, QuestionAnsweringPipeline, TextClassificationPipeline } from '../../lib/model/pipelines';
import { createInferenceServer, InferenceServer } from '../../lib/serve/server';
import type { InferenceServerOptions } from '../../lib/serve/server-options';
import { writeVocab } from '../../lib/tokenizer/vocab';
import { call, cutVocab, shared, tempDir, withShared } from '../helpers';

const SENTENCES = [
  "it 's a charming and often affecting journey .",
  'unflinchingly bleak and desperate',
  'allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker .',
  "the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales .",
  "it 's slow -- very , very slow .",
  'although laced with humor and a few fanciful touches , the film is a refreshingly serious look at young women .',
  'a sometimes tedious film .',
  "or doing last year 's taxes with your ex-wife .",
  "you do n't have to know about music to appreciate the film 's easygoing blend of comedy and romance .",
  "in exactly 89 minutes , most of which passed as slowly as if i 'd been sitting naked on an igloo , formula 51 sank from quirky to jerky to utter turkey .",
  'the mesmerizing performances of the leads keep the film grounded and keep the audience riveted .',
  'it takes a strange kind of laziness to waste the talents of robert forster , anne meara , eugene levy , and reginald veljohnson all in the same movie .',
  '... the film suffers from a lack of humor ( something needed to balance out the violence ) ...',
  "we root for ( clara and paul ) , even like them , though perhaps it 's an emotion closer to pity .",
  'even horror fans will most likely not find what they seek with this film .',
  'a gorgeous , high-spirited musical from india that exquisitely blends music , dance , song , and high drama .',
  'the emotions are raw and will strike a nerve with anyone who \'s ever had family trauma .',
  'audrey tatou has a knack for picking roles that magnify her outrageous charm , and in this literate french comedy , she \'s as morning-glory exuberant as she was in amélie .',
  '... the movie is just a plain old monster .',
  'in its best moments , resembles a bad high school production of grease , without benefit of song .',
];

const CONTEXT =
  'The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France. ' +
  'They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under their leader Rollo, ' +
  'agreed to swear fealty to King Charles III of West Francia. Through generations of assimilation and mixing with the ' +
  'native Frankish and Roman-Gaulish populations, their descendants would gradually merge with the Carolingian-based ' +
  'cultures of West Francia. The distinct cultural and ethnic identity of the Normans emerged initially in the first half ' +
  'of the 10th century, and it continued to evolve over the succeeding centuries.';

const QUESTIONS = [
  'In what country is Normandy located?',
  'When were the Normans in Normandy?',
  'From which countries did the Norse originate?',
  'Who was the Norse leader?',
  'What century did the Normans first gain their separate identity?',
];

interface Fixture {
  classify: TextClassificationPipeline;
  qa?: QuestionAnsweringPipeline;
  cleanup(): void;
}

const CLS = 'fixtures/bert-tiny-cls';
const QA = 'fixtures/bert-tiny-qa';
const VOCAB = 'data/bert-base-uncased/vocab.txt';
/** The tests here: each needs both fixtures and bert-base-uncased's vocab.txt (skipped otherwise). */
const serverTest = withShared(CLS, QA, VOCAB);

async function fixture(withQA = false, batchSize = 32): Promise<Fixture> {
  const clsDir = shared(CLS);
  const qaDir = shared(QA);
  const bert = shared(VOCAB);
  const vocabSize = JSON.parse(readFileSync(join(clsDir, 'config.json'), 'utf8')).vocab_size as number;
  const tmp = tempDir('blockprune-server-');
  writeVocab(tmp.path, cutVocab(bert, vocabSize));
  const classify = await pipeline('text-classification', clsDir, { tokenizer: tmp.path, batchSize });
  const qa = withQA ? await pipeline('question-answering', qaDir, { tokenizer: tmp.path, batchSize }) : undefined;
  return {
    classify,
    qa,
    cleanup: () => {
      classify.dispose();
      qa?.dispose();
      tmp.cleanup();
    },
  };
}

async function start(options: InferenceServerOptions): Promise<{ service: InferenceServer; port: number }> {
  const service = createInferenceServer(options);
  const { port } = await service.listen(0, '127.0.0.1');
  return { service, port };
}

function closeTo(t: ExecutionContext, actual: any, expected: any, what: string, atol = 1e-5): void {
  if (Array.isArray(expected)) {
    t.true(Array.isArray(actual), `${what}: an array`);
    t.is(actual.length, expected.length, `${what}: length`);
    expected.forEach((e, i) => closeTo(t, actual[i], e, `${what}[${i}]`, atol));
    return;
  }
  const { score, ...rest } = expected;
  const { score: aScore, ...aRest } = actual ?? {};
  t.deepEqual(aRest, rest, `${what}: same answer`);
  t.true(Math.abs(aScore - score) <= atol, `${what}: score ${aScore} vs ${score}`);
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setImmediate(r));
  }
}

serverTest('single requests: /classify and /qa answer as the pipelines do; /health describes the models', async (t) => {
  const f = await fixture(true);
  const { service, port } = await start({ classify: f.classify, qa: f.qa, batching: { maxBatch: 32, windowMs: 2 }, disposeOnClose: false });
  try {
    for (const s of SENTENCES.slice(0, 4)) closeTo(t, (await call(port, 'POST', '/classify', { text: s })).json, await f.classify(s), 'text');
    const pair = { text: 'is the sky blue ?', textPair: 'the sky is blue on a clear day .' };
    closeTo(t, (await call(port, 'POST', '/classify', pair)).json, await f.classify(pair), 'pair');
    const inputs = [SENTENCES[0], [SENTENCES[1], SENTENCES[2]], { text: SENTENCES[3] }, { text: SENTENCES[4], textPair: SENTENCES[5] }];
    const r = await call(port, 'POST', '/classify', { inputs });
    t.is(r.status, 200);
    closeTo(t, r.json, await f.classify(inputs as any), 'inputs', 1e-4);
    closeTo(t, (await call(port, 'POST', '/classify', { text: SENTENCES[6], topK: 2 })).json, await f.classify(SENTENCES[6], { topK: 2 }), 'topK');
    // Issue 15 (10): the Hugging Face Inference API's bodies, answered as the pipeline answers the same input.
    closeTo(t, (await call(port, 'POST', '/classify', { inputs: SENTENCES[0] })).json, await f.classify(SENTENCES[0]), 'inputs: a text');
    closeTo(t, (await call(port, 'POST', '/classify', { inputs: SENTENCES.slice(0, 2) })).json, await f.classify(SENTENCES.slice(0, 2)), 'inputs: texts', 1e-4);
    const hfTopK = { inputs: SENTENCES[6], parameters: { top_k: 2 }, options: { wait_for_model: true } };
    closeTo(t, (await call(port, 'POST', '/classify', hfTopK)).json, await f.classify(SENTENCES[6], { topK: 2 }), 'parameters.top_k');
    const hfQA = await call(port, 'POST', '/qa', { inputs: { question: QUESTIONS[0], context: CONTEXT } });
    closeTo(t, hfQA.json, await f.qa!({ question: QUESTIONS[0], context: CONTEXT }), 'qa inputs');
    const typo = await call(port, 'POST', '/classify', { txt: 'x' });
    t.is(typo.status, 400);
    t.regex(typo.json.message, /unknown field "txt" in the \/classify body \(did you mean "text"\?\)/);
    for (const question of QUESTIONS.slice(0, 3)) {
      const a = await call(port, 'POST', '/qa', { question, context: CONTEXT });
      t.is(a.status, 200);
      closeTo(t, a.json, await f.qa!({ question, context: CONTEXT }), `qa ${question}`);
      t.is(CONTEXT.slice(a.json.start, a.json.end), a.json.answer);
    }
    const h = await call(port, 'GET', '/health');
    t.is(h.status, 200);
    t.is(h.json.status, 'ok');
    t.is(h.json.models.classify.task, 'text-classification');
    t.deepEqual(h.json.models.classify.labels, ['LABEL_0', 'LABEL_1']);
    t.is(h.json.models.classify.layers.length, 2);
    t.is(h.json.models.qa.task, 'question-answering');
    t.deepEqual(h.json.batching, { maxBatch: 32, windowMs: 2 });
    t.true(h.json.stats.classify.batches >= 7);
    t.true(h.json.stats.qa.forwards >= 3);
    t.true(h.json.memory.rss > 0);
  } finally {
    await service.close();
    f.cleanup();
  }
});

serverTest('20 concurrent requests share forwards and each gets its own answer (= the unbatched answer)', async (t) => {
  const f = await fixture(true);
  const expected: unknown[] = [];
  for (const s of SENTENCES) expected.push(await f.classify(s));
  const expectedQA: unknown[] = [];
  for (const question of QUESTIONS) expectedQA.push(await f.qa!({ question, context: CONTEXT }));
  const { service, port } = await start({ classify: f.classify, qa: f.qa, batching: { maxBatch: 32, windowMs: 50 }, disposeOnClose: false });
  const plain = await start({ classify: f.classify, qa: f.qa, batching: false, disposeOnClose: false });
  try {
    const replies = await Promise.all(SENTENCES.map((text) => call(port, 'POST', '/classify', { text })));
    replies.forEach((r, i) => {
      t.is(r.status, 200);
      closeTo(t, r.json, expected[i], `request ${i}`, 1e-4);
    });
    const s = service.stats().classify!;
    t.log(`20 concurrent requests: ${s.batches} batches, mean size ${s.meanBatchSize.toFixed(1)}, ${s.forwards} forwards`);
    t.true(s.batches < 20, `${s.batches} batches for 20 requests`);
    t.true(s.forwards < 20, `${s.forwards} forwards for 20 requests`);
    t.is(s.items, 20);
    const answers = await Promise.all(QUESTIONS.map((question) => call(port, 'POST', '/qa', { question, context: CONTEXT })));
    answers.forEach((r, i) => closeTo(t, r.json, expectedQA[i], `qa ${i}`, 1e-4));
    const q = service.stats().qa!;
    t.log(`5 concurrent questions: ${q.batches} batches, ${q.forwards} forwards`);
    t.true(q.batches < 5);
    // Without batching, every request is its own pipeline call, and the answers are the same.
    const unbatched = await Promise.all(SENTENCES.map((text) => call(plain.port, 'POST', '/classify', { text })));
    unbatched.forEach((r, i) => closeTo(t, r.json, expected[i], `unbatched ${i}`, 1e-4));
    t.is(plain.service.stats().classify!.batches, 20);
    t.is(plain.service.stats().classify!.forwards, 20);
    const health = await call(port, 'GET', '/health');
    t.is(health.json.stats.classify.batches, s.batches);
    t.is(health.json.stats.responses['200'], 25);
  } finally {
    await service.close();
    await plain.service.close();
    f.cleanup();
  }
});

serverTest('bad requests get 4xx with a JSON { error, message } and the service keeps answering', async (t) => {
  const f = await fixture(true);
  const { service, port } = await start({ classify: f.classify, qa: f.qa, maxTextChars: 200, maxBodyBytes: 4096, maxInputs: 8, disposeOnClose: false });
  const only = await start({ classify: f.classify, disposeOnClose: false });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const cases: Array<[string, string, string, unknown, number, Record<string, string>?]> = [
      ['invalid JSON', 'POST', '/classify', '{"text": ', 400],
      ['empty body', 'POST', '/classify', '', 400],
      ['a JSON array', 'POST', '/classify', '[1, 2]', 400],
      ['a JSON string', 'POST', '/classify', '"text"', 400],
      ['no text', 'POST', '/classify', {}, 400],
      ['text is a number', 'POST', '/classify', { text: 5 }, 400],
      ['text is null', 'POST', '/classify', { text: null }, 400],
      ['text and inputs', 'POST', '/classify', { text: 'a', inputs: ['b'] }, 400],
      ['textPair is a number', 'POST', '/classify', { text: 'a', textPair: 3 }, 400],
      ['inputs empty', 'POST', '/classify', { inputs: [] }, 400],
      ['inputs a number', 'POST', '/classify', { inputs: 3 }, 400],
      ['an unknown field', 'POST', '/classify', { text: 'a', textpair: 'b' }, 400],
      ['qa inputs an array', 'POST', '/qa', { inputs: [{ question: 'who?', context: CONTEXT }] }, 400],
      ['inputs item a number', 'POST', '/classify', { inputs: ['ok', 1] }, 400],
      ['inputs item a 1-tuple', 'POST', '/classify', { inputs: [['a']] }, 400],
      ['inputs item an object without text', 'POST', '/classify', { inputs: [{ txt: 'a' }] }, 400],
      ['topK 0', 'POST', '/classify', { text: 'a', topK: 0 }, 400],
      ['topK a string', 'POST', '/classify', { text: 'a', topK: '2' }, 400],
      ['text over maxTextChars', 'POST', '/classify', { text: 'x'.repeat(201) }, 413],
      ['textPair over maxTextChars', 'POST', '/classify', { text: 'a', textPair: 'x'.repeat(201) }, 413],
      ['inputs over maxInputs', 'POST', '/classify', { inputs: Array(9).fill('a') }, 413],
      ['body over maxBodyBytes', 'POST', '/classify', { text: 'a', pad: 'x'.repeat(5000) }, 413],
      ['chunked body over maxBodyBytes', 'POST', '/classify', JSON.stringify({ text: 'a', pad: 'x'.repeat(5000) }), 413, { 'transfer-encoding': 'chunked' }],
      ['qa without context', 'POST', '/qa', { question: 'who?' }, 400],
      ['qa empty question', 'POST', '/qa', { question: ' ', context: CONTEXT }, 400],
      ['qa context a number', 'POST', '/qa', { question: 'who?', context: 1 }, 400],
      ['qa context over maxTextChars', 'POST', '/qa', { question: 'who?', context: 'x '.repeat(101) }, 413],
      ['qa question leaving no room for context', 'POST', '/qa', { question: Array(70).fill('a').join(' '), context: 'a b c' }, 400],
      ['GET /classify', 'GET', '/classify', undefined, 405],
      ['PUT /qa', 'PUT', '/qa', '{}', 405],
      ['DELETE /health', 'DELETE', '/health', undefined, 405],
      ['unknown route', 'GET', '/nope', undefined, 404],
      ['unknown route with a body', 'POST', '/classify/extra', { text: 'a' }, 404],
      ['root', 'GET', '/', undefined, 404],
    ];
    for (const [name, method, path, body, status, headers] of cases) {
      const r = await call(port, method, path, body, { agent, headers });
      t.is(r.status, status, `${name}: status`);
      t.regex(String(r.headers['content-type']), /application\/json/, `${name}: JSON`);
      t.is(typeof r.json?.error, 'string', `${name}: error code`);
      t.is(typeof r.json?.message, 'string', `${name}: message`);
      if (status === 405) t.truthy(r.headers.allow, `${name}: Allow header`);
    }
    t.log(`e.g. ${JSON.stringify((await call(port, 'POST', '/classify', { text: 5 }, { agent })).json)}`);
    const noQA = await call(only.port, 'POST', '/qa', { question: 'who?', context: CONTEXT });
    t.is(noQA.status, 404, 'no QA model: 404');
    // Malformed HTTP.
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.write('NOT HTTP AT ALL\r\n\r\n'));
      let data = '';
      sock.on('data', (d) => (data += d.toString()));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
    t.regex(raw, /^HTTP\/1\.1 400/);
    t.regex(raw, /"error"/);
    // Still up, on the same keep-alive connection and on new ones.
    const ok = await call(port, 'POST', '/classify', { text: SENTENCES[0] }, { agent });
    t.is(ok.status, 200);
    closeTo(t, ok.json, await f.classify(SENTENCES[0]), 'after the bad requests');
    const h = await call(port, 'GET', '/health');
    t.is(h.status, 200);
    t.true(h.json.stats.responses['400'] >= 20);
    t.true(h.json.stats.responses['413'] >= 6);
  } finally {
    agent.destroy();
    await service.close();
    await only.service.close();
    f.cleanup();
  }
});

serverTest('close() with requests in flight answers them 503; a disposed model answers 503; the process carries on', async (t) => {
  const f = await fixture(true, 1);
  try {
    // Requests waiting for a batch (a long window) when the service closes.
    const a = await start({ classify: f.classify, qa: f.qa, batching: { maxBatch: 32, windowMs: 10_000, idleStart: false }, disposeOnClose: false });
    const waiting = [
      ...SENTENCES.slice(0, 5).map((text) => call(a.port, 'POST', '/classify', { text })),
      call(a.port, 'POST', '/qa', { question: QUESTIONS[0], context: CONTEXT }),
    ];
    await until(() => a.service.stats().classify!.pending === 5 && a.service.stats().qa!.pending === 1);
    await a.service.close();
    for (const r of await Promise.all(waiting)) {
      t.is(r.status, 503);
      t.is(r.json.error, 'unavailable');
      t.regex(r.json.message, /shutting down/);
    }
    await t.throwsAsync(call(a.port, 'GET', '/health'), { code: 'ECONNREFUSED' }, 'closed: no longer listening');
    t.false(f.classify.model.disposed, 'disposeOnClose: false keeps the pipeline');

    // A disposed model (the pipeline disposed behind the service's back): 503, and the service stays up.
    const extra = await fixture(false, 1);
    const b = await start({ classify: extra.classify, batching: { maxBatch: 32, windowMs: 1 } });
    extra.classify.dispose();
    const gone = await call(b.port, 'POST', '/classify', { text: SENTENCES[0] });
    t.is(gone.status, 503);
    t.is(gone.json.error, 'unavailable');
    t.is((await call(b.port, 'GET', '/health')).status, 200);
    await b.service.close();
    extra.cleanup();

    // close() disposing the model while a long unbatched request runs (200 inputs, one forward each); no
    // grace, so the request cannot finish (test/server-faults.test.ts covers the grace).
    const c = await start({ classify: f.classify, qa: f.qa, batching: false, closeGraceMs: 0 });
    const inputs = Array.from({ length: 200 }, (_, i) => SENTENCES[i % SENTENCES.length]);
    const long = call(c.port, 'POST', '/classify', { inputs });
    const agent = new Agent({ keepAlive: true });
    await until(() => c.service.stats().inFlight > 0);
    const closed = c.service.close();
    const during = await call(c.port, 'GET', '/health', undefined, { agent }).catch((e) => e);
    const r = await long;
    await closed;
    agent.destroy();
    t.is(r.status, 503, `the request in flight: ${JSON.stringify(r.json)}`);
    t.is(r.json.error, 'unavailable');
    t.true(f.classify.model.disposed && f.qa!.model.disposed, 'close() disposed the pipelines');
    t.log(`a request during close: ${during instanceof Error ? during.message : during.status}`);
    // The process is fine: a new model loads and runs.
    const again = await fixture(false);
    t.truthy(await again.classify(SENTENCES[0]));
    again.cleanup();
  } finally {
    f.cleanup();
  }
});
