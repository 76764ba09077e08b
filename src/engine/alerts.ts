/**
 * Alerts: thresholds on a run or its steps written in the expression language, evaluated when the
 * run ends (`pipe.addAlert('slow', 'duration_ms > 5000')`), and error capture
 * (`pipe.onError(handler)`), the Python original's extras with their faults fixed.
 *
 * - An alert's expression reads the names of its scope (checked when it is added: a name that does
 *   not exist is an error there, with a hint, never a silent non-alert at run time):
 *   run scope — {@link RUN_ALERT_NAMES}; step scope (one evaluation per executed step of the run) —
 *   {@link STEP_ALERT_NAMES}. `error_rate` is the share of failed runs among the last 100 runs of this
 *   pipeline object, this one included.
 * - A fired alert goes to every observer's `onAlert` (run history records it in `alerts_fired`, with
 *   its configuration in `alerts_config`) and to the alert's own `onFire` callback. Neither is a step:
 *   a callback that throws is logged once per alert and run, and can never fire alerts or error
 *   capture again (the original ran hooks as steps, which re-triggered themselves).
 * - A step-scope alert fires at most {@link MAX_FIRED_PER_RUN} times per run (a 10,000-iteration For
 *   loop does not write 10,000 rows); past that one more alert says how many were left out.
 * - An expression that fails at run time (comparing a string with a number, say) is logged as a
 *   warning and the alert does not fire; the run is not failed for it.
 *
 * @example
 * ```ts
 * pipe.addAlert('slow run', 'duration_ms > 5000', { severity: 'critical' });
 * pipe.addAlert('flaky step', 'attempts > 1', { scope: 'step', onFire: (a) => pager.send(a.message) });
 * pipe.onError((e) => metrics.increment(`failed.${e.stepName}`));
 * ```
 */
import { closestName, describeType, invalidOption } from '../errors.js';
import { compileFor, type CompiledCondition } from './expression.js';
import type { Logger } from './logger.js';
import { optFunction, optString } from './validate.js';

/** Names a run-scope alert expression can read. */
export const RUN_ALERT_NAMES = ['duration_ms', 'status', 'failed', 'steps', 'error_rate', 'rss_mb', 'max_rss_mb', 'pipeline'] as const;
/** Names a step-scope alert expression can read. */
export const STEP_ALERT_NAMES = ['duration_ms', 'status', 'failed', 'attempts', 'step', 'kind', 'pipeline'] as const;
/** Fired alerts of one step-scope alert kept per run; the rest are counted in one more alert. */
export const MAX_FIRED_PER_RUN = 100;
/** Runs the error rate looks back on. */
const ERROR_RATE_WINDOW = 100;

/** Severity of an alert. */
export type AlertSeverity = 'info' | 'warning' | 'critical';

/** Options of `pipeline.addAlert`. */
export interface AlertOptions {
  /** 'run' (default): evaluated once when the run ends; 'step': for every step the run executed. */
  scope?: 'run' | 'step';
  /** Default 'warning'. */
  severity?: AlertSeverity;
  /** Recorded with the alert (default: `Alert '<name>' fired: <expression>`). */
  message?: string;
  /** Called with each fired alert (after observers); its errors are logged, never rethrown. */
  onFire?: (alert: FiredAlert) => void;
}

/** An alert that fired. */
export interface FiredAlert {
  readonly name: string;
  readonly scope: 'run' | 'step';
  readonly severity: AlertSeverity;
  readonly message: string;
  readonly expression: string;
  readonly runId: string;
  readonly pipelineName: string;
  /** The step it fired for (step scope). */
  readonly stepName: string | undefined;
  /** The names the expression read, with their values. */
  readonly values: Readonly<Record<string, unknown>>;
  /** When the expression is a plain threshold (`duration_ms > 5000`): its name, operator and number. */
  readonly threshold: { readonly metric: string; readonly operator: string; readonly value: number } | undefined;
  /** `duration_ms` of the run or step. */
  readonly durationMs: number;
}

/** What `pipeline.onError` handlers receive: one failed attempt of a step. */
export interface StepErrorDetails {
  readonly runId: string;
  readonly pipelineName: string;
  readonly stepName: string;
  readonly attempt: number;
  readonly error: unknown;
  /** Whether another attempt follows. */
  readonly willRetry: boolean;
}

