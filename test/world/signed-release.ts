// A signed release in a real registry, as sensors see it: tiny one-layer OCI images per arch (what
// a build's .ociarchive is), a project copy whose stream publishes to a test registry and trusts
// given keys, and the trust files a sensor of that project gets (policy.json, registries.d, key
// ring) taken out of the Ignition config the real `rock-image ignition` renders.
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as assert from 'uvu/assert';
import type { Arch } from '../../pipeline/config/index.ts';
import type { ArchImage } from '../../pipeline/publish/images.ts';
import { repoRoot } from './fcos-base.ts';
import { followRegistry } from './project.ts';
import { sh, shResult } from './tools.ts';

const ociArch = { x86_64: 'amd64', aarch64: 'arm64' } as const;
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A reproducible tar of the tree `src` (sorted, mtime 0, owned by root) at `out`. */
const tarTree = (src: string, out: string) =>
  sh('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-cf', out, '-C', src, '.']);

/**
 * A one-layer OCI image for `arch` as an oci-archive under `work/images/<arch>` (what a build's
 * .ociarchive is); `osRelease` goes into its os-release, so two calls can make two images. With
 * `baseBytes`, a first layer of that many bytes comes before it, the same for every call (a base
 * two versions share). `version` is its org.opencontainers.image.version label, as a build sets it.
 */
export function tinyImage(
  work: string,
  arch: Arch,
  opts: { osRelease?: string; baseBytes?: number; version?: string } = {},
): ArchImage {
  const { osRelease = '', baseBytes = 0, version } = opts;
  const dir = join(work, 'images', arch);
  const blobs = join(dir, 'layout', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  mkdirSync(join(dir, 'root', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'root', 'etc', 'os-release'), `ID=rocknsm-test\nARCH=${arch}\n${osRelease}`);
  tarTree(join(dir, 'root'), join(dir, 'layer.tar'));
  const blob = (bytes: Buffer | string) => {
    const d = sha256(bytes);
    writeFileSync(join(blobs, d.slice(7)), bytes);
    return { digest: d, size: Buffer.byteLength(bytes) };
  };
  const layers = [];
  if (baseBytes) {
    mkdirSync(join(dir, 'base', 'usr', 'lib'), { recursive: true });
    writeFileSync(join(dir, 'base', 'usr', 'lib', 'base.bin'), Buffer.alloc(baseBytes, `base ${arch}\n`));
    const tar = join(dir, 'base.tar');
    tarTree(join(dir, 'base'), tar);
    layers.push(blob(readFileSync(tar)));
  }
  layers.push(blob(readFileSync(join(dir, 'layer.tar'))));
  const config = blob(
    JSON.stringify({
      architecture: ociArch[arch],
      os: 'linux',
      config: version ? { Labels: { 'org.opencontainers.image.version': version } } : {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    }),
  );
  writeFileSync(join(dir, 'layout', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'layout', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  const archive = join(dir, `${arch}.ociarchive`);
  sh('tar', ['-cf', archive, '-C', join(dir, 'layout'), '.']);
  return { arch, archive, digest: manifest.digest };
}

/**
 * A project copy in `dir`: stable publishes to `repo` (host/path), trusting `keyFiles` (armored
 * public keys) with signatures at `lookaside`; a profile follows it.
 */
export function signedProject(dir: string, repo: string, keyFiles: string[], lookaside: string): string {
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true });
  const names = keyFiles.map((f, i) => {
    cpSync(f, join(dir, 'manifests/keys', `key-${i}.asc`));
    return `manifests/keys/key-${i}.asc`;
  });
  const stream = join(dir, 'manifests/streams/stable.yaml');
  const text = readFileSync(stream, 'utf8').replace(/^publish:\n( {2}.*\n)*/m, '');
  writeFileSync(
    stream,
    `${text}publish:\n  registry: ${repo}\n  trust:\n    gpg-key: [${names.join(', ')}]\n    lookaside: ${lookaside}\n`,
  );
  followRegistry(dir, repo, ['stable']);
  return dir;
}

/**
 * Renders the default profile of `projectDir` with the real CLI and writes the trust files its
 * Ignition config holds under `root`; returns the policy (keyPath moved under root, as skopeo has
 * no --root) and registries.d paths. Asserts the policy trusts `repo` by one signedBy entry.
 */
export function sensorTrust(
  projectDir: string,
  root: string,
  repo: string,
): { policy: string; registriesD: string } {
  const ign = join(root, 'config.ign');
  mkdirSync(root, { recursive: true });
  const r = shResult(process.execPath, [
    join(repoRoot, 'bin/rock-image.js'),
    'ignition',
    '--project',
    projectDir,
    '--profile',
    'default',
    '--ssh-key',
    join(repoRoot, 'test/fixtures/profiles/test-keys.pub'),
    '--output',
    ign,
    '--validate',
  ]);
  assert.is(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(ign, 'utf8')) as {
    storage: { files: { path: string; contents: { source: string } }[] };
  };
  const trust = cfg.storage.files.filter((f) => /^\/etc\/(containers|pki\/containers)\//.test(f.path));
  assert.equal(trust.map((f) => f.path).sort(), [
    '/etc/containers/policy.json',
    '/etc/containers/registries.d/rocknsm-coreos.yaml',
    '/etc/pki/containers/rocknsm-coreos.gpg',
  ]);
  for (const f of trust) {
    const m = /^data:([^,]*),(.*)$/s.exec(f.contents.source)!;
    const bytes = m[1]!.endsWith(';base64')
      ? Buffer.from(m[2]!, 'base64')
      : Buffer.from(decodeURIComponent(m[2]!));
    mkdirSync(dirname(join(root, f.path)), { recursive: true });
    writeFileSync(join(root, f.path), bytes);
  }
  const policy = JSON.parse(readFileSync(join(root, 'etc/containers/policy.json'), 'utf8'));
  const ours = policy.transports.docker[repo];
  // One requirement: any key in the ring (formats.md §9; two would be ANDed).
  assert.equal(ours, [
    { type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/pki/containers/rocknsm-coreos.gpg' },
  ]);
  ours[0].keyPath = join(root, ours[0].keyPath);
  writeFileSync(join(root, 'policy.json'), JSON.stringify(policy));
  return { policy: join(root, 'policy.json'), registriesD: join(root, 'etc/containers/registries.d') };
}
