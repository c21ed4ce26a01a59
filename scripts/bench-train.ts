#!/usr/bin/env node
/**
 * Training-step throughput (samples/s) at batch 8 x 128, plain vs patched with the hybrid preset, in one
 * run (alternating rounds): what one fine-pruning step costs and what patching adds.
 *
 *   node dist/scripts/bench-train.js [--geometry small|base|both] [--steps 10] [--warmup 2] [--rounds 2] [--device cpu|cuda]
 *
 * Reference (nn_pruning, PyTorch 1.13 on this machine): bert-base 1.12 samples/s patched (1.60 plain);
 * hidden 256 / 4 layers 17.0 patched (22.4 plain).
 */
import { BertModel } from '../lib/model/model';
import { getNumThreads } from '../lib/index';
import { PruningConfig } from '../lib/pruning/config';
import { choiceFlag, deviceFlag, intFlag, str } from '../lib/cli/flags';
import { runScript, scriptFlags, TRAIN_GEOMETRIES } from './common';

const USAGE = 'usage: node dist/scripts/bench-train.js [--geometry small|base|both] [--steps 10] [--warmup 2] [--rounds 2] [--device cpu|cuda]';

const REFERENCE: Record<string, { patched: number; plain: number }> = { small: { patched: 17.0, plain: 22.4 }, base: { patched: 1.12, plain: 1.6 } };

async function main(): Promise<void> {
  const { which, steps, warmup, rounds, device } = scriptFlags('bench-train', USAGE, { geometry: str, steps: str, warmup: str, rounds: str, device: str }, (f) => ({
    which: choiceFlag(f, 'geometry', ['both', ...Object.keys(TRAIN_GEOMETRIES)]) ?? 'both',
    steps: intFlag(f, 'steps', 1) ?? 10,
    warmup: intFlag(f, 'warmup', 0) ?? 2,
    rounds: intFlag(f, 'rounds', 1) ?? 2,
    device: deviceFlag(f),
  }));
  const B = 8;
  const S = 128;
  console.log(`training-step throughput on ${device}, batch ${B} x ${S}, threads ${getNumThreads()}; ${warmup} warm-up steps, ${steps} timed steps per model in ${rounds} alternating rounds`);
  for (const g of which === 'both' ? ['small', 'base'] : [which]) {
    const config = TRAIN_GEOMETRIES[g];
    if (!config) throw new Error(`unknown geometry ${g}`);
    const plain = await BertModel.fromConfig(config, { seed: 1, device });
    const patched = await BertModel.fromConfig(config, { seed: 1, device });
    const pruning = PruningConfig.hybrid(20);
    await patched.patch(pruning);
    const n = B * S;
    const batch = {
      inputIds: new Int32Array(n).map((_, i) => 1000 + ((i * 7919) % 20000)),
      attentionMask: new Int32Array(n).fill(1),
      tokenTypeIds: new Int32Array(n),
      batchSize: B,
      seqLen: S,
      labels: new Int32Array(B).map((_, i) => i % 2),
    };
    const opts = { lr: 3e-5, maskLr: 1e-2, threshold: 0.05, regularization: 'l1' as const, lambda: 10, attentionLambda: 1, denseLambda: 1 };
    for (let i = 0; i < warmup; i++) {
      await plain.trainStep(batch, { lr: 3e-5 });
      await patched.trainStep(batch, opts);
    }
    const times = { plain: [] as number[], patched: [] as number[] };
    const per = Math.max(1, Math.round(steps / rounds));
    for (let r = 0; r < rounds; r++) {
      for (const [name, m] of [['plain', plain], ['patched', patched]] as const) {
        for (let i = 0; i < per; i++) {
          const t0 = performance.now();
          await m.trainStep(batch, name === 'plain' ? { lr: 3e-5 } : opts);
          times[name].push(performance.now() - t0);
        }
      }
    }
    const sps = (xs: number[]) => (B * 1000) / (xs.reduce((a, b) => a + b, 0) / xs.length);
    const p = sps(times.plain);
    const q = sps(times.patched);
    const ref = REFERENCE[g];
    console.log(
      `${g === 'small' ? 'hidden 256 / 4 layers' : 'bert-base'}: plain ${p.toFixed(2)} samples/s, patched (hybrid) ${q.toFixed(2)} samples/s; ` +
        `patching costs ${((p / q - 1) * 100).toFixed(1)}%; vs reference patched ${ref.patched} -> ${(q / ref.patched).toFixed(2)}x, plain ${ref.plain} -> ${(p / ref.plain).toFixed(2)}x`,
    );
    plain.dispose();
    patched.dispose();
  }
}

runScript('bench-train', main);
