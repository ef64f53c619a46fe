// A real registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with
// htpasswd auth, its own storage directory, stoppable and restartable on the same port and data
// (for fault injection).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { needTool, sh } from './tools.ts';

export interface TestRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  user: string;
  password: string;
  /** containers-auth.json with the credentials. */
  authFile: string;
  /** Stops the registry process (its data stays). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  readonly running: boolean;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUp(host: string, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${log()}`);
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.status === 401 || r.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry on ${host} did not come up: ${log()}`);
}

/**
 * Starts a registry under `dir`; call stop() when done. By default on a free port with htpasswd
 * auth; `opts.port` fixes the port, `opts.auth: false` serves without credentials (what the
 * sensor VMs pull service images from).
 */
export async function startRegistry(
  dir: string,
  user = 'rock',
  password = 'sensor-pass-1',
  opts: { port?: number; auth?: boolean } = {},
): Promise<TestRegistry> {
  needTool('docker-registry');
  needTool('htpasswd');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const port = opts.port ?? (await freePort());
  const auth = opts.auth ?? true;
  const host = `127.0.0.1:${port}`;
  writeFileSync(join(dir, 'htpasswd'), sh('htpasswd', ['-Bbn', user, password]));
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: warn, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
      `http: {addr: "${host}", secret: test-secret}`,
      ...(auth ? [`auth: {htpasswd: {realm: rock-test, path: ${join(dir, 'htpasswd')}}}`] : []),
      '',
    ].join('\n'),
  );
  const authFile = join(dir, 'auth.json');
  writeFileSync(
    authFile,
    JSON.stringify({
      auths: auth ? { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } : {},
    }),
  );
  let proc: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) return;
    output = '';
    const p = spawn('docker-registry', ['serve', join(dir, 'config.yml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout?.on('data', (d) => (output += d));
    p.stderr?.on('data', (d) => (output += d));
    proc = p;
    await waitUp(host, p, () => output.slice(-2000));
  };
  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  await start();
  return {
    host,
    port,
    user,
    password,
    authFile,
    stop,
    start,
    get running() {
      return Boolean(proc && proc.exitCode === null && proc.signalCode === null);
    },
  };
}

/**
 * Pushes the local manifest list `list` (in the buildah storage that `storage` names: --root,
 * --runroot, --storage-driver) with every image it lists to `dest`, a docker:// reference on a test
 * registry (plain HTTP), as an OCI index; returns the index digest the registry stored, read from
 * `digestFile`. Flags: buildah-manifest-push(1), /usr/share/doc/buildah/buildah-manifest-push.1.md
 * lines 21 (--all), 42 (--digestfile), 46 (--format), 66 (--tls-verify), Debian buildah 1.28.2.
 */
export function pushManifestList(storage: string[], list: string, dest: string, digestFile: string): string {
  sh('buildah', [
    ...storage,
    'manifest',
    'push',
    '--all',
    '--format',
    'oci',
    '--tls-verify=false',
    '--digestfile',
    digestFile,
    list,
    dest,
  ]);
  return readFileSync(digestFile, 'utf8').trim();
}
