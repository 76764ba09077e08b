'use strict';
/**
 * Loads the library bundle (dist/wpipe.cjs) for the package entry (dist/wpipe.js) with V8's code
 * cache (dist/wpipe.cache), so a process that imports wpipe does not parse and compile the whole
 * bundle again: most of what `import('wpipe')` cost (README "Import cost"). scripts/build.mjs copies
 * this file to dist/wpipe-load.cjs.
 *
 * The cache is only an accelerator, never a source of truth. V8 checks a cache against its own
 * version and flags, but of the source only its length (a bundle changed to one of the same length
 * would run the code the cache holds), and in a release build not its own data at all (damaged data
 * can run other code or crash the process). So the cache file starts with a line naming what it was
 * made for: the Node version, a digest of V8's data after the line, and the bundle — its digest,
 * size, device, inode and change time. The data is used only when its digest matches and the bundle is that
 * bundle: the same file untouched since (size, device, inode and ctime equal, and still so after the read:
 * no hashing), or, after a copy or an extraction, the same bytes (digest equal). Anything else
 * compiles the bundle from source, as does a missing file or data V8 refuses (other V8 flags, such
 * as --max-old-space-size in NODE_OPTIONS: `node <flags> dist/wpipe-load.cjs --write-cache` writes
 * one for them); the bundle runs the same way either way (test/code-cache.test.ts).
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
const MAGIC = 'wpipe-code-cache/3';

/**
 * How the last load went: 'accepted'; 'rejected' (V8 refused it: other V8 flags); 'stale' (made for
 * another bundle or Node, damaged, or the bundle changed while it was read); 'missing'; 'off'. In
 * the last four the bundle was compiled from source.
 */
exports.cache = undefined;

