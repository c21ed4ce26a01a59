/**
 * `blockprune bench`: forward latency of the user's own model, dense against its compact form (or of two
 * models given), and on request (--synthetic) of a bert-base-sized model with random weights against its
 * compact geometry, the figures the reference quotes.
 *
 * The VM drifts 15-25% over minutes, so the models are measured in alternating rounds (runs/rounds each):
 * per-call forwards from JS and the same forward looped inside the addon (model.timeForward: no JS between
 * runs); with --synthetic in a source checkout, also the plain C++ program native/tools/bench_forward linked
 * to the same libtorch, and the machine's GEMM throughput to express each time as a multiple of the roofline
 * (an installed package has no build/ folder: those are left out, and the output says so once). Only ratios
 * from this one run are printed. Each per-run time is kept: next to the mean ± std, p50 / p90 / p99 (nearest
 * rank; with fewer than 100 runs p99 is the slowest), which show the stalls a mean hides.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BertModel } from '../../model/model';
import { exportOnnx, type OnnxExportOptions } from '../../model/onnx';
import { writeFileAtomicSync } from '../../runtime/atomic';
import { native, packageRoot } from '../../runtime/native';
import * as v from '../../runtime/validate';
import { checkModelSource, resolveModel, type HubOptions } from '../../hub/hub';
import { BERT_BASE, compactConfig } from '../bert-base';
import { Command, HUB_FLAGS, HUB_HELP, hubFlags } from '../command';
import { bool, FlagValues, intFlag, intsFlag, listFlag, str, UsageError } from '../flags';
import { BenchDtype, DTYPES, DtypeCell, dtypeCells, OrtSession, printDtypeTable, runCells, timeCalls } from '../bench-dtypes';
import { formatPercentiles, latencyStats } from '../latency-stats';
import { countProgress } from '../progress';

type ModelName = 'dense' | 'compact';

interface BenchArgs {
  /** The models as given: one (it and its compact form) or two (the first against the second); none with --synthetic. */
  sources: string[];
  synthetic: boolean;
  models: ModelName[];
  /** --shapes (batch x sequence), else every --batches at --seq (the model's positions bound the default). */
  shapes?: Array<[number, number]>;
  batches: number[];
  seq?: number;
  vsOrt: boolean;
  /** --dtype: fp32 is always measured (the base of the ratios); bf16 / int8 add a table per shape. */
  dtypes: BenchDtype[];
  noCpp: boolean;
  runs: number;
  warmup: number;
  rounds: number;
  json?: string;
  hub: HubOptions;
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
  name: string;
  model: BertModel;
  /** The C++ program's arguments for this geometry (--synthetic only). */
  cppArgs?: string[];
}

/**
 * The models to measure: --synthetic's bert-base geometry (dense, compact); one model given: as it is (a
 * patched one with its masks baked in) and its compact form, when compaction removes anything; two given:
 * each as it is. Returns them with a line that says what they are.
 */
