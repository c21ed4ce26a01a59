// The README's "### ONNX export" program, runnable: a compact model becomes an ONNX graph, which onnxruntime
// runs with the same outputs as blockprune. `node examples/onnx-export.js` (the comparison needs
// `npm install onnxruntime-node`; without it the graph is only written).
'use strict';
const assert = require('node:assert/strict');
const { statSync } = require('node:fs');
const { join } = require('node:path');
const { BertModel, BertTokenizer, PruningConfig, exportOnnx } = require('blockprune');
const { makeTinyModel, runInTempFolder } = require('./tiny-model.js');

async function main(work) {
  const dir = await makeTinyModel(join(work, 'model'));
  const model = await BertModel.fromPretrained(dir);
  // A compact model: patch, move the threshold so that some blocks die, compact (what fine-pruning leads to).
  await model.patch(PruningConfig.hybrid(20, { finalThreshold: 0.5 }));
  await model.setThreshold(0.5);
  const { model: compactModel } = await model.compact('dense');
  console.log(`compact: ${compactModel.layers.map((l, i) => `layer ${i} ${l.heads} heads, FFN ${l.intermediateSize}`).join('; ')}`);

  const report = await exportOnnx(compactModel, join(work, 'model.onnx')); // opset 17; int64 input_ids, attention_mask, token_type_ids
  console.log(`model.onnx: ${(statSync(join(work, 'model.onnx')).size / 1e3).toFixed(0)} kB, inputs ${report.inputs.join(', ')}`);

  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch {
    console.log('onnxruntime-node is not installed: the graph is written, not run');
    return;
  }
  const enc = BertTokenizer.fromDir(dir).encodeBatch(['a fine film', 'a dull and boring film'], { padding: true });
  const ours = await compactModel.forward(enc);
  const shape = [enc.batchSize, enc.seqLen];
  const int64 = (a) => new ort.Tensor('int64', BigInt64Array.from(a, BigInt), shape);
  const session = await ort.InferenceSession.create(join(work, 'model.onnx'));
  const feeds = { input_ids: int64(enc.inputIds), attention_mask: int64(enc.attentionMask), token_type_ids: int64(enc.tokenTypeIds) };
  const theirs = (await session.run(feeds)).logits.data;
  const diff = Math.max(...ours.logits.data.map((x, i) => Math.abs(x - theirs[i])));
  console.log(`onnxruntime vs blockprune logits: max |diff| ${diff.toExponential(1)}`);
  assert.ok(diff < 1e-4);
  await session.release();
  model.dispose();
  compactModel.dispose();
}

runInTempFolder(main);
