/**
 * Parity with HF transformers 4.4.2 (../shared/fixtures, see its README): forward outputs, hidden states,
 * attentions and losses of the tiny checkpoints, in every checkpoint format we load.
 */
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, fixtureBatch, readTensors, shared, withShared } from '../helpers';

const ATOL = 1e-5; // fixture README: forward outputs atol 1e-5
const LOSS_ATOL = 1e-6;

async function io(dir: string): Promise<Record<string, TensorData>> {
  return readTensors(join(dir, 'io.safetensors'));
}

/** The fixture batch, with the QA positions (in range, or the out-of-range set) when asked. */
function batchOf(t: Record<string, TensorData>, positions?: 'in' | 'oob') {
  const suffix = positions === 'oob' ? '_oob' : '';
  return {
    ...fixtureBatch(t),
    startPositions: positions ? (t[`start_positions${suffix}`].data as BigInt64Array) : undefined,
    endPositions: positions ? (t[`end_positions${suffix}`].data as BigInt64Array) : undefined,
  };
}

for (const [name, ioDir] of [
  ['bert-tiny-cls', 'bert-tiny-cls'],
  ['bert-tiny-cls-bin', 'bert-tiny-cls'], // the same weights as torch.save's pytorch_model.bin
] as const) {
  withShared(`fixtures/${name}`, `fixtures/${ioDir}`)(`${name}: logits, pooler, every hidden state and attention map, loss`, async (t) => {
    const dir = shared(`fixtures/${name}`);
    const expected = await io(join(dir, '..', ioDir));
    const model = await BertModel.fromPretrained(dir);
    t.is(model.task, 'text-classification');
    const out = await model.forward(batchOf(expected), { hiddenStates: true, attentions: true, extras: true });
    for (const k of ['logits', 'pooler_output', 'last_hidden_state', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'attentions.0', 'attentions.1'])
      expectClose(t, `${name} ${k}`, out[k], expected[k], ATOL);
    expectClose(t, `${name} loss`, out.loss, expected.loss, LOSS_ATOL);
    if (name === 'bert-tiny-cls-bin') t.deepEqual(model.loadReport?.ignored, ['bert.embeddings.position_ids']);
    model.dispose();
  });
}

withShared('fixtures/bert-tiny-qa')('bert-tiny-qa: start/end logits, loss, loss with out-of-range positions', async (t) => {
  const dir = shared('fixtures/bert-tiny-qa');
  const expected = await io(dir);
  const model = await BertModel.fromPretrained(dir);
  t.is(model.task, 'question-answering');
  const out = await model.forward(batchOf(expected, 'in'), { extras: true });
  for (const k of ['start_logits', 'end_logits', 'last_hidden_state']) expectClose(t, `qa ${k}`, out[k], expected[k], ATOL);
  expectClose(t, 'qa loss', out.loss, expected.loss, LOSS_ATOL);
  const oob = await model.forward(batchOf(expected, 'oob'));
  expectClose(t, 'qa loss_oob', oob.loss, expected.loss_oob, LOSS_ATOL);
  model.dispose();
});

withShared('fixtures/bert-tiny-pruned-heads')('bert-tiny-pruned-heads: per-layer head counts from config.pruned_heads, outputs', async (t) => {
  const dir = shared('fixtures/bert-tiny-pruned-heads');
  const expected = await io(dir);
  const model = await BertModel.fromPretrained(dir);
  t.deepEqual(
    model.layers.map((l) => l.keptHeads),
    [
      [0, 2],
      [0, 1, 3],
    ],
  );
  t.deepEqual(model.config.pruned_heads, { '0': [1, 3], '1': [2] });
  const out = await model.forward(batchOf(expected), { extras: true });
  for (const k of ['logits', 'last_hidden_state', 'pooler_output']) expectClose(t, `pruned-heads ${k}`, out[k], expected[k], ATOL);
  expectClose(t, 'pruned-heads loss', out.loss, expected.loss, LOSS_ATOL);
  model.dispose();
});

withShared('fixtures/bert-tiny-bare')('bert-tiny-bare: a BertModel checkpoint without the bert. prefix', async (t) => {
  const dir = shared('fixtures/bert-tiny-bare');
  const expected = await io(dir);
  const model = await BertModel.fromPretrained(dir);
  t.is(model.task, 'bare');
  const out = await model.forward(batchOf(expected));
  for (const k of ['last_hidden_state', 'pooler_output']) expectClose(t, `bare ${k}`, out[k], expected[k], ATOL);
  t.true(Object.keys(model.stateDict()).every((k) => !k.startsWith('bert.')), 'bare state dict keeps HF BertModel names');
  model.dispose();
});

withShared('fixtures/bert-base-shapes.json', 'data/bert-base-uncased/config.json')('bert-base geometry: parameter counts equal HF named_parameters()', async (t) => {
  const shapesFile = shared('fixtures/bert-base-shapes.json');
  const cfgFile = shared('data/bert-base-uncased/config.json');
  const { readFileSync } = await import('node:fs');
  const shapes = JSON.parse(readFileSync(shapesFile, 'utf8'));
  const config = JSON.parse(readFileSync(cfgFile, 'utf8'));
  const counts: Record<string, number> = {
    'text-classification': 109_483_778,
    'question-answering': 108_893_186,
    bare: 109_482_240,
  };
  for (const task of ['text-classification', 'question-answering', 'bare'] as const) {
    const m = await BertModel.fromConfig(config, { task });
    t.is(m.numParameters, counts[task], task);
    const ref = shapes[{ 'text-classification': 'BertForSequenceClassification', 'question-answering': 'BertForQuestionAnswering', bare: 'BertModel' }[task]];
    t.is(ref.total_parameters, counts[task]);
    t.deepEqual(m.parameterShapes, ref.parameters, `${task}: names and shapes in named_parameters() order`);
    m.dispose();
  }
});
