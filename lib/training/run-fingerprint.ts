/**
 * What defines a training run (RunFingerprint), stored in each checkpoint, and the check a resume makes against
 * it: a checkpoint of another run is refused (E_RESUME_MISMATCH naming the field) unless allowed.
 */
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';

/**
 * What defines a run, stored in each checkpoint's trainer_state.json: a resume whose own values differ is
 * another run. totalSteps follows from epochs, maxSteps, batch size and data, so it is not compared itself.
 */
export interface RunFingerprint {
  worldSize: number;
  seed: number;
  batchSize: number;
  epochs: number;
  maxSteps: number | null;
  totalSteps: number;
  /** Row count and a hash of a sample of rows (TrainData.fingerprint). */
  data: { length: number; hash: string };
  /** The pruning options (null: dense fine-tuning). */
  pruning: Record<string, unknown> | null;
  /** The model's geometry: hidden size, vocabulary, labels, heads and FFN width of each layer. */
  model: { hidden: number; vocab: number; labels: number; layers: Array<[number, number]> };
}

/** The fields a resume compares, in this order; allowResumeMismatch names them. */
export const RUN_FIELDS = ['worldSize', 'seed', 'batchSize', 'epochs', 'maxSteps', 'data', 'pruning', 'model'] as const;
export type RunField = (typeof RUN_FIELDS)[number];

/** allowResumeMismatch: a boolean or a list of RUN_FIELDS. */
export function checkAllowResumeMismatch(name: string, allow: unknown): void {
  if (typeof allow === 'boolean') return;
  if (!Array.isArray(allow)) throw v.invalidParameterError(name, `a boolean or an array of ${RUN_FIELDS.join(', ')}`, allow);
  allow.forEach((f, i) => v.oneOf(`${name}[${i}]`, f, RUN_FIELDS));
}

/** The first place two JSON values differ (undefined when equal), descending into objects: 'pruning.finalThreshold'. */
function firstDifference(a: unknown, b: unknown, path: string): { path: string; a: unknown; b: unknown } | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (v.is.object(a) && v.is.object(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
  }
  return { path, a, b };
}

/**
 * Refuses a checkpoint of another run (E_RESUME_MISMATCH naming the first field that differs and both
 * values) unless `allow` (allowResumeMismatch) allows that field. A checkpoint without a fingerprint (older
 * versions) is resumed with a warning, after the two checks those versions made (world size, total steps).
 * `note` receives what the trainer logs: that warning, or the differences allowed.
 */
export function checkResume(
  dir: string,
  saved: { run?: RunFingerprint; worldSize?: number; totalSteps: number },
  run: RunFingerprint,
  allow: boolean | readonly RunField[],
  note: (entry: { warning: string } | { resumeMismatchAllowed: string[] }) => void,
): void {
  const allowed = (f: RunField) => f !== 'worldSize' && (allow === true || (Array.isArray(allow) && allow.includes(f)));
  const mismatch = (field: string, theirs: unknown, ours: unknown, hint = '') =>
    new BlockpruneError(
      'E_RESUME_MISMATCH',
      `checkpoint ${dir} was made by another run: ${field} is ${JSON.stringify(theirs)} in the checkpoint, ${JSON.stringify(ours)} in this run` +
        (hint || ` (resume with the same value, or allow it: allowResumeMismatch: ['${field.split('.')[0]}'], --allow-resume-mismatch ${field.split('.')[0]})`),
    );
  const old = saved.run;
  if (!old) {
    const msg = `checkpoint ${dir} does not record what defined its run (an older version wrote it): resuming without checking seed, batch size, data, pruning plan and model`;
    process.emitWarning(msg, { code: 'BLOCKPRUNE_RESUME_UNCHECKED' });
    note({ warning: msg });
    if ((saved.worldSize ?? 1) !== run.worldSize) throw mismatch('worldSize', saved.worldSize ?? 1, run.worldSize, ': resume with the same world size');
    if (saved.totalSteps !== run.totalSteps) throw mismatch('totalSteps', saved.totalSteps, run.totalSteps, ': use the same epochs, batch size and data');
    return;
  }
  const differ: string[] = [];
  for (const f of RUN_FIELDS) {
    const d = firstDifference(old[f], run[f], f);
    if (!d) continue;
    if (f === 'worldSize') throw mismatch(f, d.a, d.b, ': resume with the same world size (the checkpoint holds one generator state per rank)');
    if (!allowed(f)) throw mismatch(d.path, d.a, d.b);
    differ.push(`${d.path} ${JSON.stringify(d.a)} -> ${JSON.stringify(d.b)}`);
  }
  if (differ.length) note({ resumeMismatchAllowed: differ });
}
