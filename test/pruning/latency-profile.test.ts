/**
 * The latency model of issue 17 (lib/pruning/latency-profile.ts, latency-fit.ts): the fit recovers a known
 * additive cost exactly (pure, no timing), the profile of a tiny model predicts measured compact models, the
 * cache is reused and measured again when it should be, bad input gets coded errors, and the CLI command runs.
 *
 * Serial: the timings must not share the two cores with another test of this file.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel, type BertConfigJson, type ModelConfigJson } from '../../lib/model/model';
import { predictCost, type CostModel } from '../../lib/pruning/cost-model';
import { fitLatency, latencyGrid, latencyKnots, leastSquares, nonNegativeLeastSquares, type LayerShape } from '../../lib/pruning/latency-fit';
import { compactLayersConfig, latencyBatch, latencyProfilePath, loadOrProfileLatency, predictLatency, profileLatency, timeModels } from '../../lib/pruning/latency-profile';
import { runCli, tempDir } from '../helpers';

const SMALL: BertConfigJson = { vocab_size: 256, hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 512, max_position_embeddings: 128 };
const TINY: BertConfigJson = { ...SMALL, hidden_size: 64, num_hidden_layers: 2, intermediate_size: 128, max_position_embeddings: 64 };

/** A seeded generator for random layer shapes. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

function randomLayers(r: () => number, layers: number, heads: number, units: number): LayerShape[] {
  return Array.from({ length: layers }, () => ({ heads: 1 + Math.floor(r() * heads), intermediateSize: 1 + Math.floor(r() * units) }));
}

async function savedModel(config: BertConfigJson, dir: string): Promise<void> {
  const m = await BertModel.fromConfig(config, { task: 'text-classification', seed: 1 });
  await m.save(dir);
  m.dispose();
}

test.serial('the fit recovers a known additive cost exactly (bert-base grid, no timing)', (t) => {
  const dims = { layers: 12, heads: 12, intermediate: 3072 };
  const { knots, points } = latencyGrid(dims);
  // Convex, increasing, through 0 at 0 kept (the fit's convention): tables at the breakpoints.
  const truth: CostModel = {
    unit: 'ms',
    constant: 3.5,
    heads: { x: knots.heads, y: knots.heads.map((h) => 0.4 * h + 0.01 * h * h) },
    units: { x: knots.units, y: knots.units.map((u) => 0.0009 * u + 2e-8 * u * u) },
  };
  // The anchoring: the first segment extends to 0 at 0, so (x[0], y[0]) lies on the line from 0 to (x[1], y[1]).
  for (const f of [truth.heads, truth.units]) f.y[0] = (f.x[0] * f.y[1]) / f.x[1];
  const measured = points.map((p) => ({ layers: p.layers, ms: predictCost(truth, p.layers) }));
  const fit = fitLatency(measured, knots);
  t.log(`grid: ${points.length} models; heads knots ${knots.heads.join(',')}; units knots ${knots.units.join(',')}`);
  t.true(Math.abs(fit.constant - truth.constant) < 1e-7, `constant ${fit.constant} vs ${truth.constant}`);
  t.deepEqual(fit.heads.x, truth.heads.x);
  t.deepEqual(fit.units.x, truth.units.x);
  fit.heads.y.forEach((y, i) => t.true(Math.abs(y - truth.heads.y[i]) < 1e-7, `heads y[${i}] ${y} vs ${truth.heads.y[i]}`));
  fit.units.y.forEach((y, i) => t.true(Math.abs(y - truth.units.y[i]) < 1e-7, `units y[${i}] ${y} vs ${truth.units.y[i]}`));
});

test.serial('a cost with a fixed part per layer is predicted exactly for random layers (the constant takes the fixed part)', (t) => {
  const dims = { layers: 4, heads: 8, intermediate: 1024 };
  const { knots, points } = latencyGrid(dims);
  // Each layer costs 0.7 whatever it keeps: not in the tables (they go through 0), but a constant in total. A
  // kink at 4 heads, a breakpoint; linear in units.
  const cost = (layers: readonly LayerShape[]) =>
    2 + layers.reduce((s, l) => s + 0.7 + 0.3 * l.heads + 0.2 * Math.max(0, l.heads - 4) + 0.002 * l.intermediateSize, 0);
  const fit = fitLatency(points.map((p) => ({ layers: p.layers, ms: cost(p.layers) })), knots);
  const r = lcg(5);
  let worst = 0;
  for (let k = 0; k < 20; k++) {
    const layers = randomLayers(r, dims.layers, dims.heads, dims.intermediate);
    worst = Math.max(worst, Math.abs(predictCost(fit, layers) - cost(layers)) / cost(layers));
  }
  t.log(`worst relative error over 20 random configs: ${worst.toExponential(2)}`);
  t.true(worst < 1e-9);
});

test.serial('least squares: exact on a consistent system; NNLS keeps every coefficient >= 0', (t) => {
  const a = [
    [1, 0, 2],
    [1, 1, 0],
    [0, 3, 1],
    [2, 1, 1],
  ];
  const x = [0.5, -1.25, 2];
  const b = a.map((row) => row.reduce((s, aij, j) => s + aij * x[j], 0));
  leastSquares(a, b).forEach((xi, j) => t.true(Math.abs(xi - x[j]) < 1e-12, `x[${j}] ${xi} vs ${x[j]}`));
  const nn = nonNegativeLeastSquares(a, b);
  t.true(nn.every((xi) => xi >= 0), `nnls ${nn.join(', ')}`);
  // With x >= 0 feasible, NNLS finds it exactly.
  const y = [0.5, 0, 2];
  const c = a.map((row) => row.reduce((s, aij, j) => s + aij * y[j], 0));
  nonNegativeLeastSquares(a, c).forEach((xi, j) => t.true(Math.abs(xi - y[j]) < 1e-12, `nnls x[${j}] ${xi} vs ${y[j]}`));
});

test.serial('breakpoints run from 1 to all, for heads and FFN units', (t) => {
  t.deepEqual(latencyKnots(12, 3072), { heads: [1, 2, 3, 4, 6, 8, 12], units: [1, 96, 192, 384, 768, 1536, 2304, 3072] });
  t.deepEqual(latencyKnots(2, 64), { heads: [1, 2], units: [1, 2, 4, 8, 16, 32, 48, 64] });
  t.deepEqual(latencyKnots(1, 1), { heads: [1], units: [1] });
});

// Tiny models take about a millisecond, so a profile is mostly call overhead, and the two cores are shared with
// other work (test files in parallel workers, a CI build): the machine's speed drifts between the profile and any
// later measurement (a full suite under two compilers saw absolute errors of 52% and 140%). What the trainer
// uses is the cost of one compact model relative to another (a speed-up), so the test compares that: each
// configuration's measured time over the dense model's, timed in the same alternating rounds, against the
// profile's predicted ratio, within 50%. The 10% goal (absolute, quiet machine, bert-base) is
// scripts/bench-latency-model.ts's.
test.serial('the profile of a small model predicts non-uniform compact models relative to the dense one (measured side by side) within 50%', async (t) => {
  const model = await BertModel.fromConfig(SMALL, { task: 'text-classification', seed: 1 });
  const [batch, seq] = [2, 128];
  const profile = await profileLatency(model, { batch, seq });
  model.dispose();
  t.log(`profile: ${profile.grid.length} models in ${profile.seconds.toFixed(1)} s, fit error <= ${(100 * profile.maxFitError).toFixed(1)}%, dense ${profile.dense.ms.toFixed(3)} ms`);
  t.is(profile.unit, 'ms');
  t.deepEqual([profile.batch, profile.seq, profile.dtype], [batch, seq, 'fp32']);
  t.deepEqual(profile.heads.x, [1, 2, 3, 4]);
  t.is(profile.units.x[profile.units.x.length - 1], 512);
  t.true(profile.heads.y.every((y, i) => i === 0 || y >= profile.heads.y[i - 1]), 'heads cost never falls');
  const r = lcg(11);
  const configs = [0, 1, 2].map(() => randomLayers(r, 4, 4, 512));
  const models = [await BertModel.fromConfig(SMALL, { task: 'text-classification', seed: 2 })];
  for (const layers of configs) models.push(await BertModel.fromConfig(compactLayersConfig(SMALL, 4, layers), { task: 'text-classification', seed: 2 }));
  const [denseMs, ...ms] = await timeModels(models, latencyBatch(batch, seq, SMALL.vocab_size), { runs: 3, rounds: 3 });
  for (const m of models) m.dispose();
  const denseLayers = Array.from({ length: 4 }, () => ({ heads: 4, intermediateSize: 512 }));
  const densePredicted = predictLatency(profile, denseLayers);
  configs.forEach((layers, k) => {
    const predicted = predictLatency(profile, layers) / densePredicted;
    const measured = ms[k] / denseMs;
    const err = predicted / measured - 1;
    t.log(`heads ${layers.map((l) => l.heads).join(',')} FFN ${layers.map((l) => l.intermediateSize).join(',')}: measured ${ms[k].toFixed(3)} ms (${measured.toFixed(3)} of dense), predicted ${predicted.toFixed(3)} of dense (${(100 * err).toFixed(1)}%)`);
    t.true(Math.abs(err) <= 0.5, `error ${(100 * err).toFixed(1)}%`);
  });
});

test.serial('DistilBERT and RoBERTa: the profile builds its models from the family\'s own config names', async (t) => {
  const configs: ModelConfigJson[] = [
    { model_type: 'distilbert', vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, hidden_dim: 128, max_position_embeddings: 64 },
    { ...TINY, model_type: 'roberta', type_vocab_size: 1, pad_token_id: 1, max_position_embeddings: 66 },
  ];
  for (const config of configs) {
    const model = await BertModel.fromConfig(config, { task: 'question-answering', seed: 1 });
    const p = await profileLatency(model, { batch: 1, seq: 32, runs: 1, rounds: 1 });
    model.dispose();
    t.like(p.geometry, { family: config.model_type, task: 'question-answering', layers: 2, heads: 4, intermediate: 128 });
    t.deepEqual(p.heads.x, [1, 2, 3, 4]);
    t.true(p.grid.length > 10 && p.grid.every((g) => g.ms > 0 && g.heads.length === 2), `${p.grid.length} models measured`);
  }
});

test.serial('the cache: written once, reused, measured again for another shape, other threads, or force', async (t) => {
  const d = tempDir();
  try {
    await savedModel(TINY, d.path);
    const fast = { runs: 1, rounds: 1 };
    const a = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, ...fast });
    t.false(a.cached);
    t.is(a.path, latencyProfilePath(d.path, 1, 32));
    t.is(JSON.parse(readFileSync(a.path, 'utf8')).createdAt, a.profile.createdAt);
    const b = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, ...fast });
    t.true(b.cached);
    t.is(b.profile.createdAt, a.profile.createdAt);
    const c = await loadOrProfileLatency(d.path, { batch: 1, seq: 64, ...fast });
    t.false(c.cached, 'another shape is measured');
    t.is(c.path, join(d.path, 'latency-profile-1x64.json'));
    // Measured on another machine: 16 threads.
    writeFileSync(a.path, JSON.stringify({ ...a.profile, threads: 16 }));
    const e = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, ...fast });
    t.false(e.cached);
    t.regex(e.reason!, /threads 16, now \d+/);
    t.is(JSON.parse(readFileSync(a.path, 'utf8')).threads, e.profile.threads, 'the file is replaced');
    const f = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, force: true, ...fast });
    t.false(f.cached);
    t.is(f.reason, 'forced');
    // The caller's model serves as well as the directory's (not disposed by the call).
    const model = await BertModel.fromPretrained(d.path);
    const g = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, model });
    t.true(g.cached);
    t.false(model.disposed);
    model.dispose();
  } finally {
    d.cleanup();
  }
});

test.serial('bad input: coded errors naming the thing, the process alive, a foreign cache file kept', async (t) => {
  const d = tempDir();
  try {
    await savedModel(TINY, d.path);
    for (const [options, pattern] of [
      [{ batch: 0, seq: 32 }, /options\.batch/],
      [{ batch: 1, seq: '32' }, /options\.seq/],
      [{ batch: 1, seq: 100000 }, /options\.seq/],
      [{ batch: 1, seq: 32, force: 'yes' }, /options\.force/],
      [{ batch: 1, seq: 32, rounds: 0 }, /options\.rounds/],
      [{ batch: 1, seq: 32, sequence: 32 }, /sequence/],
    ] as const) {
      const e = await t.throwsAsync(loadOrProfileLatency(d.path, options as never));
      t.is((e as { code?: string }).code, 'E_INVALID_ARG', JSON.stringify(options));
      t.regex(e!.message, pattern);
    }
    // Longer than the model's 64 positions: refused before anything is built.
    const model = await BertModel.fromPretrained(d.path);
    const long = await t.throwsAsync(profileLatency(model, { batch: 1, seq: 100 }));
    t.is((long as { code?: string }).code, 'E_INVALID_ARG');
    t.regex(long!.message, /64/);
    model.dispose();
    const missing = await t.throwsAsync(loadOrProfileLatency(join(d.path, 'nope'), { batch: 1, seq: 32 }));
    t.is((missing as { code?: string }).code, 'E_FILE_NOT_FOUND');
    t.regex(missing!.message, /nope/);
    for (const text of ['{"format": "blockprune-latency-profile/1", "unit": "ms", "constant": 1, "hea', '{"some": "other file"}', '{"format": "blockprune-latency-profile/1", "unit": "ms"}']) {
      const path = latencyProfilePath(d.path, 1, 32);
      writeFileSync(path, text);
      const e = await t.throwsAsync(loadOrProfileLatency(d.path, { batch: 1, seq: 32 }));
      t.is((e as { code?: string }).code, 'E_BAD_PROFILE');
      t.true(e!.message.includes(path), e!.message);
      t.is(readFileSync(path, 'utf8'), text, 'the file is left as it was');
    }
    // force replaces it.
    const f = await loadOrProfileLatency(d.path, { batch: 1, seq: 32, force: true, runs: 1, rounds: 1 });
    t.false(f.cached);
    t.true((await loadOrProfileLatency(d.path, { batch: 1, seq: 32 })).cached);
  } finally {
    d.cleanup();
  }
});

test.serial('CLI: profile-latency prints the tables and the cache path; a bad --shape exits 2', async (t) => {
  const d = tempDir();
  try {
    await savedModel(TINY, d.path);
    const ok = runCli(['profile-latency', d.path, '--shape', '1x32']);
    t.is(ok.code, 0, ok.err);
    t.regex(ok.out, /per layer, its kept heads/);
    t.regex(ok.out, /per layer, its kept FFN units/);
    t.regex(ok.out, /dense: measured [\d.]+ ms, predicted [\d.]+ ms/);
    t.true(ok.out.includes(join(d.path, 'latency-profile-1x32.json')));
    const again = runCli(['profile-latency', d.path, '--shape', '1x32', '--json']);
    t.is(again.code, 0, again.err);
    const j = JSON.parse(again.out);
    t.true(j.cached);
    t.is(j.profile.unit, 'ms');
    for (const shape of ['0x32', '1x', 'abc']) {
      const bad = runCli(['profile-latency', d.path, '--shape', shape]);
      t.is(bad.code, 2, `--shape ${shape}: ${bad.err}`);
      t.regex(bad.err, /--shape/);
    }
  } finally {
    d.cleanup();
  }
});
