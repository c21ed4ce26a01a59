/**
 * ONNX export: every fixture model and random compact models (per-layer heads, a layer with no head, odd
 * FFN widths, each task and several activations) are exported, run in onnxruntime-node on several batch /
 * sequence shapes with padding, and compared with our own forward. Also: names and dynamic axes of the
 * file, the opset 14 (decomposed LayerNorm) variant, and the refusal of a patched model.
 */
import test, { ExecutionContext } from 'ava';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BertConfigJson, BertModel, Task } from '../../lib/model/model';
import { native, TensorData } from '../../lib/runtime/native';
import { exportOnnx, OnnxExportOptions } from '../../lib/model/onnx';
import { PruningConfig } from '../../lib/pruning/config';
import '../../lib/pruning/model-pruning';
import { maxAbsDiff, shared, tempDir, withShared, writeSafetensorsFile } from '../helpers';
import { feeds, type OnnxBatch } from './onnx-feeds';

const ATOL = 1e-4;
// The machine is small and shared: one thread for each runtime.
native().setNumThreads(1);
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** A seeded uniform [0, 1) generator and a standard normal from it. */
function rng(seed: number) {
  let x = seed % 2147483647 || 1;
  const uniform = () => {
    x = (x * 48271) % 2147483647;
    return x / 2147483647;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

type Batch = OnnxBatch;

/** Random ids and token types; rows padded on the right (every other row shorter), row 2 left-padded. */
function makeBatch(batchSize: number, seqLen: number, vocab: number, typeVocab: number, seed: number): Batch {
  const r = rng(seed);
  const n = batchSize * seqLen;
  const inputIds = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r.uniform() * vocab)));
  const tokenTypeIds = BigInt64Array.from({ length: n }, (_, i) => BigInt((i % seqLen) >= seqLen / 2 ? Math.min(1, typeVocab - 1) : 0));
  const attentionMask = new BigInt64Array(n);
  for (let b = 0; b < batchSize; b++) {
    const len = b % 2 === 1 ? Math.max(1, seqLen - 1 - Math.floor(r.uniform() * seqLen)) : seqLen;
    for (let s = 0; s < seqLen; s++) {
      const on = b === 2 ? s >= seqLen - len : s < len;
      attentionMask[b * seqLen + s] = on ? 1n : 0n;
    }
  }
  return { inputIds, attentionMask, tokenTypeIds, batchSize, seqLen };
}

function expectedOutputs(task: Task, extras: boolean, hasPooler = true): string[] {
  const base = task === 'text-classification' ? ['logits'] : task === 'question-answering' ? ['start_logits', 'end_logits'] : [];
  const more = task === 'bare' || extras ? ['last_hidden_state', ...(hasPooler && task !== 'question-answering' ? ['pooler_output'] : [])] : [];
  return [...base, ...more];
}

/**
 * Exports `model`, checks the file's names and dynamic axes, runs it on every batch and compares each output
 * with model.forward. Returns the largest difference seen.
 */
