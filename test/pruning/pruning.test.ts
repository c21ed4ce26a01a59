/**
 * The pruning core against nn_pruning (../shared/fixtures/pruning, see its README): the schedule, the masks
 * of every method at three thresholds, masked logits, the regularization loss and every gradient at step 55
 * (mask scores included), compile and compaction (heads, widths, parameter counts, logits).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import '../../lib/training/model-training';
import { expectClose, fixtureBatch, maxAbsDiff, readTensors, shared, withShared } from '../helpers';

type Variant = 'hybrid' | 'topk' | 'threshold';



async function patched(root: string, variant: Variant): Promise<{ model: BertModel; config: PruningConfig }> {
  const config = PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, variant, 'sparse_args.json'), 'utf8')));
  const model = await BertModel.fromPretrained(join(root, 'model'));
  const report = await model.patch(config);
  if (report.patched !== 12) throw new Error(`patched ${report.patched}`);
  await model.loadState(join(root, variant, 'mask_scores.safetensors'));
  return { model, config };
}

/** Every test here reads fixtures/pruning (skipped without it). */
const pruningTest = withShared('fixtures/pruning');

pruningTest('schedule: threshold, lambda and progress at every fixture step', (t) => {
  const root = shared('fixtures/pruning');
  const steps = JSON.parse(readFileSync(join(root, 'hybrid', 'steps.json'), 'utf8'));
  const a = steps.schedule_args;
  const config = PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'hybrid', 'sparse_args.json'), 'utf8')));
  let worst = 0;
  for (const s of steps.schedule) {
    const v = config.schedule(s.step, a.total_steps, a.warmup_steps);
    worst = Math.max(worst, Math.abs(v.threshold - s.threshold), Math.abs(v.lambda - s.regu_lambda), Math.abs(v.progress - s.progress));
  }
  const ev = config.schedule(0, a.total_steps, a.warmup_steps, false);
  t.is(ev.threshold, steps.eval.threshold);
  t.is(ev.lambda, steps.eval.regu_lambda);
  t.log(`schedule: ${steps.schedule.length} steps, max |diff| ${worst.toExponential(2)}`);
  t.true(worst < 1e-12);
});

for (const variant of ['hybrid', 'topk', 'threshold'] as const) {
  pruningTest(`${variant}: masks at the final threshold and steps 30 and 55 equal nn_pruning's exactly; masked logits`, async (t) => {
    const root = shared('fixtures/pruning');
    const { model, config } = await patched(root, variant);
    const meta = variant === 'hybrid' ? JSON.parse(readFileSync(join(root, 'hybrid', 'steps.json'), 'utf8')).schedule_args : JSON.parse(readFileSync(join(root, variant, 'meta.json'), 'utf8')).schedule_args;
    for (const which of ['final', 'step30', 'step55']) {
      const expected = await readTensors(join(root, variant, `masks_${which}.safetensors`));
      const step = which === 'final' ? 0 : Number(which.slice(4));
      const th = config.schedule(step, meta.total_steps, meta.warmup_steps, which !== 'final').threshold;
      await model.setThreshold(th);
      const masks = await model.masks();
      let mismatches = 0;
      for (const [name, exp] of Object.entries(expected)) {
        const got = masks[name];
        t.truthy(got, `${name} present`);
        t.deepEqual(got.shape, exp.shape, name);
        const e = exp.data as Float32Array;
        const g = got.data as Uint8Array;
        for (let i = 0; i < e.length; i++) if ((e[i] !== 0) !== (g[i] !== 0)) mismatches++;
      }
      t.log(`${variant} ${which} (t = ${th.toFixed(7)}): ${Object.keys(expected).length} masks, ${mismatches} differing elements`);
      t.is(mismatches, 0);
    }
    await model.setThreshold(config.options.finalThreshold);
    const io = await readTensors(join(root, 'io.safetensors'));
    const out = await model.forward(fixtureBatch(io, true));
    const expected = await readTensors(join(root, variant, 'outputs.safetensors'));
    expectClose(t, `${variant} masked_logits`, out.logits, expected.masked_logits, 1e-5);
    if (expected.masked_loss) expectClose(t, `${variant} masked_loss`, out.loss, expected.masked_loss, 1e-6);
    model.dispose();
  });
}

