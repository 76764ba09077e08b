// The package as users import it: the built ESM entry (dist/, made by `npm install` / `npm run
// build`), its exports map and types (no internal member in any published .d.ts), the public names
// of docs/architecture.md (each exported), every export of src/index.ts documented in the README,
// and what importing loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

test('package.json: name, ESM, exports map with types, Node 20+', () => {
  assert.equal(pkg.name, 'wpipe');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.exports['.'].types, './dist/index.d.ts');
  assert.equal(pkg.exports['.'].import, './dist/wpipe.js');
  assert.match(pkg.engines.node, />=\s*20/);
});

test('the built entry exists (run `npm run build` if not)', () => {
  assert.ok(existsSync(`${root}dist/wpipe.js`), 'dist/wpipe.js is missing: run npm run build');
  assert.ok(existsSync(`${root}dist/index.d.ts`), 'dist/index.d.ts is missing: run npm run build');
});

/** Runs a snippet in a fresh node; returns its stdout. */
function node(code: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("import('wpipe') resolves through the exports map and has the expression API", () => {
  const out = node(`
    const w = await import('wpipe');
    const e = w.compileExpression("x > 5 and kind == 'a'");
    console.log(JSON.stringify([typeof w.getBackendInfo, e.evaluate({ x: 7, kind: 'a' }), typeof w.ExpressionError, w.Codes.TASK_FAILED]));
  `);
  assert.deepEqual(JSON.parse(out), ['function', true, 'function', 502]);
});

/** The names of the import block in docs/architecture.md "Public API" (the design's), as code outside the project uses them. */
const CONTRACT_NAMES = ((): string[] => {
  const doc = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('\n## Public API\n'));
  const block = /```ts\nimport \{([^}]*)\} from 'wpipe';/.exec(section);
  assert.ok(block, 'docs/architecture.md "Public API" has the import block of the contract');
  return block[1]!.split(',').map((n) => n.trim()).filter(Boolean);
})();

test('every name of the public contract is exported by the built package', () => {
  assert.equal(CONTRACT_NAMES.length, 25, `the contract's names as read: ${CONTRACT_NAMES.join(', ')}`);
  const exported = JSON.parse(node(`const w = await import('wpipe'); console.log(JSON.stringify(Object.keys(w)));`)) as string[];
  const missing = CONTRACT_NAMES.filter((n) => !exported.includes(n));
  assert.deepEqual(missing, [], 'names of the contract the package does not export');
});

/**
 * What src/index.ts exports, read from the source (not dist/, which `npm test` does not rebuild):
 * values as importing it gives them, types from its `export type …` / `type X` specifiers (and any
 * exported interface or type alias declared there), parsed with the TypeScript compiler API.
 */
async function sourceExports(): Promise<{ values: string[]; types: string[] }> {
  const values = Object.keys(await import('../src/index.js'));
  const file = fileURLToPath(new URL('../src/index.ts', import.meta.url));
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const types: string[] = [];
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st)) {
      if (st.exportClause === undefined || !ts.isNamedExports(st.exportClause)) {
        assert.fail(`src/index.ts: \`${st.getText(sf)}\` exports names this test cannot list: name each export`);
      }
      for (const el of st.exportClause.elements) if (st.isTypeOnly || el.isTypeOnly) types.push(el.name.text);
    } else if ((ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) &&
      st.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
      types.push(st.name.text);
    }
  }
  return { values, types };
}

/**
 * The README's code: its fenced blocks and its code spans. A name is documented when a code span is
 * exactly that name (`Pipeline`), or when code uses it as `name(` or `name.` (`new Pipeline(…)`,
 * `Codes.TASK_FAILED`) — not when the word merely occurs in prose, nor as someone's member (`x.name(`).
 */
function readmeDocuments(readme: string): (name: string) => boolean {
  const fence = /^(`{3,}|~{3,})[^\n]*\n([\s\S]*?)^\1[ \t]*$/gm;
  const blocks = [...readme.matchAll(fence)].map((m) => m[2]!);
  const spans = [...readme.replace(fence, '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  const code = [...spans, ...blocks];
  return (name) => {
    if (spans.some((s) => s.trim() === name)) return true;
    const used = new RegExp(`(?<![\\w$.])${name.replace(/\$/g, '\\$')}[(.]`);
    return code.some((t) => used.test(t));
  };
}

test('every export of src/index.ts, values and types, is documented in the README in backticks', async () => {
  const { values, types } = await sourceExports();
  assert.ok(values.length > 20 && types.length > 20, `too few exports found (values ${values.length}, types ${types.length}): is the parsing broken?`);
  const documented = readmeDocuments(readFileSync(new URL('../README.md', import.meta.url), 'utf8'));
  const undocumented = [...values.map((n) => `value ${n}`), ...types.map((n) => `type ${n}`)].filter((e) => !documented(e.slice(e.indexOf(' ') + 1)));
  assert.deepEqual(undocumented, [],
    `src/index.ts exports these, but the README never shows them in backticks (\`name\`, or name( / name. in code): ` +
    `${undocumented.join(', ')}. Document each (a type gets a line in README "Exported types") or stop exporting it`);
});

test('README "Exported types" lists exactly the types src/index.ts exports (none missing, none stale)', async () => {
  const { types } = await sourceExports();
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Exported types\n');
  assert.ok(start >= 0, 'README has an "Exported types" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const rows = [...section.matchAll(/^\| `([A-Za-z_$][\w$]*)` \|/gm)].map((m) => m[1]!);
  assert.deepEqual(rows.filter((n, i) => rows.indexOf(n) !== i), [], 'a type listed twice');
  assert.deepEqual(types.filter((n) => !rows.includes(n)), [], 'exported types without a row in README "Exported types"');
  assert.deepEqual(rows.filter((n) => !types.includes(n)), [], 'rows of README "Exported types" naming a type src/index.ts does not export');
});

/** Every .d.ts under dist/ (what the package publishes), but the benchmarks' scratch folders. */
function declarationFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return e.name.startsWith('.bench-') ? [] : declarationFiles(join(dir, e.name));
    return e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [];
  });
}

