/**
 * Durable, atomic writes (issue 12), proved by fault injection:
 * - a full disk: a small tmpfs mounted for the test (root), or else an LD_PRELOAD shim (compiled with cc)
 *   that fails write() with ENOSPC after a byte budget; every writer (model save, trainer checkpoint, ONNX,
 *   mask PNGs, vocab, report.json, tokenizer copies, JSON-lines logs) must reject with E_NO_SPACE and keep
 *   the previous data whole, or succeed with a whole result. Silent losses are counted and must be 0;
 * - SIGKILL at seeded random moments of a loop of saves, and of a training run checkpointing every step:
 *   the model directory always loads as the old or the new model, every checkpoint directory is complete;
 * - other failures are E_WRITE_FAILED naming the path; temporaries of killed processes are removed by the
 *   next save; what the old directory held besides the model (README, sub-folders) survives a save.
 * The cases run in a child (dist/test/durable-worker.js): the shim must be loaded at its start, and kills
 * need a process to kill. BLOCKPRUNE_DURABLE_MODE=preload forces the shim where mount works.
 */
import test from 'ava';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendDurableSync, writeFileAtomicSync } from '../../lib/runtime/atomic';
import { readSafetensors } from '../../lib/index';
import { BertModel } from '../../lib/model/model';
import { exportOnnx } from '../../lib/model/onnx';
import { latestCheckpoint, readCheckpointState } from '../../lib/training/trainer';
import { CONFIG, fingerprint, temps } from './durable-worker';
import { tempDir } from '../helpers';
import type { CaseResult } from './durable-worker';

const WORKER = join(__dirname, 'durable-worker.js');
const SEED = Number(process.env.BLOCKPRUNE_DURABLE_SEED ?? 12);
const SAVE_KILLS = Number(process.env.BLOCKPRUNE_DURABLE_SAVE_KILLS ?? 8);
const CHECKPOINT_KILLS = Number(process.env.BLOCKPRUNE_DURABLE_CHECKPOINT_KILLS ?? 6);

/** Fails write(), writev(), pwrite() to files under BP_ENOSPC_PREFIX with ENOSPC once BP_ENOSPC_BUDGET
 *  bytes ("<bytes>:<serial>", the count restarts when it changes) are written: a short write first, as a
 *  really full disk does. */
