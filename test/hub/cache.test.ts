/**
 * Hub ids read from a Hugging Face cache laid out as huggingface_hub writes it (blobs, relative symlinks,
 * refs): by HF_HUB_CACHE and by HF_HOME, a branch and a commit, a missing ref, offline with nothing cached,
 * the id rules, and the options checked before any work. Nothing here touches the network: HF_ENDPOINT
 * points at a closed local port and HF_HUB_OFFLINE is set where a miss would try the hub.
 */
import test from 'ava';
import { readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { checkRevision, hubCacheDir, isHubId } from '../../lib/hub/cache';
import { localModelPath } from '../../lib/hub/hub';
import { BertModel } from '../../lib/model/model';
import { loadTokenizer, pipeline } from '../../lib/model/pipelines';
import { maxAbsDiff, tempDir } from '../helpers';
import { BATCH, commitHash, repoDirOf, tinyRepo, withEnv, writeCache, type RepoFiles } from './fake-hub';

const ID = 'tiny-org/tiny-bert';
const A = commitHash('a');
const B = commitHash('b');
// Port 9 is on fetch's list of blocked ports: a request that should not happen fails at once, reaching nothing.
const NO_HUB = { HF_ENDPOINT: 'http://127.0.0.1:9', HF_TOKEN: undefined, HF_HUB_CACHE: undefined, HUGGINGFACE_HUB_CACHE: undefined, HF_HOME: undefined };

let repoA: { files: RepoFiles; logits: Float32Array };
let repoB: { files: RepoFiles; logits: Float32Array };
test.before(async () => {
  [repoA, repoB] = [await tinyRepo(1), await tinyRepo(2)];
});

async function logitsOf(idOrDir: string, options: Parameters<typeof BertModel.fromPretrained>[1] = {}): Promise<{ logits: Float32Array; dir?: string }> {
  const m = await BertModel.fromPretrained(idOrDir, options);
  try {
    return { logits: (await m.forward(BATCH)).logits.data as Float32Array, dir: m.sourceDir };
  } finally {
    m.dispose();
  }
}

test.serial('a hub id loads from HF_HUB_CACHE: the snapshot of refs/main, its symlinks relative into blobs/', async (t) => {
  const cache = tempDir();
  try {
    writeCache(cache.path, ID, A, repoA.files);
    await withEnv({ ...NO_HUB, HF_HUB_CACHE: cache.path, HF_HUB_OFFLINE: undefined }, async () => {
      const { logits, dir } = await logitsOf(ID);
      t.is(dir, join(repoDirOf(cache.path, ID), 'snapshots', A));
      t.is(maxAbsDiff(logits, repoA.logits), 0);
      t.regex(readlinkSync(join(dir!, 'model.safetensors')), /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    });
  } finally {
    cache.cleanup();
  }
});

test.serial('HF_HOME/hub is the cache when HF_HUB_CACHE is unset; HF_HUB_CACHE wins over it; the older HUGGINGFACE_HUB_CACHE is read', async (t) => {
  const home = tempDir();
  try {
    writeCache(join(home.path, 'hub'), ID, A, repoA.files);
    await withEnv({ ...NO_HUB, HF_HOME: home.path, HF_HUB_OFFLINE: '1' }, async () => {
      t.is(hubCacheDir(), join(home.path, 'hub'));
      t.is(maxAbsDiff((await logitsOf(ID)).logits, repoA.logits), 0);
    });
    t.is(hubCacheDir({ HF_HOME: '/h', HF_HUB_CACHE: '/c' }), '/c');
    t.is(hubCacheDir({ HF_HOME: '/h', HUGGINGFACE_HUB_CACHE: '/old' }), '/old');
    t.is(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
  } finally {
    home.cleanup();
  }
});

test.serial('a revision by branch (refs/v1) and by commit (used directly, no ref needed); a missing ref is E_NOT_CACHED naming it', async (t) => {
  const cache = tempDir();
  try {
    writeCache(cache.path, ID, A, repoA.files, ['main']);
    writeCache(cache.path, ID, B, repoB.files, ['v1']);
    await withEnv({ ...NO_HUB, HF_HUB_CACHE: cache.path, HF_HUB_OFFLINE: '1' }, async () => {
      t.is(maxAbsDiff((await logitsOf(ID, { revision: 'v1' })).logits, repoB.logits), 0);
      t.is(maxAbsDiff((await logitsOf(ID, { revision: A })).logits, repoA.logits), 0);
      t.is(maxAbsDiff((await logitsOf(ID)).logits, repoA.logits), 0);
      const e = await t.throwsAsync(BertModel.fromPretrained(ID, { revision: 'v2' }), { code: 'E_NOT_CACHED' } as never);
      t.true(e!.message.includes('revision v2') && e!.message.includes('refs/v2'), e!.message);
      t.true(e!.message.includes(repoDirOf(cache.path, ID)), e!.message);
    });
  } finally {
    cache.cleanup();
  }
});

test.serial('offline (or the hub unreachable) with nothing cached: E_NOT_CACHED names the id, the revision, the path searched and how to fill it', async (t) => {
  const cache = tempDir();
  try {
    for (const [env, opts] of [[{ HF_HUB_OFFLINE: '1' }, {}], [{ HF_HUB_OFFLINE: undefined }, { offline: true }]] as const)
      await withEnv({ ...NO_HUB, HF_HUB_CACHE: cache.path, ...env }, async () => {
        const e = await t.throwsAsync(BertModel.fromPretrained('someone/absent-model', opts), { code: 'E_NOT_CACHED' } as never);
        for (const part of ['someone/absent-model', 'revision main', join(cache.path, 'models--someone--absent-model'), 'huggingface-cli download someone/absent-model', 'HF_HUB_OFFLINE'])
          t.true(e!.message.includes(part), `${part} in: ${e!.message}`);
        // The pipeline says the same (no tokenizer error first).
        await t.throwsAsync(pipeline('text-classification', 'someone/absent-model', opts), { code: 'E_NOT_CACHED' } as never);
      });
    // Online, but the hub cannot be reached (a port just freed: nothing listens there): the same error, saying so.
    const port = await new Promise<number>((done) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => done(p));
      });
    });
    await withEnv({ ...NO_HUB, HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HUB_CACHE: cache.path, HF_HUB_OFFLINE: undefined }, async () => {
      const e = await t.throwsAsync(BertModel.fromPretrained('someone/absent-model'), { code: 'E_NOT_CACHED' } as never);
      t.regex(e!.message, /could not be reached \(http:\/\/127\.0\.0\.1:\d+\/someone\/absent-model\/resolve\/main\/config\.json: ECONNREFUSED\)/);
    });
  } finally {
    cache.cleanup();
  }
});

