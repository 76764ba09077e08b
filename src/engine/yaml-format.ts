/**
 * The format of pipelines written in YAML (`loadPipeline`, `wpipe run`): one table of every key, read
 * by the validator (src/engine/yaml-pipeline.ts) and turned into the JSON Schema that editors use
 * (`pipelineJsonSchema()`, shipped as schema/pipeline.schema.json). The schema file is generated from
 * this table (`npm run build:schema`); test/yaml-pipeline.test.ts fails when the two differ.
 *
 * @example
 * ```ts
 * import { pipelineJsonSchema } from 'wpipe';
 * writeFileSync('pipeline.schema.json', JSON.stringify(pipelineJsonSchema(), null, 2));
 * ```
 */

/**
 * What a key holds. `steps` is a list of items, `item` one step or block, `expression` a string compiled as an expression.
 *
 * @example
 * ```ts
 * PIPELINE_FORMAT.condition.expression.type; // 'expression'
 * ```
 */
export type FieldType =
  | 'string' | 'expression' | 'number' | 'integer' | 'boolean' | 'strings' | 'enum' | 'steps' | 'item' | 'checkpoints';

/**
 * One key of a mapping of the format.
 *
 * @example
 * ```ts
 * const f: FieldSpec = PIPELINE_FORMAT.step.timeout; // { type: 'number', min: 0, exclusiveMin: true, … }
 * ```
 */
export interface FieldSpec {
  readonly type: FieldType;
  readonly description: string;
  readonly required?: boolean;
  /** Smallest value (numbers). */
  readonly min?: number;
  /** `min` itself is not allowed. */
  readonly exclusiveMin?: boolean;
  readonly values?: readonly string[];
}

/**
 * The kinds of mapping in a pipeline file.
 *
 * @example
 * ```ts
 * const kinds = Object.keys(PIPELINE_FORMAT) as MappingKind[]; // ['pipeline', 'step', 'condition', …]
 * ```
 */
export type MappingKind = 'pipeline' | 'step' | 'condition' | 'for' | 'parallel' | 'checkpoint';

/** 'bullmq' only with a queue from the loader (loadPipeline's `bullmq` option): a file never names a Redis. */
const EXECUTORS = ['inline', 'threads', 'processes', 'bullmq'] as const;

/**
 * Every mapping of the format and its keys, in the order the README documents them: what the
 * validator checks and what the JSON Schema is generated from.
 *
 * @example
 * ```ts
 * Object.keys(PIPELINE_FORMAT.parallel); // ['steps', 'maxWorkers', 'executor', 'useProcesses', 'memoryLimitMb', 'name']
 * ```
 */
