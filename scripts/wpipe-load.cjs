'use strict';
/**
 * Loads the library bundle (dist/wpipe.cjs) for the package entry (dist/wpipe.js) with V8's code
 * cache (dist/wpipe.cache), so a process that imports wpipe does not parse and compile the whole
 * bundle again: most of what `import('wpipe')` cost (README "Import cost"). scripts/build.mjs copies
 * this file to dist/wpipe-load.cjs.
 *
 * The cache is only an accelerator, never a source of truth. V8 checks a cache against its own
 * version and flags, but of the source only its length: a bundle changed to one of the same length
 * would run the code the cache holds. So the cache file starts with a line naming the bundle it was
 * made from — its SHA-1, size, inode and change time — and is used only for that bundle: the same
 * file untouched since (size, inode and ctime equal: no hashing), or, after a copy or an
 * extraction, the same bytes (SHA-1 equal). Anything else compiles the bundle from source, as does
 * a missing or damaged file; the bundle runs the same way either way (test/code-cache.test.ts).
 *
 * - `WPIPE_CODE_CACHE=0`: the bundle is loaded with require(), no cache (bench/cli.ts's off switch).
 * - The bundle never calls import() itself: V8 drops import()'s callback from functions it reads
 *   back from a cache, so the bundle is handed the package entry's import() (src/dynamic-import.ts).
 * - `node dist/wpipe-load.cjs --write-cache`: compiles the bundle, runs its top level and saves what
 *   V8 compiled (the build does this, and the install script again for the Node that installs).
 *
 * @example
 * ```js
 * // dist/wpipe.js (generated): the bundle's exports, loaded through the cache
 * const lib = createRequire(import.meta.url)('./wpipe-load.cjs').load(import.meta.url, (s) => import.meta.resolve(s), (s) => import(s));
 * ```
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');
const { isAscii } = require('node:buffer');

const BUNDLE = path.join(__dirname, 'wpipe.cjs');
const CACHE = path.join(__dirname, 'wpipe.cache');
/** First line of a cache file: this format, then the bundle it was made from. */
const MAGIC = 'wpipe-code-cache/1';

/**
 * How the last load went: 'accepted'; 'rejected' (V8 refused it: another Node, other flags, damaged
 * data); 'stale' (made from another bundle, or its first line is damaged); 'missing'; 'off'. In the
 * last four the bundle was compiled from source.
 */
exports.cache = undefined;

/** The bundle's bytes and the identity of the file they were read from (one open: no race between the two). */
function readBundle() {
  const fd = fs.openSync(BUNDLE, 'r');
  try {
    const stat = fs.fstatSync(fd);
    const bytes = Buffer.allocUnsafe(stat.size);
    let at = 0;
    while (at < bytes.length) {
      const n = fs.readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return { bytes: bytes.subarray(0, at), stat };
  } finally {
    fs.closeSync(fd);
  }
}

const sha1 = (bytes) => require('node:crypto').createHash('sha1').update(bytes).digest('hex');

/** The first line of a cache made from this bundle file. */
function headerOf(bytes, stat) {
  return `${MAGIC} sha1=${sha1(bytes)} size=${bytes.length} ino=${stat.ino} ctime=${stat.ctimeMs}`;
}

/** The V8 data of the cache file when it was made from this bundle (else why not, as the state). */
function cachedDataFor(bytes, stat) {
  let file;
  try {
    file = fs.readFileSync(CACHE);
  } catch {
    return { state: 'missing' };
  }
  const end = file.indexOf(10);
  if (end < 0 || end > 512) return { state: 'stale' };
  const fields = {};
  const words = file.toString('latin1', 0, end).split(' ');
  if (words[0] !== MAGIC) return { state: 'stale' };
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) fields[w.slice(0, eq)] = w.slice(eq + 1);
  }
  if (fields.size !== String(bytes.length)) return { state: 'stale' };
  // The file the cache was made from, untouched since: its change time moves with any write.
  const untouched = fields.ino === String(stat.ino) && fields.ctime === String(stat.ctimeMs);
  // Otherwise (copied, extracted, touched) the same bytes are as good.
  if (!untouched && fields.sha1 !== sha1(bytes)) return { state: 'stale' };
  return { state: 'found', data: file.subarray(end + 1) };
}

/** The bundle compiled as a CommonJS module would be, with V8's cached data when given. */
function compile(bytes, cachedData) {
  // The build writes it in ASCII, where Latin-1 decoding gives the same text faster; anything else is UTF-8.
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  return new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: BUNDLE, cachedData });
}

/** Runs the compiled module and returns what it exports: the bundle's factory. */
function factoryOf(script) {
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, __dirname);
  return module.exports;
}

/**
 * The library's exports. `metaUrl`, `metaResolve` and `dynamicImport` stand for the bundle's
 * `import.meta.url`, `import.meta.resolve` and `import()`: those of the package entry, which sits
 * beside the bundle.
 */
exports.load = function load(metaUrl, metaResolve, dynamicImport) {
  if (process.env.WPIPE_CODE_CACHE === '0') {
    exports.cache = 'off';
    return require(BUNDLE)(metaUrl, metaResolve, dynamicImport);
  }
  const { bytes, stat } = readBundle();
  const found = cachedDataFor(bytes, stat);
  const script = compile(bytes, found.data);
  exports.cache = found.state !== 'found' ? found.state : script.cachedDataRejected ? 'rejected' : 'accepted';
  return factoryOf(script)(metaUrl, metaResolve, dynamicImport);
};

/** Writes the cache for this Node and this bundle file (atomically: a reader sees the old file or the new one). */
function writeCache() {
  const { bytes, stat } = readBundle();
  const script = compile(bytes, undefined);
  const refuse = (what) => (specifier) => {
    throw new Error(`${what}(${JSON.stringify(specifier)}) while writing the code cache`);
  };
  factoryOf(script)(pathToFileURL(path.join(__dirname, 'wpipe.js')).href, refuse('import.meta.resolve'), refuse('import'));
  const temp = `${CACHE}.${process.pid}.tmp`;
  fs.writeFileSync(temp, Buffer.concat([Buffer.from(`${headerOf(bytes, stat)}\n`, 'latin1'), script.createCachedData()]));
  fs.renameSync(temp, CACHE);
  return fs.statSync(CACHE).size;
}

if (require.main === module) {
  if (process.argv[2] !== '--write-cache') {
    console.error('usage: node wpipe-load.cjs --write-cache');
    process.exit(2);
  }
  const bytes = writeCache();
  console.log(`wpipe: code cache written (${Math.round(bytes / 1024)} KB, Node ${process.version})`);
}
