// Walking an error's cause chain, for the suites whose errors cross worker boundaries.
import type { WpipeError } from '../../src/errors.js';

/** The error and its causes, outermost first (at most ten). */
export function chain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let c: unknown = e; c !== undefined && out.length < 10; c = (c as { cause?: unknown } | null)?.cause) {
    out.push(c);
    if (typeof c !== 'object' || c === null) break;
  }
  return out;
}

/** The `code` of each error of the chain ('' where there is none). */
export function codes(e: unknown): string[] {
  return chain(e).map((c) => String((c as { code?: unknown } | null)?.code ?? ''));
}

/** The deepest error of the chain with `code` (the original: the engine promotes some codes to the step's TaskError). */
export function find(e: unknown, code: string): WpipeError | undefined {
  return chain(e).reverse().find((c) => (c as { code?: unknown } | null)?.code === code) as WpipeError | undefined;
}