const SHIM = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char last[64];
static long long used;
static size_t allow(int fd, size_t n) {
  const char* prefix = getenv("BP_ENOSPC_PREFIX");
  const char* budget = getenv("BP_ENOSPC_BUDGET");
  if (!prefix || !budget || n == 0) return n;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, path, sizeof path - 1);
  if (k <= 0) return n;
  path[k] = 0;
  if (strncmp(path, prefix, strlen(prefix)) != 0) return n;
  pthread_mutex_lock(&mu);
  if (strncmp(last, budget, sizeof last - 1) != 0) { strncpy(last, budget, sizeof last - 1); used = 0; }
  long long left = atoll(budget) - used;
  size_t ok = left <= 0 ? 0 : (size_t)left < n ? (size_t)left : n;
  used += ok;
  pthread_mutex_unlock(&mu);
  return ok;
}
static size_t total(const struct iovec* v, int c) { size_t t = 0; for (int i = 0; i < c; i++) t += v[i].iov_len; return t; }
#define REAL(name, ret, ...) static ret (*real_##name)(__VA_ARGS__); if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)
ssize_t write(int fd, const void* b, size_t n) {
  REAL(write, ssize_t, int, const void*, size_t);
  size_t ok = allow(fd, n);
  if (n && !ok) { errno = ENOSPC; return -1; }
  return real_write(fd, b, ok);
}
static ssize_t pwrite_impl(int fd, const void* b, size_t n, off_t off) {
  REAL(pwrite, ssize_t, int, const void*, size_t, off_t);
  size_t ok = allow(fd, n);
  if (n && !ok) { errno = ENOSPC; return -1; }
  return real_pwrite(fd, b, ok, off);
}
ssize_t pwrite(int fd, const void* b, size_t n, off_t off) { return pwrite_impl(fd, b, n, off); }
ssize_t pwrite64(int fd, const void* b, size_t n, off_t off) { return pwrite_impl(fd, b, n, off); }
/* A vector write within budget goes through whole; otherwise the allowed bytes go one piece at a time. */
static ssize_t vec(int fd, const struct iovec* v, int c, off_t off, int positioned) {
  REAL(writev, ssize_t, int, const struct iovec*, int);
  REAL(pwritev, ssize_t, int, const struct iovec*, int, off_t);
  size_t n = total(v, c), ok = allow(fd, n);
  if (n && !ok) { errno = ENOSPC; return -1; }
  if (ok == n) return positioned ? real_pwritev(fd, v, c, off) : real_writev(fd, v, c);
  size_t done = 0;
  for (int i = 0; i < c && done < ok; i++) {
    size_t len = v[i].iov_len < ok - done ? v[i].iov_len : ok - done;
    struct iovec one = { v[i].iov_base, len };
    ssize_t w = positioned ? real_pwritev(fd, &one, 1, off + (off_t)done) : real_writev(fd, &one, 1);
    if (w < 0) return done ? (ssize_t)done : -1;
    done += (size_t)w;
  }
  return (ssize_t)done;
}
ssize_t writev(int fd, const struct iovec* v, int c) { return vec(fd, v, c, 0, 0); }
ssize_t pwritev(int fd, const struct iovec* v, int c, off_t off) { return vec(fd, v, c, off, 1); }
ssize_t pwritev64(int fd, const struct iovec* v, int c, off_t off) { return vec(fd, v, c, off, 1); }
`;

/** How a full disk is made here: decided once, so that a skip says why in its title. */
function fullDiskMode(): { mode?: 'tmpfs' | 'preload'; why: string } {
  const forced = process.env.BLOCKPRUNE_DURABLE_MODE;
  const tmp = tempDir('blockprune-mount-probe-');
  try {
    if (forced !== 'preload' && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tmp.path]).status === 0) {
      spawnSync('umount', [tmp.path]);
      return { mode: 'tmpfs', why: 'a small tmpfs' };
    }
  } finally {
    tmp.cleanup();
  }
  if (spawnSync('cc', ['--version']).status === 0) return { mode: 'preload', why: 'an LD_PRELOAD ENOSPC shim' };
  return { why: 'skipped: mount is not permitted and there is no C compiler for the LD_PRELOAD shim' };
}
const FULL = fullDiskMode();

/** Park–Miller: the kill moments are a function of SEED. */
function rng(seed: number): () => number {
  let x = seed % 2147483647 || 1;
  return () => (x = (x * 48271) % 2147483647) / 2147483647;
}

function startWorker(args: string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; lines: string[]; ready: Promise<void>; exited: Promise<void> } {
  const child = spawn(process.execPath, [WORKER, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let buf = '';
  let onReady: () => void;
  let onFail: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((onReady = res), (onFail = rej)));
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (line === 'READY') onReady();
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((res) =>
    child.on('exit', (code, signal) => {
      onFail(new Error(`worker exited (${code ?? signal}) before READY: ${lines.slice(-3).join(' | ')} ${stderr}`));
      res();
    }),
  );
  return { child, lines, ready, exited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function loads(dir: string): Promise<boolean> {
  try {
    (await BertModel.fromPretrained(dir)).dispose();
    return true;
  } catch {
    return false;
  }
}

/** A pid that is not running (a child that has exited). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}


(FULL.mode ? test.serial : test.serial.skip)(`full disk (${FULL.why}): every writer rejects with E_NO_SPACE and keeps the previous data whole`, async (t) => {
  const tmp = tempDir('blockprune-durable-');
  const root = join(realpathSync(tmp.path), 'disk');
  mkdirSync(root);
  let mounted = false;
  const env: NodeJS.ProcessEnv = { ...process.env };
  try {
    if (FULL.mode === 'tmpfs') {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', root]);
      mounted = true;
    } else {
      writeFileSync(join(tmp.path, 'enospc.c'), SHIM);
      execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', join(tmp.path, 'enospc.so'), join(tmp.path, 'enospc.c'), '-ldl', '-lpthread']);
      env.LD_PRELOAD = join(tmp.path, 'enospc.so');
      env.BP_ENOSPC_PREFIX = root + '/';
    }
    const w = startWorker(['full', root, FULL.mode!], env);
    w.ready.catch(() => undefined);
    await w.exited;
    const cases: CaseResult[] = w.lines.filter((l) => l.startsWith('CASE ')).map((l) => JSON.parse(l.slice(5)));
    t.true(w.lines.includes('DONE'), `the worker did not finish: ${w.lines.slice(-3).join(' | ')}`);
    let rejected = 0;
    for (const c of cases) {
      if (c.outcome === 'rejected') rejected++;
      for (const [k, ok] of Object.entries(c.checks)) t.true(ok, `${c.name}: ${k} failed (${c.outcome} ${c.code ?? ''} ${c.message ?? ''})`);
    }
    const losses = cases.filter((c) => c.silentLoss);
    t.log(`full disk via ${FULL.why}: ${cases.length} cases tried, ${rejected} rejected with E_NO_SPACE as expected, ${cases.length - rejected} fitted and succeeded; crashes 0; silent losses ${losses.length}`);
    t.deepEqual(losses.map((c) => c.name), []);
    t.true(cases.length >= 20, `only ${cases.length} cases ran`);
  } finally {
    if (mounted) spawnSync('umount', ['-l', root]);
    tmp.cleanup();
  }
});

test.serial('SIGKILL during saves: the directory always loads as the old or the new model, never a mix', async (t) => {
  const tmp = tempDir('blockprune-durable-');
  const dir = join(tmp.path, 'model');
  const refs = join(tmp.path, 'refs');
  const next = rng(SEED);
  let fpA: string | undefined;
  let fpB: string | undefined;
  const seen = { a: 0, b: 0, broken: 0, staleTemps: 0 };
  try {
    for (let k = 0; k < SAVE_KILLS; k++) {
      const w = startWorker(['save-loop', dir, refs]);
      await w.ready;
      fpA ??= fingerprint(join(refs, 'a'));
      fpB ??= fingerprint(join(refs, 'b'));
      const delay = Math.floor(next() * 400);
      await sleep(delay);
      w.child.kill('SIGKILL');
      await w.exited;
      const fp = fingerprint(dir);
      const ok = (fp === fpA || fp === fpB) && (await loads(dir));
      if (!ok) seen.broken++;
      else if (fp === fpA) seen.a++;
      else seen.b++;
      seen.staleTemps += temps(tmp.path, dir).length;
      t.true(ok, `kill ${k} after ${delay} ms: ${dir} holds neither model whole`);
    }
    // The next save removes what the killed processes left.
    const m = await BertModel.fromPretrained(dir);
    await m.save(dir);
    m.dispose();
    t.deepEqual(temps(tmp.path, dir), []);
    t.log(`saves: ${SAVE_KILLS} SIGKILLs (seed ${SEED}); afterwards model A ${seen.a}x, model B ${seen.b}x, broken ${seen.broken}; ${seen.staleTemps} temporaries left by the kills, removed by the next save`);
  } finally {
    tmp.cleanup();
  }
});

test.serial('SIGKILL during checkpoints: every checkpoint directory is complete, and training resumes from the latest', async (t) => {
  const tmp = tempDir('blockprune-durable-');
  const out = join(tmp.path, 'run');
  const next = rng(SEED + 1);
  let checked = 0;
  let broken = 0;
  let staleTemps = 0;
  const killed: number[] = [];
  try {
    for (let k = 0; k < CHECKPOINT_KILLS; k++) {
      const w = startWorker(['checkpoint-loop', out]);
      await w.ready;
      // Its first checkpoint has removed what the killed processes left.
      const left = temps(out).filter((p) => killed.some((pid) => p.includes(`/.tmp-${pid}-`)));
      t.deepEqual(left, [], `kill ${k}: temporaries of killed runs survived a checkpoint`);
      killed.push(w.child.pid!);
      const delay = Math.floor(next() * 300);
      await sleep(delay);
      w.child.kill('SIGKILL');
      await w.exited;
      const dirs = readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n));
      for (const d of dirs) {
        const cp = join(out, d);
        let ok = false;
        try {
          readCheckpointState(cp);
          await readSafetensors(join(cp, 'optimizer.safetensors'));
          await readSafetensors(join(cp, 'rng.safetensors'));
          ok = await loads(cp);
        } catch {
          ok = false;
        }
        checked++;
        if (!ok) broken++;
        t.true(ok, `kill ${k} after ${delay} ms: ${d} is not complete`);
      }
      const newest = dirs.map((d) => Number(d.slice(11))).sort((x, y) => y - x)[0];
      t.is(latestCheckpoint(out), newest === undefined ? undefined : join(out, `checkpoint-${newest}`));
      staleTemps += temps(out).length;
    }
    t.log(`checkpoints: ${CHECKPOINT_KILLS} SIGKILLs (seed ${SEED + 1}), ${checked} checkpoint directories checked, broken ${broken}; ${staleTemps} temporaries seen after kills, each removed by the next run's first checkpoint`);
  } finally {
    tmp.cleanup();
  }
});

