// readYaml / writeYaml (leerYaml / escribirYaml): substitution, errors with line and column,
// atomic writes that concurrent processes never tear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readYaml, writeYaml, leerYaml, escribirYaml } from '../src/index.js';
import { WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';

const writer = fileURLToPath(new URL('./fixtures/system/yaml-writer.ts', import.meta.url));

function yamlFailure(kind: string, pattern: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof WpipeError && e.code === 'WPIPE_ERR_YAML' && e.details.kind === kind && pattern.test(e.message);
}

test('round trip, aliases, key order, empty file', () => {
  const t = tempDir('wpipe-yaml-');
  try {
    const f = t.file('a.yaml');
    const data = { zeta: 1, alpha: { list: [1, 'two', true, null], text: 'multi\nline: with colon' }, when: '2026-01-01' };
    writeYaml(f, data);
    assert.deepEqual(readYaml(f), data);
    assert.deepEqual(Object.keys(readYaml(f) as object), ['zeta', 'alpha', 'when'], 'the object\'s own key order');
    escribirYaml(f, data, { sortKeys: true });
    assert.deepEqual(Object.keys(leerYaml(f) as object), ['alpha', 'when', 'zeta']);
    fs.writeFileSync(f, '');
    assert.deepEqual(readYaml(f), {});
    assert.deepEqual(fs.readdirSync(t.dir), ['a.yaml'], 'no temporary file left behind');
  } finally {
    t.cleanup();
  }
});

test('${VAR} and ${VAR:-default}: typed when alone and unquoted, strings otherwise, never structure', () => {
  const t = tempDir('wpipe-yaml-');
  try {
    const f = t.file('env.yaml');
    fs.writeFileSync(f, [
      'db: ${DB_PATH:-runs.db}',
      'port: ${PORT:-8080}',
      'quoted: "${PORT:-8080}"',
      'mixed: http://${HOST}:${PORT:-80}/x',
      'flag: ${FLAG}',
      'empty: ${EMPTY:-fallback}',
      'literal: $${HOST}',
      'inject: ${EVIL}',
      'list: ["${HOST}", b]',
      '${HOST}: keys are not substituted',
    ].join('\n'));
    const env = { HOST: 'example', FLAG: 'true', EMPTY: '', EVIL: 'x\nextra: 1\n- [oops' };
    assert.deepEqual(readYaml(f, { env }), {
      db: 'runs.db', port: 8080, quoted: '8080', mixed: 'http://example:80/x', flag: true, empty: 'fallback', literal: '${HOST}',
      inject: 'x\nextra: 1\n- [oops', list: ['example', 'b'], '${HOST}': 'keys are not substituted',
    });
    assert.deepEqual(readYaml(f, { env: {}, substitute: false }), (() => {
      const raw = readYaml(f, { env: {}, substitute: false }) as Record<string, unknown>;
      assert.equal(raw.port, '${PORT:-8080}');
      return raw;
    })());
    fs.writeFileSync(f, 'a: 1\nnested:\n  b: ${MISSING_VAR}\n');
    assert.throws(() => readYaml(f, { env: {} }), yamlFailure('variable', /env\.yaml:3:\d+: environment variable MISSING_VAR is not set/));
  } finally {
    t.cleanup();
  }
});

test('errors: missing file, directory, tab indentation and bad syntax with line and column, duplicate keys, bad options', () => {
  const t = tempDir('wpipe-yaml-');
  try {
    assert.throws(() => readYaml(t.file('nope.yaml')), yamlFailure('not-found', /nope\.yaml does not exist/));
    assert.throws(() => readYaml(t.dir), yamlFailure('io', /cannot read/));
    const f = t.file('bad.yaml');
    fs.writeFileSync(f, 'a:\n\tb: 1\n');
    assert.throws(() => readYaml(f), yamlFailure('parse', /bad\.yaml:2:1: /));
    fs.writeFileSync(f, 'ok: 1\nbroken: [1, 2\n');
    assert.throws(() => readYaml(f), yamlFailure('parse', /bad\.yaml:\d+:\d+: /));
    fs.writeFileSync(f, 'a: 1\na: 2\n');
    assert.throws(() => readYaml(f), yamlFailure('parse', /bad\.yaml:2:1: /));
    fs.writeFileSync(f, 'a: &x [1]\nb: [*x, *x, *x]\n');
    assert.deepEqual(readYaml(f), { a: [1], b: [[1], [1], [1]] });
    assert.throws(() => readYaml(f, { envv: {} } as never), /did you mean env\?/);
    assert.throws(() => readYaml(''), TypeError);
    assert.throws(() => writeYaml(t.file('missing-dir/x.yaml'), { a: 1 }), yamlFailure('io', /cannot write/));
    assert.throws(() => writeYaml(t.dir, { a: 1 }), yamlFailure('io', /cannot write/));
    assert.deepEqual(fs.readdirSync(t.dir).filter((n) => n.endsWith('.tmp')), [], 'a failed write leaves no temporary file');
  } finally {
    t.cleanup();
  }
});

test('4 processes writing one file while it is read: every read is a whole document', { timeout: 60_000 }, async () => {
  const t = tempDir('wpipe-yaml-');
  try {
    const f = t.file('shared.yaml');
    writeYaml(f, { writer: -1, n: 0, rows: [] });
    const children = [0, 1, 2, 3].map((id) => new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', writer, f, String(id), '150'], { stdio: 'ignore' });
      p.on('exit', (code) => resolve(code));
    }));
    let reads = 0;
    let done = false;
    void Promise.all(children).then(() => { done = true; });
    while (!done) {
      const doc = readYaml(f) as { writer: number; n: number; rows: unknown[] };
      assert.ok(doc.writer === -1 || (doc.rows.length === 200 && doc.writer >= 0 && doc.writer <= 3), `a torn read: ${JSON.stringify(doc).slice(0, 80)}`);
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await Promise.all(children), [0, 0, 0, 0]);
    assert.ok(reads > 10, `only ${reads} reads`);
    const last = readYaml(f) as { n: number };
    assert.equal(last.n, 149);
    assert.deepEqual(fs.readdirSync(t.dir), ['shared.yaml']);
  } finally {
    t.cleanup();
  }
});
