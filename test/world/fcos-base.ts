// Builds FCOS-shaped base images for tests, for both arches, with real buildah: os-release of
// Fedora CoreOS (ID=fedora, VARIANT_ID=coreos), a kernel directory under /usr/lib/modules, the
// bootc labels, busybox as the shell. Variant "tools" adds stand-ins for dracut and bootc that
// record how the build called them (those programs cannot run here). Cached by content hash.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needTool, sh } from './tools.ts';

export const repoRoot = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const cacheDir = join(repoRoot, '.cache', 'test');

export type FixtureArch = 'x86_64' | 'aarch64';
const debArch = { x86_64: 'amd64', aarch64: 'arm64' } as const;
export const KVER = { x86_64: '6.11.4-301.fc41.x86_64', aarch64: '6.11.4-301.fc41.aarch64' } as const;
export const BASE_VERSION = '41.20261101.3.0';

/** The busybox-static binary for an arch (the host's, or the arm64 .deb unpacked once). */
export function busybox(arch: FixtureArch): string {
  if (arch === 'x86_64' && process.arch === 'x64') return needTool('busybox');
  const dir = join(cacheDir, `busybox-${debArch[arch]}`);
  const bin = join(dir, 'bin', 'busybox');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  sh('apt-get', ['download', `busybox-static:${debArch[arch]}`], { cwd: dir });
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (!deb)
    throw new Error(
      `apt-get download busybox-static:${debArch[arch]} gave no .deb (is the ${debArch[arch]} architecture added? run 'npx rock-image doctor --install test')`,
    );
  sh('dpkg-deb', ['-x', join(dir, deb), dir]);
  return bin;
}

const fakeDracut = `#!/bin/sh
# Test stand-in for dracut (a Fedora dracut cannot run here; test/sensor/ runs the real one).
# Writes a newc cpio as the initramfs, byte for byte the same for the same inputs (like dracut
# --reproducible), holding a record of its arguments and prepare-root.conf, and what the real
# dracut would pack from this image: ostree's module (ostree-prepare-root, prepare-root.conf)
# only when asked with --add ostree, and the Ignition base configs that dracut modules of the
# image carry (at /usr/lib/ignition/base.d, where they install them).
out=""; ostree=0; prev=""
for a in "$@"; do
  case "$a" in /usr/lib/modules/*/initramfs.img) out="$a";; esac
  if [ "$prev" = "--add" ]; then case " $a " in *" ostree "*) ostree=1;; esac; fi
  prev="$a"
done
[ -n "$out" ] || { echo "dracut stand-in: no output path in: $*" >&2; exit 2; }
t=$(mktemp -d)
# One newc entry: $1 name, $2 mode (hex), $3 file with the content (none for a directory).
entry() {
  size=0; [ -n "$3" ] && size=$(wc -c < "$3")
  n=$((\${#1} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' 0 "0x$2" 0 0 1 0 "$size" 0 0 0 0 "$n" 0
  printf '%s\\000' "$1"
  head -c $(( (4 - (110 + n) % 4) % 4 )) /dev/zero
  [ -n "$3" ] && cat "$3"
  head -c $(( (4 - size % 4) % 4 )) /dev/zero
}
{ echo "dracut $*"; echo "--- prepare-root.conf"; cat /usr/lib/ostree/prepare-root.conf; } > "$t/record"
{
  entry dracut.record 81A4 "$t/record"
  if [ "$ostree" = 1 ]; then
    echo "stand-in" > "$t/prepare-root"
    entry usr/lib/ostree 41ED
    entry usr/lib/ostree/ostree-prepare-root 81ED "$t/prepare-root"
    entry usr/lib/ostree/prepare-root.conf 81A4 /usr/lib/ostree/prepare-root.conf
  fi
  for f in /usr/lib/dracut/modules.d/*/*.ign; do
    [ -f "$f" ] && entry "usr/lib/ignition/base.d/\${f##*/}" 81A4 "$f"
  done
  entry TRAILER!!! 0
} > "$out"
rm -rf "$t"
`;

const fakeBootc = `#!/bin/sh
# Test stand-in for bootc (cannot run here): accepts only "container lint" and records the call.
[ "$1 $2" = "container lint" ] || { echo "bootc stand-in: unexpected: $*" >&2; exit 2; }
test -f /usr/lib/ostree/prepare-root.conf || { echo "lint: no prepare-root.conf" >&2; exit 1; }
echo "bootc $*" > /usr/lib/bootc-lint-ran
`;

