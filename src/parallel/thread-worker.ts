/**
 * The piscina task handler: one step attempt per task (protocol.ts `runAttempt`). Log lines go to
 * the parent on parentPort (piscina re-emits them as the pool's 'message' event). With
 * `transfer`, the reply's ArrayBuffers are moved back (Piscina.move) instead of copied.
 */
import { parentPort, threadId } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  STARTED_TAG, collectTransferables, runAttempt, type AttemptReply, type AttemptRequest, type LogMessage, type StartedMessage,
} from './protocol.js';

const post = (line: LogMessage): void => parentPort!.postMessage(line);
/** This thread, as the run history names it. */
const WORKER = `thread ${threadId}`;

/**
 * From the .ts sources, step modules are .ts too. `--import tsx` in the thread's execArgv lets piscina
 * require this file, but on Node 20 the ESM hooks it registers do not serve the thread's own
 * `import()`: register tsx's ESM API here, once, before the first step module is imported.
 */
let tsxReady: Promise<void> | undefined | null = import.meta.url.endsWith('.ts') ? undefined : null;
function ready(): Promise<void> | null {
  if (tsxReady === undefined) {
    tsxReady = import('tsx/esm/api').then((m: { register: () => unknown }) => {
      m.register();
      tsxReady = null; // registered: later tasks need not wait
    });
  }
  return tsxReady;
}

/**
 * Runs one attempt.
 *
 * @example
 * ```ts
 * const reply = await pool.run(encodeRequest(call, 1));
 * ```
 */
export default async function runTask(req: AttemptRequest): Promise<AttemptReply | unknown> {
  const pending = ready();
  if (pending !== null) await pending;
  // The thread is up (tsx registered, if needed): the attempt's deadline starts now.
  parentPort!.postMessage({ [STARTED_TAG]: req.id, worker: WORKER } satisfies StartedMessage);
  const reply: AttemptReply = { ...await runAttempt(req, post), worker: WORKER };
  if (!req.transfer) return reply;
  const list = collectTransferables([reply.context, reply.ok && reply.result.kind === 'value' ? reply.result.value : undefined]);
  if (list.length === 0) return reply;
  return Piscina.move({
    get [Piscina.transferableSymbol]() { return list; },
    get [Piscina.valueSymbol]() { return reply; },
  } as never);
}
