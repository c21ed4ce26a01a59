/**
 * Pruning encoder-decoder models (issue 18, step 1) against nn_pruning @0cef2b2 (../shared/fixtures/pruning
 * bart-hybrid and t5-hybrid; README section "pruning/bart-hybrid/, pruning/t5-hybrid/"): patched from the
 * fixture's sparse_args.json through the family's prunable blocks (32 linears), its mask scores loaded, threshold
 * 0.1: every mask (and BART's bias masks) equal to masks_final, the masked forward's logits and loss within the
 * forward tolerances, the dead heads the masks imply equal to compact.json's; bad plans and a second patch are
 * coded errors that leave the model as it was; teacher-forced incremental decoding (generation's path) gives the
 * masked forward's logits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import '../../lib/index';
import { Seq2SeqModel, seq2seqInternals } from '../../lib/model/seq2seq';
import { PruningConfig } from '../../lib/pruning/config';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, readTensors, rejects, shared, withShared } from '../helpers';

// The forward tolerances of the family tests (bart.test.ts, t5.test.ts): BART logits reach |32| with the random
// tied embedding, so 5e-5; every other output 1e-5. The fixture's fp64 masked run differs by 1.3e-5 / 2.3e-6.
const FAMILIES = [
  { name: 'bart', logitsAtol: 5e-5, biasMasks: true },
  { name: 't5', logitsAtol: 1e-5, biasMasks: false },
] as const;
const ATOL = 1e-5;

interface AttentionBlock {
  module: string;
  heads_pruned: number[];
}

/** nn_pruning's head rule on masks: a head lives iff its rows in q AND k AND v have a non-zero; none alive: head 0 stays. */
function prunedHeads(masks: Record<string, TensorData>, linears: string[], heads: number): number[] {
  const [q, k, v] = linears.map((l) => masks[`mask.${l}`]);
  const [rows, cols] = q.shape;
  const size = rows / heads;
  const rowAlive = (m: TensorData, h: number) => {
    const d = m.data as Uint8Array;
    for (let i = h * size * cols; i < (h + 1) * size * cols; i++) if (d[i] !== 0) return true;
    return false;
  };
  const alive = [...Array(heads).keys()].filter((h) => rowAlive(q, h) && rowAlive(k, h) && rowAlive(v, h));
  const kept = alive.length ? alive : [0];
  return [...Array(heads).keys()].filter((h) => !kept.includes(h));
}

