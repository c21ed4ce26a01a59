/**
 * Seeded, time-bounded fuzzing of the loaders: mutated model.safetensors, config.json, pytorch_model.bin,
 * tokenizer.json / tokenizer_config.json / vocab.txt go through readSafetensors(), BertModel.fromPretrained()
 * (+ a forward) and loadTokenizer() (+ encoding). Every case must end in success or a JS Error, never a
 * crash, a hang or a huge allocation.
 *
 * The cases run in a child process (dist/test/fuzz-worker.js) that prints each case before running it, so a
 * crash names the case; the run then resumes after it. Environment: BLOCKPRUNE_FUZZ_SECONDS (default 40),
 * BLOCKPRUNE_FUZZ_SEED, BLOCKPRUNE_FUZZ_MAX_CASES, BLOCKPRUNE_FUZZ_RSS_MB (see fuzz-worker.ts).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withShared } from '../helpers';

const WORKER = join(__dirname, 'fuzz-worker.js');
const SECONDS = Number(process.env.BLOCKPRUNE_FUZZ_SECONDS ?? 40);
const SEED = process.env.BLOCKPRUNE_FUZZ_SEED ?? '20240611';
const MAX_CASES = Number(process.env.BLOCKPRUNE_FUZZ_MAX_CASES ?? 20000);
const RSS_MB = Number(process.env.BLOCKPRUNE_FUZZ_RSS_MB ?? 4096);
/** A case that prints nothing for this long is a hang. */
const HANG_S = Number(process.env.BLOCKPRUNE_FUZZ_HANG_SECONDS ?? 60);

interface TargetStats {
  cases: number;
  loaded: number;
  codes: Record<string, number>;
}

interface Summary {
  seed: number;
  start: number;
  cases: number;
  seconds: number;
  stats: Record<string, TargetStats>;
  badThrows: string[];
  regressions: Array<{ name: string; expect: string; got: string[]; messages: string[] }>;
  maxRssMb: number;
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  summary: Summary | undefined;
  /** The last CASE line without its END line: the case that was running when the child died. */
  lastCase: string | undefined;
  lastEndIndex: number | undefined;
  rssLine: string | undefined;
  hung: boolean;
  stderrTail: string;
  otherLines: string[];
}

/** Resident memory of a process in MB (Linux), undefined elsewhere. */
function rssMb(pid: number): number | undefined {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * 4096) / 1048576;
  } catch {
    return undefined;
  }
}

function runChild(env: Record<string, string>, limitMs: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WORKER], {
      env: { ...process.env, OMP_NUM_THREADS: '1', BLOCKPRUNE_FUZZ_RSS_MB: String(RSS_MB), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const res: ChildResult = { code: null, signal: null, summary: undefined, lastCase: undefined, lastEndIndex: undefined, rssLine: undefined, hung: false, stderrTail: '', otherLines: [] };
    let pending = '';
    let lastOutput = Date.now();
    const onLine = (line: string): void => {
      if (line.startsWith('CASE ')) res.lastCase = line;
      else if (line.startsWith('END ')) {
        const idx = Number(line.split(' ')[1]);
        res.lastEndIndex = Number.isFinite(idx) ? idx : res.lastEndIndex;
        res.lastCase = undefined;
      } else if (line.startsWith('SUMMARY ')) res.summary = JSON.parse(line.slice(8)) as Summary;
      else if (line.startsWith('RSS ')) res.rssLine = line;
      else if (line.trim() && res.otherLines.length < 50) res.otherLines.push(line);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      lastOutput = Date.now();
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      res.stderrTail = (res.stderrTail + chunk).slice(-4000);
    });
    const started = Date.now();
    // Watchdog: a silent child (one case running too long) or one over the run's limit is a hang; one
    // whose memory passes the guard is killed here too (in case its own guard cannot run).
    const watchdog = setInterval(() => {
      const rss = child.pid ? rssMb(child.pid) : undefined;
      if (rss !== undefined && rss > RSS_MB * 1.25) {
        res.rssLine = `RSS ${Math.round(rss)} (seen by the parent)`;
        child.kill('SIGKILL');
      } else if (Date.now() - lastOutput > HANG_S * 1000 || Date.now() - started > limitMs) {
        res.hung = true;
        child.kill('SIGKILL');
      }
    }, 100);
    child.on('close', (code, signal) => {
      clearInterval(watchdog);
      if (pending) onLine(pending);
      res.code = code;
      res.signal = signal;
      resolve(res);
    });
  });
}

function reproduce(caseLine: string | undefined): string {
  const idx = caseLine?.split(' ')[1];
  return idx === undefined ? '' : `reproduce: BLOCKPRUNE_FUZZ_SEED=${SEED} BLOCKPRUNE_FUZZ_CASE=${idx} node ${WORKER}`;
}