pruningTest('hybrid step 55: CE, L1 regularization, loss and every gradient (straight-through scores)', async (t) => {
  const root = shared('fixtures/pruning');
  const { model, config } = await patched(root, 'hybrid');
  const steps = JSON.parse(readFileSync(join(root, 'hybrid', 'steps.json'), 'utf8'));
  const r = steps.regularization_at_step;
  const a = steps.schedule_args;
  const sched = config.schedule(55, a.total_steps, a.warmup_steps);
  await model.setThreshold(sched.threshold);
  const io = await readTensors(join(root, 'io.safetensors'));
  const o = config.options;
  const g = await model.gradients(fixtureBatch(io, true), {
    regularization: o.regularization,
    lambda: sched.lambda,
    attentionLambda: o.attentionLambda,
    denseLambda: o.denseLambda,
  });
  t.log(`ce ${g.taskLoss} (ref ${r.ce_loss}), regu ${g.reguLoss} (ref ${r.regu_loss}), loss ${g.loss} (ref ${r.loss})`);
  t.true(Math.abs(g.taskLoss - r.ce_loss) < 1e-6);
  t.true(Math.abs(g.reguLoss - r.regu_loss) < 1e-6);
  t.true(Math.abs(g.loss - r.loss) < 1e-5);
  t.true(Math.abs(g.regularization.groups.attention.loss - r.info.attention.regu_loss) < 1e-6);
  const expected = await readTensors(join(root, 'hybrid', 'grads_step55.safetensors'));
  let worst = 0;
  let worstScores = 0;
  let n = 0;
  for (const [key, exp] of Object.entries(expected)) {
    if (!key.startsWith('grad.')) continue;
    const name = key.slice(5);
    const got = g.grads[name];
    t.truthy(got, `gradient of ${name}`);
    t.deepEqual(got.shape, exp.shape, name);
    const d = maxAbsDiff(got.data as Float32Array, exp.data as Float32Array);
    n++;
    if (name.endsWith('mask_scores')) worstScores = Math.max(worstScores, d);
    else worst = Math.max(worst, d);
  }
  t.is(n, Object.keys(g.grads).length, 'every parameter has a reference gradient');
  t.log(`${n} gradients: max |diff| weights ${worst.toExponential(2)}, mask scores ${worstScores.toExponential(2)}`);
  t.true(worst < 1e-6 && worstScores < 1e-6);
  // The step leaves the model as it was (eval mode, no gradients kept): outputs unchanged.
  const grads2 = await model.gradients(fixtureBatch(io, true), { regularization: 'l1', lambda: sched.lambda, attentionLambda: 1, denseLambda: 0.25 });
  t.is(grads2.loss, g.loss);
  model.dispose();
});

pruningTest('hybrid: compile and compact give nn_pruning\'s heads, widths, parameter counts and logits', async (t) => {
  const root = shared('fixtures/pruning');
  const { model } = await patched(root, 'hybrid');
  await model.setThreshold(0.1);
  const io = await readTensors(join(root, 'io.safetensors'));
  const expected = await readTensors(join(root, 'hybrid', 'outputs.safetensors'));
  const ref = JSON.parse(readFileSync(join(root, 'hybrid', 'compact.json'), 'utf8'));
  const masked = await model.forward(fixtureBatch(io, false));

  const { model: small, report } = await model.compact('dense');
  t.log(`compact: ${report.parametersBefore} -> ${report.parametersAfter} parameters; heads ${report.heads}; FFN ${report.ffnWidths}`);
  t.deepEqual(report.removedHeads, [[1], [3]]);
  t.deepEqual(report.ffnWidths, [115, 112]);
  t.is(small.numParameters, ref.param_counts.optimized);
  t.deepEqual(small.config.pruned_heads, ref.config_pruned_heads);
  for (const l of ref.layers) {
    const shapes = Object.fromEntries(small.parameterShapes);
    const p = `bert.encoder.layer.${l.layer}.`;
    t.deepEqual(shapes[p + 'attention.self.query.weight'], l.query);
    t.deepEqual(shapes[p + 'attention.output.dense.weight'], l.attention_output_dense);
    t.deepEqual(shapes[p + 'intermediate.dense.weight'], l.intermediate_dense);
    t.deepEqual(shapes[p + 'output.dense.weight'], l.output_dense);
  }
  const out = await small.forward(fixtureBatch(io, true));
  expectClose(t, 'compact_logits', out.logits, expected.compact_logits, 1e-5);
  expectClose(t, 'compact vs our masked', out.logits, masked.logits, 1e-5);
  expectClose(t, 'compact_loss', out.loss, expected.compact_loss, 1e-6);
  t.true(model.patched, 'compaction leaves the patched model as it was');

  const { model: headsOnly } = await model.compact('heads');
  t.is(headsOnly.numParameters, ref.param_counts.compiled, 'heads-only compaction = nn_pruning compile_model (head pruning)');

  await model.compile();
  t.false(model.patched);
  t.is(model.numParameters, ref.param_counts.dense);
  const compiled = await model.forward(fixtureBatch(io, false));
  expectClose(t, 'compiled_logits', compiled.logits, expected.compiled_logits, 1e-5);
  for (const m of [model, small, headsOnly]) m.dispose();
});

