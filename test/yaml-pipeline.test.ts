// Pipelines in YAML: loadPipeline builds a real Pipeline; every error path of the format names the
// file, line and column and what was expected; every refusal of the safety rules; a round trip (the
// same pipeline built in code and in YAML gives the same result and the same history rows); the
// shipped JSON Schema is the one generated from the format table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  Condition, For, Parallel, Background, Pipeline, WpipeError, loadPipeline, validatePipelineFile, pipelineJsonSchema,
  PIPELINE_FORMAT, type PipelineFileError, type Step,
} from '../src/index.js';
import { HistoryQuery } from '../src/storage/query.js';

const root = new URL('..', import.meta.url);
const LIB = new URL('../src/index.ts', import.meta.url).href;

/** The steps every fixture folder gets (they import the library under test by its file URL). */
const STEPS = `
import { step } from ${JSON.stringify(LIB)};
export const load = step({ name: 'load' })((ctx) => ({ rows: [1, 2, 3, 4], n: ctx.n ?? 0 }));
export const double = step({ name: 'double' })((ctx) => ({ n: ctx.n * 2 }));
export const inc = step({ name: 'inc' })((ctx) => ({ n: ctx.n + 1 }));
export const big = step({ name: 'big' })(() => ({ size: 'big' }));
export const small = step({ name: 'small' })(() => ({ size: 'small' }));
export const priceA = step({ name: 'priceA' })(async () => ({ a: 1 }));
export const priceB = step({ name: 'priceB' })(async () => ({ b: 2 }));
export const notify = step({ name: 'notify' })(async () => ({ notified: true }));
export const failing = step({ name: 'failing' })(() => { throw new Error('boom'); });
export function helper() { return { n: 0 }; }
export const CONSTANT = 42;
export default step({ name: 'dflt' })(() => ({ d: 1 }));
`;