/**
 * What in a published .d.ts belongs to the implementation: a member or declaration whose name starts
 * with `_` (mark it @internal, which stripInternal removes, or make it private under another name), an
 * `@internal` left behind, and a doc comment that names an internal member (`pipe._plan`,
 * `_provideExecutor`): stripped, such a name dangles. A `__`-prefixed property of type `never` is a
 * brand (a nominal type), not a member anyone reads; `ctx._errors` and `ctx._loop_iteration` are
 * public context keys.
 */
function internalLeftovers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const where = (pos: number): string => `${relative(root, file)}:${sf.getLineAndCharacterOfPosition(pos).line + 1}`;
  const found: string[] = [];
  const comments = new Map<number, string>();
  const keep = (ranges: ts.CommentRange[] | undefined): void => {
    for (const r of ranges ?? []) comments.set(r.pos, text.slice(r.pos, r.end));
  };
  const visit = (n: ts.Node): void => {
    keep(ts.getLeadingCommentRanges(text, n.pos));
    keep(ts.getTrailingCommentRanges(text, n.end));
    const name = (n as { name?: ts.Node }).name;
    if (name !== undefined && (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name)) &&
      !ts.isParameter(n) && !ts.isTypeParameterDeclaration(n) && /^_/.test(name.text)) {
      const brand = /^__/.test(name.text) && ts.isPropertySignature(n) && n.type?.kind === ts.SyntaxKind.NeverKeyword;
      if (!brand) found.push(`${where(name.getStart(sf))} member ${name.text}`);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  keep(ts.getLeadingCommentRanges(text, sf.endOfFileToken.pos));
  for (const m of text.matchAll(/@internal\b/g)) found.push(`${where(m.index!)} @internal`);
  for (const [pos, comment] of comments) {
    const named = /\b\w+\._(?!errors\b|loop_iteration\b)[A-Za-z]\w*|(?<![\w$.'"`])_[a-z]+[A-Z]\w*/g;
    for (const m of comment.matchAll(named)) found.push(`${where(pos + m.index!)} comment names ${m[0]}`);
  }
  return found;
}

test('the published types: no internal members in any .d.ts, and a consumer type-checks against them with skipLibCheck off', () => {
  const files = declarationFiles(join(root, 'dist'));
  assert.ok(files.includes(join(root, 'dist', 'index.d.ts')) && files.includes(join(root, 'dist', 'engine', 'run.d.ts')), 'dist/ has no declarations: run npm run build');
  const leftovers = files.flatMap(internalLeftovers);
  assert.deepEqual(leftovers, [], 'internal names in the published .d.ts files (mark them @internal; stripInternal removes them)');
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-types-'));
  try {
    writeFileSync(join(dir, 'consumer.ts'), [
      "import { Pipeline, step, compileExpression, getBackendInfo, type CompiledExpression, type StepInfo } from 'wpipe';",
      "const load = step({ name: 'load', retryCount: 1 })((ctx: { n?: number }, info: StepInfo) => ({ n: (ctx.n ?? 0) + info.attempt }));",
      "const pipe = new Pipeline({ pipelineName: 'typed' }).setSteps([load]);",
      "const e: CompiledExpression = compileExpression('n > 0');",
      'void pipe.run({}).then((r) => e.evaluate(r)); void getBackendInfo().backends.native.available;',
    ].join('\n'));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false,
        types: ['node'], typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    }));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'wpipe'));
    const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("import('wpipe') loads no addon, .wasm, SQLite, piscina or pino, nor node:zlib, child_process or http (they load when first used)", () => {
  // What importing costs in time is a bench figure (bench/cli.ts: a script that imports wpipe and
  // runs a one-step pipeline), not a test bound: a timing here failed under load at 81.7 ms.
  // Deferring the four builtins took an import from 67 to 52 ms (median of 21 fresh processes).
  const out = node(`
    const before = new Set(process.moduleLoadList);
    await import('wpipe');
    const { createRequire } = await import('node:module');
    const packages = Object.keys(createRequire(import.meta.url).cache).filter((p) => /\\.node$|better-sqlite3|piscina|pino/.test(p));
    const builtins = process.moduleLoadList.filter((m) => !before.has(m) && /^NativeModule (zlib|child_process|http|net)$/.test(m));
    console.log(JSON.stringify({ packages, builtins }));
  `);
  assert.deepEqual(JSON.parse(out), { packages: [], builtins: [] });
});
