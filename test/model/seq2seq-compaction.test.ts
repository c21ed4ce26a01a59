/**
 * Compaction of encoder-decoder models (issue 18) against the fixtures pruning/bart-hybrid and pruning/t5-hybrid
 * (README "pruning/bart-hybrid/, pruning/t5-hybrid/"): the patched model (sparse_args.json, mask_scores at the
 * fixture's threshold 0.1) compacts to a dense model whose logits are heads_removed_logits, with compact.json's
 * heads kept and removed per attention block, its FFN widths and its parameter count (if_heads_also_removed);
 * the quirk_dead_matrix_head case; mode 'heads'; save + fromPretrained round trip; greedy and beam generate()
 * of the compact model equal to the masked model's; a compact config that contradicts itself or its weights is
 * a coded error. A gated-gelu T5 (t5-tiny's weights with units and heads zeroed by hand) loses exactly those units
 * and heads, and its compact copy saves the source's tokenizer files. A BART classifier with values, output columns
 * and FFN rows zeroed by hand keeps its EOS-pooled logits; a head with zero queries stays there (exact rule) and
 * goes by nn_pruning's.
 *
 * Tolerances: the fixture's heads_removed_logits come from a float32 run of HF's code with head masks; its fp64
 * sliced forward differs by 1.6e-5 (BART) / 2.9e-6 (T5) (meta.json tolerance.heads_removed_vs_sliced_fp64), and
 * BART's logits reach |32| (random tied embedding): 5e-5 for BART, 1e-5 for T5, the forward tolerances of
 * seq2seq-pruning.test.ts. A save and reload is exact (the same float32 weights, the same computation).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../lib/index';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { PruningConfig } from '../../lib/pruning/config';
import type { Seq2SeqCompactReport } from '../../lib/pruning/seq2seq-pruning';
import type { TensorData } from '../../lib/runtime/native';
import { expectClose, readTensors, rejects, shared, t5TokenizerJson, tempDir, withShared, writeSafetensorsFile } from '../helpers';
import { fixture, FIX, gatedGelu, modelCopy } from './t5-fixture';

const FAMILIES = [
  { name: 'bart', logitsAtol: 5e-5 },
  { name: 't5', logitsAtol: 1e-5 },
] as const;
const THRESHOLD = 0.1; // meta.json masks.final.threshold

interface CompactJson {
  attention_blocks: { stack: string; layer: number; attention: string; heads_kept: number[]; heads_pruned: number[] }[];
  ffn_widths: { encoder: number[]; decoder: number[] };
  heads_pruned_total: number;
  param_counts: { dense: number; optimized_ffn_only: number; if_heads_also_removed: number; per_removed_head: number };
}

/** The patched model of the fixture with `scores` (a safetensors path) at the threshold. */
async function patched(family: string, scores: string): Promise<Seq2SeqModel> {
  const root = shared(`fixtures/pruning/${family}-hybrid`);
  const model = await Seq2SeqModel.fromPretrained(shared(`fixtures/${family}-tiny`));
  const config = PruningConfig.fromJSON(JSON.parse(readFileSync(join(root, 'sparse_args.json'), 'utf8')));
  await model.patch(config);
  await model.loadState(scores);
  await model.setThreshold(THRESHOLD);
  return model;
}

function inputs(io: Record<string, TensorData>) {
  const [batchSize, seqLen] = io.input_ids.shape;
  return { inputIds: io.input_ids.data as BigInt64Array, attentionMask: io.attention_mask.data as BigInt64Array, batchSize, seqLen };
}

async function logits(model: Seq2SeqModel, io: Record<string, TensorData>): Promise<TensorData> {
  const out = await model.forward({ ...inputs(io), targetLen: io.decoder_input_ids.shape[1], decoderInputIds: io.decoder_input_ids.data as BigInt64Array });
  return out.logits;
}

/** The report's attention blocks as compact.json lists them (stack, layer, role -> kept, pruned). */
function attentionOf(report: Seq2SeqCompactReport) {
  return report.blocks
    .filter((b) => b.kind === 'attention')
    .map((b) => ({ stack: b.stack, layer: b.layer, attention: b.role, heads_kept: b.keptHeads, heads_pruned: b.removedHeads }));
}

