/**
 * Patching and compaction on models built here, for every family (BERT, DistilBERT, RoBERTa): every preset
 * patches the 6 linears per layer, masks from patched checkpoints survive save/load, compaction keeps outputs,
 * exportFilled writes an HF-style checkpoint (in the family's own config names) with the same outputs, and
 * bad requests are clear errors.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertConfigJson, BertModel } from '../../lib/model/model';
import type { ModelConfigJson } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import { maxAbsDiff, readTensors, tempDir, writeSafetensorsFile } from '../helpers';

const TINY: BertConfigJson = {
  vocab_size: 512,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 64,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
};

/** The same geometry in each family (RoBERTa's positions start after its pad id 1: 64 + 2 of them). */
const TINY_BY_FAMILY: Record<'bert' | 'distilbert' | 'roberta', ModelConfigJson> = {
  bert: TINY,
  distilbert: { model_type: 'distilbert', vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, hidden_dim: 128, max_position_embeddings: 64, dropout: 0, attention_dropout: 0 },
  roberta: { ...TINY, model_type: 'roberta', type_vocab_size: 1, pad_token_id: 1, max_position_embeddings: 66 },
};

function batch(n = 3, s = 12, seed = 1) {
  let x = seed;
  const ids = new Int32Array(n * s).map(() => {
    x = (x * 48271) % 2147483647;
    return 1 + (x % 500);
  });
  return { inputIds: ids, batchSize: n, seqLen: s, labels: new Int32Array(n).map((_, i) => i % 2) };
}

/** Sets scores so that some heads / units / blocks die: random N(0, 2) scores from a seeded generator. */
async function randomScores(m: BertModel, seed: number, dir: string): Promise<void> {
  const shapes = m.parameterShapes.filter(([n]) => n.endsWith('mask_scores'));
  let x = seed;
  const rnd = () => {
    x = (x * 48271) % 2147483647;
    return x / 2147483647;
  };
  const tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n).map(() => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd()) * 2);
    tensors[name] = { dtype: 'F32', shape, data };
  }
  const file = join(dir, 'scores.safetensors');
  writeSafetensorsFile(file, tensors);
  await m.loadState(file);
}

for (const [name, config] of [
  ['hybrid', PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 })],
  ['block 16x16', PruningConfig.block(16, 16)],
  ['heads', PruningConfig.heads(10)],
  ['unstructured', PruningConfig.unstructured(10)],
  ['l0 1d_alt', new PruningConfig({ densePruningMethod: 'l0:1d_alt', attentionPruningMethod: 'l0', attentionBlockRows: 16, attentionBlockCols: 16, regularization: 'l0', regularizationFinalLambda: 1 })],
  ['magnitude', new PruningConfig({ densePruningMethod: 'magnitude', attentionPruningMethod: 'magnitude', attentionBlockRows: 16, attentionBlockCols: 16, finalThreshold: 0.5 })],
] as const) {
  for (const [family, tiny] of Object.entries(TINY_BY_FAMILY)) {
    test(`${family} ${name}: patch, mask at the final threshold, compact with identical outputs`, async (t) => {
      const tmp = tempDir();
      const m = await BertModel.fromConfig(tiny, { seed: 11 });
      try {
        const dense = await m.forward(batch());
        const r = await m.patch(config);
        t.is(r.patched, name === 'heads' ? 6 : 12);
        // Scores at their init: threshold methods keep everything at t = 0, so outputs are unchanged.
        if (config.options.initialThreshold === 0 && !name.startsWith('l0')) {
          await m.setThreshold(0);
          // A patched model runs on libtorch's ops, the dense one on the CPU kernels: equal within float rounding.
          if (name !== 'magnitude') t.true(maxAbsDiff((await m.forward(batch())).logits.data as Float32Array, dense.logits.data as Float32Array) < 1e-6);
        }
        if (r.scoreParameters > 0) await randomScores(m, 7, tmp.path);
        await m.setThreshold(config.options.finalThreshold);
        const masked = await m.forward(batch());
        const reg = await m.regularization({ regularization: config.options.regularization === 'l0' ? 'l0' : 'l1' });
        t.true(Number.isFinite(reg.loss));
        const { model: small, report } = await m.compact('dense');
        const out = await small.forward(batch());
        const d = maxAbsDiff(out.logits.data as Float32Array, masked.logits.data as Float32Array);
        t.log(`${name}: ${report.parametersBefore} -> ${report.parametersAfter} params, heads ${report.heads}, FFN ${report.ffnWidths}, max |diff| ${d.toExponential(2)}`);
        // A head dead in q, k and v together is removed exactly; block/unstructured/l0 masks may leave a head
        // dead in only some of q/k/v, which the reference's rule also removes (see the quirk fixture).
        if (name === 'hybrid' || name === 'heads') t.true(d < 1e-5, `compact == masked (${d})`);
        if (name === 'heads') t.true(report.parametersAfter <= report.parametersBefore);
        if (name === 'unstructured') t.is(report.parametersAfter, report.parametersBefore, 'single weights: nothing to remove');
        small.dispose();
      } finally {
        m.dispose();
        tmp.cleanup();
      }
    });
  }
}

