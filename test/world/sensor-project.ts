// The project the sensor tests build: this repository's manifests, overlays and Containerfile,
// with what a test site changes and nothing else:
// - the stable stream's service images point at small local images in the tests' registry (the
//   stream's own `services` overrides), and so do the agents' (image.yaml); the stream requires
//   pins, and manifests/image-pins.json pins every one of them to the index digest the push
//   reported, as `rock-image pin` would (the guests' registry address, 10.0.2.2, is not the
//   host's), so the image's quadlets run them by digest and bound-images.d links them;
// - the stream makes metal and qemu disks, zstd-compressed (quick to make here), with one karg of
//   its own (see below: a length that Debian GRUB 2.14's blscfg reads right);
// - one site overlay, 90sensor-site: the monitor interface set in /etc/rocknsm/rocknsm.env (Zeek
//   and Suricata do not start without it), a release file, the "one overlay changed" of the
//   update test, and a systemd drop-in that lets device waits last as long as TCG needs.
// The service images: busybox with an entrypoint that prints its arguments and sleeps, one OCI
// index per name with linux/amd64 and linux/arm64, pushed to the registry the guests reach.
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { IMAGE_PINS_FILE } from '../../pipeline/plan/image-pins.ts';
import { busybox, repoRoot } from './fcos-base.ts';
import { pushManifestList } from './registry.ts';
import { GUEST_REGISTRY } from './sensor-base.ts';
import { needTool, sh } from './tools.ts';

export const SERVICES = [
  'zeek',
  'suricata',
  'stenographer',
  'fsf',
  'kafka',
  'elasticsearch',
  'docket',
] as const;
export const AGENTS = ['qemu-guest-agent', 'open-vm-tools'] as const;
export const MONITOR_INTERFACE = 'test0';

/** The reference a guest pulls for a service or agent. */
export const serviceImage = (name: string) => `${GUEST_REGISTRY}/rocknsm-test/${name}:1`;

/** Where pushServiceImages records the digest of the index it pushed under every name. */
export const serviceDigestFile = (work: string) => join(work, 'index-digest');

/** What a sensor-world project may change beyond the defaults (the tests without QEMU use none). */
export interface SensorProjectOptions {
  /** The one arch the stream lists (a site's project for that arch; its release has no other). */
  arch?: 'x86_64' | 'aarch64';
  /**
   * The binary public key of the test world's release key, in place of ours: the images the
   * sensor follows must be signed by it (publish.trust), and only the tests hold its secret half.
   */
  releaseKey?: string;
}

/**
 * Writes the test project into `dir` (recreated) with the site overlay's release text, every
 * service and agent image pinned to `serviceDigest` (the pushed index's).
 */
export function sensorProject(
  dir: string,
  release: string,
  serviceDigest: string,
  opts: SensorProjectOptions = {},
): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(serviceDigest)) throw new Error(`not a digest: '${serviceDigest}'`);
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(dir, 'package.json'), readFileSync(join(repoRoot, 'package.json')));

  const imageFile = join(dir, 'manifests/image.yaml');
  const image = parseDocument(readFileSync(imageFile, 'utf8'));
  for (const a of AGENTS) image.setIn(['agents', a, 'image'], serviceImage(a));
  image.setIn(
    ['overlays'],
    [...(image.getIn(['overlays']) as { toJSON(): string[] }).toJSON(), '90sensor-site'],
  );
  writeFileSync(imageFile, image.toString());

  const streamFile = join(dir, 'manifests/streams/stable.yaml');
  const stream = parseDocument(readFileSync(streamFile, 'utf8'));
  for (const s of SERVICES) stream.setIn(['services', s, 'image'], serviceImage(s));
  stream.setIn(['artifacts'], ['ostree', 'metal', 'qemu']);
  stream.setIn(['require-pins'], true);
  if (opts.arch) stream.setIn(['arches'], [opts.arch]);
  if (opts.releaseKey) {
    const keyFile = stream.getIn(['publish', 'trust', 'gpg-key']);
    if (typeof keyFile !== 'string') throw new Error(`${streamFile}: publish.trust.gpg-key is not one file`);
    cpSync(opts.releaseKey, join(dir, keyFile));
  }
  // The test world makes its disks with the native backend (Debian; publish would need
  // allow-native-disks: true). Its builds pass --compression zstd (test/sensor/world.ts).
  stream.setIn(['artifact-backend'], 'native');
  // One karg of the test world's own, for the length of the BLS options line only. Debian's GRUB
  // 2.14 (the test base's; Fedora CoreOS's GRUB has its own blscfg) writes one byte past the
  // command it builds from a BLS entry: bls_get_linux allocates "linux " + path + options + 1 and
  // writes a space, a newline and a NUL besides (grub-core/commands/blsuki.c:811-857 @grub-2.14).
  // On i386-pc, when that size is a multiple of 16, the NUL lands on the next heap block's header
  // and the initrd command comes out as garbage ("can't find command `@??'", then a kernel panic
  // with no initramfs). The sensor's entries, once the first boot has appended root= and boot=,
  // were exactly 432 bytes; this makes them 452.
  stream.setIn(['kargs'], [{ kargs: ['rocknsm.testworld=1'] }]);
  writeFileSync(streamFile, stream.toString());
  const pins = Object.fromEntries(
    [...SERVICES, ...AGENTS].map((n) => [serviceImage(n), { digest: serviceDigest, resolved: '2026-11-30' }]),
  );
  writeFileSync(join(dir, IMAGE_PINS_FILE), `${JSON.stringify({ images: pins }, null, 2)}\n`);

  const site = join(dir, 'overlays/90sensor-site');
  mkdirSync(join(site, 'etc/rocknsm'), { recursive: true });
  mkdirSync(join(site, 'usr/share/rocknsm-test'), { recursive: true });
  const env = readFileSync(join(repoRoot, 'overlays/40services/etc/rocknsm/rocknsm.env'), 'utf8');
  if (!/^ROCKNSM_MONITOR_INTERFACE=$/m.test(env))
    throw new Error('rocknsm.env has no empty ROCKNSM_MONITOR_INTERFACE=');
  writeFileSync(
    join(site, 'etc/rocknsm/rocknsm.env'),
    env.replace(/^ROCKNSM_MONITOR_INTERFACE=$/m, `ROCKNSM_MONITOR_INTERFACE=${MONITOR_INTERFACE}`),
  );
  writeFileSync(join(site, 'usr/share/rocknsm-test/release'), `${release}\n`);
  // Device waits as long as TCG under load needs. After switch-root the initramfs's udev database
  // is gone (initrd-udevadm-cleanup-db), so the data partitions' by-partlabel links come back only
  // with the real root's coldplug; with two QEMUs and the other suites on two cores that took 62 s
  // of systemd's 90 s default here and over 90 s on CI's machine, where the update boot went to
  // emergency mode (local-fs.target failed). A drop-in, not a karg: the BLS options line length is
  // held where Debian's GRUB is safe (above). DefaultDeviceTimeoutSec= is systemd 257's (the test
  // base's) systemd-system.conf key.
  mkdirSync(join(site, 'usr/lib/systemd/system.conf.d'), { recursive: true });
  writeFileSync(
    join(site, 'usr/lib/systemd/system.conf.d/90-rocknsm-testworld.conf'),
    '# RockNSM test world (TCG): slow coldplug under load.\n[Manager]\nDefaultDeviceTimeoutSec=600\n',
  );
  return dir;
}

