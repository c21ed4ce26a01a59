/**
 * PruningConfig: the reference's defaults and field names, presets, and clear errors for options that are
 * unknown, inconsistent, or that cannot prune anything structured.
 */
import test from 'ava';
import { DEFAULT_PRUNING, PruningConfig } from '../../lib/pruning/config';

const GEOMETRY = { hiddenSize: 64, headDim: 16, layers: [{ heads: 4, intermediateSize: 128 }, { heads: 4, intermediateSize: 128 }] };

test('defaults are the reference SparseTrainingArguments, and they warn that they prune nothing structured', (t) => {
  const c = new PruningConfig();
  t.is(c.options.densePruningMethod, 'topK');
  t.is(c.options.initialThreshold, 1);
  t.is(c.options.finalThreshold, 0.5);
  t.is(c.options.maskScoresLearningRate, 0.01);
  t.is(c.options.linearMinParameters, 0.005);
  t.deepEqual({ ...c.options }, { ...DEFAULT_PRUNING });
  t.true(c.warnings.some((w) => w.includes('single weights')), c.warnings.join('; '));
});

test('hybrid(lambda) is the paper\'s hybrid: 32x32 attention blocks, FFN rows/cols (1d_alt), 0 -> 0.1, L1', (t) => {
  const c = PruningConfig.hybrid(20);
  t.deepEqual(c.warnings, []);
  const o = c.options;
  t.is(o.attentionPruningMethod, 'sigmoied_threshold');
  t.is(o.densePruningMethod, 'sigmoied_threshold:1d_alt');
  t.is(o.attentionBlockRows, 32);
  t.false(o.attentionOutputWithDense);
  t.is(o.regularization, 'l1');
  t.is(o.regularizationFinalLambda, 20);
  t.is(o.finalThreshold, 0.1);
  // On bert-base geometry: 6 linears per layer, 72 in all; the FFN pair shares one vector.
  const plan = c.plan({ hiddenSize: 768, headDim: 64, layers: Array(12).fill({ heads: 12, intermediateSize: 3072 }) });
  t.is(plan.modules.length, 72);
  const out = plan.modules.find((m) => m.module === 'bert.encoder.layer.3.output.dense')!;
  t.is(out.shareWith, 'bert.encoder.layer.3.intermediate.dense');
  t.is(out.layout, 'cols');
  const ao = plan.modules.find((m) => m.module === 'bert.encoder.layer.3.attention.output.dense')!;
  t.is(ao.group, 'attention');
});

test('the reference JSON (snake_case) is accepted; features we lack are refused, not ignored', (t) => {
  const c = PruningConfig.fromJSON({ dense_pruning_method: 'topK:1d_alt', attention_block_rows: 16, mask_init: 'constant', ampere_pruning_method: 'disabled' });
  t.is(c.options.densePruningMethod, 'topK:1d_alt');
  t.is(c.options.attentionBlockRows, 16);
  const e1: any = t.throws(() => PruningConfig.fromJSON({ ampere_pruning_method: 'annealing' }));
  t.is(e1.code, 'E_INVALID_ARG');
  t.regex(e1.message, /ampere_pruning_method/);
  const e2: any = t.throws(() => PruningConfig.fromJSON({ dense_pruning_methd: 'topK' }));
  t.regex(e2.message, /unknown field "dense_pruning_methd"/);
});

test('bad options are errors naming the option', (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ densePruningMethod: 'sparsegpt' }, /unknown method "sparsegpt"/],
    [{ densePruningMethod: 'topK:2d' }, /unknown submethod "2d"/],
    [{ attentionPruningMethod: 'topK:1d_alt' }, /1d_alt/],
    [{ densePruningMethod: 'topK:joint' }, /joint/],
    [{ attentionBlockRows: 0 }, /attentionBlockRows/],
    [{ denseBlockCols: 2.5 }, /denseBlockCols/],
    [{ finalThreshold: Number.NaN }, /finalThreshold/],
    [{ densePruningMethod: 'topK', finalThreshold: 1.5 }, /thresholds in \[0, 1\]/],
    [{ regularization: 'l2' }, /regularization/],
    [{ linearMinParameters: 2 }, /linearMinParameters/],
    [{ biasMask: 'yes' }, /biasMask/],
    [{ lambda: 3 }, /unknown option "lambda"/],
  ];
  for (const [opts, re] of cases) {
    const err: any = t.throws(() => new PruningConfig(opts as any), undefined, JSON.stringify(opts));
    t.is(err?.code, 'E_INVALID_ARG');
    t.regex(err?.message ?? '', re);
  }
  t.throws(() => PruningConfig.preset('diagonal'), { message: /unknown preset/ });
  t.true(new PruningConfig({ regularization: 'l1' }).warnings.some((w) => w.includes('no effect')));
  t.true(new PruningConfig({ densePruningMethod: 'disabled', attentionPruningMethod: 'disabled' }).warnings.some((w) => w.includes('nothing will be pruned')));
});

test('presets: block(r, c), heads (joint q/k/v scores per head), unstructured', (t) => {
  const b = PruningConfig.preset('block:16x8').plan(GEOMETRY);
  const q = b.modules.find((m) => m.module.endsWith('layer.0.attention.self.query'))!;
  t.deepEqual([q.blockRows, q.blockCols], [16, 8]);
  const h = PruningConfig.heads(5).plan(GEOMETRY);
  t.deepEqual(
    h.modules.filter((m) => m.module.includes('layer.1.')).map((m) => [m.module.split('.').pop(), m.blockRows, m.blockCols, m.shareWith ?? '']),
    [
      ['query', 16, 64, ''],
      ['key', 16, 64, 'bert.encoder.layer.1.attention.self.query'],
      ['value', 16, 64, 'bert.encoder.layer.1.attention.self.query'],
    ],
  );
  t.true(PruningConfig.unstructured().warnings.some((w) => w.includes('single weights')));
});

test('schedule: before, during and after the cubic ramp', (t) => {
  const c = PruningConfig.hybrid(10);
  t.is(c.schedule(0, 100, 10).threshold, 0);
  t.is(c.schedule(10, 100, 10).threshold, 0);
  t.true(c.schedule(45, 100, 10).threshold > 0 && c.schedule(45, 100, 10).threshold < 0.1);
  t.is(c.schedule(81, 100, 10).threshold, 0.1);
  t.is(c.schedule(81, 100, 10).lambda, 10);
  const mid = c.schedule(45, 100, 10);
  t.is(mid.lambda, (10 * mid.threshold) / 0.1);
});
