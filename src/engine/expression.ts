/**
 * The engine's one door to the expression language (src/expr): Condition, For and addCheckpoint
 * compile through here, at construction, so syntax errors surface there and never at run time.
 */
import { compileExpression } from '../expr/index.js';
import { describeType, invalidOption } from '../errors.js';

/**
 * The engine's view of a compiled expression used as a condition (Condition, For's
 * validationExpression, checkpoints, alerts): `test` and the names it reads. Not the package's
 * `CompiledExpression` class (src/expr), which this is a structural subset of.
 *
 * @example
 * ```ts
 * const e: CompiledCondition = compileFor('Condition', 'expression', 'n > 1');
 * e.test({ n: 2 }); // true
 * ```
 */
export interface CompiledCondition {
  evaluate(ctx: Record<string, unknown>): unknown;
  test(ctx: Record<string, unknown>): boolean;
  readonly names: readonly string[];
}

/**
 * Compiles `text`; throws ExpressionError (WPIPE_ERR_EXPRESSION_SYNTAX) on bad syntax, TypeError
 * when it is not a string.
 *
 * @example
 * ```ts
 * const e = compileFor('For', 'validationExpression', 'pending > 0');
 * ```
 */
export function compileFor(where: string, name: string, text: unknown): CompiledCondition {
  if (typeof text !== 'string') throw invalidOption(`${where}: ${name} must be a string, got ${describeType(text)}`);
  if (text.trim().length === 0) throw invalidOption(`${where}: ${name} must not be empty`, 'RangeError');
  return compileExpression(text) as CompiledCondition;
}