test.serial('other write failures are E_WRITE_FAILED naming the path; stale temporaries go; extra files survive a save; the working directory is updated in place', async (t) => {
  const tmp = tempDir('blockprune-durable-');
  const m = await BertModel.fromConfig(CONFIG, { seed: 1 });
  try {
    // A file where a directory is needed.
    const file = join(tmp.path, 'a-file');
    writeFileSync(file, 'x');
    const failures: Array<[string, () => unknown]> = [
      ['save into a file', () => m.save(file)],
      ['save under a file', () => m.save(join(file, 'model'))],
      ['exportOnnx under a file', () => exportOnnx(m, join(file, 'm.onnx'))],
      ['writeFileAtomicSync under a file', () => writeFileAtomicSync(join(file, 'report.json'), '{}')],
      ['appendDurableSync under a file', () => appendDurableSync(join(file, 'log.jsonl'), '{}\n')],
    ];
    for (const [name, op] of failures) {
      const err = await t.throwsAsync(async () => op(), undefined, name);
      t.is((err as { code?: string }).code, 'E_WRITE_FAILED', `${name}: ${err?.message}`);
      t.true(err!.message.includes(file), `${name}: the message names the path: ${err?.message}`);
    }
    t.is(readFileSync(file, 'utf8'), 'x');

    // Temporaries of dead processes go at the next save; a live process's stay.
    const dir = join(tmp.path, 'model');
    await m.save(dir);
    const dead = deadPid();
    mkdirSync(join(tmp.path, `.tmp-${dead}-1-model`));
    writeFileSync(join(tmp.path, `.tmp-${dead}-1-model`, 'model.safetensors'), 'partial');
    writeFileSync(join(dir, `.tmp-${dead}-2-config.json`), '{');
    const live = join(tmp.path, `.tmp-${process.pid}-999999-model`);
    writeFileSync(live, 'in progress');
    await m.save(dir);
    t.deepEqual(temps(tmp.path, dir), [live]);

    // What the directory held besides the model is carried into the new one (hard links), and a link to
    // a directory is saved through, not replaced.
    writeFileSync(join(dir, 'README.md'), 'keep me');
    mkdirSync(join(dir, 'runs', 'a'), { recursive: true });
    writeFileSync(join(dir, 'runs', 'a', 'events'), 'keep me too');
    await m.save(dir);
    t.is(readFileSync(join(dir, 'README.md'), 'utf8'), 'keep me');
    t.is(readFileSync(join(dir, 'runs', 'a', 'events'), 'utf8'), 'keep me too');
    const link = join(tmp.path, 'link');
    symlinkSync(dir, link);
    await m.save(link);
    t.true(lstatSync(link).isSymbolicLink());
    t.true(await loads(link));

    // A save swaps in a new directory (a new inode), except for this process's working directory, which is
    // updated file by file (swapped away, the process would be left in a deleted directory).
    const ino = statSync(dir).ino;
    await m.save(dir);
    const swapped = statSync(dir).ino !== ino;
    t.log(`save over ${dir}: ${swapped ? 'swapped in whole (RENAME_EXCHANGE)' : 'updated file by file (no exchange on this file system)'}`);
    const cwd = process.cwd();
    const inoBefore = statSync(dir).ino;
    process.chdir(dir);
    try {
      await m.save('.');
      t.is(statSync('.').ino, inoBefore, 'the working directory was not swapped away');
    } finally {
      process.chdir(cwd);
    }
    t.true(await loads(dir));
    t.deepEqual(temps(tmp.path, dir), [live]);
  } finally {
    m.dispose();
    tmp.cleanup();
  }
});