/** The bundle's bytes and the identity of the file they were read from (one open: no race between the two). */
function readBundle() {
  const fd = fs.openSync(BUNDLE, 'r');
  try {
    // bigint: inode numbers above 2^53 (overlayfs) and ctime in nanoseconds, exactly.
    const stat = fs.fstatSync(fd, { bigint: true });
    const bytes = Buffer.allocUnsafe(Number(stat.size));
    let at = 0;
    while (at < bytes.length) {
      const n = fs.readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    // Rewritten in place while it was read: these bytes may belong to neither version.
    const after = fs.fstatSync(fd, { bigint: true });
    const steady = at === bytes.length && after.size === stat.size && after.ctimeNs === stat.ctimeNs && after.mtimeNs === stat.mtimeNs;
    return { bytes: bytes.subarray(0, at), stat, steady };
  } finally {
    fs.closeSync(fd);
  }
}

/** xxHash32's primes: the lanes' seeds and the constants of their rounds. */
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P5 = 0x165667b1;
const LANE_SEEDS = [P1 + P2, P2, 0, -P1];

/** One lane's round (xxHash32's): a bijection of the word, whose rotation carries high bits down. */
function round(acc, word) {
  const x = acc + Math.imul(word, P2);
  return Math.imul((x << 13) | (x >>> 19), P1);
}

/** The digest in JavaScript: what {@link digest} computes, where WebAssembly is unavailable or fails. */
function digestInJs(bytes) {
  const source = (bytes.byteOffset & 3) === 0 ? bytes : Buffer.from(bytes);
  const view = new Int32Array(source.buffer, source.byteOffset, bytes.length >>> 2);
  let [a, b, c, d] = LANE_SEEDS;
  const whole = view.length & ~3;
  for (let i = 0; i < whole; i += 4) {
    a = round(a, view[i]);
    b = round(b, view[i + 1]);
    c = round(c, view[i + 2]);
    d = round(d, view[i + 3]);
  }
  return finish(a, b, c, d, bytes, whole * 4);
}

/** Folds the length and bytes[from..] into lane a, mixes each lane (xxHash32's avalanche) and writes them as hex. */
function finish(a, b, c, d, bytes, from) {
  a ^= bytes.length;
  for (let i = from; i < bytes.length; i++) {
    const x = a + Math.imul(bytes[i], P5);
    a = Math.imul((x << 11) | (x >>> 21), P1);
  }
  const mix = (x) => {
    x = Math.imul(x ^ (x >>> 15), P2);
    x = Math.imul(x ^ (x >>> 13), P3);
    return ((x ^ (x >>> 16)) >>> 0).toString(16).padStart(8, '0');
  };
  return mix(a) + mix(b) + mix(c) + mix(d);
}

/**
 * The WebAssembly module of the digest: memory 0..16 holds the four lanes, the data follows; export
 * `h(blocks)` runs the lanes over `blocks` 16-byte blocks (the same round as {@link round}) and
 * stores them back; `m` is the memory.
 */
function digestModule() {
  const uleb = (n) => {
    const out = [];
    do {
      out.push((n & 0x7f) | (n >>> 7 ? 0x80 : 0));
      n >>>= 7;
    } while (n);
    return out;
  };
  const sleb = (n) => {
    n |= 0;
    const out = [];
    for (;;) {
      const byte = n & 0x7f;
      n >>= 7;
      if ((n === 0 && !(byte & 0x40)) || (n === -1 && byte & 0x40)) return [...out, byte];
      out.push(byte | 0x80);
    }
  };
  const [GET, SET, LOAD, STORE, CONST, ADD, MUL, ROTL] = [0x20, 0x21, 0x28, 0x36, 0x41, 0x6a, 0x6c, 0x77];
  // locals: 0 blocks (param), 1 p, 2 end, 3-6 the lanes; lane = rotl(lane + word * P2, 13) * P1
  const lane = (local, offset) => [GET, local, GET, 1, LOAD, 2, offset, CONST, ...sleb(P2), MUL, ADD, CONST, 13, ROTL, CONST, ...sleb(P1), MUL, SET, local];
  const body = [
    0x01, 0x06, 0x7f, // six i32 locals
    CONST, 0, LOAD, 2, 0, SET, 3, CONST, 0, LOAD, 2, 4, SET, 4, CONST, 0, LOAD, 2, 8, SET, 5, CONST, 0, LOAD, 2, 12, SET, 6,
    CONST, 16, SET, 1, // p = 16
    GET, 0, CONST, 4, 0x74 /* shl */, CONST, 16, ADD, SET, 2, // end = 16 + blocks * 16
    0x02, 0x40, 0x03, 0x40, // block, loop
    GET, 1, GET, 2, 0x4f /* ge_u */, 0x0d, 1, // p >= end: out
    ...lane(3, 0), ...lane(4, 4), ...lane(5, 8), ...lane(6, 12),
    GET, 1, CONST, 16, ADD, SET, 1, 0x0c, 0, // p += 16, again
    0x0b, 0x0b,
    CONST, 0, GET, 3, STORE, 2, 0, CONST, 0, GET, 4, STORE, 2, 4, CONST, 0, GET, 5, STORE, 2, 8, CONST, 0, GET, 6, STORE, 2, 12,
    0x0b,
  ];
  const section = (id, bytes) => [id, ...uleb(bytes.length), ...bytes];
  return new WebAssembly.Module(Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 1, 0x7f, 0]), // type: (i32) -> ()
    ...section(3, [1, 0]), // one function of that type
    ...section(5, [1, 0, 1]), // memory, one page to start
    ...section(7, [2, 1, 0x68, 0, 0, 1, 0x6d, 2, 0]), // exports h (function 0), m (memory 0)
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]));
}

let digestInstance;
/**
 * A 128-bit digest of `bytes` (32 hex digits): xxHash32's four lanes over the little-endian 32-bit
 * words, the length and the bytes after the last 16-byte block folded into the first, each lane
 * mixed at the end. It detects a changed or damaged file, not an attacker (who could change the
 * bundle itself): each round is a bijection of its word, so a change to one word always shows, and
 * its rotation carries every bit into the low bits of the next round (a plain multiply-xor lane
 * lets two flips of a word's top bit cancel: found in review, now a test). Computed by a small
 * WebAssembly function (0.3 ms for the cache; node:crypto would cost more to load, and the same
 * loop in JavaScript, {@link digestInJs}, 1.5-3 ms before V8 optimizes it; the two agree on
 * little-endian machines, and the JavaScript one serves where WebAssembly is missing or fails).
 */
