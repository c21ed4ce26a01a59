/**
 * `blockprune bench` (npm run bench): forward latency of a bert-base-sized model (random weights), through Node
 * and from the plain C++ program native/tools/bench_forward linked to the same libtorch, plus the machine's
 * GEMM throughput to express each time as a multiple of the roofline (model FLOPs / GEMM FLOP/s).
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
import { BertConfigJson, BertModel } from '../../model/model';
import { exportOnnx } from '../../model/onnx';
import { writeFileAtomicSync } from '../../runtime/atomic';
import { native, packageRoot } from '../../runtime/native';
import * as v from '../../runtime/validate';
import { BERT_BASE, compactConfig } from '../bert-base';
import { Command, noPositionals } from '../command';
import { bool, FlagValues, intFlag, intsFlag, listFlag, str } from '../flags';
import { formatPercentiles, latencyStats } from '../latency-stats';

type ModelName = 'dense' | 'compact';

interface BenchArgs {
  models: ModelName[];
  /** batch x sequence shapes: --shapes, else every --batches at --seq. */
  shapes: Array<[number, number]>;
  vsOrt: boolean;
  noCpp: boolean;
  runs: number;
  warmup: number;
  seq: number;
  rounds: number;
  json?: string;
}

/** The longest sequence: bert-base's position table (a longer one would index past it). */
const MAX_SEQ = BERT_BASE.max_position_embeddings ?? 512;
/** The largest batch: at 256 x 512 the attention scores of one bert-base layer already take 3 GB. */
const MAX_BATCH = 256;

/** `--shapes 1x79,8x128`, each checked against the limits above. */
function shapesFlag(values: FlagValues): Array<[number, number]> | undefined {
  if (values.shapes === undefined) return undefined;
  return String(values.shapes)
    .split(',')
    .map((x) => {
      const [b, s] = v.flagPair('--shapes', x, { min: 1 });
      return [v.integer('--shapes', b, { max: MAX_BATCH }), v.integer('--shapes', s, { max: MAX_SEQ })];
    });
}

/** Multiply-adds x 2 of one forward: every linear layer plus the two attention products, per layer. */
function forwardFlops(c: { hidden: number; layers: Array<{ heads: number; ffn: number }>; headDim: number }, batch: number, seq: number): number {
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
  name: ModelName;
  config: BertConfigJson;
  cppArgs: string[];
}

