/**
 * The C++ training step against transformers' AdamW (../shared/fixtures/bert-tiny-cls/steps.*): losses of
 * three steps, the final logits and every parameter; plus clipping, distillation and resumable state.
 */
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { native } from '../../lib/runtime/native';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import '../../lib/training/model-training';
import { expectClose, fixtureBatch, maxAbsDiff, readTensors, shared, skipped, tempDir, withShared } from '../helpers';



withShared('fixtures/bert-tiny-cls')('3 AdamW steps (lr 1e-3, wd 0.01, HF semantics) reproduce the losses, final logits and every parameter', async (t) => {
  const dir = shared('fixtures/bert-tiny-cls');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const ref = await readTensors(join(dir, 'steps.safetensors'));
  const steps = JSON.parse(require('node:fs').readFileSync(join(dir, 'steps.json'), 'utf8'));
  const m = await BertModel.fromPretrained(dir);
  // An inference first: the layers pack their weights for the CPU kernels. The steps below must make the
  // forwards after them see the new weights (AdamW writes through raw pointers and moves the version counters).
  await m.forward(fixtureBatch(io));
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await m.trainStep(fixtureBatch(io), { lr: 1e-3, weightDecay: 0.01, maxGradNorm: 0 });
    losses.push(r.loss);
  }
  losses.push((await m.forward(fixtureBatch(io))).loss.data[0] as number);
  const dl = maxAbsDiff(losses, steps.losses);
  t.log(`losses ${losses.map((x) => x.toFixed(6)).join(', ')}; max |diff| vs reference ${dl.toExponential(2)}`);
  t.true(dl < 1e-6);
  const out = await m.forward(fixtureBatch(io));
  expectClose(t, 'final_logits', out.logits, ref.final_logits, 1e-5);
  const sd = m.stateDict();
  let worst = 0;
  for (const [k, v] of Object.entries(ref)) {
    if (!k.startsWith('param.')) continue;
    const name = k.slice(6);
    const d = maxAbsDiff(sd[name].data as Float32Array, v.data as Float32Array);
    // key.bias: analytically zero gradient, float noise amplified by Adam (fixture README): atol 1e-3.
    if (name.endsWith('attention.self.key.bias')) t.true(d < 1e-3, `${name} ${d}`);
    else worst = Math.max(worst, d);
  }
  t.log(`parameters after 3 steps: max |diff| ${worst.toExponential(2)} (excluding key.bias)`);
  t.true(worst < 5e-5);
  m.dispose();
});

withShared('fixtures/bert-tiny-cls')('clipping bounds the gradient norm; lrScale 0 changes nothing; a teacher adds a distillation term', async (t) => {
  const dir = shared('fixtures/bert-tiny-cls');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const m = await BertModel.fromPretrained(dir);
  const before = (await m.forward(fixtureBatch(io))).logits;
  const r0 = await m.trainStep(fixtureBatch(io), { lr: 1e-3, lrScale: 0 });
  t.true(r0.gradNorm > 0);
  t.is(maxAbsDiff((await m.forward(fixtureBatch(io))).logits.data as Float32Array, before.data as Float32Array), 0);
  const teacher = await BertModel.fromPretrained(dir);
  // The same weights as teacher: the KL term is 0 at the first step.
  const m2 = await BertModel.fromPretrained(dir);
  const r = await m2.trainStep(fixtureBatch(io), { lr: 1e-3, alphaCe: 0.5, alphaTeacher: 0.5, temperature: 2 }, teacher);
  t.true(Math.abs(r.distilLoss) < 1e-6, `KD ${r.distilLoss}`);
  t.true(Math.abs(r.loss - 0.5 * r.taskLoss) < 1e-6);
  const r2 = await m2.trainStep(fixtureBatch(io), { lr: 1e-3 }, teacher);
  t.true(r2.distilLoss > 0, 'after a step the student differs from the teacher');
  const err: any = await t.throwsAsync(m2.trainStep(fixtureBatch(io), { lr: -1 }));
  t.is(err.code, 'E_INVALID_ARG');
  const noLabels = { ...fixtureBatch(io), labels: undefined };
  const err2: any = await t.throwsAsync(m2.trainStep(noLabels));
  t.regex(err2.message, /labels/);
  for (const x of [m, m2, teacher]) x.dispose();
});

