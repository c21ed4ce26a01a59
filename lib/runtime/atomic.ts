/**
 * Durable, atomic writes for every file the TypeScript side writes: reports, PNGs, vocab and tokenizer
 * files, ONNX models, trainer state, JSON-lines logs. The native core does the same for weights and configs
 * (native/atomic_file.h), with the same temporary names, so one cleanup rule covers both.
 *
 * A file is written to a temporary sibling `.tmp-<pid>-<seq>-<name>` (created exclusively), every write is
 * checked (a short write is resumed, so a full disk surfaces as an error, never as a shorter file), then
 * fsync, close, rename over the target and fsync of the directory (so the rename survives a power cut). On
 * failure the temporary file is removed, the previous file is untouched, and a BlockpruneError is thrown:
 * E_NO_SPACE for ENOSPC/EDQUOT, E_WRITE_FAILED otherwise, naming the path and the cause. Temporaries whose
 * process is dead (a kill mid-write) are removed by the next write of the same file or the next checkpoint.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writevSync,
} from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BlockpruneError } from './errors';

/** What the writers accept: text (UTF-8), bytes, or a list of byte chunks written in order. */
export type FileData = string | Uint8Array | readonly Uint8Array[];

let seq = 0;
const TEMP_NAME = /^\.tmp-(\d+)-(\d+)-(.+)$/;

/** A fresh temporary name beside `path`: `<dir>/.tmp-<pid>-<seq>-<name>`. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.tmp-${process.pid}-${++seq}-${basename(path)}`);
}

/**
 * The coded error of a failed write (an error that already has a blockprune code passes through):
 * E_NO_SPACE when the disk or quota is full, E_WRITE_FAILED otherwise, with `what`, the path and the cause.
 */
export function writeError(err: unknown, what: string, path: string): BlockpruneError {
  if (err instanceof BlockpruneError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const cause = err instanceof Error ? err.message : String(err);
  if (errno === 'ENOSPC' || errno === 'EDQUOT')
    return new BlockpruneError('E_NO_SPACE', `${what} ${path}: ${cause} (the disk or quota is full)`, { cause: err });
  return new BlockpruneError('E_WRITE_FAILED', `${what} ${path}: ${cause}`, { cause: err });
}

/** Cleanup after a failure: its own errors must not hide the one being thrown. */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    /* the error being thrown is what matters */
  }
}

/** Whether process `pid` (of this machine) is running: a lock or a temporary it owns is not stale. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporaries in `dir` left by dead processes (all of them, or only those of the file `name`).
 * Best effort: what cannot be removed now is removed next time.
 */
export function removeStaleTemps(dir: string, name?: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = TEMP_NAME.exec(e);
    if (!m || (name !== undefined && m[3] !== name) || alive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, e), { recursive: true, force: true });
    } catch {
      /* left for the next cleanup */
    }
  }
}

/** fsync of a directory, so that the renames and creations in it are durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    // Some file systems cannot sync a directory: their renames are as durable as they get.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EROFS') throw writeError(e, 'cannot flush directory', dir);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** mkdir -p with coded errors (a file where a directory is needed is E_WRITE_FAILED). */
export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(e, 'cannot create directory', dir);
  }
}

function chunksOf(data: FileData): Uint8Array[] {
  const list = typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : [...data];
  return list.filter((c) => c.length > 0);
}

function shortWrite(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write returned 0 bytes'), { code: 'ENOSPC' });
}

/** What is left of `batch` after `n` bytes of it were written (a short write resumes there). */
function unwritten(batch: Uint8Array[], n: number): Uint8Array[] {
  if (n <= 0) throw shortWrite();
  let i = 0;
  while (i < batch.length && n >= batch[i].length) n -= batch[i++].length;
  return i < batch.length ? [batch[i].subarray(n), ...batch.slice(i + 1)] : [];
}

// writev takes at most IOV_MAX (1024) buffers at once.
const BATCH = 512;

function writeAllSync(fd: number, chunks: Uint8Array[]): void {
  for (let i = 0; i < chunks.length; i += BATCH) {
    let rest = chunks.slice(i, i + BATCH);
    while (rest.length) rest = unwritten(rest, writevSync(fd, rest));
  }
}

