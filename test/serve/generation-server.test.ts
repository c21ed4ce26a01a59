/**
 * POST /summarize and POST /generate (issue 18) on the bart-tiny and t5-tiny fixtures (test/seq2seq-dirs.ts):
 * answers equal the pipelines' own, concurrent requests share generate() calls (grouped by their parameters)
 * and each gets its own answer, a Server-Sent Events stream's pieces make the non-streamed text, a client that
 * leaves mid-stream leaves the model free and the service answering, bad bodies and parameters are 400/413
 * with a code, and `blockprune serve` on a BART directory answers /summarize.
 */
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { generationPipeline, type TextGenerationPipeline } from '../../lib/model/generation-pipeline';
import { pipeline } from '../../lib/model/pipelines';
import { createInferenceServer, type InferenceServer } from '../../lib/serve/server';
import type { InferenceServerOptions } from '../../lib/serve/server-options';
import { call, runCli, tempDir } from '../helpers';
import { bartDir, seq2seqTest, t5Dir } from '../seq2seq-dirs';

const TEXTS = ['a quiet film about the sea', 'the end', 'rain on the window all night', 'six cats and a dog', 'we walked home', 'bright lights in a small town'];

/** Both generation pipelines over one model of `family` (as the CLI serves them), batchSize 32. */
async function pipes(family: 'bart' | 't5', dir: string): Promise<{ summarize: TextGenerationPipeline; generate: TextGenerationPipeline }> {
  const summarize = await pipeline('summarization', (family === 'bart' ? bartDir : t5Dir)(dir), { batchSize: 32 });
  return { summarize, generate: generationPipeline('text2text-generation', summarize.model, summarize.tokenizer, 32) };
}

async function withServer(t: ExecutionContext, family: 'bart' | 't5', options: Partial<InferenceServerOptions>, body: (s: InferenceServer, port: number, p: Awaited<ReturnType<typeof pipes>>) => Promise<void>): Promise<void> {
  const tmp = tempDir('blockprune-genserver-');
  const p = await pipes(family, tmp.path);
  const service = createInferenceServer({ ...p, ...options });
  try {
    const { port } = await service.listen(0);
    await body(service, port, p);
  } finally {
    await service.close();
    t.true(p.summarize.model.disposed, 'close() disposes the model');
    tmp.cleanup();
  }
}

/** An SSE response's events (each `data:` line's JSON, with `event:` as `_event`), and its headers. */
function sse(port: number, path: string, body: unknown, onFirst?: (destroy: () => void) => void): Promise<{ status: number; type?: string; events: any[] }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      let first = true;
      const done = () => {
        const events = text
          .split('\n\n')
          .filter((b) => b.trim())
          .map((b) => {
            const name = /^event: (.*)$/m.exec(b)?.[1];
            const data = /^data: (.*)$/m.exec(b)?.[1];
            return { ...(data ? JSON.parse(data) : {}), ...(name ? { _event: name } : {}) };
          });
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], events });
      };
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        if (first && onFirst) onFirst(() => (req.destroy(), done()));
        first = false;
      });
      res.on('end', done);
      res.on('error', () => undefined);
    });
    req.on('error', (e) => (onFirst ? undefined : reject(e)));
    req.end(payload);
  });
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const family of ['bart', 't5'] as const) {
  seq2seqTest(`${family}: /summarize and /generate answer what the pipelines give, in the Inference API's shapes; /health lists them`, async (t) => {
    await withServer(t, family, {}, async (_s, port, { summarize, generate }) => {
      const want = (await summarize(TEXTS.slice(0, 2), { maxLength: 12 })) as Array<{ summary_text: string }>;
      t.deepEqual((await call(port, 'POST', '/summarize', { inputs: TEXTS[0], parameters: { max_length: 12 } })).json, [want[0]]);
      t.deepEqual((await call(port, 'POST', '/summarize', { text: TEXTS[1], parameters: { max_length: 12 } })).json, [want[1]]);
      t.deepEqual((await call(port, 'POST', '/summarize', { inputs: TEXTS.slice(0, 2), parameters: { max_length: 12 } })).json, want);
      // The model's defaults (max_length 20, greedy) when the request sets none; beam search with its options.
      t.deepEqual((await call(port, 'POST', '/generate', { inputs: TEXTS[2] })).json, [await generate(TEXTS[2])]);
      const beams = { max_length: 10, min_length: 4, num_beams: 3, length_penalty: 0.8, no_repeat_ngram_size: 2, early_stopping: true };
      const r = await call(port, 'POST', '/generate', { inputs: [TEXTS[3]], parameters: beams });
      t.deepEqual(r.json, [await generate(TEXTS[3], { maxLength: 10, minLength: 4, numBeams: 3, lengthPenalty: 0.8, noRepeatNgramSize: 2, earlyStopping: true })]);
      t.true(typeof r.json[0].generated_text === 'string' && r.json[0].generated_text.length > 0, JSON.stringify(r.json));
      const h = (await call(port, 'GET', '/health')).json;
      t.is(h.models.summarize.route, 'POST /summarize');
      t.is(h.models.generate.modelType, family);
      t.deepEqual(h.models.generate.defaults, { maxLength: 20, numBeams: 1, minLength: 0 });
      t.is(h.stats.summarize.ok, 3);
      t.is(h.stats.generate.ok, 2);
      t.deepEqual([h.limits.maxGenerateLength, h.limits.maxBeams], [256, 8]);
    });
  });
}