async function checkModel(
  t: ExecutionContext,
  label: string,
  model: BertModel,
  batches: Batch[],
  options: OnnxExportOptions & { graphOptimizationLevel?: 'disabled' | 'all' } = {},
): Promise<number> {
  const tmp = tempDir('blockprune-onnx-');
  try {
    const { graphOptimizationLevel, ...exportOptions } = options;
    const file = join(tmp.path, 'sub', 'model.onnx');
    const report = await exportOnnx(model, file, exportOptions);
    const task = model.task;
    const extras = exportOptions.extras === true;
    const H = model.dimensions.hiddenSize;
    const tokenTypes = model.structure.tokenTypes;
    const names = expectedOutputs(task, extras, model.parameterShapes.some(([n]) => n.endsWith('pooler.dense.weight')));
    t.deepEqual(report.outputs, names, `${label}: outputs in the report`);
    t.is(report.opset, exportOptions.opset ?? 17);

    const session = await ort.InferenceSession.create(file, { ...SESSION, graphOptimizationLevel: graphOptimizationLevel ?? 'all' });
    try {
      t.deepEqual([...session.inputNames], ['input_ids', 'attention_mask', ...(tokenTypes ? ['token_type_ids'] : [])], `${label}: input names`);
      t.deepEqual([...session.outputNames], names, `${label}: output names`);
      for (const m of session.inputMetadata) {
        t.true(m.isTensor);
        if (m.isTensor) {
          t.is(m.type, 'int64', `${label}: ${m.name} type`);
          t.deepEqual([...m.shape], ['batch', 'sequence'], `${label}: ${m.name} dims`);
        }
      }
      const numLabels = model.dimensions.numLabels;
      const outDims: Record<string, Array<number | string>> = {
        logits: ['batch', numLabels],
        start_logits: ['batch', 'sequence'],
        end_logits: ['batch', 'sequence'],
        last_hidden_state: ['batch', 'sequence', H],
        pooler_output: ['batch', H],
      };
      for (const m of session.outputMetadata) {
        if (m.isTensor) {
          t.is(m.type, 'float32');
          t.deepEqual([...m.shape], outDims[m.name], `${label}: ${m.name} dims`);
        } else t.fail(`${label}: ${m.name} is not a tensor`);
      }

      let worst = 0;
      const perOutput: Record<string, number> = {};
      for (const b of batches) {
        const ours = await model.forward(b, { extras });
        const theirs = await session.run(feeds(b, tokenTypes));
        for (const name of names) {
          const want = ours[name];
          const got = theirs[name];
          t.truthy(want, `${label}: forward has ${name}`);
          t.deepEqual([...got.dims], want.shape, `${label}: ${name} shape for [${b.batchSize}, ${b.seqLen}]`);
          const d = maxAbsDiff(got.data as Float32Array, want.data as Float32Array);
          perOutput[name] = Math.max(perOutput[name] ?? 0, d);
          worst = Math.max(worst, d);
        }
      }
      const shapes = batches.map((b) => `${b.batchSize}x${b.seqLen}`).join(', ');
      t.log(
        `${label}: opset ${report.opset}, ${report.nodes} nodes, ${report.bytes} bytes; shapes ${shapes}; max |onnx - forward| ` +
          Object.entries(perOutput).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', '),
      );
      t.true(worst <= ATOL, `${label}: max |diff| ${worst} > ${ATOL}`);
      return worst;
    } finally {
      await session.release();
    }
  } finally {
    tmp.cleanup();
  }
}

function standardBatches(model: BertModel, seed: number): Batch[] {
  const d = model.dimensions;
  const vocab = d.vocabSize;
  const types = Math.max(1, d.typeVocabSize);
  const maxPos = d.maxSequenceLength;
  return [
    makeBatch(1, 1, vocab, types, seed),
    makeBatch(2, 7, vocab, types, seed + 1),
    makeBatch(3, 16, vocab, types, seed + 2),
    makeBatch(4, Math.min(maxPos, 40), vocab, types, seed + 3),
    makeBatch(2, maxPos, vocab, types, seed + 4),
  ];
}

async function fixtureBatch(path: string): Promise<{ batch: Batch; io: Record<string, TensorData> }> {
  const io = (await native().readSafetensors(path)).tensors;
  const [batchSize, seqLen] = io.input_ids.shape;
  return {
    io,
    batch: {
      inputIds: io.input_ids.data as BigInt64Array,
      attentionMask: io.attention_mask.data as BigInt64Array,
      // DistilBERT's fixtures have none.
      tokenTypeIds: (io.token_type_ids?.data as BigInt64Array | undefined) ?? new BigInt64Array(batchSize * seqLen),
      batchSize,
      seqLen,
    },
  };
}

// ---- fixtures --------------------------------------------------------------------------------------

