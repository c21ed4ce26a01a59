// The README's "### Pruning" program, runnable (CommonJS): patch a model with the hybrid preset, fine-prune it
// with SparseTrainer while distilling from the dense model, draw its masks, compact it, report, save, reload and
// export in plain HF layout. The data is a tiny sentiment task written as GLUE's SST-2 TSV and read with loadGlue.
// `node examples/prune-compact.js`
'use strict';
const assert = require('node:assert/strict');
const { readdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const {
  BertModel, PruningConfig, SparseTrainer, ClassificationDataset, loadGlue, BertTokenizer, writeMaskImages,
  buildReport, formatReport, evaluateClassifier,
} = require('blockprune');
const { SENTENCES, makeTinyModel, runInTempFolder } = require('./tiny-model.js');

async function main(work) {
  const dir = await makeTinyModel(join(work, 'bert-sst2'));
  // GLUE's SST-2 layout: a header, then sentence <TAB> label.
  const tsv = (rows) => ['sentence\tlabel', ...rows.map(([s, l]) => `${s}\t${l}`)].join('\n') + '\n';
  writeFileSync(join(work, 'train.tsv'), tsv(Array.from({ length: 8 }, () => SENTENCES).flat()));
  writeFileSync(join(work, 'dev.tsv'), tsv(SENTENCES));

  const model = await BertModel.fromPretrained(dir);
  // 32x32 attention blocks, FFN rows/cols, threshold 0 -> 0.1, L1; the scores learn fast here so that a few steps prune.
  const pruning = PruningConfig.hybrid(20, { maskScoresLearningRate: 0.5 });
  const patched = await model.patch(pruning);
  console.log(`patched ${patched.modules.length} linears`);

  const tok = BertTokenizer.fromDir(dir);
  const train = new ClassificationDataset((await loadGlue('sst2', join(work, 'train.tsv'))).examples, tok, { maxLength: 16 });
  const dev = new ClassificationDataset((await loadGlue('sst2', join(work, 'dev.tsv'))).examples, tok, { maxLength: 16 });
  const { model: pruned, history } = await new SparseTrainer({
    model, pruning, train, epochs: 6, batchSize: 16, learningRate: 1e-3,
    distillation: { teacher: await BertModel.fromPretrained(dir), alphaCe: 0.1, alphaTeacher: 0.9 },
    evaluate: (m) => evaluateClassifier(m, dev), outputDir: join(work, 'ckpt'), logFile: join(work, 'log.jsonl'),
  }).train();
  console.log(`trained: ${history.length} evaluations; checkpoints: ${readdirSync(join(work, 'ckpt')).join(', ')}`);

  const images = await writeMaskImages(pruned, join(work, 'masks')); // PNGs of weight != 0 per matrix
  console.log(`mask pictures: ${images.length}`);
  assert.ok(images.length > 0);
  const { model: small } = await pruned.compact('dense'); // heads and empty FFN units dropped
  const report = await buildReport(small);
  console.log(formatReport(report).split('\n').slice(0, 9).join('\n')); // the summary and the per-layer table
  await small.save(join(work, 'bert-sst2-compact')); // per-layer sizes in config.json
  await small.exportFilled(join(work, 'bert-sst2-hf')); // plain HF layout: FFN zero-padded, heads via pruned_heads

  // The compact model reloads with fromPretrained and answers as the pruned one did.
  const reloaded = await BertModel.fromPretrained(join(work, 'bert-sst2-compact'));
  const before = await evaluateClassifier(pruned, dev);
  const after = await evaluateClassifier(reloaded, dev);
  console.log(`accuracy on dev: pruned ${before.accuracy.toFixed(1)}%, compact reloaded ${after.accuracy.toFixed(1)}%`);
  assert.equal(after.accuracy, before.accuracy);
  const [batch] = dev.batches(8);
  const [a, b] = [(await pruned.forward(batch)).logits.data, (await reloaded.forward(batch)).logits.data];
  const diff = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  console.log(`logits, pruned vs compact: max |diff| ${diff.toExponential(1)}`);
  assert.ok(diff < 1e-4);
  for (const m of [model, pruned, small, reloaded]) m.dispose();
}

runInTempFolder(main);
