/**
 * The CPU inference kernels (native/fast/fast_cpu.h) against libtorch's ops, which stay the reference: the same
 * model and batch through both paths (setFastKernels on/off) must agree within 1e-5, on geometries that hit
 * every edge of the kernels (panel and row remainders, odd head sizes, per-layer widths, padding, batch > 1,
 * GELU and ReLU, QA and classification), after weights change, and with two models running at once.
 */
import test from 'ava';
import { join } from 'node:path';
import { BertConfigJson, BertModel } from '../../lib/model/model';
import type { ModelConfigJson } from '../../lib/model/model';
import { buildInfo, setFastKernels } from '../../lib/index';
import { maxAbsDiff, tempDir, writeSafetensorsFile } from '../helpers';

const info = buildInfo();
const HAVE = info.cpuKernels !== 'none';
if (!HAVE) console.log(`fast-kernels: this CPU has neither AVX-512 nor AVX2+FMA (${info.cpuKernels}); kernel tests skip`);
const kernelTest = HAVE ? test.serial : test.skip;

function rng(seed: number) {
  let x = seed;
  return () => {
    x = (x * 48271) % 2147483647;
    return x / 2147483647;
  };
}

function makeBatch(n: number, s: number, vocab: number, seed: number, padded: boolean) {
  const r = rng(seed);
  const inputIds = new Int32Array(n * s).map(() => 1 + Math.floor(r() * (vocab - 1)));
  const attentionMask = new Int32Array(n * s).fill(1);
  const tokenTypeIds = new Int32Array(n * s);
  for (let b = 0; b < n; ++b) {
    const len = padded ? Math.max(1, s - b * Math.ceil(s / (n + 1))) : s;
    for (let i = len; i < s; ++i) attentionMask[b * s + i] = 0;
    for (let i = Math.floor(len / 2); i < len; ++i) tokenTypeIds[b * s + i] = 1;
  }
  return { inputIds, attentionMask, tokenTypeIds, batchSize: n, seqLen: s };
}

async function bothPaths(m: BertModel, batch: ReturnType<typeof makeBatch>) {
  setFastKernels(true);
  const fast = await m.forward(batch, { hiddenStates: true });
  setFastKernels(false);
  const ref = await m.forward(batch, { hiddenStates: true });
  setFastKernels(true);
  let worst = 0;
  for (const name of Object.keys(ref)) {
    if (name === 'loss') continue;
    worst = Math.max(worst, maxAbsDiff(fast[name].data as Float32Array, ref[name].data as Float32Array));
  }
  return { worst, fast, ref };
}

const GEOMETRIES: Array<[string, ModelConfigJson, 'text-classification' | 'question-answering']> = [
  // head size 16, FFN 100 (two panels and a remainder of 4 at AVX-512's 48 columns), 5 heads
  ['gelu, 5 heads of 16, FFN 100', { vocab_size: 300, hidden_size: 80, num_hidden_layers: 2, num_attention_heads: 5, intermediate_size: 100, max_position_embeddings: 160 }, 'text-classification'],
  // a compact model: per-layer heads and widths, one layer down to 1 head and 7 FFN units
  ['compact per-layer sizes, relu, QA', { vocab_size: 300, hidden_size: 96, num_hidden_layers: 3, num_attention_heads: 6, intermediate_size: 200, max_position_embeddings: 160, hidden_act: 'relu', pruned_heads: { 0: [1, 4], 2: [0, 1, 2, 3, 5] }, intermediate_sizes: [200, 61, 7] }, 'question-answering'],
  // head size 12 (scale 1/sqrt(12) is not a power of two), hidden 36
  ['head size 12', { vocab_size: 128, hidden_size: 36, num_hidden_layers: 1, num_attention_heads: 3, intermediate_size: 50, max_position_embeddings: 160, layer_norm_eps: 1e-7 }, 'text-classification'],
  // the other families: the same layer, their own embeddings and heads
  ['DistilBERT QA, per-layer heads', { model_type: 'distilbert', vocab_size: 300, dim: 64, n_layers: 2, n_heads: 4, hidden_dim: 90, max_position_embeddings: 160, pruned_heads: { 1: [0, 2] } }, 'question-answering'],
  ['RoBERTa classification', { model_type: 'roberta', vocab_size: 300, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, max_position_embeddings: 162, type_vocab_size: 1, layer_norm_eps: 1e-5 }, 'text-classification'],
];

