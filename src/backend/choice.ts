/**
 * Which backend was asked for: the explicit `backend` option, then WPIPE_BACKEND (`auto` | `js` |
 * `wasm` | `native`), then `auto`; and the error a forced backend that cannot load throws. Shared by
 * the expression backends (load.ts) and the host services (host.ts), without loading either.
 *
 * @example
 * ```ts
 * requestedBackend();         // 'auto', or WPIPE_BACKEND
 * requestedBackend('native'); // 'native'; a misspelt one is a RangeError
 * ```
 */
import { WpipeError, invalidOption } from '../errors.js';
import type { BackendChoice } from './types.js';

const CHOICES: readonly BackendChoice[] = ['auto', 'js', 'wasm', 'native'];

let envChoice: { choice: BackendChoice; source: 'env' | 'default' } | undefined;

/** Forgets the environment choice (tests use this, through resetBackends). */
export function resetChoice(): void {
  envChoice = undefined;
}

function validateChoice(value: unknown, where: string): BackendChoice {
  if (typeof value === 'string' && (CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw invalidOption(`${where}: backend must be one of ${CHOICES.join(', ')}; got ${JSON.stringify(value)}`, 'RangeError');
}

/** WPIPE_BACKEND (read once), or auto when it is unset. */
export function environmentChoice(): { choice: BackendChoice; source: 'env' | 'default' } {
  if (!envChoice) {
    const raw = process.env.WPIPE_BACKEND;
    envChoice = raw === undefined || raw === '' ? { choice: 'auto', source: 'default' } : { choice: validateChoice(raw, 'WPIPE_BACKEND'), source: 'env' };
  }
  return envChoice;
}

/** The backend asked for: the explicit option, else WPIPE_BACKEND, else auto. */
export function requestedBackend(explicit?: unknown): BackendChoice {
  if (explicit !== undefined) return validateChoice(explicit, 'backend option');
  return environmentChoice().choice;
}

const FIXES: Record<'wasm' | 'native', string> = {
  wasm: 'run `npm run build:wasm` (needs the assemblyscript dev dependency), or choose WPIPE_BACKEND=js',
  native:
    `run \`npm run build:native\` (needs cmake, a C++17 compiler and node-addon-api; built for Node-API 8 on ` +
    `Node ${process.versions.node}), or choose WPIPE_BACKEND=wasm or js`,
};

/** The error of a forced backend that could not be loaded: what was tried and how to fix it. */
export function backendUnavailable(name: 'wasm' | 'native', cause: Error | undefined): WpipeError {
  return new WpipeError(
    'WPIPE_ERR_BACKEND_UNAVAILABLE',
    `the ${name} backend was requested but could not be loaded.\n` +
      `  tried: ${cause?.message ?? 'unknown error'}\n` +
      `  possible solutions: ${FIXES[name]}`,
    { cause, details: { backend: name } },
  );
}