/** A compiled alert. */
export interface AlertRule {
  readonly name: string;
  readonly scope: 'run' | 'step';
  readonly severity: AlertSeverity;
  readonly message: string;
  readonly expression: string;
  readonly compiled: CompiledCondition;
  readonly onFire: ((alert: FiredAlert) => void) | undefined;
  readonly threshold: FiredAlert['threshold'];
}

const THRESHOLD = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$/;

/**
 * Compiles and checks an alert (pipeline.addAlert calls this).
 *
 * @example
 * ```ts
 * const rule = compileAlert('addAlert', 'slow', 'duration_ms > 5000', {});
 * ```
 */
export function compileAlert(where: string, name: unknown, expression: unknown, options: AlertOptions): AlertRule {
  if (typeof name !== 'string' || name.trim().length === 0) throw invalidOption(`${where}: name must be a non-empty string, got ${describeType(name)}`);
  if (options === null || typeof options !== 'object') throw invalidOption(`${where}: options must be an object`);
  const unknownKey = Object.keys(options).find((k) => !['scope', 'severity', 'message', 'onFire'].includes(k));
  if (unknownKey !== undefined) {
    const hint = closestName(unknownKey, ['scope', 'severity', 'message', 'onFire']);
    throw invalidOption(`${where}: unknown option '${unknownKey}'${hint ? ` (did you mean ${hint}?)` : ''}`);
  }
  const scope = options.scope ?? 'run';
  if (scope !== 'run' && scope !== 'step') throw invalidOption(`${where}: scope must be 'run' or 'step', got ${JSON.stringify(scope)}`, 'RangeError');
  const severity = options.severity ?? 'warning';
  if (severity !== 'info' && severity !== 'warning' && severity !== 'critical') {
    throw invalidOption(`${where}: severity must be 'info', 'warning' or 'critical', got ${JSON.stringify(severity)}`, 'RangeError');
  }
  const compiled = compileFor(where, 'expression', expression);
  const allowed: readonly string[] = scope === 'run' ? RUN_ALERT_NAMES : STEP_ALERT_NAMES;
  for (const used of compiled.names) {
    if (!allowed.includes(used)) {
      const hint = closestName(used, allowed);
      throw invalidOption(`${where}: alert '${name}' reads '${used}', which a ${scope}-scope alert does not have` +
        `${hint ? ` (did you mean ${hint}?)` : ''}; it can read ${allowed.join(', ')}`, 'RangeError');
    }
  }
  const text = expression as string;
  const m = THRESHOLD.exec(text);
  return {
    name, scope, severity, expression: text, compiled,
    message: optString(where, 'message', options.message) ?? `Alert '${name}' fired: ${text}`,
    onFire: optFunction<(alert: FiredAlert) => void>(where, 'onFire', options.onFire),
    threshold: m ? { metric: m[1]!, operator: m[2]!, value: Number(m[3]) } : undefined,
  };
}

/** What the alert evaluator needs of a finished run. */
export interface FinishedRun {
  readonly runId: string;
  readonly pipelineName: string;
  readonly status: 'completed' | 'error' | 'cancelled';
  readonly durationMs: number;
  readonly steps: readonly { readonly name: string; readonly kind: string; readonly status: string; readonly attempts: number; readonly durationMs: number }[];
}

/**
 * Evaluates a pipeline's alerts at the end of each run and keeps the error-rate window. One per
 * pipeline object.
 *
 * @example
 * ```ts
 * const fired = evaluator.evaluate(run); // FiredAlert[]
 * ```
 */
