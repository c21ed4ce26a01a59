/**
 * The published types: a user's program, written against dist/lib/index.d.ts (what `types` in package.json
 * names), must compile under --strict with the declaration files themselves checked (no skipLibCheck), and
 * misuses must be type errors (each `@ts-expect-error` line fails the compile if it is not one).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/runtime/native';
import { tempDir } from '../helpers';

const ROOT = packageRoot();

const USAGE = (api: string) => `
import * as bp from ${JSON.stringify(api)};
import { BertModel, pipeline, PruningConfig, SparseTrainer, BlockpruneError, exportOnnx, buildReport, formatReport } from ${JSON.stringify(api)};

// true when A and B are the same type (not merely assignable one way).
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function same<A, B>(ok: Same<A, B>): void {
  void ok;
}

async function main(): Promise<void> {
  const classify = await pipeline('text-classification', '/models/cls', { batchSize: 8, maxLength: 128 });
  // Issue 15 (4): the result types are the run-time shapes, exactly (Same<A, B> fails the compile otherwise).
  const label: string = (await classify('a fine film')).label;
  const top2 = await classify('a fine film', { topK: 2 });
  same<typeof top2, bp.ClassificationResult[]>(true);
  const best = await classify({ text: 'a', textPair: 'b' });
  same<typeof best, bp.ClassificationResult>(true);
  const batch1 = await classify(['good', ['a', 'b'], { text: 'c', textPair: 'd' }]);
  same<typeof batch1, bp.ClassificationResult[]>(true);
  const batchK = await classify(['good', 'bad'], { topK: 1 });
  same<typeof batchK, bp.ClassificationResult[][]>(true);
  const someOpts: bp.ClassifyOptions = {};
  const either = await classify('x', someOpts);
  same<typeof either, bp.ClassificationResult | bp.ClassificationResult[]>(true);
  const qa = await pipeline('question-answering', '/models/qa');
  const ans = await qa({ question: 'q?', context: 'c.' });
  same<typeof ans, bp.QAResult>(true);
  const span: [number, number] = [ans.start, ans.end];
  const one = await qa({ question: 'q?', context: 'c.' }, { topK: 1, maxAnswerLength: 15 });
  same<typeof one, bp.QAResult>(true);
  const three = await qa({ question: 'q?', context: 'c.' }, { topK: 3 });
  same<typeof three, bp.QAResult[]>(true);
  const answers = await qa([{ question: 'q?', context: 'c.' }]);
  same<typeof answers, bp.QAResult[]>(true);
  const answersK = await qa([{ question: 'q?', context: 'c.' }], { topK: 2 });
  same<typeof answersK, bp.QAResult[][]>(true);
  const k: number = 2;
  const unknownK = await qa({ question: 'q?', context: 'c.' }, { topK: k });
  same<typeof unknownK, bp.QAResult | bp.QAResult[]>(true);
  const tok = bp.AutoTokenizer.fromDir('/models/cls');
  const enc: bp.BatchEncoded = tok.encodeBatch(['a', 'b c'], { padding: true });

  const model: BertModel = await BertModel.fromPretrained('/models/cls', { device: 'cpu' });
  const out: bp.ForwardOutput = await model.forward({ inputIds: Int32Array.of(101, 102), batchSize: 1, seqLen: 2 });
  const logits = out.logits.data;
  const patch: bp.PatchReport = await model.patch(PruningConfig.hybrid(20));
  await model.setThreshold(0.5);
  const { model: small, report } = await model.compact('dense');
  const params: number = report.parametersAfter;
  const rep: bp.ModelReport = await buildReport(small);
  const text: string = formatReport(rep);
  const onnx: bp.OnnxExportReport = await exportOnnx(small, '/tmp/m.onnx');
  await small.save('/tmp/out');
  small.dispose();
  const info: bp.BuildInfo = bp.buildInfo();
  const kernels: string = info.cpuKernels;
  bp.setNumThreads(2);
  bp.setFastKernels(true);
  const src: bp.AddonSource | undefined = bp.addonSource();
  try {
    await BertModel.fromPretrained('/nope');
  } catch (e) {
    if (e instanceof BlockpruneError) { const code: bp.ErrorCode = e.code; void code; }
  }
  const trainer: typeof SparseTrainer = SparseTrainer;
  const env: bp.DistributedOptions | undefined = bp.ProcessGroup.optionsFromEnv();
  const group: bp.ProcessGroup = await bp.ProcessGroup.init(env ?? { rank: 0, worldSize: 1, backend: 'gloo', timeoutMs: 60_000 });
  const sums: Float64Array = await group.allreduce([1, 2]);
  const ranked: bp.TrainResult = await new SparseTrainer({ model, train: { length: 0, batches: () => [] }, distributed: group }).train();
  const worldSize: number = ranked.worldSize;
  await group.destroy();
  // Pruning and training methods come from their own folders (module augmentation of BertModel): the root's
  // declarations carry them.
  const batch = { inputIds: Int32Array.of(101, 102), batchSize: 1, seqLen: 2, labels: Int32Array.of(0) };
  const masks: Record<string, bp.TensorData> = await model.masks();
  const reg: bp.RegularizationInfo = await model.regularization({ regularization: 'l1', lambda: 1 });
  const filled: number = await model.fillZeros(3);
  const step: bp.TrainStepResult = await model.trainStep(batch, { lr: 1e-4, threshold: 0.1 });
  const grads: bp.Gradients = await model.gradients(batch, { regularization: 'l1' });
  await model.saveTrainingState('/tmp/ckpt');
  await model.loadTrainingState('/tmp/ckpt', 0);
  await model.resetOptimizer();
  await model.syncAcross(group);
  const global: bp.TrainStepResult = await model.trainStep(null, {}, undefined, { group, stop: false });
  void [masks, reg, filled, step.gradNorm, grads.grads, global.stop];
  const launched: bp.LaunchResult = await bp.launch({ nproc: 2, script: 'train.js', args: ['--epochs', '1'] });
  const firstFailure: number | undefined = launched.firstFailure;
  void [label, span, enc, logits, patch, params, text, onnx, kernels, src, trainer, classify.task, qa.task, sums, worldSize, firstFailure];

  // Misuses the types must reject:
  // @ts-expect-error an unknown task
  await pipeline('translation', '/models/x');
  // @ts-expect-error the QA pipeline takes { question, context }
  await qa('just a string');
  // @ts-expect-error one input without topK gives one result, not an array
  (await classify('x')).length;
  // @ts-expect-error topK, not topk
  await classify('x', { topk: 2 });
  // @ts-expect-error topK > 1 gives an array of answers
  (await qa({ question: 'q?', context: 'c.' }, { topK: 2 })).answer;
  // @ts-expect-error padding is 'longest', 'max_length' or a boolean
  tok.encodeBatch(['a'], { padding: 'true' });
  // @ts-expect-error batchSize is a number
  await model.forward({ inputIds: Int32Array.of(1), batchSize: '1', seqLen: 1 });
  // @ts-expect-error setFastKernels takes a boolean
  bp.setFastKernels(1);
  // @ts-expect-error compact() returns { model, report }, not a model
  (await model.compact('dense')).forward;
  // @ts-expect-error the backend is 'gloo' or 'nccl'
  await bp.ProcessGroup.init({ rank: 0, worldSize: 2, backend: 'mpi' });
  // @ts-expect-error a distributed train step needs { group }
  await model.trainStep(null, {}, undefined, {});
  // @ts-expect-error patch() takes a PruningConfig, not its options
  await model.patch({ attentionPruningMethod: 'topK' });
  // @ts-expect-error a train step without a group needs a batch
  await model.trainStep(null, {});
  // @ts-expect-error fillZeros takes a seed
  await model.fillZeros('3');
  // @ts-expect-error the optimizer options are trainStep's, not gradients'
  await model.gradients(batch, { lr: 1 });
}
void main;
`;

test('dist/lib/index.d.ts compiles a user program under --strict, declaration files checked, misuses rejected', (t) => {
  const tmp = tempDir('blockprune-types-');
  try {
    const file = join(tmp.path, 'usage.ts');
    writeFileSync(file, USAGE(join(ROOT, 'dist', 'lib', 'index')));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'commonjs', '--moduleResolution', 'node', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), '--skipLibCheck', 'false', file],
      { cwd: tmp.path, encoding: 'utf8' },
    );
    t.is(r.status, 0, r.stdout + r.stderr);
  } finally {
    tmp.cleanup();
  }
});
