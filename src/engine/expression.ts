/**
 * The engine's one door to the expression language (src/expr): Condition, For and addCheckpoint
 * compile through here, at construction, so syntax errors surface there and never at run time.
 */
import { compileExpression } from '../expr/index.js';
import { describeType, invalidOption } from '../errors.js';

/**
 * What the engine uses of a compiled expression.
 *
 * @example
 * ```ts
 * const e: CompiledExpression = compileFor('Condition', 'expression', 'n > 1');
 * e.test({ n: 2 }); // true
 * ```
 */
export interface CompiledExpression {
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
export function compileFor(where: string, name: string, text: unknown): CompiledExpression {
  if (typeof text !== 'string') throw invalidOption(`${where}: ${name} must be a string, got ${describeType(text)}`);
  if (text.trim().length === 0) throw invalidOption(`${where}: ${name} must not be empty`, 'RangeError');
  return compileExpression(text) as CompiledExpression;
}
