/**
 * Worker processes for the BullMQ tests (test/fixtures/bullmq/worker.ts running startWorker):
 * started with their options, ready once they print "ready", stopped by pid (SIGTERM, then SIGKILL).
 *
 * @example
 * ```ts
 * const workers = new WorkerProcesses(redis.url);
 * const w = await workers.start({ queue: 'q', steps: [stepsModule] });
 * after(() => workers.stopAll());
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const workerScript = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'bullmq', 'worker.ts');

export type WorkerProcess = ChildProcess & { pid: number };

export class WorkerProcesses {
  readonly children = new Set<ChildProcess>();

  constructor(readonly url: string) {}

  /** Starts a worker process (argv: node --import tsx worker.ts '<options JSON>') and waits up to 60 s for "ready". */
  async start(options: Record<string, unknown>, env: Record<string, string> = {}, argv?: readonly string[]): Promise<WorkerProcess> {
    const args = argv ?? ['--import', 'tsx', workerScript, JSON.stringify({ connection: this.url, ...options })];
    const c = spawn(process.execPath, [...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    this.children.add(c);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`worker did not say ready within 60 s: ${out}`)), 60_000);
      c.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) { clearTimeout(t); resolve(); }
      });
      c.once('exit', (code, sig) => { clearTimeout(t); reject(new Error(`worker exited (${sig ?? code}) before ready: ${out}`)); });
    });
    c.stdout!.removeAllListeners('data');
    c.stdout!.resume();
    return c as WorkerProcess;
  }

  /** SIGTERM (the worker closes and exits), SIGKILL after 10 s. */
  async stop(c: ChildProcess): Promise<void> {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => { if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); }, 10_000);
    await gone;
    clearTimeout(t);
  }

  async stopAll(): Promise<void> {
    for (const c of this.children) await this.stop(c);
  }
}
