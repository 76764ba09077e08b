/**
 * The child-process worker (processes.ts starts it with an IPC channel in 'advanced' serialization,
 * i.e. structured clone). It says `ready` once it can take calls, then runs one attempt at a time:
 * `call` runs a step (protocol.ts `runAttempt`), `abort` aborts that call's `info.signal` (the
 * parent kills the process if the step has not settled after a short grace). The child leaves when
 * the parent goes away (the channel closes).
 */
import { runAttempt, type AttemptReply, type AttemptRequest, type LogMessage } from './protocol.js';
import { serializeError, WpipeError } from '../errors.js';

/** Messages from the parent. */
export type ToChild = { readonly t: 'call'; readonly req: AttemptRequest } | { readonly t: 'abort'; readonly id: number; readonly reason: string };
/** Messages to the parent (log lines are LogMessage objects, sent as they are written). */
export type FromChild = { readonly t: 'ready'; readonly pid: number } | { readonly t: 'reply'; readonly reply: AttemptReply };

const send = (m: FromChild | LogMessage): void => {
  process.send!(m);
};

const running = new Map<number, AbortController>();

async function onCall(req: AttemptRequest): Promise<void> {
  const ac = new AbortController();
  running.set(req.id, ac);
  const reply = await runAttempt(req, send, ac.signal);
  running.delete(req.id);
  if (!process.connected) return;
  try {
    send({ t: 'reply', reply });
  } catch (e) {
    // What structured clone refused despite runAttempt's check: report it rather than go silent.
    const error = new WpipeError('WPIPE_ERR_WORKER_CLONE', `step '${req.stepName}': its reply cannot be sent back from the worker process: ${e instanceof Error ? e.message : String(e)}`, {
      details: { stepName: req.stepName, executor: 'processes' },
    });
    send({ t: 'reply', reply: { id: req.id, ok: false, failure: { kind: 'error', error: serializeError(error) }, context: undefined, logs: reply.logs } });
  }
}

process.on('message', (m: ToChild) => {
  if (m.t === 'call') void onCall(m.req);
  else if (m.t === 'abort') {
    const reason = new Error(m.reason);
    reason.name = 'AbortError';
    running.get(m.id)?.abort(reason);
  }
});
// Without a parent there is nobody to answer: leave (the IPC channel alone would keep us alive).
process.on('disconnect', () => process.exit(0));
send({ t: 'ready', pid: process.pid });
