// The README's "### Quantized models (int8 / bf16)" program, runnable: a model quantized to int8 and to bf16,
// saved, reloaded quantized and run by a pipeline, with its outputs beside the fp32 model's.
// `node examples/quantize.js`
'use strict';
const assert = require('node:assert/strict');
const { join } = require('node:path');
const { BertModel, BertTokenizer, pipeline, buildInfo } = require('blockprune');
const { makeTinyModel, runInTempFolder } = require('./tiny-model.js');

async function main(work) {
  const dir = await makeTinyModel(join(work, 'model'));
  const small = await BertModel.fromPretrained(dir);
  console.log(`kernels on this CPU: int8 ${buildInfo().quantKernels.int8}, bf16 ${buildInfo().quantKernels.bf16}`);
  const enc = BertTokenizer.fromDir(dir).encodeBatch(['a fine film', 'a dull and boring film'], { padding: true });
  const fp32 = (await small.forward(enc)).logits.data;

  for (const dtype of ['int8', 'bf16']) {
    const q = await small.quantize({ dtype }); // a new model; `small` is unchanged
    assert.equal(q.dtype, dtype);
    assert.equal(small.dtype, 'fp32');
    await q.save(join(work, `model-${dtype}`)); // reloads quantized with BertModel.fromPretrained / pipeline / serve
    const reloaded = await BertModel.fromPretrained(join(work, `model-${dtype}`));
    assert.equal(reloaded.dtype, dtype);
    const logits = (await reloaded.forward(enc)).logits.data;
    const diff = Math.max(...logits.map((x, i) => Math.abs(x - fp32[i])));
    console.log(`${dtype}: weights ${(small.weightBytes / 1e3).toFixed(0)} kB -> ${(q.weightBytes / 1e3).toFixed(0)} kB; logits vs fp32: max |diff| ${diff.toExponential(1)}`);
    assert.ok(diff < 0.05);
    const classify = await pipeline('text-classification', join(work, `model-${dtype}`));
    const answer = await classify('a fine film');
    console.log(`  pipeline on the ${dtype} folder: ${answer.label} (${answer.score.toFixed(3)})`);
    assert.ok(['negative', 'positive'].includes(answer.label));
    for (const m of [q, reloaded]) m.dispose();
    classify.dispose();
  }
  small.dispose();
}

runInTempFolder(main);
