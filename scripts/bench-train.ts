#!/usr/bin/env node
/**
 * Training-step throughput (samples/s) at batch 8 x 128, plain vs patched with the hybrid preset, in one
 * run (alternating rounds): what one fine-pruning step costs and what patching adds.
 *
 *   node dist/scripts/bench-train.js [--geometry small|base|both] [--steps 10] [--warmup 2] [--rounds 2] [--device cpu|cuda] [--bf16] [--anchor]
 *
 * --bf16 also times each model in bf16 mixed precision (trainStep's mixedPrecision: 'bf16').
 *
 * --anchor: the reference figures were measured on another day's machine, and these VMs differ by up to 2x
 * between days. The one figure of that day that can be measured again here is onnxruntime's bert-base dense
 * forward at 8 x 128 (441 ms, NOTES.md, OpenBLAS variables unset; onnxruntime does not use OpenBLAS). With
 * --anchor the script times it first (onnxruntime-node, a dev dependency, on this geometry exported by
 * exportOnnx; the session is released before training starts) and also prints the reference scaled by
 * 441 / today's time: what the reference would run at on today's machine, if it kept its ratio to onnxruntime.
 *
 * Reference (nn_pruning on transformers 4.4.2 eager, 8 x 128, samples/s; /work/shared/NOTES.md, 2026-11-29), with the
 * OpenBLAS variables unset / as given (OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512): bert-base plain 3.89 /
 * 2.55, hybrid-patched 2.45 / 1.85; hidden 256 / 4 layers plain 50.5 / 39.5, patched 34.6 / 30.1. The line
 * printed compares with the pair that matches this process's environment. Absolute figures drift 15-25% on
 * these VMs: compare within one run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BertModel } from '../lib/model/model';
import { exportOnnx } from '../lib/model/onnx';
import { getNumThreads } from '../lib/index';
import { PruningConfig } from '../lib/pruning/config';
import { bool, choiceFlag, deviceFlag, intFlag, str, UsageError } from '../lib/cli/flags';
import { checkMixedPrecision, type TrainStepOptions } from '../lib/training/model-training';
import { runScript, scriptFlags, TRAIN_GEOMETRIES } from './common';

const USAGE = 'usage: node dist/scripts/bench-train.js [--geometry small|base|both] [--steps 10] [--warmup 2] [--rounds 2] [--device cpu|cuda] [--bf16] [--anchor]';

type Reference = Record<string, { patched: number; plain: number }>;
const REFERENCE_UNSET: Reference = { small: { patched: 34.6, plain: 50.5 }, base: { patched: 2.45, plain: 3.89 } };
const REFERENCE_AS_GIVEN: Reference = { small: { patched: 30.1, plain: 39.5 }, base: { patched: 1.85, plain: 2.55 } };
/** onnxruntime's bert-base dense forward at 8 x 128 on the reference day (ms, OpenBLAS variables unset). */
const ANCHOR_REFERENCE_MS = 441;

/** Mean ms of onnxruntime's bert-base dense forward at 8 x 128 here and now (see --anchor). */
async function anchorMs(batch: { inputIds: Int32Array; attentionMask: Int32Array; tokenTypeIds: Int32Array; batchSize: number; seqLen: number }): Promise<number> {
  const ort = require('onnxruntime-node');
  const dir = mkdtempSync(join(tmpdir(), 'blockprune-anchor-'));
  let session;
  try {
    const model = await BertModel.fromConfig(TRAIN_GEOMETRIES.base, { seed: 1 });
    const file = join(dir, 'bert-base.onnx');
    await exportOnnx(model, file);
    model.dispose();
    session = await ort.InferenceSession.create(file, { intraOpNumThreads: getNumThreads(), interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const shape = [batch.batchSize, batch.seqLen];
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(batch.inputIds, (v) => BigInt(v)), shape),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from(batch.attentionMask, (v) => BigInt(v)), shape),
    token_type_ids: new ort.Tensor('int64', BigInt64Array.from(batch.tokenTypeIds, (v) => BigInt(v)), shape),
  };
  const wanted = Object.fromEntries(Object.entries(feeds).filter(([k]) => session.inputNames.includes(k)));
  for (let i = 0; i < 2; i++) await session.run(wanted);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    await session.run(wanted);
    times.push(performance.now() - t0);
  }
  await session.release();
  return times.reduce((a, b) => a + b, 0) / times.length;
}