function folder(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-yaml-'));
  writeFileSync(join(dir, 'steps.mjs'), STEPS);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Writes `yaml` as pipeline.yaml in a fresh folder and validates it. */
async function problems(yaml: string, files: Record<string, string> = {}, options = {}): Promise<{ file: string; errors: readonly PipelineFileError[] }> {
  const dir = folder({ 'pipeline.yaml': yaml, ...files });
  const file = join(dir, 'pipeline.yaml');
  const report = await validatePipelineFile(file, options);
  return { file, errors: report.errors };
}

/** Exactly one problem, with this code, at this line and column, saying this. */
async function oneProblem(yaml: string, code: string, line: number, column: number, message: RegExp, files: Record<string, string> = {}, options = {}): Promise<PipelineFileError> {
  const { file, errors } = await problems(yaml, files, options);
  assert.equal(errors.length, 1, `expected one problem, got:\n${errors.map((e) => e.text).join('\n')}`);
  const e = errors[0]!;
  assert.equal(e.code, code, e.text);
  assert.match(e.message, message);
  assert.deepEqual([e.line, e.column], [line, column], e.text);
  assert.equal(e.file, file);
  assert.ok(e.text.startsWith(`${file}:${line}:${column}: `), e.text);
  // loadPipeline rejects with the same problem, listed in its message.
  await assert.rejects(loadPipeline(file, options), (err: unknown) => {
    assert.ok(err instanceof WpipeError);
    assert.equal(err.code, 'WPIPE_ERR_PIPELINE_INVALID');
    assert.ok(err.message.includes(`${file}:${line}:${column}: `), err.message);
    assert.equal((err.details.errors as PipelineFileError[])[0]!.code, code);
    return true;
  });
  return e;
}

const ORDERS_LIKE = `
pipelineName: roundtrip
module: ./steps.mjs
continueOnError: true
checkpoints:
  - name: loaded
    expression: len(rows) > 0
steps:
  - export: load
    version: v2
  - parallel:
      name: prices
      maxWorkers: 2
      executor: inline
      steps:
        - export: priceA
        - export: priceB
  - condition:
      name: route
      expression: n > 10
      then:
        - export: big
      else:
        - export: small
  - for:
      name: loop
      iterations: 5
      while: n < 20
      steps:
        - export: inc
  - export: failing
    retryCount: 1
    retryDelay: 0
  - background:
      export: notify
`;

test('loadPipeline returns a real Pipeline that runs the steps, blocks, overrides and checkpoints of the file', async () => {
  const dir = folder({ 'p.yaml': ORDERS_LIKE });
  const pipe = await loadPipeline(join(dir, 'p.yaml'));
  assert.ok(pipe instanceof Pipeline);
  assert.equal(pipe.pipelineName, 'roundtrip');
  assert.deepEqual(pipe.checkpoints, [{ name: 'loaded', expression: 'len(rows) > 0' }]);
  assert.deepEqual(pipe.steps.map((s) => s.name), ['load', 'prices', 'route', 'loop', 'failing', 'notify']);
  const out = await pipe.run({ n: 3 });
  assert.equal(out.n, 8, 'n: 3, five iterations of inc (n < 20 holds throughout)');
  assert.equal(out.size, 'small');
  assert.deepEqual([out.a, out.b], [1, 2]);
  const errors = out._errors as { step: string; attempts: number }[];
  assert.deepEqual(errors.map((e) => [e.step, e.attempts]), [['failing', 2]], 'retryCount from the file');
  await pipe.close();
});

test('round trip: the same pipeline built in code and in YAML gives the same result and the same history rows', async () => {
  const dir = folder({ 'p.yaml': ORDERS_LIKE });
  const steps = (await import(pathToFileURL(join(dir, 'steps.mjs')).href)) as Record<string, Step>;
  const s = steps as unknown as Record<'load' | 'priceA' | 'priceB' | 'big' | 'small' | 'inc' | 'failing' | 'notify', Step>;
  const { step } = await import('../src/index.js');
  const options = (x: Step) => { const { fn: _fn, ...rest } = x.meta; return rest; };
  const dbCode = join(dir, 'code.db');
  const dbYaml = join(dir, 'yaml.db');
  const inCode = new Pipeline({ pipelineName: 'roundtrip', continueOnError: true, trackingDb: dbCode });
  inCode.setSteps([
    step({ ...options(s.load), version: 'v2' })(s.load),
    new Parallel({ name: 'prices', maxWorkers: 2, executor: 'inline', steps: [s.priceA, s.priceB] }),
    new Condition({ name: 'route', expression: 'n > 10', branchTrue: [s.big], branchFalse: [s.small] }),
    new For({ name: 'loop', iterations: 5, validationExpression: 'n < 20', steps: [s.inc] }),
    step({ ...options(s.failing), retryCount: 1, retryDelay: 0 })(s.failing),
    new Background(s.notify),
  ]);
  inCode.addCheckpoint('loaded', 'len(rows) > 0');
  const inYaml = await loadPipeline(join(dir, 'p.yaml'), { pipelineOptions: { trackingDb: dbYaml } });

  const a = await inCode.run({ n: 12 }, { runId: 'rt-1' });
  const b = await inYaml.run({ n: 12 }, { runId: 'rt-1' });
  await inCode.close();
  await inYaml.close();
  // Failures differ only in when they happened and the stack.
  const strip = (o: unknown): unknown => JSON.parse(JSON.stringify(o, (k, v: unknown) =>
    k === 'at' || k === 'stack' ? undefined : k === 'errorTraceback' && typeof v === 'string' ? v.split('\n')[0] : v));
  assert.deepEqual(strip(b), strip(a));
  assert.deepEqual((a._errors as { step: string }[]).map((e) => e.step), ['failing']);
  assert.equal(a.size, 'big');

  const rows = (db: string) => {
    const q = new HistoryQuery(db);
    try {
      const run = q.getRunDetail('rt-1')!;
      const timeless = (x: Record<string, unknown>) => Object.fromEntries(Object.entries(x).filter(([k]) => !/(At|Ms|^id$|^stepId$|^pid$|worker)/.test(k)));
      return {
        run: timeless({ ...run, steps: undefined, attempts: undefined, events: undefined, alerts: undefined, children: undefined, checkpoint: undefined }),
        steps: run.steps.map((x) => timeless(x as Record<string, unknown>)),
        attempts: run.attempts.map((x) => timeless(x as unknown as Record<string, unknown>)),
        checkpoint: run.checkpoint === null ? null : { name: run.checkpoint.name, position: run.checkpoint.position, saves: run.checkpoint.saves },
      };
    } finally {
      q.close();
    }
  };
  const fromCode = strip(rows(dbCode)) as ReturnType<typeof rows>;
  const fromYaml = strip(rows(dbYaml)) as ReturnType<typeof rows>;
  assert.ok(fromCode.steps.length >= 8, `steps recorded: ${fromCode.steps.length}`);
  // The one difference: a run of a YAML pipeline records the file it came from.
  assert.equal(fromCode.run.yamlPath, null);
  assert.equal(fromYaml.run.yamlPath, join(dir, 'p.yaml'));
  fromYaml.run.yamlPath = null;
  assert.deepEqual(fromYaml, fromCode);
});

// ── the format: every error names the file, line and column and what was expected ─────────────

test('an unknown key, at the top, in a step or in a block, points at the key with a "did you mean"', async () => {
  await oneProblem('pipelinename: x\nsteps:\n  - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 1, 1, /unknown key 'pipelinename' in a pipeline \(did you mean pipelineName\?\); expected one of: pipelineName, /);
  await oneProblem('steps:\n  - module: ./steps.mjs\n    export: load\n    retrycount: 2\n',
    'WPIPE_ERR_PIPELINE_INVALID', 4, 5, /^steps\[0\]\.retrycount: unknown key 'retrycount' in a step \(did you mean retryCount\?\)/);
  await oneProblem('steps:\n  - for:\n      iterations: 2\n      step:\n        - { module: ./steps.mjs, export: inc }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 4, 7, /unknown key 'step' in a for block \(did you mean steps\?\)/);
});

test('a value of the wrong type or out of range says what was expected', async () => {
  await oneProblem('steps:\n  - module: ./steps.mjs\n    export: load\n    timeout: fast\n',
    'WPIPE_ERR_PIPELINE_INVALID', 4, 14, /'timeout' must be a number > 0, got the string "fast"/);
  await oneProblem('steps:\n  - module: ./steps.mjs\n    export: load\n    retryCount: -1\n',
    'WPIPE_ERR_PIPELINE_INVALID', 4, 17, /'retryCount' must be an integer ≥ 0, got number -1/);
  await oneProblem('continueOnError: yes please\nsteps:\n  - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 1, 18, /'continueOnError' must be true or false/);
  await oneProblem('steps:\n  - parallel:\n      executor: thread\n      steps:\n        - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 3, 17, /'executor' must be one of 'inline', 'threads', 'processes', 'bullmq' \(did you mean 'threads'\?\)/);
  await oneProblem('steps: { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 1, 8, /'steps' must be a list of steps and blocks, got a mapping/);
});

test('missing keys: steps, export, module, a for loop bound', async () => {
  await oneProblem('pipelineName: x\n', 'WPIPE_ERR_PIPELINE_INVALID', 1, 1, /a pipeline is missing 'steps'/);
  await oneProblem('steps:\n  - module: ./steps.mjs\n    name: x\n', 'WPIPE_ERR_PIPELINE_INVALID', 2, 5, /steps\[0\]: a step is missing 'export'/);
  await oneProblem('steps:\n  - export: load\n', 'WPIPE_ERR_PIPELINE_INVALID', 2, 5, /a step is missing 'module' \(or give a default 'module'/);
  await oneProblem('steps:\n  - for:\n      steps:\n        - { module: ./steps.mjs, export: inc }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 3, 7, /a for block needs 'iterations', 'while' or both/);
  await oneProblem('', 'WPIPE_ERR_PIPELINE_INVALID', 1, 1, /a pipeline is missing 'steps'/);
});

test('an item that is neither a step nor a block, a misspelt block, a block with stray keys', async () => {
  await oneProblem('steps:\n  - load\n', 'WPIPE_ERR_PIPELINE_INVALID', 2, 5, /expected a step \(a mapping with module\/export\) or a block .*got the string "load"/);
  await oneProblem('steps:\n  - conditon:\n      expression: n > 1\n      then: []\n',
    'WPIPE_ERR_PIPELINE_INVALID', 2, 5, /got a mapping with keys 'conditon' \(did you mean condition\?\)/);
  await oneProblem('steps:\n  - condition:\n      expression: n > 1\n      then:\n        - { module: ./steps.mjs, export: big }\n    name: route\n',
    'WPIPE_ERR_PIPELINE_INVALID', 6, 5, /a 'condition' block is a mapping with the one key 'condition'; 'name' belongs under 'condition:' \(indent it\)/);
});

test('an expression syntax error points into the expression, with the caret', async () => {
  const e = await oneProblem("steps:\n  - condition:\n      expression: total >> 2\n      then:\n        - { module: ./steps.mjs, export: big }\n",
    'WPIPE_ERR_EXPRESSION_SYNTAX', 3, 25, /'expression' is not a valid expression: SyntaxError: the bitwise operator '>>' is not supported\n {2}total >> 2\n {8}\^/);
  assert.equal(e.path, 'steps[0].condition.expression');
  // In quotes the column counts the quote.
  await oneProblem("steps:\n  - for:\n      while: \"n <\"\n      steps:\n        - { module: ./steps.mjs, export: inc }\n",
    'WPIPE_ERR_EXPRESSION_SYNTAX', 3, 18, /'while' is not a valid expression: SyntaxError/);
  await oneProblem('checkpoints:\n  - name: c\n    expression: rows >\nsteps:\n  - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_EXPRESSION_SYNTAX', 3, 23, /checkpoints\[0\]\.expression: 'expression' is not a valid expression/);
});

test('checkpoints: a list of { name, expression }, names unique', async () => {
  await oneProblem('checkpoints: { a: n > 1 }\nsteps:\n  - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 1, 14, /'checkpoints' must be a list of \{ name, expression \}/);
  await oneProblem('checkpoints:\n  - { name: a, expression: n > 1 }\n  - { name: a, expression: n > 2 }\nsteps:\n  - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 3, 13, /a checkpoint named 'a' is already defined/);
});

test('what the engine refuses at construction is reported at the step or block it comes from', async () => {
  await oneProblem('steps:\n  - module: ./steps.mjs\n    export: load\n    memoryLimitMb: 512\n',
    'WPIPE_ERR_PIPELINE_INVALID', 2, 5, /^steps\[0\]: memoryLimitMb .*needs executor: 'processes'/);
  await oneProblem('steps:\n  - parallel:\n      memoryLimitMb: 512\n      steps:\n        - { module: ./steps.mjs, export: load }\n',
    'WPIPE_ERR_PIPELINE_INVALID', 3, 7, /^steps\[0\]\.parallel: Parallel: memoryLimitMb .*needs useProcesses: true/);
});

test('every problem of a file is reported, in file order', async () => {
  const { errors } = await problems([
    'pipelineNmae: x',
    'maxRetries: many',
    'steps:',
    '  - { module: ./steps.mjs, export: lod }',
    '  - { module: ../elsewhere.mjs, export: load }',
    '  - condition: { expression: "n >", then: [] }',
    '',
  ].join('\n'));
  assert.deepEqual(errors.map((e) => [e.line, e.code]), [
    [1, 'WPIPE_ERR_PIPELINE_INVALID'], [2, 'WPIPE_ERR_PIPELINE_INVALID'], [4, 'WPIPE_ERR_PIPELINE_EXPORT'],
    [5, 'WPIPE_ERR_PIPELINE_MODULE_REFUSED'], [6, 'WPIPE_ERR_EXPRESSION_SYNTAX'], [6, 'WPIPE_ERR_PIPELINE_INVALID'],
  ], errors.map((e) => e.text).join('\n'));
});

test('YAML syntax errors and unset variables come with their line and column (WPIPE_ERR_YAML)', async () => {
  await oneProblem('steps:\n  - module: ./steps.mjs\n   export: load\n', 'WPIPE_ERR_YAML', 3, 1, /Sequence item without - indicator/);
  const dir = folder({ 'p.yaml': 'steps:\n  - module: ./steps.mjs\n    export: load\n    timeout: ${WPIPE_TEST_UNSET_T}\n' });
  const report = await validatePipelineFile(join(dir, 'p.yaml'), { env: {} });
  assert.equal(report.errors.length, 1);
  assert.equal(report.errors[0]!.code, 'WPIPE_ERR_YAML');
  assert.deepEqual([report.errors[0]!.line, report.errors[0]!.column], [4, 14]);
  assert.match(report.errors[0]!.message, /environment variable WPIPE_TEST_UNSET_T is not set/);
});

test('${VAR:-default} substitution: typed values, an empty default leaves the key out, a variable cannot add keys', async () => {
  const dir = folder({
    'p.yaml': 'pipelineName: ${NAME:-subst}\ntrackingDb: ${DB:-}\nsteps:\n  - module: ./steps.mjs\n    export: load\n    timeout: ${T:-0.5}\n    name: "${STEP}"\n',
  });
  const pipe = await loadPipeline(join(dir, 'p.yaml'), { env: { STEP: 'loader\nretryCount: 3' } });
  assert.equal(pipe.pipelineName, 'subst');
  assert.equal(pipe.trackingDb, undefined);
  assert.equal(pipe.steps[0]!.name, 'loader\nretryCount: 3', 'a value, never structure');
  const withDb = await loadPipeline(join(dir, 'p.yaml'), { env: { STEP: 's', DB: join(dir, 'x.db'), NAME: 'named' } });
  assert.equal(withDb.trackingDb, join(dir, 'x.db'));
  assert.equal(withDb.pipelineName, 'named');
});

test('a file that does not exist rejects with WPIPE_ERR_YAML (not-found); bad options are TypeErrors', async () => {
  await assert.rejects(loadPipeline(join(tmpdir(), 'wpipe-no-such-file.yaml')), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_YAML' && e.details.kind === 'not-found');
  const dir = folder({ 'p.yaml': 'steps:\n  - { module: ./steps.mjs, export: load }\n' });
  await assert.rejects(loadPipeline(join(dir, 'p.yaml'), { stepDir: dir } as never), (e: unknown) => e instanceof TypeError && /unknown option 'stepDir' \(did you mean stepsDir\?\)/.test(e.message));
  await assert.rejects(loadPipeline(join(dir, 'p.yaml'), { stepsDir: join(dir, 'nope') }), /stepsDir .* does not exist/);
  await assert.rejects(loadPipeline(42 as never), TypeError);
});

// ── safety: a file can at worst call the steps it names ────────────────────────────────────────

const refused = (module: string, message: RegExp, column = 15) =>
  oneProblem(`steps:\n  - { module: ${JSON.stringify(module)}, export: load }\n`, 'WPIPE_ERR_PIPELINE_MODULE_REFUSED', 2, column, message);

test('refused: a ../ escape out of the steps folder (even when the file exists)', async () => {
  const dir = folder();
  writeFileSync(join(dir, '..', `wpipe-outside-${process.pid}.mjs`), STEPS);
  try {
    await refused(`../wpipe-outside-${process.pid}.mjs`, /module '..\/wpipe-outside-\d+\.mjs' is outside the steps folder/);
    await refused('./sub/../../x.mjs', /is outside the steps folder/);
  } finally {
    rmSync(join(dir, '..', `wpipe-outside-${process.pid}.mjs`), { force: true });
  }
});

test('refused: an absolute path outside the steps folder (inside it is fine)', async () => {
  const other = folder();
  await refused(join(other, 'steps.mjs'), /is outside the steps folder/);
  const dir = folder({ 'p.yaml': `steps:\n  - { module: ${JSON.stringify('PLACEHOLDER')}, export: load }\n` });
  writeFileSync(join(dir, 'p.yaml'), `steps:\n  - { module: ${JSON.stringify(join(dir, 'steps.mjs'))}, export: load }\n`);
  assert.equal((await validatePipelineFile(join(dir, 'p.yaml'))).valid, true);
});

test('refused: a symbolic link inside the folder that points out of it', async () => {
  const other = folder();
  const { file, errors } = await (async () => {
    const dir = folder({ 'p.yaml': 'steps:\n  - { module: ./link.mjs, export: load }\n' });
    symlinkSync(join(other, 'steps.mjs'), join(dir, 'link.mjs'));
    const f = join(dir, 'p.yaml');
    return { file: f, errors: (await validatePipelineFile(f)).errors };
  })();
  assert.equal(errors.length, 1, errors.map((e) => e.text).join('\n'));
  assert.equal(errors[0]!.code, 'WPIPE_ERR_PIPELINE_MODULE_REFUSED');
  assert.match(errors[0]!.message, /is a symbolic link to .*outside the steps folder/);
  await assert.rejects(loadPipeline(file), /symbolic link/);
});

test('refused: node: builtins, bare builtin names, package names and URLs; allowPackages opens packages, never non-steps', async () => {
  await refused('node:fs', /module 'node:fs' is a Node.js builtin; modules must be files in the steps folder/);
  await refused('child_process', /is a Node.js builtin/);
  await refused('yaml', /module 'yaml' is a package name; .*allowPackages/);
  await refused('@scope/steps', /is a package name/);
  await refused(pathToFileURL(join(tmpdir(), 'x.mjs')).href, /is a URL; name a file relative to the steps folder/);
  await refused('data:text/javascript,export const load = 1', /is a URL/);
  // With allowPackages a builtin resolves, and is still refused at the export: only step() exports run.
  await oneProblem('steps:\n  - { module: "node:child_process", export: execSync }\n', 'WPIPE_ERR_PIPELINE_EXPORT', 2, 45,
    /export 'execSync' of 'node:child_process' is a plain function, not a step/, {}, { allowPackages: true });
});

test('refused: exports that are not steps (a plain function, a constant), and exports that do not exist', async () => {
  await oneProblem('steps:\n  - { module: ./steps.mjs, export: helper }\n', 'WPIPE_ERR_PIPELINE_EXPORT', 2, 36,
    /export 'helper' of '.\/steps.mjs' is a plain function, not a step: only step\(\.\.\.\) exports can be named/);
  await oneProblem('steps:\n  - { module: ./steps.mjs, export: CONSTANT }\n', 'WPIPE_ERR_PIPELINE_EXPORT', 2, 36, /is number 42, not a step/);
  await oneProblem('steps:\n  - { module: ./steps.mjs, export: dobule }\n', 'WPIPE_ERR_PIPELINE_EXPORT', 2, 36,
    /module '.\/steps.mjs' has no export 'dobule' \(did you mean double\?\); its step exports: /);
  await oneProblem('steps:\n  - { module: ./steps.mjs, export: toString }\n', 'WPIPE_ERR_PIPELINE_EXPORT', 2, 36, /has no export 'toString'/);
  // The default export is an export like any other.
  const dir = folder({ 'p.yaml': 'steps:\n  - { module: ./steps.mjs, export: default }\n' });
  assert.deepEqual(await (await loadPipeline(join(dir, 'p.yaml'))).run({}), { d: 1 });
});

test('a module that does not exist, or throws while importing: WPIPE_ERR_MODULE_IMPORT at its module key', async () => {
  await oneProblem('steps:\n  - { module: ./nope.mjs, export: load }\n', 'WPIPE_ERR_MODULE_IMPORT', 2, 15, /module '.\/nope.mjs' does not exist/);
  await oneProblem('steps:\n  - { module: ./throws.mjs, export: load }\n', 'WPIPE_ERR_MODULE_IMPORT', 2, 15,
    /module '.\/throws.mjs' failed to import: broken at import/, { 'throws.mjs': "throw new Error('broken at import');\n" });
  // One report per module, however many steps name it.
  const { errors } = await problems('steps:\n  - { module: ./nope.mjs, export: a }\n  - { module: ./nope.mjs, export: b }\n');
  assert.equal(errors.length, 1);
});

test('stepsDir: modules resolve in it and may not leave it', async () => {
  const dir = folder({ 'lib/steps.mjs': STEPS, 'pipelines/p.yaml': 'steps:\n  - { module: ./steps.mjs, export: load }\n  - { module: ../steps.mjs, export: inc }\n' });
  const file = join(dir, 'pipelines', 'p.yaml');
  const report = await validatePipelineFile(file, { stepsDir: join(dir, 'lib') });
  assert.deepEqual(report.errors.map((e) => [e.line, e.code]), [[3, 'WPIPE_ERR_PIPELINE_MODULE_REFUSED']]);
  // Without stepsDir, the YAML file's folder: ./steps.mjs is not there.
  const plain = await validatePipelineFile(file);
  assert.deepEqual(plain.errors.map((e) => e.code), ['WPIPE_ERR_MODULE_IMPORT', 'WPIPE_ERR_PIPELINE_MODULE_REFUSED']);
});

// ── the schema ────────────────────────────────────────────────────────────────────────────────

test('schema/pipeline.schema.json is the schema generated from the format table (npm run build:schema)', () => {
  const shipped = JSON.parse(readFileSync(new URL('schema/pipeline.schema.json', root), 'utf8')) as unknown;
  assert.deepEqual(shipped, pipelineJsonSchema(), 'regenerate it: npm run build:schema');
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('schema'), 'the schema is published');
  const schema = pipelineJsonSchema();
  for (const kind of ['step', 'conditionOptions', 'forOptions', 'parallelOptions', 'checkpoint'] as const) {
    const props = Object.keys((schema.definitions[kind] as { properties: object }).properties);
    const table = kind.replace('Options', '') as keyof typeof PIPELINE_FORMAT;
    assert.deepEqual(props, Object.keys(PIPELINE_FORMAT[table]), kind);
  }
});

test('the example pipeline (examples/orders.yaml) is valid and runs as examples/orders.ts does', async () => {
  const report = await validatePipelineFile(new URL('examples/orders.yaml', root).pathname, { env: {} });
  assert.deepEqual(report.errors, []);
  assert.equal(report.pipelineName, 'orders');
  const pipe = await loadPipeline(new URL('examples/orders.yaml', root).pathname, { env: {} });
  const out = await pipe.run({ orderId: 7 });
  await pipe.close();
  assert.equal(out.decision, 'manual review');
  assert.equal(out.total, 117.75);
  assert.equal(out.shippingSource, 'flat rate');
  assert.deepEqual((out._errors as { code: string }[]).map((e) => e.code), ['WPIPE_ERR_TASK_TIMEOUT']);
});

test('keys Object.prototype has (toString, constructor, __proto__) are unknown keys, never blocks or options', async () => {
  await oneProblem('steps:\n  - toString: { module: ./steps.mjs, export: load }\n', 'WPIPE_ERR_PIPELINE_INVALID', 2, 5,
    /expected a step \(module\/export\) or a block .*got a mapping with keys 'toString'/);
  await oneProblem('constructor: x\nsteps:\n  - { module: ./steps.mjs, export: load }\n', 'WPIPE_ERR_PIPELINE_INVALID', 1, 1, /unknown key 'constructor' in a pipeline/);
  await oneProblem('steps:\n  - { module: ./steps.mjs, export: load, __proto__: { timeout: 1 } }\n', 'WPIPE_ERR_PIPELINE_INVALID', 2, 42, /unknown key '__proto__' in a step/);
});

/** The draft-07 keywords the schema uses, checked as an editor's validator would (a reference for the schema's meaning). */
function schemaErrors(schema: Record<string, unknown>, value: unknown, root = schema, at = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const target = schema.$ref.replace('#/definitions/', '');
    return schemaErrors((root.definitions as Record<string, Record<string, unknown>>)[target]!, value, root, at);
  }
  const out: string[] = [];
  if (Array.isArray(schema.anyOf)) {
    const ok = (schema.anyOf as Record<string, unknown>[]).some((s) => schemaErrors(s, value, root, at).length === 0);
    if (!ok) out.push(`${at}: matches none of anyOf`);
  }
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  const is: Record<string, (v: unknown) => boolean> = {
    object: () => isObject, array: Array.isArray, string: (v) => typeof v === 'string', boolean: (v) => typeof v === 'boolean',
    number: (v) => typeof v === 'number', integer: Number.isInteger, null: (v) => v === null,
  };
  if (schema.type !== undefined) {
    const types = ([] as string[]).concat(schema.type as string | string[]);
    if (!types.some((t) => is[t]!(value))) return [...out, `${at}: not ${types.join(' or ')}`];
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) out.push(`${at}: < minimum`);
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) out.push(`${at}: <= exclusiveMinimum`);
  }
  if (typeof value === 'string' && typeof schema.minLength === 'number' && value.length < schema.minLength) out.push(`${at}: too short`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) out.push(`${at}: not in enum`);
  if (isObject) {
    const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in (value as object))) out.push(`${at}: missing ${r}`);
    for (const [k, v] of Object.entries(value as object)) {
      if (Object.hasOwn(props, k)) out.push(...schemaErrors(props[k]!, v, root, `${at}.${k}`));
      else if (schema.additionalProperties === false) out.push(`${at}: additional property ${k}`);
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => out.push(...schemaErrors(schema.items as Record<string, unknown>, v, root, `${at}[${i}]`)));
  return out;
}

test('the JSON Schema and the validator agree: the example passes both; each malformed document fails both', async () => {
  const schema = pipelineJsonSchema();
  const { readYaml } = await import('../src/index.js');
  assert.deepEqual(schemaErrors(schema, readYaml(new URL('examples/orders.yaml', root).pathname, { env: {} })), []);
  const good = 'steps:\n  - { module: ./steps.mjs, export: load, timeout: 1, executor: inline }\n  - parallel: { steps: [{ module: ./steps.mjs, export: inc }], maxWorkers: 2 }\n  - for: { while: n < 3, steps: [{ module: ./steps.mjs, export: inc }] }\n  - background: { condition: { expression: n > 1, then: [{ module: ./steps.mjs, export: big }] } }\n';
  const dir = folder({ 'good.yaml': good });
  assert.deepEqual(schemaErrors(schema, readYaml(join(dir, 'good.yaml'))), []);
  assert.equal((await validatePipelineFile(join(dir, 'good.yaml'))).valid, true);
  for (const bad of [
    'pipelinename: x\nsteps: []\n',
    'steps:\n  - { module: ./steps.mjs }\n',
    'steps:\n  - { module: ./steps.mjs, export: load, timeout: 0 }\n',
    'steps:\n  - { module: ./steps.mjs, export: load, retryCount: 1.5 }\n',
    'steps:\n  - { module: ./steps.mjs, export: load, executor: thread }\n',
    'steps:\n  - for: { steps: [{ module: ./steps.mjs, export: inc }] }\n',
    'steps:\n  - condition: { then: [{ module: ./steps.mjs, export: big }] }\n',
    'steps:\n  - parallel: { steps: [{ module: ./steps.mjs, export: inc }], maxWorkers: 0 }\n',
    'steps:\n  - conditon: { expression: n, then: [] }\n',
    'steps:\n  - load\n',
    'checkpoints: [{ name: a }]\nsteps: [{ module: ./steps.mjs, export: load }]\n',
    'maxRetries: -1\nsteps: [{ module: ./steps.mjs, export: load }]\n',
    'trackingDurability: always\nsteps: [{ module: ./steps.mjs, export: load }]\n',
  ]) {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, bad);
    assert.notDeepEqual(schemaErrors(schema, readYaml(file)), [], `the schema accepts:\n${bad}`);
    assert.equal((await validatePipelineFile(file)).valid, false, `the validator accepts:\n${bad}`);
  }
});
