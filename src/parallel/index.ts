// The parallel layer: the executor contract (executor.ts), the kinds a pipeline can use and the
// placement rule (registry.ts: 'inline', 'threads' on piscina worker threads, 'processes' in child
// processes; neither worker kind creates anything until its first call).
export {
  type ExecutorKind, type ModuleRef, type StepCall, type StepCallLogger, type Executor, type ExecutorFactory,
  type ExecutorFactoryOptions, EXECUTOR_KINDS, inlineExecutor,
} from './executor.js';
export { type PlacementRequest, registerExecutor, isExecutorAvailable, createExecutor, chooseExecutorKind } from './registry.js';
export { createThreadExecutor, threadPoolStats } from './threads.js';
export {
  createProcessExecutor, processPoolStats, checkMemoryLimitMb, minMemoryLimitMb,
  MIN_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB_TSX, ABORT_GRACE_MS, START_TIMEOUT_MS, WATCHDOG_MS,
} from './processes.js';
