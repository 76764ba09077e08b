// The parallel layer: executors and the placement rule (see executor.ts).
export {
  type ExecutorKind, type ModuleRef, type StepCall, type Executor, type ExecutorFactory,
  type ExecutorFactoryOptions, type PlacementRequest,
  EXECUTOR_KINDS, inlineExecutor, registerExecutor, isExecutorAvailable, createExecutor, chooseExecutorKind,
} from './executor.js';
