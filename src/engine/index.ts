// The engine's exports (src/index.ts re-exports the public part).
export {
  Pipeline, PipelineAsync, type PipelineOptions, type PipelineAsyncOptions, type RunManyOptions, type RunEachOptions, type RunOutcome,
} from './pipeline.js';
export {
  Condition, For, Parallel, Background,
  type ConditionOptions, type ForOptions, type ParallelOptions, type BackgroundOptions,
} from './blocks.js';
export { step, isStep, DEFAULT_VERSION, type StepOptions, type StepMeta, type Step, type RetryPredicate } from './step.js';
export type { StepItem } from './compile.js';
export { AutoRegister, type AutoRegisterOptions, type ModuleSpecifier } from './autoregister.js';
export {
  ERRORS_KEY, LOOP_ITERATION_KEY,
  type Context, type StepFn, type StepInfo, type StepResult, type RunOptions, type StepFailure, type StepDescriptor,
} from './types.js';
export {
  setTrackingObserverFactory, getTrackingObserverFactory,
  type RunObserver, type RunStartEvent, type RunStartDecision, type StepStartEvent, type StepEndEvent,
  type BoundaryEvent, type RunEndEvent, type BackgroundRecord, type StepKind, type TrackingOptions,
  type TrackingObserverFactory, type RunEvent,
} from './hooks.js';
export {
  RUN_ALERT_NAMES, STEP_ALERT_NAMES, MAX_FIRED_PER_RUN,
  type AlertOptions, type AlertSeverity, type FiredAlert, type StepErrorDetails,
} from './alerts.js';
export { createStreamLogger, type Logger, type LogMethod } from './logger.js';
export { ProgressBar, type ProgressStream } from './progress.js';
