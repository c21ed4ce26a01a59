/**
 * nn_pruning's hybrid patching on RoBERTa (../shared/fixtures/pruning/roberta-hybrid, see the fixtures README:
 * stock nn_pruning patches nothing there; the fixture adds a RobertaStructure to its table, which is what our
 * family table does): the six linears per layer patched under "roberta." names, the masks exact, masked,
 * compiled and compact logits, heads, widths and parameter counts; the key-only-dead-head quirk.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, maxAbsDiff, readTensors, shared, tempDir, withShared, writeSafetensorsFile } from '../helpers';

const test = withShared('fixtures/pruning/roberta-hybrid', 'fixtures/roberta-tiny-cls');

/** roberta-tiny-cls patched as the fixture's sparse_args say, with its mask scores (and `extra` over them). */
async function patched(extra: Record<string, TensorData> = {}): Promise<{ model: BertModel; root: string }> {
  const root = shared('fixtures/pruning/roberta-hybrid');
  const model = await BertModel.fromPretrained(shared('fixtures/roberta-tiny-cls'));
  const report = await model.patch(PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'sparse_args.json'), 'utf8'))));
  if (report.patched !== 12) throw new Error(`patched ${report.patched} linears, not 12`);
  await model.loadState(join(root, 'mask_scores.safetensors'));
  if (Object.keys(extra).length) {
    const tmp = tempDir();
    try {
      const file = join(tmp.path, 'extra.safetensors');
      writeSafetensorsFile(file, Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, { dtype: 'F32', shape: v.shape, data: v.data as Float32Array }])));
      await model.loadState(file);
    } finally {
      tmp.cleanup();
    }
  }
  await model.setThreshold(0.1);
  return { model, root };
}

function batch(io: Record<string, TensorData>, labels: boolean) {
  const [batchSize, seqLen] = io.input_ids.shape;
  return {
    inputIds: io.input_ids.data as BigInt64Array,
    attentionMask: io.attention_mask.data as BigInt64Array,
    batchSize,
    seqLen,
    labels: labels ? (io.labels.data as BigInt64Array) : undefined,
  };
}

test('roberta hybrid: masks exact, masked logits and loss, compile and compact as nn_pruning', async (t) => {
  const { model, root } = await patched();
  t.true(model.structure.layers === 'roberta.encoder.layer');
  const expectedMasks = await readTensors(join(root, 'masks_final.safetensors'));
  const masks = await model.masks();
  let mismatches = 0;
  for (const [name, exp] of Object.entries(expectedMasks)) {
    t.truthy(masks[name], `${name} present`);
    t.deepEqual(masks[name].shape, exp.shape, name);
    const e = exp.data as Float32Array;
    const g = masks[name].data as Uint8Array;
    for (let i = 0; i < e.length; i++) if ((e[i] !== 0) !== (g[i] !== 0)) mismatches++;
  }
  t.log(`${Object.keys(expectedMasks).length} masks, ${mismatches} differing elements`);
  t.is(mismatches, 0);

  const io = await readTensors(join(root, 'io.safetensors'));
  const expected = await readTensors(join(root, 'outputs.safetensors'));
  const ref = JSON.parse(readFileSync(join(root, 'compact.json'), 'utf8'));
  const masked = await model.forward(batch(io, true));
  expectClose(t, 'masked_logits', masked.logits, expected.masked_logits, 1e-5);
  expectClose(t, 'masked_loss', masked.loss, expected.masked_loss, 1e-6);

  const { model: small, report } = await model.compact('dense');
  t.deepEqual(report.removedHeads, [[2], [0, 3]]);
  t.deepEqual(report.ffnWidths, [106, 107]);
  t.is(small.numParameters, ref.param_counts.optimized);
  t.is(small.family, 'roberta');
  t.deepEqual(small.config.pruned_heads, ref.config_pruned_heads);
  const shapes = Object.fromEntries(small.parameterShapes);
  // compact.json's per-layer shapes, by the linear they describe.
  const linears = { query: 'attention.self.query', attention_output_dense: 'attention.output.dense', intermediate_dense: 'intermediate.dense', output_dense: 'output.dense' };
  for (const l of ref.layers)
    for (const [key, linear] of Object.entries(linears)) t.deepEqual(shapes[`roberta.encoder.layer.${l.layer}.${linear}.weight`], l[key], `layer ${l.layer} ${linear}`);
  const encoder = small.parameterShapes.filter(([n]) => n.startsWith('roberta.encoder.')).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  t.is(encoder, ref.param_counts.optimized_encoder);
  const out = await small.forward(batch(io, true));
  expectClose(t, 'compact_logits', out.logits, expected.compact_logits, 1e-5);
  expectClose(t, 'compact vs our masked', out.logits, masked.logits, 1e-5);
  expectClose(t, 'compact_loss', out.loss, expected.compact_loss, 1e-6);

  const { model: headsOnly } = await model.compact('heads');
  t.is(headsOnly.numParameters, ref.param_counts.compiled);
  await model.compile();
  t.is(model.numParameters, ref.param_counts.dense);
  expectClose(t, 'compiled_logits', (await model.forward(batch(io, false))).logits, expected.compiled_logits, 1e-5);

  // nn_pruning's own compact checkpoint (intermediate_size 128 in its config, the widths in the weights) loads.
  const theirs = await BertModel.fromPretrained(join(root, 'compact'));
  t.deepEqual(theirs.layers.map((l) => [l.heads, l.intermediateSize]), [[3, 106], [2, 107]]);
  expectClose(t, "nn_pruning's compact checkpoint", (await theirs.forward(batch(io, false))).logits, expected.compact_logits, 1e-5);
  for (const m of [model, small, headsOnly, theirs]) m.dispose();
});

test('roberta quirk: a head dead only in its key rows is removed by compaction, as nn_pruning does', async (t) => {
  const root = shared('fixtures/pruning/roberta-hybrid');
  const quirk = JSON.parse(readFileSync(join(root, 'quirk_key_only_head.json'), 'utf8'));
  const scores = await readTensors(join(root, 'mask_scores.safetensors'));
  const keyName = `roberta.encoder.layer.${quirk.extra_override.layer}.attention.self.key.mask_module.context_modules.0.mask_scores`;
  const k = scores[keyName];
  const data = new Float32Array(k.data as Float32Array);
  const cols = k.shape[1];
  // 16x16 blocks: head h is block row h.
  data.fill(quirk.extra_override.value, quirk.extra_override.head * cols, (quirk.extra_override.head + 1) * cols);
  const { model } = await patched({ [keyName]: { ...k, data } });
  const io = await readTensors(join(root, 'io.safetensors'));
  const expected = await readTensors(join(root, 'quirk_key_only_head.safetensors'));
  const masked = await model.forward(batch(io, false));
  expectClose(t, 'quirk masked_logits', masked.logits, expected.masked_logits, 1e-5);
  const { model: small } = await model.compact('dense');
  t.deepEqual(small.config.pruned_heads, quirk.config_pruned_heads);
  const out = await small.forward(batch(io, false));
  expectClose(t, 'quirk compact_logits', out.logits, expected.compact_logits, 1e-5);
  const d = maxAbsDiff(out.logits.data as Float32Array, masked.logits.data as Float32Array);
  t.true(Math.abs(d - quirk.max_abs_diff_masked_vs_optimized) < 1e-4, `compact vs masked ${d}`);
  model.dispose();
  small.dispose();
});
