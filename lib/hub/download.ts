/**
 * Downloads a model from the Hugging Face hub into the cache, as huggingface_hub's hf_hub_download does:
 *
 * - `HEAD {endpoint}/{id}/resolve/{revision}/{file}` (Accept-Encoding: identity), following relative
 *   redirects only (a renamed repo) and not the absolute one to the CDN, whose response already says what
 *   is needed: X-Repo-Commit, X-Linked-Etag (else ETag), X-Linked-Size (else Content-Length).
 * - The first file (config.json) fixes the commit; refs/{revision} records it and every other file is
 *   fetched at that commit, so a push during the download cannot mix two commits' files.
 * - A file is `GET` into `blobs/{etag}.incomplete`, resumed with `Range: bytes=N-` when that file exists
 *   (left by an interrupted download, or by a connection cut now: retried up to 5 times), every write checked,
 *   its size compared with the announced one (a wrong size is refused, E_DOWNLOAD, and the partial file
 *   removed), fsynced and renamed to `blobs/{etag}`; then `snapshots/{commit}/{file}` is made a relative
 *   symlink to it (a copy where symlinks are not allowed), atomically. A lock per blob keeps two processes
 *   from writing it at once. A file the hub does not have (404) is recorded in `.no_exist/{commit}/`.
 *
 * `Authorization: Bearer <token>` goes with every request (fetch drops it on a redirect to another host).
 */
