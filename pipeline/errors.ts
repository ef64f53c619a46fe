// Error types and the exit codes they map to. Exit codes follow sysexits(3) so scripts and CI
// can tell a bad manifest from a missing tool from a failed build without parsing messages.
// This module and cli.ts (which returns them) are the only places exit numbers appear.
// Values: /usr/include/sysexits.h:96-101 (glibc 2.36, Debian libc6-dev 2.36-9+deb12u14). A bad
// project file is 65 (EX_DATAERR), not 78 (EX_CONFIG, sysexits.h:110), because 65 is what this
// CLI has reported for file:line errors from the start and scripts and tests rely on it.

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 64, // EX_USAGE: bad command line
  config: 65, // EX_DATAERR: a manifest, profile or other input file is invalid
  data: 65, // EX_DATAERR as well: a build record or other input the pipeline reads is bad
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

/**
 * Base class: every error the pipeline raises on purpose carries its exit code, fixed by its class
 * (the cause), never by the caller. Raised as is, it is a runtime failure (exit 1): something went
 * wrong while working, and re-running may help.
 */
export class PipelineError extends Error {
  static readonly exitCode: ExitCodeValue = ExitCode.failure;
  readonly exitCode: ExitCodeValue;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
    this.exitCode = (new.target as typeof PipelineError).exitCode;
  }
}

/** The command line is wrong: an unknown option, a missing or malformed value (exit 64). */
export class UsageError extends PipelineError {
  static override readonly exitCode: ExitCodeValue = ExitCode.usage;
}

/**
 * A project file (manifest, stream, profile, trust key) is invalid (exit 65). Raised before any
 * work starts; lists every issue found, each at its file:line, or carries one message naming them.
 */
export class ConfigError extends PipelineError {
  static override readonly exitCode: ExitCodeValue = ExitCode.config;
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[] | string) {
    super(
      typeof issues === 'string'
        ? issues
        : `${issues.length} problem${issues.length === 1 ? '' : 's'} in configuration:\n` +
            issues.map((i) => `  ${formatIssue(i)}`).join('\n'),
    );
    this.issues = typeof issues === 'string' ? [] : issues;
  }
}

/**
 * A record or input the pipeline reads is bad: meta.json or builds.json that is not JSON or breaks
 * its schema, a published document for another stream, an archive that is not what its record says
 * (exit 65, EX_DATAERR: the input data was incorrect).
 */
export class DataError extends PipelineError {
  static override readonly exitCode: ExitCodeValue = ExitCode.data;
}

/** An external tool or service failed or answered something unusable (exit 1). */
export class ToolError extends PipelineError {
  static override readonly exitCode: ExitCodeValue = ExitCode.failure;
}

/** A subprocess failed: carries the command, exit code and the useful tail of its stderr. */
export class CommandError extends ToolError {
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

/** A host tool is not installed, or a service the command needs cannot be reached (exit 69). */
export class UnavailableError extends PipelineError {
  static override readonly exitCode: ExitCodeValue = ExitCode.unavailable;
}

export class ToolMissingError extends UnavailableError {
  constructor(tool: string, hint: string) {
    super(`required tool '${tool}' is not installed: ${hint} (see 'rock-image doctor')`);
  }
}
