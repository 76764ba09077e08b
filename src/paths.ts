/**
 * Where the package's build outputs are. This module runs from src/ (tsx), from dist/ (tsc output)
 * and inside the dist/wpipe.js bundle, so paths are found from the package root — the nearest folder
 * above this file whose package.json is wpipe's — not from this file's own depth. Resolved lazily
 * (no file system access at import).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'wpipe') return (root = dir);
      } catch {
        // not a readable manifest: keep looking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return (root = join(dirname(fileURLToPath(import.meta.url)), '..'));
    dir = parent;
  }
}

/** build/wasm/wpipe.wasm, unless WPIPE_WASM_PATH points elsewhere. */
export function wasmPath(): string {
  return process.env.WPIPE_WASM_PATH || join(packageRoot(), 'build', 'wasm', 'wpipe.wasm');
}

/** build/Release/wpipe.node, unless WPIPE_NATIVE_PATH points elsewhere. */
export function addonPath(): string {
  return process.env.WPIPE_NATIVE_PATH || join(packageRoot(), 'build', 'Release', 'wpipe.node');
}