function widthsOf(report: Seq2SeqCompactReport, which: 'widthBefore' | 'widthAfter') {
  const ffn = report.blocks.filter((b) => b.kind === 'ffn');
  return { encoder: ffn.filter((b) => b.stack === 'encoder').map((b) => b[which]), decoder: ffn.filter((b) => b.stack === 'decoder').map((b) => b[which]) };
}

for (const f of FAMILIES) {
  const fixture = `fixtures/pruning/${f.name}-hybrid`;
  withShared(fixture, `fixtures/${f.name}-tiny`)(`${f.name}-hybrid: compact gives heads_removed_logits, compact.json's heads, widths and parameters`, async (t) => {
    const root = shared(fixture);
    const compact = JSON.parse(readFileSync(join(root, 'compact.json'), 'utf8')) as CompactJson;
    const io = await readTensors(join(root, 'io.safetensors'));
    const outputs = await readTensors(join(root, 'outputs.safetensors'));
    const model = await patched(f.name, join(root, 'mask_scores.safetensors'));
    const dir = tempDir();
    const models: Seq2SeqModel[] = [model];
    try {
      const masked = await logits(model, io);
      expectClose(t, `${f.name} masked`, masked, outputs.masked_logits, f.logitsAtol);
      await rejects(t, () => model.compact('both' as 'dense'), 'E_INVALID_ARG', /mode/);

      // The default rule removes only heads whose output is zero: the masked model's logits.
      const exact = await model.compact();
      models.push(exact.model);
      expectClose(t, `${f.name} exact compact vs masked`, await logits(exact.model, io), masked, f.logitsAtol);
      t.log(`exact rule: ${exact.report.parametersAfter} parameters, heads removed ${JSON.stringify(attentionOf(exact.report).map((b) => b.heads_pruned))}`);

      // nn_pruning's rule (a head dead in q, k or v goes): the fixture's heads_removed_logits and compact.json.
      const { model: small, report } = await model.compact('dense', { deadHeads: 'reference' });
      models.push(small);
      await rejects(t, () => model.compact('dense', { deadHeads: 'some' as 'exact' }), 'E_INVALID_ARG', /deadHeads/);
      expectClose(t, `${f.name} compact vs heads_removed_logits`, await logits(small, io), outputs.heads_removed_logits, f.logitsAtol);
      t.deepEqual(attentionOf(report), compact.attention_blocks.map(({ stack, layer, attention, heads_kept, heads_pruned }) => ({ stack, layer, attention, heads_kept, heads_pruned })));
      t.deepEqual(widthsOf(report, 'widthAfter'), compact.ffn_widths);
      t.is(report.parametersBefore, compact.param_counts.dense);
      t.is(report.parametersAfter, compact.param_counts.if_heads_also_removed);
      // The compact model describes its own shapes; the source is untouched (still patched, same outputs).
      t.is(small.info.numParameters, report.parametersAfter);
      const blocks = small.info.prunableBlocks;
      t.deepEqual(
        blocks.filter((b) => b.kind === 'attention').map((b) => b.heads),
        compact.attention_blocks.map((b) => b.heads_kept.length),
      );
      t.deepEqual(blocks.filter((b) => b.kind === 'ffn').map((b) => b.width), [...compact.ffn_widths.encoder, ...compact.ffn_widths.decoder]);
      t.deepEqual(await logits(model, io), masked);
      await model.setThreshold(THRESHOLD);

      // Generation on the compact model: fewer heads in the incremental caches, T5's bias cut per block.
      for (const numBeams of [1, 3]) {
        const a = await model.generate(inputs(io), { maxLength: 10, numBeams });
        const b = await small.generate(inputs(io), { maxLength: 10, numBeams });
        t.deepEqual(b.sequences, a.sequences, `numBeams ${numBeams}: compact ids = masked ids`);
      }

      // save + fromPretrained: the structure travels in config.json; the same logits exactly.
      await small.save(dir.path);
      const config = JSON.parse(readFileSync(join(dir.path, 'config.json'), 'utf8'));
      t.truthy(config.encoder_pruned_heads && config.decoder_pruned_heads && config.cross_pruned_heads);
      t.deepEqual(config.encoder_intermediate_sizes, compact.ffn_widths.encoder);
      t.deepEqual(config.decoder_intermediate_sizes, compact.ffn_widths.decoder);
      const back = await Seq2SeqModel.fromPretrained(dir.path);
      models.push(back);
      t.deepEqual(await logits(back, io), await logits(small, io));
      t.is(back.info.numParameters, report.parametersAfter);

      // Compacting the compact model again removes nothing more and keeps the original head indices.
      const again = await back.compact('dense', { deadHeads: 'reference' });
      models.push(again.model);
      t.deepEqual(attentionOf(again.report).map((b) => b.heads_pruned), compact.attention_blocks.map(() => []));
      t.deepEqual(attentionOf(again.report).map((b) => b.heads_kept), compact.attention_blocks.map((b) => b.heads_kept));
      t.is(again.report.parametersAfter, report.parametersAfter);

      // mode 'heads': the FFN stays as it is, the heads go.
      const heads = await model.compact('heads', { deadHeads: 'reference' });
      models.push(heads.model);
      t.deepEqual(widthsOf(heads.report, 'widthAfter'), widthsOf(heads.report, 'widthBefore'));
      t.deepEqual(attentionOf(heads.report), attentionOf(report));
      t.is(heads.report.parametersAfter, compact.param_counts.dense - compact.heads_pruned_total * compact.param_counts.per_removed_head);
      expectClose(t, `${f.name} heads-only compact`, await logits(heads.model, io), outputs.heads_removed_logits, f.logitsAtol);

      // A compact config that contradicts itself or its weights: coded errors naming the field or tensor.
      const edit = async (change: (c: any) => void, code: string, message: RegExp) => {
        const c = JSON.parse(JSON.stringify(config));
        change(c);
        writeFileSync(join(dir.path, 'config.json'), JSON.stringify(c));
        await rejects(t, () => Seq2SeqModel.fromPretrained(dir.path), code, message);
      };
      await edit((c) => (c.encoder_pruned_heads = { 0: [7] }), 'E_BAD_CONFIG', /encoder_pruned_heads\['0'\].*7/);
      await edit((c) => (c.cross_pruned_heads = { 1: [0, 1, 2, 3] }), 'E_BAD_CONFIG', /cross_pruned_heads\['1'\] removes every head/);
      await edit((c) => (c.decoder_pruned_heads = { 5: [0] }), 'E_BAD_CONFIG', /decoder_pruned_heads\['5'\]/);
      await edit((c) => (c.encoder_intermediate_sizes = [100]), 'E_BAD_CONFIG', /encoder_intermediate_sizes/);
      const wider = (c: any) => (c.decoder_intermediate_sizes = [c.decoder_intermediate_sizes[0] + 1, c.decoder_intermediate_sizes[1]]);
      if (f.name === 'bart') await edit(wider, 'E_BAD_CHECKPOINT', /model\.decoder\.layers\.0\.fc1\.weight/);
      else await edit(wider, 'E_BAD_CONFIG', /decoder_intermediate_sizes/);
      await edit((c) => delete c.cross_pruned_heads, 'E_BAD_CHECKPOINT', f.name === 'bart' ? /encoder_attn/ : /EncDecAttention/);
    } finally {
      for (const m of models) m.dispose();
      dir.cleanup();
    }
  });

  withShared(fixture, `fixtures/${f.name}-tiny`)(`${f.name}-hybrid quirk_dead_matrix_head: a head dead in one matrix only goes`, async (t) => {
    const root = shared(fixture);
    const quirk = JSON.parse(readFileSync(join(root, 'quirk_dead_matrix_head.json'), 'utf8')) as {
      extra_override: { score_tensor: string; head: number; value: number };
      heads_marked_dead: { stack: string; layer: number; attention: string; heads_kept: number[]; heads_pruned: number[] }[];
    };
    const expected = await readTensors(join(root, 'quirk_dead_matrix_head.safetensors'));
    // The fixture's scores plus the override: one score row per head (16x16 blocks of a 64x64 matrix).
    const scores = await readTensors(join(root, 'mask_scores.safetensors'));
    const o = quirk.extra_override;
    const s = scores[o.score_tensor];
    const data = Float32Array.from(s.data as Float32Array);
    data.fill(o.value, o.head * s.shape[1], (o.head + 1) * s.shape[1]);
    scores[o.score_tensor] = { ...s, data };
    const dir = tempDir();
    const models: Seq2SeqModel[] = [];
    try {
      const file = join(dir.path, 'scores.safetensors');
      writeSafetensorsFile(file, Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, { dtype: 'F32', shape: v.shape, data: v.data as Float32Array }])));
      const model = await patched(f.name, file);
      models.push(model);
      const io = await readTensors(join(root, 'io.safetensors'));
      expectClose(t, `${f.name} quirk masked`, await logits(model, io), expected.masked_logits, f.logitsAtol);
      const { model: small, report } = await model.compact('dense', { deadHeads: 'reference' });
      models.push(small);
      // The default rule keeps the head dead in one matrix (it still attends and adds its values): masked logits.
      const exact = await model.compact();
      models.push(exact.model);
      expectClose(t, `${f.name} quirk exact compact vs masked`, await logits(exact.model, io), expected.masked_logits, f.logitsAtol);
      const marked = new Map(quirk.heads_marked_dead.map((b) => [`${b.stack}.${b.layer}.${b.attention}`, b]));
      for (const b of report.blocks.filter((x) => x.kind === 'attention')) {
        const m = marked.get(`${b.stack}.${b.layer}.${b.role}`);
        t.deepEqual(b.removedHeads, m?.heads_pruned ?? [], `${b.stack}.${b.layer}.${b.role}`);
      }
      expectClose(t, `${f.name} quirk compact vs heads_removed_logits`, await logits(small, io), expected.heads_removed_logits, f.logitsAtol);
    } finally {
      for (const m of models) m.dispose();
      dir.cleanup();
    }
  });
}

