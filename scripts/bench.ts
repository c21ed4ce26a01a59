#!/usr/bin/env node
/**
 * npm run bench: forward latency of a bert-base-sized model (random weights), through Node and from the
 * plain C++ program native/tools/bench_forward linked to the same libtorch, plus the machine's GEMM
 * throughput to express each time as a multiple of the roofline (model FLOPs / GEMM FLOP/s).
 *
 *   npm run bench -- [--models dense,compact] [--runs 100] [--warmup 10] [--batches 1,8] [--seq 128]
 *                    [--rounds 4] [--no-cpp] [--json out.json]
 *
 * "compact" is bert-base with 4 heads and FFN 552 in every layer (what block pruning leaves of it): the
 * speed-up dense / compact is printed for each batch shape.
 *
 * The VM drifts 15-25% over minutes, so the three are measured in alternating rounds (runs/rounds each):
 * per-call forwards from JS, the same forward looped inside the addon (model.timeForward: no JS between
 * runs), and the separate C++ program. Only ratios from this one run are printed. Each per-run time is kept:
 * next to the mean ± std, p50 / p90 / p99 (nearest rank; with fewer than 100 runs p99 is the slowest), which
 * show the stalls a mean hides.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../lib/runtime/atomic';
import { exportOnnx } from '../lib/model/onnx';
import { BertConfigJson, BertModel } from '../lib/model/model';
import { buildInfo, getNumThreads } from '../lib/index';
import { packageRoot } from '../lib/runtime/native';
import { BERT_BASE, compactConfig, exitWithError, FlagReader, formatPercentiles, latencyStats, parseFlags } from './common';
import { flagPair, integer, writableFile } from '../lib/runtime/validate';

interface Args {
  models: string[];
  shapes?: Array<[number, number]>;
  vsOrt: boolean;
  noCpp: boolean;
  runs: number;
  warmup: number;
  batches: number[];
  seq: number;
  rounds: number;
  json?: string;
}

const USAGE =
  'usage: blockprune bench [--models dense,compact] [--runs 100] [--warmup 10] [--batches 1,8] [--seq 128] [--shapes 1x79,1x128,8x128]\n' +
  '                        [--vs-onnxruntime] [--rounds 4] [--no-cpp] [--json out.json]';

/** The longest sequence: bert-base's position table (a longer one would index past it). */
const MAX_SEQ = BERT_BASE.max_position_embeddings ?? 512;
/** The largest batch: at 256 x 512 the attention scores of one bert-base layer already take 3 GB. */
const MAX_BATCH = 256;

/** Every flag checked by lib/validate.ts before any model is built or the C++ program spawned. */
function parseArgs(argv: string[]): Args {
  const a: Args = { models: ['dense', 'compact'], vsOrt: false, noCpp: false, runs: 100, warmup: 10, batches: [1, 8], seq: 128, rounds: 4 };
  const f = new FlagReader(argv, USAGE);
  for (let k = f.next(); k !== undefined; k = f.next()) {
    if (k === '--runs') a.runs = f.num(1);
    else if (k === '--warmup') a.warmup = f.num(0);
    else if (k === '--seq') a.seq = f.num(1, true, MAX_SEQ);
    else if (k === '--rounds') a.rounds = f.num(1);
    else if (k === '--batches') a.batches = f.nums(1, MAX_BATCH);
    else if (k === '--models') a.models = f.list(['dense', 'compact'] as const);
    else if (k === '--shapes') {
      const flag = k;
      a.shapes = f
        .value()
        .split(',')
        .map((x) => {
          const [b, s] = flagPair(flag, x, { min: 1 });
          return [integer(flag, b, { max: MAX_BATCH }), integer(flag, s, { max: MAX_SEQ })] as [number, number];
        });
    } else if (k === '--vs-onnxruntime') a.vsOrt = true;
    else if (k === '--no-cpp') a.noCpp = true;
    else if (k === '--json') a.json = writableFile('--json', f.value());
    else throw f.unknown();
  }
  return a;
}

/** Multiply-adds x 2 of one forward: every linear layer plus the two attention products, per layer. */
export function forwardFlops(c: { hidden: number; layers: Array<{ heads: number; ffn: number }>; headDim: number }, batch: number, seq: number): number {
  const T = batch * seq;
  let f = 0;
  for (const l of c.layers) {
    const a = l.heads * c.headDim;
    f += 2 * T * (3 * c.hidden * a + a * c.hidden + 2 * c.hidden * l.ffn);
    f += 2 * 2 * batch * l.heads * seq * seq * c.headDim;
  }
  return f + 2 * batch * c.hidden * c.hidden; // pooler
}