seq2seqTest('concurrent requests share generate() calls, one per set of parameters, and each gets its own answer', async (t) => {
  // idleStart off and a 100 ms window: all twelve requests arrive within it, even on a loaded machine.
  await withServer(t, 'bart', { batching: { maxBatch: 32, windowMs: 100, idleStart: false } }, async (s, port, { summarize }) => {
    const params = (i: number) => ({ max_length: i % 2 ? 8 : 12 });
    const texts = [...TEXTS, ...TEXTS.map((x) => x + ' again')];
    const replies = await Promise.all(texts.map((inputs, i) => call(port, 'POST', '/summarize', { inputs, parameters: params(i) })));
    for (const [i, r] of replies.entries()) {
      t.is(r.status, 200);
      t.deepEqual(r.json, [await summarize(texts[i], { maxLength: params(i).max_length })], `request ${i}`);
    }
    const st = s.stats().summarize!;
    t.log(`12 requests (2 sets of parameters): ${st.batches} batches, ${st.generateCalls} generate calls, largest batch ${st.maxBatchSize}`);
    t.is(st.items, 12);
    t.true(st.generateCalls < 12 && st.generateCalls >= 2, `${st.generateCalls} generate calls`);
    // A batch makes one call per set of parameters it holds (two at most here).
    t.true(st.generateCalls <= 2 * st.batches, JSON.stringify(st));
  });
});

for (const [family, path] of [['bart', '/summarize'], ['t5', '/generate']] as const) {
  seq2seqTest(`${family}: "stream": true answers Server-Sent Events whose tokens make the non-streamed text`, async (t) => {
    await withServer(t, family, {}, async (_s, port) => {
      const parameters = { max_length: 16 };
      const plain = (await call(port, 'POST', path, { inputs: TEXTS[0], parameters })).json[0];
      const key = path === '/summarize' ? 'summary_text' : 'generated_text';
      const r = await sse(port, path, { inputs: TEXTS[0], parameters, stream: true });
      t.is(r.status, 200);
      t.regex(String(r.type), /^text\/event-stream/);
      const tokens = r.events.filter((e) => 'token' in e);
      const last = r.events[r.events.length - 1];
      t.true(tokens.length >= 2, `${tokens.length} pieces`);
      t.is(tokens.map((e) => e.token).join(''), plain[key]);
      t.deepEqual(last, { done: true, [key]: plain[key] });
    });
  });
}

