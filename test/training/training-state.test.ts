/**
 * A model's training state (AdamW moments; the dropout generator travels with it in checkpoints) is a native
 * object of its own, one per model: it serves only its model, refuses a disposed one, keeps two models' moments
 * apart, and restores a checkpoint all or nothing.
 */
import test from 'ava';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { native } from '../../lib/runtime/native';
import '../../lib/training/model-training';
import { maxAbsDiff, tempDir, writeSafetensorsFile } from '../helpers';
import { TINY } from '../toy';

const CLS = { ...TINY, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
const batch = () => ({
  inputIds: Int32Array.of(1, 9, 7, 12, 2, 1, 30, 40, 50, 2),
  attentionMask: Int32Array.of(1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
  batchSize: 2,
  seqLen: 5,
  labels: Int32Array.of(1, 0),
});
const OPTS = { lr: 1e-2, weightDecay: 0.01 };

/** Every parameter's largest difference between two models. */
function weightsDiff(a: BertModel, b: BertModel): number {
  const sa = a.stateDict();
  const sb = b.stateDict();
  return Math.max(...Object.keys(sa).map((k) => maxAbsDiff(sa[k].data as Float32Array, sb[k].data as Float32Array)));
}

test('the native training state serves only the model it was made for, and refuses a disposed one', async (t) => {
  const h1 = await native().createModel(JSON.stringify(CLS), { seed: 1 });
  const h2 = await native().createModel(JSON.stringify(CLS), { seed: 1 });
  const State = native().NativeTrainingState;
  const state = new State(h1);
  const codeOf = async (f: () => Promise<unknown>) => {
    try {
      await f();
      return 'ok';
    } catch (e) {
      return `${(e as Error).constructor.name} ${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
  };
  t.regex(await codeOf(() => state.trainStep(h1, batch(), OPTS)), /^ok$/);
  t.regex(await codeOf(() => state.trainStep(h2, batch(), OPTS)), /^RangeError E_INVALID_ARG: .*the model this training state was created for/);
  t.regex(await codeOf(() => state.resetOptimizer(h2)), /^RangeError E_INVALID_ARG/);
  t.regex(await codeOf(() => state.save(h2, '/tmp/never-written')), /^RangeError E_INVALID_ARG/);
  t.regex(await codeOf(() => state.trainStep({} as never, batch(), OPTS)), /^TypeError E_INVALID_ARG: Expected a NativeModel for model/);
  t.regex(await codeOf(async () => new State({} as never)), /^TypeError E_INVALID_ARG: Expected a NativeModel for model/);
  // A model cannot be its own teacher (the student is the state's model).
  t.regex(await codeOf(() => state.trainStep(h1, batch(), OPTS, h1)), /^RangeError E_INVALID_ARG: the teacher must be another model/);
  h1.dispose();
  for (const call of [() => state.trainStep(h1, batch(), OPTS), () => state.resetOptimizer(h1), () => state.load(h1, '/tmp/none')])
    t.regex(await codeOf(call), /^Error E_DISPOSED/);
  t.regex(await codeOf(async () => new State(h1)), /^Error E_DISPOSED/);
  // A state for the other model works as ever.
  t.regex(await codeOf(() => new State(h2).trainStep(h2, batch(), OPTS)), /^ok$/);
  h2.dispose();
});

test('each model has its own moments: another model\'s steps do not change them; resetOptimizer forgets them', async (t) => {
  const tmp = tempDir();
  const a = await BertModel.fromConfig(CLS, { seed: 2 });
  const b = await BertModel.fromConfig(CLS, { seed: 2 });
  try {
    const first = await a.trainStep(batch(), OPTS);
    await a.trainStep(batch(), OPTS);
    const bFirst = await b.trainStep(batch(), OPTS);
    t.is(bFirst.loss, first.loss);
    t.is(bFirst.gradNorm, first.gradNorm);
    // a's weights in a fresh model (fresh moments) take the step a takes once reset.
    await a.save(tmp.path);
    const fresh = await BertModel.fromPretrained(tmp.path);
    await a.resetOptimizer();
    const ra = await a.trainStep(batch(), OPTS);
    const rf = await fresh.trainStep(batch(), OPTS);
    t.is(ra.loss, rf.loss);
    t.is(weightsDiff(a, fresh), 0);
    fresh.dispose();
  } finally {
    a.dispose();
    b.dispose();
    tmp.cleanup();
  }
});

test('loadTrainingState is all or nothing: a bad generator file leaves the moments and the generator as they were', async (t) => {
  const tmp = tempDir();
  const a = await BertModel.fromConfig(CLS, { seed: 3 });
  const twin = await BertModel.fromConfig(CLS, { seed: 3 });
  try {
    const good = join(tmp.path, 'good');
    const bad = join(tmp.path, 'bad');
    mkdirSync(good);
    mkdirSync(bad);
    for (const m of [a, twin]) await m.trainStep(batch(), OPTS);
    await a.saveTrainingState(good);
    // Two more steps each: their moments are no longer the checkpoint's.
    for (const m of [a, twin]) for (let i = 0; i < 2; i++) await m.trainStep(batch(), OPTS);
    // A readable optimizer file beside a generator file that lacks rank 1's state / holds no generator state.
    copyFileSync(join(good, 'optimizer.safetensors'), join(bad, 'optimizer.safetensors'));
    writeSafetensorsFile(join(bad, 'rng.safetensors'), { cpu: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) } });
    const before = native().rngState();
    const noRank: any = await t.throwsAsync(a.loadTrainingState(good, 1));
    t.is(noRank.code, 'E_BAD_CHECKPOINT');
    t.regex(noRank.message, /no generator state 'cpu\.rank1'/);
    const notState: any = await t.throwsAsync(a.loadTrainingState(bad));
    t.is(notState.code, 'E_BAD_CHECKPOINT');
    t.regex(notState.message, /not a generator state/);
    t.deepEqual(native().rngState(), before, 'the generator is untouched');
    // The moments too: a and its twin take the same next step.
    const ra = await a.trainStep(batch(), OPTS);
    const rt = await twin.trainStep(batch(), OPTS);
    t.is(ra.loss, rt.loss);
    t.is(weightsDiff(a, twin), 0);
    // And the good checkpoint still loads.
    await a.loadTrainingState(good);
  } finally {
    a.dispose();
    twin.dispose();
    tmp.cleanup();
  }
});