/** onnxruntime sessions on the same weights, exported by exportOnnx (onnxruntime-node is a dev dependency). */
async function ortSessions(ort: any, specs: BenchModel[], models: BertModel[]): Promise<Array<{ run(feeds: Record<string, unknown>): Promise<unknown> }>> {
  const sessions = [];
  const dir = mkdtempSync(join(tmpdir(), 'blockprune-bench-'));
  try {
    for (let k = 0; k < specs.length; k++) {
      const file = join(dir, `${specs[k].name}.onnx`);
      await exportOnnx(models[k], file);
      sessions.push(await ort.InferenceSession.create(file, { intraOpNumThreads: native().getNumThreads(), interOpNumThreads: 1, graphOptimizationLevel: 'all' }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}: the same weights exported with exportOnnx, ${native().getNumThreads()} intra-op threads\n`);
  return sessions;
}

async function bench(args: BenchArgs): Promise<void> {
  const exe = join(packageRoot(), 'build', 'bench_forward');
  const haveExe = existsSync(exe);
  const haveCpp = haveExe && !args.noCpp;
  const info = native().buildInfo();
  console.log(`blockprune bench: libtorch ${info.torchVersion}, CUDA ${info.cuda ? 'on' : 'off'}, threads ${native().getNumThreads()} (OpenBLAS ${info.openblasThreads})`);
  console.log(
    `bert-base geometry, random weights, seq ${args.seq}; models: ${args.models.join(', ')} (compact = 4 heads, FFN 552 per layer); ` +
      `${args.warmup} warm-ups, ${args.runs} runs in ${args.rounds} alternating rounds\n`,
  );

  const gflopsAt = new Map<number, number>();
  if (haveExe)
    for (const [b, sq] of args.shapes) {
      if (gflopsAt.has(b * sq)) continue;
      const g = runCpp(exe, ['--gemm', '--batch', String(b), '--seq', String(sq), '--runs', '1', '--warmup', '0', '--layers', '1']).find((x) => x.kind === 'gemm');
      // The best GEMM this machine has: OpenBLAS through libtorch, or our kernels on packed weights.
      if (g) gflopsAt.set(Number(g.rows), Math.max(Number(g.gflops), Number(g.kernels_gflops ?? 0)));
    }

  const specs: BenchModel[] = [];
  if (args.models.includes('dense')) specs.push({ name: 'dense', config: BERT_BASE, cppArgs: [] });
  if (args.models.includes('compact')) specs.push({ name: 'compact', config: compactConfig(), cppArgs: ['--kept-heads', '4', '--kept-ffn', '552'] });
  const models = await Promise.all(specs.map((s) => BertModel.fromConfig(s.config, { task: 'text-classification', seed: 0 })));
  const ort = args.vsOrt ? require('onnxruntime-node') : undefined;
  const sessions = ort ? await ortSessions(ort, specs, models) : [];
  const results: Array<Record<string, unknown>> = [];
  for (const [batch, seq] of args.shapes) {
    const n = batch * seq;
    const ids = new Int32Array(n).map((_, i) => 1000 + ((i * 7919) % 20000));
    const input = { inputIds: ids, attentionMask: new Int32Array(n).fill(1), tokenTypeIds: new Int32Array(n), batchSize: batch, seqLen: seq };
    const feeds = ort
      ? {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [batch, seq]),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [batch, seq]),
          token_type_ids: new ort.Tensor('int64', new BigInt64Array(n), [batch, seq]),
        }
      : {};
    const ortTimes: number[][] = specs.map(() => []);
    for (const s of sessions) for (let i = 0; i < args.warmup; i++) await s.run(feeds);
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
        if (ort)
          for (let i = 0; i < per; i++) {
            const t0 = performance.now();
            await sessions[k].run(feeds);
            ortTimes[k].push(performance.now() - t0);
          }
        if (haveCpp) {
          const out = runCpp(exe, ['--batch', String(batch), '--seq', String(seq), '--runs', String(per), '--warmup', String(Math.min(args.warmup, 3)), ...specs[k].cppArgs]);
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
      const flops = forwardFlops({ hidden: 768, layers, headDim: 64 }, batch, seq);
      const rooflineMs = gf ? flops / (gf * 1e6) : NaN;
      const row = {
        model: specs[k].name,
        batch,
        seq,
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
      let ortPart = '';
      if (ort) {
        const o = latencyStats(ortTimes[k]);
        Object.assign(row, { ort_mean_ms: o.mean, ort_std_ms: o.std, ort_p50_ms: o.p50, ort_p90_ms: o.p90, ort_p99_ms: o.p99, vs_ort: nd.mean / o.mean });
        ortPart = ` | onnxruntime ${o.mean.toFixed(1)} ± ${o.std.toFixed(1)} ms, ${formatPercentiles(o)} (ours / ort ${(nd.mean / o.mean).toFixed(2)}, ort ${(o.mean / rooflineMs).toFixed(2)}x roofline)`;
      }
      const cppPart = haveCpp ? ` | C++ program ${cppMean.toFixed(1)} ms (binding overhead ${row.binding_overhead_pct.toFixed(2)}%)` : '';
      const roofPart = gf
        ? `GEMM ${gf.toFixed(0)} GFLOP/s -> roofline ${rooflineMs.toFixed(1)} ms, ${row.x_roofline.toFixed(2)}x roofline`
        : 'no GEMM figure (build/bench_forward missing)';
      console.log(
        `${specs[k].name.padEnd(7)} ${batch}x${seq}: node ${nd.mean.toFixed(1)} ± ${nd.std.toFixed(1)} ms, ${formatPercentiles(nd)}${cppPart} | ` +
          `native loop in the addon ${lp.mean.toFixed(1)} ms, ${formatPercentiles(lp)} (per-call overhead ${row.per_call_overhead_pct.toFixed(2)}%)${ortPart}\n` +
          `        ${row.gflop.toFixed(2)} GFLOP, ${roofPart}`,
      );
    }
    if (specs.length === 2) {
      const speedup = means[0] / means[1];
      results.push({ batch, seq, compact_speedup: speedup });
      console.log(`  => compact speed-up at ${batch}x${seq}: ${speedup.toFixed(2)}x (dense ${means[0].toFixed(1)} ms / compact ${means[1].toFixed(1)} ms)\n`);
    }
  }
  for (const m of models) m.dispose();
  if (args.json) writeFileAtomicSync(args.json, JSON.stringify({ build: info, threads: native().getNumThreads(), results }, null, 2));
}

export const benchCommand: Command<BenchArgs> = {
  name: 'bench',
  synopsis: 'bench',
  summary: 'forward latency of a bert-base-sized model (see: blockprune bench --help)',
  help: `Usage: blockprune bench [--models dense,compact] [--runs 100] [--warmup 10] [--batches 1,8] [--seq 128]
                       [--shapes 1x79,1x128,8x128] [--vs-onnxruntime] [--rounds 4] [--no-cpp] [--json out.json]

Forward latency of bert-base (random weights) and of its compact form (4 heads, FFN 552 per layer: what block
pruning leaves of it), through Node, looped inside the addon and from the C++ program build/bench_forward,
in alternating rounds; each time also as a multiple of the GEMM roofline. Prints mean ± std and p50 / p90 /
p99 per shape, and the compact speed-up. --shapes BxS,... replaces --batches/--seq; --vs-onnxruntime adds
onnxruntime-node on the same weights; --no-cpp skips the C++ program; --json writes every figure.`,
  flags: { models: str, runs: str, warmup: str, batches: str, seq: str, shapes: str, rounds: str, 'vs-onnxruntime': bool, 'no-cpp': bool, json: str },
  args({ values, positionals }) {
    noPositionals('bench', positionals);
    const seq = intFlag(values, 'seq', 1, MAX_SEQ) ?? 128;
    const batches = intsFlag(values, 'batches', 1, MAX_BATCH) ?? [1, 8];
    return {
      models: listFlag(values, 'models', ['dense', 'compact'] as const) ?? ['dense', 'compact'],
      shapes: shapesFlag(values) ?? batches.map((b): [number, number] => [b, seq]),
      vsOrt: values['vs-onnxruntime'] === true,
      noCpp: values['no-cpp'] === true,
      runs: intFlag(values, 'runs', 1) ?? 100,
      warmup: intFlag(values, 'warmup', 0) ?? 10,
      seq,
      rounds: intFlag(values, 'rounds', 1) ?? 4,
      json: values.json === undefined ? undefined : v.writableFile('--json', values.json),
    };
  },
  run: bench,
};
