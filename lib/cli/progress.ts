/**
 * A one-line progress bar on stderr, redrawn with "\r", shown only when stderr is a terminal:
 * label, bar, tokens done of total, tokens per second and the time left. Lines logged through it
 * (one per finished step) clear the bar first, so the two never interleave.
 */

export interface ProgressStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

function compact(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (v: number) => String(v).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

export class Progress {
  /** Whether bars are drawn (stderr is a TTY). */
  readonly enabled: boolean;
  private label = '';
  private startedAt = 0;
  private startDone = 0;
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly stream: ProgressStream, enabled = stream.isTTY === true) {
    this.enabled = enabled;
  }

  /** Shows `done` of `total` (Infinity or 0: unknown) for the task `label`; a new label restarts the clock. */
  update(label: string, done: number, total: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (label !== this.label) {
      // The clock starts at the first report of a task, so the rate counts the work done since.
      this.label = label;
      this.startedAt = now;
      this.startDone = done;
      this.lastDraw = 0;
    }
    const finished = total > 0 && Number.isFinite(total) && done >= total;
    if (!finished && now - this.lastDraw < 80) return; // at most ~12 redraws a second
    this.lastDraw = now;
    const elapsed = (now - this.startedAt) / 1000;
    const rate = elapsed > 0 && done > this.startDone ? (done - this.startDone) / elapsed : NaN;
    const known = total > 0 && Number.isFinite(total);
    const frac = known ? Math.min(1, done / total) : 0;
    const right = known
      ? ` ${String(Math.floor(frac * 100)).padStart(3)}%  ${compact(done)}/${compact(total)} tok  ${compact(rate)} tok/s  ETA ${formatDuration(rate > 0 ? (total - done) / rate : NaN)}`
      : `  ${compact(done)} tok  ${compact(rate)} tok/s  ${formatDuration(elapsed)}`;
    const width = Math.max(40, (this.stream.columns || 80) - 1);
    let line: string;
    const barWidth = Math.min(30, width - label.length - right.length - 3);
    if (known && barWidth >= 8) {
      const full = Math.round(frac * barWidth);
      line = `${label} [${'#'.repeat(full)}${'.'.repeat(barWidth - full)}]${right}`;
    } else {
      line = `${label}${right}`;
    }
    if (line.length > width) line = line.slice(0, width);
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }

  /** Removes the bar (if drawn). */
  clear(): void {
    if (this.drawn) {
      this.stream.write('\r\x1b[K');
      this.drawn = false;
    }
  }

  /** Writes a line above the bar. */
  log(line: string): void {
    this.clear();
    this.stream.write(line + '\n');
    this.lastDraw = 0;
  }
}
