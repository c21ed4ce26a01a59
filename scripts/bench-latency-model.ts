#!/usr/bin/env node
/**
 * The latency model against real compact models (issue 17: within 10% on the bench shapes): for the synthetic
 * bert-base geometry at each shape, profiles it (lib/pruning/latency-profile.ts), then builds `--configs`
 * compact models with random heads (1..12) and FFN widths (64..3072) per layer, the first the uniform compact
 * geometry of the README's benchmark (4 heads, FFN 552), with the full vocabulary as a real compact model has,
 * times them in alternating rounds as the profile times its grid, and prints each one's measured and predicted
 * milliseconds, the error, and the worst.
 *
 *   node dist/scripts/bench-latency-model.js [--shapes 1x128,8x128] [--configs 8] [--runs 3] [--rounds 3] [--seed 7]
 */
import { BertModel } from '../lib/model/model';
import { getNumThreads } from '../lib/index';
import { BERT_BASE } from '../lib/cli/bert-base';
import { intFlag, str } from '../lib/cli/flags';
import * as v from '../lib/runtime/validate';
import { latencyBatch, predictLatency, profileLatency, timeModels, compactLayersConfig, type LayerShape } from '../lib/pruning/latency-profile';
import { runScript, scriptFlags } from './common';

const USAGE = 'usage: node dist/scripts/bench-latency-model.js [--shapes 1x128,8x128] [--configs 8] [--runs 3] [--rounds 3] [--seed 7]';

/** Random compact layers: heads 1..all, FFN 64..all (a seeded LCG: the same configs on every run). */
function randomLayers(n: number, seed: number): LayerShape[][] {
  let s = seed >>> 0;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const L = BERT_BASE.num_hidden_layers;
  const H = BERT_BASE.num_attention_heads;
  const I = BERT_BASE.intermediate_size;
  return Array.from({ length: n }, () => Array.from({ length: L }, () => ({ heads: 1 + Math.floor(r() * H), intermediateSize: 64 + Math.floor(r() * (I - 63)) })));
}

async function main(): Promise<void> {
  const o = scriptFlags('bench-latency-model', USAGE, { shapes: str, configs: str, runs: str, rounds: str, seed: str }, (f) => ({
    shapes: (f.shapes === undefined ? '1x128,8x128' : String(f.shapes)).split(',').map((x) => v.flagPair('--shapes', x, { min: 1, max: 512 })),
    configs: intFlag(f, 'configs', 1, 100) ?? 8,
    runs: intFlag(f, 'runs', 1) ?? 3,
    rounds: intFlag(f, 'rounds', 1) ?? 3,
    seed: intFlag(f, 'seed', 0) ?? 7,
  }));
  const L = BERT_BASE.num_hidden_layers;
  const uniform: LayerShape[] = Array.from({ length: L }, () => ({ heads: 4, intermediateSize: 552 }));
  const configs = [uniform, ...randomLayers(o.configs - 1, o.seed)];
  console.log(`latency model vs measured compact models: synthetic bert-base, fp32, threads ${getNumThreads()}; ${configs.length} compact models (the first 4 heads / FFN 552 in every layer), ${o.runs} runs x ${o.rounds} alternating rounds, medians\n`);
  for (const [batch, seq] of o.shapes) {
    const dense = await BertModel.fromConfig(BERT_BASE, { task: 'text-classification', seed: 0 });
    const profile = await profileLatency(dense, { batch, seq, runs: o.runs, rounds: o.rounds });
    dense.dispose();
    console.log(
      `${batch}x${seq}: profile of ${profile.grid.length} models in ${profile.seconds.toFixed(1)} s, fit error <= ${(100 * profile.maxFitError).toFixed(1)}%; ` +
        `dense measured ${profile.dense.ms.toFixed(2)} ms, predicted ${profile.dense.predictedMs.toFixed(2)} ms`,
    );
    const models: BertModel[] = [];
    try {
      for (const layers of configs) models.push(await BertModel.fromConfig(compactLayersConfig(BERT_BASE, BERT_BASE.num_attention_heads, layers), { task: 'text-classification', seed: 0 }));
      const ms = await timeModels(models, latencyBatch(batch, seq, BERT_BASE.vocab_size), { runs: o.runs, rounds: o.rounds });
      let worst = 0;
      configs.forEach((layers, k) => {
        const predicted = predictLatency(profile, layers);
        const err = (predicted - ms[k]) / ms[k];
        worst = Math.max(worst, Math.abs(err));
        const what = k === 0 ? 'uniform 4 heads / FFN 552' : `heads ${layers.map((l) => l.heads).join(',')}; FFN ${layers.map((l) => l.intermediateSize).join(',')}`;
        console.log(`  ${what}: measured ${ms[k].toFixed(2)} ms, predicted ${predicted.toFixed(2)} ms (${err >= 0 ? '+' : ''}${(100 * err).toFixed(1)}%)`);
      });
      console.log(`  ${batch}x${seq}: worst error ${(100 * worst).toFixed(1)}% over ${configs.length} compact models (goal: 10%)\n`);
    } finally {
      for (const m of models) m.dispose();
    }
  }
}

runScript('bench-latency-model', main);