test('a patched model saves its plan and scores, reloads patched, and gives the same masked outputs', async (t) => {
  const tmp = tempDir();
  try {
    const m = await BertModel.fromConfig(TINY, { seed: 3 });
    await m.patch(PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }));
    await randomScores(m, 5, tmp.path);
    await m.setThreshold(0.07);
    const before = await m.forward(batch());
    await m.save(join(tmp.path, 'patched'));
    const cfg = JSON.parse(readFileSync(join(tmp.path, 'patched', 'config.json'), 'utf8'));
    t.is(cfg.pruning_plan.threshold, 0.07);
    const r = await BertModel.fromPretrained(join(tmp.path, 'patched'));
    t.true(r.patched);
    t.is(r.threshold, 0.07);
    const after = await r.forward(batch());
    t.is(maxAbsDiff(after.logits.data as Float32Array, before.logits.data as Float32Array), 0);
    // compile: the model is plain again and gives the masked outputs.
    await r.compile();
    t.false(r.patched);
    t.true(maxAbsDiff((await r.forward(batch())).logits.data as Float32Array, before.logits.data as Float32Array) < 1e-6);
    m.dispose();
    r.dispose();
  } finally {
    tmp.cleanup();
  }
});

for (const [family, tiny] of Object.entries(TINY_BY_FAMILY)) {
  test(`${family}: compact save -> load, and exportFilled: an HF-layout checkpoint (full FFN width, pruned_heads) with identical outputs`, async (t) => {
    const tmp = tempDir();
    const width = family === 'distilbert' ? 'hidden_dim' : 'intermediate_size';
    try {
      const m = await BertModel.fromConfig(tiny, { seed: 9 });
      await m.patch(PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }));
      await randomScores(m, 13, tmp.path);
      await m.setThreshold(0.1);
      const { model: small, report } = await m.compact();
      t.true(report.ffnWidths.some((w) => w < 128), `FFN widths ${report.ffnWidths}`);
      const ref = await small.forward(batch());
      await small.save(join(tmp.path, 'compact'));
      const cfg = JSON.parse(readFileSync(join(tmp.path, 'compact', 'config.json'), 'utf8'));
      t.deepEqual(cfg.intermediate_sizes, report.ffnWidths);
      const reloaded = await BertModel.fromPretrained(join(tmp.path, 'compact'));
      t.is(maxAbsDiff((await reloaded.forward(batch())).logits.data as Float32Array, ref.logits.data as Float32Array), 0);

      await small.exportFilled(join(tmp.path, 'hf'));
      const hf = JSON.parse(readFileSync(join(tmp.path, 'hf', 'config.json'), 'utf8'));
      t.is(hf.intermediate_sizes, undefined, 'plain HF config: one intermediate_size');
      t.is(hf[width], 128);
      t.is(hf.model_type ?? 'bert', family);
      t.deepEqual(hf.pruned_heads, cfg.pruned_heads);
      const filled = await BertModel.fromPretrained(join(tmp.path, 'hf'));
      t.deepEqual(filled.layers.map((l) => l.intermediateSize), [128, 128]);
      const d = maxAbsDiff((await filled.forward(batch())).logits.data as Float32Array, ref.logits.data as Float32Array);
      t.log(`exportFilled vs compact: max |diff| ${d.toExponential(2)}`);
      t.true(d < 1e-5);
      for (const x of [m, small, reloaded, filled]) x.dispose();
    } finally {
      tmp.cleanup();
    }
  });
}

test("deadHeads: 'reference' (default) drops a head with zero queries, which still attended and changes the outputs; 'exact' drops only heads with zero values", async (t) => {
  const tmp = tempDir();
  try {
    const m = await BertModel.fromConfig(TINY, { seed: 4 });
    await m.save(join(tmp.path, 'src'));
    const w = await readTensors(join(tmp.path, 'src', 'model.safetensors'));
    // hidden 64, 4 heads of 16: layer 0 head 1 loses its queries (weights and bias), layer 1 head 2 its values.
    const zero = (name: string, from: number, to: number) => {
      const data = Float32Array.from(w[name].data as Float32Array);
      const cols = w[name].shape.length === 2 ? w[name].shape[1] : 1;
      data.fill(0, from * cols, to * cols);
      w[name] = { ...w[name], data };
    };
    for (const x of ['weight', 'bias']) {
      zero(`bert.encoder.layer.0.attention.self.query.${x}`, 16, 32);
      zero(`bert.encoder.layer.1.attention.self.value.${x}`, 32, 48);
    }
    writeSafetensorsFile(join(tmp.path, 'src', 'model.safetensors'), Object.fromEntries(Object.entries(w).map(([k, x]) => [k, { dtype: 'F32', shape: x.shape, data: x.data as Float32Array }])));
    const full = await BertModel.fromPretrained(join(tmp.path, 'src'));
    const ref = (await full.forward(batch())).logits.data as Float32Array;
    const reference = await full.compact('dense');
    const exact = await full.compact('dense', { deadHeads: 'exact' });
    t.deepEqual(reference.report.removedHeads, [[1], [2]]);
    t.deepEqual(exact.report.removedHeads, [[], [2]]);
    const dRef = maxAbsDiff((await reference.model.forward(batch())).logits.data as Float32Array, ref);
    const dExact = maxAbsDiff((await exact.model.forward(batch())).logits.data as Float32Array, ref);
    t.log(`logits vs the full model: reference rule ${dRef.toExponential(2)}, exact rule ${dExact.toExponential(2)}`);
    t.true(dExact < 1e-5);
    t.true(dRef > 1e-4, 'the query-dead head did contribute (well above float32 noise: the exact rule gives 0 here)');
    const err: any = await t.throwsAsync(full.compact('dense', { deadHeads: 'q' as 'exact' }));
    t.is(err.code, 'E_INVALID_ARG');
    for (const x of [m, full, reference.model, exact.model]) x.dispose();
  } finally {
    tmp.cleanup();
  }
});