seq2seqTest('a client that leaves mid-stream: no more is sent, its generation stops, the model is free afterwards and the service answers', async (t) => {
  await withServer(t, 't5', { maxGenerateLength: 1000 }, async (s, port, { generate }) => {
    // 999 forced steps (min_length = max_length; about 0.9 s here, 200 took 0.14 s and, under load, sometimes
    // ended before the client read its first piece): the client is gone long before the end.
    const parameters = { max_length: 1000, min_length: 1000 };
    const t0 = performance.now();
    const r = await sse(port, '/generate', { inputs: TEXTS[0], parameters, stream: true }, (destroy) => destroy());
    t.true(r.events.length >= 1 && r.events.length < 999, `${r.events.length} events before the client left`);
    await until(async () => s.stats().generate!.streamsRunning === 0, 20_000);
    const stoppedMs = performance.now() - t0;
    // The generation stopped rather than ran out: the whole stream took a fraction of the full generation's time.
    const f0 = performance.now();
    await call(port, 'POST', '/generate', { inputs: TEXTS[0], parameters });
    const fullMs = performance.now() - f0;
    t.log(`the client left after ${r.events.length} of 999 pieces; the stream ended after ${stoppedMs.toFixed(0)} ms, a full generation takes ${fullMs.toFixed(0)} ms`);
    t.true(stoppedMs < fullMs / 3, `stream ended after ${stoppedMs.toFixed(0)} ms, full generation ${fullMs.toFixed(0)} ms`);
    const st = s.stats().generate!;
    t.is(st.streamsAborted, 1);
    t.is(st.streams, 1);
    t.is(st.ok, 1);
    t.is(st.running, 0);
    // The next request runs at once and answers as the pipeline does.
    t.deepEqual((await call(port, 'POST', '/generate', { inputs: TEXTS[1] })).json, [await generate(TEXTS[1])]);
    t.false((await call(port, 'GET', '/health')).json.models.generate.disposed);
  });
});

