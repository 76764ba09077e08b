/**
 * The compiled form of a step tree: what `setSteps` turns user items into, and what the run loop
 * walks. Pipeline defaults (retries, delays) are resolved here once, so the loop reads plain fields.
 * Internal: none of these types is exported from the package.
 *
 * @example
 * ```ts
 * const plan: Plan = compilePlan(items, defaults);
 * for (const node of plan.nodes) if (node.kind === 'task') console.log(node.name, node.retries);
 * ```
 */
import type { Executor, ExecutorKind, ModuleRef } from '../parallel/executor.js';
import type { CompiledCondition } from './expression.js';
import type { RetryPredicate } from './step.js';
import type { Context, StepFn } from './types.js';

export interface NodeBase {
  /** Where the node sits in its pipeline, e.g. `steps[2].branchTrue[0]`. */
  readonly path: string;
  readonly name: string;
  readonly version: string;
  /** Name of the pipeline whose step list holds the node. */
  readonly owner: string;
}

export interface TaskNode extends NodeBase {
  readonly kind: 'task';
  readonly fn: StepFn;
  /** Extra attempts (0 = none). */
  readonly retries: number;
  /** Milliseconds before the first retry. */
  readonly retryDelayMs: number;
  readonly retryBackoff: number;
  readonly retryOn: RetryPredicate | undefined;
  /** Per-attempt deadline in ms; 0 = none. */
  readonly timeoutMs: number;
  readonly moduleRef: ModuleRef | undefined;
  /** Where attempts run: the Parallel placement, or step({ executor }); 'inline' otherwise (compile.ts placeTask). */
  readonly placement: ExecutorKind;
  /**
   * The pipeline whose own executor runs the attempts (an executor the pipeline brings itself:
   * loadPipeline's `bullmq` queue), also when this pipeline is nested in another; undefined: the running pipeline's.
   */
  readonly executorOwner: ExecutorOwner | undefined;
  readonly memoryLimitMb: number | undefined;
  /** Move ArrayBuffers to the worker thread instead of copying them. */
  readonly transfer: boolean;
}

export interface ConditionNode extends NodeBase {
  readonly kind: 'condition';
  readonly expression: CompiledCondition;
  readonly source: string;
  readonly branchTrue: readonly PlanNode[];
  readonly branchFalse: readonly PlanNode[];
}

export interface ForNode extends NodeBase {
  readonly kind: 'for';
  /** undefined = no limit from a count. */
  readonly iterations: number | undefined;
  readonly expression: CompiledCondition | undefined;
  readonly source: string | undefined;
  /** A loop that would run more iterations than this fails (WPIPE_ERR_LOOP_LIMIT). */
  readonly maxIterations: number | undefined;
  readonly body: readonly PlanNode[];
}

export interface ParallelNode extends NodeBase {
  readonly kind: 'parallel';
  readonly branches: readonly PlanNode[];
  readonly maxWorkers: number;
}

export interface BackgroundNode extends NodeBase {
  readonly kind: 'background';
  readonly inner: PlanNode;
}

/** A nested pipeline: runs the child's own compiled steps, with the child's own options. */
export interface PipelineNode extends NodeBase {
  readonly kind: 'pipeline';
  readonly child: NestedPipeline;
}

export type PlanNode = TaskNode | ConditionNode | ForNode | ParallelNode | BackgroundNode | PipelineNode;

/** A pipeline that runs some steps' attempts on executors of its own (TaskNode.executorOwner). */
export interface ExecutorOwner {
  /** @internal */ _executor(kind: ExecutorKind): Executor;
  /** @internal Closes the executors it made (they are made again at their next use). */
  _closeExecutors(): Promise<void>;
}

/** A compiled step list plus what the run loop wants to know about it without walking it. */
export interface Plan {
  readonly nodes: readonly PlanNode[];
  /** Why runSync cannot run this plan, or undefined when it can. */
  readonly syncBlocker: string | undefined;
  /** A fingerprint of kinds, names and versions: resume refuses a plan whose signature changed. */
  readonly signature: string;
}

/** What the run loop needs from a nested pipeline (implemented by Pipeline). */
export interface NestedPipeline {
  readonly pipelineName: string;
  /** @internal */ readonly _plan: Plan;
  /** @internal */ readonly _continueOnError: boolean;
  /** @internal */ readonly _logger: import('./logger.js').Logger;
  /** @internal */ readonly _verbose: boolean;
}

export type { Context };
