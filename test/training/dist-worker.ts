/**
 * One rank of the data-parallel tests (test/distributed.test.ts), run in a child process with torchrun's
 * variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or none (a single-process reference run).
 * DIST_TEST (JSON) says what to do; the result (losses, final weights and masks) goes to `<out>/result-<rank>.json`.
 *
 * Data: SST-2 sentences tokenized with bert-base-uncased (the dataset shards itself), or, with toy: true, a
 * TrainData without shard support (the trainer then splits each global batch itself).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassificationDataset } from '../../lib/data/classification-dataset';
import { loadGlue } from '../../lib/data/glue';
import { ProcessGroup } from '../../lib/training/distributed';
import { BertModel, ForwardBatch } from '../../lib/model/model';
import { PruningConfig } from '../../lib/pruning/config';
import { LogEntry, SparseTrainer, TrainData } from '../../lib/training/trainer';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';

interface Spec {
  data: string;
  out: string;
  examples: number;
  batchSize: number;
  epochs: number;
  toy?: boolean;
  dropout?: number;
  distil?: boolean;
  checkpointEvery?: number;
  resume?: boolean;
  /** This rank exits (code 3) right after this step. */
  dieAtStep?: number;
  dieRank?: number;
  /** This rank blocks forever (alive, silent) right after this step. */
  hangAtStep?: number;
  /** This rank asks to stop after this step (as Ctrl-C does). */
  stopAtStep?: number;
  stopRank?: number;
  timeoutMs?: number;
  /** Rank 0's evaluation throws (at the first epoch end). */
  evalThrows?: boolean;
  /** After an error, rank 0 stays alive this long before exiting (like a service that catches it). */
  lingerMs?: number;
}

class Toy implements TrainData {
  constructor(
    private readonly inner: ClassificationDataset,
    readonly length = inner.length,
  ) {}
  batches(batchSize: number, o: { shuffle?: boolean; seed?: number; epoch?: number }): Iterable<ForwardBatch> {
    return this.inner.batches(batchSize, { shuffle: o.shuffle, seed: o.seed, epoch: o.epoch });
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.DIST_TEST ?? '{}') as Spec;
  const opts = ProcessGroup.optionsFromEnv();
  const bucketMb = process.env.BLOCKPRUNE_TEST_BUCKET_MB ? Number(process.env.BLOCKPRUNE_TEST_BUCKET_MB) : undefined;
  const group = opts ? await ProcessGroup.init({ ...opts, timeoutMs: spec.timeoutMs ?? 60_000, bucketMb }) : undefined;
  const rank = group?.rank ?? 0;
  const tokenizer = BertTokenizer.fromDir(join(spec.data, 'bert-base-uncased'));
  const { examples } = await loadGlue('sst2', join(spec.data, 'sst2', 'dev.tsv'), { limit: spec.examples });
  const dataset = new ClassificationDataset(examples, tokenizer, { maxLength: 48 });
  const train: TrainData = spec.toy ? new Toy(dataset) : dataset;
  const config = {
    vocab_size: tokenizer.vocabSize,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 64,
    max_position_embeddings: 64,
    num_labels: 2,
    hidden_dropout_prob: spec.dropout ?? 0,
    attention_probs_dropout_prob: spec.dropout ?? 0,
  };
  // Different seeds on purpose: syncModel must make every rank start from rank 0's weights.
  const model = await BertModel.fromConfig(config, { task: 'text-classification', seed: 11 + rank });
  const teacher = spec.distil ? await BertModel.fromConfig(config, { task: 'text-classification', seed: 99 + rank }) : undefined;
  const pruning = PruningConfig.preset('hybrid', 5, { attentionBlockRows: 8, attentionBlockCols: 8, initialWarmup: 1, finalWarmup: 1 });
  const losses: number[] = [];
  const evals: number[] = [];
  const trainer = new SparseTrainer({
    model,
    pruning,
    train,
    epochs: spec.epochs,
    batchSize: spec.batchSize,
    learningRate: 1e-3,
    warmupSteps: 2,
    seed: 5,
    logEvery: 1,
    outputDir: join(spec.out, 'checkpoints'),
    checkpointEvery: spec.checkpointEvery,
    logFile: join(spec.out, 'log.jsonl'),
    resume: spec.resume ? true : undefined,
    handleSigint: false,
    distributed: group,
    distillation: teacher ? { teacher } : undefined,
    evaluate: async (m) => {
      if (spec.evalThrows) throw new Error('evaluation failed on purpose');
      let loss = 0;
      for (const b of dataset.batches(32)) loss += ((await m.forward(b)).logits.data as Float32Array)[0];
      return { probe: loss };
    },
    onLog: (e: LogEntry) => {
      if (e.type === 'step') losses.push(e.loss as number);
      if (e.type === 'eval') evals.push(e.probe as number);
    },
  });
  // Test hooks on this rank's own step count (onLog runs on rank 0 only).
  const dies = spec.dieAtStep !== undefined && rank === (spec.dieRank ?? 1);
  const stops = spec.stopAtStep !== undefined && rank === (spec.stopRank ?? 1);
  const hangs = spec.hangAtStep !== undefined && rank === 1;
  if (dies || stops || hangs) {
    const orig = model.trainStep.bind(model) as (...a: unknown[]) => Promise<unknown>;
    let steps = 0;
    (model as unknown as { trainStep: unknown }).trainStep = async (...a: unknown[]) => {
      steps++;
      if (stops && steps === spec.stopAtStep) trainer.stop();
      const r = await orig(...a);
      if (dies && steps === spec.dieAtStep) process.exit(3);
      if (hangs && steps === spec.hangAtStep) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      return r;
    };
  }
  const r = await trainer.train();
  const sd = r.model.stateDict();
  const weights: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(sd)) if (t.dtype === 'F32') weights[k] = Array.from(t.data as Float32Array);
  const masks: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(await r.model.masks())) masks[k] = Array.from(t.data as Uint8Array);
  writeFileSync(
    join(spec.out, `result-${rank}.json`),
    JSON.stringify({ rank, worldSize: r.worldSize, steps: r.steps, interrupted: r.interrupted, losses, evals, history: r.history, weights, masks }),
  );
  if (group) await group.destroy();
}

main().catch((e) => {
  process.stderr.write(`dist-worker error ${(e as { code?: string }).code ?? ''}: ${(e as Error).message}\n`);
  const spec = JSON.parse(process.env.DIST_TEST ?? '{}') as Spec;
  setTimeout(() => process.exit(1), process.env.RANK === '0' ? (spec.lingerMs ?? 0) : 0);
});
