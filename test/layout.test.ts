// The layout of src/ (docs/architecture.md "Layout"): no import cycles, and imports that go one way —
// engine → expr → backend → vm, and the run history (src/storage) never loading an expression VM
// (only the host services of src/backend: the sampler and rlimits).
// Read from the sources with the TypeScript parser: value and type imports, `export … from`,
// side-effect imports, `import('./x.js')` and `import('./x.js').T` all count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const src = fileURLToPath(new URL('../src/', import.meta.url));

interface Edge {
  from: string;
  to: string;
  line: number;
  /** 'value' loads the module at run time; 'type' is erased; 'dynamic' loads it when reached. */
  kind: 'value' | 'type' | 'dynamic';
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The file a relative specifier names (`./x.js` is `./x.ts` in the sources). */
function resolveSpecifier(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const p = resolve(dirname(from), spec);
  const found = [p.replace(/\.js$/, '.ts'), `${p}.ts`, join(p, 'index.ts')].find((c) => existsSync(c));
  if (found === undefined) throw new Error(`${relative(src, from)}: cannot resolve ${spec}`);
  return found;
}

function importsOf(file: string): Edge[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (spec: string, kind: Edge['kind'], node: ts.Node): void => {
    const to = resolveSpecifier(file, spec);
    if (to !== undefined) edges.push({ from: file, to, kind, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const typeOnly = c !== undefined && (c.isTypeOnly || (c.name === undefined && c.namedBindings !== undefined &&
        ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(n.moduleSpecifier.text, typeOnly ? 'type' : 'value', n);
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier !== undefined && ts.isStringLiteral(n.moduleSpecifier)) {
      const typeOnly = n.isTypeOnly || (n.exportClause !== undefined && ts.isNamedExports(n.exportClause) &&
        n.exportClause.elements.length > 0 && n.exportClause.elements.every((e) => e.isTypeOnly));
      add(n.moduleSpecifier.text, typeOnly ? 'type' : 'value', n);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] !== undefined && ts.isStringLiteralLike(n.arguments[0])) {
      add(n.arguments[0].text, 'dynamic', n);
    } else if (ts.isCallExpression(n) && n.arguments.length === 1 && ts.isStringLiteralLike(n.arguments[0]!) && n.arguments[0].text.startsWith('.') &&
      (ts.isCallExpression(n.expression) || (ts.isIdentifier(n.expression) && n.expression.text === 'require'))) {
      // require('./x.js') or createRequire(import.meta.url)('./x.js'): a module of ours loaded at run time.
      add(n.arguments[0].text, 'value', n);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      add(n.argument.literal.text, 'type', n);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return edges;
}

const files = sourceFiles(src).sort();
const edges = files.flatMap(importsOf);
const rel = (f: string): string => relative(src, f);
/** The folder of src/ a file is in ('index.ts' and the other top-level files: themselves). */
const area = (f: string): string => rel(f).split('/')[0]!;
const show = (e: Edge): string => `${rel(e.from)}:${e.line} → ${rel(e.to)} (${e.kind})`;

/** Every import cycle among `list`'s edges, each once, as file paths. */
function cyclesOf(list: Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of list) next.get(e.from)!.push(e.to);
  const found: string[][] = [];
  // Each cycle is reported from its first file in sorted order: search only files at or after the start.
  for (let i = 0; i < files.length; i++) {
    const start = files[i]!;
    const path = [start];
    const onPath = new Set(path);
    const walk = (v: string): void => {
      for (const w of next.get(v)!) {
        if (w === start) {
          const cycle = [...path, start].map(rel);
          if (!found.some((c) => c.join() === cycle.join())) found.push(cycle);
        }
        else if (w > start && !onPath.has(w)) {
          path.push(w);
          onPath.add(w);
          walk(w);
          path.pop();
          onPath.delete(w);
        }
      }
    };
    walk(start);
  }
  return found;
}

test('the parser sees the imports (a sanity check of this file)', () => {
  assert.ok(files.length > 80, `${files.length} source files`);
  assert.ok(edges.some((e) => rel(e.from) === 'index.ts' && rel(e.to) === 'engine/index.ts' && e.kind === 'value'), 'index.ts re-exports the engine');
  assert.ok(edges.some((e) => e.kind === 'type'), 'type-only imports');
  assert.ok(edges.some((e) => e.kind === 'dynamic'), 'import()');
  // The cycle finder finds a cycle when there is one.
  const [a, b] = [files[0]!, files[1]!];
  assert.deepEqual(cyclesOf([{ from: a, to: b, line: 1, kind: 'value' }, { from: b, to: a, line: 1, kind: 'type' }]), [[rel(a), rel(b), rel(a)]]);
});

test('no import cycles in src/, counting type-only imports and import()', () => {
  assert.deepEqual(cyclesOf(edges), []);
});

test('imports go one way: engine → expr → backend → vm', () => {
  const rules: Array<[string, string[]]> = [
    ['vm', ['expr', 'backend', 'engine', 'storage', 'observe', 'parallel', 'queue', 'dashboard', 'system', 'cli']],
    ['backend', ['expr', 'engine', 'storage', 'observe', 'parallel', 'queue', 'dashboard', 'cli']],
    ['expr', ['engine', 'storage', 'observe', 'parallel', 'queue', 'dashboard', 'cli']],
  ];
  const wrong = edges.filter((e) => rules.some(([from, never]) => area(e.from) === from && never.includes(area(e.to)))).map(show);
  assert.deepEqual(wrong, []);
  // src/vm needs nothing but itself and the error classes.
  assert.deepEqual(edges.filter((e) => area(e.from) === 'vm' && area(e.to) !== 'vm' && rel(e.to) !== 'errors.ts').map(show), []);
});

/**
 * What the run history may load of the backends: the host services (the addon's sampler and
 * rlimits, or the worker sampler) and the contract's constant tables — no VM host, tape or evaluator.
 */
const HOST_ONLY = new Set(['backend/host.ts', 'backend/addon.ts', 'backend/choice.ts', 'backend/js-sampler.ts', 'backend/types.ts', 'vm/contract.ts']);

test('the run history (src/storage), ResourceMonitor and memoryLimit do not load an expression VM, not even through another module or import()', () => {
  const loads = new Map<string, Edge[]>(files.map((f) => [f, []]));
  for (const e of edges) if (e.kind !== 'type') loads.get(e.from)!.push(e);
  const problems: string[] = [];
  const starts = files.filter((f) => area(f) === 'storage' || ['observe/monitor.ts', 'system/memory.ts'].includes(rel(f)));
  assert.ok(starts.length > 10);
  for (const start of starts) {
    // Breadth first, keeping the edge each module was reached by, to print the chain.
    const via = new Map<string, Edge | null>([[start, null]]);
    const queue = [start];
    while (queue.length > 0) {
      for (const e of loads.get(queue.shift()!)!) {
        if (via.has(e.to)) continue;
        via.set(e.to, e);
        queue.push(e.to);
      }
    }
    for (const reached of via.keys()) {
      if (!['expr', 'backend', 'vm'].includes(area(reached)) || HOST_ONLY.has(rel(reached))) continue;
      const chain: string[] = [];
      for (let e = via.get(reached); e; e = via.get(e.from)) chain.unshift(show(e));
      problems.push(chain.join('; '));
      break;
    }
  }
  assert.deepEqual(problems, []);
});

test('src/index.ts imports nothing for its side effects (the engine imports what it needs itself)', () => {
  const index = join(src, 'index.ts');
  const sf = ts.createSourceFile(index, readFileSync(index, 'utf8'), ts.ScriptTarget.Latest, true);
  const bare = sf.statements.filter((s) => ts.isImportDeclaration(s) && s.importClause === undefined).map((s) => s.getText(sf));
  assert.deepEqual(bare, []);
});
