#!/usr/bin/env node
/**
 * Data-parallel scaling of fine-pruning through the Node trainer: the same steps (random BERT patched with the
 * hybrid preset, global batch B x S, L1 on the scores) in 1 process and in N processes joined by c10d/Gloo
 * (started with launch(), as `blockprune train --nproc N` does), in one run. Prints samples/s of each and
 * the ratio. On CPU the single process gets every core and each rank cores / N threads.
 *
 *   node dist/scripts/bench-dist.js [--nproc 2] [--geometry small|base] [--batch 16] [--seq 128] [--steps 8] [--warmup 2] [--rounds 3]
 *
 * The VM drifts: the 1- and N-process runs alternate for `rounds` rounds and each figure is the mean.
 *
 * GPU machines have no Node: scripts/gpu-distributed.sh runs the native twin (build/dist_bench) with NCCL.
 */
import { cpus } from 'node:os';
import { ProcessGroup, launch } from '../lib/training/distributed';
import { BertModel, ForwardBatch } from '../lib/model/model';
import { PruningConfig } from '../lib/pruning/config';
import { SparseTrainer, TrainData } from '../lib/training/trainer';
import { invalidParameterError } from '../lib/runtime/validate';
import { choiceFlag, intFlag, str } from '../lib/cli/flags';
import { runScript, scriptFlags, TRAIN_GEOMETRIES } from './common';

const USAGE = 'usage: node dist/scripts/bench-dist.js [--nproc 2] [--geometry small|base] [--batch 16] [--seq 128] [--steps 8] [--warmup 2] [--rounds 3]';

/** The flags, checked by lib/runtime/validate.ts before any rank starts (seq: bert-base's position table). */
function flags() {
  const spec = { nproc: str, rounds: str, geometry: str, batch: str, seq: str, steps: str, warmup: str };
  return scriptFlags('bench-dist', USAGE, spec, (f) => {
    const o = {
      nproc: intFlag(f, 'nproc', 1) ?? 2,
      rounds: intFlag(f, 'rounds', 1) ?? 3,
      geometry: choiceFlag(f, 'geometry', Object.keys(TRAIN_GEOMETRIES)) ?? 'small',
      batch: intFlag(f, 'batch', 1) ?? 16,
      seq: intFlag(f, 'seq', 1, 512) ?? 128,
      steps: intFlag(f, 'steps', 1) ?? 8,
      warmup: intFlag(f, 'warmup', 0) ?? 2,
    };
    if (o.batch < o.nproc) throw invalidParameterError('--batch', `at least --nproc (${o.nproc}): one row per rank`, o.batch, 'range');
    return o;
  });
}

/** Fixed-shape random batches (the same on every rank for a given epoch): what a step costs, not the data. */
class RandomTokens implements TrainData {
  constructor(
    readonly length: number,
    private readonly seq: number,
  ) {}
  *batches(batchSize: number, o: { epoch?: number }): Iterable<ForwardBatch> {
    let s = 12345 + (o.epoch ?? 0);
    const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
    for (let b = 0; b < this.length; b += batchSize) {
      const n = Math.min(batchSize, this.length - b);
      const inputIds = Int32Array.from({ length: n * this.seq }, () => 1000 + Math.floor(next() * 19000));
      yield { inputIds, attentionMask: new Int32Array(n * this.seq).fill(1), batchSize: n, seqLen: this.seq, labels: Int32Array.from({ length: n }, () => (next() < 0.5 ? 0 : 1)) };
    }
  }
}

async function worker(): Promise<void> {
  const { geometry, batch, seq, steps, warmup } = flags();
  const opts = ProcessGroup.optionsFromEnv();
  const group = opts && opts.worldSize > 1 ? await ProcessGroup.init(opts) : undefined;
  const config = { ...TRAIN_GEOMETRIES[geometry], hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
  const model = await BertModel.fromConfig(config, { seed: 1 });
  const times: number[] = [];
  let last = 0;
  const r = await new SparseTrainer({
    model,
    pruning: PruningConfig.hybrid(1),
    train: new RandomTokens(batch * (steps + warmup), seq),
    epochs: 1,
    batchSize: batch,
    learningRate: 1e-4,
    logEvery: 1,
    handleSigint: false,
    distributed: group,
    onLog: (e) => {
      if (e.type !== 'step') return;
      const t = e.elapsedSec as number;
      times.push(t - last);
      last = t;
    },
  }).train();
  if ((group?.rank ?? 0) === 0) {
    const timed = times.slice(warmup);
    const sec = timed.reduce((a, b) => a + b, 0);
    console.log(JSON.stringify({ samplesPerSec: (batch * timed.length) / sec, msPerStep: (1000 * sec) / timed.length, steps: r.steps, world: r.worldSize }));
  }
  await group?.destroy();
  model.dispose();
}

async function main(): Promise<void> {
  if (process.env.BENCH_DIST_WORKER) return worker();
  const { nproc, rounds, geometry, batch, seq, steps, warmup } = flags();
  const cores = cpus().length;
  // Every rank reads the same flags (it uses the geometry, batch, seq, steps and warmup).
  const forward = process.argv.slice(2);
  console.log(
    `data-parallel fine-pruning (Node trainer, Gloo): ${geometry} geometry, global batch ${batch} x ${seq}, ` +
      `${steps} timed steps after ${warmup}, hybrid-patched, ${cores} cores`,
  );
  const runOnce = async (n: number) => {
    let line = '';
    const r = await launch({
      nproc: n,
      script: __filename,
      args: forward,
      env: { ...process.env, BENCH_DIST_WORKER: '1', OMP_NUM_THREADS: String(Math.max(1, Math.floor(cores / n))) },
      onLine: (rank, stream, l) => {
        if (stream === 'stdout' && l.startsWith('{')) line = l;
        else if (stream === 'stderr') process.stderr.write(`[rank ${rank}] ${l}\n`);
      },
    });
    if (r.code !== 0 || !line) throw new Error(`the ${n}-process run failed (exit ${r.code})`);
    return JSON.parse(line) as { samplesPerSec: number; msPerStep: number };
  };
  const ones: number[] = [];
  const manys: number[] = [];
  for (let r = 0; r < rounds; r++) {
    ones.push((await runOnce(1)).samplesPerSec);
    manys.push((await runOnce(nproc)).samplesPerSec);
    console.log(`  round ${r + 1}: 1 process ${ones[r].toFixed(2)}, ${nproc} processes ${manys[r].toFixed(2)} samples/s`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const one = mean(ones);
  const many = mean(manys);
  console.log(`1 process  (${cores} threads): ${one.toFixed(2)} samples/s (mean of ${rounds})`);
  console.log(`${nproc} processes (${Math.max(1, Math.floor(cores / nproc))} threads each): ${many.toFixed(2)} samples/s`);
  console.log(`scaling 1 -> ${nproc} processes: ${(many / one).toFixed(2)}x`);
}

runScript('bench-dist', main);
