/**
 * The expression language's public API: compileExpression and CompiledExpression.
 */
import { parse, type Node } from './parse.js';
import { compileProgram } from './compile.js';
import { compileClosure, type Evaluator } from './closures.js';
import { resetWork, truthy } from '../vm/pyops.js';
import { MISSING, toHost } from '../vm/values.js';
import { ErrorKind, FaultWord, Limits, Reason } from './bytecode.js';
import { describeFault } from './messages.js';
import { inspectColumns, planBatch, planColumns, type BatchPlan, type ColumnInfo } from './batch.js';
import { ColumnarEvaluator } from './columnar.js';
import type { Program } from './bytecode.js';
import { ExpressionError, invalidOption, checkOptions, describeType } from '../errors.js';
import { VmFault, type BackendChoice, type BatchEvaluator, type ExprVm, type ScalarEvaluator } from '../backend/types.js';
import { batchVm, scalarVm } from '../backend/load.js';
import { requestedBackend } from '../backend/choice.js';

/** Key of the js backend's columnar evaluator among a plan's evaluators. */
const JS_COLUMNS = Symbol('js columns');

/** Parsed and compiled forms of one text, shared by every backend. */
class Source {
  private programCache?: Program;
  readonly evaluate: Evaluator;
  readonly names: readonly string[];
  private readonly vmScalar = new Map<ExprVm, ScalarEvaluator>();
  private readonly plans = new Map<string, { plan?: BatchPlan; evaluators: Map<ExprVm | typeof JS_COLUMNS, BatchEvaluator> }>();

  constructor(readonly text: string, readonly ast: Node) {
    const compiled = compileClosure(ast, text);
    this.evaluate = compiled.evaluate;
    this.names = Object.freeze(compiled.names);
  }

  get program(): Program {
    this.programCache ??= compileProgram(this.ast, this.text);
    return this.programCache;
  }

  scalarFor(vm: ExprVm): ScalarEvaluator {
    let ev = this.vmScalar.get(vm);
    if (!ev) {
      ev = vm.prepareScalar(this.program);
      this.vmScalar.set(vm, ev);
    }
    return ev;
  }

  planFor(infos: Map<string, ColumnInfo>): { plan?: BatchPlan; evaluators: Map<ExprVm | typeof JS_COLUMNS, BatchEvaluator> } {
    let key = '';
    for (const [name, info] of infos) key += `${name}:${info.shape};`;
    let entry = this.plans.get(key);
    if (!entry) {
      entry = { plan: planBatch(this.ast, this.text, infos), evaluators: new Map() };
      if (this.plans.size > 16) this.plans.clear();
      this.plans.set(key, entry);
    }
    return entry;
  }
}

/** Bounded cache of parsed expressions, by text (least recently used is evicted). */
const CACHE_LIMIT = 1024;
const cache = new Map<string, Source>();

function sourceFor(text: string): Source {
  let source = cache.get(text);
  if (source) {
    cache.delete(text);
    cache.set(text, source);
    return source;
  }
  source = new Source(text, parse(text));
  cache.set(text, source);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  return source;
}

/** Number of cached compiled expressions (for tests and diagnostics). */
export function expressionCacheSize(): number {
  return cache.size;
}

function faultError(program: Program, fault: Int32Array, row = -1): ExpressionError {
  const kind = fault[FaultWord.KIND]!;
  const pc = fault[FaultWord.PC]!;
  const reason = fault[FaultWord.REASON]!;
  const tagA = fault[FaultWord.TAG_A]!;
  const tagB = fault[FaultWord.TAG_B]!;
  const safePc = pc >= 0 && pc < program.code.length ? pc : 0;
  const site = { op: program.code[safePc] ?? 0, arg: program.code[safePc + 1] ?? 0 };
  const { pythonType, reason: text } = describeFault(kind, reason, tagA, tagB, '', site, program.names, program.strings);
  const pos = Math.max(0, program.positions[safePc] ?? 0);
  return withRow(new ExpressionError('eval', pythonType, text, program.text, pos), row);
}

