/**
 * Downloads from a fake hub served on 127.0.0.1 by the test (HF_ENDPOINT points at it; nothing leaves the
 * machine): download, load and a forward equal to the original model's; a connection cut mid-file that
 * resumes with Range; a partial file left by a killed process, resumed; a wrong size refused with nothing
 * placed; a gated repo and its token; a second load with no request; HF_HUB_OFFLINE=1 with no request.
 */
import test from 'ava';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DownloadProgress } from '../../lib/hub/hub';
import { BertModel, type FromPretrainedOptions } from '../../lib/model/model';
import { maxAbsDiff, tempDir, writeSafetensorsFile } from '../helpers';
import { BATCH, commitHash, etagOf, repoDirOf, startFakeHub, tinyRepo, withEnv, type FakeHubOptions, type FakeRepo, type RepoFiles } from './fake-hub';

const ID = 'tiny-org/tiny-bert';
const C = commitHash('c1');

let repo: { files: RepoFiles; logits: Float32Array };
test.before(async () => {
  repo = await tinyRepo(3);
});

const repoOf = (files: RepoFiles, extra: Partial<FakeRepo> = {}): FakeRepo => ({ commits: { [C]: files }, refs: { main: C }, ...extra });

/** A fresh cache and a fake hub serving `repos`; `fn` runs with HF_HUB_CACHE and HF_ENDPOINT set to them. */
async function withHub(repos: Record<string, FakeRepo>, o: FakeHubOptions, fn: (hub: Awaited<ReturnType<typeof startFakeHub>>, cache: string) => Promise<void>): Promise<void> {
  const cache = tempDir();
  const hub = await startFakeHub(repos, o);
  try {
    await withEnv({ HF_HUB_CACHE: cache.path, HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: undefined, HF_TOKEN: undefined, HF_HOME: cache.path }, () => fn(hub, cache.path));
  } finally {
    await hub.close();
    cache.cleanup();
  }
}

async function logitsOf(id: string, options: FromPretrainedOptions = {}): Promise<{ logits: Float32Array; dir: string }> {
  const m = await BertModel.fromPretrained(id, options);
  try {
    return { logits: (await m.forward(BATCH)).logits.data as Float32Array, dir: m.sourceDir! };
  } finally {
    m.dispose();
  }
}

const blobOf = (cache: string, file: string) => join(repoDirOf(cache, ID), 'blobs', etagOf(file, repo.files[file]));

test.serial('download, load, forward equal to the original; the cache as huggingface_hub lays it out; a second load makes no request', async (t) => {
  for (const cdn of ['relative', 'absolute'] as const)
    await withHub({ [ID]: repoOf(repo.files) }, { cdn }, async (hub, cache) => {
      const progress: DownloadProgress[] = [];
      const { logits, dir } = await logitsOf(ID, { onProgress: (p) => progress.push(p) });
      t.is(maxAbsDiff(logits, repo.logits), 0);
      const repoDir = repoDirOf(cache, ID);
      t.is(dir, join(repoDir, 'snapshots', C));
      t.is(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), C);
      for (const f of Object.keys(repo.files)) {
        t.true(lstatSync(join(dir, f)).isSymbolicLink(), f);
        t.is(readlinkSync(join(dir, f)), `../../blobs/${etagOf(f, repo.files[f])}`);
        t.deepEqual(readFileSync(join(dir, f)), repo.files[f]);
      }
      // The tokenizer files the repo lacks are recorded as absent, as huggingface_hub does.
      t.true(existsSync(join(repoDir, '.no_exist', C, 'tokenizer.json')));
      // Every request is a resolve URL or the CDN path, HEAD before GET, no token sent when none is set.
      t.true(hub.requests.every((r) => /^\/(tiny-org\/tiny-bert\/resolve\/|cdn\/)/.test(r.url) && r.headers.authorization === undefined));
      t.true(hub.requests.some((r) => r.method === 'HEAD' && r.url === `/${ID}/resolve/main/config.json`));
      // Files after config.json are fetched at its commit.
      t.true(hub.requests.some((r) => r.url === `/${ID}/resolve/${C}/model.safetensors`));
      const last = progress.filter((p) => p.file === 'model.safetensors').pop()!;
      t.deepEqual(last, { id: ID, file: 'model.safetensors', bytes: repo.files['model.safetensors'].length, total: repo.files['model.safetensors'].length });
      const n = hub.requests.length;
      t.is(maxAbsDiff((await logitsOf(ID)).logits, repo.logits), 0);
      t.is(hub.requests.length, n, 'the second load asked the hub');
      t.log(`${cdn} CDN redirect: ${n} requests for the first load, 0 for the second`);
    });
});

