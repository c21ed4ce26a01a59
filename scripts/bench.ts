#!/usr/bin/env node
/**
 * npm run bench: forward latency of a bert-base-sized model (random weights), through Node and from the
 * plain C++ program native/tools/bench_forward linked to the same libtorch, plus the machine's GEMM
 * throughput to express each time as a multiple of the roofline (model FLOPs / GEMM FLOP/s).
 *
 *   npm run bench -- [--runs 100] [--warmup 10] [--batches 1,8] [--seq 128] [--rounds 4] [--json out.json]
 *
 * The VM drifts 15-25% over minutes, so the three are measured in alternating rounds (runs/rounds each):
 * per-call forwards from JS, the same forward looped inside the addon (model.timeForward: no JS between
 * runs), and the separate C++ program. Only ratios from this one run are printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BertConfigJson, BertModel } from '../lib/model';
import { buildInfo, getNumThreads } from '../lib/index';
import { packageRoot } from '../lib/native';

interface Args {
  runs: number;
  warmup: number;
  batches: number[];
  seq: number;
  rounds: number;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 100, warmup: 10, batches: [1, 8], seq: 128, rounds: 4 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${k} expects a positive integer, got ${v}`);
      i++;
      return n;
    };
    if (k === '--runs') a.runs = num();
    else if (k === '--warmup') a.warmup = num();
    else if (k === '--seq') a.seq = num();
    else if (k === '--rounds') a.rounds = num();
    else if (k === '--batches') {
      a.batches = String(v).split(',').map(Number);
      i++;
    } else if (k === '--json') {
      a.json = v;
      i++;
    } else if (k === '--help' || k === '-h') {
      console.log('npm run bench -- [--runs 100] [--warmup 10] [--batches 1,8] [--seq 128] [--rounds 4] [--json out.json]');
      process.exit(0);
    } else throw new Error(`unknown argument ${k} (see --help)`);
  }
  return a;
}

export const BERT_BASE: BertConfigJson = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  type_vocab_size: 2,
};

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

function stats(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std };
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const exe = join(packageRoot(), 'build', 'bench_forward');
  const haveCpp = existsSync(exe);
  const info = buildInfo();
  console.log(`blockprune bench: libtorch ${info.torchVersion}, CUDA ${info.cuda ? 'on' : 'off'}, threads ${getNumThreads()} (OpenBLAS ${info.openblasThreads})`);
  console.log(`bert-base geometry, random weights, seq ${args.seq}; ${args.warmup} warm-ups, ${args.runs} runs in ${args.rounds} alternating rounds\n`);

  const gemm = haveCpp ? runCpp(exe, ['--gemm', '--batch', args.batches.join(','), '--seq', String(args.seq), '--runs', '1', '--warmup', '0']) : [];
  const gflopsAt = new Map<number, number>();
  for (const g of gemm.filter((x) => x.kind === 'gemm')) gflopsAt.set(Number(g.rows), Number(g.gflops));

  const model = await BertModel.fromConfig(BERT_BASE, { task: 'text-classification', seed: 0 });
  const layers = model.layers.map((l) => ({ heads: l.heads, ffn: l.intermediateSize }));
  const results: Array<Record<string, unknown>> = [];
  for (const batch of args.batches) {
    const n = batch * args.seq;
    const ids = new Int32Array(n).map((_, i) => 1000 + ((i * 7919) % 20000));
    const input = { inputIds: ids, attentionMask: new Int32Array(n).fill(1), tokenTypeIds: new Int32Array(n), batchSize: batch, seqLen: args.seq };
    for (let i = 0; i < args.warmup; i++) await model.forward(input);
    const nodeTimes: number[] = [];
    const loopTimes: number[] = [];
    const cppMeans: Array<{ mean: number; runs: number }> = [];
    const per = Math.max(1, Math.round(args.runs / args.rounds));
    for (let r = 0; r < args.rounds; r++) {
      for (let i = 0; i < per; i++) {
        const t0 = performance.now();
        await model.forward(input);
        nodeTimes.push(performance.now() - t0);
      }
      loopTimes.push(...(await model.timeForward(input, { runs: per })));
      if (haveCpp) {
        const out = runCpp(exe, ['--batch', String(batch), '--seq', String(args.seq), '--runs', String(per), '--warmup', String(Math.min(args.warmup, 3))]);
        const f = out.find((x) => x.kind === 'forward')!;
        cppMeans.push({ mean: Number(f.mean_ms), runs: per });
      }
    }
    const node = stats(nodeTimes);
    const loop = stats(loopTimes);
    const cppMean = cppMeans.length ? cppMeans.reduce((a, b) => a + b.mean * b.runs, 0) / cppMeans.reduce((a, b) => a + b.runs, 0) : NaN;
    const flops = forwardFlops({ hidden: 768, layers, headDim: 64 }, batch, args.seq);
    const gf = gflopsAt.get(n);
    const rooflineMs = gf ? flops / (gf * 1e6) : NaN;
    const row = {
      batch,
      seq: args.seq,
      node_mean_ms: node.mean,
      node_std_ms: node.std,
      native_loop_mean_ms: loop.mean,
      cpp_mean_ms: cppMean,
      binding_overhead_pct: ((node.mean / cppMean) - 1) * 100,
      per_call_overhead_pct: ((node.mean / loop.mean) - 1) * 100,
      gflop: flops / 1e9,
      gemm_gflops: gf,
      roofline_ms: rooflineMs,
      x_roofline: node.mean / rooflineMs,
    };
    results.push(row);
    console.log(
      `${batch}x${args.seq}: node ${node.mean.toFixed(1)} ± ${node.std.toFixed(1)} ms | C++ program ${cppMean.toFixed(1)} ms ` +
        `(binding overhead ${row.binding_overhead_pct.toFixed(2)}%) | native loop in the addon ${loop.mean.toFixed(1)} ms ` +
        `(per-call overhead ${row.per_call_overhead_pct.toFixed(2)}%)\n      ${row.gflop.toFixed(2)} GFLOP, GEMM ${gf?.toFixed(0)} GFLOP/s -> ` +
        `roofline ${rooflineMs.toFixed(1)} ms, ${row.x_roofline.toFixed(2)}x roofline`,
    );
  }
  model.dispose();
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, JSON.stringify({ build: info, threads: getNumThreads(), results }, null, 2));
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
