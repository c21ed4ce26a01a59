#!/usr/bin/env node
/**
 * Load generator for the inference service (`blockprune serve`), on 127.0.0.1, with node:http only.
 *
 *   node dist/scripts/load.js [--duration 10] [--warmup 2] [--models dense,compact] [--clients 1,8,32]
 *        [--modes unbatched,batched] [--max-requests 100000] [--max-batch 32] [--window-ms 5] [--threads N]
 *        [--json out.json] [--keep]
 *   node dist/scripts/load.js --leak [--leak-requests 10000] [--leak-clients 8] [--json out.json]
 *
 * It builds two random-weight text-classification models in a temp dir, with bert-base-uncased's
 * tokenizer (../shared/data/bert-base-uncased; skipped with a message when absent):
 *   dense    bert-base geometry: hidden 768, 12 layers, 12 heads, FFN 3072, vocab 30522
 *   compact  the same with 4 heads per layer (pruned_heads lists 8 per layer) and FFN 552 per layer
 * and for each model, without and with dynamic batching, at 1, 8 and 32 concurrent clients (each sends
 * its next request when the previous one is answered, over a keep-alive agent), posts single-sentence
 * /classify requests for `--duration` seconds (or until --max-requests), after `--warmup` seconds of load
 * that is not counted, and prints requests/s and the latency's mean, p50, p90 and p99 for each (one client:
 * `--clients 1`; `--models compact --modes batched --clients 1` is the quickest look). Sentences are SST-2's
 * (../shared/data/sst2/test.tsv, 872 full sentences) when present, else generated text of 10-40 words.
 *
 * The server runs in a CHILD process (blockprune serve --port 0), as it would in production: the
 * load generator's own JS (request building, parsing, timing) then does not share the server's event loop.
 * On a small machine the two processes still share the CPUs, so absolute numbers are a bit low; the
 * ratios (compact / dense, batched / unbatched) are what this measures.
 *
 * --leak: 10,000 predictions against the compact model (batched), sampling the server process's RSS
 * (from GET /health) every 1,000, and prints the growth from the 1,000th to the last.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { copyFileAtomicSync, writeFileAtomicSync } from '../lib/runtime/atomic';
import { BertConfigJson, BertModel } from '../lib/model/model';
import { writableFile } from '../lib/runtime/validate';
import { BERT_BASE, compactConfig } from '../lib/cli/bert-base';
import { bool, FlagValues, intFlag, intsFlag, listFlag, numFlag, str } from '../lib/cli/flags';
import { formatPercentiles, latencyStats } from '../lib/cli/latency-stats';
import { runScript, scriptFlags, sharedDir } from './common';

type ModelName = 'dense' | 'compact';
type Mode = 'unbatched' | 'batched';

interface LoadArgs {
  duration: number;
  warmup: number;
  models: ModelName[];
  clients: number[];
  modes: Mode[];
  maxRequests: number;
  maxBatch: number;
  windowMs: number;
  threads?: number;
  json?: string;
  keep: boolean;
  leak: boolean;
  leakRequests: number;
  leakClients: number;
  /** Every request posts the same (median-length) sentence: latency spread is then the service's alone. */
  sameText: boolean;
}

const USAGE =
  'usage: node dist/scripts/load.js [--duration 10] [--warmup 2] [--models dense,compact] [--clients 1,8,32] [--modes unbatched,batched]\n' +
  '       [--max-requests 100000] [--max-batch 32] [--window-ms 5] [--threads N] [--same-text] [--json out.json] [--keep]\n' +
  '       node dist/scripts/load.js --leak [--leak-requests 10000] [--leak-clients 8] [--json out.json]';

/** The command line the server runs: dist/lib/cli/main.js beside this dist/scripts/load.js. */
const CLI = join(__dirname, '..', 'lib', 'cli', 'main.js');

const FLAGS = {
  duration: str, warmup: str, models: str, modes: str, clients: str, 'max-requests': str, 'max-batch': str, 'window-ms': str,
  threads: str, json: str, keep: bool, 'same-text': bool, leak: bool, 'leak-requests': str, 'leak-clients': str,
};