function writeRootfs(dir: string, arch: FixtureArch, variant: 'plain' | 'tools'): void {
  rmSync(dir, { recursive: true, force: true });
  const d = (p: string) => mkdirSync(join(dir, p), { recursive: true });
  for (const p of [
    'usr/bin',
    'usr/sbin',
    'usr/lib/ostree',
    `usr/lib/modules/${KVER[arch]}`,
    'usr/etc',
    'etc',
    'var/tmp',
    'var/lib',
    'var/log',
    'var/spool',
    'boot',
    'sysroot',
    'proc',
    'sys',
    'dev',
    'run',
    'tmp',
  ])
    d(p);
  const bb = busybox(arch);
  sh('cp', [bb, join(dir, 'usr/bin/busybox')]);
  for (const c of [
    'sh',
    'cat',
    'ls',
    'sed',
    'grep',
    'mkdir',
    'rm',
    'ln',
    'test',
    'echo',
    'find',
    'uname',
    'cp',
    'chmod',
    'true',
    'false',
    'mktemp',
    'printf',
    'wc',
    'head',
  ]) {
    symlinkSync('busybox', join(dir, 'usr/bin', c));
  }
  symlinkSync('usr/bin', join(dir, 'bin'));
  symlinkSync('usr/sbin', join(dir, 'sbin'));
  symlinkSync('usr/lib', join(dir, 'lib'));
  writeFileSync(
    join(dir, 'usr/lib/os-release'),
    [
      'NAME="Fedora Linux"',
      `VERSION="41.20261101.3.0 (CoreOS)"`,
      'RELEASE_TYPE=stable',
      'ID=fedora',
      'VERSION_ID=41',
      'VERSION_CODENAME=""',
      `PLATFORM_ID="platform:f41"`,
      `PRETTY_NAME="Fedora CoreOS ${BASE_VERSION}"`,
      'ANSI_COLOR="0;38;2;60;110;180"',
      'HOME_URL="https://getfedora.org/coreos/"',
      'VARIANT="CoreOS"',
      'VARIANT_ID=coreos',
      `OSTREE_VERSION='${BASE_VERSION}'`,
      '',
    ].join('\n'),
  );
  symlinkSync('../usr/lib/os-release', join(dir, 'etc/os-release'));
  writeFileSync(join(dir, `usr/lib/modules/${KVER[arch]}/vmlinuz`), `fixture kernel ${KVER[arch]}\n`);
  writeFileSync(join(dir, `usr/lib/modules/${KVER[arch]}/initramfs.img`), 'fixture initramfs\n');
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  if (variant === 'tools') {
    writeFileSync(join(dir, 'usr/bin/dracut'), fakeDracut);
    writeFileSync(join(dir, 'usr/bin/bootc'), fakeBootc);
    chmodSync(join(dir, 'usr/bin/dracut'), 0o755);
    chmodSync(join(dir, 'usr/bin/bootc'), 0o755);
  }
}

const fixtureRecipe = createHash('sha256')
  .update(writeRootfs.toString() + fakeDracut + fakeBootc + BASE_VERSION)
  .digest('hex')
  .slice(0, 12);

/** More content for a fixture base (boot-base.ts: a real kernel); `key` names its content hash. */
export interface RootfsExtra {
  key: string;
  write(rootfs: string): void;
}

/**
 * Returns an oci-archive: reference to an FCOS-shaped base for the arch, building it with real
 * buildah (scratch + add + config + commit + push) unless cached.
 */
export function fcosBase(
  arch: FixtureArch,
  variant: 'plain' | 'tools' = 'plain',
  extra?: RootfsExtra,
): string {
  needTool('buildah');
  const name = extra ? `${variant}-${extra.key}` : variant;
  const archive = join(cacheDir, `fcos-${name}-${arch}-${fixtureRecipe}.ociarchive`);
  if (existsSync(archive)) return `oci-archive:${archive}`;
  const work = join(cacheDir, `fixture-${name}-${arch}`);
  const rootfs = join(work, 'rootfs');
  writeRootfs(rootfs, arch, variant);
  extra?.write(rootfs);
  const g = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  const ctr = sh('buildah', [...g, 'from', 'scratch']).trim();
  sh('buildah', [...g, 'add', ctr, `${rootfs}/`, '/']);
  sh('buildah', [
    ...g,
    'config',
    '--arch',
    debArch[arch],
    '--os',
    'linux',
    '--label',
    'containers.bootc=1',
    '--label',
    'ostree.bootable=1',
    '--label',
    'com.coreos.stream=stable',
    '--label',
    `org.opencontainers.image.version=${BASE_VERSION}`,
    '--label',
    `version=${BASE_VERSION}`,
    '--label',
    'ostree.linux=' + KVER[arch],
    '--cmd',
    '/bin/sh',
    ctr,
  ]);
  sh('buildah', [...g, 'commit', '--timestamp', '1761955200', ctr, `fixture-fcos:${arch}`]);
  sh('buildah', [...g, 'push', `fixture-fcos:${arch}`, `oci-archive:${archive}.tmp`]);
  sh('mv', [`${archive}.tmp`, archive]);
  rmSync(work, { recursive: true, force: true });
  return `oci-archive:${archive}`;
}
