// The bootable sensor-OS base of the test world: a Fedora CoreOS-shaped OS built from Debian
// packages, whose own initramfs, ostree, systemd, Ignition, podman and GRUB really run when a
// test boots an image derived from it. Cached in .cache/sensor-base by a hash of its inputs
// (package lists, suites, the stand-in tree under sensor-base/rootfs/, this recipe).
//
// Where it comes from (test/world/README.md has the why):
// - Debian 13 (trixie) for the OS: kernel 6.12, systemd 257, dracut 106, Ignition 2.14 and its
//   dracut module, podman 5.4 (quadlet), xfsprogs, e2fsprogs, policycoreutils and Debian's
//   SELinux reference policy (ostree labels /etc with it, Ignition relabels with setfiles);
// - Debian forky for two things trixie lacks: ostree 2026.4 with composefs (trixie's 2025.2 is
//   built without it: `ostree --version` lists no `composefs`, and deploying a commit whose
//   prepare-root.conf enables composefs fails with "composefs: enabled at runtime, but support
//   is not compiled in"), and GRUB 2.14, whose `blscfg` command (blsuki module) reads ostree's
//   BLS entries on every boot as Fedora CoreOS's GRUB does.
// Shaped like Fedora CoreOS: kernel and initramfs in /usr/lib/modules/<kver>/, no /boot
// content, an initramfs with the ostree module (as rpm-ostree builds FCOS's), no dracut.conf.d
// that adds that module (Debian's ostree-boot ships /etc/dracut.conf.d/ostree.conf; Fedora's
// does not), Ignition base configs read only from the initramfs, /home, /root, /srv, /opt,
// /mnt, /usr/local as links into /var, os-release with VARIANT_ID=coreos and OSTREE_VERSION,
// the bootc/ostree labels, and the FCOS first-boot stand-ins of sensor-base/rootfs/.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { mountsUnder } from '../../pipeline/exec/losetup.ts';
import { needTool, sh } from './tools.ts';

export type SensorArch = 'x86_64' | 'aarch64';
const debArch = { x86_64: 'amd64', aarch64: 'arm64' } as const;

/**
 * Where built bases are kept: outside the checkout by default, like a package manager's cache, so
 * that a new checkout on the same machine reuses them (the aarch64 base costs half an hour of
 * qemu-user); ROCK_TEST_SENSOR_BASE_CACHE overrides it (GitHub's CI caches it in the workspace).
 * The file names carry the hash of every input, so a changed recipe never reuses an old base.
 */
export const sensorBaseCache =
  process.env.ROCK_TEST_SENSOR_BASE_CACHE ?? join(homedir(), '.cache', 'rocknsm-test', 'sensor-base');
const standinTree = new URL('./sensor-base/rootfs', import.meta.url).pathname;
/** apt pins: trixie, but ostree and GRUB (and what they need) from forky. */
const aptPreferences = new URL('./sensor-base/apt-preferences', import.meta.url).pathname;
/** The stand-in SELinux policy (see the file). */
const selinuxPolicy = new URL('./sensor-base/selinux/standin.cil', import.meta.url).pathname;

/** The Debian mirror (the one our machines and CI reach); ROCK_TEST_DEBIAN_MIRROR overrides it. */
export const debianMirror = () => process.env.ROCK_TEST_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

/** Where the tests' registry listens on the host, and the name the guests use for it (QEMU's
 * user network makes the host 10.0.2.2). The base marks it insecure (plain HTTP). */
export const TEST_REGISTRY_PORT = 29817;
export const GUEST_REGISTRY = `10.0.2.2:${TEST_REGISTRY_PORT}`;

/** The base's version (os-release OSTREE_VERSION and the image labels). */
export const SENSOR_BASE_VERSION = '13.20261130.3.0';

const packages = {
  common: [
    'systemd',
    'systemd-sysv',
    'udev',
    'dbus',
    'dracut',
    // Ignition's dracut module needs network and url-lib (dracut-network, curl).
    'dracut-network',
    'curl',
    'zstd',
    'ignition',
    'podman',
    'xfsprogs',
    'e2fsprogs',
    'util-linux',
    'gdisk',
    'kmod',
    'iproute2',
    'policycoreutils',
    // ostree runs `semodule --refresh` in bubblewrap when it finalizes a staged deployment.
    'bubblewrap',
    'openssh-server',
    'sudo',
    'ostree',
    'ostree-boot',
    'grub2-common',
  ],
  x86_64: ['linux-image-amd64', 'grub-pc-bin', 'grub-efi-amd64-bin'],
  aarch64: ['linux-image-arm64', 'grub-efi-arm64-bin'],
} as const;