function readArgs(f: FlagValues): LoadArgs {
  return {
    duration: numFlag(f, 'duration', { min: 0.1 }) ?? 10,
    warmup: numFlag(f, 'warmup', { min: 0 }) ?? 2,
    models: listFlag(f, 'models', ['dense', 'compact'] as const) ?? ['dense', 'compact'],
    modes: listFlag(f, 'modes', ['unbatched', 'batched'] as const) ?? ['unbatched', 'batched'],
    // Each client holds a socket on both ends: past ~1000 the default limit of 1024 open files fails the run.
    clients: intsFlag(f, 'clients', 1, 1000) ?? [1, 8, 32],
    maxRequests: intFlag(f, 'max-requests', 1) ?? 100_000,
    maxBatch: intFlag(f, 'max-batch', 1) ?? 32,
    windowMs: numFlag(f, 'window-ms', { min: 0 }) ?? 5,
    // The addon's range for its thread pools.
    threads: intFlag(f, 'threads', 1, 1024),
    json: f.json === undefined ? undefined : writableFile('--json', f.json),
    keep: f.keep === true,
    sameText: f['same-text'] === true,
    leak: f.leak === true,
    leakRequests: intFlag(f, 'leak-requests', 1) ?? 10_000,
    leakClients: intFlag(f, 'leak-clients', 1, 1000) ?? 8,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Models and sentences
// ---------------------------------------------------------------------------------------------------------

// bert-base (lib/cli/bert-base.ts) as a binary classifier without dropout; compact: 4 heads, FFN 552 per layer.
const DENSE: BertConfigJson = {
  ...BERT_BASE,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  num_labels: 2,
  id2label: { '0': 'NEGATIVE', '1': 'POSITIVE' },
  label2id: { NEGATIVE: 0, POSITIVE: 1 },
};

async function buildModel(name: ModelName, dir: string, tokenizerDir: string): Promise<{ params: number }> {
  const model = await BertModel.fromConfig(name === 'dense' ? DENSE : compactConfig(4, 552, DENSE), { task: 'text-classification', seed: 0 });
  try {
    await model.save(dir);
    const params = model.numParameters;
    for (const f of ['tokenizer.json', 'vocab.txt']) if (existsSync(join(tokenizerDir, f))) copyFileAtomicSync(join(tokenizerDir, f), join(dir, f));
    return { params };
  } finally {
    model.dispose();
  }
}

function loadSentences(shared: string | undefined): { sentences: string[]; source: string } {
  const tsv = shared ? join(shared, 'data', 'sst2', 'test.tsv') : undefined;
  if (tsv && existsSync(tsv)) {
    const sentences = readFileSync(tsv, 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t')[0].trim())
      .filter((s) => s.length > 0);
    if (sentences.length > 0) return { sentences, source: `SST-2 ${tsv} (${sentences.length} sentences)` };
  }
  // Generated text of 10-40 words from a fixed vocabulary and a seeded generator.
  const words = (
    'the a film movie story actor director scene plot character music script is was are not very quite rather ' +
    'good bad funny dull moving charming boring brilliant awful clever slow fast long short and but with without ' +
    'of in on for from by its their this that every one two some many little much more most less least it they we'
  ).split(' ');
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const sentences = Array.from({ length: 500 }, () => {
    const n = 10 + Math.floor(rand() * 31);
    return Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(' ') + ' .';
  });
  return { sentences, source: 'generated (500 sentences of 10-40 words; no ../shared/data/sst2)' };
}

// ---------------------------------------------------------------------------------------------------------
// The server child and the HTTP client
// ---------------------------------------------------------------------------------------------------------

interface ServerChild {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
  exited(): boolean;
}

function startServer(modelDir: string, batched: boolean, args: LoadArgs): Promise<ServerChild> {
  const argv = [CLI, 'serve', '--model', modelDir, '--port', '0', '--host', '127.0.0.1', '--max-batch', String(args.maxBatch), '--window-ms', String(args.windowMs)];
  if (!batched) argv.push('--no-batching');
  if (args.threads) argv.push('--threads', String(args.threads));
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Never leave a server behind, even when this process dies of an error.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      process.off('exit', reap);
      r();
    }),
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    process.stderr.write(`[server] ${d}`);
  });
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not start within 180 s\n${stderr}`));
    }, 180_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (code ${code}) before listening\n${stderr}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on http:\/\/[^\s:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data');
        child.stdout!.resume();
        resolvePromise({
          child,
          port: Number(m[1]),
          exited: () => exited,
          stop: async () => {
            if (!exited) child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
            await exit;
            clearTimeout(t);
          },
        });
      }
    });
  });
}

interface Reply {
  status: number;
  body: string;
}

function httpCall(agent: Agent, port: number, method: string, path: string, payload?: string): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string | number> = {};
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function health(agent: Agent, port: number): Promise<any> {
  const r = await httpCall(agent, port, 'GET', '/health');
  if (r.status !== 200) throw new Error(`GET /health: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
}

interface RunResult {
  model: ModelName;
  mode: Mode;
  clients: number;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Server side: batches run during the measured window and their mean size. */
  batches: number;
  meanBatch: number;
  firstError?: string;
}

/**
 * `clients` closed-loop clients post single sentences until `seconds` are over or `maxRequests` were sent;
 * resolves with the latencies of the answered requests.
 */