test('errors: blocks that do not divide, patching twice, compiling an unpatched model, bad compaction mode', async (t) => {
  const m = await BertModel.fromConfig(TINY, { seed: 1 });
  let err: any = await t.throwsAsync(m.patch(PruningConfig.block(24, 16)));
  t.is(err.code, 'E_INVALID_ARG');
  t.regex(err.message, /block 24x16 does not divide the weight \[64, 64\] of bert\.encoder\.layer\.0\.attention\.self\.query/);
  t.false(m.patched, 'a bad plan leaves the model untouched');
  await m.patch(PruningConfig.hybrid(1, { attentionBlockRows: 16, attentionBlockCols: 16 }));
  err = await t.throwsAsync(m.patch(PruningConfig.hybrid(1, { attentionBlockRows: 16, attentionBlockCols: 16 })));
  t.regex(err.message, /already patched/);
  err = await t.throwsAsync(m.compact('blocks' as any));
  t.is(err.code, 'E_INVALID_ARG');
  err = await t.throwsAsync(m.patch({} as any));
  t.is(err.code, 'E_INVALID_ARG');
  const plain = await BertModel.fromConfig(TINY, { seed: 1 });
  err = await t.throwsAsync(plain.compile());
  t.regex(err.message, /not patched/);
  err = await t.throwsAsync(plain.setThreshold(0.1));
  t.regex(err.message, /not patched/);
  err = await t.throwsAsync(m.exportFilled('/tmp/never'));
  t.regex(err.message, /compile or compact/);
  m.dispose();
  plain.dispose();
});

test('errors: a compact checkpoint whose per-layer fields are missing or wrong', async (t) => {
  const tmp = tempDir();
  try {
    const m = await BertModel.fromConfig({ ...TINY, pruned_heads: { '0': [1] }, intermediate_sizes: [100, 90] }, { seed: 2 });
    await m.save(tmp.path);
    const cfgPath = join(tmp.path, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, pruned_heads: {} }));
    let err: any = await t.throwsAsync(BertModel.fromPretrained(tmp.path));
    t.is(err.code, 'E_SHAPE');
    t.regex(err.message, /3 heads but .*config\.json implies 4 for layer 0/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_sizes: [100] }));
    err = await t.throwsAsync(BertModel.fromPretrained(tmp.path));
    t.is(err.code, 'E_BAD_CONFIG');
    t.regex(err.message, /intermediate_sizes has 1 entries for 2 layers/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_sizes: [100, 91] }));
    err = await t.throwsAsync(BertModel.fromPretrained(tmp.path));
    t.is(err.code, 'E_SHAPE');
    t.regex(err.message, /layer 1 FFN width is 90 but .* says 91/);
    // Without intermediate_sizes at all, widths come from the weights (as nn_pruning's compact checkpoints).
    const { intermediate_sizes: _drop, ...noWidths } = cfg;
    writeFileSync(cfgPath, JSON.stringify(noWidths));
    const ok = await BertModel.fromPretrained(tmp.path);
    t.deepEqual(ok.layers.map((l) => l.intermediateSize), [100, 90]);
    ok.dispose();
    m.dispose();
  } finally {
    tmp.cleanup();
  }
});

test('a layer with every head pruned skips attention: it loads, runs, and saves/reloads bit for bit', async (t) => {
  const tmp = tempDir();
  try {
    const m = await BertModel.fromConfig({ ...TINY, pruned_heads: { '0': [0, 1, 2, 3] } }, { seed: 4 });
    t.deepEqual(m.layers.map((l) => l.heads), [0, 4]);
    t.deepEqual(Object.fromEntries(m.parameterShapes)['bert.encoder.layer.0.attention.self.query.weight'], [0, 64]);
    const a = await m.forward(batch());
    t.true(Array.from(a.logits.data as Float32Array).every(Number.isFinite));
    await m.save(tmp.path);
    const r = await BertModel.fromPretrained(tmp.path);
    t.is(maxAbsDiff((await r.forward(batch())).logits.data as Float32Array, a.logits.data as Float32Array), 0);
    m.dispose();
    r.dispose();
  } finally {
    tmp.cleanup();
  }
});