function depthError(text: string): ExpressionError {
  const { pythonType, reason } = describeFault(ErrorKind.LimitError, Reason.DEPTH, -1, -1, '', { op: 0, arg: 0 }, [], []);
  return new ExpressionError('eval', pythonType, reason, text, 0);
}

function withRow(e: ExpressionError, row: number): ExpressionError {
  if (row < 0) return e;
  return new ExpressionError('eval', e.pythonType, `${e.reason} (in row ${row})`, e.expression, e.position, { details: { row } });
}

/**
 * A context must be a plain object, so that reading a name can only find its own keys (names that
 * Object.prototype has are read with an own-property check). `constructor === Object` is the cheap
 * test (Object.getPrototypeOf costs ~10 ns on Node 20); anything else takes the exact one.
 */
function checkContext(ctx: unknown): asserts ctx is Record<string, unknown> {
  if (typeof ctx !== 'object' || ctx === null) badContext(ctx);
  if ((ctx as { constructor?: unknown }).constructor === Object) return;
  const proto = Object.getPrototypeOf(ctx);
  if (proto !== Object.prototype && proto !== null) badContext(ctx);
}

function badContext(ctx: unknown): never {
  throw invalidOption(`an expression context must be a plain object, got ${describeType(ctx)}`);
}

export interface CompileOptions {
  /** Which backend evaluates: 'auto' (default, or WPIPE_BACKEND), 'js', 'wasm' or 'native'. */
  backend?: BackendChoice;
}

/**
 * A compiled expression. Immutable; safe to share and to call from many places.
 */
export class CompiledExpression {
  /** The expression text. */
  readonly text: string;
  /** The backend asked for (after WPIPE_BACKEND): 'auto', 'js', 'wasm' or 'native'. */
  readonly backend: BackendChoice;
  private readonly source: Source;
  private readonly vm: ExprVm | undefined;

  /** @internal use compileExpression */
  constructor(source: Source, backend: BackendChoice) {
    this.source = source;
    this.text = source.text;
    this.backend = backend;
    this.vm = scalarVm(backend);
    // Per-instance functions: one call less on the hot path than a method that branches on the VM.
    const js = source.evaluate;
    const raw: Evaluator = this.vm
      ? (ctx) => this.vmEvaluate(this.vm!, ctx, -1)
      : (ctx) => {
          resetWork();
          return js(ctx);
        };
    this.evaluate = (ctx) => {
      checkContext(ctx);
      const value = toHost(raw(ctx), Limits.MAX_DEPTH);
      if (value === MISSING) throw depthError(source.text);
      return value;
    };
    this.test = (ctx) => {
      checkContext(ctx);
      const r = raw(ctx);
      return r === true || (r !== false && truthy(r));
    };
  }

  /** The context names the expression reads, in first-use order. */
  get names(): readonly string[] {
    return this.source.names;
  }

  /**
   * Evaluates against a context and returns the value, with Python semantics (ints and floats as
   * numbers, tuples as arrays, None as null).
   * @throws ExpressionError (`WPIPE_ERR_EXPRESSION_EVAL`) on an evaluation error.
   */
  readonly evaluate: (ctx: Record<string, unknown>) => unknown;

  /** Evaluates and returns Python truthiness as a boolean. */
  readonly test: (ctx: Record<string, unknown>) => boolean;

  private vmEvaluate(vm: ExprVm, ctx: Record<string, unknown>, row: number): unknown {
    try {
      return this.source.scalarFor(vm).evaluate(ctx);
    } catch (e) {
      if (e instanceof VmFault) throw faultError(this.source.program, e.fault, row);
      throw e;
    }
  }

