/**
 * setSteps' compiler: checks a step tree (every item, with its path) and turns it into run-loop
 * nodes with the pipeline's defaults resolved (nodes.ts).
 */
import type { ExecutorKind } from '../parallel/executor.js';
import { chooseExecutorKind } from '../parallel/registry.js';
import { Background, Condition, For, Parallel, type StepItem } from './blocks.js';
import { EXPECTED, checkTuple, invalidStep, isPipeline, preview, type PipelineLike } from './items.js';
import type { PlanNode, Plan, TaskNode } from './nodes.js';
import { DEFAULT_VERSION, isStep, type RetryPredicate } from './step.js';
import type { StepDescriptor, StepFn } from './types.js';
import { nodeCrypto } from '../lazy-builtins.js';

export { PIPELINE_BRAND, checkItem, type PipelineLike } from './items.js';
export { checkItems, type StepItem } from './blocks.js';

/**
 * Pipeline-wide defaults a task node takes when its step() does not say.
 *
 * @example
 * ```ts
 * const d: CompileDefaults = { maxRetries: 0, retryDelay: 1, retryBackoff: 1, retryOn: undefined, variant: 'pipeline', owner: pipe, ownerName: 'orders' };
 * ```
 */
export interface CompileDefaults {
  readonly maxRetries: number;
  readonly retryDelay: number;
  readonly retryBackoff: number;
  readonly retryOn: RetryPredicate | undefined;
  readonly variant: 'pipeline' | 'async';
  /** The pipeline being compiled (nested-pipeline cycles are refused). */
  readonly owner: object;
  readonly ownerName: string;
  /** Executor kinds the pipeline brings itself (PlacementRequest.provided); `owner` then runs those steps' attempts. */
  readonly provided?: ReadonlySet<ExecutorKind>;
}

interface Placement {
  readonly forced: ExecutorKind | undefined;
  readonly useProcesses: boolean;
  readonly memoryLimitMb: number | undefined;
  readonly transfer: boolean;
}

interface Acc {
  syncBlocker: string | undefined;
  sig: string[];
}

/**
 * Compiles a step list (e.g. `compilePlan(items, defaults)`). Throws WpipeError WPIPE_ERR_INVALID_STEP naming the path of the first bad
 * item, WPIPE_ERR_TASK_NOT_ADDRESSABLE for a closure asked to run in a worker.
 */
export function compilePlan(items: readonly unknown[], d: CompileDefaults, prefix = 'steps'): Plan {
  const acc: Acc = { syncBlocker: undefined, sig: [] };
  const nodes = compileList(items, prefix, d, undefined, acc);
  const signature = nodeCrypto().createHash('sha256').update(acc.sig.join('\n')).digest('hex').slice(0, 16);
  return Object.freeze({ nodes, syncBlocker: acc.syncBlocker, signature });
}

function compileList(items: readonly unknown[], path: string, d: CompileDefaults, par: Placement | undefined, acc: Acc): PlanNode[] {
  return items.map((item, i) => compileItem(item, `${path}[${i}]`, d, par, acc));
}

function compileItem(item: unknown, path: string, d: CompileDefaults, par: Placement | undefined, acc: Acc): PlanNode {
  if (isStep(item) || (typeof item === 'function' && !isPipeline(item))) {
    return taskNode(item as StepFn, undefined, undefined, path, d, par, acc);
  }
  if (Array.isArray(item)) {
    checkTuple(item, path);
    const [target, name, version] = item as [unknown, string, string | undefined];
    if (isPipeline(target)) return pipelineNode(target, name, version, path, d, acc);
    return taskNode(target as StepFn, name, version, path, d, par, acc);
  }
  if (isPipeline(item)) return pipelineNode(item, undefined, undefined, path, d, acc);
  const owner = d.ownerName;
  if (item instanceof Condition) {
    acc.sig.push(`condition:${item.name}:${item.expression}`);
    const node: PlanNode = {
      kind: 'condition', path, name: item.name, version: DEFAULT_VERSION, owner,
      expression: item._compiled, source: item.expression,
      branchTrue: compileList(item.branchTrue, `${path}.branchTrue`, d, par, acc),
      branchFalse: compileList(item.branchFalse, `${path}.branchFalse`, d, par, acc),
    };
    acc.sig.push('end');
    return node;
  }
  if (item instanceof For) {
    acc.sig.push(`for:${item.name}:${item.iterations ?? ''}:${item.validationExpression ?? ''}`);
    const node: PlanNode = {
      kind: 'for', path, name: item.name, version: DEFAULT_VERSION, owner,
      iterations: item.iterations, expression: item._compiled, source: item.validationExpression, maxIterations: item.maxIterations,
      body: compileList(item.steps, `${path}.steps`, d, par, acc),
    };
    acc.sig.push('end');
    return node;
  }
  if (item instanceof Parallel) {
    acc.sig.push(`parallel:${item.name}`);
    const placement: Placement = { forced: item.executor, useProcesses: item.useProcesses, memoryLimitMb: item.memoryLimitMb, transfer: item.transfer };
    const branches = compileList(item.steps, `${path}.steps`, d, placement, acc);
    acc.sig.push('end');
    return {
      kind: 'parallel', path, name: item.name, version: DEFAULT_VERSION, owner,
      branches, maxWorkers: item.maxWorkers ?? Math.max(1, branches.length),
    };
  }
  if (item instanceof Background) {
    acc.sig.push('background');
    // A background step runs in-process, outside any Parallel placement it sits in.
    const inner = compileItem(item.step, `${path}.step`, d, undefined, acc);
    return { kind: 'background', path, name: item.name ?? inner.name, version: inner.version, owner, inner };
  }
  throw invalidStep(path, `is ${preview(item)}, not a step: ${EXPECTED}`);
}