const entrypoint = `#!/bin/sh
# RockNSM test world: stands in for a sensor service. Prints what it was started with and runs
# until stopped.
echo "rocknsm-test-service $(hostname) started: $*"
trap 'echo "rocknsm-test-service stopping"; exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
`;

/**
 * Builds the service image for both arches and pushes it, as an OCI index, under every service
 * and agent name to the registry at `host` (127.0.0.1:PORT, plain HTTP). Returns the index's
 * digest (one for every name) and writes it to serviceDigestFile(work) once all are pushed.
 */
export function pushServiceImages(host: string, work: string): string {
  needTool('buildah');
  rmSync(work, { recursive: true, force: true });
  const g = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  const images: string[] = [];
  for (const [arch, oci] of [
    ['x86_64', 'amd64'],
    ['aarch64', 'arm64'],
  ] as const) {
    const root = join(work, `rootfs-${arch}`);
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    cpSync(busybox(arch), join(root, 'bin/busybox'));
    for (const a of ['sh', 'sleep', 'echo', 'hostname', 'cat', 'ls'])
      sh('ln', ['-s', 'busybox', join(root, 'bin', a)]);
    writeFileSync(join(root, 'usr/local/bin/rocknsm-test-service'), entrypoint, { mode: 0o755 });
    const ctr = sh('buildah', [...g, 'from', 'scratch']).trim();
    sh('buildah', [...g, 'add', ctr, `${root}/`, '/']);
    sh('buildah', [
      ...g,
      'config',
      '--arch',
      oci,
      '--os',
      'linux',
      '--env',
      'PATH=/bin:/usr/local/bin',
      '--entrypoint',
      '["/usr/local/bin/rocknsm-test-service"]',
      ctr,
    ]);
    const tag = `localhost/rocknsm-test-service:${oci}`;
    sh('buildah', [...g, 'commit', '--timestamp', '1764460800', ctr, tag]);
    images.push(tag);
  }
  sh('buildah', [...g, 'manifest', 'create', 'localhost/rocknsm-test-service:index', ...images]);
  const digests = new Set<string>();
  for (const name of [...SERVICES, ...AGENTS]) {
    digests.add(
      pushManifestList(
        g,
        'localhost/rocknsm-test-service:index',
        `docker://${host}/rocknsm-test/${name}:1`,
        join(work, `digest-${name}`),
      ),
    );
  }
  if (digests.size !== 1) throw new Error(`one index pushed with several digests: ${[...digests].join(' ')}`);
  const [digest] = [...digests];
  writeFileSync(`${serviceDigestFile(work)}.tmp`, `${digest}\n`);
  renameSync(`${serviceDigestFile(work)}.tmp`, serviceDigestFile(work));
  return digest!;
}