test.serial('a connection cut mid-file is resumed with Range and the blob ends byte-identical', async (t) => {
  await withHub({ [ID]: repoOf(repo.files) }, { cutOnce: ['model.safetensors'] }, async (hub, cache) => {
    t.is(maxAbsDiff((await logitsOf(ID)).logits, repo.logits), 0);
    // The resume starts where the bytes received end: at most the half the server sent before the cut.
    const half = repo.files['model.safetensors'].length >> 1;
    const ranges = hub.requests.filter((r) => r.url.startsWith('/cdn/') && r.method === 'GET').map((r) => r.headers.range);
    t.log(`GETs of the weights: ${ranges.map((r) => r ?? 'whole file').join(', ')} (cut after ${half} bytes)`);
    t.is(ranges.length, 2);
    const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    t.true(from > 0 && from <= half, `resumed from ${from}`);
    t.deepEqual(readFileSync(blobOf(cache, 'model.safetensors')), repo.files['model.safetensors']);
    t.false(existsSync(`${blobOf(cache, 'model.safetensors')}.incomplete`));
  });
});

test.serial('a partial blob left by a killed download is resumed from its size', async (t) => {
  await withHub({ [ID]: repoOf(repo.files) }, {}, async (hub, cache) => {
    const blob = blobOf(cache, 'model.safetensors');
    const part = 1000;
    mkdirSync(join(blob, '..'), { recursive: true });
    writeFileSync(`${blob}.incomplete`, repo.files['model.safetensors'].subarray(0, part));
    t.is(maxAbsDiff((await logitsOf(ID)).logits, repo.logits), 0);
    const gets = hub.requests.filter((r) => r.method === 'GET' && r.url.includes('model.safetensors'));
    t.is(gets.length, 1);
    t.is(gets[0].headers.range, `bytes=${part}-`);
    t.deepEqual(readFileSync(blob), repo.files['model.safetensors']);
  });
});

test.serial('a file of the wrong size is refused (E_DOWNLOAD): nothing of it in blobs/ or snapshots/, no partial file left', async (t) => {
  for (const lie of [100, -100])
    await withHub({ [ID]: repoOf(repo.files) }, { lieSize: { 'model.safetensors': lie } }, async (_hub, cache) => {
      const e = await t.throwsAsync(BertModel.fromPretrained(ID), { code: 'E_DOWNLOAD' } as never);
      t.regex(e!.message, /model\.safetensors.*announced \d+ bytes.*refused/);
      const repoDir = repoDirOf(cache, ID);
      t.deepEqual(readdirSync(join(repoDir, 'blobs')), [etagOf('config.json', repo.files['config.json'])]);
      t.false(existsSync(join(repoDir, 'snapshots', C, 'model.safetensors')));
    });
});

test.serial('a gated repo: 401 without a token is E_DOWNLOAD naming HF_TOKEN; the token option and HF_TOKEN are sent as Bearer', async (t) => {
  await withHub({ [ID]: repoOf(repo.files, { token: 'hf_secret' }) }, {}, async (hub) => {
    const e = await t.throwsAsync(BertModel.fromPretrained(ID), { code: 'E_DOWNLOAD' } as never);
    t.regex(e!.message, /gated.*HF_TOKEN/);
    t.is(maxAbsDiff((await logitsOf(ID, { token: 'hf_secret' })).logits, repo.logits), 0);
    t.true(hub.requests.some((r) => r.headers.authorization === 'Bearer hf_secret'));
  });
  await withHub({ [ID]: repoOf(repo.files, { token: 'hf_env' }) }, {}, async () => {
    await withEnv({ HF_TOKEN: 'hf_env' }, async () => t.is(maxAbsDiff((await logitsOf(ID)).logits, repo.logits), 0));
  });
});

