// The README's "### Hub ids and the cache" program, runnable: models by hub id from a Hugging Face cache. The
// cache here is a local one laid out as huggingface_hub writes it (models--org--name/refs/<revision> holds the
// commit, snapshots/<commit>/ the files), so nothing is downloaded; with a real cache, leave out `cacheDir`.
// `node examples/hub-cache.js`
'use strict';
const assert = require('node:assert/strict');
const { cpSync, mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { BertModel, pipeline, isHubId } = require('blockprune');
const { makeTinyModel, runInTempFolder } = require('./tiny-model.js');

/** Lays out `modelDir` in `cacheDir` as huggingface_hub would after downloading `id` at `revisions`. */
function fillCache(cacheDir, id, modelDir, revisions) {
  const repo = join(cacheDir, `models--${id.replace('/', '--')}`);
  const commit = 'a'.repeat(40);
  cpSync(modelDir, join(repo, 'snapshots', commit), { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  for (const r of revisions) writeFileSync(join(repo, 'refs', r), commit);
}

async function main(work) {
  const cacheDir = join(work, 'hub');
  fillCache(cacheDir, 'org/tiny-bert-sst2', await makeTinyModel(join(work, 'model')), ['main', 'v1.0']);
  console.log(`'org/tiny-bert-sst2' is a hub id: ${isHubId('org/tiny-bert-sst2')}`);

  const m = await BertModel.fromPretrained('org/tiny-bert-sst2', { cacheDir }); // cache first, else downloaded
  console.log(`from the cache: ${m.family}, ${m.numParameters} parameters`);
  const c = await pipeline('sentiment-analysis', 'org/tiny-bert-sst2', { revision: 'v1.0', cacheDir });
  const r = await c('a fine film');
  console.log(`sentiment-analysis at v1.0: ${r.label}`);
  const offline = await BertModel.fromPretrained('org/tiny-bert-sst2', { offline: true, cacheDir }); // the cache or E_NOT_CACHED
  const progress = [];
  const quiet = await BertModel.fromPretrained('org/tiny-bert-sst2', { token: process.env.HF_TOKEN, cacheDir, onProgress: (p) => progress.push(p.file) });
  console.log(`offline: loaded; progress events for a cached model: ${progress.length}`);
  assert.equal(progress.length, 0); // nothing to download

  try {
    await BertModel.fromPretrained('org/not-in-the-cache', { offline: true, cacheDir });
    assert.fail('a model missing from the cache loads offline');
  } catch (e) {
    assert.equal(e.code, 'E_NOT_CACHED');
    console.log(`missing offline: ${e.code}`);
  }
  for (const x of [m, c, offline, quiet]) x.dispose();
}

runInTempFolder(main);
