/**
 * SparseTrainer: fine-pruning as the reference does it (weights and mask scores trained together, cubic
 * threshold schedule, L1 on scores, optional distillation from a dense teacher, evaluation each epoch),
 * with checkpoints that work: model + scores + optimizer + RNG + schedule position, written atomically, and
 * resumable to the same result. Each step's arithmetic is one native call (BertModel.trainStep).
 *
 * Dropout draws from libtorch's process-wide generator, seeded at the start and saved in checkpoints: a run
 * is reproducible when it is the only training in its process at a time.
 *
 * Data-parallel (`distributed`: a ProcessGroup): each rank reads its own rows of every global batch, the
 * gradients of weights and mask scores are averaged over the global batch (bucketed all-reduce) before the
 * step, so every rank applies the same update and schedules run on the global step. Only rank 0 writes logs
 * and checkpoints (with every rank's generator state) and runs `evaluate`; the others wait for its metrics.
 * A Ctrl-C on any rank makes all of them checkpoint and stop at the same step. Resume needs the same world
 * size and a checkpoint directory every rank can read.
 *
 * The loop is here; its options are in trainer-options.ts, checkpoints in checkpoint.ts, what defines a run
 * (checked on resume) in run-fingerprint.ts, the data contract in train-data.ts. This module re-exports their
 * public names: it is training's entry point.
 */
import { join, resolve } from 'node:path';
import { appendDurableSync, ensureDir } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import { BertModel, ForwardBatch } from '../model/model';
import { native } from '../runtime/native';
import { ProgressDisplay } from '../runtime/progress';
import '../pruning/model-pruning'; // model.patch(), setThreshold(), compact(), fillZeros(), regularization(), budgetCost()
import { Budget } from '../pruning/budget';
import { shardBatch } from './distributed';
import { stopOnSigint } from './sigint';
import './model-training'; // model.trainStep(), loadTrainingState()
import type { TrainStepResult } from './model-training';
import { TrainerState, writeCheckpoint, latestCheckpoint, readCheckpointState } from './checkpoint';
import { checkResume, RunFingerprint } from './run-fingerprint';
import { logEntryScalars, TensorBoardWriter } from './tensorboard';
import { checkTrainerOptions, FilledOptions, LogEntry, Metrics, SparseTrainerOptions, TrainProgress } from './trainer-options';
import { dataFingerprint } from './train-data';

export { latestCheckpoint, readCheckpointState } from './checkpoint';
export { checkAllowResumeMismatch, RUN_FIELDS } from './run-fingerprint';
export type { RunField, RunFingerprint } from './run-fingerprint';
export type { DistillationOptions, FilledOptions, LogEntry, Metrics, SparseTrainerOptions, TrainProgress } from './trainer-options';
export type { TrainData } from './train-data';

export interface TrainResult {
  /** The trained model (the compact filled model when `filled` was asked for). */
  model: BertModel;
  steps: number;
  epochs: number;
  interrupted: boolean;
  history: Metrics[];
  lastCheckpoint?: string;
  /** Processes that trained together (1 unless distributed). */
  worldSize: number;
  /** With a budget: the target, what the compact model's masks cost (predicted by the cost model), and the final threshold. */
  budget?: BudgetResult;
}

export interface BudgetResult {
  unit: 'ms' | 'parameters';
  target: number;
  dense: number;
  /** The hard masks' cost at `threshold` (the compact model's, by the cost model). */
  cost: number;
  /** The threshold the masks were fitted to (the final threshold, or above it to meet the target). */
  threshold: number;
  met: boolean;
  heads: number[];
  units: number[];
}

