/**
 * Model sources: a local directory, or a Hugging Face hub id (`name` or `org/name`) resolved through the
 * cache that huggingface_hub, transformers and huggingface-cli share (./cache.ts), and downloaded into it
 * when the machine is online (./download.ts).
 *
 * A string that is an existing directory is that directory, whatever it looks like. Any other string shaped
 * like a hub id is a hub id; anything else is a missing directory (E_FILE_NOT_FOUND, as before hub ids).
 *
 * The cache comes first, as in transformers.js: a snapshot that holds config.json, the weights and the
 * tokenizer is used without asking the hub. (huggingface_hub asks the hub for a branch's commit on every
 * online call; to move a cached branch to its new commit, pass the commit as `revision`, or remove
 * refs/<branch>.) Offline (HF_HUB_OFFLINE=1 or `offline: true`) nothing touches the network; with the model
 * not cached, or the hub unreachable, the error is E_NOT_CACHED.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import * as v from '../runtime/validate';
import { checkRevision, commitOf, hubCacheDir, hubEndpoint, hubToken, isHubId, notCachedError, offlineByEnv, repoFolder, snapshotState } from './cache';
import { downloadModel, HubUnreachable, type DownloadProgress } from './download';

export type { DownloadProgress } from './download';

/** Where a hub id is looked for and how it is fetched (fromPretrained, pipeline and the CLI take these). */
export interface HubOptions {
  /** A branch, tag or commit of the repo (default 'main'). */
  revision?: string;
  /** Never touch the network: the cache or nothing (E_NOT_CACHED). HF_HUB_OFFLINE=1 forces it on. */
  offline?: boolean;
  /** An access token for gated and private repos (default HF_TOKEN, else the token `huggingface-cli login` saved). */
  token?: string;
  /** The hub cache folder (default HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Called as each downloaded file grows: bytes done and total, per file. */
  onProgress?: (p: DownloadProgress) => void;
}

export const HUB_OPTIONS = ['revision', 'offline', 'token', 'cacheDir', 'onProgress'] as const;

/** The hub options of an options bag, checked (the bag's keys are checked by its owner, with its own list). */
export function checkHubOptions(o: Record<string, unknown>, prefix = 'options'): HubOptions {
  if (o.revision !== undefined) checkRevision(`${prefix}.revision`, o.revision);
  if (o.offline !== undefined) v.boolean(`${prefix}.offline`, o.offline);
  if (o.token !== undefined) v.string(`${prefix}.token`, o.token, { nonEmpty: true });
  if (o.cacheDir !== undefined) v.string(`${prefix}.cacheDir`, o.cacheDir, { nonEmpty: true });
  if (o.onProgress !== undefined) v.func(`${prefix}.onProgress`, o.onProgress);
  return { revision: o.revision, offline: o.offline, token: o.token, cacheDir: o.cacheDir, onProgress: o.onProgress } as HubOptions;
}

function isDirectory(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/**
 * A model source given on the command line or in options, checked without any work: an existing directory,
 * or a hub id that is not a path here. Anything else is E_FILE_NOT_FOUND as a missing directory. Returns it.
 */
export function checkModelSource(name: string, value: unknown): string {
  const s = v.string(name, value, { nonEmpty: true });
  if (!existsSync(resolve(s)) && isHubId(s)) return s;
  v.modelDirectory(name, s);
  return s;
}

interface Place {
  id: string;
  revision: string;
  cacheDir: string;
  repoDir: string;
}

function placeOf(id: string, o: Pick<HubOptions, 'revision' | 'cacheDir'>): Place {
  const revision = o.revision ?? 'main';
  const cacheDir = o.cacheDir !== undefined ? resolve(o.cacheDir) : hubCacheDir();
  return { id, revision, cacheDir, repoDir: repoFolder(cacheDir, id) };
}

/** The snapshot of `p` when it can be loaded, with `wantTokenizer`: also when the tokenizer is settled. */
function cachedSnapshot(p: Place, wantTokenizer: boolean): { dir?: string; missing: string } {
  const commit = commitOf(p.repoDir, p.revision);
  if (commit === undefined) return { missing: `no refs/${p.revision} and no snapshot` };
  const s = snapshotState(p.repoDir, commit);
  if (s.missing.length === 0 && (s.tokenizerSettled || !wantTokenizer)) return { dir: s.dir, missing: '' };
  return { missing: s.missing.length ? `snapshots/${commit} lacks ${s.missing.join(' and ')}` : `snapshots/${commit} has no tokenizer` };
}

/**
 * The directory `idOrDir` stands for, downloading into the cache when it is a hub id not cached and the
 * hub may be asked. Options are checked first. `name` names the argument in errors.
 */
export async function resolveModel(idOrDir: string, options: HubOptions = {}, name = 'idOrDir'): Promise<string> {
  const o = checkHubOptions(v.options('options', options, HUB_OPTIONS));
  const s = checkModelSource(name, idOrDir);
  if (isDirectory(resolve(s))) return resolve(s);
  const p = placeOf(s, o);
  const cached = cachedSnapshot(p, true);
  if (cached.dir) return cached.dir;
  const offline = o.offline === true || offlineByEnv();
  if (offline) {
    // A model without its tokenizer still loads; only the download would have fetched it.
    const loadable = cachedSnapshot(p, false);
    if (loadable.dir) return loadable.dir;
    throw notCachedError(s, p.revision, p.repoDir, `downloads are off (${o.offline ? '{ offline: true }' : 'HF_HUB_OFFLINE'}) and ${cached.missing}`);
  }
  const endpoint = hubEndpoint();
  try {
    return await downloadModel({ id: s, cacheDir: p.cacheDir, repoDir: p.repoDir, endpoint, token: o.token ?? hubToken(), onProgress: o.onProgress }, p.revision);
  } catch (e) {
    if (!(e instanceof HubUnreachable)) throw e;
    const loadable = cachedSnapshot(p, false);
    if (loadable.dir) return loadable.dir;
    throw notCachedError(s, p.revision, p.repoDir, `the hub could not be reached (${e.message}) and ${cached.missing}`, e);
  }
}

/**
 * The local path `idOrDir` stands for, without any network: a path that exists or is not a hub id is
 * itself (resolved); a hub id is its cached snapshot, or E_NOT_CACHED. For synchronous readers
 * (loadTokenizer) that look into a model already resolved or cached.
 */
export function localModelPath(idOrDir: string, options: Pick<HubOptions, 'revision' | 'cacheDir'> = {}): string {
  const abs = resolve(idOrDir);
  if (existsSync(abs) || !isHubId(idOrDir)) return abs;
  const p = placeOf(idOrDir, options);
  const cached = cachedSnapshot(p, false);
  if (cached.dir) return cached.dir;
  throw notCachedError(idOrDir, p.revision, p.repoDir, `${cached.missing} (load it first with fromPretrained or pipeline, which download it)`);
}