for (const f of FAMILIES) {
  const fixture = `fixtures/pruning/${f.name}-hybrid`;
  withShared(fixture, `fixtures/${f.name}-tiny`)(`${f.name}-hybrid: masks, masked forward and dead heads equal nn_pruning's; coded errors`, async (t) => {
    const root = shared(fixture);
    const model = await Seq2SeqModel.fromPretrained(shared(`fixtures/${f.name}-tiny`));
    try {
      const config = PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'sparse_args.json'), 'utf8')));
      const geometry = model.geometry();
      const plan = config.plan(geometry);
      // nn_pruning's 32: per encoder layer q, k, v, out and the FFN pair; per decoder layer self and cross q, k, v,
      // out and the FFN pair. The attention output with the attention block transposed (16x16 here, square).
      t.is(plan.modules.length, 32);
      t.is(plan.modules.filter((m) => m.group === 'attention').length, 24);
      t.true(plan.modules.filter((m) => m.layout === 'cols').every((m) => m.shareWith !== undefined && plan.modules.some((o) => o.module === m.shareWith && o.layout === 'rows')));
      const scores = await readTensors(join(root, 'mask_scores.safetensors'));

      // Bad plans are refused before anything changes (the good patch below still works).
      const h = seq2seqInternals.handle(model);
      await rejects(t, () => h.patch('{"modules": ['), 'E_INVALID_ARG', /not valid JSON/);
      const head = f.name === 'bart' ? 'lm_head' : 'shared';
      await rejects(t, () => h.patch(JSON.stringify({ modules: [{ ...plan.modules[0], module: head }] })), 'E_INVALID_ARG', new RegExp(`'${head}'`));
      await rejects(t, () => h.patch(JSON.stringify({ modules: [...plan.modules, { ...plan.modules[0], module: 'encoder.nope' }] })), 'E_INVALID_ARG', /encoder\.nope/);
      await rejects(t, () => model.patch(PruningConfig.hybrid(10, { attentionBlockRows: 24 })), 'E_INVALID_ARG', /does not divide/);
      await rejects(t, () => model.setThreshold(0.1), 'E_INVALID_ARG', /not patched/);
      await rejects(t, () => model.loadState(join(root, 'mask_scores.safetensors')), 'E_UNEXPECTED_TENSOR', /mask_scores/);
      t.deepEqual(Object.keys(await model.masks()).length, 64, 'unpatched: weight != 0 of the 32 linears, with bias masks');

      const report = await model.patch(config);
      t.is(report.patched, 32);
      t.deepEqual(report.modules, plan.modules.map((m) => m.module));
      t.is(report.scoreParameters, Object.values(scores).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0));
      const loaded = await model.loadState(join(root, 'mask_scores.safetensors'));
      t.is(loaded.length, Object.keys(scores).length);
      await model.setThreshold(0.1);
      await rejects(t, () => model.patch(config), 'E_INVALID_ARG', /already patched/);

      // Every mask exact.
      const expected = await readTensors(join(root, 'masks_final.safetensors'));
      const masks = await model.masks();
      const wanted = Object.keys(expected).filter((k) => f.biasMasks || k.startsWith('mask.'));
      t.is(wanted.length, f.biasMasks ? 64 : 32);
      let mismatches = 0;
      for (const name of wanted) {
        t.deepEqual(masks[name]?.shape, expected[name].shape, name);
        const e = expected[name].data as Float32Array;
        const g = masks[name].data as Uint8Array;
        for (let i = 0; i < e.length; i++) if ((e[i] !== 0) !== (g[i] !== 0)) mismatches++;
      }
      t.is(mismatches, 0, 'mask entries different from nn_pruning');
      t.deepEqual(Object.keys(masks).filter((k) => k.startsWith('mask.')).sort(), Object.keys(expected).filter((k) => k.startsWith('mask.')).sort());

      // The masked forward (W * M through LinearImpl's mask path).
      const io = await readTensors(join(root, 'io.safetensors'));
      const outputs = await readTensors(join(root, 'outputs.safetensors'));
      const [batchSize, seqLen] = io.input_ids.shape;
      const inputs = { inputIds: io.input_ids.data as BigInt64Array, attentionMask: io.attention_mask.data as BigInt64Array, batchSize, seqLen };
      const out = await model.forward({
        ...inputs,
        targetLen: io.decoder_input_ids.shape[1],
        decoderInputIds: io.decoder_input_ids.data as BigInt64Array,
        labels: io.labels.data as BigInt64Array,
      });
      expectClose(t, `${f.name} masked_logits`, out.logits, outputs.masked_logits, f.logitsAtol);
      expectClose(t, `${f.name} masked_loss`, out.loss, outputs.masked_loss, ATOL);
      // Incremental decoding (what generate() drives) goes through the same masked linears.
      const steps = await h.decodeSteps({ ...inputs, targetLen: io.decoder_input_ids.shape[1], decoderInputIds: io.decoder_input_ids.data as BigInt64Array });
      expectClose(t, `${f.name} masked step logits vs forward`, steps.logits, out.logits, f.logitsAtol);

      // The heads the masks kill, per attention block, as compact.json lists them.
      const compact = JSON.parse(readFileSync(join(root, 'compact.json'), 'utf8')) as { attention_blocks: AttentionBlock[] };
      const attention = (geometry.blocks ?? []).filter((b) => b.kind === 'attention');
      t.is(attention.length, compact.attention_blocks.length);
      for (const b of attention) {
        const module = b.linears[0].slice(0, b.linears[0].lastIndexOf('.'));
        const ref = compact.attention_blocks.find((x) => x.module === module);
        t.truthy(ref, `${module} in compact.json`);
        t.deepEqual(prunedHeads(masks, b.linears, b.heads ?? 0), ref?.heads_pruned, `${module} pruned heads`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('plan: a gated FFN (T5 v1.1 wi_0, wi_1, wo) masks the gate with the intermediate unit scores', (t) => {
  const f = 'decoder.block.0.layer.2.DenseReluDense.';
  const plan = PruningConfig.hybrid(10, { attentionBlockRows: 16, attentionBlockCols: 16 }).plan({
    hiddenSize: 64,
    headDim: 16,
    layers: [],
    blocks: [{ kind: 'ffn', linears: [`${f}wi_0`, `${f}wi_1`, `${f}wo`], width: 128 }],
  });
  t.deepEqual(
    plan.modules.map((m) => [m.module, m.layout, m.shareWith]),
    [
      [`${f}wi_0`, 'rows', undefined],
      [`${f}wi_1`, 'rows', `${f}wi_0`],
      [`${f}wo`, 'cols', `${f}wi_0`],
    ],
  );
});