function digest(bytes) {
  if (typeof WebAssembly !== 'object') return digestInJs(bytes);
  try {
    digestInstance ??= new WebAssembly.Instance(digestModule());
    const { h, m } = digestInstance.exports;
    const pages = Math.ceil((16 + bytes.length) / 65536) - m.buffer.byteLength / 65536;
    if (pages > 0) m.grow(pages);
    new Int32Array(m.buffer, 0, 4).set(LANE_SEEDS);
    new Uint8Array(m.buffer, 16, bytes.length).set(bytes);
    const blocks = Math.floor(bytes.length / 16);
    h(blocks);
    const [a, b, c, d] = new Int32Array(m.buffer, 0, 4);
    return finish(a, b, c, d, bytes, blocks * 16);
  } catch {
    return digestInJs(bytes); // memory refused (a cap on it, --jitless halfway): the same digest, slower
  }
}

/** For test/code-cache.test.ts: the two implementations of the digest, which must agree. */
exports.digests = { digest, digestInJs };

/** The first line of a cache of `data` made from this bundle file, padded so the data starts 4-aligned. */
function headerOf(bytes, stat, data) {
  const line = `${MAGIC} node=${process.version} data=${digest(data)} bundle=${digest(bytes)} size=${bytes.length} dev=${stat.dev} ino=${stat.ino} ctime=${stat.ctimeNs}`;
  return `${line.padEnd(Math.ceil((line.length + 1) / 4) * 4 - 1)}\n`;
}

/** V8's data in the cache file when it was made for this bundle and this Node, intact (else why not, as the state). */
function cachedDataFor(bytes, stat, steady) {
  let file;
  try {
    file = fs.readFileSync(CACHE);
  } catch {
    return { state: 'missing' };
  }
  const end = file.indexOf(10);
  if (end < 0 || end > 512 || !steady) return { state: 'stale' };
  const fields = {};
  const words = file.toString('latin1', 0, end).split(' ');
  if (words[0] !== MAGIC) return { state: 'stale' };
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) fields[w.slice(0, eq)] = w.slice(eq + 1);
  }
  if (fields.node !== process.version || fields.size !== String(bytes.length)) return { state: 'stale' };
  // The file the cache was made from, untouched since: its change time moves with any write.
  const untouched = fields.dev === String(stat.dev) && fields.ino === String(stat.ino) && fields.ctime === String(stat.ctimeNs);
  // Otherwise (copied, extracted, touched) the same bytes are as good.
  if (!untouched && fields.bundle !== digest(bytes)) return { state: 'stale' };
  const data = file.subarray(end + 1);
  // V8 does not check its own data in a release build: damaged data may run other code, or crash.
  if (fields.data !== digest(data)) return { state: 'stale' };
  return { state: 'found', data };
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
  const { bytes, stat, steady } = readBundle();
  let found;
  try {
    found = cachedDataFor(bytes, stat, steady);
  } catch {
    found = { state: 'stale' }; // the cache could not be checked: not used
  }
  const script = compile(bytes, found.data);
  exports.cache = found.state !== 'found' ? found.state : script.cachedDataRejected ? 'rejected' : 'accepted';
  return factoryOf(script)(metaUrl, metaResolve, dynamicImport);
};

/** Writes the cache for this Node and this bundle file (atomically: a reader sees the old file or the new one). */
function writeCache() {
  const { bytes, stat, steady } = readBundle();
  if (!steady) throw new Error(`${BUNDLE} changed while it was read: write the cache again once it is built`);
  const script = compile(bytes, undefined);
  const refuse = (what) => (specifier) => {
    throw new Error(`${what}(${JSON.stringify(specifier)}) while writing the code cache`);
  };
  factoryOf(script)(pathToFileURL(path.join(__dirname, 'wpipe.js')).href, refuse('import.meta.resolve'), refuse('import'));
  const data = script.createCachedData();
  const temp = `${CACHE}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temp, Buffer.concat([Buffer.from(headerOf(bytes, stat, data), 'latin1'), data]));
    fs.renameSync(temp, CACHE);
  } catch (error) {
    fs.rmSync(temp, { force: true }); // a full disk must not leave half a file behind (or in a package)
    throw error;
  }
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
