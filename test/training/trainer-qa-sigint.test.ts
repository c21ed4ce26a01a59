/**
 * The trainer beyond classification and in a real process: question answering on the SQuAD excerpt
 * (windows, answer positions, EM/F1 through the HF-style post-processing), and Ctrl-C (SIGINT) in a child
 * process writing a checkpoint before it stops.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QADataset } from '../../lib/data/qa-dataset';
import { loadSquad } from '../../lib/data/squad';
import { squadMetrics } from '../../lib/training/metrics';
import { BertModel } from '../../lib/model/model';
import { packageRoot } from '../../lib/runtime/native';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { SparseTrainer } from '../../lib/training/trainer';
import { shared, tempDir, withShared } from '../helpers';

withShared('data/squad/dev-v2.0-first5articles.json', 'data/bert-base-uncased').serial('question answering: train a few steps on SQuAD windows, evaluate EM/F1 on held-out questions', async (t) => {
  const file = shared('data/squad/dev-v2.0-first5articles.json');
  const tokDir = shared('data/bert-base-uncased');
  const tok = BertTokenizer.fromDir(tokDir);
  const { examples } = await loadSquad(file, { dropImpossible: true });
  const train = new QADataset(examples.slice(0, 96), tok, { maxLength: 128, docStride: 48 });
  const held = examples.slice(600, 640);
  const evalSet = new QADataset(held, tok, { maxLength: 128, docStride: 48 });
  const model = await BertModel.fromConfig(
    { vocab_size: tok.vocabSize, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 128 },
    { task: 'question-answering', seed: 1 },
  );
  const evaluate = async (m: BertModel) => {
    const c = evalSet.logitCollector();
    for (const b of evalSet.batches(32)) {
      const out = await m.forward(b);
      c.add(b, out.start_logits.data as Float32Array, out.end_logits.data as Float32Array);
    }
    const preds = evalSet.postprocess(c.start, c.end, c.seqLen, { maxAnswerLength: 30 });
    const r = squadMetrics(preds, held);
    return { exactMatch: r.exactMatch, f1: r.f1 };
  };
  const losses: number[] = [];
  const r = await new SparseTrainer({
    model,
    train,
    evaluate,
    epochs: 2,
    batchSize: 16,
    learningRate: 1e-3,
    seed: 1,
    logEvery: 1,
    handleSigint: false,
    onLog: (e) => e.type === 'step' && losses.push(e.loss as number),
  }).train();
  t.log(`${train.length} windows; loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}; held-out EM ${r.history[1].exactMatch.toFixed(1)} F1 ${r.history[1].f1.toFixed(1)}`);
  t.true(losses[losses.length - 1] < losses[0], 'the QA loss goes down');
  t.true(r.history[1].f1 >= 0 && r.history[1].f1 <= 100);
  model.dispose();
});

test.serial('Ctrl-C (SIGINT) in a training process writes a checkpoint and stops cleanly', async (t) => {
  const tmp = tempDir();
  try {
    const script = join(tmp.path, 'run.js');
    const lib = join(packageRoot(), 'dist', 'lib');
    writeFileSync(
      script,
      `
const { BertModel } = require(${JSON.stringify(join(lib, 'model', 'model.js'))});
const { SparseTrainer } = require(${JSON.stringify(join(lib, 'training', 'trainer.js'))});
const data = { length: 4096, *batches(bs, o) { for (let i = 0; i < 4096 / bs; i++) {
  const ids = new Int32Array(bs * 16).map((_, k) => 5 + ((k * 7 + i + (o.epoch || 0)) % 50));
  yield { inputIds: ids, batchSize: bs, seqLen: 16, labels: new Int32Array(bs).map((_, k) => (k + i) % 2) }; } } };
(async () => {
  const model = await BertModel.fromConfig({ vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32 });
  const r = await new SparseTrainer({ model, train: data, epochs: 50, batchSize: 8, outputDir: ${JSON.stringify(join(tmp.path, 'out'))}, logEvery: 1,
    onLog: (e) => { if (e.type === 'step' && e.step === 5) process.stdout.write('STEP5\\n'); } }).train();
  console.log(JSON.stringify({ interrupted: r.interrupted, steps: r.steps, lastCheckpoint: r.lastCheckpoint }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    let sent = false;
    const code: number | null = await new Promise((resolve) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('STEP5') && !sent) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    t.is(code, 0, err);
    const result = JSON.parse(out.trim().split('\n').pop()!);
    t.true(result.interrupted);
    t.true(result.steps >= 5 && result.steps < 50 * 512);
    t.true(existsSync(join(result.lastCheckpoint, 'blockprune_trainer_state.json')), 'a complete checkpoint was written');
    t.deepEqual(readdirSync(join(tmp.path, 'out')).filter((d) => d.endsWith('.tmp')), []);
    t.regex(err, /stopping after this step/);
  } finally {
    tmp.cleanup();
  }
});
