// The README's "### Serving" program, runnable: an HTTP service with dynamic batching over a classification
// pipeline, called as a client would (fetch), then closed. `node examples/serve.js`
'use strict';
const assert = require('node:assert/strict');
const { join } = require('node:path');
const { pipeline, createInferenceServer } = require('blockprune');
const { makeTinyModel, runInTempFolder } = require('./tiny-model.js');

async function main(work) {
  const classify = await pipeline('text-classification', await makeTinyModel(join(work, 'model')), { batchSize: 32 });
  const service = createInferenceServer({ classify, batching: { maxBatch: 32, windowMs: 5 } });
  const { url } = await service.listen(0, '127.0.0.1'); // port 0: any free port (8080 in the README)
  const post = async (body) => {
    const res = await fetch(`${url}/classify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  };
  try {
    // Concurrent requests within windowMs share one forward pass.
    const answers = await Promise.all(['a fine film', 'a dull film', 'good acting'].map((text) => post({ text })));
    console.log(`POST /classify {text} x3: ${answers.map((a) => `${a.status} ${a.json.label}`).join(', ')}`);
    assert.ok(answers.every((a) => a.status === 200));
    const inference = await post({ inputs: 'the best film of the year' }); // the HF Inference API's shape
    console.log(`POST /classify {inputs}: ${inference.status} ${JSON.stringify(inference.json)}`);
    const top = await post({ inputs: ['good', 'bad'], parameters: { top_k: 2 } });
    assert.equal(top.json.length, 2);
    const typo = await post({ txt: 'x' }); // a field the route does not read: 400 naming it
    console.log(`POST /classify {txt}: ${typo.status} ${typo.json.message}`);
    assert.equal(typo.status, 400);
    const health = await (await fetch(`${url}/health`)).json();
    const { ok, batches, maxBatchSize } = health.stats.classify;
    console.log(`GET /health: ${health.status}, /classify answered ${ok} in ${batches} batches (largest ${maxBatchSize})`);
    assert.equal(health.status, 'ok');
  } finally {
    await service.close(); // everything answered; the pipeline is disposed
  }
}

runInTempFolder(main);
