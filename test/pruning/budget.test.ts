/**
 * Pruning to a budget (issue 17): the masks' expected and hard cost against a reference computed here from the
 * scores, the hard cost against the compact model's real parameter count, the Lagrangian term's gradient
 * against finite differences, and a tiny run that meets a parameter budget.
 */
import test from 'ava';
import { join } from 'node:path';
import { BertConfigJson, BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { parameterCostModel, predictCost } from '../../lib/pruning/cost-model';
import { Budget } from '../../lib/pruning/budget';
import type { NativeBudget } from '../../lib/runtime/native';
import { SparseTrainer } from '../../lib/training/trainer';
import { tempDir, writeSafetensorsFile } from '../helpers';
import { ToyData } from '../toy';

// 4 heads of 16, FFN 128; 16x16 attention blocks: a head is one block row of q, k and v (4 blocks each).
const CONFIG: BertConfigJson = { vocab_size: 64, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, max_position_embeddings: 32, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
const HYBRID = () => PruningConfig.hybrid(1, { attentionBlockRows: 16, attentionBlockCols: 16 });
const T = 0.1;
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

/** A patched model whose scores are `fill(name, i)`. */
async function patchedWith(fill: (name: string, i: number) => number): Promise<{ model: BertModel; scores: Record<string, Float32Array> }> {
  const model = await BertModel.fromConfig(CONFIG, { seed: 1, task: 'text-classification' });
  await model.patch(HYBRID());
  const tmp = tempDir();
  try {
    const scores: Record<string, Float32Array> = {};
    const tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
    for (const [name, shape] of model.parameterShapes.filter(([n]) => n.includes('mask_scores'))) {
      const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fill(name, i));
      scores[name] = data;
      tensors[name] = { dtype: 'F32', shape, data };
    }
    const file = join(tmp.path, 'scores.safetensors');
    writeSafetensorsFile(file, tensors);
    await model.loadState(file, { strict: false });
    return { model, scores };
  } finally {
    tmp.cleanup();
  }
}

/** The budget's expected and hard heads and units, computed here from the scores (native/budget.h's rules). */
function reference(scores: Record<string, Float32Array>, layer: number) {
  const s = (linear: string) => scores[`bert.encoder.layer.${layer}.${linear}.mask_module.context_modules.0.mask_scores`];
  const p = (x: number) => sigmoid(x - logit(T));
  const kept = (x: number) => (sigmoid(x) > T ? 1 : 0);
  // Hard: some block of the head kept in each of q, k and v. Expected: the product of the blocks' mean keep probability.
  const blocks = (l: string, h: number) => Array.from(s(l).subarray(4 * h, 4 * h + 4));
  const qkv = ['attention.self.query', 'attention.self.key', 'attention.self.value'];
  const hardHead = (h: number) => qkv.map((l): number => (blocks(l, h).some((x) => kept(x) === 1) ? 1 : 0)).reduce((a, b) => a * b, 1);
  const softHead = (h: number) => qkv.map((l) => blocks(l, h).reduce((a, x) => a + p(x), 0) / 4).reduce((a, b) => a * b, 1);
  const unitScores = Array.from(s('intermediate.dense'));
  return {
    heads: [0, 1, 2, 3].reduce((a, h) => a + softHead(h), 0),
    units: unitScores.reduce((a, x) => a + p(x), 0),
    hardHeads: Math.max(1, [0, 1, 2, 3].reduce((a, h) => a + hardHead(h), 0)),
    hardUnits: Math.max(1, unitScores.reduce((a, x) => a + kept(x), 0)),
  };
}

function paramsBudget(model: BertModel, target: number, lambda1 = 0, lambda2 = 0): NativeBudget {
  const cost = parameterCostModel(model.geometry(), model.numParameters);
  return { constant: cost.constant, heads: cost.heads, units: cost.units, target, dense: predictCost(cost, model.layers), lambda1, lambda2, threshold: T };
}

test('expected and hard costs follow the scores; the hard cost is the compact model parameter count', async (t) => {
  const r = lcg(7);
  // Scores around the threshold's logit (-2.2): some blocks, whole heads and units pruned, others kept.
  const { model, scores } = await patchedWith((name, i) => (name.includes('layer.1.attention.self') && i < 4 ? -6 : -2.2 + 3 * (r() - 0.5)));
  try {
    const b = paramsBudget(model, 100_000, 0.3, 1.5);
    const c = await model.budgetCost(b);
    const cost = parameterCostModel(model.geometry(), model.numParameters);
    for (const layer of [0, 1]) {
      const ref = reference(scores, layer);
      t.true(Math.abs(c.heads[layer] - ref.heads) < 1e-4, `layer ${layer} expected heads ${c.heads[layer]} vs ${ref.heads}`);
      t.true(Math.abs(c.units[layer] - ref.units) < 1e-3, `layer ${layer} expected units ${c.units[layer]} vs ${ref.units}`);
      t.is(c.hardHeads[layer], ref.hardHeads);
      t.is(c.hardUnits[layer], ref.hardUnits);
    }
    t.is(c.hardHeads[1], 3, 'head 0 of layer 1 has every q block pruned');
    const expected = predictCost(cost, c.heads.map((h, l) => ({ heads: h, intermediateSize: c.units[l] })));
    t.true(Math.abs(c.expected - expected) / expected < 1e-6);
    const rr = (c.expected - b.target) / b.dense;
    t.true(Math.abs(c.term - (0.3 * rr + 1.5 * rr * rr)) < 1e-6);
    // The hard cost is what compaction gives, to the parameter.
    await model.setThreshold(T);
    const { model: compact, report } = await model.compact();
    t.deepEqual(report.heads, c.hardHeads);
    t.deepEqual(report.ffnWidths, c.hardUnits);
    t.is(c.hard, report.parametersAfter);
    t.is(compact.numParameters, c.hard);
    compact.dispose();
  } finally {
    model.dispose();
  }
});

test('the Lagrangian term gradient in the scores equals finite differences of its value', async (t) => {
  const r = lcg(11);
  const fill = (_: string, i: number) => -2.2 + 2.5 * (Math.sin(i * 1.7) + r() - 0.5);
  const { model, scores } = await patchedWith(fill);
  const batch = { inputIds: Int32Array.from({ length: 16 }, (_, i) => 3 + i), attentionMask: new Int32Array(16).fill(1), batchSize: 2, seqLen: 8, labels: Int32Array.from([0, 1]) };
  try {
    // Target below the dense cost; lambdas large enough for the term to dominate float32 rounding.
    const b = paramsBudget(model, 60_000, 40, 90);
    const withTerm = await model.gradients(batch, { budget: b });
    const without = await model.gradients(batch, {});
    const names = Object.keys(scores);
    // One attention block score and one FFN unit score per layer.
    const probes = names.flatMap((n) => (n.includes('query') ? [[n, 5]] : n.includes('intermediate') ? [[n, 17]] : [])) as Array<[string, number]>;
    t.is(probes.length, 4);
    const eps = 1e-2;
    for (const [name, i] of probes) {
      const analytic = (withTerm.grads[name].data as Float32Array)[i] - (without.grads[name].data as Float32Array)[i];
      const at = async (delta: number) => {
        const m = await patchedWith((n, j) => (n === name && j === i ? scores[n][j] + delta : scores[n][j]));
        try {
          return (await m.model.budgetCost(b)).term;
        } finally {
          m.model.dispose();
        }
      };
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      t.true(Math.abs(analytic) > 1e-5, `${name}[${i}]: a gradient to compare (${analytic})`);
      t.true(Math.abs(analytic - numeric) <= 0.02 * Math.abs(numeric) + 1e-6, `${name}[${i}]: analytic ${analytic} vs finite differences ${numeric}`);
    }
  } finally {
    model.dispose();
  }
});

test('a tiny run meets a parameter budget: the compact model has at most the target, within one head of it', async (t) => {
  const model = await BertModel.fromConfig(CONFIG, { seed: 2, task: 'text-classification' });
  const dense = model.numParameters;
  const cost = parameterCostModel(model.geometry(), dense);
  const perHead = cost.heads.y[1];
  // 60% of the encoder layers' heads and units: the embeddings and classifier stay.
  const variable = dense - cost.constant;
  const target = Math.round(cost.constant + 0.6 * variable);
  const logs: Array<Record<string, unknown>> = [];
  try {
    const r = await new SparseTrainer({
      model,
      train: new ToyData(256, 3),
      // Scores at 0.05 per step (AdamW moves each by about its learning rate): the masks can reach the target in 48 steps.
      pruning: PruningConfig.hybrid(0, { attentionBlockRows: 16, attentionBlockCols: 16, maskScoresLearningRate: 0.1 }),
      budget: { target: { parameters: target }, multiplierLr: 0.5 },
      maxSteps: 96,
      batchSize: 16,
      learningRate: 1e-3,
      logEvery: 16,
      onLog: (e) => {
        logs.push(e);
        if (e.type === 'step') t.log(JSON.stringify(e.budget));
      },
      handleSigint: false,
    }).train();
    t.truthy(r.budget);
    const b = r.budget!;
    t.true(b.met);
    t.is(b.target, target);
    // Each logging step reports the expected cost against the target.
    const steps = logs.filter((e) => e.type === 'step');
    t.is(steps.length, 6);
    for (const e of steps) t.like(e.budget as object, { finalTarget: target });
    const { model: compact, report } = await r.model.compact();
    t.log(`dense ${dense}, target ${target}, compact ${report.parametersAfter} (threshold ${b.threshold.toFixed(4)}, heads ${report.heads}, units ${report.ffnWidths})`);
    t.is(report.parametersAfter, b.cost);
    t.true(report.parametersAfter <= target);
    t.true(target - report.parametersAfter < perHead, `within one head's ${perHead} parameters of the target`);
    compact.dispose();
    if (r.model !== model) r.model.dispose();
  } finally {
    model.dispose();
  }
});

test('budget options are checked before any work', async (t) => {
  const model = await BertModel.fromConfig(CONFIG, { seed: 1, task: 'text-classification' });
  const train = new ToyData(16, 1);
  try {
    // pruning null: none given.
    const make = (budget: unknown, pruning: PruningConfig | null = HYBRID()) => () => new SparseTrainer({ model, train, pruning: pruning ?? undefined, budget: budget as never });
    t.throws(make({ target: {} }), { code: 'E_INVALID_ARG', message: /exactly one of speedup, latencyMs, parameters/ });
    t.throws(make({ target: { speedup: 2, parameters: 10 } }), { code: 'E_INVALID_ARG', message: /exactly one/ });
    t.throws(make({ target: { speedup: 0.5 } }), { code: 'E_INVALID_ARG', message: /speedup/ });
    t.throws(make({ target: { speedup: 2 } }), { code: 'E_INVALID_ARG', message: /needs a latency profile/ });
    t.throws(make({ target: { parameters: 1000 } }, null), { code: 'E_INVALID_ARG', message: /options\.pruning/ });
    t.throws(make({ target: { parameters: 1000 } }, PruningConfig.hybrid(1, { densePruningMethod: 'topK' })), { code: 'E_INVALID_ARG', message: /densePruningMethod/ });
    t.throws(make({ target: { parameters: 1000 }, multiplierLr: -1 }), { code: 'E_INVALID_ARG', message: /multiplierLr/ });
    // A target at or above the dense cost prunes for nothing: refused when the run starts, before any step.
    t.throws(() => new Budget({ target: { parameters: model.numParameters + 1 } }, model), { code: 'E_INVALID_ARG', message: /not below the dense/ });
    // Below one head and one unit per layer: no masks can get there.
    const floor = parameterCostModel(model.geometry(), model.numParameters);
    const least = predictCost(floor, model.layers.map(() => ({ heads: 1, intermediateSize: 1 })));
    t.throws(() => new Budget({ target: { parameters: least - 1 } }, model), { code: 'E_INVALID_ARG', message: /below the smallest compact model/ });
    t.notThrows(() => new Budget({ target: { parameters: least } }, model));
  } finally {
    model.dispose();
  }
});