seq2seqTest('bad bodies and parameters: 400 or 413 with a code naming the field; the service goes on', async (t) => {
  await withServer(t, 'bart', { maxTextChars: 100, maxInputs: 3, maxGenerateLength: 40, maxBeams: 4 }, async (_s, port, { summarize }) => {
    const cases: Array<[unknown, number, string, RegExp]> = [
      [{}, 400, 'invalid_request', /no "text" and no "inputs"/],
      [{ text: 1 }, 400, 'invalid_request', /"text" must be a non-empty string/],
      [{ text: '   ' }, 400, 'invalid_request', /blank/],
      [{ text: 'a', inputs: 'b' }, 400, 'invalid_request', /both/],
      [{ inputs: [] }, 400, 'invalid_request', /empty array/],
      [{ inputs: ['ok', 2] }, 400, 'invalid_request', /inputs\[1\]/],
      [{ inputs: 'x'.repeat(101) }, 413, 'text_too_long', /101 characters; the limit is 100/],
      [{ inputs: ['a', 'b', 'c', 'd'] }, 413, 'too_many_inputs', /limit is 3/],
      [{ inputs: 'a', txt: 'b' }, 400, 'invalid_request', /unknown field "txt"/],
      [{ inputs: 'a', parameters: [] }, 400, 'invalid_request', /"parameters" must be an object/],
      [{ inputs: 'a', parameters: { max_lenght: 5 } }, 400, 'invalid_request', /did you mean "max_length"/],
      [{ inputs: 'a', parameters: { max_length: 0 } }, 400, 'invalid_request', /max_length/],
      [{ inputs: 'a', parameters: { max_length: 41 } }, 400, 'invalid_request', /\[1, 40\] \(the service's maxGenerateLength\)/],
      [{ inputs: 'a', parameters: { max_length: 2.5 } }, 400, 'invalid_request', /max_length/],
      [{ inputs: 'a', parameters: { max_length: 8, min_length: 9 } }, 400, 'invalid_request', /min_length.*\[0, 8\]/],
      [{ inputs: 'a', parameters: { min_length: 21 } }, 400, 'invalid_request', /default max_length/],
      [{ inputs: 'a', parameters: { num_beams: 5 } }, 400, 'invalid_request', /maxBeams/],
      [{ inputs: 'a', parameters: { num_beams: 2 }, stream: true }, 400, 'invalid_request', /greedy/],
      [{ inputs: 'a', parameters: { length_penalty: 'long' } }, 400, 'invalid_request', /length_penalty/],
      [{ inputs: 'a', parameters: { early_stopping: 1 } }, 400, 'invalid_request', /early_stopping/],
      [{ inputs: 'a', parameters: { no_repeat_ngram_size: -1 } }, 400, 'invalid_request', /no_repeat_ngram_size/],
      [{ inputs: 'a', stream: 'yes' }, 400, 'invalid_request', /"stream" must be true or false/],
      [{ inputs: ['a', 'b'], stream: true }, 400, 'invalid_request', /one text/],
      ['{"inputs": ', 400, 'invalid_json', /not valid JSON/],
    ];
    for (const [body, status, code, message] of cases) {
      const r = await call(port, 'POST', '/summarize', body);
      t.is(r.status, status, JSON.stringify(body));
      t.is(r.json.error, code, JSON.stringify(body));
      t.regex(r.json.message, message, JSON.stringify(body));
    }
    const wrong = await call(port, 'GET', '/summarize');
    t.is(wrong.status, 405);
    const none = await call(port, 'POST', '/classify', { text: 'a' });
    t.is(none.status, 404);
    t.regex(none.json.message, /POST \/summarize, POST \/generate, GET \/health/);
    t.log(`${cases.length} bad bodies: each its status and code, the service still up`);
    t.deepEqual((await call(port, 'POST', '/summarize', { inputs: 'the end' })).json, [await summarize('the end')]);
  });
});

seq2seqTest('options: a generation route takes its own task, limits within the model defaults (E_INVALID_ARG before listening)', async (t) => {
  const tmp = tempDir('blockprune-genserver-');
  const { summarize, generate } = await pipes('bart', tmp.path);
  try {
    t.throws(() => createInferenceServer({ summarize: generate }), { code: 'E_INVALID_ARG', message: /options\.summarize/ });
    t.throws(() => createInferenceServer({ generate: summarize }), { code: 'E_INVALID_ARG', message: /options\.generate/ });
    t.throws(() => createInferenceServer({ summarize, maxGenerateLength: 10 }), { code: 'E_INVALID_ARG', message: /default max_length \(20\) for options\.maxGenerateLength/ });
    t.throws(() => createInferenceServer({ summarize, maxBeams: 0 }), { code: 'E_INVALID_ARG', message: /maxBeams/ });
  } finally {
    summarize.dispose();
    tmp.cleanup();
  }
});

seq2seqTest('blockprune serve on a BART directory serves /summarize and /generate; --task text-classification is refused', async (t) => {
  const tmp = tempDir('blockprune-genserver-');
  try {
    const dir = bartDir(tmp.path);
    const refused = runCli(['serve', '--model', dir, '--task', 'text-classification', '--port', '0']);
    t.is(refused.code, 2, refused.err);
    t.regex(refused.err, /BartForConditionalGeneration/);
    t.regex(runCli(['serve', '--help']).out, /POST \/summarize and POST \/generate/);
    const cli = join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
    const proc = spawn(process.execPath, [cli, 'serve', '--model', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      await until(async () => /listening on http:\/\/[^\s:]+:\d+/.test(out) || proc.exitCode !== null, 60_000);
      const port = Number(/listening on http:\/\/[^\s:]+:(\d+)/.exec(out)?.[1]);
      t.true(port > 0, out);
      const s = await pipeline('summarization', dir);
      const want = await s(TEXTS[0], { maxLength: 12 });
      s.dispose();
      t.deepEqual((await call(port, 'POST', '/summarize', { inputs: TEXTS[0], parameters: { max_length: 12 } })).json, [want]);
      const h = (await call(port, 'GET', '/health')).json;
      t.deepEqual(Object.keys(h.models).sort(), ['generate', 'summarize']);
      proc.kill('SIGTERM');
      t.is(await exit, 0, out);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  } finally {
    tmp.cleanup();
  }
});
