// The parallel layer: executors and the placement rule (see executor.ts). Importing it registers the
// worker executors: 'threads' (piscina worker threads, threads.ts). It creates nothing until its
// first call.
export {
  type ExecutorKind, type ModuleRef, type StepCall, type StepCallLogger, type Executor, type ExecutorFactory,
  type ExecutorFactoryOptions, type PlacementRequest,
  EXECUTOR_KINDS, inlineExecutor, registerExecutor, isExecutorAvailable, createExecutor, chooseExecutorKind,
} from './executor.js';
export { createThreadExecutor, threadPoolStats } from './threads.js';
