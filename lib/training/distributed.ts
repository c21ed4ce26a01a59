/**
 * Data-parallel training across processes and machines, on libtorch's own distributed engine (c10d): a
 * TCPStore rendezvous hosted by rank 0, then Gloo (CPU) or NCCL (CUDA builds that have it). The environment
 * variables are torchrun's: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK (and GLOO_SOCKET_IFNAME).
 *
 *   const group = await ProcessGroup.init(ProcessGroup.optionsFromEnv()!);
 *   await new SparseTrainer({ model, train, distributed: group, ... }).train();
 *   await group.destroy();
 *
 * `launch()` is the one-machine launcher behind `blockprune train --nproc N`: it starts N copies of a script
 * with those variables set, and when one fails it stops the others.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { constants as osConstants, cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';
import { BertModel, ForwardBatch, modelInternals } from '../model/model';
import { native, NativeProcessGroup } from '../runtime/native';

export type DistributedBackend = 'gloo' | 'nccl';

export interface DistributedOptions {
  rank: number;
  worldSize: number;
  /** This process's index on its machine (picks the GPU for NCCL); default: rank. */
  localRank?: number;
  /** Where rank 0 listens (default 127.0.0.1). */
  masterAddr?: string;
  /** Default 29500, as torchrun. */
  masterPort?: number;
  /** Default 'gloo'. */
  backend?: DistributedBackend;
  /** Rendezvous and every collective fail on all ranks after this long (default 300,000 ms). */
  timeoutMs?: number;
  /** Gradient buckets of at most this many MiB (default 25, as torch DDP). */
  bucketMb?: number;
  /** Gloo's network interface (default: GLOO_SOCKET_IFNAME, else loopback for a local master, else the host's). */
  interface?: string;
}

function intEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new BlockpruneError('E_INVALID_ARG', `${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/** A c10d process group: rank, world size, collectives, and the rendezvous store. */
export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: DistributedBackend;
  readonly timeoutMs: number;
  private group: NativeProcessGroup | undefined;
  private keys = 0;

  private constructor(g: NativeProcessGroup, o: DistributedOptions, timeoutMs: number) {
    this.group = g;
    this.rank = g.rank;
    this.worldSize = g.worldSize;
    this.localRank = o.localRank ?? o.rank;
    this.backend = (o.backend ?? 'gloo') as DistributedBackend;
    this.timeoutMs = timeoutMs;
  }

  /**
   * The options torchrun's variables describe (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
   * GLOO_SOCKET_IFNAME), or undefined when WORLD_SIZE is not set.
   */
  static optionsFromEnv(env: NodeJS.ProcessEnv = process.env): DistributedOptions | undefined {
    const worldSize = intEnv(env, 'WORLD_SIZE');
    if (worldSize === undefined) return undefined;
    const rank = intEnv(env, 'RANK');
    if (rank === undefined) throw new BlockpruneError('E_INVALID_ARG', 'WORLD_SIZE is set but RANK is not');
    return {
      rank,
      worldSize,
      localRank: intEnv(env, 'LOCAL_RANK'),
      masterAddr: env.MASTER_ADDR || undefined,
      masterPort: intEnv(env, 'MASTER_PORT'),
      interface: env.GLOO_SOCKET_IFNAME || undefined,
    };
  }

  /** Joins the group: resolves once all `worldSize` ranks have (or rejects with E_DISTRIBUTED after the timeout). */
  static async init(o: DistributedOptions): Promise<ProcessGroup> {
    v.options('options', v.object('options', o), ['rank', 'worldSize', 'localRank', 'masterAddr', 'masterPort', 'backend', 'timeoutMs', 'bucketMb', 'interface']);
    v.positiveInteger('worldSize', o.worldSize);
    v.integer('rank', o.rank, { min: 0, max: o.worldSize - 1 });
    if (o.localRank !== undefined) v.integer('localRank', o.localRank, { min: 0 });
    if (o.masterAddr !== undefined) v.string('masterAddr', o.masterAddr, { nonEmpty: true });
    if (o.masterPort !== undefined) v.integer('masterPort', o.masterPort, { min: 1, max: 65535 });
    if (o.interface !== undefined) v.string('interface', o.interface);
    const backend = v.oneOf('backend', o.backend ?? 'gloo', ['gloo', 'nccl'] as const);
    const available = native().buildInfo().distributedBackends ?? [];
    if (!available.includes(backend))
      throw new BlockpruneError(
        'E_UNSUPPORTED',
        `this blockprune build has no '${backend}' backend (it has: ${available.join(', ') || 'none'})` +
          (backend === 'gloo' ? ': install libgloo-dev and rebuild (npm run compile)' : ': NCCL needs a CUDA build of libtorch with NCCL'),
      );
    const timeoutMs = v.number('timeoutMs', o.timeoutMs ?? 300_000, { min: 1 });
    const bucketMb = v.number('bucketMb', o.bucketMb ?? 25, { min: 0, exclusiveMin: true });
    const g = await native().initProcessGroup({
      backend,
      rank: o.rank,
      worldSize: o.worldSize,
      masterAddr: o.masterAddr ?? '127.0.0.1',
      masterPort: o.masterPort ?? 29500,
      timeoutMs: Math.round(timeoutMs),
      bucketBytes: Math.max(1024, Math.round(bucketMb * 1024 * 1024)),
      interface: o.interface ?? process.env.GLOO_SOCKET_IFNAME ?? '',
    });
    return new ProcessGroup(g, o, timeoutMs);
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /** @internal the native group (E_DISPOSED after destroy). */
  handle(): NativeProcessGroup {
    if (!this.group) throw new BlockpruneError('E_DISPOSED', 'this process group was destroyed');
    return this.group;
  }

  /** Elementwise sum over all ranks. */
  async allreduce(values: ArrayLike<number>): Promise<Float64Array> {
    return this.handle().allreduce(Float64Array.from(values));
  }

  /** Every rank's bytes, in rank order. */
  async allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.handle().allgatherBytes(bytes);
  }

  /** Every rank's JSON value, in rank order. */
  async allgatherJson<T>(value: T): Promise<T[]> {
    const all = await this.allgather(new TextEncoder().encode(JSON.stringify(value)));
    return all.map((b) => JSON.parse(new TextDecoder().decode(b)) as T);
  }

  async barrier(): Promise<void> {
    return this.handle().barrier();
  }

  /**
   * Rank 0's value on every rank, through the rendezvous store rather than a collective: the other ranks may
   * wait as long as `timeoutMs` (rank 0 evaluating, say) without tripping the collectives' timeout, and still
   * fail at once if rank 0 dies. Every rank must call it in the same order (keys are numbered).
   */
  async shareFromMain<T>(name: string, value: T | undefined, timeoutMs: number): Promise<T> {
    const key = `blockprune/${name}/${this.keys++}`;
    if (this.isMain) {
      await this.handle().storeSet(key, JSON.stringify(value ?? null));
      return value as T;
    }
    return JSON.parse(await this.handle().storeWait(key, timeoutMs)) as T;
  }

  /**
   * Checks that every rank holds the same model structure, then copies rank 0's weights to every rank (a job
   * in the model's queue). Every rank must call it.
   */
  async syncModel(model: BertModel): Promise<void> {
    const group = this.handle();
    await modelInternals.enqueue(model, (h) => group.syncModel(h));
  }

  /** Waits for every rank (a barrier) and closes the group. Safe to call twice. */
  async destroy(): Promise<void> {
    const g = this.group;
    this.group = undefined;
    if (g) await g.shutdown(true);
  }

  /**
   * Closes the group at once, without waiting for the others (after an error on this rank): its connections
   * close, so the other ranks fail within moments instead of waiting for the timeout. Never throws.
   */
  async abort(): Promise<void> {
    const g = this.group;
    this.group = undefined;
    if (g) await g.shutdown(false).catch(() => {});
  }
}

/**
 * This rank's part of a global batch: rows rank, rank + W, rank + 2W, ... (the union over ranks is the batch;
 * for seeded permutations this is the split torch's DistributedSampler makes). Null when it gets no row.
 * Row-major fields of batchSize x seqLen or batchSize values are sliced; other fields are kept.
 */
export function shardBatch<B extends ForwardBatch>(batch: B, rank: number, worldSize: number): B | null {
  const n = batch.batchSize;
  const rows: number[] = [];
  for (let r = rank; r < n; r += worldSize) rows.push(r);
  if (rows.length === 0) return null;
  const seqLen = batch.seqLen;
  const out: Record<string, unknown> = { ...(batch as unknown as Record<string, unknown>), batchSize: rows.length };
  for (const [key, v] of Object.entries(batch as object)) {
    if (!ArrayBuffer.isView(v) || v instanceof DataView) continue;
    const arr = v as unknown as { length: number; constructor: new (n: number) => { set(a: ArrayLike<unknown>, o: number): void }; subarray(a: number, b: number): ArrayLike<unknown> };
    const width = arr.length === n * seqLen ? seqLen : arr.length === n ? 1 : 0;
    if (!width) continue;
    const sliced = new arr.constructor(rows.length * width);
    rows.forEach((r, k) => sliced.set(arr.subarray(r * width, (r + 1) * width), k * width));
    out[key] = sliced;
  }
  return out as B;
}

/** A TCP port that was free a moment ago on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export interface LaunchOptions {
  /** Processes to start on this machine. */
  nproc: number;
  /** Machines taking part (each runs launch() with the same nproc); default 1. */
  nnodes?: number;
  /** This machine's index among them (global rank = nodeRank x nproc + local rank); default 0. */
  nodeRank?: number;
  /** The Node script each rank runs, and its arguments. */
  script: string;
  args?: string[];
  /** Default 127.0.0.1 and a free port. */
  masterAddr?: string;
  masterPort?: number;
  /** Base environment (default process.env). OMP_NUM_THREADS defaults to the cores divided among the ranks. */
  env?: NodeJS.ProcessEnv;
  /** After the first rank fails, how long the others get to end on their own before SIGTERM (default 10 s). */
  graceMs?: number;
  /** Where rank output goes (default: rank 0 to this process's stdout/stderr, others prefixed "[rank r] "). */
  onLine?: (rank: number, stream: 'stdout' | 'stderr', line: string) => void;
}

export interface LaunchResult {
  /** 0 when every rank succeeded, else the first failing rank's exit code (128 + signal number for a signal). */
  code: number;
  exits: Array<{ rank: number; code: number | null; signal: NodeJS.Signals | null }>;
  /** The first rank that failed, if any. */
  firstFailure?: number;
}

/**
 * Starts `nproc` ranks of `script` on this machine (what torchrun --nproc-per-node does), with RANK,
 * LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. When a rank fails, the others get `graceMs` to end
 * on their own (a dead peer makes their next collective fail), then SIGTERM, then SIGKILL 5 s later: the
 * launcher never waits forever. A Ctrl-C reaches every rank (they agree to checkpoint and stop); a second
 * one stops them.
 */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  v.options('options', v.object('options', o), ['nproc', 'nnodes', 'nodeRank', 'script', 'args', 'masterAddr', 'masterPort', 'env', 'graceMs', 'onLine']);
  v.positiveInteger('nproc', o.nproc);
  const nnodes = v.positiveInteger('nnodes', o.nnodes ?? 1);
  const nodeRank = v.integer('nodeRank', o.nodeRank ?? 0, { min: 0, max: nnodes - 1 });
  v.string('script', o.script, { nonEmpty: true });
  if (o.args !== undefined && !(Array.isArray(o.args) && o.args.every(v.is.string))) throw v.invalidParameterError('args', 'an array of strings', o.args);
  if (o.masterPort !== undefined) v.integer('masterPort', o.masterPort, { min: 1, max: 65535 });
  if (o.graceMs !== undefined) v.number('graceMs', o.graceMs, { min: 0 });
  if (o.onLine !== undefined) v.func('onLine', o.onLine);
  if (nnodes > 1 && (o.masterAddr === undefined || o.masterPort === undefined))
    throw new BlockpruneError('E_INVALID_ARG', 'several machines need masterAddr and masterPort (where node 0 will listen)');
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (await freePort(masterAddr));
  const base = o.env ?? process.env;
  const threads = base.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(cpus().length / o.nproc)));
  const graceMs = o.graceMs ?? 10_000;
  const onLine =
    o.onLine ??
    ((rank: number, stream: 'stdout' | 'stderr', line: string) => (stream === 'stdout' ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`));
  const children: ChildProcess[] = [];
  const exits: LaunchResult['exits'] = [];
  let firstFailure: number | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const running = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  const stopOthers = () => {
    if (killTimer) return;
    killTimer = setTimeout(() => {
      for (const c of running()) c.kill('SIGTERM');
      killTimer = setTimeout(() => running().forEach((c) => c.kill('SIGKILL')), 5000);
      killTimer.unref();
    }, graceMs);
    killTimer.unref();
  };
  let interrupts = 0;
  const onSigint = () => {
    // The terminal already sent SIGINT to every rank (one process group); a second Ctrl-C stops them.
    if (++interrupts > 1) running().forEach((c) => c.kill('SIGTERM'));
  };
  process.on('SIGINT', onSigint);
  try {
    const done = Array.from({ length: o.nproc }, (_, local) => {
      const rank = nodeRank * o.nproc + local;
      const child = spawn(process.execPath, [o.script, ...(o.args ?? [])], {
        env: {
          ...base,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(nnodes * o.nproc),
          LOCAL_WORLD_SIZE: String(o.nproc),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          OMP_NUM_THREADS: threads,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      for (const stream of ['stdout', 'stderr'] as const) {
        const rl = createInterface({ input: child[stream]! });
        rl.on('line', (line) => {
          if (rank === 0 && !o.onLine) (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n');
          else onLine(rank, stream, line);
        });
      }
      return new Promise<void>((res) => {
        child.on('error', (e) => {
          onLine(rank, 'stderr', `could not start: ${e.message}`);
        });
        child.on('close', (code, signal) => {
          exits.push({ rank, code, signal });
          if ((code !== 0 || signal) && firstFailure === undefined) {
            firstFailure = rank;
            stopOthers();
          }
          res();
        });
      });
    });
    await Promise.all(done);
  } finally {
    process.removeListener('SIGINT', onSigint);
    if (killTimer) clearTimeout(killTimer);
  }
  exits.sort((a, b) => a.rank - b.rank);
  let code = 0;
  if (firstFailure !== undefined) {
    const e = exits.find((x) => x.rank === firstFailure)!;
    code = e.code ?? 128 + (e.signal ? osConstants.signals[e.signal] : 1);
    if (code === 0) code = 1;
  }
  return { code, exits, firstFailure };
}
