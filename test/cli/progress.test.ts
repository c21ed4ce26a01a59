/**
 * Progress on stderr (lib/runtime/progress.ts, lib/cli/progress.ts): without a terminal, plain lines at most
 * once per interval and one at the end, with the figures, the rate and the ETA; on a terminal, cli-progress's
 * bar with the same figures; downloads in MB, one display per file; the job's training stages fed by
 * SparseTrainer's onProgress. No addon: the streams are fakes that keep what is written.
 */
import test from 'ava';
import { Writable } from 'node:stream';
import { countProgress, downloadProgress, trainingProgress } from '../../lib/cli/progress';
import { clearProgress, formatDuration, ProgressDisplay } from '../../lib/runtime/progress';

/** A stream that keeps what is written; `isTTY` as asked. */
function sink(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text(): string } {
  const parts: string[] = [];
  const w = new Writable({
    write(chunk, _enc, done) {
      parts.push(String(chunk));
      done();
    },
  });
  return Object.assign(w, { isTTY, columns: 160, text: () => parts.join('') });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('not a terminal: one line per interval and one at the end, with figures, rate and ETA', async (t) => {
  const s = sink(false);
  const p = new ProgressDisplay({ label: 'train', total: 10, unit: 'steps', stream: s, intervalMs: 40 });
  p.update(1, 'loss 0.9000');
  p.update(2, 'loss 0.8000'); // within the first interval: no line
  t.is(s.text(), '');
  await sleep(60);
  p.update(3, 'loss 0.7000');
  p.update(4, 'loss 0.6000'); // within the interval after that line: none
  await sleep(60);
  p.update(10, 'loss 0.1000');
  p.update(10, 'loss 0.1000'); // after the end: nothing more
  p.stop();
  const lines = s.text().trimEnd().split('\n');
  t.is(lines.length, 2, s.text());
  t.regex(lines[0], /^train 3\/10 steps \(30%\), [\d.]+ steps\/s, ETA \d+s, loss 0\.7000$/);
  t.regex(lines[1], /^train 10\/10 steps \(100%\), [\d.]+ steps\/s, took \d+s, loss 0\.1000$/);
  t.false(s.text().includes('\r'), 'no carriage returns in a log');
});

test('the rate counts from the first update (a resumed run) and the ETA follows from it', async (t) => {
  const s = sink(false);
  const p = new ProgressDisplay({ label: 'train', total: 1000, unit: 'steps', stream: s, intervalMs: 0 });
  p.update(500); // resumed at step 500
  await sleep(200);
  p.update(520);
  const rate = p.rate;
  // 20 steps in about 0.2 s: about 100 steps/s (not 2600, as counting from step 0 would say).
  t.true(rate > 20 && rate < 150, `rate ${rate}`);
  const line = s.text().trimEnd().split('\n').pop()!;
  const eta = Number(/ETA (\d+)s/.exec(line)?.[1]);
  t.true(eta >= 3 && eta <= 25, line);
  p.stop();
});

test('on a terminal: a cli-progress bar with percentage, figures, rate and ETA; done, one plain line replaces it', (t) => {
  const s = sink(true);
  const p = countProgress('evaluate', 4, 'batches', s);
  for (let i = 1; i <= 4; i++) p.update(i);
  p.stop();
  const text = s.text();
  t.regex(text, /evaluate \[[^\]]+\] \d+% \| [123]\/4 batches \| [\d.]+ batches\/s \| ETA \d+s/, JSON.stringify(text));
  t.true(/\x1b\[/.test(text), 'redrawn with cursor moves');
  t.regex(text, /evaluate 4\/4 batches \(100%\), [\d.]+ batches\/s, took \d+s\n$/, JSON.stringify(text));
});

test('on a terminal, one bar at a time: nested work hides the outer bar, a logged line clears it, each comes back at its update', async (t) => {
  const s = sink(true);
  const train = new ProgressDisplay({ label: 'train', total: 10, unit: 'steps', stream: s });
  train.update(1);
  const evaluate = new ProgressDisplay({ label: 'evaluate', total: 2, unit: 'batches', stream: s });
  const mark = s.text().length;
  evaluate.update(1);
  await sleep(250); // cli-progress redraws 10 times a second
  const during = s.text().slice(mark);
  // The evaluation's bar is drawn; the training bar was stopped (its line cleared), so its timer draws no more.
  t.regex(during, /evaluate \[/);
  t.false(during.includes('train ['), JSON.stringify(during));
  evaluate.update(2);
  clearProgress(s); // nothing shown now: a no-op
  train.update(2);
  const again = s.text().length;
  clearProgress(s);
  t.regex(s.text().slice(again), /\x1b\[/, 'the line is cleared');
  train.update(3);
  t.regex(s.text().slice(again), /train \[[^\]]+\] \d+% \| 3\/10 steps/);
  train.stop(); // stopped early: the last figures stay as a line
  t.regex(s.text(), /train 3\/10 steps \(30%\), [\d.]+ steps\/s, ETA [^\n]+\n$/);
});

test('downloads: one display per file in MB; without a terminal, each finished file says its size', (t) => {
  const s = sink(false);
  const onProgress = downloadProgress(s);
  for (const [file, total] of [['config.json', 600], ['model.safetensors', 4_400_000]] as const)
    for (const bytes of [0, total / 2, total]) onProgress({ id: 'org/tiny', file, bytes, total });
  const lines = s.text().trimEnd().split('\n');
  t.is(lines.length, 2, s.text());
  t.regex(lines[0], /^org\/tiny config\.json 0\.00060\/0\.00060 MB \(100%\)/);
  t.regex(lines[1], /^org\/tiny model\.safetensors 4\.4\/4\.4 MB \(100%\), [\d.]+ MB\/s, took \d+s$/);
});

test('the job\'s training stage: SparseTrainer\'s onProgress drawn with epoch, loss, threshold and densities', (t) => {
  const s = sink(false);
  const stage = trainingProgress('prune', s);
  stage.onProgress({ step: 1, totalSteps: 2, epoch: 0.5, loss: 0.7, rate: 3, threshold: 0.25, density: { attention: 0.5, dense: 0.75 } });
  stage.onProgress({ step: 2, totalSteps: 2, epoch: 1, loss: 0.5, rate: 3, threshold: 0.1, density: { attention: 0.4, dense: 0.6 } });
  stage.stop();
  t.regex(s.text(), /^prune 2\/2 steps \(100%\), [\d.]+ steps\/s, took \d+s, epoch 1\.00 loss 0\.5000 threshold 0\.1000 attention 40\.0% FFN 60\.0%\n$/);
});

test('durations read as a person reads them', (t) => {
  t.deepEqual([5, 75, 4000, NaN, -1].map(formatDuration), ['5s', '1m15s', '1h06m', '?', '?']);
});