  /**
   * Evaluates over columns (typed arrays, or arrays of numbers, booleans or strings — one entry per
   * name the expression reads, all of one length) and returns the truthiness of each row.
   * @throws ExpressionError for the first row whose evaluation fails (the message names the row).
   */
  testBatch(columns: Record<string, ArrayLike<unknown>>): Uint8Array {
    const { rows, infos } = inspectColumns(columns, this.source.names);
    const out = new Uint8Array(rows);
    if (rows === 0) return out;
    const vm = batchVm(this.backend, rows);
    const entry = infos.size === this.source.names.length ? this.source.planFor(infos) : undefined;
    if (entry?.plan) {
      const key = vm ?? JS_COLUMNS;
      let ev = entry.evaluators.get(key);
      if (!ev) {
        ev = vm ? vm.prepareBatch(entry.plan.program) : new ColumnarEvaluator(entry.plan.program);
        entry.evaluators.set(key, ev);
      }
      const failed = ev.run(planColumns(entry.plan, infos, rows), rows, out);
      if (failed >= 0) throw faultError(entry.plan.program, ev.fault, failed);
      return out;
    }
    this.rowWise(infos, rows, out, this.backend === 'auto' ? undefined : vm);
    return out;
  }

  /** How testBatch would run on these columns: which backend, and whether as columns or row by row. */
  explainBatch(columns: Record<string, ArrayLike<unknown>>): { backend: 'js' | 'wasm' | 'native'; mode: 'columns' | 'rows' } {
    const { rows, infos } = inspectColumns(columns, this.source.names);
    const vm = batchVm(this.backend, rows);
    const plan = infos.size === this.source.names.length ? this.source.planFor(infos).plan : undefined;
    if (plan) return { backend: vm ? vm.name : 'js', mode: 'columns' };
    return { backend: vm && this.backend !== 'auto' ? vm.name : 'js', mode: 'rows' };
  }

  private rowWise(infos: Map<string, ColumnInfo>, rows: number, out: Uint8Array, vm: ExprVm | undefined): void {
    const cols = [...infos.values()];
    const row: Record<string, unknown> = {};
    for (const c of cols) row[c.name] = undefined;
    const evaluate = this.source.evaluate;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols.length; j++) row[cols[j]!.name] = cols[j]!.values[i];
      let r: unknown;
      if (vm) {
        r = this.vmEvaluate(vm, row, i);
      } else {
        resetWork();
        try {
          r = evaluate(row);
        } catch (e) {
          throw e instanceof ExpressionError ? withRow(e, i) : e;
        }
      }
      out[i] = r === true || (r !== false && truthy(r)) ? 1 : 0;
    }
  }
}

const compiledCache = new Map<string, CompiledExpression>();

/**
 * Compiles an expression of wpipe's safe Python-style language (see docs/expression-semantics.md).
 * Compiled expressions are cached by text.
 *
 * @example
 * ```ts
 * const e = compileExpression("x > 5 and kind == 'a'");
 * e.evaluate({ x: 7, kind: 'a' });   // true
 * e.testBatch({ x: new Float64Array([1, 9]), kind: ['a', 'a'] });   // Uint8Array [0, 1]
 * ```
 * @throws ExpressionError (`WPIPE_ERR_EXPRESSION_SYNTAX`) with the text and a caret at the position.
 */
export function compileExpression(text: string, options: CompileOptions = {}): CompiledExpression {
  if (typeof text !== 'string') throw invalidOption(`compileExpression: text must be a string, got ${describeType(text)}`);
  checkOptions('compileExpression', options, ['backend']);
  const backend = requestedBackend(options.backend);
  const key = `${backend}\u0000${text}`;
  let compiled = compiledCache.get(key);
  if (compiled) return compiled;
  compiled = new CompiledExpression(sourceFor(text), backend);
  if (compiledCache.size >= CACHE_LIMIT * 4) compiledCache.clear();
  compiledCache.set(key, compiled);
  return compiled;
}

export { ExpressionError };
