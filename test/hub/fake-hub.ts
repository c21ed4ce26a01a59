/**
 * Test doubles of the Hugging Face hub, all local: a tiny model's files, a cache laid out as huggingface_hub
 * writes it, and an HTTP hub on 127.0.0.1 that answers the resolve URLs with the real hub's header shapes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { TINY } from '../toy';
import { tempDir } from '../helpers';

export type RepoFiles = Record<string, Buffer>;

/** A small WordPiece vocabulary within TINY's 64 ids. */
const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...'abcdefghijklmnopqrstuvwxyz'.split(''), 'good', 'bad', 'film', 'the', 'a', 'is', '##s', '##ing'];

/** The files of a tiny classification BERT (config.json, model.safetensors, vocab.txt), and its logits on `BATCH`. */
export async function tinyRepo(seed: number): Promise<{ files: RepoFiles; logits: Float32Array }> {
  const model = await BertModel.fromConfig({ ...TINY, num_labels: 2 }, { task: 'text-classification', seed });
  const dir = tempDir('blockprune-hub-model-');
  try {
    await model.save(dir.path);
    const logits = (await model.forward(BATCH)).logits.data as Float32Array;
    const files: RepoFiles = {
      'config.json': readFileSync(join(dir.path, 'config.json')),
      'model.safetensors': readFileSync(join(dir.path, 'model.safetensors')),
      'vocab.txt': Buffer.from(VOCAB.join('\n') + '\n'),
    };
    return { files, logits };
  } finally {
    model.dispose();
    dir.cleanup();
  }
}

export const BATCH = { inputIds: Int32Array.from([2, 10, 11, 12, 3, 0, 2, 31, 32, 33, 34, 3]), attentionMask: Int32Array.from([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]), batchSize: 2, seqLen: 6 };

/** The hub's file identities: LFS files (weights) by sha256, the others by their git blob sha1. */
const isLfs = (file: string) => /\.(safetensors|bin)$/.test(file);
export function etagOf(file: string, data: Buffer): string {
  if (isLfs(file)) return createHash('sha256').update(data).digest('hex');
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

export function commitHash(label: string): string {
  return createHash('sha1').update(label).digest('hex');
}

/** `{cache}/models--org--name`. */
export function repoDirOf(cache: string, id: string): string {
  return join(cache, `models--${id.replace('/', '--')}`);
}

/**
 * Lays out `files` at `commit` in `cache` exactly as huggingface_hub does: blobs/{etag}, snapshots/{commit}/{file}
 * as relative symlinks into blobs/, and refs/{ref} for each ref given.
 */
export function writeCache(cache: string, id: string, commit: string, files: RepoFiles, refs: string[] = ['main']): void {
  const repo = repoDirOf(cache, id);
  for (const [file, data] of Object.entries(files)) {
    const blob = join(repo, 'blobs', etagOf(file, data));
    mkdirSync(dirname(blob), { recursive: true });
    writeFileSync(blob, data);
    const pointer = join(repo, 'snapshots', commit, file);
    mkdirSync(dirname(pointer), { recursive: true });
    symlinkSync(relative(dirname(pointer), blob), pointer);
  }
  for (const ref of refs) {
    mkdirSync(join(repo, 'refs', dirname(ref)), { recursive: true });
    writeFileSync(join(repo, 'refs', ref), commit);
  }
}

export interface FakeRepo {
  /** Files by commit. */
  commits: Record<string, RepoFiles>;
  /** Branches and tags: name -> commit. */
  refs: Record<string, string>;
  /** The token a gated repo wants (401 GatedRepo without it). */
  token?: string;
}

export interface FakeHubOptions {
  /** Where the weights' 302 points: a path on the same server (followed by the HEAD) or an absolute URL (not followed). */
  cdn?: 'relative' | 'absolute';
  /** Files whose first full GET is cut after half of the body (once each). */
  cutOnce?: string[];
  /** Files whose announced size (X-Linked-Size / Content-Length) is off by this many bytes. */
  lieSize?: Record<string, number>;
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface FakeHub {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP hub on 127.0.0.1: HEAD/GET /{id}/resolve/{revision}/{file} with X-Repo-Commit and ETag; the weights
 * (LFS) answer 302 with X-Linked-Etag and X-Linked-Size to /cdn/{sha256}, which serves them with Range
 * support; 404 with X-Error-Code for what does not exist; 401 GatedRepo without the repo's token.
 */
export async function startFakeHub(repos: Record<string, FakeRepo>, o: FakeHubOptions = {}): Promise<FakeHub> {
  const requests: SeenRequest[] = [];
  const blobs = new Map<string, { file: string; data: Buffer }>();
  for (const repo of Object.values(repos))
    for (const files of Object.values(repo.commits)) for (const [file, data] of Object.entries(files)) if (isLfs(file)) blobs.set(etagOf(file, data), { file, data });
  const cut = new Set(o.cutOnce ?? []);
  let base = '';
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const head = req.method === 'HEAD';
    const url = new URL(req.url ?? '/', 'http://x');
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const blob = blobs.get(cdn[1]);
      if (!blob) return void res.writeHead(404).end();
      const size = blob.data.length;
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = range ? Number(range[1]) : 0;
      if (from >= size && range) return void res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      const body = blob.data.subarray(from);
      res.writeHead(range ? 206 : 200, {
        'content-length': body.length,
        etag: `"cdn-${cdn[1].slice(0, 8)}"`,
        'accept-ranges': 'bytes',
        ...(range ? { 'content-range': `bytes ${from}-${size - 1}/${size}` } : {}),
      });
      if (head) return void res.end();
      if (!range && cut.delete(blob.file)) {
        // The connection drops after half of the body (once the client has had time to read it: a stream
        // that errors drops the chunks it had not handed on yet).
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 200));
        return;
      }
      return void res.end(body);
    }
    const m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repo = m ? repos[m[1]] : undefined;
    if (!m || !repo) return void res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end();
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end();
    const revision = decodeURIComponent(m[2]);
    const commit = repo.refs[revision] ?? (repo.commits[revision] ? revision : undefined);
    if (!commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
    const file = m[3].split('/').map(decodeURIComponent).join('/');
    const data = repo.commits[commit][file];
    if (!data) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': commit }).end();
    const size = data.length + (o.lieSize?.[file] ?? 0);
    if (isLfs(file)) {
      const sha = etagOf(file, data);
      const location = o.cdn === 'absolute' ? `${base}/cdn/${sha}` : `/cdn/${sha}`;
      return void res
        .writeHead(302, { location, 'x-repo-commit': commit, 'x-linked-etag': `"${sha}"`, 'x-linked-size': size, etag: `"${etagOf('pointer', data)}"` })
        .end();
    }
    res.writeHead(200, { 'x-repo-commit': commit, etag: `"${etagOf(file, data)}"`, 'content-length': size });
    res.end(head ? undefined : data);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Sets environment variables for the duration of `fn` (tests that use it are serial), then restores them. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (vs: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(vs)) if (val === undefined) delete process.env[k];
    else process.env[k] = val;
  };
  set(vars);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}
