// Error types and the exit codes they map to. Exit codes follow sysexits(3) so scripts and CI
// can tell a bad manifest from a missing tool from a failed build without parsing messages.

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 64, // EX_USAGE: bad command line
  config: 65, // EX_DATAERR: a manifest, profile or other input file is invalid
  unavailable: 69, // EX_UNAVAILABLE: a required host tool is missing
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A position in a user's file, for messages and GitHub `::error file=..,line=..::` annotations. */
export interface Location {
  file: string;
  line?: number;
  col?: number;
}

/** One broken rule in an input file. */
export interface ConfigIssue extends Location {
  /** JSON pointer of the offending value inside the document ("" for the root). */
  path: string;
  /** The rule that failed, e.g. `enum`, `required`, `additionalProperties`, `yaml-syntax`. */
  rule: string;
  message: string;
  /** The offending value, when there is one. */
  value?: unknown;
}

export function formatLocation(loc: Location): string {
  return [loc.file, loc.line, loc.col].filter((p) => p !== undefined).join(':');
}

export function formatIssue(issue: ConfigIssue): string {
  const value = issue.value === undefined ? '' : ` (got ${JSON.stringify(issue.value)})`;
  const where = issue.path ? ` at ${issue.path}` : '';
  return `${formatLocation(issue)}: ${issue.rule}${where}: ${issue.message}${value}`;
}

/** Base class: every error the pipeline raises on purpose carries its exit code. */
export class PipelineError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue = ExitCode.failure) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

export class UsageError extends PipelineError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** Input files are invalid. Raised before any work starts; lists every issue found. */
export class ConfigError extends PipelineError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      `${issues.length} problem${issues.length === 1 ? '' : 's'} in configuration:\n` +
        issues.map((i) => `  ${formatIssue(i)}`).join('\n'),
      ExitCode.config,
    );
    this.issues = issues;
  }
}

export class ToolMissingError extends PipelineError {
  constructor(tool: string, hint: string) {
    super(
      `required tool '${tool}' is not installed: ${hint} (see 'rock-image doctor')`,
      ExitCode.unavailable,
    );
  }
}

/** A subprocess failed: carries the command, exit code and the useful tail of its stderr. */
export class CommandError extends PipelineError {
  readonly command: string[];
  readonly code: number | null;
  readonly stderr: string;
  constructor(command: string[], code: number | null, stderr: string) {
    const tail = stderr.trim().split('\n').slice(-15).join('\n');
    super(`command failed (exit ${code ?? 'signal'}): ${command.join(' ')}${tail ? `\n${tail}` : ''}`);
    this.command = command;
    this.code = code;
    this.stderr = stderr;
  }
}