/** Units the base enables (systemctl --root). */
const enabledUnits = ['systemd-networkd.service', 'ssh.service', 'fcos-standin-firstboot-complete.service'];

/** Files of the stand-in tree with their modes and contents: part of the cache key. */
function treeDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      h.update(`${relative(dir, p)}\0${st.mode.toString(8)}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

function osRelease(): string {
  return [
    'NAME="Debian GNU/Linux"',
    `VERSION="${SENSOR_BASE_VERSION} (CoreOS-shaped test base)"`,
    'ID=debian',
    'VERSION_ID=13',
    'VERSION_CODENAME=trixie',
    `PRETTY_NAME="Debian CoreOS-shaped test base ${SENSOR_BASE_VERSION}"`,
    'HOME_URL="https://github.com/rocknsm/rocknsm-coreos/blob/main/test/world/README.md"',
    'VARIANT="CoreOS"',
    'VARIANT_ID=coreos',
    `OSTREE_VERSION='${SENSOR_BASE_VERSION}'`,
    '',
  ].join('\n');
}

const registryConf = `# Test world: the registry the tests run on the host, reached through QEMU's user network.
[[registry]]
location = "${GUEST_REGISTRY}"
insecure = true
`;

const prepareRoot = `# Test base: composefs on, as on Fedora CoreOS (F41 change "composefs by default").
[composefs]
enabled = true
`;

export interface SensorBase {
  /** oci-archive: reference. */
  ref: string;
  arch: SensorArch;
  kver: string;
  /** Cache key of the inputs. */
  key: string;
  /** Package versions (dpkg-query) of the base. */
  versions: string;
  /** Seconds this call spent building (0: from the cache). */
  seconds: number;
}

function recipeKey(arch: SensorArch): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        arch,
        packages: [...packages.common, ...packages[arch]],
        mirror: debianMirror(),
        units: enabledUnits,
        osRelease: osRelease(),
        registryConf,
        prepareRoot,
        // This module's own source: how the tree is made and shaped.
        recipe: readFileSync(new URL(import.meta.url), 'utf8'),
        tree: treeDigest(standinTree),
        aptPreferences: readFileSync(aptPreferences, 'utf8'),
        selinuxPolicy: readFileSync(selinuxPolicy, 'utf8'),
      }),
    )
    .digest('hex')
    .slice(0, 16);
}

const dracutAside = '/usr/bin/dracut.rocknsm-aside';

/** mmdebstrap of trixie (+ the forky packages), without Debian's own initramfs hook. */
function buildRootfs(arch: SensorArch, rootfs: string): void {
  const mirror = debianMirror();
  sh(
    'mmdebstrap',
    [
      '--variant=apt',
      '--mode=root',
      '--format=directory',
      `--architectures=${debArch[arch]}`,
      '--aptopt=Acquire::Check-Valid-Until "false"',
      '--aptopt=APT::Install-Recommends "false"',
      `--setup-hook=mkdir -p "$1/etc/apt/preferences.d" && cp ${aptPreferences} "$1/etc/apt/preferences.d/rocknsm-test-base"`,
      // Debian's kernel hook and dracut's trigger would build a host-only initramfs now (the hook
      // does nothing while /usr/bin/dracut is missing); the base builds its own afterwards.
      `--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --divert ${dracutAside} --add /usr/bin/dracut`,
      '--dpkgopt=path-exclude=/usr/share/man/*',
      '--dpkgopt=path-exclude=/usr/share/doc/*',
      '--dpkgopt=path-include=/usr/share/doc/*/copyright',
      '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--dpkgopt=path-exclude=/usr/share/info/*',
      `--include=${[...packages.common, ...packages[arch]].join(',')}`,
      'trixie',
      rootfs,
      `deb ${mirror} trixie main`,
      `deb ${mirror} forky main`,
    ],
    { env: { LC_ALL: 'C.UTF-8' } },
  );
}

/** Chroot into the tree with /proc, /sys and /dev, for the tree's own tools. */
function inChroot(rootfs: string, cmd: string[], env: Record<string, string> = {}): string {
  for (const m of ['proc', 'sys', 'dev']) {
    sh('mount', ['--rbind', `/${m}`, join(rootfs, m)]);
    sh('mount', ['--make-rslave', join(rootfs, m)]);
  }
  try {
    return sh('chroot', [rootfs, 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...cmd]);
  } finally {
    for (const m of ['dev', 'sys', 'proc']) sh('umount', ['-R', join(rootfs, m)]);
  }
}

/** The Fedora CoreOS shape (see the top of this file); returns the kernel version. */
function shapeRootfs(arch: SensorArch, rootfs: string): string {
  const p = (x: string) => join(rootfs, x);
  cpSync(standinTree, rootfs, { recursive: true, force: true, verbatimSymlinks: true });
  chmodSync(p('etc/sudoers.d/fcos-standin'), 0o440);
  // Kernel into /usr/lib/modules/<kver>/, nothing in /boot.
  const vmlinuz = readdirSync(p('boot')).filter((f) => f.startsWith('vmlinuz-'));
  if (vmlinuz.length !== 1)
    throw new Error(`expected one kernel in ${p('boot')}, found ${vmlinuz.join(' ')}`);
  const kver = vmlinuz[0]!.slice('vmlinuz-'.length);
  renameSync(p(`boot/${vmlinuz[0]}`), p(`usr/lib/modules/${kver}/vmlinuz`));
  for (const f of readdirSync(p('boot'))) rmSync(p(`boot/${f}`), { recursive: true, force: true });
  for (const f of readdirSync(rootfs).filter((n) => /^(vmlinuz|initrd\.img)(\.old)?$/.test(n))) rmSync(p(f));
  inChroot(rootfs, [
    'dpkg-divert',
    '--quiet',
    '--local',
    '--rename',
    '--divert',
    dracutAside,
    '--remove',
    '/usr/bin/dracut',
  ]);
  // Fedora's ostree adds no dracut.conf.d asking for its module; Debian's does.
  rmSync(p('etc/dracut.conf.d/ostree.conf'), { force: true });
  writeFileSync(p('usr/lib/ostree/prepare-root.conf'), prepareRoot);
  writeFileSync(p('usr/lib/os-release'), osRelease());
  rmSync(p('etc/os-release'), { force: true });
  symlinkSync('../usr/lib/os-release', p('etc/os-release'));
  mkdirSync(p('etc/containers/registries.conf.d'), { recursive: true });
  writeFileSync(p('etc/containers/registries.conf.d/50-rocknsm-test-registry.conf'), registryConf);
  // Top-level directories as links into /var (the root is read-only composefs).
  for (const [link, target] of [
    ['home', 'var/home'],
    ['root', 'var/roothome'],
    ['srv', 'var/srv'],
    ['opt', 'var/opt'],
    ['mnt', 'var/mnt'],
    ['usr/local', '../var/usrlocal'],
  ] as const) {
    rmSync(p(link), { recursive: true, force: true });
    symlinkSync(target, p(link));
  }
  mkdirSync(p('sysroot'), { recursive: true });
  // SELinux: a managed policy for ostree's and Ignition's labelling (sensor-base/selinux/), its
  // store in /etc/selinux (image content), installed by the tree's own semodule.
  writeFileSync(p('etc/selinux/config'), 'SELINUX=permissive\nSELINUXTYPE=standin\n');
  writeFileSync(
    p('etc/selinux/semanage.conf'),
    'module-store = direct\nexpand-check = 0\nstore-root = /etc/selinux\n',
  );
  cpSync(selinuxPolicy, p('tmp/standin.cil'));
  inChroot(rootfs, ['semodule', '-s', 'standin', '-N', '-n', '-i', '/tmp/standin.cil']);
  rmSync(p('tmp/standin.cil'));
  // Machine identity and keys are made on each machine: `uninitialized` makes the first boot a
  // first boot for systemd (ConditionFirstBoot; systemd docs/BUILDING_IMAGES.md), when
  // sshd-keygen.service makes the host keys.
  writeFileSync(p('etc/machine-id'), 'uninitialized\n');
  for (const f of ['etc/hostname', 'etc/resolv.conf']) rmSync(p(f), { force: true });
  for (const f of readdirSync(p('etc/ssh')).filter((n) => n.startsWith('ssh_host_')))
    rmSync(p(`etc/ssh/${f}`));
  sh('systemctl', [`--root=${rootfs}`, 'enable', ...enabledUnits]);
  // The base's own initramfs, with the ostree module, as rpm-ostree builds Fedora CoreOS's.
  // Every image built on the base regenerates it with the base's dracut, and no test boots the
  // base itself; on aarch64, where dracut runs under qemu-user for 5-6 minutes, it is left out.
  if (arch === 'x86_64') {
    const initramfs = `/usr/lib/modules/${kver}/initramfs.img`;
    inChroot(
      rootfs,
      ['dracut', '--no-hostonly', '--kver', kver, '--reproducible', '--add', 'ostree', '-f', initramfs],
      { DRACUT_NO_XATTR: '1' },
    );
    chmodSync(p(initramfs.slice(1)), 0o600);
  }
  // No device nodes, caches or logs in the image.
  for (const d of ['dev', 'tmp', 'run', 'var/cache', 'var/log', 'var/lib/apt/lists', 'var/tmp']) {
    for (const f of existsSync(p(d)) ? readdirSync(p(d)) : [])
      rmSync(p(`${d}/${f}`), { recursive: true, force: true });
  }
  return kver;
}

/** One-layer OCI archive of the tree with the bootc/ostree labels. */
function toArchive(arch: SensorArch, rootfs: string, kver: string, work: string, archive: string): void {
  const g = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  const ctr = sh('buildah', [...g, 'from', 'scratch']).trim();
  sh('buildah', [...g, 'add', ctr, `${rootfs}/`, '/']);
  const labels = {
    'containers.bootc': '1',
    'ostree.bootable': '1',
    'ostree.linux': kver,
    'com.coreos.stream': 'stable',
    'org.opencontainers.image.version': SENSOR_BASE_VERSION,
    'org.opencontainers.image.title': 'RockNSM test world: Fedora CoreOS-shaped Debian base',
    version: SENSOR_BASE_VERSION,
  };
  sh('buildah', [
    ...g,
    'config',
    '--arch',
    debArch[arch],
    '--os',
    'linux',
    ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    '--cmd',
    '/sbin/init',
    ctr,
  ]);
  sh('buildah', [...g, 'commit', '--timestamp', '1764460800', ctr, `sensor-base:${arch}`]);
  sh('buildah', [...g, 'push', `sensor-base:${arch}`, `oci-archive:${archive}`]);
}

/**
 * The sensor-OS base for the arch (oci-archive: reference), built unless cached. aarch64 runs
 * its package scripts and dracut under qemu-user (binfmt), so it takes several times longer.
 */
export function sensorBase(arch: SensorArch): SensorBase {
  for (const t of ['mmdebstrap', 'buildah', 'chroot', 'systemctl']) needTool(t);
  const key = recipeKey(arch);
  const archive = join(sensorBaseCache, `sensor-base-${arch}-${key}.ociarchive`);
  const info = `${archive}.json`;
  if (existsSync(archive) && existsSync(info)) {
    const i = JSON.parse(readFileSync(info, 'utf8')) as { kver: string; versions: string };
    return { ref: `oci-archive:${archive}`, arch, kver: i.kver, key, versions: i.versions, seconds: 0 };
  }
  const started = Date.now();
  const work = join(sensorBaseCache, `work-${arch}-${process.pid}`);
  const rootfs = join(work, 'rootfs');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const phases: Record<string, number> = {};
  const phase = <T>(name: string, f: () => T): T => {
    const t = Date.now();
    try {
      return f();
    } finally {
      phases[name] = (Date.now() - t) / 1000;
    }
  };
  try {
    phase('mmdebstrap', () => buildRootfs(arch, rootfs));
    const kver = phase('shape (semodule, dracut on x86_64)', () => shapeRootfs(arch, rootfs));
    const versions = inChroot(rootfs, ['dpkg-query', '-W', '-f', '$' + '{Package} $' + '{Version}\\n']);
    phase('oci-archive', () => toArchive(arch, rootfs, kver, work, `${archive}.tmp`));
    renameSync(`${archive}.tmp`, archive);
    const seconds = (Date.now() - started) / 1000;
    writeFileSync(info, `${JSON.stringify({ kver, versions, seconds, phases }, null, 2)}\n`);
    // Bases of earlier recipes for this arch are never used again.
    for (const f of readdirSync(sensorBaseCache))
      if (f.startsWith(`sensor-base-${arch}-`) && !f.startsWith(`sensor-base-${arch}-${key}.`))
        rmSync(join(sensorBaseCache, f), { force: true });
    return {
      ref: `oci-archive:${archive}`,
      arch,
      kver,
      key,
      versions,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    rmSync(`${archive}.tmp`, { force: true });
    // Never delete through a mount (the chroot binds /proc, /sys and /dev).
    if (mountsUnder(work).length === 0) rmSync(work, { recursive: true, force: true });
  }
}