async function benchModels(a: BenchArgs): Promise<{ specs: BenchModel[]; what: string }> {
  if (a.synthetic) {
    const specs: BenchModel[] = [];
    if (a.models.includes('dense')) specs.push({ name: 'dense', model: await BertModel.fromConfig(BERT_BASE, { task: 'text-classification', seed: 0, }), cppArgs: [] });
    if (a.models.includes('compact'))
      specs.push({ name: 'compact', model: await BertModel.fromConfig(compactConfig(), { task: 'text-classification', seed: 0, }), cppArgs: ['--kept-heads', '4', '--kept-ffn', '552'] });
    return { specs, what: `synthetic bert-base geometry, random weights; models: ${a.models.join(', ')} (compact = 4 heads, FFN 552 per layer)` };
  }
  const load = async (source: string) => {
    const m = await BertModel.fromPretrained(await resolveModel(source, a.hub, '<model-dir>'));
    // A patched model's forward recomputes its masks: what it runs as once trained is the masked weights.
    if (m.patched) await m.compile();
    return m;
  };
  if (a.sources.length === 2) {
    const specs = [];
    for (const s of a.sources) specs.push({ name: s, model: await load(s) });
    return { specs, what: `${a.sources[0]} against ${a.sources[1]}` };
  }
  const model = await load(a.sources[0]);
  const { model: compact, report } = await model.compact('dense');
  if (report.parametersAfter === report.parametersBefore) {
    compact.dispose();
    return { specs: [{ name: 'model', model }], what: `${a.sources[0]} (nothing to compact: no pruned head or FFN unit, so it is measured alone)` };
  }
  const specs: BenchModel[] = [];
  if (a.models.includes('dense')) specs.push({ name: 'dense', model });
  else model.dispose();
  if (a.models.includes('compact')) specs.push({ name: 'compact', model: compact });
  else compact.dispose();
  const ratio = (report.parametersBefore / report.parametersAfter).toFixed(2);
  return { specs, what: `${a.sources[0]} as it is (dense) and compacted (compact: heads ${report.heads.join(' ')}, FFN ${report.ffnWidths.join(' ')}; ${ratio}x fewer parameters)` };
}

/**
 * onnxruntime sessions on the same weights, exported by exportOnnx with `options` (quantize 'int8' for the
 * int8 rows); onnxruntime-node is a dev dependency.
 */
