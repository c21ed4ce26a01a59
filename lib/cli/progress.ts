/**
 * Download progress on stderr for the commands that read a model by hub id: a bar redrawn in place when
 * stderr is a terminal, one line per finished file otherwise (logs and CI stay readable).
 */
import type { DownloadProgress } from '../hub/hub';

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** An onProgress callback that draws on `stream` (stderr by default). */
export function downloadProgress(stream: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  let lastDraw = 0;
  return (p) => {
    const done = p.bytes >= p.total;
    if (!stream.isTTY) {
      if (done) stream.write(`downloaded ${p.id} ${p.file} (${mb(p.total)})\n`);
      return;
    }
    // Redrawn at most 10 times a second, and once at the end of each file.
    const now = Date.now();
    if (!done && now - lastDraw < 100) return;
    lastDraw = now;
    const width = 24;
    const frac = p.total > 0 ? Math.min(1, p.bytes / p.total) : 1;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    stream.write(`\r\x1b[K${p.id} ${p.file} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(p.bytes)} / ${mb(p.total)}${done ? '\n' : ''}`);
  };
}