function runCpp(exe: string, args: string[]): Array<Record<string, number | string>> {
  const r = spawnSync(exe, args, { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' } });
  if (r.status !== 0) throw new Error(`${exe} failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

interface BenchModel {
  name: 'dense' | 'compact';
  config: BertConfigJson;
  cppArgs: string[];
}

async function main(): Promise<void> {
  const args = parseFlags('blockprune bench', USAGE, () => parseArgs(process.argv.slice(2)));
  const exe = join(packageRoot(), 'build', 'bench_forward');
  const haveExe = existsSync(exe);
  const haveCpp = haveExe && !args.noCpp;
  const info = buildInfo();
  console.log(`blockprune bench: libtorch ${info.torchVersion}, CUDA ${info.cuda ? 'on' : 'off'}, threads ${getNumThreads()} (OpenBLAS ${info.openblasThreads})`);
  console.log(
    `bert-base geometry, random weights, seq ${args.seq}; models: ${args.models.join(', ')} (compact = 4 heads, FFN 552 per layer); ` +
      `${args.warmup} warm-ups, ${args.runs} runs in ${args.rounds} alternating rounds\n`,
  );

  const shapes: Array<[number, number]> = args.shapes ?? args.batches.map((b) => [b, args.seq] as [number, number]);
  const gflopsAt = new Map<number, number>();
  if (haveExe)
    for (const [b, sq] of shapes) {
      if (gflopsAt.has(b * sq)) continue;
      const g = runCpp(exe, ['--gemm', '--batch', String(b), '--seq', String(sq), '--runs', '1', '--warmup', '0', '--layers', '1']).find((x) => x.kind === 'gemm');
      // The best GEMM this machine has: OpenBLAS through libtorch, or our kernels on packed weights.
      if (g) gflopsAt.set(Number(g.rows), Math.max(Number(g.gflops), Number(g.kernels_gflops ?? 0)));
    }

  const specs: BenchModel[] = [];
  if (args.models.includes('dense')) specs.push({ name: 'dense', config: BERT_BASE, cppArgs: [] });
  if (args.models.includes('compact')) specs.push({ name: 'compact', config: compactConfig(), cppArgs: ['--kept-heads', '4', '--kept-ffn', '552'] });
  const models = await Promise.all(specs.map((s) => BertModel.fromConfig(s.config, { task: 'text-classification', seed: 0 })));
  // onnxruntime on the same weights, exported by exportOnnx (onnxruntime-node is a dev dependency).
  const sessions: Array<{ run(feeds: Record<string, unknown>): Promise<unknown> }> = [];
  let ort: any;
  if (args.vsOrt) {
    ort = require('onnxruntime-node');
    const dir = mkdtempSync(join(tmpdir(), 'blockprune-bench-'));
    for (let k = 0; k < specs.length; k++) {
      const file = join(dir, `${specs[k].name}.onnx`);
      await exportOnnx(models[k], file);
      sessions.push(await ort.InferenceSession.create(file, { intraOpNumThreads: getNumThreads(), interOpNumThreads: 1, graphOptimizationLevel: 'all' }));
    }
    rmSync(dir, { recursive: true, force: true });
    console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}: the same weights exported with exportOnnx, ${getNumThreads()} intra-op threads\n`);
  }
  const results: Array<Record<string, unknown>> = [];
  for (const [batch, seq] of shapes) {
    args.seq = seq;
    const n = batch * args.seq;
    const ids = new Int32Array(n).map((_, i) => 1000 + ((i * 7919) % 20000));
    const input = { inputIds: ids, attentionMask: new Int32Array(n).fill(1), tokenTypeIds: new Int32Array(n), batchSize: batch, seqLen: args.seq };
    const feeds = args.vsOrt
      ? {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [batch, seq]),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [batch, seq]),
          token_type_ids: new ort.Tensor('int64', new BigInt64Array(n), [batch, seq]),
        }
      : {};
    const ortTimes: number[][] = specs.map(() => []);
    if (args.vsOrt) for (const s of sessions) for (let i = 0; i < args.warmup; i++) await s.run(feeds);
    const per = Math.max(1, Math.round(args.runs / args.rounds));
    const node: number[][] = specs.map(() => []);
    const loop: number[][] = specs.map(() => []);
    const cpp: Array<Array<{ mean: number; runs: number }>> = specs.map(() => []);
    for (const m of models) for (let i = 0; i < args.warmup; i++) await m.forward(input);
    for (let r = 0; r < args.rounds; r++) {
      for (let k = 0; k < specs.length; k++) {
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          await models[k].forward(input);
          node[k].push(performance.now() - t0);
        }
        loop[k].push(...(await models[k].timeForward(input, { runs: per })));
        if (args.vsOrt)
          for (let i = 0; i < per; i++) {
            const t0 = performance.now();
            await sessions[k].run(feeds);
            ortTimes[k].push(performance.now() - t0);
          }
        if (haveCpp) {
          const out = runCpp(exe, ['--batch', String(batch), '--seq', String(args.seq), '--runs', String(per), '--warmup', String(Math.min(args.warmup, 3)), ...specs[k].cppArgs]);
          const f = out.find((x) => x.kind === 'forward')!;
          cpp[k].push({ mean: Number(f.mean_ms), runs: per });
        }
      }
    }
    const gf = gflopsAt.get(n);
    const means: number[] = [];
    for (let k = 0; k < specs.length; k++) {
      const nd = latencyStats(node[k]);
      const lp = latencyStats(loop[k]);
      means.push(nd.mean);
      const cppMean = cpp[k].length ? cpp[k].reduce((a, b) => a + b.mean * b.runs, 0) / cpp[k].reduce((a, b) => a + b.runs, 0) : NaN;
      const layers = models[k].layers.map((l) => ({ heads: l.heads, ffn: l.intermediateSize }));
      const flops = forwardFlops({ hidden: 768, layers, headDim: 64 }, batch, args.seq);
      const rooflineMs = gf ? flops / (gf * 1e6) : NaN;
      const row = {
        model: specs[k].name,
        batch,
        seq: args.seq,
        node_mean_ms: nd.mean,
        node_std_ms: nd.std,
        node_p50_ms: nd.p50,
        node_p90_ms: nd.p90,
        node_p99_ms: nd.p99,
        native_loop_mean_ms: lp.mean,
        native_loop_p50_ms: lp.p50,
        native_loop_p90_ms: lp.p90,
        native_loop_p99_ms: lp.p99,
        cpp_mean_ms: cppMean,
        binding_overhead_pct: (nd.mean / cppMean - 1) * 100,
        per_call_overhead_pct: (nd.mean / lp.mean - 1) * 100,
        gflop: flops / 1e9,
        gemm_gflops: gf,
        roofline_ms: rooflineMs,
        x_roofline: nd.mean / rooflineMs,
      };
      results.push(row);
      const ortPart = args.vsOrt ? (() => {
        const o = latencyStats(ortTimes[k]);
        Object.assign(row, { ort_mean_ms: o.mean, ort_std_ms: o.std, ort_p50_ms: o.p50, ort_p90_ms: o.p90, ort_p99_ms: o.p99, vs_ort: nd.mean / o.mean });
        return ` | onnxruntime ${o.mean.toFixed(1)} ± ${o.std.toFixed(1)} ms, ${formatPercentiles(o)} (ours / ort ${(nd.mean / o.mean).toFixed(2)}, ort ${(o.mean / rooflineMs).toFixed(2)}x roofline)`;
      })() : '';
      const cppPart = haveCpp ? ` | C++ program ${cppMean.toFixed(1)} ms (binding overhead ${row.binding_overhead_pct.toFixed(2)}%)` : '';
      const roofPart = gf
        ? `GEMM ${gf.toFixed(0)} GFLOP/s -> roofline ${rooflineMs.toFixed(1)} ms, ${row.x_roofline.toFixed(2)}x roofline`
        : 'no GEMM figure (build/bench_forward missing)';
      console.log(
        `${specs[k].name.padEnd(7)} ${batch}x${args.seq}: node ${nd.mean.toFixed(1)} ± ${nd.std.toFixed(1)} ms, ${formatPercentiles(nd)}${cppPart} | ` +
          `native loop in the addon ${lp.mean.toFixed(1)} ms, ${formatPercentiles(lp)} (per-call overhead ${row.per_call_overhead_pct.toFixed(2)}%)${ortPart}\n` +
          `        ${row.gflop.toFixed(2)} GFLOP, ${roofPart}`,
      );
    }
    if (specs.length === 2) {
      const speedup = means[0] / means[1];
      results.push({ batch, seq: args.seq, compact_speedup: speedup });
      console.log(`  => compact speed-up at ${batch}x${seq}: ${speedup.toFixed(2)}x (dense ${means[0].toFixed(1)} ms / compact ${means[1].toFixed(1)} ms)\n`);
    }
  }
  for (const m of models) m.dispose();
  if (args.json) {
    writeFileAtomicSync(args.json, JSON.stringify({ build: info, threads: getNumThreads(), results }, null, 2));
  }
}

main().catch((e) => exitWithError('blockprune bench', e));