for (const [name, ioPath, extras] of [
  ['bert-tiny-cls', 'bert-tiny-cls/io.safetensors', false],
  ['bert-tiny-cls', 'bert-tiny-cls/io.safetensors', true],
  ['bert-tiny-qa', 'bert-tiny-qa/io.safetensors', false],
  ['bert-tiny-bare', 'bert-tiny-bare/io.safetensors', false],
  ['bert-tiny-pruned-heads', 'bert-tiny-pruned-heads/io.safetensors', false],
  ['pruning/hybrid/compact', 'pruning/io.safetensors', false],
  ['distilbert-tiny-cls', 'distilbert-tiny-cls/io.safetensors', true],
  ['distilbert-tiny-qa', 'distilbert-tiny-qa/io.safetensors', false],
  ['distilbert-tiny-cls-pruned', 'distilbert-tiny-cls-pruned/io.safetensors', false],
  ['roberta-tiny-cls', 'roberta-tiny-cls/io.safetensors', true],
  ['roberta-tiny-qa', 'roberta-tiny-qa/io.safetensors', false],
  ['xlmr-tiny-cls', 'xlmr-tiny-cls/io.safetensors', false],
  ['pruning/roberta-hybrid/compact', 'pruning/roberta-hybrid/io.safetensors', false],
] as const) {
  withShared(`fixtures/${name}`, `fixtures/${ioPath}`)(`fixture ${name}${extras ? ' (extras)' : ''}: ONNX outputs match forward`, async (t) => {
    const dir = shared(`fixtures/${name}`);
    const model = await BertModel.fromPretrained(dir);
    try {
      const { batch, io } = await fixtureBatch(shared(`fixtures/${ioPath}`));
      const batches = [batch, ...standardBatches(model, 100)];
      await checkModel(t, `${name}${extras ? ' (extras)' : ''}`, model, batches, { extras });
      // The fixture's HF outputs too, where it has them (same tolerance).
      const session = await ort.InferenceSession.create(await exportToTemp(model, { extras: true }), SESSION);
      try {
        const out = await session.run(feeds(batch, model.structure.tokenTypes));
        for (const k of ['logits', 'start_logits', 'end_logits', 'last_hidden_state', 'pooler_output']) {
          if (!io[k] || !out[k]) continue;
          const d = maxAbsDiff(out[k].data as Float32Array, io[k].data as Float32Array);
          t.log(`${name}: ${k} vs HF transformers: max |diff| ${d.toExponential(2)}`);
          t.true(d <= ATOL, `${k} vs HF: ${d}`);
        }
      } finally {
        await session.release();
      }
    } finally {
      model.dispose();
    }
  });
}

const exportDirs: Array<{ cleanup(): void }> = [];
async function exportToTemp(model: BertModel, options: OnnxExportOptions = {}): Promise<string> {
  const tmp = tempDir('blockprune-onnx-');
  exportDirs.push(tmp);
  const file = join(tmp.path, 'model.onnx');
  await exportOnnx(model, file, options);
  return file;
}
test.after.always(() => {
  for (const d of exportDirs) d.cleanup();
});

// ---- random compact models -------------------------------------------------------------------------

/** heads [4, 1, 0] (of 4) and FFN widths [100, 7, 33]. */
function compactConfig(extra: Partial<BertConfigJson> = {}): BertConfigJson {
  return {
    vocab_size: 97,
    hidden_size: 32,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    intermediate_size: 64,
    intermediate_sizes: [100, 7, 33],
    pruned_heads: { '1': [0, 2, 3], '2': [0, 1, 2, 3] },
    max_position_embeddings: 48,
    type_vocab_size: 3,
    layer_norm_eps: 1e-7,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    ...extra,
  };
}

/**
 * Replaces every parameter with seeded random values of a useful scale (HF's init has zero biases and unit
 * LayerNorms, which would hide mistakes in them): loaded through a safetensors file.
 */
async function randomizeWeights(model: BertModel, seed: number, dir: string): Promise<void> {
  const r = rng(seed);
  const tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of model.parameterShapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 2 ? Math.max(1, shape[1]) : 1;
    const gen = name.includes('LayerNorm.weight')
      ? () => 1 + 0.3 * r.normal()
      : name.includes('embeddings')
        ? () => 0.8 * r.normal()
        : shape.length === 2
          ? () => (1.2 * r.normal()) / Math.sqrt(fanIn)
          : () => 0.3 * r.normal();
    const data = Float32Array.from({ length: n }, gen);
    tensors[name] = { dtype: 'F32', shape, data };
  }
  const file = join(dir, `random-${seed}.safetensors`);
  writeSafetensorsFile(file, tensors);
  await model.loadState(file);
}

async function randomCompact(t: ExecutionContext, task: Task, seed: number, extra: Partial<BertConfigJson> = {}): Promise<BertModel> {
  const model = await BertModel.fromConfig(compactConfig(extra), { task, seed });
  const tmp = tempDir();
  try {
    await randomizeWeights(model, seed, tmp.path);
  } finally {
    tmp.cleanup();
  }
  t.deepEqual(
    model.layers.map((l) => [l.heads, l.intermediateSize]),
    (extra.intermediate_sizes ?? [100, 7, 33]).map((w, i) => [[4, 1, 0][i], w]),
  );
  return model;
}