export const PIPELINE_FORMAT: Readonly<Record<MappingKind, Readonly<Record<string, FieldSpec>>>> = Object.freeze({
  pipeline: {
    pipelineName: { type: 'string', description: "The pipeline's name in the run history (default 'Pipeline')." },
    description: { type: 'string', description: 'Free text for readers; not used by the engine.' },
    module: { type: 'string', description: 'Default module of the steps that give only `export` (a path relative to the steps folder).' },
    verbose: { type: 'boolean', description: 'Log each step, retry, condition and checkpoint.' },
    trackingDb: { type: 'string', description: 'SQLite file for run history and checkpoints (relative to the working directory; `wpipe run --db` wins).' },
    maxRetries: { type: 'integer', min: 0, description: 'Default extra attempts of a step that says nothing (default 0).' },
    retryDelay: { type: 'number', min: 0, description: 'Default seconds between attempts (default 1).' },
    retryBackoff: { type: 'number', min: 1, description: 'Default multiplier of the delay after each retry (default 1).' },
    continueOnError: { type: 'boolean', description: 'Go on after a failed top-level step; failures are kept under `_errors`.' },
    collectSystemMetrics: { type: 'boolean', description: 'Sample CPU and memory during runs (needs trackingDb).' },
    trackingDurability: { type: 'enum', values: ['step', 'fsync', 'run'], description: "How durable the history is: 'step' (default), 'fsync' or 'run'." },
    trackingMaxValueBytes: { type: 'integer', min: 256, description: 'Largest value the history stores, in bytes of JSON (default 1 MiB).' },
    checkpoints: { type: 'checkpoints', description: 'Checkpoints: `{ name, expression }`, saved whenever the expression holds.' },
    steps: { type: 'steps', required: true, description: 'The steps and blocks, run in order.' },
  },
  step: {
    module: { type: 'string', description: 'The module exporting the step: a path relative to the steps folder (default: the pipeline\'s `module`).' },
    export: { type: 'string', required: true, description: 'The name of a `step(...)` export of the module.' },
    name: { type: 'string', description: "The step's name (default: the step()'s own)." },
    version: { type: 'string', description: "The step's version (default: the step()'s own)." },
    retryCount: { type: 'integer', min: 0, description: 'Extra attempts after the first (0 = none).' },
    retryDelay: { type: 'number', min: 0, description: 'Seconds before a retry.' },
    retryBackoff: { type: 'number', min: 1, description: 'Multiplier of the delay after each retry.' },
    timeout: { type: 'number', min: 0, exclusiveMin: true, description: 'Deadline of each attempt, in seconds.' },
    description: { type: 'string', description: 'Free text.' },
    tags: { type: 'strings', description: 'Tags of the step.' },
    executor: { type: 'enum', values: EXECUTORS, description: "Where the step runs: 'inline', 'threads', 'processes' or 'bullmq' (a job on the queue the loader was given, loadPipeline's bullmq option; refused without one)." },
    memoryLimitMb: { type: 'number', min: 0, exclusiveMin: true, description: "Memory cap of the step's worker, in MiB (needs a worker executor)." },
  },
  condition: {
    expression: { type: 'expression', required: true, description: 'An expression over the context; it decides the branch.' },
    then: { type: 'steps', required: true, description: 'Run when the expression holds.' },
    else: { type: 'steps', description: 'Run when it does not.' },
    name: { type: 'string', description: "Name in errors, history and progress (default 'Condition')." },
  },
  for: {
    steps: { type: 'steps', required: true, description: 'The loop body.' },
    iterations: { type: 'integer', min: 0, description: 'At most this many iterations (give `iterations`, `while` or both).' },
    while: { type: 'expression', description: 'Checked before every iteration (`_loop_iteration` is the index about to run).' },
    maxIterations: { type: 'integer', min: 1, description: 'A safety bound: iteration maxIterations + 1 fails the loop.' },
    name: { type: 'string', description: "Name in errors, history and progress (default 'For')." },
  },
  parallel: {
    steps: { type: 'steps', required: true, description: 'One branch per item, each on its own copy of the context.' },
    maxWorkers: { type: 'integer', min: 1, description: 'Branches running at once (default: all).' },
    executor: { type: 'enum', values: EXECUTORS, description: "Where branches run: 'inline', 'threads', 'processes' or 'bullmq' (each branch a job on the queue the loader was given, loadPipeline's bullmq option; refused without one)." },
    useProcesses: { type: 'boolean', description: 'Run every branch in a child process.' },
    memoryLimitMb: { type: 'number', min: 0, exclusiveMin: true, description: 'Memory cap of each worker process, in MiB.' },
    name: { type: 'string', description: "Name in errors, history and progress (default 'Parallel')." },
  },
  checkpoint: {
    name: { type: 'string', required: true, description: 'The checkpoint\'s name.' },
    expression: { type: 'expression', required: true, description: 'Saved whenever this expression holds (before the first step and after each top-level step).' },
  },
});

/**
 * The keys that make a mapping a block, and the kind of what they hold.
 *
 * @example
 * ```ts
 * Object.hasOwn(BLOCK_KEYS, 'for'); // true
 * ```
 */
export const BLOCK_KEYS = Object.freeze({ condition: 'condition', for: 'for', parallel: 'parallel', background: 'item' } as const);
/** A key that makes a mapping a block (`condition`, `for`, `parallel`, `background`). */
export type BlockKey = keyof typeof BLOCK_KEYS;

/**
 * `$id` of the schema. Editors find the schema by path: `# yaml-language-server: $schema=./node_modules/wpipe/schema/pipeline.schema.json`.
 *
 * @example
 * ```ts
 * pipelineJsonSchema().$id === PIPELINE_SCHEMA_ID; // true
 * ```
 */
export const PIPELINE_SCHEMA_ID = 'https://wpipe.dev/schema/pipeline.schema.json';

type JsonSchema = Record<string, unknown>;