async function main(): Promise<void> {
  const { which, steps, warmup, rounds, device, bf16, anchor } = scriptFlags('bench-train', USAGE, { geometry: str, steps: str, warmup: str, rounds: str, device: str, bf16: bool, anchor: bool }, (f) => ({
    which: choiceFlag(f, 'geometry', ['both', ...Object.keys(TRAIN_GEOMETRIES)]) ?? 'both',
    steps: intFlag(f, 'steps', 1) ?? 10,
    warmup: intFlag(f, 'warmup', 0) ?? 2,
    rounds: intFlag(f, 'rounds', 1) ?? 2,
    device: deviceFlag(f),
    bf16: f.bf16 === true,
    anchor: f.anchor === true,
  }));
  // Refused before any model is built when the CPU has no bf16 kernels.
  if (bf16) checkMixedPrecision('--bf16', 'bf16');
  const B = 8;
  const S = 128;
  console.log(
    `training-step throughput on ${device}, batch ${B} x ${S}, threads ${getNumThreads()}; ${warmup} warm-up steps, ${steps} timed steps per model in ${rounds} alternating rounds` +
      (bf16 ? '; each model also in bf16 mixed precision (its own copy)' : ''),
  );
  const n = B * S;
  const batch = {
    inputIds: new Int32Array(n).map((_, i) => 1000 + ((i * 7919) % 20000)),
    attentionMask: new Int32Array(n).fill(1),
    tokenTypeIds: new Int32Array(n),
    batchSize: B,
    seqLen: S,
    labels: new Int32Array(B).map((_, i) => i % 2),
  };
  const given = process.env.OPENBLAS_CORETYPE !== undefined || process.env.OPENBLAS_L2_SIZE !== undefined;
  let dayFactor: number | undefined;
  if (anchor) {
    if (device !== 'cpu' || given) throw new UsageError('--anchor: the reference day measured onnxruntime on CPU with the OpenBLAS variables unset; run it so (env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ... --device cpu)');
    const ms = await anchorMs(batch);
    dayFactor = ANCHOR_REFERENCE_MS / ms;
    console.log(`anchor: onnxruntime bert-base dense 8 x 128 forward ${ms.toFixed(1)} ms today vs ${ANCHOR_REFERENCE_MS} ms on the reference day: the reference scaled by ${dayFactor.toFixed(3)}`);
  }
  for (const g of which === 'both' ? ['small', 'base'] : [which]) {
    const config = TRAIN_GEOMETRIES[g];
    if (!config) throw new Error(`unknown geometry ${g}`);
    const pruning = PruningConfig.hybrid(20);
    const plainOptions: TrainStepOptions = { lr: 3e-5 };
    const patchedOptions: TrainStepOptions = { lr: 3e-5, maskLr: 1e-2, threshold: 0.05, regularization: 'l1', lambda: 10, attentionLambda: 1, denseLambda: 1 };
    // Each variant its own model (same seed), so that each has its own optimizer state.
    const variants: Array<{ name: string; model: BertModel; options: TrainStepOptions; times: number[] }> = [];
    for (const mixed of bf16 ? [false, true] : [false])
      for (const kind of ['plain', 'patched'] as const) {
        const model = await BertModel.fromConfig(config, { seed: 1, device });
        if (kind === 'patched') await model.patch(pruning);
        const options = { ...(kind === 'plain' ? plainOptions : patchedOptions), ...(mixed ? { mixedPrecision: 'bf16' as const } : {}) };
        variants.push({ name: `${kind}${mixed ? ' bf16' : ''}`, model, options, times: [] });
      }
    for (let i = 0; i < warmup; i++) for (const x of variants) await x.model.trainStep(batch, x.options);
    const per = Math.max(1, Math.round(steps / rounds));
    for (let r = 0; r < rounds; r++) {
      for (const x of variants) {
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          await x.model.trainStep(batch, x.options);
          x.times.push(performance.now() - t0);
        }
      }
    }
    const sps = (name: string) => {
      const xs = variants.find((x) => x.name === name)!.times;
      return (B * 1000) / (xs.reduce((a, b) => a + b, 0) / xs.length);
    };
    const p = sps('plain');
    const q = sps('patched');
    const ref = (given ? REFERENCE_AS_GIVEN : REFERENCE_UNSET)[g];
    const geometry = g === 'small' ? 'hidden 256 / 4 layers' : 'bert-base';
    console.log(
      `${geometry}: plain ${p.toFixed(2)} samples/s, patched (hybrid) ${q.toFixed(2)} samples/s; ` +
        `patching costs ${((p / q - 1) * 100).toFixed(1)}%; vs reference (OpenBLAS variables ${given ? 'as given' : 'unset'}) patched ${ref.patched} -> ${(q / ref.patched).toFixed(2)}x, plain ${ref.plain} -> ${(p / ref.plain).toFixed(2)}x`,
    );
    if (dayFactor !== undefined)
      console.log(
        `${geometry}, reference scaled to today's machine by the anchor: patched ${(ref.patched * dayFactor).toFixed(2)} -> ${(q / (ref.patched * dayFactor)).toFixed(2)}x, plain ${(ref.plain * dayFactor).toFixed(2)} -> ${(p / (ref.plain * dayFactor)).toFixed(2)}x`,
      );
    if (bf16) {
      const pb = sps('plain bf16');
      const qb = sps('patched bf16');
      console.log(
        `${geometry} in bf16 mixed precision: plain ${pb.toFixed(2)} samples/s (${(pb / p).toFixed(2)}x fp32; ${(pb / ref.plain).toFixed(2)}x the reference), ` +
          `patched ${qb.toFixed(2)} samples/s (${(qb / q).toFixed(2)}x fp32; ${(qb / ref.patched).toFixed(2)}x the reference)`,
      );
    }
    for (const x of variants) x.model.dispose();
  }
}

runScript('bench-train', main);
