/**
 * The families beside BERT (DistilBERT, RoBERTa, XLM-R): parity with transformers 4.4.2 on the fixtures of
 * ../shared/fixtures (see its README): outputs, every hidden state and attention map, losses, gradients,
 * RoBERTa's positions from input_ids, the pruned DistilBERT, and save/reload in the family's own layout.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import type { ModelConfigJson, ModelFamily } from '../../lib/model/model';
import '../../lib/training/model-training'; // model.gradients()
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, maxAbsDiff, readTensors, shared, tempDir, withShared } from '../helpers';

const ATOL = 1e-5; // fixture README: forward outputs atol 1e-5
const LOSS_ATOL = 1e-6;

/** A fixture's batch: DistilBERT's have no token_type_ids. */
function batchOf(io: Record<string, TensorData>, extra: { positions?: 'in' | 'oob'; labels?: boolean } = {}) {
  const [batchSize, seqLen] = io.input_ids.shape;
  const sfx = extra.positions === 'oob' ? '_oob' : '';
  return {
    inputIds: io.input_ids.data as BigInt64Array,
    attentionMask: io.attention_mask.data as BigInt64Array,
    tokenTypeIds: io.token_type_ids?.data as BigInt64Array | undefined,
    batchSize,
    seqLen,
    labels: extra.labels !== false && io.labels ? (io.labels.data as BigInt64Array) : undefined,
    startPositions: extra.positions ? (io[`start_positions${sfx}`].data as BigInt64Array) : undefined,
    endPositions: extra.positions ? (io[`end_positions${sfx}`].data as BigInt64Array) : undefined,
  };
}

