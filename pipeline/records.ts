// The build records: DIR/builds/<version>/<arch>/meta.json (one build, one arch) and
// DIR/builds/builds.json (every build, newest first). This module is the only one that reads or
// writes them: every record is checked against its JSON Schema (records/schema/) on the way in and
// out, writes are atomic with fsync, and a writer holds a lock file next to the record, so two
// writers of one record (two arches' artifacts in one process, CI legs sharing a directory) never
// lose each other's update.
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { DataError, PipelineError } from './errors.ts';
import { writeAtomic } from './files.ts';
import type { Signing } from './plan/trust.ts';
import { compareVersions } from './plan/version.ts';

/** One meta.json `images.<key>` entry (coreos-assembler's artifact). */
export interface ImageEntry {
  path: string;
  sha256: string;
  size: number;
  'skip-compression'?: boolean;
  'uncompressed-sha256'?: string;
  'uncompressed-size'?: number;
}

/** meta.json as records/schema/meta.schema.json describes it. */
export type BuildMeta = {
  name?: string;
  buildid: string;
  'ostree-version'?: string;
  'ostree-timestamp'?: string;
  'ostree-commit'?: string;
  'coreos-assembler.basearch': string;
  'coreos-assembler.build-timestamp'?: string;
  images: Record<string, ImageEntry>;
  'base-oscontainer'?: {
    image: string;
    digest?: string;
    'manifest-list-digest'?: string;
    tags?: string[];
    comment?: string;
  };
  'rocknsm.stream'?: string;
  'rocknsm.input-hash'?: string;
  'rocknsm.image-digest'?: string;
  'rocknsm.image-config'?: string;
  'rocknsm.labels'?: Record<string, string>;
  'rocknsm.containerfile'?: string;
  /** How the stream's published images are signed (plan/trust.ts signingOf). */
  'rocknsm.signing'?: Signing;
  /** Service and agent images (`service/<name>`, `agent/<name>`): reference, quadlet image, digest. */
  'rocknsm.images'?: Record<string, { ref: string; image: string; digest?: string }>;
  'rocknsm.artifacts'?: { backend?: string; compression?: string; platforms?: string[] };
  'rocknsm.artifact-backends'?: Record<string, string>;
  'rocknsm.boot-tests'?: Record<string, { result: string; [k: string]: unknown }>;
};

/** builds.json as records/schema/builds.schema.json describes it. */
export interface BuildsJson {
  'schema-version': string;
  builds: { id: string; arches: string[] }[];
  /** When the list last changed; every writer here sets it. */
  timestamp?: string;
}

export type RecordKind = 'meta' | 'builds';

let validators: Record<RecordKind, ValidateFunction> | undefined;

function validator(kind: RecordKind): ValidateFunction {
  if (!validators) {
    const ajv = new Ajv({ strict: true, allErrors: true });
    const load = (k: RecordKind) =>
      ajv.compile(
        JSON.parse(readFileSync(new URL(`./records/schema/${k}.schema.json`, import.meta.url), 'utf8')),
      );
    validators = { meta: load('meta'), builds: load('builds') };
  }
  return validators[kind];
}

/** Problems of `doc` against the schema of `kind`, as `<pointer>: <rule>: <message>`; [] when valid. */
export function recordProblems(kind: RecordKind, doc: unknown): string[] {
  const v = validator(kind);
  if (v(doc)) return [];
  return (v.errors ?? []).map((e) => {
    const extra =
      e.keyword === 'additionalProperties'
        ? ` '${(e.params as { additionalProperty: string }).additionalProperty}'`
        : '';
    return `${e.instancePath || '/'}: ${e.keyword}: ${e.message}${extra}`;
  });
}

/** Throws a data error (exit 65) naming the file and every broken rule. */
function check<T>(kind: RecordKind, file: string, doc: unknown): T {
  const errs = recordProblems(kind, doc);
  if (errs.length)
    throw new DataError(
      `${file}: not a valid ${kind === 'meta' ? 'meta.json' : 'builds.json'} (records/schema/${kind}.schema.json):\n  ${errs.join('\n  ')}`,
    );
  return doc as T;
}

function parse(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DataError(`${file}: not JSON: ${(err as Error).message}`);
  }
}

export const metaPath = (buildsDir: string, id: string, arch: string): string =>
  join(buildsDir, id, arch, 'meta.json');
export const buildsPath = (buildsDir: string): string => join(buildsDir, 'builds.json');

/** Reads and checks one meta.json. */
export function readMetaFile(file: string): BuildMeta {
  return check<BuildMeta>('meta', file, parse(file));
}

/** Reads `<buildsDir>/<id>/<arch>/meta.json`, or undefined when that arch has none. */
export function readMeta(buildsDir: string, id: string, arch: string): BuildMeta | undefined {
  const file = metaPath(buildsDir, id, arch);
  return existsSync(file) ? readMetaFile(file) : undefined;
}

const emptyBuilds = (): BuildsJson => ({ 'schema-version': '1.0.0', builds: [], timestamp: '' });