test.serial('two loads at once write the weights once (the blob lock); a lock left by a dead process is taken over', async (t) => {
  await withHub({ [ID]: repoOf(repo.files) }, {}, async (hub, cache) => {
    // A lock file of a process that no longer exists (a pid above the kernel's limit), as a kill would leave.
    const lock = join(cache, '.locks', `models--${ID.replace('/', '--')}`, `${etagOf('config.json', repo.files['config.json'])}.blockprune.lock`);
    mkdirSync(join(lock, '..'), { recursive: true });
    writeFileSync(lock, `99999999 ${hostname()}`);
    const [a, b] = await Promise.all([logitsOf(ID), logitsOf(ID)]);
    t.is(maxAbsDiff(a.logits, repo.logits), 0);
    t.is(maxAbsDiff(b.logits, repo.logits), 0);
    t.is(hub.requests.filter((r) => r.method === 'GET' && r.url.startsWith('/cdn/')).length, 1);
    t.false(existsSync(lock));
  });
});

test.serial('HF_HUB_OFFLINE=1 and { offline: true } make no request at all', async (t) => {
  await withHub({ [ID]: repoOf(repo.files) }, {}, async (hub) => {
    await withEnv({ HF_HUB_OFFLINE: '1' }, () => t.throwsAsync(BertModel.fromPretrained(ID), { code: 'E_NOT_CACHED' } as never));
    await t.throwsAsync(BertModel.fromPretrained(ID, { offline: true }), { code: 'E_NOT_CACHED' } as never);
    t.is(hub.requests.length, 0);
  });
});

test.serial('no model.safetensors: the index and its shards are fetched (404s move on); a missing repo, revision or config is named', async (t) => {
  const plain = tempDir();
  for (const [f, b] of Object.entries(repo.files)) writeFileSync(join(plain.path, f), b);
  const m = await BertModel.fromPretrained(plain.path);
  const state = await m.readStateDict();
  m.dispose();
  plain.cleanup();
  const names = Object.keys(state);
  const half = names.length >> 1;
  const shard = (part: string[], file: string) => {
    const d = tempDir();
    writeSafetensorsFile(join(d.path, 'x'), Object.fromEntries(part.map((k) => [k, { dtype: 'F32', shape: state[k].shape, data: state[k].data as Float32Array }])));
    const b = readFileSync(join(d.path, 'x'));
    d.cleanup();
    return [file, b] as const;
  };
  const shards = [shard(names.slice(0, half), 'model-00001-of-00002.safetensors'), shard(names.slice(half), 'model-00002-of-00002.safetensors')];
  const index = { metadata: {}, weight_map: Object.fromEntries(names.map((k, i) => [k, shards[i < half ? 0 : 1][0]])) };
  const files: RepoFiles = { 'config.json': repo.files['config.json'], 'model.safetensors.index.json': Buffer.from(JSON.stringify(index)), ...Object.fromEntries(shards) };
  await withHub({ [ID]: repoOf(files) }, {}, async (hub) => {
    t.is(maxAbsDiff((await logitsOf(ID)).logits, repo.logits), 0);
    t.true(hub.requests.some((r) => r.method === 'HEAD' && r.url.endsWith('/model.safetensors')));
    t.false(hub.requests.some((r) => r.url.endsWith('/pytorch_model.bin')));
    await t.throwsAsync(BertModel.fromPretrained('tiny-org/absent'), { code: 'E_FILE_NOT_FOUND', message: /no such repo/ } as never);
    await t.throwsAsync(BertModel.fromPretrained(ID, { revision: 'v9' }), { code: 'E_FILE_NOT_FOUND', message: /no config\.json|no such revision/ } as never);
  });
});

test.serial('the CLI reads a hub id: info downloads it (one line per file on a non-TTY stderr), then --offline reads the cache', async (t) => {
  await withHub({ [ID]: repoOf(repo.files) }, {}, async (hub) => {
    // Asynchronous: the fake hub answers from this process's event loop.
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [join(__dirname, '..', '..', 'lib', 'cli', 'main.js'), ...args], { encoding: 'utf8', env: process.env }).then(
        (r) => ({ status: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => ({ status: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const first = await cli(['info', ID, '--json']);
    t.is(first.status, 0, first.stderr);
    t.regex(first.stderr, /^tiny-org\/tiny-bert model\.safetensors [\d.]+\/[\d.]+ MB \(100%\), [\d.]+ MB\/s, took \d+s$/m);
    t.is(JSON.parse(first.stdout).task, 'text-classification');
    const n = hub.requests.length;
    const second = await cli(['info', ID, '--offline', '--revision', 'main']);
    t.is(second.status, 0, second.stderr);
    t.is(hub.requests.length, n);
    const bad = await cli(['info', ID, '--revision', '../x']);
    t.is(bad.status, 2);
    t.regex(bad.stderr, /--revision/);
  });
});
