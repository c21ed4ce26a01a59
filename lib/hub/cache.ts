/**
 * The Hugging Face cache, read as huggingface_hub reads it (constants.py, file_download.py):
 *
 *   {cache}/models--{org}--{name}/
 *     refs/{revision}             the commit a branch or tag pointed to when it was last resolved
 *     snapshots/{commit}/{file}   relative symlinks into blobs/ (plain files in caches made without symlinks)
 *     blobs/{etag}                file contents, named by their git sha1 (small files) or sha256 (LFS files)
 *     .no_exist/{commit}/{file}   files the hub said do not exist at that commit
 *
 * {cache} is HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (its older name), else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. A cache filled by huggingface-cli,
 * transformers or this library is the same cache: each reads what the others wrote.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';

type Env = NodeJS.ProcessEnv;

/** The weights a model directory may hold, in the order the loader (and the download) tries them. */
export const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin'] as const;
/** Tokenizer files fetched when the repo has them (each is optional). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'special_tokens_map.json'] as const;

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/** The hub cache folder the environment names (see the module comment), absolute. */
export function hubCacheDir(env: Env = process.env): string {
  const hub = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  if (hub) return resolve(expandHome(hub));
  const home = env.HF_HOME ? expandHome(env.HF_HOME) : join(env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'huggingface');
  return resolve(home, 'hub');
}

/** huggingface_hub's truth values for HF_HUB_OFFLINE: 1, ON, YES, TRUE (any case). */
export function offlineByEnv(env: Env = process.env): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').trim().toUpperCase());
}

export function hubEndpoint(env: Env = process.env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/** HF_TOKEN, else the older HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` writes (HF_TOKEN_PATH or $HF_HOME/token). */
export function hubToken(env: Env = process.env): string | undefined {
  const t = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (t) return t.trim();
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(env.HF_HOME ? expandHome(env.HF_HOME) : join(homedir(), '.cache', 'huggingface'), 'token');
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

// Python's \w in a str pattern is Unicode-aware: letters, digits (any script) and '_'.
const WORD = '[\\p{L}\\p{N}_]';
const PART = `${WORD}(?:[\\p{L}\\p{N}_.-]*${WORD})?`;
const NAMESPACE = new RegExp(`^${PART}$`, 'u');

/**
 * huggingface_hub's validate_repo_id: `name` or `namespace/name`, letters, digits, '-', '_', '.', neither
 * part starting or ending with '-' or '.', no '--' or '..', the name at most 96 characters, not ending in '.git'.
 */
export function isHubId(s: string): boolean {
  const parts = s.split('/');
  if (parts.length > 2 || s.includes('--') || s.includes('..') || s.endsWith('.git')) return false;
  const name = parts[parts.length - 1];
  return parts.every((p) => NAMESPACE.test(p)) && [...name].length <= 96;
}

export function isCommit(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/**
 * A revision: a branch, a tag, a commit, or a ref such as `refs/pr/1`. It names a file under refs/, so a
 * path that would leave that folder ('..', an absolute path, a backslash) is refused.
 */
export function checkRevision(name: string, value: unknown): string {
  const r = v.string(name, value, { nonEmpty: true });
  // eslint-disable-next-line no-control-regex
  const bad = isAbsolute(r) || /[\\\x00-\x1f]/.test(r) || r.split('/').some((seg) => seg === '' || seg === '.' || seg === '..');
  if (bad) throw v.invalidParameterError(name, "a branch, tag or commit (e.g. 'main', 'v1.0', 'refs/pr/1')", r, 'range');
  return r;
}

/** A file name the hub gave (a shard in an index): relative, inside the snapshot. */
export function isRepoFile(f: unknown): f is string {
  return typeof f === 'string' && f.length > 0 && !isAbsolute(f) && !f.includes('\\') && f.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** `{cache}/models--{org}--{name}`. */
export function repoFolder(cacheDir: string, id: string): string {
  return join(cacheDir, ['models', ...id.split('/')].join('--'));
}

/** The commit `revision` stands for in this repo folder: itself when it is one, else refs/{revision}; undefined when unknown. */
export function commitOf(repoDir: string, revision: string): string | undefined {
  if (isCommit(revision)) return revision;
  try {
    const c = readFileSync(join(repoDir, 'refs', revision), 'utf8').trim();
    return c || undefined;
  } catch {
    return undefined;
  }
}

function isFile(p: string): boolean {
  // statSync follows the snapshot's symlink: a link whose blob was deleted is not a file.
  return statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

/** The shard files a model.safetensors.index.json lists (undefined when it cannot be read as one). */
export function shardsOf(indexFile: string): string[] | undefined {
  try {
    const map = JSON.parse(readFileSync(indexFile, 'utf8'))?.weight_map;
    const files = map && typeof map === 'object' ? [...new Set(Object.values(map))] : [];
    return files.length > 0 && files.every(isRepoFile) ? (files as string[]) : undefined;
  } catch {
    return undefined;
  }
}

export interface SnapshotState {
  dir: string;
  /** What a load needs and the snapshot lacks: config.json, the weights. Empty when it can be loaded. */
  missing: string[];
  /** A tokenizer file is there, or the hub said none of them exists: no reason to ask the hub again. */
  tokenizerSettled: boolean;
}

/** What snapshots/{commit}/ of a repo folder holds, for a load. */
export function snapshotState(repoDir: string, commit: string): SnapshotState {
  const dir = join(repoDir, 'snapshots', commit);
  const missing: string[] = [];
  if (!isFile(join(dir, 'config.json'))) missing.push('config.json');
  const index = join(dir, 'model.safetensors.index.json');
  const shards = isFile(index) ? shardsOf(index) : undefined;
  const weights =
    isFile(join(dir, 'model.safetensors')) || (shards !== undefined && shards.every((s) => isFile(join(dir, s)))) || isFile(join(dir, 'pytorch_model.bin'));
  if (!weights) missing.push(`the weights (${WEIGHT_FILES.join(', ')}${shards ? ' and its shards' : ''})`);
  const tokenizerSettled = TOKENIZER_FILES.some((f) => isFile(join(dir, f))) || TOKENIZER_FILES.every((f) => existsSync(join(repoDir, '.no_exist', commit, f)));
  return { dir, missing, tokenizerSettled };
}

/**
 * The one error for a hub id that cannot be had: it names the id, the revision, the cache folder searched,
 * why (offline, the hub unreachable, files missing) and the three ways to fill the cache.
 */
export function notCachedError(id: string, revision: string, repoDir: string, why: string, cause?: unknown): BlockpruneError {
  const rev = revision === 'main' ? '' : ` --revision ${revision}`;
  return new BlockpruneError(
    'E_NOT_CACHED',
    `${id} is not a local directory, and the Hugging Face cache has no usable copy of it at revision ${revision}: ${why}. ` +
      `Searched ${repoDir}. To fill it: run \`huggingface-cli download ${id}${rev}\` on a connected machine and copy that ` +
      `folder (or the whole cache) here (HF_HUB_CACHE or HF_HOME name the cache), or copy the model's directory here and pass ` +
      `its path, or unset HF_HUB_OFFLINE (and drop { offline: true } / --offline) on a machine that reaches the hub.`,
    cause === undefined ? undefined : { cause },
  );
}
