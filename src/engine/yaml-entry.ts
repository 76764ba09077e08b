/**
 * The public entry of YAML-defined pipelines: loadPipeline and validatePipelineFile load the
 * loader (yaml-pipeline.ts, the yaml package, the format checker) at their first call, so importing
 * wpipe does not pay for them.
 *
 * @example
 * ```ts
 * const pipe = await loadPipeline('orders.yaml');
 * ```
 */
import type { Pipeline } from './pipeline.js';
import type { LoadPipelineOptions, PipelineFileReport } from './yaml-pipeline.js';

export type { LoadPipelineOptions, PipelineFileError, PipelineFileReport } from './yaml-pipeline.js';

/**
 * Reads a pipeline file and returns a real Pipeline (yaml-pipeline.ts documents the format).
 *
 * @example
 * ```ts
 * const pipe = await loadPipeline('orders.yaml', { pipelineOptions: { trackingDb: 'runs.db' } });
 * ```
 */
export async function loadPipeline(path: string, options?: LoadPipelineOptions): Promise<Pipeline> {
  return (await import('./yaml-pipeline.js')).loadPipeline(path, options);
}

/**
 * Checks a pipeline file and returns every problem found (nothing thrown for a bad file).
 *
 * @example
 * ```ts
 * const report = await validatePipelineFile('orders.yaml');
 * ```
 */
export async function validatePipelineFile(path: string, options?: LoadPipelineOptions): Promise<PipelineFileReport> {
  return (await import('./yaml-pipeline.js')).validatePipelineFile(path, options);
}