import { copyFileSync, existsSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { ensureDir, fsyncDir, removeStaleTemps, tempSibling, writeError, writeFileAtomicSync } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import { commitOf, isCommit, shardsOf, TOKENIZER_FILES } from './cache';
import { withFileLock } from './file-lock';

/** One step of a file's download: `bytes` of `total` are in the cache (bytes === total: the file is done). */
export interface DownloadProgress {
  /** The hub id. */
  id: string;
  file: string;
  bytes: number;
  total: number;
}

export interface DownloadContext {
  id: string;
  /** The cache folder (`hubCacheDir()` or the cacheDir option). */
  cacheDir: string;
  repoDir: string;
  endpoint: string;
  token?: string;
  onProgress?: (p: DownloadProgress) => void;
  env?: NodeJS.ProcessEnv;
}

/** The hub could not be reached (DNS, refused connection, timeout): the caller falls back on the cache. */
export class HubUnreachable extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    const why = (cause as { cause?: { code?: string; message?: string } })?.cause;
    super(`${url}: ${why?.code ?? why?.message ?? (cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'HubUnreachable';
  }
}

interface FileMeta {
  commit: string;
  etag: string;
  size: number;
}

const RETRIES = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Location that stays on the same host (RFC 7231 allows a path alone): huggingface_hub follows only these in a HEAD. */
function relativeLocation(loc: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(loc) && !loc.startsWith('//');
}

/** huggingface_hub's _normalize_etag: W/"x" and "x" are x. */
function normalizeEtag(e: string): string {
  return e.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const n = Number(env[name]);
  return Number.isFinite(n) && n > 0 ? n * 1000 : fallback * 1000;
}

class HubFiles {
  private readonly env: NodeJS.ProcessEnv;
  constructor(private readonly c: DownloadContext) {
    this.env = c.env ?? process.env;
  }

  url(revision: string, file: string): string {
    return `${this.c.endpoint}/${this.c.id}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
  }

  private async request(url: string, init: Omit<RequestInit, 'headers'> & { headers?: Record<string, string> }, timeoutMs: number): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': 'blockprune (huggingface_hub-compatible)', 'accept-encoding': 'identity', ...init.headers };
    if (this.c.token) headers.authorization = `Bearer ${this.c.token}`;
    // A timeout for the answer's headers only: the body of a large file may take long, and undici times out a stalled body.
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    try {
      return await fetch(url, { ...init, headers, signal: ac.signal });
    } catch (e) {
      throw new HubUnreachable(url, e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The hub's refusal of `file`, coded: E_FILE_NOT_FOUND for what does not exist, E_DOWNLOAD otherwise. */
  private refusal(file: string, url: string, res: Response): BlockpruneError {
    const code = res.headers.get('x-error-code');
    const at = `${this.c.id} ${file} (${url}: HTTP ${res.status}${code ? `, ${code}` : ''})`;
    const auth = this.c.token ? 'the token given was refused' : 'set HF_TOKEN or pass { token } (the CLI reads HF_TOKEN)';
    if (code === 'GatedRepo') return new BlockpruneError('E_DOWNLOAD', `${at}: the repo is gated: accept its conditions on its page, then ${auth}`);
    if (code === 'RepoNotFound') return new BlockpruneError('E_FILE_NOT_FOUND', `${at}: no such repo on ${this.c.endpoint}, or it is private (${auth})`);
    if (code === 'RevisionNotFound') return new BlockpruneError('E_FILE_NOT_FOUND', `${at}: the repo has no such revision`);
    if (res.status === 404) return new BlockpruneError('E_FILE_NOT_FOUND', `${at}: the repo has no such file`);
    if (res.status === 401 || res.status === 403) return new BlockpruneError('E_DOWNLOAD', `${at}: the repo is private or gated: ${auth}`);
    return new BlockpruneError('E_DOWNLOAD', `${at}: the hub refused the request`);
  }

  /** The file's commit, etag and size; undefined when the hub says it does not exist (EntryNotFound). */
  async head(revision: string, file: string): Promise<FileMeta | undefined> {
    let url = this.url(revision, file);
    const chain: Response[] = [];
    for (;;) {
      const res = await this.request(url, { method: 'HEAD', redirect: 'manual' }, seconds(this.env, 'HF_HUB_ETAG_TIMEOUT', 10));
      chain.push(res);
      const loc = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && loc && relativeLocation(loc) && chain.length <= 10) url = new URL(loc, url).href;
      else break;
    }
    const last = chain[chain.length - 1];
    if (last.status === 404 && (last.headers.get('x-error-code') ?? 'EntryNotFound') === 'EntryNotFound') return undefined;
    if (last.status >= 400) throw this.refusal(file, url, last);
    // The last answer's headers first, then those of the redirects before it (a hub behind a same-host CDN path).
    const header = (name: string) => chain.map((r) => r.headers.get(name)).reverse().find((x) => x !== null) ?? undefined;
    const commit = header('x-repo-commit');
    const etag = header('x-linked-etag') ?? last.headers.get('etag') ?? undefined;
    const size = Number(header('x-linked-size') ?? last.headers.get('content-length') ?? NaN);
    const name = etag === undefined ? '' : normalizeEtag(etag);
    if (commit === undefined || !isCommit(commit) || !/^[\w.-]+$/.test(name) || name.startsWith('.') || !Number.isSafeInteger(size) || size < 0)
      throw new BlockpruneError(
        'E_DOWNLOAD',
        `${this.c.id} ${file}: ${url} did not answer as the Hugging Face hub does (X-Repo-Commit ${commit}, ETag ${etag}, size ${size}); is HF_ENDPOINT (${this.c.endpoint}) right?`,
      );
    return { commit, etag: name, size };
  }

  private progress(file: string, bytes: number, total: number): void {
    this.c.onProgress?.({ id: this.c.id, file, bytes, total });
  }

  /**
   * Streams `url` into `incomplete` from its current size on (Range) and returns the size reached; a cut
   * connection is retried from where it stopped. A body longer than announced is not read past its first
   * chunk too many (the size returned is then larger than the announced one).
   */
  private async fetchInto(url: string, incomplete: string, file: string, meta: FileMeta): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      let have = statSync(incomplete, { throwIfNoEntry: false })?.size ?? 0;
      // A partial file longer than the blob is not a prefix of it.
      if (have > meta.size) have = 0;
      if (have === meta.size) return have;
      const res = await this.request(url, { method: 'GET', redirect: 'follow', headers: have > 0 ? { range: `bytes=${have}-` } : {} }, seconds(this.env, 'HF_HUB_DOWNLOAD_TIMEOUT', 10));
      if (res.status === 416 && have > 0) {
        // The server has no bytes past ours: the partial file cannot be resumed; start again.
        await res.body?.cancel();
        rmSync(incomplete, { force: true });
        continue;
      }
      if (!res.ok || !res.body) throw this.refusal(file, url, res);
      // A 200 sends the whole file again; a 206 must start where the partial file ends.
      if (res.status === 200) have = 0;
      else if (Number(/^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]) !== have) {
        await res.body.cancel();
        rmSync(incomplete, { force: true });
        continue;
      }
      const fh = await open(incomplete, have > 0 ? 'a' : 'w');
      let done = have;
      let cut: unknown;
      try {
        const reader = res.body.getReader();
        this.progress(file, done, meta.size);
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (e) {
            cut = e;
            break;
          }
          if (chunk.done) break;
          if (done + chunk.value.length > meta.size) {
            // Longer than announced: the caller refuses it (without writing past the announced size).
            await reader.cancel().catch(() => undefined);
            done += chunk.value.length;
            break;
          }
          // A short write is resumed; ENOSPC surfaces (E_NO_SPACE) and the partial file stays for a later resume.
          for (let off = 0; off < chunk.value.length; ) {
            const { bytesWritten } = await fh.write(chunk.value, off, chunk.value.length - off);
            if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'ENOSPC' });
            off += bytesWritten;
          }
          done += chunk.value.length;
          this.progress(file, done, meta.size);
        }
        await fh.sync();
      } catch (e) {
        throw writeError(e, 'cannot write', incomplete);
      } finally {
        await fh.close();
      }
      if (cut === undefined) return done;
      if (attempt >= RETRIES) throw new HubUnreachable(url, cut);
      await sleep(250 * (attempt + 1));
    }
  }

  /** blobs/{etag}, downloaded unless there (another process may have placed it while we waited for the lock). */
  private async blob(revision: string, file: string, meta: FileMeta): Promise<string> {
    const blobs = join(this.c.repoDir, 'blobs');
    const blob = join(blobs, meta.etag);
    if (existsSync(blob)) return blob;
    const lock = join(this.c.cacheDir, '.locks', basename(this.c.repoDir), `${meta.etag}.blockprune.lock`);
    await withFileLock(lock, async () => {
      if (existsSync(blob)) return;
      ensureDir(blobs);
      const incomplete = `${blob}.incomplete`;
      const url = this.url(revision, file);
      const size = await this.fetchInto(url, incomplete, file, meta);
      if (size !== meta.size) {
        // Not the file announced: the partial file is removed (a resume would build on it) and nothing is placed.
        rmSync(incomplete, { force: true });
        throw new BlockpruneError(
          'E_DOWNLOAD',
          `${this.c.id} ${file} (${url}): the hub announced ${meta.size} bytes (X-Linked-Size / Content-Length) but sent ${size}${size > meta.size ? ' or more' : ''}: refused, nothing of it was placed in the cache`,
        );
      }
      try {
        renameSync(incomplete, blob);
      } catch (e) {
        throw writeError(e, 'cannot place', blob);
      }
      fsyncDir(blobs);
    });
    return blob;
  }

  /** snapshots/{commit}/{file} -> ../../blobs/{etag}, replaced atomically (a copy where symlinks are refused). */
  private link(blob: string, pointer: string): void {
    ensureDir(dirname(pointer));
    removeStaleTemps(dirname(pointer), basename(pointer));
    const tmp = tempSibling(pointer);
    try {
      try {
        symlinkSync(relative(dirname(pointer), blob), tmp);
      } catch (e) {
        if (!['EPERM', 'EACCES', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
        copyFileSync(blob, tmp);
      }
      renameSync(tmp, pointer);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw writeError(e, 'cannot place', pointer);
    }
    fsyncDir(dirname(pointer));
  }

  /**
   * `file` at `commit` in the snapshot: true when it is there (already, or now), false when the hub does not
   * have it (recorded in .no_exist/, so that neither this library nor huggingface_hub asks again).
   */
  async fetch(commit: string, file: string, meta?: FileMeta): Promise<boolean> {
    const pointer = join(this.c.repoDir, 'snapshots', commit, file);
    if (existsSync(pointer)) return true;
    const noExist = join(this.c.repoDir, '.no_exist', commit, file);
    if (existsSync(noExist)) return false;
    const m = meta ?? (await this.head(commit, file));
    if (!m) {
      writeFileAtomicSync(noExist, '');
      return false;
    }
    this.link(await this.blob(commit, file, m), pointer);
    this.progress(file, m.size, m.size);
    return true;
  }
}

/**
 * Downloads config.json, the weights (model.safetensors, else model.safetensors.index.json and its shards,
 * else pytorch_model.bin) and the tokenizer files the repo has, at `revision`, into the cache. Returns the
 * snapshot folder. Throws HubUnreachable when the hub cannot be reached, coded errors for its refusals.
 */
export async function downloadModel(c: DownloadContext, revision: string): Promise<string> {
  const hub = new HubFiles(c);
  const config = await hub.head(revision, 'config.json');
  if (!config)
    throw new BlockpruneError('E_FILE_NOT_FOUND', `${c.id} has no config.json at revision ${revision} (${hub.url(revision, 'config.json')}): not a transformers model repo`);
  const commit = config.commit;
  if (revision !== commit && commitOf(c.repoDir, revision) !== commit) writeFileAtomicSync(join(c.repoDir, 'refs', revision), commit);
  await hub.fetch(commit, 'config.json', config);
  const snapshot = join(c.repoDir, 'snapshots', commit);
  if (!(await hub.fetch(commit, 'model.safetensors'))) {
    if (await hub.fetch(commit, 'model.safetensors.index.json')) {
      const shards = shardsOf(join(snapshot, 'model.safetensors.index.json'));
      if (!shards) throw new BlockpruneError('E_BAD_CHECKPOINT', `${c.id}: model.safetensors.index.json at ${commit} has no usable weight_map`);
      for (const s of shards)
        if (!(await hub.fetch(commit, s))) throw new BlockpruneError('E_FILE_NOT_FOUND', `${c.id}: shard ${s}, listed in model.safetensors.index.json, is not in the repo at ${commit}`);
    } else if (!(await hub.fetch(commit, 'pytorch_model.bin')))
      throw new BlockpruneError('E_FILE_NOT_FOUND', `${c.id} has no weights at ${commit}: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin`);
  }
  for (const f of TOKENIZER_FILES) await hub.fetch(commit, f);
  return snapshot;
}