withShared('fixtures/pruning/model')('patched training moves weights and scores; optimizer + RNG state round-trip gives identical next steps', async (t) => {
  const dir = shared('fixtures/pruning/model');
  const io = await readTensors(join(dir, '..', 'io.safetensors'));
  const tmp = tempDir();
  try {
    const cfg = PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 });
    const make = async () => {
      const m = await BertModel.fromPretrained(dir);
      await m.patch(cfg);
      return m;
    };
    const a = await make();
    const opts = { lr: 1e-3, maskLr: 1e-2, regularization: 'l1' as const, lambda: 1, threshold: 0.05, attentionLambda: 1, denseLambda: 0.25 };
    native().manualSeed(1);
    for (let i = 0; i < 3; i++) await a.trainStep(fixtureBatch(io), opts);
    const scores = a.stateDict()['bert.encoder.layer.0.intermediate.dense.mask_module.context_modules.0.mask_scores'].data as Float32Array;
    t.true(scores.some((x) => x !== 0), 'scores moved');
    await a.save(tmp.path);
    await a.saveTrainingState(tmp.path);
    const next = [];
    for (let i = 0; i < 2; i++) next.push((await a.trainStep(fixtureBatch(io), opts)).loss);
    const b = await BertModel.fromPretrained(tmp.path);
    t.true(b.patched);
    await b.loadTrainingState(tmp.path);
    const resumed = [];
    for (let i = 0; i < 2; i++) resumed.push((await b.trainStep(fixtureBatch(io), opts)).loss);
    t.deepEqual(resumed, next, 'a resumed run takes exactly the same steps');
    const sa = a.stateDict();
    const sb = b.stateDict();
    for (const k of Object.keys(sa)) t.is(maxAbsDiff(sa[k].data as Float32Array, sb[k].data as Float32Array), 0, k);
    a.dispose();
    b.dispose();
  } finally {
    tmp.cleanup();
  }
});

withShared('fixtures/bert-tiny-cls')('one backward: every gradient of bert-tiny-cls equals transformers\' (41 parameters)', async (t) => {
  const dir = shared('fixtures/bert-tiny-cls');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const m = await BertModel.fromPretrained(dir);
  const g = await m.gradients(fixtureBatch(io));
  let worst = 0;
  let n = 0;
  for (const [k, v] of Object.entries(io)) {
    if (!k.startsWith('grad.')) continue;
    const name = k.slice(5);
    worst = Math.max(worst, maxAbsDiff(g.grads[name].data as Float32Array, v.data as Float32Array));
    n++;
  }
  t.is(n, 41);
  t.log(`${n} gradients, max |diff| ${worst.toExponential(2)}`);
  t.true(worst < 1e-6);
  // padding_idx: the [PAD] row of word_embeddings gets no gradient.
  const we = g.grads['bert.embeddings.word_embeddings.weight'];
  const hidden = we.shape[1];
  t.true(Array.from((we.data as Float32Array).subarray(0, hidden)).every((x) => x === 0));
  m.dispose();
});

// Reported as skipped, saying why, on a CPU without the bf16 kernels (AVX-512 BF16).
const withBf16 = native().buildInfo().quantKernels.bf16 === 'none' ? skipped('this CPU has no bf16 kernels (quantKernels.bf16: none)') : withShared('fixtures/bert-tiny-cls');

withBf16('bf16 mixed precision: the same three steps within bf16 rounding of fp32; fp32 master weights; a bad option refused', async (t) => {
  const dir = shared('fixtures/bert-tiny-cls');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const fp32 = await BertModel.fromPretrained(dir);
  const bf16 = await BertModel.fromPretrained(dir);
  try {
    for (let i = 0; i < 3; i++) {
      const a = await fp32.trainStep(fixtureBatch(io), { lr: 1e-3, weightDecay: 0.01 });
      const b = await bf16.trainStep(fixtureBatch(io), { lr: 1e-3, weightDecay: 0.01, mixedPrecision: 'bf16' });
      // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per operand): losses and gradient norms agree to
      // about 1%, not to fp32's 1e-6.
      t.log(`step ${i}: loss ${a.loss.toFixed(6)} vs ${b.loss.toFixed(6)}, grad norm ${a.gradNorm.toFixed(5)} vs ${b.gradNorm.toFixed(5)}`);
      t.true(Math.abs(a.loss - b.loss) <= 1e-2 * Math.abs(a.loss), `loss ${a.loss} vs ${b.loss}`);
      t.true(Math.abs(a.gradNorm - b.gradNorm) <= 3e-2 * a.gradNorm, `grad norm ${a.gradNorm} vs ${b.gradNorm}`);
    }
    // The weights stay fp32 and move as fp32's do, within what bf16 products change in the gradients.
    const sa = fp32.stateDict();
    const sb = bf16.stateDict();
    let worst = 0;
    for (const [k, x] of Object.entries(sa)) {
      t.is(sb[k].dtype, 'F32', k);
      worst = Math.max(worst, maxAbsDiff(x.data as Float32Array, sb[k].data as Float32Array));
    }
    t.log(`parameters after 3 steps: max |bf16 - fp32| ${worst.toExponential(2)} (each step moves a weight by up to lr = 1e-3)`);
    t.true(worst < 3e-3);
    await t.throwsAsync(bf16.trainStep(fixtureBatch(io), { mixedPrecision: 'fp16' as 'bf16' }), { message: /options\.mixedPrecision/, code: 'E_INVALID_ARG' });
  } finally {
    fp32.dispose();
    bf16.dispose();
  }
});