withShared(FIX)('t5 gated-gelu: a unit dead in wi_0, wi_1 or wo goes; heads go with their bias columns; tokenizer files travel', async (t) => {
  const { dir, io, weights } = await fixture();
  const w = gatedGelu(weights, 7);
  const zero = (name: string, rows: [number, number] | null, col?: number) => {
    const [r, c] = w[name].shape;
    const data = Float32Array.from(w[name].data as Float32Array);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < c; j++) if ((rows && i >= rows[0] && i < rows[1]) || j === col) data[i * c + j] = 0;
    w[name] = { ...w[name], data };
  };
  const ffn = (stack: string, block: number) => `${stack}.block.${block}.layer.${stack === 'encoder' ? 1 : 2}.DenseReluDense.`;
  zero(`${ffn('encoder', 0)}wi_0.weight`, [3, 4]);
  zero(`${ffn('encoder', 0)}wi_1.weight`, [5, 6]);
  zero(`${ffn('encoder', 0)}wo.weight`, null, 9);
  zero(`${ffn('decoder', 1)}wi_1.weight`, [0, 1]);
  // Heads with zero q, k and v rows contribute nothing; the others keep their own columns of block 0's bias.
  for (const m of ['q', 'k', 'v']) {
    zero(`encoder.block.1.layer.0.SelfAttention.${m}.weight`, [16, 32]);
    zero(`decoder.block.1.layer.0.SelfAttention.${m}.weight`, [48, 64]);
  }
  const src = modelCopy(dir, w, (c) => (c.feed_forward_proj = 'gated-gelu'));
  const out = tempDir();
  const models: Seq2SeqModel[] = [];
  try {
    const tokenizer = JSON.stringify(t5TokenizerJson([['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁a', -1]]));
    writeFileSync(join(src.path, 'tokenizer.json'), tokenizer);
    const model = await Seq2SeqModel.fromPretrained(src.path);
    models.push(model);
    const { model: small, report } = await model.compact();
    models.push(small);
    t.deepEqual(widthsOf(report, 'widthAfter'), { encoder: [125, 128], decoder: [128, 127] });
    t.deepEqual(
      report.blocks.filter((b) => b.kind === 'attention').map((b) => b.removedHeads),
      [[], [1], [], [], [3], []],
    );
    expectClose(t, 'gated compact vs full', await logits(small, io), await logits(model, io), 1e-5);
    for (const numBeams of [1, 3]) {
      const a = await model.generate(inputs(io), { maxLength: 10, numBeams });
      t.deepEqual((await small.generate(inputs(io), { maxLength: 10, numBeams })).sequences, a.sequences, `numBeams ${numBeams}`);
    }
    await small.save(out.path);
    t.is(readFileSync(join(out.path, 'tokenizer.json'), 'utf8'), tokenizer);
    const back = await Seq2SeqModel.fromPretrained(out.path);
    models.push(back);
    t.deepEqual(await logits(back, io), await logits(small, io));
  } finally {
    for (const m of models) m.dispose();
    src.cleanup();
    out.cleanup();
  }
});