function openTempSync(target: string): { fd: number; tmp: string } {
  for (;;) {
    const tmp = tempSibling(target);
    try {
      return { fd: openSync(tmp, 'wx'), tmp };
    } catch (e) {
      // A temporary of an earlier process that had this pid: take the next name.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Writes `data` to `path` atomically and durably (see the module comment); creates missing directories. */
export function writeFileAtomicSync(path: string, data: FileData): void {
  const target = resolve(path);
  ensureDir(dirname(target));
  removeStaleTemps(dirname(target), basename(target));
  let tmp: string | undefined;
  let fd: number | undefined;
  try {
    ({ fd, tmp } = openTempSync(target));
    writeAllSync(fd, chunksOf(data));
    fsyncSync(fd);
    const f = fd;
    fd = undefined;
    closeSync(f);
    renameSync(tmp, target);
    tmp = undefined;
  } catch (e) {
    if (fd !== undefined) quietly(() => closeSync(fd!));
    if (tmp !== undefined) quietly(() => rmSync(tmp!, { force: true }));
    throw writeError(e, 'cannot write', target);
  }
  fsyncDir(dirname(target));
}

/** The asynchronous writeFileAtomicSync, for large files (ONNX models) that should not block the event loop. */
export async function writeFileAtomic(path: string, data: FileData): Promise<void> {
  const target = resolve(path);
  ensureDir(dirname(target));
  removeStaleTemps(dirname(target), basename(target));
  let tmp: string | undefined;
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    for (;;) {
      tmp = tempSibling(target);
      try {
        fh = await open(tmp, 'wx');
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    const chunks = chunksOf(data);
    for (let i = 0; i < chunks.length; i += BATCH) {
      let rest = chunks.slice(i, i + BATCH);
      while (rest.length) rest = unwritten(rest, (await fh.writev(rest)).bytesWritten);
    }
    await fh.sync();
    const f = fh;
    fh = undefined;
    await f.close();
    await rename(tmp, target);
    tmp = undefined;
  } catch (e) {
    await fh?.close().catch(() => undefined);
    if (tmp !== undefined) await rm(tmp, { force: true }).catch(() => undefined);
    throw writeError(e, 'cannot write', target);
  }
  fsyncDir(dirname(target));
}

/** Copies `src` (E_FILE_NOT_FOUND when it cannot be read) to `dst` atomically and durably. */
export function copyFileAtomicSync(src: string, dst: string): void {
  let data: Buffer;
  try {
    data = readFileSync(src);
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read ${src}: ${(e as Error).message}`, { cause: e });
  }
  writeFileAtomicSync(dst, data);
}

/**
 * Appends `text` (or bytes) to `path` (created when missing) and fsyncs it. A failed append (a full disk) is thrown,
 * and the part of it already written is cut off again, so the file still ends where it did: earlier
 * lines are never corrupted and the next append does not continue a half line.
 */
export function appendDurableSync(path: string, text: FileData): void {
  const target = resolve(path);
  const created = !existsSync(target);
  let fd: number | undefined;
  let size = 0;
  try {
    fd = openSync(target, 'a');
    size = fstatSync(fd).size;
    writeAllSync(fd, chunksOf(text));
    fsyncSync(fd);
    const f = fd;
    fd = undefined;
    closeSync(f);
  } catch (e) {
    if (fd !== undefined) {
      quietly(() => ftruncateSync(fd!, size));
      quietly(() => closeSync(fd!));
    }
    throw writeError(e, 'cannot append to', target);
  }
  if (created) fsyncDir(dirname(target));
}

/**
 * Moves the complete directory `src` (its files already durable) to `dst`, replacing any `dst`: the old one
 * is renamed away first and removed after, so a kill leaves `dst` complete (old or new) or absent, never
 * half-deleted. The parent is fsynced after the rename.
 */
export function renameDirectorySync(src: string, dst: string): void {
  const away = existsSync(dst) ? tempSibling(dst) : undefined;
  if (away) {
    try {
      renameSync(dst, away);
    } catch (e) {
      throw writeError(e, 'cannot move aside', dst);
    }
  }
  try {
    renameSync(src, dst);
  } catch (e) {
    if (away) quietly(() => renameSync(away, dst));
    throw writeError(e, 'cannot rename a directory onto', dst);
  }
  fsyncDir(dirname(dst));
  if (away) removeTreeSync(away);
}

/**
 * Removes a directory tree so that a kill midway never leaves a partial one under its name: it is renamed to
 * a temporary name first (removed by a later cleanup if the removal is interrupted).
 */
export function removeTreeSync(path: string): void {
  let target = path;
  if (!TEMP_NAME.test(basename(path))) {
    target = tempSibling(path);
    try {
      renameSync(path, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw writeError(e, 'cannot remove', path);
    }
  }
  try {
    rmSync(target, { recursive: true, force: true });
  } catch {
    /* a temporary name: removed by a later cleanup */
  }
}
