// Shared set-up of the sensor-OS suites: the base, the registry with the service images, the
// test project, and builds made with the real CLI. Every piece is made once per test run (the
// base is cached across runs by its inputs) and shared by the suites of test/sensor/.
import { spawn } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { mountsUnder } from '../../pipeline/exec/losetup.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { makeKey, type TestKey } from '../world/gpg.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { type SensorArch, type SensorBase, sensorBase, TEST_REGISTRY_PORT } from '../world/sensor-base.ts';
import { pushServiceImages, sensorProject, serviceDigestFile } from '../world/sensor-project.ts';
import { needTool, shResult } from '../world/tools.ts';

/** This run's work directory; background builds (child processes) share their parent's. */
export const sensorWork =
  process.env.ROCK_TEST_SENSOR_WORK ?? join(repoRoot, '.cache', 'sensor', `run-${process.pid}`);
process.env.ROCK_TEST_SENSOR_WORK = sensorWork;
export const NAME = 'rocknsm-coreos';
export const OSNAME = 'rocknsm-coreos';

export const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: { CI: 'true', ...env } });

/** Where the service images are built; serviceDigestFile() of it holds the pushed index digest. */
const serviceImagesWork = () => join(sensorWork, 'service-images');
/** The digest every test service and agent image is pinned to (after serviceRegistry()). */
export function serviceDigest(): string {
  const file = serviceDigestFile(serviceImagesWork());
  if (!existsSync(file))
    throw new Error(`${file}: the service images are not pushed yet (serviceRegistry())`);
  return readFileSync(file, 'utf8').trim();
}

/**
 * The test world's release key, made once per run: every sensor project trusts it in place of
 * ours (publish.trust), and the tests sign the releases the sensors follow with it. Made by the
 * first serviceRegistry(), before the service images are pushed, so the build children (which
 * wait for that push) find it.
 */
export function releaseKey(): TestKey {
  const dir = join(sensorWork, 'release-key');
  const saved = join(dir, 'key.json');
  if (existsSync(saved)) return JSON.parse(readFileSync(saved, 'utf8')) as TestKey;
  const key = makeKey(dir, 'rocknsm-test-release', { expire: '1y' });
  writeFileSync(`${saved}.tmp`, JSON.stringify(key));
  renameSync(`${saved}.tmp`, saved);
  return key;
}

let registry: Promise<TestRegistry> | undefined;

/** The registry the guests pull service images from (10.0.2.2:TEST_REGISTRY_PORT), filled once. */
export function serviceRegistry(): Promise<TestRegistry> {
  registry ??= (async () => {
    for (const t of ['docker-registry', 'buildah']) needTool(t);
    releaseKey();
    const r = await startRegistry(join(sensorWork, 'registry'), undefined, undefined, {
      port: TEST_REGISTRY_PORT,
      auth: false,
    });
    pushServiceImages(r.host, serviceImagesWork());
    process.once('exit', () => void r.stop());
    return r;
  })();
  return registry;
}

const bases: Partial<Record<SensorArch, SensorBase>> = {};
export function base(arch: SensorArch): SensorBase {
  bases[arch] ??= sensorBase(arch);
  return bases[arch]!;
}

/** The project a build of `release` for `arch` is made from (sensorProject). */
export const projectOf = (arch: SensorArch, release: string) =>
  join(sensorWork, `project-${arch}-${release}`);

export interface Build {
  out: string;
  version: string;
  arch: SensorArch;
  dir: string;
  meta: { images: Record<string, { path: string; sha256: string }> } & Record<string, unknown>;
  /** Seconds the build took, and the base (0: cached), wherever it ran (this process or a child). */
  seconds: number;
  baseSeconds: number;
}

/**
 * `rock-image build` of the test project (site overlay release `release`) for one arch, with
 * `--artifacts` unless `artifacts` is false; built once per (arch, version).
 */
