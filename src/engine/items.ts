/**
 * The checks of a step list's items: shared by the block classes (blocks.ts, which check their own
 * step lists when built) and the compiler (compile.ts, which turns them into nodes). Brands, not
 * instanceof, recognise pipelines and blocks, so this module imports neither pipeline.ts nor
 * blocks.ts and the three form no import cycle. What a step list may hold (StepItem) is declared
 * with the block classes, in blocks.ts.
 */
import { WpipeError, describeType } from '../errors.js';
import type { NestedPipeline } from './nodes.js';

/**
 * Marks Pipeline instances, so this module need not import the class (it imports us).
 *
 * @example
 * ```ts
 * (pipe as PipelineLike)[PIPELINE_BRAND]; // true
 * ```
 */
export const PIPELINE_BRAND: unique symbol = Symbol.for('wpipe.pipeline');

/**
 * Marks the block classes (Condition, For, Parallel, Background), so checking an item needs no
 * import of blocks.ts, which imports this module to check its own step lists.
 *
 * @example
 * ```ts
 * isBlock(new Background(notify)); // true
 * ```
 */
export const BLOCK_BRAND: unique symbol = Symbol.for('wpipe.block');

/** Whether a value is one of the block classes. */
export function isBlock(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as { [BLOCK_BRAND]?: unknown })[BLOCK_BRAND] === true;
}

/**
 * Anything that is a Pipeline (or PipelineAsync), as a step.
 *
 * @example
 * ```ts
 * const child: PipelineLike = new Pipeline({ pipelineName: 'child' });
 * ```
 */
export interface PipelineLike extends NestedPipeline {
  readonly [PIPELINE_BRAND]: true;
}

export const EXPECTED =
  'expected a function, step(…)(fn), a tuple [fn, name, version?], a Condition, For, Parallel or Background block, or a Pipeline';

export function isPipeline(v: unknown): v is PipelineLike {
  return typeof v === 'object' && v !== null && (v as { [PIPELINE_BRAND]?: unknown })[PIPELINE_BRAND] === true;
}

export function preview(v: unknown): string {
  if (typeof v === 'string') return `a string ('${v.length > 30 ? `${v.slice(0, 30)}…` : v}')`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `a ${typeof v} (${String(v)})`;
  const t = describeType(v);
  return t === 'undefined' || t === 'null' ? t : `a${/^[aeiou]/i.test(t) ? 'n' : ''} ${t}`;
}

export function invalidStep(path: string, message: string): WpipeError {
  return new WpipeError('WPIPE_ERR_INVALID_STEP', `${path} ${message}`, { details: { path } });
}

/**
 * Checks the shape of one item (blocks were checked when they were built); throws WpipeError
 * WPIPE_ERR_INVALID_STEP naming `path`.
 *
 * @example
 * ```ts
 * checkItem('nope', 'steps[1]'); // throws "steps[1] is a string ('nope'), not a step: …"
 * ```
 */
export function checkItem(item: unknown, path: string): void {
  if (typeof item === 'function') return;
  if (isBlock(item)) return;
  if (isPipeline(item)) return;
  if (Array.isArray(item)) {
    checkTuple(item, path);
    return;
  }
  throw invalidStep(path, `is ${preview(item)}, not a step: ${EXPECTED}`);
}

export function checkTuple(t: readonly unknown[], path: string): void {
  if (t.length < 2 || t.length > 3) {
    throw invalidStep(path, `is a tuple of length ${t.length}; a step tuple is [fn, name] or [fn, name, version]`);
  }
  if (typeof t[0] !== 'function' && !isPipeline(t[0])) {
    throw invalidStep(`${path}[0]`, `is ${preview(t[0])}; the first element of a step tuple must be a function or a Pipeline`);
  }
  if (typeof t[1] !== 'string' || t[1].length === 0) {
    throw invalidStep(`${path}[1]`, `is ${preview(t[1])}; the name in a step tuple must be a non-empty string`);
  }
  if (t.length === 3 && (typeof t[2] !== 'string' || t[2].length === 0)) {
    throw invalidStep(`${path}[2]`, `is ${preview(t[2])}; the version in a step tuple must be a non-empty string`);
  }
}