export class AlertEvaluator {
  private readonly outcomes: boolean[] = [];
  private readonly warned = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /** Records the run's outcome (for `error_rate`) and returns the alerts that fire for it. */
  evaluate(rules: readonly AlertRule[], run: FinishedRun): FiredAlert[] {
    this.outcomes.push(run.status === 'error');
    if (this.outcomes.length > ERROR_RATE_WINDOW) this.outcomes.shift();
    if (rules.length === 0) return [];
    const fired: FiredAlert[] = [];
    const errorRate = this.outcomes.filter(Boolean).length / this.outcomes.length;
    let memory: { rss_mb: number; max_rss_mb: number } | undefined;
    for (const rule of rules) {
      if (rule.scope === 'run') {
        if (memory === undefined && (rule.compiled.names.includes('rss_mb') || rule.compiled.names.includes('max_rss_mb'))) {
          memory = { rss_mb: process.memoryUsage.rss() / 2 ** 20, max_rss_mb: process.resourceUsage().maxRSS / 1024 };
        }
        const values: Record<string, unknown> = {
          duration_ms: run.durationMs, status: run.status, failed: run.status === 'error', steps: run.steps.length,
          error_rate: errorRate, pipeline: run.pipelineName, ...(memory ?? {}),
        };
        if (this.holds(rule, values, run.runId)) fired.push(this.fire(rule, run, values, undefined, run.durationMs));
        continue;
      }
      let count = 0;
      for (const step of run.steps) {
        const values: Record<string, unknown> = {
          duration_ms: step.durationMs, status: step.status, failed: step.status === 'failed', attempts: step.attempts,
          step: step.name, kind: step.kind, pipeline: run.pipelineName,
        };
        if (!this.holds(rule, values, run.runId)) continue;
        if (++count <= MAX_FIRED_PER_RUN) fired.push(this.fire(rule, run, values, step.name, step.durationMs));
      }
      if (count > MAX_FIRED_PER_RUN) {
        const left = count - MAX_FIRED_PER_RUN;
        fired.push({
          ...this.fire(rule, run, {}, undefined, run.durationMs),
          message: `Alert '${rule.name}' fired for ${count} steps of run '${run.runId}'; ${left} of them are not recorded one by one`,
        });
      }
    }
    return fired;
  }

  /**
   * Hands each fired alert to `deliver` (the observers) and to its rule's `onFire`; their errors are
   * logged once per alert and run, never rethrown.
   */
  deliver(fired: readonly FiredAlert[], rules: readonly AlertRule[], deliver: (alert: FiredAlert) => void): void {
    const failed = new Set<string>();
    for (const alert of fired) {
      const rule = rules.find((r) => r.name === alert.name);
      for (const [who, fn] of [['observers', deliver], ['onFire', rule?.onFire]] as const) {
        if (fn === undefined) continue;
        try {
          fn(alert);
        } catch (error) {
          const key = `${alert.name}/${who}`;
          if (failed.has(key)) continue;
          failed.add(key);
          this.logger.error(`[ALERT] delivering alert '${alert.name}' of run '${alert.runId}' to ${who} failed: ${(error as Error)?.message ?? String(error)}`);
        }
      }
    }
  }

  private holds(rule: AlertRule, values: Record<string, unknown>, runId: string): boolean {
    try {
      return rule.compiled.test(values);
    } catch (error) {
      const key = `${rule.name}`;
      if (!this.warned.has(key)) {
        this.warned.add(key);
        this.logger.warn(`[ALERT] alert '${rule.name}' (${rule.expression}) could not be evaluated for run '${runId}': ` +
          `${(error as Error)?.message ?? String(error)}; it does not fire (warned once)`);
      }
      return false;
    }
  }

  private fire(rule: AlertRule, run: FinishedRun, values: Record<string, unknown>, stepName: string | undefined, durationMs: number): FiredAlert {
    const read: Record<string, unknown> = {};
    for (const n of rule.compiled.names) if (n in values) read[n] = values[n];
    return {
      name: rule.name, scope: rule.scope, severity: rule.severity, message: rule.message, expression: rule.expression,
      runId: run.runId, pipelineName: run.pipelineName, stepName, values: read, threshold: rule.threshold, durationMs,
    };
  }
}

/**
 * Calls error-capture handlers for one failed attempt. A handler that throws (or rejects) is logged;
 * it cannot re-enter error capture: handlers are not steps, and nothing they throw reaches the
 * engine's failure path.
 *
 * @example
 * ```ts
 * captureError(handlers, details, logger);
 * ```
 */
export function captureError(handlers: readonly ((details: StepErrorDetails) => unknown)[], details: StepErrorDetails, logger: Logger): void {
  for (const handler of handlers) {
    try {
      const r = handler(details);
      if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
        (r as Promise<unknown>).then(undefined, (error: unknown) => {
          logger.error(`[ERROR CAPTURE FAILED] handler for step '${details.stepName}': ${(error as Error)?.message ?? String(error)}`);
        });
      }
    } catch (error) {
      logger.error(`[ERROR CAPTURE FAILED] handler for step '${details.stepName}': ${(error as Error)?.message ?? String(error)}`);
    }
  }
}

/** @internal For pipeline.addAlert: a duplicate name is an error. */
export function duplicateAlert(where: string, name: string): Error {
  return invalidOption(`${where}: an alert named '${name}' is already added to this pipeline`);
}
