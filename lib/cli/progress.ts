/**
 * The commands' progress on stderr (runtime/progress.ts draws it: a bar with rate and ETA on a terminal, a
 * plain line every few seconds otherwise): downloads by hub id, the job's training stages through
 * SparseTrainer's onProgress hook, evaluations batch by batch, benchmark rounds.
 */
import type { DownloadProgress } from '../hub/hub';
import { ProgressDisplay, type ProgressStream } from '../runtime/progress';
import type { TrainProgress } from '../training/trainer';

/** An onProgress callback for downloads: one display per file, in MB. */
export function downloadProgress(stream: ProgressStream = process.stderr): (p: DownloadProgress) => void {
  let current: { key: string; display: ProgressDisplay } | undefined;
  return (p) => {
    const key = `${p.id}/${p.file}`;
    if (current?.key !== key) {
      current?.display.stop();
      current = { key, display: new ProgressDisplay({ label: `${p.id} ${p.file}`, total: p.total, unit: 'MB', scale: 1e6, stream }) };
    }
    current.display.update(p.bytes);
  };
}

/** SparseTrainer's onProgress for one stage of the job ("dense", "prune"): loss, threshold and densities after the figures. */
export function trainingProgress(label: string, stream: ProgressStream = process.stderr): { onProgress: (p: TrainProgress) => void; stop: () => void } {
  let display: ProgressDisplay | undefined;
  return {
    onProgress(p) {
      display ??= new ProgressDisplay({ label, total: p.totalSteps, unit: 'steps', stream });
      const d = Object.entries(p.density ?? {}).map(([k, x]) => `${k === 'dense' ? 'FFN' : k} ${(100 * x).toFixed(1)}%`);
      display.update(p.step, [`epoch ${p.epoch.toFixed(2)}`, `loss ${p.loss.toFixed(4)}`, ...(p.threshold !== undefined ? [`threshold ${p.threshold.toFixed(4)}`] : []), ...d].join(' '));
    },
    // An interrupted or failed stage ends before its last step: the bar is closed all the same.
    stop: () => display?.stop(),
  };
}

/** A display of `total` units of `label` (evaluation batches, benchmark rounds). */
export function countProgress(label: string, total: number, unit: string, stream: ProgressStream = process.stderr): ProgressDisplay {
  return new ProgressDisplay({ label, total, unit, stream });
}
