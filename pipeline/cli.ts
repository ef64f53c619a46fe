// Command-line entry: the only place that reads argv, the environment and the clock.
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commands } from './commands/index.ts';
import { type Context, optionProblems, parseArgsOptions } from './commands/types.ts';
import { ConfigError, ExitCode, PipelineError, UsageError } from './errors.ts';
import {
  MOUNT_NS_ENV,
  mountNamespace,
  mountsFilesystems,
  reexecInMountNamespace,
} from './exec/mount-namespace.ts';
import { createRunner } from './exec/run.ts';
import { createLogger, detectMode, type Logger } from './log.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function mainUsage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: rock-image <command> [options]',
    '',
    'Builds, tests and publishes the RockNSM sensor OS image (a Fedora CoreOS derivative).',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options:',
    '  --project DIR   project root holding manifests/, overlays/, containerfiles/ (default: this package)',
    '  -v, --verbose   show every command line and its output',
    '  -h, --help      show help (also: rock-image <command> --help)',
    '',
    'Exit codes: 0 ok, 1 failure (a tool or a step failed), 64 usage error, 65 invalid configuration or',
    '  build record, 69 missing host tool or unreachable service.',
  ].join('\n');
}

/** Moves global options given before the command (`rock-image --project D build`) after it. */
function commandFirst(argv: string[]): string[] {
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === '--project' && i + 1 < argv.length) leading.push(a, argv[++i]!);
    else if (a.startsWith('--project=') || a === '-v' || a === '--verbose') leading.push(a);
    else break;
    i++;
  }
  return i < argv.length ? [argv[i]!, ...leading, ...argv.slice(i + 1)] : argv;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = commandFirst(argv);
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${mainUsage()}\n`);
    return name ? ExitCode.ok : ExitCode.usage;
  }
  if (name === '--version') {
    process.stdout.write('rock-image 0.1.0\n');
    return ExitCode.ok;
  }
  const command = commands.find((c) => c.name === name);
  const log: Logger = createLogger({
    mode: detectMode(env, Boolean(process.stderr.isTTY)),
    verbose: rest.includes('-v') || rest.includes('--verbose'),
    secrets: [env.GITHUB_TOKEN, env.REGISTRY_PASSWORD].filter((s): s is string => Boolean(s)),
  });
  try {
    if (!command) throw new UsageError(`unknown command '${name}'\n\n${mainUsage()}`);
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        ...parseArgsOptions(command.options),
        project: { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: command.positionals ?? false,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${command.usage.trim()}\n`);
      return ExitCode.ok;
    }
    const problems = optionProblems(command.options, values);
    if (problems.length) throw new UsageError(`${problems.join('\n')}\n(see --help)`);
    // Mounting runs get a mount namespace of their own (exec/mount-namespace.ts says why).
    const reexecuted = env[MOUNT_NS_ENV] !== undefined && env[MOUNT_NS_ENV] !== mountNamespace();
    if (!reexecuted && process.getuid?.() === 0 && mountsFilesystems(name, rest))
      return await reexecInMountNamespace(join(projectRoot, 'bin/rock-image.js'), argv, env);
    const ctx: Context = {
      root: typeof values.project === 'string' ? values.project : projectRoot,
      cwd: process.cwd(),
      env,
      now: Date.now,
      log,
      run: createRunner(log),
      stdout: process.stdout,
      cores: availableParallelism(),
    };
    return await command.run(ctx, values, positionals);
  } catch (err) {
    return report(log, err);
  }
}

function report(log: Logger, err: unknown): number {
  if (err instanceof ConfigError && err.issues.length) {
    for (const i of err.issues) {
      log.error(
        `${i.rule}${i.path ? ` at ${i.path}` : ''}: ${i.message}${i.value === undefined ? '' : ` (got ${JSON.stringify(i.value)})`}`,
        i,
      );
    }
    log.error(`configuration invalid: ${err.issues.length} problem(s); nothing was built`);
    return err.exitCode;
  }
  if (err instanceof PipelineError) {
    log.error(err.message);
    return err.exitCode;
  }
  // node:util parseArgs errors are usage errors.
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    log.error(`${err.message} (see --help)`);
    return ExitCode.usage;
  }
  log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return ExitCode.failure;
}