/** Reads and checks `<buildsDir>/builds.json`; an empty list when there is none. */
export function readBuilds(buildsDir: string): BuildsJson {
  const file = buildsPath(buildsDir);
  return existsSync(file) ? check<BuildsJson>('builds', file, parse(file)) : emptyBuilds();
}

const json = (doc: unknown) => `${JSON.stringify(doc, null, 2)}\n`;

/**
 * Adds one build (id + arches) to a builds.json: the union of the arches already listed and the
 * new ones (a build of one arch never drops another arch's record), newest first by version order.
 */
export function addBuild(
  doc: BuildsJson,
  id: string,
  arches: readonly string[],
  timestamp: string,
): BuildsJson {
  const old = doc.builds.find((b) => b.id === id);
  const merged = [...new Set([...(old?.arches ?? []), ...arches])].sort();
  const builds = [...doc.builds.filter((b) => b.id !== id), { id, arches: merged }].sort((x, y) =>
    compareVersions(y.id, x.id),
  );
  return { 'schema-version': '1.0.0', builds, timestamp };
}

// --- Locking --------------------------------------------------------------------------------

export interface LockOptions {
  /** How long to wait for another writer, in ms (default 60 s). */
  timeoutMs?: number;
  /** Poll interval while waiting, in ms. */
  pollMs?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
const DEFAULT_LOCK_POLL_MS = 25;

export const lockPath = (file: string): string => `${file}.lock`;

interface Holder {
  pid: number;
  host: string;
}

function readHolder(lock: string): Holder | undefined {
  try {
    const [pid, host] = readFileSync(lock, 'utf8').split('\n');
    return { pid: Number(pid), host: host ?? '' };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One attempt: true when the lock is now ours. A lock left by a dead process on this host is removed. */
function tryLock(lock: string): boolean {
  try {
    const fd = openSync(lock, 'wx', 0o644);
    try {
      writeSync(fd, `${process.pid}\n${hostname()}\n`);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const h = readHolder(lock);
  if (h && h.host === hostname() && Number.isInteger(h.pid) && h.pid > 0 && !alive(h.pid)) {
    // Stale: its writer died. Removing it is safe only while it still names the dead holder.
    const again = readHolder(lock);
    if (again && again.pid === h.pid) rmSync(lock, { force: true });
  }
  return false;
}

function timeoutError(file: string, lock: string, waited: number): PipelineError {
  const h = readHolder(lock);
  const who = h ? `process ${h.pid} on ${h.host || 'an unknown host'}` : 'another writer';
  return new PipelineError(
    `${file}: locked by ${who} (${lock}) for ${waited} ms; another rock-image is writing this record. Wait for it, or remove ${lock} if that process is gone`,
  );
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding `file`'s lock (blocking wait). */
export function withLockSync<T>(file: string, fn: () => T, opts: LockOptions = {}): T {
  const lock = lockPath(file);
  const timeout = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const start = Date.now();
  while (!tryLock(lock)) {
    if (Date.now() - start >= timeout) throw timeoutError(file, lock, Date.now() - start);
    sleepSync(opts.pollMs ?? DEFAULT_LOCK_POLL_MS);
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Runs `fn` holding `file`'s lock; waits without blocking the event loop. */
export async function withLock<T>(
  file: string,
  fn: () => T | Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const lock = lockPath(file);
  const timeout = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const start = Date.now();
  while (!tryLock(lock)) {
    if (Date.now() - start >= timeout) throw timeoutError(file, lock, Date.now() - start);
    await sleep(opts.pollMs ?? DEFAULT_LOCK_POLL_MS);
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

// --- Writing --------------------------------------------------------------------------------

/** Writes a new meta.json (checked, atomic, under its lock). */
export function writeMeta(file: string, meta: BuildMeta, opts?: LockOptions): void {
  check<BuildMeta>('meta', file, meta);
  withLockSync(file, () => writeAtomic(file, json(meta)), opts);
}

/**
 * Read-modify-write of an existing meta.json under its lock: `fn` gets the current record and
 * returns the new one; both are checked. Returns what was written.
 */
export async function updateMeta(
  file: string,
  fn: (meta: BuildMeta) => BuildMeta,
  opts?: LockOptions,
): Promise<BuildMeta> {
  return withLock(
    file,
    () => {
      const next = check<BuildMeta>('meta', file, fn(readMetaFile(file)));
      writeAtomic(file, json(next));
      return next;
    },
    opts,
  );
}

/** Read-modify-write of `<buildsDir>/builds.json` under its lock (an empty list when absent). */
export function updateBuilds(
  buildsDir: string,
  fn: (doc: BuildsJson) => BuildsJson,
  opts?: LockOptions,
): BuildsJson {
  const file = buildsPath(buildsDir);
  return withLockSync(
    file,
    () => {
      const next = check<BuildsJson>('builds', file, fn(readBuilds(buildsDir)));
      writeAtomic(file, json(next));
      return next;
    },
    opts,
  );
}