withShared('fixtures/bart-tiny-cls')('bart classification: heads with zero values or zero output columns and units with zero rows go; the EOS-pooled logits stay', async (t) => {
  const src = shared('fixtures/bart-tiny-cls');
  const w = await readTensors(join(src, 'model.safetensors'));
  const zero = (name: string, rows: [number, number] | null, cols?: [number, number]) => {
    const [r, c] = w[name].shape.length === 2 ? w[name].shape : [w[name].shape[0], 1];
    const data = Float32Array.from(w[name].data as Float32Array);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < c; j++) if ((rows && i >= rows[0] && i < rows[1]) || (cols && j >= cols[0] && j < cols[1])) data[i * c + j] = 0;
    w[name] = { ...w[name], data };
  };
  // d_model 64, 4 heads of 16. Encoder layer 0: head 1's values (and their bias); decoder layer 1 cross-attention:
  // head 2's output columns; encoder layer 1's FFN: units 3..5 (fc1 rows and bias); decoder layer 0 self-attention:
  // head 3's queries only, a head that still attends (uniformly) and stays by the exact rule.
  zero('model.encoder.layers.0.self_attn.v_proj.weight', [16, 32]);
  zero('model.encoder.layers.0.self_attn.v_proj.bias', [16, 32]);
  zero('model.decoder.layers.1.encoder_attn.out_proj.weight', null, [32, 48]);
  zero('model.encoder.layers.1.fc1.weight', [3, 6]);
  zero('model.encoder.layers.1.fc1.bias', [3, 6]);
  zero('model.decoder.layers.0.self_attn.q_proj.weight', [48, 64]);
  zero('model.decoder.layers.0.self_attn.q_proj.bias', [48, 64]);
  const dir = tempDir();
  const models: Seq2SeqModel[] = [];
  try {
    writeFileSync(join(dir.path, 'config.json'), readFileSync(join(src, 'config.json')));
    writeSafetensorsFile(join(dir.path, 'model.safetensors'), Object.fromEntries(Object.entries(w).map(([k, x]) => [k, { dtype: 'F32', shape: x.shape, data: x.data as Float32Array }])));
    const model = await Seq2SeqModel.fromPretrained(dir.path);
    models.push(model);
    const io = await readTensors(join(src, 'io.safetensors'));
    const batch = { ...inputs(io) };
    const full = (await model.forward(batch)).logits;
    const { model: small, report } = await model.compact();
    models.push(small);
    t.deepEqual(
      report.blocks.filter((b) => b.kind === 'attention').map((b) => b.removedHeads),
      [[1], [], [], [], [], [2]],
    );
    t.deepEqual(widthsOf(report, 'widthAfter'), { encoder: [128, 125], decoder: [128, 128] });
    t.is(small.info.architecture, 'BartForSequenceClassification');
    expectClose(t, 'bart-cls compact vs full', (await small.forward(batch)).logits, full, 1e-5);
    // nn_pruning's rule also drops decoder layer 0's head 3 (no queries left): the logits move.
    const reference = await model.compact('dense', { deadHeads: 'reference' });
    models.push(reference.model);
    t.deepEqual(reference.report.blocks.filter((b) => b.kind === 'attention').map((b) => b.removedHeads)[2], [3]);
  } finally {
    for (const m of models) m.dispose();
    dir.cleanup();
  }
});