/** HF get_linear_schedule_with_warmup: 0 -> 1 over warmup steps, then linearly to 0 at the last step. */
export function linearSchedule(step: number, totalSteps: number, warmupSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

export class SparseTrainer {
  readonly options: SparseTrainerOptions;
  private model: BertModel;
  private stopRequested = false;
  /** This run's fingerprint, written into each checkpoint. */
  private fingerprint?: RunFingerprint;
  /** Pruning to a budget: the threshold the masks were fitted to at the end (evaluation uses it). */
  private fittedThreshold?: number;
  /** This run's TensorBoard events file (rank 0, with tensorboardDir). */
  private events?: TensorBoardWriter;

  constructor(options: SparseTrainerOptions) {
    checkTrainerOptions(options);
    this.options = options;
    this.model = options.model;
  }

  /** Asks the loop to write a checkpoint and stop after the current step (what Ctrl-C does). */
  stop(): void {
    this.stopRequested = true;
  }

  /** stop(), saying whether it had been asked already (a second Ctrl-C quits). */
  private requestStop(): boolean {
    const again = this.stopRequested;
    this.stopRequested = true;
    return again;
  }

  private get rank(): number {
    return this.options.distributed?.rank ?? 0;
  }

  /** Logs are rank 0's (the others' entries would repeat its global figures). */
  private log(entry: LogEntry): void {
    if (this.rank !== 0) return;
    // Durable, and a failed append is thrown (a full disk stops the run with E_NO_SPACE) with the file cut
    // back to its last complete line.
    if (this.options.logFile) appendDurableSync(this.options.logFile, JSON.stringify(entry) + '\n');
    this.events?.scalars(entry.step, logEntryScalars(entry));
    this.options.onLog?.(entry);
  }

  async train(): Promise<TrainResult> {
    try {
      return await this.run();
    } catch (e) {
      // A failure on this rank (its data, its evaluation, a collective): close the group at once so that the
      // other ranks fail now rather than after the timeout, or hours later for one waiting on an evaluation.
      await this.options.distributed?.abort();
      throw e;
    }
  }

  private async run(): Promise<TrainResult> {
    const o = this.options;
    const batchSize = o.batchSize ?? 32;
    const stepsPerEpoch = Math.ceil(o.train.length / batchSize);
    const epochs = o.epochs ?? 3;
    const totalSteps = o.maxSteps ?? epochs * stepsPerEpoch;
    const seed = o.seed ?? 42;
    const warmup = o.warmupSteps ?? 0;
    const lr = o.learningRate ?? 5e-5;
    const pruning = o.pruning;
    const keep = o.keepCheckpoints ?? 2;
    const saveSteps = o.saveSteps ?? o.checkpointEvery;
    const group = o.distributed;
    const worldSize = group?.worldSize ?? 1;
    if (o.logFile && this.rank === 0) ensureDir(resolve(o.logFile, '..'));
    if (o.tensorboardDir && this.rank === 0) this.events = new TensorBoardWriter(resolve(o.tensorboardDir));
    if (group) {
      // Every rank must run the same schedule on the same data: compare what decides it before any step.
      const plan = { length: o.train.length, batchSize, totalSteps, seed, epochs, warmup, lr, pruning: pruning?.options ?? null, teacher: !!o.distillation };
      const plans = await group.allgatherJson(plan);
      plans.forEach((p, r) => {
        if (JSON.stringify(p) !== JSON.stringify(plans[0]))
          throw new BlockpruneError('E_DISTRIBUTED', `rank ${r} runs another plan than rank 0: ${JSON.stringify(p)} vs ${JSON.stringify(plans[0])} (same data, batch size, epochs and options on every rank)`);
      });
    }

    let step = 0;
    /** The 0-based epoch in progress (its shuffled order); logs and checkpoints say epochsDone(step). */
    let epoch = 0;
    let batchInEpoch = 0;
    // "epoch" in logs and checkpoints, as transformers logs it: epochs done, fractional (checkpoint.ts).
    const epochsDone = (s: number) => Math.round((s / stepsPerEpoch) * 1e4) / 1e4;
    let history: Metrics[] = [];
    /** A resumed run's budget multipliers (its checkpoint's). */
    let resumedBudget: TrainerState['budget'];
    let lastCheckpoint: string | undefined;
    const m = this.model;
    this.fingerprint = {
      worldSize,
      seed,
      batchSize,
      epochs,
      maxSteps: o.maxSteps ?? null,
      totalSteps,
      data: dataFingerprint(o.train),
      pruning: pruning ? { ...pruning.options } : null,
      model: { hidden: m.dimensions.hiddenSize, vocab: m.dimensions.vocabSize, labels: m.labels.length, layers: m.layers.map((l) => [l.heads, l.intermediateSize]) },
    };

    // Resume: the checkpoint's model (patched again from its saved plan), optimizer, RNG and position.
    const resumeDir = typeof o.resume === 'string' ? resolve(o.resume) : o.resume && o.outputDir ? latestCheckpoint(resolve(o.outputDir)) : undefined;
    if (o.resume && !resumeDir) throw new BlockpruneError('E_BAD_CHECKPOINT', `no complete checkpoint in ${o.outputDir}`);
    if (resumeDir) {
      const state = readCheckpointState(resumeDir);
      resumedBudget = state.budget;
      checkResume(resumeDir, state, this.fingerprint, o.allowResumeMismatch ?? false, (note) => this.log({ type: 'stage', step: state.step, epoch: epochsDone(state.step), ...note }));
      // The checkpoint's model replaces the one given (which is left as it was): use result.model.
      const loaded = await BertModel.fromPretrained(resumeDir, { device: this.model.device });
      await loaded.loadTrainingState(resumeDir, this.rank);
      this.model = loaded;
      ({ step, epochIndex: epoch, batchInEpoch, history } = state);
      // An older checkpoint's history has the epoch index there: epochs done, as now.
      if (state.format === 'blockprune-trainer-1') history = history.map((h) => ({ ...h, epoch: epochsDone(h.step) }));
      lastCheckpoint = resumeDir;
      this.log({ type: 'stage', step, epoch: epochsDone(step), resumedFrom: resumeDir });
    } else {
      native().manualSeed(seed);
      if (pruning && !this.model.patched) await this.model.patch(pruning);
    }
    // The dense cost is the model's before pruning: patching keeps its geometry, and a resumed run's checkpoint
    // is still patched (compaction comes after training).
    const budget = o.budget ? new Budget(o.budget, this.model, resumedBudget) : undefined;
    if (budget && pruning) await budget.begin(this.model, pruning.options.finalThreshold);
    if (budget && this.rank === 0 && !resumeDir)
      this.log({ type: 'stage', step, epoch: epochsDone(step), budget: { unit: budget.cost.unit, target: budget.target, dense: budget.dense, start: budget.start } });
    if (group) {
      // Same weights, scores and (distillation) teacher on every rank before the first step.
      await group.syncModel(this.model);
      if (o.distillation) await group.syncModel(o.distillation.teacher);
    }

    const removeSigint = (o.handleSigint ?? true) ? stopOnSigint(() => this.requestStop()) : undefined;
    const started = Date.now();
    const firstStep = step;
    // The bar is rank 0's (the others' would draw the same steps over it).
    const bar = (o.progress ?? (!o.onProgress && !!process.stderr.isTTY)) && this.rank === 0 ? new ProgressDisplay({ label: 'train', total: totalSteps, unit: 'steps' }) : undefined;
    if (bar && step > 0) bar.update(step);
    let interrupted = false;
    try {
      const po = pruning?.options;
      const teacher = o.distillation?.teacher;
      const ownShards = !!group && o.train.shardable === true;
      const shard = group ? { rank: group.rank, worldSize } : undefined;
      while (step < totalSteps && !interrupted) {
        let i = 0;
        for (const global of o.train.batches(batchSize, { shuffle: true, seed, epoch, shard: ownShards ? shard : undefined })) {
          if (i++ < batchInEpoch) continue; // resuming inside an epoch: same order, skip what was done
          // A data-parallel rank's rows (none, in a short last batch, is fine: it still joins the all-reduce).
          const batch = !group ? global : ownShards ? (global.batchSize > 0 ? global : null) : shardBatch(global, group.rank, worldSize);
          const sched = pruning ? pruning.schedule(step, totalSteps, warmup) : undefined;
          const stepOptions = {
            lr,
            maskLr: po?.maskScoresLearningRate ?? 1e-2,
            weightDecay: o.weightDecay ?? 0,
            lrScale: linearSchedule(step, totalSteps, warmup),
            maxGradNorm: o.maxGradNorm ?? 1.0,
            ...(o.mixedPrecision ? { mixedPrecision: o.mixedPrecision } : {}),
            threshold: sched?.threshold,
            regularization: po?.regularization ?? 'disabled',
            lambda: sched?.lambda ?? 0,
            attentionLambda: po?.attentionLambda ?? 1,
            denseLambda: po?.denseLambda ?? 1,
            alphaCe: o.distillation?.alphaCe ?? 0.5,
            alphaTeacher: o.distillation?.alphaTeacher ?? 0.5,
            temperature: o.distillation?.temperature ?? 2,
            ...(budget && po ? { budget: budget.spec(po.finalThreshold, sched?.progress) } : {}),
          };
          const r: TrainStepResult = group
            ? await this.model.trainStep(batch, stepOptions, teacher, { group, stop: this.stopRequested })
            : await this.model.trainStep(batch as ForwardBatch, stepOptions, teacher);
          if (budget && r.budget) budget.update(r.budget, sched?.progress);
          step++;
          batchInEpoch++;
          if (step % (o.logEvery ?? 10) === 0 || step === totalSteps) {
            const groups = r.regularization.groups;
            const entry: LogEntry = {
              type: 'step',
              step,
              epoch: epochsDone(step),
              loss: r.loss,
              ce: r.taskLoss,
              distil: r.distilLoss,
              regu: r.reguLoss,
              threshold: sched?.threshold,
              lambda: sched?.lambda,
              lr: lr * linearSchedule(step - 1, totalSteps, warmup),
              gradNorm: r.gradNorm,
              ...(group ? { syncMs: r.syncMs } : {}),
              density: Object.fromEntries(Object.entries(groups).map(([k, g]) => [k, g.density])),
              ...(budget && r.budget ? { budget: { expected: r.budget.expected, hard: r.budget.hard, target: budget.targetAt(sched?.progress ?? 1), finalTarget: budget.target, lambda1: budget.lambda1, lambda2: budget.lambda2 } } : {}),
              elapsedSec: (Date.now() - started) / 1000,
            };
            this.log(entry);
          }
          this.progress(bar, r, { step, totalSteps, epoch: epochsDone(step), loss: r.loss, rate: (step - firstStep) / Math.max(1e-3, (Date.now() - started) / 1000), threshold: sched?.threshold });
          // Within an epoch: its end evaluates and checkpoints below (as does the last step, which ends the loop).
          const inside = batchInEpoch < stepsPerEpoch && step < totalSteps;
          if (o.evalSteps && step % o.evalSteps === 0 && inside) {
            const metrics = await this.evaluateNow(epochsDone(step), step);
            if (metrics) history.push({ epoch: epochsDone(step), step, ...metrics });
          }
          if (o.outputDir && saveSteps && step % saveSteps === 0 && inside)
            lastCheckpoint = await this.checkpoint({ step, epoch: epochsDone(step), epochIndex: epoch, batchInEpoch, totalSteps, seed, history, budget: budget?.state }, keep);
          // Data-parallel: stop when any rank asked (the vote rode on this step's all-reduce), all at this step.
          if (group ? r.stop : this.stopRequested) {
            interrupted = true;
            break;
          }
          if (step >= totalSteps) break;
        }
        if (interrupted) break;
        const metrics = await this.evaluateNow(epochsDone(step), step);
        if (metrics) history.push({ epoch: epochsDone(step), step, ...metrics });
        epoch++;
        batchInEpoch = 0;
        if (o.outputDir) lastCheckpoint = await this.checkpoint({ step, epoch: epochsDone(step), epochIndex: epoch, batchInEpoch, totalSteps, seed, history, budget: budget?.state }, keep);
      }
      if (interrupted && o.outputDir) lastCheckpoint = await this.checkpoint({ step, epoch: epochsDone(step), epochIndex: epoch, batchInEpoch, totalSteps, seed, history, budget: budget?.state }, keep);
    } finally {
      bar?.stop();
      removeSigint?.();
    }
    if (pruning && !interrupted) await this.model.setThreshold(pruning.options.finalThreshold);
    let budgetResult: BudgetResult | undefined;
    if (budget && pruning && !interrupted) {
      const sigmoied = [pruning.options.attentionPruningMethod, pruning.options.densePruningMethod].every((m) => m.startsWith('sigmoied_threshold') || m.startsWith('disabled'));
      const fit = await budget.fit(this.model, pruning.options.finalThreshold, sigmoied);
      budgetResult = { unit: budget.cost.unit, target: budget.target, dense: budget.dense, cost: fit.cost.hard, threshold: fit.threshold, met: fit.met, heads: fit.cost.hardHeads, units: fit.cost.hardUnits };
      this.log({ type: 'stage', step, epoch: epochsDone(step), stage: 'budget', ...budgetResult });
      if (fit.threshold !== pruning.options.finalThreshold) {
        // The masks changed after the last evaluation: evaluate the ones the run ends with.
        this.fittedThreshold = fit.threshold;
        const metrics = await this.evaluateNow(epochsDone(step), step);
        if (metrics) history.push({ epoch: epochsDone(step), step, ...metrics });
      }
    }
    let model = this.model;
    if (o.filled && !interrupted) model = await this.filledStage(o.filled, history, step, epochsDone(step));
    return { model, steps: step, epochs: epoch, interrupted, history, lastCheckpoint, worldSize, ...(budgetResult ? { budget: budgetResult } : {}) };
  }

  /** After each step: the onProgress hook, and the bar with the loss, threshold and densities. */
  private progress(bar: ProgressDisplay | undefined, r: TrainStepResult, p: TrainProgress): void {
    const groups = Object.entries(r.regularization.groups);
    if (groups.length) p.density = Object.fromEntries(groups.map(([k, g]) => [k, g.density]));
    this.options.onProgress?.(p);
    if (!bar) return;
    const d = groups.map(([k, g]) => `${k} ${(100 * g.density).toFixed(1)}%`).join(' ');
    bar.update(p.step, `epoch ${p.epoch.toFixed(2)} loss ${p.loss.toFixed(4)}${p.threshold !== undefined ? ` t ${p.threshold.toFixed(4)}` : ''}${d ? ` ${d}` : ''}`);
  }

  private async evaluateNow(epoch: number, step: number): Promise<Metrics | undefined> {
    if (!this.options.evaluate) return undefined;
    const pruning = this.options.pruning;
    // Evaluation uses the final threshold, as the reference does.
    if (pruning && this.model.patched) await this.model.setThreshold(this.fittedThreshold ?? pruning.options.finalThreshold);
    const group = this.options.distributed;
    if (group && !group.isMain) {
      // Rank 0 evaluates; the others take its figures (and notice at once if it dies meanwhile).
      return group.shareFromMain<Metrics>('eval', undefined, this.options.evaluationTimeoutMs ?? 6 * 3600_000);
    }
    const metrics = await this.options.evaluate(this.model);
    if (group) await group.shareFromMain('eval', metrics, 0);
    const entry: LogEntry = { type: 'eval', step, epoch, ...metrics };
    if (this.model.patched) {
      const reg = await this.model.regularization({ regularization: 'l1' });
      entry.density = Object.fromEntries(Object.entries(reg.groups).map(([k, g]) => [k, g.density]));
    }
    this.log(entry);
    return metrics;
  }

  /**
   * Writes checkpoint-<step> (lib/training/checkpoint.ts). A collective in a data-parallel run: every rank's
   * dropout generator goes into rank 0's checkpoint, which rank 0 alone writes.
   */
  private async checkpoint(state: Omit<TrainerState, 'format' | 'pruning' | 'worldSize' | 'run'>, keep: number): Promise<string> {
    const out = resolve(this.options.outputDir!);
    const group = this.options.distributed;
    const rngStates = group ? await group.allgather(native().rngState()) : undefined;
    if (group && !group.isMain) return join(out, `checkpoint-${state.step}`);
    const full: TrainerState = {
      format: 'blockprune-trainer-2',
      ...state,
      pruning: this.options.pruning ? { ...this.options.pruning.options } : undefined,
      worldSize: group?.worldSize ?? 1,
      run: this.fingerprint,
    };
    const dir = await writeCheckpoint(out, this.model, full, rngStates, keep);
    this.log({ type: 'checkpoint', step: state.step, epoch: state.epoch, dir });
    return dir;
  }

  /** Compact, fill zeros with small noise, fine-tune without masks (with distillation if a teacher is set). */
  private async filledStage(f: FilledOptions, history: Metrics[], step: number, epoch: number): Promise<BertModel> {
    const { model: compact, report } = await this.model.compact('dense');
    const filled = await compact.fillZeros(this.options.seed ?? 42);
    this.log({ type: 'stage', step, epoch, stage: 'filled', parameters: report.parametersAfter, filled });
    const stage = new SparseTrainer({
      ...this.options,
      model: compact,
      pruning: undefined,
      budget: undefined,
      epochs: f.epochs,
      maxSteps: undefined,
      learningRate: f.learningRate ?? this.options.learningRate,
      filled: undefined,
      resume: undefined,
      outputDir: this.options.outputDir ? join(this.options.outputDir, 'filled') : undefined,
      tensorboardDir: this.options.tensorboardDir ? join(this.options.tensorboardDir, 'filled') : undefined,
    });
    const r = await stage.train();
    for (const h of r.history) history.push({ stage: 1, ...h });
    return r.model;
  }
}
