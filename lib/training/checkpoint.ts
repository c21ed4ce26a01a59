/**
 * Trainer checkpoints (outputDir/checkpoint-<step>: the model, its training state, blockprune_trainer_state.json):
 * written atomically, checked when read, the latest complete one found, older ones pruned.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, removeStaleTemps, removeTreeSync, renameDirectorySync, tempSibling, writeFileAtomicSync } from '../runtime/atomic';
import { BlockpruneError } from '../runtime/errors';
import type { BudgetState } from '../pruning/budget';
import type { RunFingerprint } from './run-fingerprint';
import type { Metrics } from './trainer-options';

/**
 * blockprune_trainer_state.json: where the run stood, and what defined it. The schema is ours, so is the name:
 * transformers' trainer_state.json has another schema (log_history, global_step...), and a file of that name
 * with ours would mislead its tools. Checkpoints written before (trainer_state.json, 'blockprune-trainer-1')
 * are still read.
 *
 * `epoch` means what it means in every log entry (and in transformers' logs): epochs of training done,
 * fractional: step / steps per epoch (1 after the first epoch's last step, 1.5 half way through the second).
 * Where a resume continues is `epochIndex` and `batchInEpoch`.
 */
export interface TrainerState {
  format: 'blockprune-trainer-2' | 'blockprune-trainer-1';
  /** Optimizer steps done (transformers' global_step). */
  step: number;
  /** Epochs of training done, fractional (see above). In a 'blockprune-trainer-1' file: epochIndex. */
  epoch: number;
  /** The 0-based epoch in progress (its shuffled order), and its batches done: where a resume continues. */
  epochIndex: number;
  batchInEpoch: number;
  totalSteps: number;
  seed: number;
  /** Metrics of each evaluation, with its step and epoch (as above). */
  history: Metrics[];
  pruning?: Record<string, unknown>;
  /** Ranks of the run that wrote it (absent: 1). */
  worldSize?: number;
  /** What defines the run (absent in checkpoints of older versions: resumed with a warning). */
  run?: RunFingerprint;
  /** Pruning to a budget: the Lagrangian multipliers at this step. */
  budget?: BudgetState;
}

export const STATE_FILE = 'blockprune_trainer_state.json';
/** What versions before wrote (the name transformers uses for its own schema): read on resume. */
const LEGACY_STATE_FILE = 'trainer_state.json';
const REQUIRED_FILES = ['config.json', 'model.safetensors', 'optimizer.safetensors', 'rng.safetensors'];

/** Checks a checkpoint directory; throws E_BAD_CHECKPOINT naming what is missing or broken. */
export function readCheckpointState(dir: string): TrainerState {
  for (const f of REQUIRED_FILES)
    if (!existsSync(join(dir, f))) throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir} is incomplete: ${f} is missing`);
  const file = [STATE_FILE, LEGACY_STATE_FILE].find((f) => existsSync(join(dir, f)));
  if (!file) throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir} is incomplete: ${STATE_FILE} is missing`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  } catch (e) {
    throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir}: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const format = file === STATE_FILE ? 'blockprune-trainer-2' : 'blockprune-trainer-1';
  // A 'blockprune-trainer-1' file's epoch was the epoch in progress: its position.
  if (format === 'blockprune-trainer-1' && state?.format === format) state.epochIndex = state.epoch;
  if (state?.format !== format || !Number.isInteger(state.step) || !Number.isInteger(state.epochIndex) || !Number.isInteger(state.batchInEpoch) || typeof state.epoch !== 'number')
    throw new BlockpruneError('E_BAD_CHECKPOINT', `checkpoint ${dir}: ${file} is not a blockprune trainer state${typeof state === 'object' && state !== null && 'log_history' in state ? " (it is transformers' Trainer state)" : ''}`);
  return state;
}

/** The checkpoint-<step> directories in outputDir, newest first: [name, step]. */
function checkpointDirs(outputDir: string): Array<[string, number]> {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((d) => /^checkpoint-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m): [string, number] => [m[0], Number(m[1])])
    .sort((a, b) => b[1] - a[1]);
}

/** The newest complete checkpoint in outputDir (partial ones are skipped), or undefined. */
export function latestCheckpoint(outputDir: string): string | undefined {
  for (const [name] of checkpointDirs(outputDir)) {
    try {
      readCheckpointState(join(outputDir, name));
      return join(outputDir, name);
    } catch {
      /* a partial or corrupt checkpoint: try the previous one */
    }
  }
  return undefined;
}

/**
 * Writes outputDir/checkpoint-<state.step> atomically: every file durably into a `.tmp-<pid>-...` sibling
 * directory, which is then renamed into place (a kill leaves the checkpoint complete or absent, never partial;
 * temporaries of killed runs are removed here). Older ones are pruned only after, each renamed away before
 * removal: the `keep` newest stay, the one just written always (a resume from an earlier step may leave later
 * ones from before). `rngStates`: every rank's generator state (data-parallel).
 */
/** What a checkpoint needs of a model (a BertModel, a Seq2SeqModel): its weights, and its training state beside them. */
export interface CheckpointModel {
  save(dir: string): Promise<void>;
  saveTrainingState(dir: string, rngStates?: Uint8Array[]): Promise<void>;
}

export async function writeCheckpoint(outputDir: string, model: CheckpointModel, state: TrainerState, rngStates: Uint8Array[] | undefined, keep: number): Promise<string> {
  const final = join(outputDir, `checkpoint-${state.step}`);
  ensureDir(outputDir);
  removeStaleTemps(outputDir);
  const tmp = tempSibling(final);
  try {
    await model.save(tmp);
    await model.saveTrainingState(tmp, rngStates);
    writeFileAtomicSync(join(tmp, STATE_FILE), JSON.stringify(state, null, 2));
    renameDirectorySync(tmp, final);
  } catch (e) {
    removeTreeSync(tmp);
    const code = (e as { code?: string }).code;
    // Say which checkpoint, with the path the user knows rather than the temporary one.
    if (code === 'E_NO_SPACE' || code === 'E_WRITE_FAILED')
      throw new BlockpruneError(code, `checkpoint ${final} not written: ${(e as Error).message.split(tmp).join(final)}`, { cause: e });
    throw e;
  }
  // Only now that the new one is complete do older ones go.
  const old = checkpointDirs(outputDir)
    .filter(([name]) => name !== `checkpoint-${state.step}`)
    .slice(keep - 1);
  for (const [name] of old) removeTreeSync(join(outputDir, name));
  return final;
}