function fieldSchema(f: FieldSpec): JsonSchema {
  const base: JsonSchema = { description: f.description };
  switch (f.type) {
    case 'string':
      return { ...base, type: 'string' };
    case 'expression':
      return { ...base, type: 'string', minLength: 1 };
    case 'boolean':
      return { ...base, type: 'boolean' };
    case 'number':
    case 'integer': {
      const out: JsonSchema = { ...base, type: f.type };
      if (f.min !== undefined) out[f.exclusiveMin ? 'exclusiveMinimum' : 'minimum'] = f.min;
      return out;
    }
    case 'strings':
      return { ...base, type: 'array', items: { type: 'string' } };
    case 'enum':
      return { ...base, type: 'string', enum: [...(f.values ?? [])] };
    case 'steps':
      return { ...base, $ref: '#/definitions/steps' };
    case 'item':
      return { ...base, $ref: '#/definitions/item' };
    case 'checkpoints':
      return { ...base, type: 'array', items: { $ref: '#/definitions/checkpoint' } };
  }
}

/** An optional key may also be written with no value (null): the validator takes it as absent. */
function orNull(schema: JsonSchema): JsonSchema {
  if (typeof schema.$ref === 'string') {
    const { $ref, ...rest } = schema;
    return { ...rest, anyOf: [{ $ref }, { type: 'null' }] };
  }
  const out: JsonSchema = { ...schema, type: [schema.type, 'null'] };
  if (Array.isArray(schema.enum)) out.enum = [...(schema.enum as unknown[]), null];
  return out;
}

function mappingSchema(kind: MappingKind, description: string): JsonSchema {
  const fields = PIPELINE_FORMAT[kind];
  const properties: JsonSchema = {};
  for (const [key, f] of Object.entries(fields)) properties[key] = f.required ? fieldSchema(f) : orNull(fieldSchema(f));
  const required = Object.entries(fields).filter(([, f]) => f.required).map(([k]) => k);
  const out: JsonSchema = { type: 'object', description, properties, additionalProperties: false };
  if (required.length > 0) out.required = required;
  return out;
}

function blockSchema(key: BlockKey, description: string): JsonSchema {
  const inner = BLOCK_KEYS[key] === 'item' ? { $ref: '#/definitions/item' } : { $ref: `#/definitions/${key}Options` };
  return { type: 'object', description, properties: { [key]: inner }, required: [key], additionalProperties: false };
}

/**
 * The JSON Schema (draft-07) of a pipeline file, generated from {@link PIPELINE_FORMAT}. Editors
 * (the YAML language server: `# yaml-language-server: $schema=./node_modules/wpipe/schema/pipeline.schema.json`)
 * complete and check keys with it; `loadPipeline` checks more (modules, exports, expressions).
 *
 * @example
 * ```ts
 * const schema = pipelineJsonSchema();
 * schema.definitions.step.required; // ['export']
 * ```
 */
export function pipelineJsonSchema(): JsonSchema & { definitions: Record<string, JsonSchema> } {
  const forOptions = mappingSchema('for', 'A loop: `iterations`, `while` or both.');
  forOptions.anyOf = [{ required: ['iterations'] }, { required: ['while'] }];
  return {
    $comment: 'Generated from src/engine/yaml-format.ts by `npm run build:schema`: do not edit by hand.',
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: PIPELINE_SCHEMA_ID,
    title: 'wpipe pipeline',
    ...mappingSchema('pipeline', ''),
    description: 'A wpipe pipeline written in YAML (loadPipeline, `wpipe run`).',
    definitions: {
      steps: { type: 'array', description: 'Steps and blocks, in order.', items: { $ref: '#/definitions/item' } },
      item: {
        description: 'A step (`module`/`export`) or a block (`condition`, `for`, `parallel`, `background`).',
        anyOf: [
          { $ref: '#/definitions/step' },
          { $ref: '#/definitions/condition' },
          { $ref: '#/definitions/for' },
          { $ref: '#/definitions/parallel' },
          { $ref: '#/definitions/background' },
        ],
      },
      step: mappingSchema('step', 'A step: an exported `step(...)` function of a module, with optional overrides.'),
      condition: blockSchema('condition', 'Runs `then` when the expression holds, else `else`.'),
      conditionOptions: mappingSchema('condition', 'The options of a condition block.'),
      for: blockSchema('for', 'Repeats its steps.'),
      forOptions,
      parallel: blockSchema('parallel', 'Runs its steps concurrently; results merge in declared order.'),
      parallelOptions: mappingSchema('parallel', 'The options of a parallel block.'),
      background: blockSchema('background', 'Starts a step or block without waiting for it; what it returns is recorded, not merged.'),
      checkpoint: mappingSchema('checkpoint', 'A checkpoint.'),
    },
  };
}
