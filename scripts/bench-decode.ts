#!/usr/bin/env node
/**
 * Batch-1 greedy decoding speed (issue 18): ours (Seq2SeqModel.generate: encoder once, then one cached step per
 * token) vs onnxruntime on the same model exported by Seq2SeqModel.exportOnnx (encoder, decoder_model for the
 * first step, decoder_with_past per later one: HF's ORT loop, test/model/onnx-seq2seq-run.ts), same threads.
 * Random models of t5-small's and bart-base's geometry (Seq2SeqModel.fromConfig, seed 1, saved and loaded back), source 128 tokens,
 * 32 new tokens (eos banned: both decode the same count), in one run with alternating rounds.
 *
 *   node dist/scripts/bench-decode.js [--models t5-small,bart-base] [--steps 32] [--source 128] [--rounds 3] [--warmup 1] [--threads 1] [--beams N]
 *
 * --beams N (2 to 8) also times our beam search of N beams (onnxruntime's loop here is greedy).
 *
 * Figures: ms per generated token of the whole generate (encoder included), the median round, and ours / onnxruntime. Whether
 * both chose the same ids is printed too (random weights: a near tie may split them; the tests check parity).
 * Absolute figures drift 15-25% on shared VMs: compare within one run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../lib/index';
import { Seq2SeqModel } from '../lib/model/seq2seq';
import { intFlag, listFlag, str } from '../lib/cli/flags';
import { latencyStats } from '../lib/cli/latency-stats';
import { loadOnnxSeq2Seq, onnxGreedy } from '../test/model/onnx-seq2seq-run';
import { BART_BASE, runScript, scriptFlags, T5_SMALL } from './common';

const USAGE = 'usage: node dist/scripts/bench-decode.js [--models t5-small,bart-base] [--steps 32] [--source 128] [--rounds 3] [--warmup 1] [--threads 1] [--beams N]';
const GEOMETRIES = { 't5-small': T5_SMALL, 'bart-base': BART_BASE } as const;
type Geometry = keyof typeof GEOMETRIES;

async function benchOne(name: Geometry, o: { steps: number; source: number; rounds: number; warmup: number; threads: number; beams: number }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'blockprune-bench-decode-'));
  // Both sides read the same weights from files, as deployed: ours from save()'s directory, onnxruntime from
  // exportOnnx's. (Where the weights land mattered by 10-30% before they went on 2 MiB pages: native/huge_pages.h.)
  const random = await Seq2SeqModel.fromConfig(GEOMETRIES[name], { seed: 1 });
  await random.save(join(dir, 'model'));
  random.dispose();
  const model = await Seq2SeqModel.fromPretrained(join(dir, 'model'));
  try {
    const report = await model.exportOnnx(join(dir, 'onnx'));
    const sessions = await loadOnnxSeq2Seq(join(dir, 'onnx'), { intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
    const info = model.info;
    const V = info.vocabSize;
    const inputIds = BigInt64Array.from({ length: o.source }, (_, i) => BigInt(i === o.source - 1 ? info.eosTokenId : 100 + ((i * 7919) % (V - 100))));
    const source = { inputIds, attentionMask: new BigInt64Array(o.source).fill(1n), batchSize: 1, seqLen: o.source };
    const maxLength = o.steps + 1;
    const ours = async () => (await model.generate(source, { maxLength, minLength: maxLength, numBeams: 1 })).sequences.data as BigInt64Array;
    const theirs = async () =>
      BigInt64Array.from((await onnxGreedy(sessions, source, { start: info.decoderStartTokenId, eos: info.eosTokenId, pad: info.padTokenId, maxLength, minLength: maxLength })).sequences[0], BigInt);
    const runs: Array<{ name: string; run: () => Promise<ArrayLike<bigint>>; ms: number[]; ids: ArrayLike<bigint> }> = [
      { name: 'ours', run: ours, ms: [], ids: [] },
      { name: 'onnxruntime', run: theirs, ms: [], ids: [] },
    ];
    // --beams N: ours with beam search too (this onnxruntime loop is greedy), eos banned as well.
    const beams = async () => (await model.generate(source, { maxLength, minLength: maxLength, numBeams: o.beams })).sequences.data as BigInt64Array;
    if (o.beams > 1) runs.push({ name: `ours, ${o.beams} beams`, run: beams, ms: [], ids: [] });
    for (let i = 0; i < o.warmup; i++) for (const r of runs) r.ids = await r.run();
    for (let i = 0; i < o.rounds; i++)
      for (const r of i % 2 ? [...runs].reverse() : runs) {
        const t0 = performance.now();
        r.ids = await r.run();
        r.ms.push((performance.now() - t0) / o.steps);
      }
    // The median round: one round slowed by another process's burst on a shared VM does not move it.
    const median = (xs: number[]) => latencyStats(xs).p50;
    const [a, b] = runs.map((r) => median(r.ms));
    const same = runs[0].ids.length === runs[1].ids.length && Array.from(runs[0].ids).every((x, i) => x === runs[1].ids[i]);
    console.log(
      `${name} (random, ${info.numParameters} parameters; ONNX ${(report.files.reduce((s, f) => s + f.bytes, 0) / 2 ** 20).toFixed(0)} MiB), batch 1, source ${o.source}, ${o.steps} tokens, threads ${o.threads}:` +
        ` ms per token (median) ours ${a.toFixed(2)} (rounds ${runs[0].ms.map((x) => x.toFixed(2)).join(', ')}), onnxruntime ${b.toFixed(2)} (rounds ${runs[1].ms.map((x) => x.toFixed(2)).join(', ')});` +
        ` ours / onnxruntime ${(a / b).toFixed(2)}; same ids: ${same ? 'yes' : 'no'}` +
        (runs[2] ? `; ours with ${o.beams} beams ${median(runs[2].ms).toFixed(2)} ms per token (${(median(runs[2].ms) / a).toFixed(2)}x greedy)` : ''),
    );
    for (const s of Object.values(sessions)) await s.release();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const o = scriptFlags('bench-decode', USAGE, { models: str, steps: str, source: str, rounds: str, warmup: str, threads: str, beams: str }, (f) => ({
    models: listFlag(f, 'models', Object.keys(GEOMETRIES) as Geometry[]) ?? (Object.keys(GEOMETRIES) as Geometry[]),
    steps: intFlag(f, 'steps', 1, 512) ?? 32,
    source: intFlag(f, 'source', 1, 1024) ?? 128,
    rounds: intFlag(f, 'rounds', 1) ?? 3,
    warmup: intFlag(f, 'warmup', 0) ?? 1,
    threads: intFlag(f, 'threads', 1, 256) ?? 1,
    beams: intFlag(f, 'beams', 1, 8) ?? 1,
  }));
  setNumThreads(o.threads);
  console.log(`${o.warmup} warm-up and ${o.rounds} alternating rounds per model`);
  for (const m of o.models) await benchOne(m, o);
}

runScript('bench-decode', main);