for (const [name, config, task] of GEOMETRIES) {
  kernelTest(`${name}: kernels equal libtorch's ops within 1e-5`, async (t) => {
    const m = await BertModel.fromConfig({ ...config, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, dropout: 0, attention_dropout: 0 }, { task, seed: 5 });
    try {
      for (const [n, s, padded] of [[1, 1, false], [1, 7, false], [3, 33, true], [2, 130, true], [4, 16, false]] as const) {
        const batch = makeBatch(n, s, config.vocab_size, n * 100 + s, padded);
        // RoBERTa has one token type.
        if (m.dimensions.typeVocabSize < 2) batch.tokenTypeIds.fill(0);
        const { worst, fast } = await bothPaths(m, batch);
        t.log(`${name} ${n}x${s}${padded ? ' padded' : ''}: max |fast - libtorch| ${worst.toExponential(2)} over ${Object.keys(fast).length} outputs`);
        t.true(worst < 1e-5, `${n}x${s}: ${worst}`);
      }
    } finally {
      m.dispose();
    }
  });
}

kernelTest('classification of padded batches runs packed (no padding rows) and equals libtorch within 1e-5', async (t) => {
  const config: BertConfigJson = { vocab_size: 300, hidden_size: 96, num_hidden_layers: 3, num_attention_heads: 6, intermediate_size: 150, max_position_embeddings: 160, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, num_labels: 3, pruned_heads: { 1: [2, 5] }, intermediate_sizes: [150, 40, 97] };
  const m = await BertModel.fromConfig(config, { task: 'text-classification', seed: 8 });
  try {
    for (const [n, s] of [[5, 40], [8, 128], [2, 3]] as const) {
      const batch = { ...makeBatch(n, s, 300, n + s, true), labels: Int32Array.from({ length: n }, (_, i) => i % 3) };
      setFastKernels(true);
      const fast = await m.forward(batch);
      setFastKernels(false);
      const ref = await m.forward(batch);
      setFastKernels(true);
      const d = maxAbsDiff(fast.logits.data as Float32Array, ref.logits.data as Float32Array);
      const dl = Math.abs((fast.loss.data as Float32Array)[0] - (ref.loss.data as Float32Array)[0]);
      t.log(`${n}x${s} padded: max |packed - libtorch| logits ${d.toExponential(2)}, loss ${dl.toExponential(2)}`);
      t.true(d < 1e-5 && dl < 1e-5, `${d} ${dl}`);
      // A mask with a hole (not padding at the end) is not packed: the padded kernels run it, same answer.
      const holed = { ...batch, attentionMask: batch.attentionMask.slice() };
      holed.attentionMask[1] = 0;
      setFastKernels(true);
      const f2 = await m.forward(holed);
      setFastKernels(false);
      const r2 = await m.forward(holed);
      setFastKernels(true);
      t.true(maxAbsDiff(f2.logits.data as Float32Array, r2.logits.data as Float32Array) < 1e-5);
    }
  } finally {
    m.dispose();
  }
});