pruningTest("nn_pruning's own compact checkpoint (intermediate_size 128, widths 115/112 in the weights) loads", async (t) => {
  const root = shared('fixtures/pruning');
  const m = await BertModel.fromPretrained(join(root, 'hybrid', 'compact'));
  t.deepEqual(m.layers.map((l) => [l.heads, l.intermediateSize]), [[3, 115], [3, 112]]);
  const io = await readTensors(join(root, 'io.safetensors'));
  const expected = await readTensors(join(root, 'hybrid', 'outputs.safetensors'));
  expectClose(t, 'nn_pruning compact checkpoint logits', (await m.forward(fixtureBatch(io, false))).logits, expected.compact_logits, 1e-5);
  m.dispose();
});

pruningTest('quirk: a head dead only in its key rows is removed by compaction, as nn_pruning does', async (t) => {
  const root = shared('fixtures/pruning');
  const quirk = JSON.parse(readFileSync(join(root, 'hybrid', 'quirk_key_only_head.json'), 'utf8'));
  const { model } = await patched(root, 'hybrid');
  // The same scores plus the key block rows of layer 0, head 2 set to -8 (16x16 blocks: head 2 = block row 2).
  const sd = await readTensors(join(root, 'hybrid', 'mask_scores.safetensors'));
  const keyName = 'bert.encoder.layer.0.attention.self.key.mask_module.context_modules.0.mask_scores';
  const k = sd[keyName];
  const data = new Float32Array(k.data as Float32Array);
  const cols = k.shape[1];
  for (let c = 0; c < cols; c++) data[2 * cols + c] = quirk.extra_override.value;
  const { tempDir } = await import('../helpers');
  const tmp = tempDir();
  try {
    const header = JSON.stringify({ [keyName]: { dtype: 'F32', shape: k.shape, data_offsets: [0, data.byteLength] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    const file = join(tmp.path, 'key.safetensors');
    require('node:fs').writeFileSync(file, Buffer.concat([len, Buffer.from(header), Buffer.from(data.buffer)]));
    await model.loadState(file);
  } finally {
    tmp.cleanup();
  }
  await model.setThreshold(0.1);
  const io = await readTensors(join(root, 'io.safetensors'));
  const expected = await readTensors(join(root, 'hybrid', 'quirk_key_only_head.safetensors'));
  const masked = await model.forward(fixtureBatch(io, false));
  expectClose(t, 'quirk masked_logits', masked.logits, expected.masked_logits, 1e-5);
  const { model: small } = await model.compact('dense');
  t.deepEqual(small.config.pruned_heads, quirk.config_pruned_heads);
  const out = await small.forward(fixtureBatch(io, false));
  expectClose(t, 'quirk compact_logits', out.logits, expected.compact_logits, 1e-5);
  const d = maxAbsDiff(out.logits.data as Float32Array, masked.logits.data as Float32Array);
  t.log(`compact vs masked differ by ${d.toFixed(4)} (reference ${quirk.max_abs_diff_masked_vs_optimized.toFixed(4)})`);
  model.dispose();
  small.dispose();
});
