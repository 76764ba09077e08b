/**
 * The `wpipe` command (package.json "bin" → bin/wpipe.js → the bundle dist/wpipe-cli.js, built from
 * this file). Each subcommand's module, and the library itself, is imported only when that
 * subcommand runs: `wpipe --help` loads commander and nothing else.
 *
 * Exit codes: 0 success, 1 the run failed (validate: invalid file; runs show: no such run), 2 usage
 * error (bad arguments, unreadable input, a pipeline file that cannot be loaded), 130 the run was
 * cancelled by Ctrl-C / SIGTERM (recorded as cancelled, resumable with --run-id).
 *
 * @example
 * ```sh
 * wpipe run examples/orders.yaml --db runs.db --run-id order-7
 * wpipe runs list --db runs.db
 * ```
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { EXIT, processIo, type CliIo } from './cli/common.js';

function version(): string {
  try {
    // ../package.json from src/cli.ts, dist/cli.js and dist/wpipe-cli.js alike.
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The two flags that give a pipeline file's `executor: bullmq` its queue (run and validate). */
const REDIS_HELP = "the Redis of the file's 'executor: bullmq' steps and blocks (a file cannot name one; $WPIPE_REDIS does not count here)";
const QUEUE_HELP = "the BullMQ queue those steps go to (default 'wpipe'; needs --redis)";

/**
 * Parses `argv` (as process.argv: node, script, args…) and runs the subcommand; resolves to the
 * exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv);
 * ```
 */
export async function main(argv: readonly string[] = process.argv, io: CliIo = processIo()): Promise<number> {
  let code: number = EXIT.OK;
  const program = new Command('wpipe')
    .description('Run pipelines defined in YAML and read their run history.')
    .version(version(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(wpipe --help for usage)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .addHelpText('after', `
Exit codes: 0 success, 1 run failed, 2 usage error, 130 cancelled by Ctrl-C (resumable with --run-id).
The YAML format and its safety rules: README.md "Pipelines in YAML"; schema: schema/pipeline.schema.json.`);

  program.command('run')
    .description('run a pipeline file once and print the final context (JSON) on stdout')
    .argument('<pipeline>', 'the pipeline file (YAML)')
    .option('-i, --input <file>', "the initial context: a JSON file, or '-' for stdin (default {})")
    .option('--db <file>', 'keep the run history in this SQLite file (wins over the file\'s trackingDb)')
    .option('--run-id <id>', 'the run id: a stopped run resumes, a completed one prints its recorded result')
    .addOption(new Option('--backend <name>', 'expression backend').choices(['auto', 'js', 'wasm', 'native']))
    .option('--json', 'print one JSON document { runId, status, result | error, … } (also when the run fails)')
    .option('--steps-dir <dir>', "the folder step modules resolve in and may not leave (default: the file's folder)")
    .option('--allow-packages', 'let the file name package modules and node: builtins')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <name>', QUEUE_HELP)
    .action(async (file: string, flags: Record<string, unknown>) => {
      const { runCommand } = await import('./cli/run.js');
      code = await runCommand(file, flags, io);
    });

  const runs = program.command('runs').description('list and show recorded runs');
  runs.command('list')
    .description('recorded runs, newest first (a table; --json for JSON)')
    .option('--db <file>', 'the run history (default $WPIPE_DB, else runs.db)')
    .option('--status <status>', 'only runs with this status: running, completed, error, cancelled, interrupted (comma-separated for several)')
    .option('--pipeline <name>', 'only runs of this pipeline')
    .option('--limit <n>', 'at most this many runs (1-1000, default 20)')
    .option('--json', 'print { total, runs } as JSON')
    .action(async (flags: Record<string, unknown>) => {
      const { runsList } = await import('./cli/history.js');
      code = await runsList(flags, io);
    });
  runs.command('show')
    .description('one run with its steps')
    .argument('<id>', 'the run id')
    .option('--db <file>', 'the run history (default $WPIPE_DB, else runs.db)')
    .option('--json', 'print the run as JSON')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const { runsShow } = await import('./cli/history.js');
      code = await runsShow(id, flags, io);
    });

  program.command('export')
    .description('export the run history as JSON or CSV (RFC 4180)')
    .requiredOption('--db <file>', 'the run history')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv']).default('json'))
    .addOption(new Option('--data <what>', 'what to export').choices(['runs', 'metrics', 'statistics']).default('runs'))
    .option('--run-id <id>', 'only this run')
    .option('-o, --out <file>', 'write to this file (atomically) instead of stdout')
    .action(async (flags: Record<string, unknown>) => {
      const { exportCommand } = await import('./cli/history.js');
      code = await exportCommand(flags, io);
    });

  program.command('validate')
    .description('check a pipeline file: format, expressions, modules and exports (imports the step modules)')
    .argument('<pipeline>', 'the pipeline file (YAML)')
    .option('--json', 'print the report as JSON')
    .option('--steps-dir <dir>', "the folder step modules resolve in (default: the file's folder)")
    .option('--allow-packages', 'let the file name package modules and node: builtins')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <name>', QUEUE_HELP)
    .action(async (file: string, flags: Record<string, unknown>) => {
      const { validateCommand } = await import('./cli/tools.js');
      code = await validateCommand(file, flags, io);
    });

  program.command('backends')
    .description('which expression backends load here and which serves what (getBackendInfo)')
    .option('--json', 'print getBackendInfo() as JSON')
    .action(async (flags: Record<string, unknown>) => {
      const { backendsCommand } = await import('./cli/tools.js');
      code = await backendsCommand(flags, io);
    });

  program.command('schema')
    .description('print the JSON Schema of pipeline files')
    .action(async () => {
      const { schemaCommand } = await import('./cli/tools.js');
      code = await schemaCommand(io);
    });

  program.command('worker')
    .description('run Parallel branches, steps and whole runs queued on BullMQ (Redis) until Ctrl-C')
    .option('--redis <url>', 'the Redis server: redis://host:port[/db] (default $WPIPE_REDIS)')
    .option('--queue <name>', "the queue name, as given to useBullmq (default 'wpipe'; runs use NAME-runs)")
    .option('--steps <module...>', 'step modules jobs may name (imported at start; repeatable)')
    .option('--steps-dir <dir>', 'a folder: jobs may name any module under it')
    .option('--pipelines <module>', 'a module exporting Pipelines: also run whole runs (pipe.enqueue)')
    .option('--concurrency <n>', 'jobs at once (default 1)')
    .option('--lock-ms <ms>', "BullMQ's lock duration: a dead worker's jobs are noticed after about this long (default 30000)")
    .action(async (flags: Record<string, unknown>) => {
      const { workerCommand } = await import('./cli/worker.js');
      code = await workerCommand(flags, io);
    });

  program.command('dashboard')
    .description('serve the dashboard (a web page over the run history) until Ctrl-C')
    .option('--db <file>', 'the run history (default $WPIPE_DB)')
    .option('--port <port>', 'port (default 8035; 0 for a free one)')
    .option('--host <host>', 'address (default 127.0.0.1; anything else requires --token)')
    .option('--token <token>', 'secret the page and API require (default $WPIPE_DASHBOARD_TOKEN)')
    .option('--open', 'open the page in a browser')
    .action(async (flags: Record<string, unknown>) => {
      const { dashboardCommand } = await import('./cli/tools.js');
      code = await dashboardCommand(flags, io);
    });

  try {
    await program.parseAsync(argv as string[]);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here too, with exit code 0.
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    throw e;
  }
  return code;
}