const FORWARD_KEYS = ['last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'attentions.0', 'attentions.1'];

const CASES = [
  { name: 'distilbert-tiny-cls', family: 'distilbert', task: 'text-classification', arch: 'DistilBertForSequenceClassification', grads: 40 },
  { name: 'distilbert-tiny-qa', family: 'distilbert', task: 'question-answering', arch: 'DistilBertForQuestionAnswering' },
  { name: 'distilbert-tiny-cls-pruned', family: 'distilbert', task: 'text-classification', arch: 'DistilBertForSequenceClassification' },
  { name: 'roberta-tiny-cls', family: 'roberta', task: 'text-classification', arch: 'RobertaForSequenceClassification', grads: 41 },
  { name: 'roberta-tiny-qa', family: 'roberta', task: 'question-answering', arch: 'RobertaForQuestionAnswering' },
  { name: 'xlmr-tiny-cls', family: 'xlm-roberta', task: 'text-classification', arch: 'XLMRobertaForSequenceClassification', grads: 41 },
] as const;

for (const c of CASES) {
  withShared(`fixtures/${c.name}`)(`${c.name}: outputs, every hidden state and attention map, losses, parameter count`, async (t) => {
    const dir = shared(`fixtures/${c.name}`);
    const io = await readTensors(join(dir, 'io.safetensors'));
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    const model = await BertModel.fromPretrained(dir);
    t.is(model.family, c.family);
    t.is(model.task, c.task);
    t.is(model.numParameters, expected.num_parameters);
    t.deepEqual(model.loadReport?.newlyInitialized, []);
    const qa = c.task === 'question-answering';
    const out = await model.forward(batchOf(io, { positions: qa ? 'in' : undefined }), { hiddenStates: true, attentions: true, extras: true });
    for (const k of [...(qa ? ['start_logits', 'end_logits'] : ['logits']), ...FORWARD_KEYS]) expectClose(t, `${c.name} ${k}`, out[k], io[k], ATOL);
    expectClose(t, `${c.name} loss`, out.loss, io.loss, LOSS_ATOL);
    t.false('pooler_output' in out, 'no pooler in these task models');
    if (qa) expectClose(t, `${c.name} loss_oob`, (await model.forward(batchOf(io, { positions: 'oob' }))).loss, io.loss_oob, LOSS_ATOL);
    if (c.name.endsWith('-pruned')) {
      t.deepEqual(model.layers.map((l) => l.heads), [3, 2]);
      t.deepEqual(model.layers.map((l) => l.intermediateSize), [100, 90]);
    }
    model.dispose();
  });
}

for (const c of CASES.filter((k) => 'grads' in k)) {
  withShared(`fixtures/${c.name}`)(`${c.name}: the gradient of every parameter, padding rows get none`, async (t) => {
    const dir = shared(`fixtures/${c.name}`);
    const io = await readTensors(join(dir, 'io.safetensors'));
    const model = await BertModel.fromPretrained(dir);
    const g = await model.gradients(batchOf(io));
    let worst = 0;
    let n = 0;
    for (const [k, v] of Object.entries(io)) {
      if (!k.startsWith('grad.')) continue;
      t.truthy(g.grads[k.slice(5)], k);
      worst = Math.max(worst, maxAbsDiff(g.grads[k.slice(5)].data as Float32Array, v.data as Float32Array));
      n++;
    }
    t.is(n, c.grads);
    t.true(worst < 1e-6, `max |diff| ${worst}`);
    // RoBERTa's word and position tables both have padding_idx 1; DistilBERT's word table has 0.
    const prefix = c.family === 'distilbert' ? 'distilbert' : 'roberta';
    const pad = c.family === 'distilbert' ? 0 : 1;
    const tables = c.family === 'distilbert' ? ['word_embeddings'] : ['word_embeddings', 'position_embeddings'];
    for (const table of tables) {
      const grad = g.grads[`${prefix}.embeddings.${table}.weight`];
      const H = grad.shape[1];
      t.is(maxAbsDiff((grad.data as Float32Array).subarray(pad * H, (pad + 1) * H), new Float32Array(H)), 0, `${table} row ${pad}`);
    }
    model.dispose();
  });
}

withShared('fixtures/roberta-tiny-cls')('roberta: positions follow input_ids (left padding, the pad id inside the text)', async (t) => {
  const dir = shared('fixtures/roberta-tiny-cls');
  const io = await readTensors(join(dir, 'io.safetensors'));
  const model = await BertModel.fromPretrained(dir);
  const [batchSize, seqLen] = io.quirk_input_ids.shape;
  const out = await model.forward({
    inputIds: io.quirk_input_ids.data as BigInt64Array,
    attentionMask: io.quirk_attention_mask.data as BigInt64Array,
    batchSize,
    seqLen,
  });
  expectClose(t, 'quirk logits (pad id inside the text)', out.logits, io.quirk_logits, ATOL);
  // 66 positions less padding_idx + 1: 64 tokens at most.
  t.is(model.dimensions.maxSequenceLength, 64);
  const long = 65;
  await t.throwsAsync(model.forward({ inputIds: new Int32Array(long).fill(5), batchSize: 1, seqLen: long }), { code: 'E_INVALID_ARG', message: /exceeds the 64 positions/ });
  model.dispose();
});

for (const name of ['distilbert-tiny-cls', 'roberta-tiny-qa', 'xlmr-tiny-cls']) {
  withShared(`fixtures/${name}`)(`${name}: save writes the family's own layout and reloads to the same outputs`, async (t) => {
    const dir = shared(`fixtures/${name}`);
    const io = await readTensors(join(dir, 'io.safetensors'));
    const model = await BertModel.fromPretrained(dir);
    const tmp = tempDir();
    try {
      await model.save(tmp.path);
      const saved = JSON.parse(readFileSync(join(tmp.path, 'config.json'), 'utf8'));
      const original = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      t.is(saved.model_type, original.model_type);
      t.deepEqual(saved.architectures, original.architectures);
      // Every field of the original config keeps its name and value (DistilBERT's "dim", "n_layers", ...).
      for (const [k, v] of Object.entries(original)) if (k !== 'transformers_version') t.deepEqual(saved[k], v, k);
      const keys = Object.keys(await readTensors(join(tmp.path, 'model.safetensors'))).sort();
      t.deepEqual(keys, Object.keys(await readTensors(join(dir, 'model.safetensors'))).sort());
      const again = await BertModel.fromPretrained(tmp.path);
      const qa = name.includes('qa');
      const [a, b] = [await model.forward(batchOf(io)), await again.forward(batchOf(io))];
      for (const k of qa ? ['start_logits', 'end_logits'] : ['logits']) t.is(maxAbsDiff(a[k].data as Float32Array, b[k].data as Float32Array), 0, k);
      again.dispose();
    } finally {
      model.dispose();
      tmp.cleanup();
    }
  });
}

withShared('fixtures/roberta-tiny-cls')('bare encoders: a RobertaModel / DistilBertModel checkpoint without the prefix loads, pooler as HF', async (t) => {
  const tmp = tempDir();
  try {
    for (const name of ['roberta-tiny-cls', 'distilbert-tiny-cls'] as const) {
      const dir = shared(`fixtures/${name}`);
      const io = await readTensors(join(dir, 'io.safetensors'));
      const task = await BertModel.fromPretrained(dir);
      const bare = await BertModel.fromPretrained(dir, { task: 'bare' });
      t.is(bare.task, 'bare');
      await bare.save(join(tmp.path, name));
      const saved = await readTensors(join(tmp.path, name, 'model.safetensors'));
      const prefix = name.startsWith('roberta') ? 'roberta.' : 'distilbert.';
      t.true(Object.keys(saved).every((k) => !k.startsWith(prefix)), 'bare keys have no prefix');
      // RobertaModel has a pooler (random here: the classification checkpoint has none); DistilBertModel none.
      t.is('pooler.dense.weight' in saved, name.startsWith('roberta'));
      const again = await BertModel.fromPretrained(join(tmp.path, name));
      t.is(again.family, task.family);
      const [a, b] = [await task.forward(batchOf(io, { labels: false }), { extras: true }), await again.forward(batchOf(io, { labels: false }))];
      t.is(maxAbsDiff(a.last_hidden_state.data as Float32Array, b.last_hidden_state.data as Float32Array), 0);
      for (const m of [task, bare, again]) m.dispose();
    }
  } finally {
    tmp.cleanup();
  }
});

const wb = (m: string) => [`${m}.weight`, `${m}.bias`];
/** The classification heads of HF's *ForSequenceClassification, in named_parameters() order. */
const HEADS: Record<string, string[]> = {
  bert: [...wb('bert.pooler.dense'), ...wb('classifier')],
  roberta: [...wb('classifier.dense'), ...wb('classifier.out_proj')],
  'xlm-roberta': [...wb('classifier.dense'), ...wb('classifier.out_proj')],
  distilbert: [...wb('pre_classifier'), ...wb('classifier')],
};

test('every family from a config: random init, the heads HF builds, parameter counts', async (t) => {
  const base = { vocab_size: 100, max_position_embeddings: 40, initializer_range: 0.02 };
  const bertLike = { ...base, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64 };
  const configs: Record<ModelFamily, ModelConfigJson> = {
    bert: { ...bertLike, model_type: 'bert' },
    roberta: { ...bertLike, model_type: 'roberta', type_vocab_size: 1 },
    'xlm-roberta': { ...bertLike, model_type: 'xlm-roberta', type_vocab_size: 1 },
    distilbert: { ...base, model_type: 'distilbert' as const, dim: 32, n_layers: 2, n_heads: 4, hidden_dim: 64 },
  };
  for (const [family, config] of Object.entries(configs) as Array<[ModelFamily, ModelConfigJson]>) {
    const m = await BertModel.fromConfig(config, { task: 'text-classification', seed: 3 });
    t.is(m.family, family);
    const names = m.parameterShapes.map(([n]) => n);
    const heads = names.filter((n) => !n.includes('.layer.') && !n.includes('embeddings.'));
    t.deepEqual(heads, HEADS[family], `${family} head parameters`);
    t.is(m.dimensions.hiddenSize, 32);
    t.is(m.dimensions.numHeads, 4);
    const out = await m.forward({ inputIds: new Int32Array([0, 5, 6, 2]), batchSize: 1, seqLen: 4 });
    t.deepEqual(out.logits.shape, [1, 2]);
    m.dispose();
  }
});