async function drive(
  agent: Agent,
  server: ServerChild,
  clients: number,
  seconds: number,
  maxRequests: number,
  sentences: string[],
  offset: number,
  onDone?: (n: number) => Promise<void> | void,
): Promise<{ latencies: number[]; errors: number; seconds: number; firstError?: string }> {
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const client = async (c: number) => {
    let k = offset + c * 997;
    while (performance.now() < deadline && sent < maxRequests && !server.exited()) {
      sent++;
      const payload = JSON.stringify({ text: sentences[k++ % sentences.length] });
      const s = performance.now();
      try {
        const r = await httpCall(agent, server.port, 'POST', '/classify', payload);
        if (r.status === 200) latencies.push(performance.now() - s);
        else {
          errors++;
          firstError ??= `${r.status} ${r.body}`;
        }
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        await new Promise((r) => setTimeout(r, 10));
      }
      if (onDone) await onDone(latencies.length + errors);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  return { latencies, errors, seconds: (performance.now() - t0) / 1000, firstError };
}

async function measure(model: ModelName, mode: Mode, clients: number, server: ServerChild, args: LoadArgs, sentences: string[]): Promise<RunResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  try {
    if (args.warmup > 0) await drive(agent, server, clients, args.warmup, args.maxRequests, sentences, 5000);
    const before = (await health(agent, server.port)).stats.classify;
    const r = await drive(agent, server, clients, args.duration, args.maxRequests, sentences, 0);
    const after = (await health(agent, server.port)).stats.classify;
    const lat = latencyStats(r.latencies);
    const batches = after.batches - before.batches;
    return {
      model,
      mode,
      clients,
      requests: r.latencies.length,
      errors: r.errors,
      seconds: r.seconds,
      rps: r.latencies.length / r.seconds,
      p50Ms: lat.p50,
      p90Ms: lat.p90,
      p99Ms: lat.p99,
      meanMs: lat.mean,
      batches,
      meanBatch: batches ? (after.items - before.items) / batches : 0,
      firstError: r.firstError,
    };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

function printTable(runs: RunResult[]): void {
  const head = ['model', 'batching', 'clients', 'requests', 'req/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'mean batch', 'errors'];
  const w = [8, 9, 8, 9, 8, 8, 8, 8, 8, 11, 7];
  console.log(head.map((h, i) => pad(h, w[i], i < 2)).join(' '));
  for (const r of runs) {
    const ms = [r.meanMs, r.p50Ms, r.p90Ms, r.p99Ms].map((x) => x.toFixed(1));
    const cells = [r.model, r.mode === 'batched' ? 'on' : 'off', String(r.clients), String(r.requests), r.rps.toFixed(1), ...ms, r.meanBatch.toFixed(1), String(r.errors)];
    console.log(cells.map((c, i) => pad(c, w[i], i < 2)).join(' '));
  }
}

function ratios(runs: RunResult[], clients: number[]): Record<string, number> {
  const find = (m: ModelName, mode: Mode, c: number) => runs.find((r) => r.model === m && r.mode === mode && r.clients === c);
  const out: Record<string, number> = {};
  for (const mode of ['unbatched', 'batched'] as const)
    for (const c of clients) {
      const d = find('dense', mode, c);
      const k = find('compact', mode, c);
      if (d && k && d.rps > 0) out[`compact/dense ${mode} ${c} clients`] = k.rps / d.rps;
    }
  const top = Math.max(...clients);
  for (const m of ['dense', 'compact'] as const) {
    const u = find(m, 'unbatched', top);
    const b = find(m, 'batched', top);
    if (u && b && u.rps > 0) out[`batched/unbatched ${m} ${top} clients`] = b.rps / u.rps;
  }
  return out;
}

async function leak(args: LoadArgs, modelDir: string, sentences: string[]): Promise<Record<string, unknown>> {
  const server = await startServer(modelDir, true, args);
  const agent = new Agent({ keepAlive: true, maxSockets: args.leakClients + 1 });
  const samples: Array<{ predictions: number; rssMiB: number; heapMiB: number }> = [];
  try {
    console.log(`leak check: ${args.leakRequests} predictions against the compact model, ${args.leakClients} clients, server RSS every 1,000`);
    let next = 1000;
    let sampling: Promise<void> = Promise.resolve();
    const sample = async (n: number) => {
      const h = await health(agent, server.port);
      samples.push({ predictions: n, rssMiB: h.memory.rss / 2 ** 20, heapMiB: h.memory.heapUsed / 2 ** 20 });
      console.log(`  ${String(n).padStart(6)} predictions: server RSS ${(h.memory.rss / 2 ** 20).toFixed(1)} MiB, JS heap ${(h.memory.heapUsed / 2 ** 20).toFixed(1)} MiB`);
    };
    const r = await drive(agent, server, args.leakClients, 3600, args.leakRequests, sentences, 0, (n) => {
      if (n >= next) {
        const at = next;
        next += 1000;
        sampling = sampling.then(() => sample(at));
        return sampling;
      }
    });
    await sampling;
    if (r.errors) console.log(`  ${r.errors} requests failed (first: ${r.firstError})`);
    const first = samples[0];
    const last = samples[samples.length - 1];
    const growth = first && last ? last.rssMiB - first.rssMiB : NaN;
    console.log(
      first && last
        ? `RSS growth from ${first.predictions} to ${last.predictions} predictions: ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB ` +
            `(${((growth / first.rssMiB) * 100).toFixed(1)}%), ${(r.latencies.length / r.seconds).toFixed(1)} predictions/s`
        : 'not enough samples',
    );
    return { predictions: r.latencies.length, errors: r.errors, seconds: r.seconds, samples, rssGrowthMiB: growth };
  } finally {
    agent.destroy();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const args = scriptFlags('load', USAGE, FLAGS, readArgs);
  const shared = sharedDir();
  const tokenizerDir = shared ? join(shared, 'data', 'bert-base-uncased') : undefined;
  if (!tokenizerDir || !existsSync(join(tokenizerDir, 'vocab.txt')) && !existsSync(join(tokenizerDir, 'tokenizer.json'))) {
    console.log('skipped: ../shared/data/bert-base-uncased (tokenizer.json / vocab.txt) not found; set BLOCKPRUNE_SHARED to the shared/ folder');
    return;
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npx tsc -p . first`);
  const loaded = loadSentences(shared);
  const median = [...loaded.sentences].sort((x, y) => x.length - y.length)[loaded.sentences.length >> 1];
  const sentences = args.sameText ? [median] : loaded.sentences;
  const source = args.sameText ? `${loaded.source}; every request the median-length one (${median.length} characters)` : loaded.source;
  const tmp = mkdtempSync(join(tmpdir(), 'blockprune-load-'));
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    sentences: source,
    server: 'child process (blockprune serve), 127.0.0.1, keep-alive clients',
    args,
  };
  try {
    const models = args.leak ? (['compact'] as ModelName[]) : args.models;
    const dirs: Partial<Record<ModelName, string>> = {};
    for (const m of models) {
      dirs[m] = join(tmp, m);
      const t = performance.now();
      const { params } = await buildModel(m, dirs[m]!, tokenizerDir);
      console.log(`built ${m} (${(params / 1e6).toFixed(1)}M parameters) in ${((performance.now() - t) / 1000).toFixed(1)} s: ${dirs[m]}`);
    }
    console.log(`sentences: ${source}`);
    if (args.leak) {
      report.leak = await leak(args, dirs.compact!, sentences);
    } else {
      console.log(
        `load: ${args.duration} s per run after ${args.warmup} s warm-up, at most ${args.maxRequests} requests; clients ${args.clients.join(', ')}; ` +
          `batching: up to ${args.maxBatch}, ${args.windowMs} ms window; server in a child process on ${cpus().length} CPUs\n`,
      );
      const runs: RunResult[] = [];
      for (const m of models)
        for (const mode of args.modes) {
          const server = await startServer(dirs[m]!, mode === 'batched', args);
          try {
            for (const c of args.clients) {
              const r = await measure(m, mode, c, server, args, sentences);
              runs.push(r);
              console.log(
                `  ${m} ${mode} ${c} clients: ${r.rps.toFixed(1)} req/s, mean ${r.meanMs.toFixed(1)} ms, ` +
                  `${formatPercentiles({ p50: r.p50Ms, p90: r.p90Ms, p99: r.p99Ms })}, mean batch ${r.meanBatch.toFixed(1)}` +
                  (r.errors ? `, ${r.errors} errors (first: ${r.firstError})` : ''),
              );
              if (server.exited()) throw new Error('the server process exited during the run');
            }
          } finally {
            await server.stop();
          }
        }
      console.log('');
      printTable(runs);
      const rs = ratios(runs, args.clients);
      if (Object.keys(rs).length) {
        console.log('');
        const top = Math.max(...args.clients);
        for (const [k, v] of Object.entries(rs)) {
          const goal = k.startsWith('compact/dense') ? 3 : k.startsWith('batched/unbatched') && k.endsWith(`${top} clients`) ? 2 : undefined;
          const verdict = goal === undefined ? '' : `  (goal >= ${goal}x: ${v >= goal ? 'met' : 'NOT met'})`;
          console.log(`${k.padEnd(38)} ${v.toFixed(2)}x${verdict}`);
        }
      }
      report.runs = runs;
      report.ratios = rs;
    }
    if (args.json) {
      writeFileAtomicSync(args.json, JSON.stringify(report, null, 2) + '\n');
      console.log(`\nwrote ${args.json}`);
    }
  } finally {
    if (args.keep) console.log(`models kept in ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

runScript('load', main);
