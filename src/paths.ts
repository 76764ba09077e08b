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

/** wasm/wpipe.wasm (outside build/, which cmake-js owns and wipes when a build fails), unless WPIPE_WASM_PATH points elsewhere. */
export function wasmPath(): string {
  return process.env.WPIPE_WASM_PATH || join(packageRoot(), 'wasm', 'wpipe.wasm');
}

/**
 * The prebuilt addon's name for this machine, relative to the package root:
 * `prebuilds/<platform>-<arch>/wpipe.napi[.<libc>].node` (prebuildify's layout; libc is glibc or
 * musl on Linux, since an addon linked against one does not load on the other). Node-API is
 * ABI-stable, so one file serves every Node version from 20 on. scripts/build.mjs names it the same
 * way when it makes and when it checks a prebuild.
 */
export function prebuildName(): string {
  let libc = '';
  if (process.platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    libc = header?.glibcVersionRuntime ? '.glibc' : '.musl';
  }
  return join('prebuilds', `${process.platform}-${process.arch}`, `wpipe.napi${libc}.node`);
}

/**
 * Where the addon may be, in the order the loader tries them: WPIPE_NATIVE_PATH alone when set;
 * else the addon compiled on this machine (build/Release/wpipe.node — it exists only when someone
 * asked for a build, or when the install found no prebuild that loads here), then the prebuild.
 * Lazy: the prebuild's name needs the libc, which costs a process report (~5 ms), so it is only
 * worked out when the local build is missing or does not load.
 */
export function* addonCandidates(): Generator<string> {
  if (process.env.WPIPE_NATIVE_PATH) {
    yield process.env.WPIPE_NATIVE_PATH;
    return;
  }
  yield join(packageRoot(), 'build', 'Release', 'wpipe.node');
  yield join(packageRoot(), prebuildName());
}