for (const task of ['text-classification', 'question-answering', 'bare'] as const) {
  for (const act of ['gelu', 'relu']) {
    test(`random compact ${task} (heads 4/1/0, FFN 100/7/33, ${act}): ONNX outputs match forward`, async (t) => {
      const model = await randomCompact(t, task, 17, { hidden_act: act });
      try {
        await checkModel(t, `compact ${task} ${act}`, model, standardBatches(model, 7));
      } finally {
        model.dispose();
      }
    });
  }
}

for (const act of ['gelu_new', 'silu', 'tanh']) {
  test(`random compact classifier with hidden_act ${act}`, async (t) => {
    const model = await randomCompact(t, 'text-classification', 23, { hidden_act: act });
    try {
      await checkModel(t, `compact cls ${act}`, model, standardBatches(model, 9), { extras: true });
    } finally {
      model.dispose();
    }
  });
}

test('random compact: opset 14 (LayerNorm decomposed), unoptimized graph, FFN width 0, extras', async (t) => {
  const model = await randomCompact(t, 'text-classification', 31, { intermediate_sizes: [100, 0, 33] });
  try {
    const batches = standardBatches(model, 11);
    await checkModel(t, 'compact cls opset 14', model, batches, { opset: 14, extras: true });
    await checkModel(t, 'compact cls opset 15', model, batches, { opset: 15 });
    await checkModel(t, 'compact cls opset 17, no ORT graph optimizations', model, batches, { graphOptimizationLevel: 'disabled', extras: true });
  } finally {
    model.dispose();
  }
});

test('the file: metadata, dynamic axes beyond the shapes of the export, bad options', async (t) => {
  const model = await randomCompact(t, 'question-answering', 41);
  const tmp = tempDir('blockprune-onnx-');
  try {
    const file = join(tmp.path, 'qa.onnx');
    const report = await exportOnnx(model, file, { metadata: { source: 'test' } });
    t.is(report.irVersion, 8);
    t.deepEqual(report.inputs, ['input_ids', 'attention_mask', 'token_type_ids']);
    t.deepEqual(report.outputs, ['start_logits', 'end_logits']);
    const session = await ort.InferenceSession.create(file, SESSION);
    try {
      // Two runs with other batch and sequence sizes on one session.
      for (const [b, s] of [[5, 3], [1, 48]]) {
        const out = await session.run(feeds(makeBatch(b, s, 97, 3, b * s)));
        t.deepEqual([...out.start_logits.dims], [b, s]);
        t.deepEqual([...out.end_logits.dims], [b, s]);
      }
    } finally {
      await session.release();
    }
    await t.throwsAsync(exportOnnx(model, join(tmp.path, 'x.onnx'), { opset: 13 }), { message: /opset/ });
    await t.throwsAsync(exportOnnx(model, join(tmp.path, 'x.onnx'), { opset: 18 }), { message: /opset/ });
    await t.throwsAsync(exportOnnx(model, join(tmp.path, 'x.onnx'), { metadata: { n: 1 as unknown as string } }), { message: /metadata/ });
    await t.throwsAsync(exportOnnx({} as BertModel, join(tmp.path, 'x.onnx')), { message: /BertModel/ });
  } finally {
    model.dispose();
    tmp.cleanup();
  }
});

// ---- patched models --------------------------------------------------------------------------------

test('a patched model is refused (compile() or compact() first); compiled and compacted ones export', async (t) => {
  const config: BertConfigJson = {
    vocab_size: 128,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 128,
    max_position_embeddings: 32,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  };
  const model = await BertModel.fromConfig(config, { seed: 5 });
  const tmp = tempDir('blockprune-onnx-');
  try {
    await model.patch(PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }));
    t.true(model.patched);
    const err = await t.throwsAsync(exportOnnx(model, join(tmp.path, 'patched.onnx')));
    t.regex(err!.message, /patched/);
    t.regex(err!.message, /compile\(\)/);
    t.regex(err!.message, /compact\(\)/);
    t.is((err as Error & { code?: string }).code, 'E_INVALID_ARG');

    const { model: small } = await model.compact();
    try {
      await checkModel(t, 'compacted from patched', small, standardBatches(small, 3));
    } finally {
      small.dispose();
    }
    await model.compile();
    t.false(model.patched);
    await checkModel(t, 'compiled', model, standardBatches(model, 5));
  } finally {
    model.dispose();
    tmp.cleanup();
  }
});
