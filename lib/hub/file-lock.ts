/**
 * A lock between processes over one file: created exclusively (O_EXCL), holding "pid hostname", removed when
 * the work is done. A lock whose process is dead on this machine (a kill mid-download) is stale and taken
 * over; one held by a live process, or by another machine on a shared cache, is waited for.
 *
 * huggingface_hub locks with flock(2) on `.locks/.../{etag}.lock`; Node has no flock, and those files stay
 * behind after Python releases them, so this lock has its own name beside them (`{etag}.blockprune.lock`):
 * it keeps blockprune processes from writing one blob at once. A Python process downloading the same blob
 * at the same moment is not excluded; the blob is still whole, since each writer renames a complete file.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { alive, ensureDir, writeError } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw writeError(e, 'cannot create the lock', path);
  }
  try {
    writeSync(fd, `${process.pid} ${hostname()}`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** A lock left by a dead process of this machine. An unreadable or empty one is being written: not stale. */
function stale(path: string): boolean {
  let owner: string;
  try {
    owner = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  const m = /^(\d+) (.+)$/.exec(owner);
  return m !== null && m[2] === hostname() && !alive(Number(m[1]));
}

/**
 * Runs `fn` holding the lock `path`; waits (polling every `pollMs`) while another process holds it, and
 * gives up after `timeoutMs` with E_BUSY naming the lock file.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<T> {
  const { timeoutMs = 30 * 60_000, pollMs = 100 } = options;
  ensureDir(dirname(path));
  const t0 = Date.now();
  while (!tryCreate(path)) {
    if (stale(path)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() - t0 > timeoutMs)
      throw new BlockpruneError('E_BUSY', `another process has held ${path} for ${Math.round(timeoutMs / 1000)} s; remove the file if no process is downloading`);
    await sleep(pollMs);
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
