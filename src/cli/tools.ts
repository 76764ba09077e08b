/**
 * `wpipe validate`, `wpipe backends`, `wpipe schema` and `wpipe dashboard`.
 *
 * @example
 * ```sh
 * wpipe validate examples/orders.yaml
 * wpipe backends --json
 * wpipe dashboard --db runs.db --port 8035
 * ```
 */
import { existsSync } from 'node:fs';
import { EXIT, formatError, intOption, isUsage, preloadYaml, queueOption, toJson, untilStopSignal, usageError, type CliIo } from './common.js';

/**
 * `wpipe validate FILE`: every problem of a pipeline file (format, expressions, modules, exports),
 * one per line as `file:line:column: what`; exit 0 when valid, 1 when not, 2 when unreadable.
 *
 * @example
 * ```ts
 * await validateCommand('orders.yaml', {}, processIo());
 * ```
 */
export async function validateCommand(file: string, flags: { json?: boolean; stepsDir?: string; allowPackages?: boolean; redis?: string; queue?: string }, io: CliIo): Promise<number> {
  try {
    const queue = queueOption(flags);
    preloadYaml();
    const { validatePipelineFile } = await import('../index.js');
    const report = await validatePipelineFile(file, {
      ...(flags.stepsDir !== undefined ? { stepsDir: flags.stepsDir } : {}),
      ...(flags.allowPackages ? { allowPackages: true } : {}),
      ...queue,
    });
    if (flags.json) {
      io.stdout.write(`${toJson(report)}\n`);
    } else if (report.valid) {
      io.stdout.write(`${file}: valid pipeline '${report.pipelineName ?? 'Pipeline'}' (${report.steps} steps and blocks)\n`);
    } else {
      for (const e of report.errors) io.stderr.write(`${e.text}  [${e.code}]\n`);
      io.stderr.write(`${file}: ${report.errors.length} problem${report.errors.length === 1 ? '' : 's'}\n`);
    }
    return report.valid ? EXIT.OK : EXIT.FAILED;
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
}

/**
 * `wpipe backends`: what getBackendInfo() says (each backend, and which serves each capability).
 *
 * @example
 * ```ts
 * await backendsCommand({ json: true }, processIo());
 * ```
 */
export async function backendsCommand(flags: { json?: boolean }, io: CliIo): Promise<number> {
  try {
    const { getBackendInfo } = await import('../index.js');
    const info = getBackendInfo();
    if (flags.json) {
      io.stdout.write(`${toJson(info)}\n`);
      return EXIT.OK;
    }
    io.stdout.write(`requested: ${info.requested} (${info.source === 'env' ? 'WPIPE_BACKEND' : 'default'})\n`);
    for (const name of ['js', 'wasm', 'native'] as const) {
      const b = info.backends[name];
      io.stdout.write(`  ${name.padEnd(7)} ${b.available ? 'available  ' : 'unavailable'}  ${b.detail}${b.features.length ? ` [${b.features.join(', ')}]` : ''}\n`);
    }
    for (const [capability, c] of Object.entries(info.capabilities)) io.stdout.write(`  ${capability.padEnd(12)} → ${c.backend}: ${c.reason}\n`);
    return EXIT.OK;
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
}

/**
 * `wpipe schema`: the JSON Schema of pipeline files (what schema/pipeline.schema.json holds).
 *
 * @example
 * ```ts
 * await schemaCommand(processIo());
 * ```
 */
export async function schemaCommand(io: CliIo): Promise<number> {
  const { pipelineJsonSchema } = await import('../index.js');
  io.stdout.write(`${JSON.stringify(pipelineJsonSchema(), null, 2)}\n`);
  return EXIT.OK;
}

/** What `wpipe dashboard` needs of src/dashboard (loaded only by this subcommand). */
type StartDashboard = (o: { db: string; host?: string; port?: number; token?: string }) => Promise<{ url: string; close(): Promise<void> }>;

/**
 * `wpipe dashboard`: serves the dashboard over a run history until SIGINT or SIGTERM.
 *
 * @example
 * ```ts
 * await dashboardCommand({ db: 'runs.db', port: '0' }, processIo());
 * ```
 */
export async function dashboardCommand(
  flags: { db?: string; port?: string; host?: string; token?: string; open?: boolean },
  io: CliIo,
): Promise<number> {
  let handle: { url: string; close(): Promise<void> };
  try {
    const db = flags.db ?? process.env.WPIPE_DB;
    if (db === undefined || db === '') throw usageError('--db FILE is required (the run history: a pipeline\'s trackingDb)');
    if (!existsSync(db)) throw usageError(`--db: ${db} does not exist (give the trackingDb of your pipelines)`);
    const port = intOption('--port', flags.port, 0, 65535) ?? 8035;
    const token = flags.token ?? process.env.WPIPE_DASHBOARD_TOKEN;
    const lib = (await import('../index.js')) as unknown as { startDashboard?: StartDashboard };
    if (typeof lib.startDashboard !== 'function') throw new Error('the dashboard is not part of this build of wpipe');
    handle = await lib.startDashboard({ db, port, ...(flags.host !== undefined ? { host: flags.host } : {}), ...(token ? { token } : {}) });
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
  io.stdout.write(`${handle.url}\n`);
  io.stderr.write(`wpipe: dashboard on ${handle.url} (Ctrl-C to stop)\n`);
  if (flags.open) openBrowser(handle.url, io);
  await untilStopSignal();
  await handle.close();
  return EXIT.OK;
}

function openBrowser(url: string, io: CliIo): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  void import('node:child_process').then(({ spawn }) => {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => io.stderr.write(`wpipe: could not open a browser (${cmd}); open ${url} yourself\n`));
    child.unref();
  });
}
