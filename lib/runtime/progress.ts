/**
 * Progress of long work (training steps, evaluation batches, downloads, benchmark rounds) on a stream, stderr
 * by default: on a terminal, a bar redrawn in place by cli-progress with the rate and the ETA; otherwise (a log
 * file, CI) one plain line every `intervalMs` and one at the end, so that a log shows how far a run got and at
 * what pace without a screenful of carriage returns.
 */
import { SingleBar } from 'cli-progress';

/** A stream with the one property that decides how progress is shown. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean };

export interface ProgressOptions {
  /** What is measured, first on the line: "train", "evaluate", a file name. */
  label: string;
  /** Units of work in all (steps, batches, bytes...). */
  total: number;
  /** The unit's name as printed ("steps", "MB"). */
  unit: string;
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** Raw units per printed unit (1e6 to count bytes in MB; default 1). */
  scale?: number;
  /** Not a terminal: the least time between two lines (default 10 s). */
  intervalMs?: number;
}

/** 75 -> "1m15s", 4000 -> "1h06m", as a human reads an ETA. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A count or a rate as printed: whole, one decimal, or two significant digits below 1 (0.076 MB). */
function figure(x: number): string {
  if (Number.isInteger(x) || x >= 100) return x.toFixed(0);
  return x >= 1 ? x.toFixed(1) : x.toPrecision(2);
}

/** The display whose bar is on each terminal now: one bar at a time, so nested work (an evaluation inside training) does not fight over the line. */
const shown = new Map<ProgressStream, ProgressDisplay>();

/**
 * Clears the bar drawn on `stream` (default stderr), so that a line printed next is not mixed into it; the bar
 * comes back at its next update. What a program calls before it logs a line to the same terminal.
 */
export function clearProgress(stream: ProgressStream = process.stderr): void {
  shown.get(stream)?.hide();
}

export class ProgressDisplay {
  private readonly stream: ProgressStream;
  private readonly scale: number;
  private readonly interval: number;
  private readonly started = Date.now();
  /** Units already done when the display began (a resumed run): the rate counts this session's work only. */
  private first?: number;
  private bar?: SingleBar;
  // Not a terminal: the first line after one interval, so that short work prints its final line only.
  private lastLine = Date.now();
  private done = 0;
  private info = '';
  private stopped = false;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.scale = o.scale ?? 1;
    this.interval = o.intervalMs ?? 10_000;
  }

  /** Units per second over this display's life. */
  get rate(): number {
    const sec = (Date.now() - this.started) / 1000;
    return sec > 0 ? (this.done - (this.first ?? this.done)) / this.scale / sec : 0;
  }

  private payload(): Record<string, string> {
    const rate = this.rate;
    const eta = formatDuration(rate > 0 ? (this.o.total - this.done) / this.scale / rate : NaN);
    return { now: figure(this.done / this.scale), all: figure(this.o.total / this.scale), rate: figure(rate), left: eta, info: this.info ? ` | ${this.info}` : '' };
  }

  /** `done` units of `total` so far, and what else to show after them (e.g. "loss 0.4312"). */
  update(done: number, info = ''): void {
    if (this.stopped) return;
    this.first ??= done;
    this.done = done;
    this.info = info;
    const end = done >= this.o.total;
    if (this.stream.isTTY && !end) return this.draw();
    const now = Date.now();
    if (!end && now - this.lastLine < this.interval) return;
    this.lastLine = now;
    if (end) this.stop();
    else this.line(now);
  }

  /** Ends the display; safe to call more than once, and needed when work stops early. Its last figures stay as one line. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const drawn = this.bar !== undefined || !this.stream.isTTY;
    this.hide();
    // A terminal keeps the finished work as a plain line; a log got its periodic lines and gets the last one.
    if (drawn || this.done >= this.o.total) this.line(Date.now());
  }

  /** One plain line: figures, percentage, rate, and the ETA (or, done, the time taken). */
  private line(now: number): void {
    const end = this.done >= this.o.total;
    const pct = this.o.total > 0 ? Math.floor((100 * this.done) / this.o.total) : 100;
    const p = this.payload();
    this.stream.write(`${this.o.label} ${p.now}/${p.all} ${this.o.unit} (${pct}%), ${p.rate} ${this.o.unit}/s, ${end ? `took ${formatDuration((now - this.started) / 1000)}` : `ETA ${p.left}`}${p.info.replace(' |', ',')}\n`);
  }

  /** The bar on a terminal: cli-progress draws it; the figures, the rate and the ETA are ours (payload), as on the plain lines. */
  private draw(): void {
    if (!this.bar) {
      const other = shown.get(this.stream);
      if (other && other !== this) other.hide();
      this.bar = new SingleBar({
        stream: this.stream,
        format: `${this.o.label} [{bar}] {percentage}% | {now}/{all} ${this.o.unit} | {rate} ${this.o.unit}/s | ETA {left}{info}`,
        barsize: 24,
        fps: 10,
        // Hidden (another bar, a log line) or done, the bar's line is cleared: done, our plain line replaces it.
        clearOnComplete: true,
      });
      this.bar.start(this.o.total, this.done, this.payload());
      shown.set(this.stream, this);
      return;
    }
    this.bar.update(this.done, this.payload());
  }

  /** Clears the bar's line (it is drawn again at the next update). */
  hide(): void {
    if (!this.bar) return;
    this.bar.stop();
    this.bar = undefined;
    if (shown.get(this.stream) === this) shown.delete(this.stream);
  }
}
