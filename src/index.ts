// The public surface of wpipe (docs/architecture.md "Public API"): exports only.
export { Codes, TaskError, ProcessError, ApiError, ExpressionError, WpipeError } from './errors.js';
export { compileExpression, type CompiledExpression, type CompileOptions } from './expr/index.js';
export { getBackendInfo, type BackendInfo, type CapabilityInfo } from './backend/load.js';
export type { BackendChoice, BackendName, BackendStatus } from './backend/types.js';
export {
  Pipeline, PipelineAsync, Condition, For, Parallel, Background, step, isStep, AutoRegister, ERRORS_KEY, LOOP_ITERATION_KEY,
  type AutoRegisterOptions, type ModuleSpecifier,
  type PipelineOptions, type PipelineAsyncOptions, type RunManyOptions, type ConditionOptions, type ForOptions,
  type ParallelOptions, type BackgroundOptions, type StepOptions, type StepMeta, type Step, type RetryPredicate,
  type StepItem, type Context, type StepFn, type StepInfo, type StepResult, type RunOptions, type StepFailure,
  type StepDescriptor, type RunObserver, type RunStartEvent, type RunStartDecision, type StepStartEvent,
  type StepEndEvent, type BoundaryEvent, type RunEndEvent, type BackgroundRecord, type Logger,
  type RunEvent, type AlertOptions, type AlertSeverity, type FiredAlert, type StepErrorDetails, type RunEachOptions, type RunOutcome,
} from './engine/index.js';
export { type ModuleRef, type ExecutorKind } from './parallel/index.js';
export { useBullmq } from './queue/executor.js';
export { startWorker, type StartWorkerOptions, type WpipeWorker } from './queue/worker.js';
export { type QueueOptions, type QueueConnection, type RedisConnectionOptions } from './queue/config.js';
export { type EnqueueOptions, type EnqueuedRun } from './queue/runs.js';
export { Wsqlite, SQLite, type WsqliteOptions, type WriteRecordArgs, type StoredRecord } from './storage/wsqlite.js';
export { PipelineExporter, type ExportOptions, type ExportFormat } from './observe/exporter.js';
export { readYaml, writeYaml, leerYaml, escribirYaml, type ReadYamlOptions, type WriteYamlOptions } from './system/yaml.js';
export {
  loadPipeline, validatePipelineFile, type LoadPipelineOptions, type PipelineFileError, type PipelineFileReport,
} from './engine/yaml-entry.js';
export { pipelineJsonSchema, PIPELINE_FORMAT, PIPELINE_SCHEMA_ID, type FieldSpec, type FieldType, type MappingKind } from './engine/yaml-format.js';
export {
  ResourceMonitor, type ResourceMonitorOptions, type ResourceSummary, type ResourceSamples,
} from './observe/monitor.js';
export {
  memoryLimit, memoryLimitSignal, onMemoryLimitExceeded, memoryLimitGuard, MEMORY_LIMIT_MECHANISMS,
  type MemoryLimitOptions, type MemoryLimitResult, type MemoryLimitMechanism,
} from './system/memory.js';
export { newLogger, type NewLoggerOptions, type LogRotation, type WpipeLogger } from './observe/logger.js';
export {
  startDashboard, ApiReporter, ApiClient, type DashboardOptions, type DashboardHandle, type ApiReporterOptions, type ApiReporterStats,
  type ApiClientOptions,
} from './dashboard/index.js';