const AsyncFunction = (async () => {}).constructor;

function taskNode(
  fn: StepFn, nameOverride: string | undefined, versionOverride: string | undefined,
  path: string, d: CompileDefaults, par: Placement | undefined, acc: Acc,
): TaskNode {
  const meta = isStep(fn) ? fn.meta : undefined;
  const target = meta ? meta.fn : fn;
  const name = nameOverride ?? meta?.name ?? (fn.name || 'step');
  const version = versionOverride ?? meta?.version ?? DEFAULT_VERSION;
  const moduleRef = meta?.module;
  const placement = placeTask(meta?.executor, meta?.memoryLimitMb, moduleRef !== undefined, path, name, d, par);
  if (acc.syncBlocker === undefined) {
    if (target instanceof AsyncFunction) acc.syncBlocker = `step '${name}' at ${path} is an async function`;
    else if (placement !== 'inline') acc.syncBlocker = `step '${name}' at ${path} runs in the '${placement}' executor`;
  }
  acc.sig.push(`task:${name}:${version}`);
  return {
    kind: 'task', path, name, version, owner: d.ownerName, fn: target,
    retries: meta?.retryCount ?? d.maxRetries,
    retryDelayMs: (meta?.retryDelay ?? d.retryDelay) * 1000,
    retryBackoff: meta?.retryBackoff ?? d.retryBackoff,
    retryOn: meta?.retryOn ?? d.retryOn,
    timeoutMs: meta?.timeout === undefined ? 0 : meta.timeout * 1000,
    moduleRef, placement,
    executorOwner: d.provided?.has(placement) === true ? d.owner as TaskNode['executorOwner'] : undefined,
    memoryLimitMb: placement === 'inline' ? undefined : meta?.memoryLimitMb ?? par?.memoryLimitMb,
    transfer: placement === 'threads' && (meta?.transfer === true || par?.transfer === true),
  };
}

/**
 * Where a task runs. Precedence, most binding first:
 * 1. a Parallel's explicit `executor` or `useProcesses` (docs/architecture.md "Run semantics": it is
 *    the caller's decision for every branch of the block);
 * 2. the step's own `step({ executor })` (a property of the step, wherever it sits);
 * 3. the Parallel's default placement (chooseExecutorKind: threads for addressable steps in
 *    Pipeline, in-process otherwise); outside any Parallel, in-process.
 * A step's own memoryLimitMb that a forced Parallel placement would silently drop is refused.
 */
function placeTask(
  own: ExecutorKind | undefined, ownMemoryLimitMb: number | undefined, addressable: boolean,
  path: string, name: string, d: CompileDefaults, par: Placement | undefined,
): ExecutorKind {
  const where = `${path} (step '${name}')`;
  const parallelForces = par !== undefined && (par.forced !== undefined || par.useProcesses);
  const forced = parallelForces ? par.forced : own;
  if (par === undefined && forced === undefined) return 'inline';
  const kind = chooseExecutorKind({
    forced, useProcesses: parallelForces && par.useProcesses, addressable, variant: d.variant, where,
    ...(d.provided === undefined ? {} : { provided: d.provided }),
  });
  if (ownMemoryLimitMb !== undefined && kind === 'inline') {
    throw invalidStep(path, `(step '${name}') has memoryLimitMb ${ownMemoryLimitMb}, which caps a worker, but its ` +
      `Parallel block forces executor 'inline': remove the block's executor or the step's memoryLimitMb`);
  }
  return kind;
}

function pipelineNode(
  child: PipelineLike, nameOverride: string | undefined, versionOverride: string | undefined,
  path: string, d: CompileDefaults, acc: Acc,
): PlanNode {
  if (child === d.owner || contains(child._plan, d.owner, new Set())) {
    throw invalidStep(path, `is the pipeline '${child.pipelineName}', which contains the pipeline being set up: nesting would never end`);
  }
  if (acc.syncBlocker === undefined && child._plan.syncBlocker !== undefined) {
    acc.syncBlocker = `nested pipeline '${child.pipelineName}' at ${path}: ${child._plan.syncBlocker}`;
  }
  acc.sig.push(`pipeline:${nameOverride ?? child.pipelineName}:${child._plan.signature}`);
  return {
    kind: 'pipeline', path, name: nameOverride ?? child.pipelineName, version: versionOverride ?? DEFAULT_VERSION,
    owner: d.ownerName, child,
  };
}

function contains(plan: Plan, target: object, seen: Set<object>): boolean {
  const walk = (nodes: readonly PlanNode[]): boolean => nodes.some((n) => {
    switch (n.kind) {
      case 'pipeline':
        if (n.child === target) return true;
        if (seen.has(n.child)) return false;
        seen.add(n.child);
        return contains(n.child._plan, target, seen);
      case 'condition': return walk(n.branchTrue) || walk(n.branchFalse);
      case 'for': return walk(n.body);
      case 'parallel': return walk(n.branches);
      case 'background': return walk([n.inner]);
      default: return false;
    }
  });
  return walk(plan.nodes);
}

/**
 * The top-level descriptors of a plan (pipeline.steps).
 *
 * @example
 * ```ts
 * describePlan(plan).map((s) => s.name);
 * ```
 */
export function describePlan(plan: Plan): StepDescriptor[] {
  return plan.nodes.map((n) => Object.freeze({ kind: n.kind, name: n.name, version: n.version, path: n.path }));
}
