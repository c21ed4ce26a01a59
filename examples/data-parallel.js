// The README's "### Data-parallel training" program, runnable: `launch` starts 2 ranks of this same file on this
// machine (as torchrun does); each rank joins the process group from torchrun's variables and trains its share
// of every global batch; rank 0 writes the checkpoints. `node examples/data-parallel.js`
'use strict';
const assert = require('node:assert/strict');
const { join } = require('node:path');
const { BertModel, BertTokenizer, ClassificationDataset, ProcessGroup, PruningConfig, SparseTrainer, buildInfo, launch } = require('blockprune');
const { SENTENCES, makeTinyModel, runInTempFolder } = require('./tiny-model.js');

/** One rank: the README's program. The launcher passed the model folder and the output folder. */
async function rank(modelDir, outputDir) {
  const model = await BertModel.fromPretrained(modelDir);
  const pruning = PruningConfig.hybrid(20);
  const examples = Array.from({ length: 4 }, () => SENTENCES.map(([text, label]) => ({ text, label }))).flat();
  const train = new ClassificationDataset(examples, BertTokenizer.fromDir(modelDir), { maxLength: 16 });
  const group = await ProcessGroup.init(ProcessGroup.optionsFromEnv()); // or { rank, worldSize, masterAddr, masterPort }
  const r = await new SparseTrainer({ model, pruning, train, epochs: 2, batchSize: 8, distributed: group, outputDir }).train();
  console.log(`rank ${group.rank}: ${r.steps} steps in a world of ${r.worldSize}, checkpoint ${r.lastCheckpoint ?? '(written by rank 0)'}`);
  await group.destroy();
  model.dispose();
}

async function main(work) {
  if (!buildInfo().distributedBackends.includes('gloo')) {
    console.log('this build has no Gloo: data-parallel training on CPU is not available (see the README)');
    return;
  }
  const modelDir = await makeTinyModel(join(work, 'model'));
  const result = await launch({ nproc: 2, script: __filename, args: [modelDir, join(work, 'ckpt')] });
  assert.equal(result.code, 0, `a rank failed: ${JSON.stringify(result.firstFailure)}`);
  console.log(`both ranks done, exit code ${result.code}`);
}

if (process.env.RANK === undefined) runInTempFolder(main);
else
  rank(process.argv[2], process.argv[3]).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