function describeDeath(r: ChildResult): string {
  const why = r.rssLine ? `memory guard (${r.rssLine})` : r.hung ? 'hang (no progress)' : `exit code ${r.code}, signal ${r.signal}`;
  return [
    `child died: ${why}`,
    `while running: ${r.lastCase ?? '(no case: between cases or at start/end)'}`,
    reproduce(r.lastCase),
    ...r.otherLines.slice(0, 10),
    r.stderrTail ? `stderr: ${r.stderrTail.slice(-1500)}` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

/** The fuzz's inputs (the worker finds them through FIXTURES and DATA): without them the test is skipped. */
const INPUTS = ['fixtures/bert-tiny-cls', 'fixtures/bert-tiny-qa', 'data/bert-base-uncased'];

withShared(...INPUTS)('fuzz: mutated checkpoints, configs and tokenizer files end in success or a JS Error, never a crash', async (t) => {
  t.timeout(SECONDS * 1000 + 180_000);
  const t0 = Date.now();
  const deadline = t0 + SECONDS * 1000;
  const summaries: Summary[] = [];
  const deaths: string[] = [];
  let start = 0;
  // One child normally; after a crash, a new one resumes at the next case (at most 5 restarts).
  for (let attempt = 0; attempt < 6 && start < MAX_CASES; attempt++) {
    const left = Math.max(1, (deadline - Date.now()) / 1000);
    if (attempt > 0 && left <= 1) break;
    const r = await runChild(
      { BLOCKPRUNE_FUZZ_SEED: SEED, BLOCKPRUNE_FUZZ_SECONDS: left.toFixed(1), BLOCKPRUNE_FUZZ_START: String(start), BLOCKPRUNE_FUZZ_MAX_CASES: String(MAX_CASES) },
      left * 1000 + HANG_S * 1000 + 60_000,
    );
    if (r.code === 0 && r.signal === null && r.summary) {
      summaries.push(r.summary);
      break;
    }
    deaths.push(describeDeath(r));
    const crashed = r.lastCase ? Number(r.lastCase.split(' ')[1]) : (r.lastEndIndex ?? start - 1) + 1;
    if (!Number.isFinite(crashed)) break;
    start = crashed + 1;
  }
  const seconds = (Date.now() - t0) / 1000;

  const total: Record<string, TargetStats> = {};
  let cases = 0;
  const badThrows: string[] = [];
  for (const s of summaries) {
    cases += s.cases;
    badThrows.push(...s.badThrows);
    for (const [target, st] of Object.entries(s.stats)) {
      const a = (total[target] ??= { cases: 0, loaded: 0, codes: {} });
      a.cases += st.cases;
      a.loaded += st.loaded;
      for (const [c, n] of Object.entries(st.codes)) a.codes[c] = (a.codes[c] ?? 0) + n;
    }
  }
  t.log(`seed ${SEED}: ${cases} cases in ${seconds.toFixed(1)} s (budget ${SECONDS} s, cap ${MAX_CASES}); child peak RSS ${summaries.map((s) => s.maxRssMb).join(', ')} MB`);
  for (const [target, st] of Object.entries(total).sort()) {
    const codes = Object.entries(st.codes)
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c} x${n}`)
      .join(', ');
    t.log(`${target}: ${st.cases} cases, ${st.loaded} loaded; errors: ${codes || 'none'}`);
  }
  for (const d of deaths) t.log(d);

  t.deepEqual(deaths, [], 'every case must end in success or a JS Error');
  t.deepEqual(badThrows, [], 'every failure must be an Error with a message');
  // Each of the four targets gets a share of the cases (tokenizer and .bin only where their inputs exist).
  t.true(Object.keys(total).length >= 3, `targets run: ${Object.keys(total).join(', ')}`);
  const minCases = Math.min(MAX_CASES, Math.floor(SECONDS * 5));
  t.true(cases >= minCases, `only ${cases} cases ran in ${SECONDS} s (expected at least ${minCases})`);
  // Uncoded errors would mean a loader path that skips the coded errors of lib/errors.ts.
  const uncoded = Object.values(total).flatMap((st) => Object.keys(st.codes).filter((c) => c.includes(':-')));
  if (uncoded.length) t.log(`errors without a code: ${uncoded.join(', ')}`);
});

withShared('fixtures/bert-tiny-cls')('fuzz regressions: huge configs, deep JSON and unusable tokenizers fail fast with a coded error', async (t) => {
  t.timeout(180_000);
  const r = await runChild({ BLOCKPRUNE_FUZZ_REGRESSIONS: '1' }, 150_000);
  if (r.code !== 0 || r.signal !== null || !r.summary) {
    t.fail(describeDeath(r));
    return;
  }
  t.true(r.summary.regressions.length > 0);
  for (const c of r.summary.regressions) {
    t.log(`${c.name}: ${c.got.join(', ') || 'loaded'}${c.messages.length ? ` (${c.messages[0]})` : ''}`);
    t.true(c.got.includes(c.expect), `${c.name}: expected ${c.expect}, got ${c.got.join(', ') || 'success'}`);
  }
  t.log(`child peak RSS ${r.summary.maxRssMb} MB`);
  t.true(r.summary.maxRssMb < 2048, `peak RSS ${r.summary.maxRssMb} MB`);
});