test.serial("the pipeline, loadTokenizer and 'sentiment-analysis' read a cached hub id", async (t) => {
  const cache = tempDir();
  try {
    writeCache(cache.path, ID, A, repoA.files);
    await withEnv({ ...NO_HUB, HF_HUB_CACHE: cache.path, HF_HUB_OFFLINE: '1' }, async () => {
      t.is(loadTokenizer(ID).vocabSize, 39);
      t.is(localModelPath(ID), join(repoDirOf(cache.path, ID), 'snapshots', A));
      const classify = await pipeline('sentiment-analysis', ID);
      try {
        t.is(classify.task, 'text-classification');
        const r = (await classify('a good film')) as { label: string; score: number };
        t.true(['LABEL_0', 'LABEL_1'].includes(r.label) && r.score > 0 && r.score <= 1);
      } finally {
        classify.dispose();
      }
    });
  } finally {
    cache.cleanup();
  }
});

test('hub ids follow huggingface_hub validate_repo_id; a path is never an id', (t) => {
  for (const id of ['bert-base-uncased', 'deepset/roberta-base-squad2', 'org/name.v2', 'a/b', 'x_y/z-1', 'ü/ñame'])
    t.true(isHubId(id), id);
  for (const s of ['./dir', '../dir', '/abs/dir', 'a/b/c', 'a--b/c', 'a..b', '-a/b', 'a/b-', 'a/.b', 'model.git', 'a b', '', 'a/' + 'x'.repeat(97)])
    t.false(isHubId(s), s);
});

test('options are checked before any work: revision, offline, token, cacheDir, onProgress, unknown keys', async (t) => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ revision: '../../etc' }, /options\.revision/],
    [{ revision: '' }, /options\.revision/],
    [{ revision: 5 }, /options\.revision/],
    [{ offline: 'yes' }, /options\.offline/],
    [{ token: '' }, /options\.token/],
    [{ cacheDir: 5 }, /options\.cacheDir/],
    [{ onProgress: 'x' }, /options\.onProgress/],
    [{ revison: 'main' }, /did you mean "revision"/],
  ];
  for (const [opts, msg] of bad) {
    const e = await t.throwsAsync(BertModel.fromPretrained('org/never-fetched', opts as never), { code: 'E_INVALID_ARG' } as never);
    t.regex(e!.message, msg);
    await t.throwsAsync(pipeline('text-classification', 'org/never-fetched', opts as never), { code: 'E_INVALID_ARG' } as never);
  }
  t.is(checkRevision('r', 'refs/pr/1'), 'refs/pr/1');
  // Not a directory and not an id: the missing directory, as before hub ids.
  await t.throwsAsync(BertModel.fromPretrained('./no/such/dir/here'), { code: 'E_FILE_NOT_FOUND' } as never);
});