kernelTest('packed weights follow weight changes (loadState) and both paths agree after', async (t) => {
  const tmp = tempDir();
  const config: BertConfigJson = { vocab_size: 200, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 96, max_position_embeddings: 64, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
  const m = await BertModel.fromConfig(config, { seed: 1 });
  try {
    const batch = makeBatch(2, 20, 200, 3, true);
    const before = await m.forward(batch);
    const r = rng(9);
    const w = new Float32Array(96 * 64).map(() => (r() - 0.5) * 0.2);
    const path = join(tmp.path, 'w.safetensors');
    writeSafetensorsFile(path, { 'bert.encoder.layer.1.intermediate.dense.weight': { dtype: 'F32', shape: [96, 64], data: w } });
    await m.loadState(path, { strict: false });
    const { worst, fast } = await bothPaths(m, batch);
    t.true(worst < 1e-5, String(worst));
    t.true(maxAbsDiff(fast.logits.data as Float32Array, before.logits.data as Float32Array) > 1e-4, 'the new weights are used');
  } finally {
    m.dispose();
    tmp.cleanup();
  }
});

kernelTest('two models forwarding at once give the results each gives alone', async (t) => {
  const a = await BertModel.fromConfig({ vocab_size: 300, hidden_size: 96, num_hidden_layers: 2, num_attention_heads: 6, intermediate_size: 150, max_position_embeddings: 140 }, { seed: 2 });
  const b = await BertModel.fromConfig({ vocab_size: 300, hidden_size: 64, num_hidden_layers: 3, num_attention_heads: 2, intermediate_size: 70, max_position_embeddings: 140 }, { seed: 3 });
  try {
    const batch = makeBatch(4, 128, 300, 11, true);
    const aloneA = await a.forward(batch);
    const aloneB = await b.forward(batch);
    const runs = await Promise.all([0, 1, 2, 3].map((i) => (i % 2 ? b : a).forward(batch)));
    for (let i = 0; i < runs.length; ++i) {
      const alone = i % 2 ? aloneB : aloneA;
      t.is(maxAbsDiff(runs[i].logits.data as Float32Array, alone.logits.data as Float32Array), 0);
    }
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('buildInfo names the CPU kernels and whether they are on', (t) => {
  t.true(['avx512', 'avx2', 'none'].includes(info.cpuKernels));
  t.is(typeof info.fastKernels, 'boolean');
  t.throws(() => setFastKernels('yes' as unknown as boolean), { message: /Expected a boolean for on/ });
});

// The AVX2 kernels (4 x 24 micro-kernel, masked loads from a table) are what CPUs without AVX-512 get: run the
// same comparison in a child process that asks for them.
(HAVE ? test : test.skip)('the AVX2 kernel set (BLOCKPRUNE_CPU_KERNELS=avx2) equals libtorch within 1e-5 too', async (t) => {
  const script = `
    const { BertModel } = require(${JSON.stringify(join(__dirname, '..', '..', 'lib', 'model', 'model.js'))});
    const { buildInfo, setFastKernels } = require(${JSON.stringify(join(__dirname, '..', '..', 'lib', 'index.js'))});
    (async () => {
      const m = await BertModel.fromConfig({ vocab_size: 300, hidden_size: 96, num_hidden_layers: 2, num_attention_heads: 6, intermediate_size: 101, max_position_embeddings: 140, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, pruned_heads: { 1: [0, 3] } }, { seed: 4 });
      const n = 3, s = 45, ids = new Int32Array(n * s).map((_, i) => 1 + ((i * 7919) % 299)), mask = new Int32Array(n * s).fill(1);
      for (let i = 30; i < s; ++i) mask[2 * s + i] = 0;
      const batch = { inputIds: ids, attentionMask: mask, batchSize: n, seqLen: s };
      const fast = await m.forward(batch, { hiddenStates: true });
      setFastKernels(false);
      const ref = await m.forward(batch, { hiddenStates: true });
      let worst = 0;
      for (const k of Object.keys(ref)) for (let i = 0; i < ref[k].data.length; ++i) worst = Math.max(worst, Math.abs(fast[k].data[i] - ref[k].data[i]));
      console.log(JSON.stringify({ kernels: buildInfo().cpuKernels, worst }));
      m.dispose();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, BLOCKPRUNE_CPU_KERNELS: 'avx2' }, encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop()!);
  t.log(`kernels ${r.kernels}: max |fast - libtorch| ${r.worst.toExponential(2)}`);
  t.is(r.kernels, 'avx2');
  t.true(r.worst > 0 && r.worst < 1e-5, String(r.worst));
});
