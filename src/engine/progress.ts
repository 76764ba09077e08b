/**
 * A one-line progress bar on a TTY. One instance per run, O(1) per step, redrawn at most every
 * 100 ms (the original kept one process-wide rich display whose task list grew with every run).
 *
 * @example
 * ```ts
 * const bar = ProgressBar.maybe(true, 'orders', 10);  // undefined unless stderr is a TTY
 * bar?.tick(); bar?.finish();
 * ```
 */

/**
 * What the bar writes to (process.stderr, or a fake in tests).
 *
 * @example
 * ```ts
 * const fake: ProgressStream = { isTTY: true, write: (s) => chunks.push(s) };
 * ```
 */
export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const REDRAW_MS = 100;

/**
 * The bar itself (see the module example).
 *
 * @example
 * ```ts
 * const bar = new ProgressBar(process.stderr, 'orders', 3);
 * ```
 */
export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private readonly started = Date.now();

  constructor(private readonly stream: ProgressStream, private readonly label: string, private readonly total: number) {
    this.draw();
  }

  /** A bar when `enabled` and the stream is a TTY, else undefined (costs nothing per step). */
  static maybe(enabled: boolean, label: string, total: number, stream: ProgressStream = process.stderr): ProgressBar | undefined {
    return enabled && stream.isTTY === true ? new ProgressBar(stream, label, total) : undefined;
  }

  /** One top-level step finished. */
  tick(): void {
    this.done++;
    const now = Date.now();
    if (now - this.lastDraw >= REDRAW_MS) this.draw(now);
  }

  /** Draws the final state and ends the line. */
  finish(): void {
    this.draw();
    this.stream.write('\n');
  }

  private draw(now = Date.now()): void {
    this.lastDraw = now;
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - this.label.length - 30));
    const ratio = this.total === 0 ? 1 : Math.min(1, this.done / this.total);
    const filled = Math.round(ratio * width);
    const secs = Math.floor((now - this.started) / 1000);
    const clock = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
    this.stream.write(
      `\r${this.label} ${'━'.repeat(filled)}${' '.repeat(width - filled)} ${String(Math.round(ratio * 100)).padStart(3)}% ${this.done}/${this.total} ${clock}`,
    );
  }
}