async function ortSessions(ort: any, specs: BenchModel[], options: OnnxExportOptions = {}): Promise<OrtSession[]> {
  const sessions = [];
  const dir = mkdtempSync(join(tmpdir(), 'blockprune-bench-'));
  try {
    for (let k = 0; k < specs.length; k++) {
      const file = join(dir, `${k}.onnx`);
      await exportOnnx(specs[k].model, file, options);
      sessions.push(await ort.InferenceSession.create(file, { intraOpNumThreads: native().getNumThreads(), interOpNumThreads: 1, graphOptimizationLevel: 'all' }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const what = options.quantize ? `exported with exportOnnx quantize '${options.quantize}'` : 'exported with exportOnnx';
  console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}: the same weights ${what}, ${native().getNumThreads()} intra-op threads\n`);
  return sessions;
}

async function bench(args: BenchArgs): Promise<void> {
  const exe = join(packageRoot(), 'build', 'bench_forward');
  // The C++ program and the GEMM roofline measure the synthetic bert-base geometry; a source checkout builds them.
  const haveExe = args.synthetic && existsSync(exe);
  const haveCpp = haveExe && !args.noCpp;
  const info = native().buildInfo();
  console.log(`blockprune bench: libtorch ${info.torchVersion}, CUDA ${info.cuda ? 'on' : 'off'}, threads ${native().getNumThreads()} (OpenBLAS ${info.openblasThreads})`);
  const { specs, what } = await benchModels(args);
  // The model's position table bounds the sequence (bert-base's 512 with --synthetic).
  const maxSeq = Math.min(MAX_SEQ, ...specs.map((s) => s.model.dimensions.maxSequenceLength));
  const seq = args.seq ?? Math.min(128, maxSeq);
  for (const [flag, sq] of [['--seq', args.seq ?? 0], ...(args.shapes ?? []).map(([, x]) => ['--shapes', x] as const)] as const)
    if (sq > maxSeq) throw new UsageError(`${flag}: ${sq} tokens is more than the model's ${maxSeq} positions (max_position_embeddings)`);
  const shapes = args.shapes ?? args.batches.map((b): [number, number] => [b, seq]);
  console.log(`${what}; ${args.warmup} warm-ups, ${args.runs} runs in ${args.rounds} alternating rounds`);
  if (args.synthetic && !existsSync(exe))
    console.log(`(no C++ comparison or GEMM roofline: ${exe} is built in a source checkout by npm run build:native, not shipped)`);
  console.log('');

  const gflopsAt = new Map<number, number>();
  // The int8 (GOP/s) and bf16 GEMM rates of the quantized kernels, where this CPU has them (0: none).
  const quantRateAt = new Map<number, { int8: number; bf16: number }>();
  if (haveExe)
    for (const [b, sq] of shapes) {
      if (gflopsAt.has(b * sq)) continue;
      const g = runCpp(exe, ['--gemm', '--batch', String(b), '--seq', String(sq), '--runs', '1', '--warmup', '0', '--layers', '1']).find((x) => x.kind === 'gemm');
      // The best GEMM this machine has: OpenBLAS through libtorch, or our kernels on packed weights.
      if (g) gflopsAt.set(Number(g.rows), Math.max(Number(g.gflops), Number(g.kernels_gflops ?? 0)));
      if (g) quantRateAt.set(Number(g.rows), { int8: Number(g.int8_gops ?? 0), bf16: Number(g.bf16_gflops ?? 0) });
    }

  const models = specs.map((s) => s.model);
  const ort = args.vsOrt ? require('onnxruntime-node') : undefined;
  const sessions = ort ? await ortSessions(ort, specs) : [];
  const int8Sessions = ort && args.dtypes.includes('int8') ? await ortSessions(ort, specs, { quantize: 'int8' }) : [];
  const cells: DtypeCell[][] = [];
  for (let k = 0; k < specs.length; k++) cells.push(await dtypeCells(models[k], args.dtypes, int8Sessions[k], args.vsOrt));
  const withDtypes = args.dtypes.some((d) => d !== 'fp32');
  const results: Array<Record<string, unknown>> = [];
  for (const [batch, seq] of shapes) {
    const n = batch * seq;
    // Ids spread over the vocabulary, below its size (bert-base's 1000..20999, as the C++ program uses).
    const vocab = Math.min(...models.map((m) => m.dimensions.vocabSize));
    const ids = new Int32Array(n).map((_, i) => (vocab > 21000 ? 1000 + ((i * 7919) % 20000) : 1 + ((i * 7919) % (vocab - 1))));
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
    for (const c of cells) await runCells(c, input, feeds, args.warmup, false);
    const per = Math.max(1, Math.round(args.runs / args.rounds));
    const node: number[][] = specs.map(() => []);
    const loop: number[][] = specs.map(() => []);
    const cpp: Array<Array<{ mean: number; runs: number }>> = specs.map(() => []);
    for (const m of models) for (let i = 0; i < args.warmup; i++) await m.forward(input);
    // Progress on stderr, one per shape and stopped before its figures go to stdout (an error exits the process).
    const progress = countProgress(`bench ${batch}x${seq}`, args.rounds * specs.length, 'rounds');
    for (let r = 0; r < args.rounds; r++) {
      for (let k = 0; k < specs.length; k++) {
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          await models[k].forward(input);
          node[k].push(performance.now() - t0);
        }
        loop[k].push(...(await models[k].timeForward(input, { runs: per })));
        if (ort) await timeCalls(() => sessions[k].run(feeds), per, ortTimes[k]);
        await runCells(cells[k], input, feeds, per);
        if (haveCpp) {
          const out = runCpp(exe, ['--batch', String(batch), '--seq', String(seq), '--runs', String(per), '--warmup', String(Math.min(args.warmup, 3)), ...(specs[k].cppArgs ?? [])]);
          const f = out.find((x) => x.kind === 'forward')!;
          cpp[k].push({ mean: Number(f.mean_ms), runs: per });
        }
        progress.update(r * specs.length + k + 1, specs[k].name);
      }
    }
    progress.stop();
    const gf = gflopsAt.get(n);
    const means: number[] = [];
    const ortMeans: Array<number | undefined> = [];
    const rooflines: Array<Partial<Record<BenchDtype, number>>> = [];
    for (let k = 0; k < specs.length; k++) {
      const nd = latencyStats(node[k]);
      const lp = latencyStats(loop[k]);
      means.push(nd.mean);
      const cppMean = cpp[k].length ? cpp[k].reduce((a, b) => a + b.mean * b.runs, 0) / cpp[k].reduce((a, b) => a + b.runs, 0) : NaN;
      const layers = models[k].layers.map((l) => ({ heads: l.heads, ffn: l.intermediateSize }));
      const g = models[k].geometry();
      const flops = forwardFlops({ hidden: g.hiddenSize, layers, headDim: g.headDim }, batch, seq);
      const rooflineMs = gf ? flops / (gf * 1e6) : NaN;
      const q = quantRateAt.get(n);
      rooflines.push({ ...(gf ? { fp32: rooflineMs } : {}), ...(q?.int8 ? { int8: flops / (q.int8 * 1e6) } : {}), ...(q?.bf16 ? { bf16: flops / (q.bf16 * 1e6) } : {}) });
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
        ortMeans[k] = o.mean;
        Object.assign(row, { ort_mean_ms: o.mean, ort_std_ms: o.std, ort_p50_ms: o.p50, ort_p90_ms: o.p90, ort_p99_ms: o.p99, vs_ort: nd.mean / o.mean });
        ortPart = ` | onnxruntime ${o.mean.toFixed(1)} ± ${o.std.toFixed(1)} ms, ${formatPercentiles(o)} (ours / ort ${(nd.mean / o.mean).toFixed(2)}${gf ? `, ort ${(o.mean / rooflineMs).toFixed(2)}x roofline` : ''})`;
      }
      const cppPart = haveCpp ? ` | C++ program ${cppMean.toFixed(1)} ms (binding overhead ${row.binding_overhead_pct.toFixed(2)}%)` : '';
      const roofPart = gf ? `, GEMM ${gf.toFixed(0)} GFLOP/s -> roofline ${rooflineMs.toFixed(1)} ms, ${row.x_roofline.toFixed(2)}x roofline` : '';
      console.log(
        `${specs[k].name.padEnd(7)} ${batch}x${seq}: node ${nd.mean.toFixed(1)} ± ${nd.std.toFixed(1)} ms, ${formatPercentiles(nd)}${cppPart} | ` +
          `native loop in the addon ${lp.mean.toFixed(1)} ms, ${formatPercentiles(lp)} (per-call overhead ${row.per_call_overhead_pct.toFixed(2)}%)${ortPart}\n` +
          `        ${row.gflop >= 1 ? `${row.gflop.toFixed(2)} GFLOP` : `${(row.gflop * 1e3).toFixed(2)} MFLOP`}${roofPart}`,
      );
    }
    if (specs.length === 2) {
      const speedup = means[0] / means[1];
      const [a, b] = specs.map((x) => x.name);
      results.push({ batch, seq, [b === 'compact' ? 'compact_speedup' : 'speedup']: speedup });
      console.log(`  => ${b} speed-up over ${a} at ${batch}x${seq}: ${speedup.toFixed(2)}x (${a} ${means[0].toFixed(1)} ms / ${b} ${means[1].toFixed(1)} ms)\n`);
    }
    if (withDtypes) results.push(...printDtypeTable([batch, seq], specs.map((s, k) => ({ name: s.name, fp32: { ours: means[k], ort: ortMeans[k] }, cells: cells[k], roofline: rooflines[k] }))));
  }
  for (const m of models) m.dispose();
  for (const c of cells.flat()) c.ours?.dispose();
  if (args.json) writeFileAtomicSync(args.json, JSON.stringify({ build: info, threads: native().getNumThreads(), results }, null, 2));
}

export const benchCommand: Command<BenchArgs> = {
  name: 'bench',
  synopsis: 'bench <dir> [<dir2>]',
  summary: 'forward latency: a model dense vs compact, two models, or bert-base (--synthetic)',
  help: `Usage: blockprune bench <model-dir|org/name> [<model-dir|org/name>] [--models dense,compact] [--runs 100] [--warmup 10]
                       [--batches 1,8] [--seq 128] [--shapes 1x79,1x128,8x128] [--vs-onnxruntime] [--rounds 4]
                       [--dtype fp32,bf16,int8]
                       [--json out.json] [--revision REV] [--offline]
       blockprune bench --synthetic [--models dense,compact] [--no-cpp] [same options]

Forward latency through Node and looped inside the addon, in alternating rounds, with mean ± std and p50 /
p90 / p99 per shape, and the speed-up. One model: the model as it is (a patched checkpoint with its masks
baked in) against its compact form (pruned heads and empty FFN units removed: what \`blockprune compact\`
writes), or alone when there is nothing to compact; two models: the first against the second (e.g. out/dense
out/compact). --synthetic: bert-base with random weights against its compact form (4 heads, FFN 552 per
layer: what block pruning leaves of it, the reference's figures); in a source checkout also the C++ program
build/bench_forward (--no-cpp skips it) and each time as a multiple of the GEMM roofline (an installed
package has no build/ folder: those are left out, and it says so). --seq defaults to 128 or the model's
positions if fewer; --shapes BxS,... replaces --batches/--seq; --models picks dense and/or compact (one
model or --synthetic); --vs-onnxruntime adds onnxruntime-node on the same weights (a dev dependency);
--dtype adds the models in bf16 and/or int8 (default fp32, or fp32,int8 with --vs-onnxruntime): a table per
shape of ours and onnxruntime (on exportOnnx's int8 file) in each dtype, in the same alternating rounds, with
ours / ort and each runtime's speed-up over its own fp32; a cell that cannot run says "not available" and
why; --json writes every figure.

${HUB_HELP}`,
  flags: { synthetic: bool, models: str, runs: str, warmup: str, batches: str, seq: str, shapes: str, rounds: str, 'vs-onnxruntime': bool, dtype: str, 'no-cpp': bool, json: str, ...HUB_FLAGS },
  args({ values, positionals }) {
    // The flags first (each names itself), then what is measured.
    const flags = {
      synthetic: values.synthetic === true,
      models: listFlag(values, 'models', ['dense', 'compact'] as const) ?? ['dense', 'compact'],
      shapes: shapesFlag(values),
      batches: intsFlag(values, 'batches', 1, MAX_BATCH) ?? [1, 8],
      // The model's positions are checked once it is read (bench()).
      seq: intFlag(values, 'seq', 1, MAX_SEQ),
      vsOrt: values['vs-onnxruntime'] === true,
      dtypes: [...new Set(listFlag(values, 'dtype', DTYPES) ?? (values['vs-onnxruntime'] === true ? ['fp32', 'int8'] : ['fp32']) as BenchDtype[])],
      noCpp: values['no-cpp'] === true,
      runs: intFlag(values, 'runs', 1) ?? 100,
      warmup: intFlag(values, 'warmup', 0) ?? 10,
      rounds: intFlag(values, 'rounds', 1) ?? 4,
      json: values.json === undefined ? undefined : v.writableFile('--json', values.json),
      hub: hubFlags(values),
    };
    if (flags.synthetic && positionals.length) throw new UsageError(`bench --synthetic measures a random bert-base: no model too (got ${positionals.join(' ')})`);
    if (!flags.synthetic && (positionals.length < 1 || positionals.length > 2))
      throw new UsageError('bench needs <model-dir> (it against its compact form), two model dirs (the first against the second), or --synthetic');
    if (positionals.length === 2 && values.models !== undefined) throw new UsageError('--models picks dense or compact of one model (or --synthetic): not with two models');
    return { ...flags, sources: positionals.map((p) => checkModelSource('<model-dir>', p)) };
  },
  run: bench,
};