export function build(arch: SensorArch, version: string, release: string, artifacts = true): Build {
  const out = join(sensorWork, `out-${arch}-${version}`);
  const dir = join(out, 'builds', version, arch);
  const metaFile = join(dir, 'meta.json');
  const timesFile = join(out, 'seconds.json');
  if (!existsSync(metaFile)) {
    const project = sensorProject(projectOf(arch, release), release, serviceDigest(), {
      arch,
      releaseKey: releaseKey().publicKey,
    });
    mkdirSync(out, { recursive: true });
    const t = Date.now();
    const r = cli([
      '--project',
      project,
      'build',
      '--stream',
      'stable',
      '--arch',
      arch,
      '--base',
      `${arch}=${base(arch).ref}`,
      '--output',
      out,
      '--storage',
      join(sensorWork, `storage-${arch}`),
      '--version',
      version,
      ...(artifacts ? ['--artifacts', '--compression', 'zstd'] : []),
    ]);
    if (r.code !== 0) throw new Error(`build ${arch} ${version} failed:\n${r.stderr}`);
    const times = { seconds: (Date.now() - t) / 1000, baseSeconds: base(arch).seconds };
    writeFileSync(timesFile, JSON.stringify(times));
  }
  const times = JSON.parse(readFileSync(timesFile, 'utf8')) as { seconds: number; baseSeconds: number };
  return { out, version, arch, dir, meta: JSON.parse(readFileSync(metaFile, 'utf8')), ...times };
}

export interface BuildSpec {
  version: string;
  release: string;
  artifacts?: boolean;
  /** A `rock-image test` case the child runs on the build when it is made (see bootResult). */
  bootCase?: string;
}

/** `rock-image test --case` of a build, as a background child ran it. */
export interface BootResult {
  code: number;
  stderr: string;
  seconds: number;
}
export const bootResultFile = (b: Build, bootCase: string) => join(b.out, `test-${bootCase}.json`);
export const bootResult = (b: Build, bootCase: string): BootResult =>
  JSON.parse(readFileSync(bootResultFile(b, bootCase), 'utf8'));

/**
 * `build()` of each spec, in order, in a child process started now, so that slow work (the base
 * from Debian packages; aarch64 runs its package scripts, dracut and ostree under qemu-user)
 * overlaps the suites that run before the ones that need it. One promise per spec, resolved
 * with its build as soon as the child has done that spec (and its boot case); all reject with
 * the tail of the child's log when it fails. The child (its process group) is killed when this
 * process exits.
 */
export function backgroundBuilds(arch: SensorArch, specs: BuildSpec[]): Promise<Build>[] {
  mkdirSync(sensorWork, { recursive: true });
  const logFile = join(sensorWork, `background-${arch}.log`);
  const log = createWriteStream(logFile);
  const args = specs.map(
    (b) => `${b.version}:${b.release}:${b.artifacts === false ? 'no' : 'artifacts'}:${b.bootCase ?? ''}`,
  );
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', new URL('./build-child.ts', import.meta.url).pathname, arch, ...args],
    { cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', kill);
  const settle = specs.map(() => ({}) as { resolve: (b: Build) => void; reject: (e: Error) => void });
  const done = specs.map(
    (_, i) =>
      new Promise<Build>((resolve, reject) => {
        settle[i] = { resolve, reject };
      }),
  );
  const resolveSpec = (i: number) => {
    const b = specs[i]!;
    settle[i]!.resolve(build(arch, b.version, b.release, b.artifacts));
  };
  // The child prints `spec-done N` after each spec.
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^spec-done (\d+)$/.exec(line);
    if (m) resolveSpec(Number(m[1]));
  });
  const fail = (err: Error) => {
    for (const s of settle) s.reject(err);
  };
  child.on('error', fail);
  child.on('close', (code) => {
    process.removeListener('exit', kill);
    if (code === 0) return;
    const tail = readFileSync(logFile, 'utf8').slice(-4000);
    fail(new Error(`background builds for ${arch} exited ${code} (${logFile}):\n${tail}`));
  });
  // Awaited by the suites' set-up; until then a failure must not count as unhandled.
  for (const d of done) d.catch(() => {});
  return done;
}

/** The x86_64 builds the lifecycle and chain suites share: V1 with artifacts, V2 (its update). */
export const V1 = '13.20261130.3.0';
export const V2 = '13.20261130.3.1';
let x86: Promise<Build>[] | undefined;
/** [V1, V2, V1 after `rock-image test --case metal-bios`] */
export const x86Builds = () =>
  (x86 ??= backgroundBuilds('x86_64', [
    { version: V1, release: 'release-1' },
    { version: V2, release: 'release-2', artifacts: false },
    { version: V1, release: 'release-1', bootCase: 'metal-bios' },
  ]));

/** Work directories of earlier runs whose process is gone (they hold disks and storage). */
function pruneEarlierRuns(): void {
  const dir = join(repoRoot, '.cache', 'sensor');
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const pid = Number(/^run-(\d+)$/.exec(name)?.[1]);
    if (!pid || join(dir, name) === sensorWork || mountsUnder(join(dir, name)).length > 0) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
}
pruneEarlierRuns();
