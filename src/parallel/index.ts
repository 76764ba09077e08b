// The parallel layer: executors and the placement rule (see executor.ts). Importing it registers the
// worker executors: 'threads' (piscina worker threads, threads.ts) and 'processes' (child processes,
// processes.ts). Neither creates anything until its first call.
export {
  type ExecutorKind, type ModuleRef, type StepCall, type StepCallLogger, type Executor, type ExecutorFactory,
  type ExecutorFactoryOptions, type PlacementRequest,
  EXECUTOR_KINDS, inlineExecutor, registerExecutor, isExecutorAvailable, createExecutor, chooseExecutorKind,
} from './executor.js';
export { createThreadExecutor, threadPoolStats } from './threads.js';
export {
  createProcessExecutor, processPoolStats, checkMemoryLimitMb, minMemoryLimitMb,
  MIN_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB_TSX, ABORT_GRACE_MS, START_TIMEOUT_MS, WATCHDOG_MS,
} from './processes.js';
