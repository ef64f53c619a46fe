// The bootable fixture base of the boot tests: the FCOS-shaped base of fcos-base.ts plus a REAL
// Debian kernel for the arch (linux-image-amd64 / linux-image-arm64, fetched with `apt-get
// download`, unpacked once into .cache/test) at /usr/lib/modules/<kver>/vmlinuz, and a tiny
// initramfs at /usr/lib/modules/<kver>/initramfs.img: busybox-static of the arch, the kernel
// modules needed to read the disk or fetch the rootfs (virtio, xfs, squashfs, loop, virtio_net)
// and `bootInit` as /init.
//
// The init finds the root filesystem the way the artifact says it is found (disk: the `root=`
// kernel argument, else LABEL=root; PXE: `coreos.live.rootfs_url` fetched over the network with
// DHCP + TFTP/HTTP, or a rootfs cpio appended to the initramfs), follows the `ostree=` kernel
// argument to the deployment (a live boot: checks Fedora CoreOS's live stamps and finds the one
// deployment itself, as there is no ostree=), reads the deployed /usr/lib/os-release and prints
// `ROCKNSM-BOOT-OK VARIANT_ID=<variant> VERSION=<image version>` on the console, then powers
// off. Any failure prints `ROCKNSM-BOOT-FAIL: <why>` and powers off. So a boot proves the
// partition layout, the bootloader and its config, the kernel arguments and the deployment.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { busybox, cacheDir, type FixtureArch, fcosBase } from './fcos-base.ts';
import { needTool, sh } from './tools.ts';

const debArch = { x86_64: 'amd64', aarch64: 'arm64' } as const;

/** What the fixture init prints when the deployment was found (followed by VARIANT_ID=.. VERSION=..). */
export const BOOT_OK = 'ROCKNSM-BOOT-OK';
export const BOOT_FAIL = 'ROCKNSM-BOOT-FAIL';

/** Modules the init loads, in this order after their dependencies (those built in are skipped). */
const wantedModules = [
  'virtio_ring',
  'virtio',
  'virtio_pci',
  'virtio_blk',
  'crc32c_generic',
  'libcrc32c',
  'xfs',
  'loop',
  'squashfs',
  'virtio_net',
];

/** busybox applets the init uses (symlinks in /bin). */
const applets = [
  'sh',
  'mount',
  'umount',
  'insmod',
  'cat',
  'echo',
  'sed',
  'tr',
  'sleep',
  'mkdir',
  'findfs',
  'ip',
  'udhcpc',
  'tftp',
  'wget',
  'cpio',
  'poweroff',
  'readlink',
  'ls',
];

export const bootInit = `#!/bin/sh
# rock-image boot-test init: finds the root, follows ostree= to the deployment, prints its
# os-release as the boot marker and powers off.
PATH=/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "${BOOT_FAIL}: $*"; poweroff -f; sleep 5; }
echo "rocknsm-boot: init started"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/modules.order
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1="*) echo "\${a#*=}"; return;; esac; done; }
ostree=$(arg ostree)
url=$(arg coreos.live.rootfs_url)
mkdir -p /sysroot
src=""
if [ -n "$url" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i+1)); [ $i -gt 100 ] && fail "no network interface for $url"; sleep 0.1
  done
  ip link set lo up
  ip link set eth0 up
  udhcpc -i eth0 -n -q -t 10 -s /bin/dhcp-event || fail "no DHCP answer on eth0"
  case "$url" in
    tftp://*)
      hp=\${url#tftp://}; host=\${hp%%/*}; path=\${hp#*/}
      tftp -g -b 1432 -r "$path" -l /rootfs.img "$host" || fail "TFTP download of $url failed";;
    http://*) wget -q -O /rootfs.img "$url" || fail "HTTP download of $url failed";;
    *) fail "unsupported coreos.live.rootfs_url $url";;
  esac
  (cd / && cpio -id < /rootfs.img) || fail "$url is not a cpio archive"
  src="network $url"
fi
if [ -f /root.squashfs ]; then
  mount -t squashfs -o ro,loop /root.squashfs /sysroot || fail "cannot mount root.squashfs"
  [ -n "$src" ] || src="rootfs appended to the initramfs"
else
  spec=$(arg root)
  case "$spec" in UUID=*|LABEL=*) ;; *) spec=LABEL=root;; esac
  i=0
  until dev=$(findfs "$spec" 2>/dev/null); do
    i=$((i+1)); [ $i -gt 150 ] && fail "no filesystem with $spec"; sleep 0.1
  done
  mount -t xfs -o ro "$dev" /sysroot || fail "cannot mount $dev ($spec) as xfs"
  src="disk $dev ($spec)"
fi
if [ -f /root.squashfs ]; then
  # A live boot, as Fedora CoreOS's live initramfs takes it (fedora-coreos-config 35coreos-live
  # @2d0fce6d): a live initramfs (is-live-image.sh:6), a rootfs stamp equal to the initramfs's
  # (coreos-livepxe-rootfs.sh:12-21), no ostree= but the one deployment (live-generator:37-54).
  [ -f /etc/coreos-live-initramfs ] || fail "a live rootfs, but the initramfs has no /etc/coreos-live-initramfs"
  [ -f /etc/coreos-live-rootfs ] || fail "the live rootfs has no /etc/coreos-live-rootfs"
  [ "$(cat /etc/coreos-live-rootfs)" = "$(cat /etc/coreos-live-initramfs)" ] || fail "rootfs stamp $(cat /etc/coreos-live-rootfs) is not the initramfs's $(cat /etc/coreos-live-initramfs)"
  [ -z "$ostree" ] || fail "ostree=$ostree on a live boot (FCOS's live initramfs finds the deployment)"
  set -- /sysroot/ostree/boot.1/*/*/0
  [ $# -eq 1 ] && [ -e "$1" ] || fail "not exactly one deployment under /ostree/boot.1: $*"
  ostree=\${1#/sysroot}
  echo "rocknsm-boot: live image $(cat /etc/coreos-live-initramfs), found ostree=$ostree"
fi
[ -n "$ostree" ] || fail "no ostree= kernel argument"
osr=/sysroot$ostree/usr/lib/os-release
[ -f "$osr" ] || fail "ostree=$ostree does not lead to a deployment with /usr/lib/os-release"
field() { sed -n "s/^$1=//p" "$osr" | tr -d '"'; }
echo "rocknsm-boot: root from $src, deployment $(readlink -f "/sysroot$ostree")"
echo "${BOOT_OK} VARIANT_ID=$(field VARIANT_ID) VERSION=$(field IMAGE_VERSION)"
umount /sysroot
poweroff -f
sleep 5
`;

const dhcpEvent = `#!/bin/sh
# udhcpc event script: configure the leased address and the default route.
case "$1" in
  bound|renew)
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
    echo "rocknsm-boot: $interface has $ip";;
esac
exit 0
`;

export interface DebianKernel {
  kver: string;
  /** Debian package and version, e.g. linux-image-6.1.0-56-amd64 6.1.192-2. */
  pkg: string;
  vmlinuz: string;
  /** The wanted modules and their dependencies, in load order, relative to `modulesDir`. */
  modules: string[];
  modulesDir: string;
}

function kernelPackage(arch: FixtureArch): { name: string; version: string } {
  const meta = arch === 'x86_64' ? 'linux-image-amd64' : `linux-image-${debArch[arch]}:${debArch[arch]}`;
  const deps = sh('apt-cache', ['depends', meta]);
  const name = /Depends: (linux-image-[0-9][^\s:]*)/.exec(deps)?.[1];
  if (!name)
    throw new Error(
      `apt-cache depends ${meta} names no kernel package (is the ${debArch[arch]} architecture added? run 'npx rock-image doctor --install test')`,
    );
  const policy = sh('apt-cache', ['policy', `${name}:${debArch[arch]}`]);
  const version = /Candidate: (\S+)/.exec(policy)?.[1];
  if (!version || version === '(none)') throw new Error(`apt has no candidate for ${name}:${debArch[arch]}`);
  return { name, version };
}

/** Load order of `wanted` and everything they depend on, from a depmod modules.dep. */
export function moduleOrder(modulesDep: string, wanted: string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of modulesDep.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) deps.set(m[1]!, m[2]!.split(/\s+/).filter(Boolean));
  }
  const byName = new Map(
    [...deps.keys()].map((p) => [p.replace(/^.*\//, '').replace(/\.ko(\..*)?$/, ''), p]),
  );
  const order: string[] = [];
  const visit = (p: string) => {
    if (order.includes(p)) return;
    for (const d of deps.get(p) ?? []) visit(d);
    order.push(p);
  };
  for (const w of wanted) {
    const p = byName.get(w);
    if (p) visit(p); // absent: built into the kernel
  }
  return order;
}

/** Debian's kernel for the arch, its vmlinuz and the modules the init needs, cached in .cache/test. */
export function debianKernel(arch: FixtureArch): DebianKernel {
  for (const t of ['apt-get', 'apt-cache', 'dpkg-deb', 'depmod', 'tar']) needTool(t);
  const pkg = kernelPackage(arch);
  const kver = pkg.name.slice('linux-image-'.length);
  const dir = join(cacheDir, `kernel-${kver}-${pkg.version}`);
  const done = join(dir, 'kernel.json');
  if (existsSync(done)) return JSON.parse(readFileSync(done, 'utf8')) as DebianKernel;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'deb'), { recursive: true });
  try {
    sh('apt-get', ['download', `${pkg.name}:${debArch[arch]}=${pkg.version}`], { cwd: join(tmp, 'deb') });
    const deb = readdirSync(join(tmp, 'deb')).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg.name}:${debArch[arch]} gave no .deb`);
    const x = join(tmp, 'x');
    mkdirSync(x);
    sh('sh', [
      '-c',
      'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./boot ./lib/modules',
      'sh',
      join(tmp, 'deb', deb),
      x,
    ]);
    sh('depmod', ['-b', x, kver]);
    const modRoot = join(x, 'lib/modules', kver);
    const modules = moduleOrder(readFileSync(join(modRoot, 'modules.dep'), 'utf8'), wantedModules);
    const out = join(tmp, 'out');
    for (const m of modules) {
      mkdirSync(join(out, 'modules', m, '..'), { recursive: true });
      cpSync(join(modRoot, m), join(out, 'modules', m));
    }
    cpSync(join(x, 'boot', `vmlinuz-${kver}`), join(out, 'vmlinuz'));
    const k: DebianKernel = {
      kver,
      pkg: `${pkg.name} ${pkg.version}`,
      vmlinuz: join(dir, 'vmlinuz'),
      modules,
      modulesDir: join(dir, 'modules'),
    };
    writeFileSync(join(out, 'kernel.json'), `${JSON.stringify(k, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(out, dir);
    return k;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The boot-test initramfs (gzip newc cpio) for the arch, built once per content hash. */
export function bootInitramfs(arch: FixtureArch): { file: string; kernel: DebianKernel } {
  needTool('cpio');
  needTool('gzip');
  const kernel = debianKernel(arch);
  const bb = busybox(arch);
  const key = createHash('sha256')
    .update(
      JSON.stringify({ init: bootInit, dhcpEvent, applets, kernel: kernel.pkg, modules: kernel.modules }),
    )
    .update(readFileSync(bb))
    .digest('hex')
    .slice(0, 12);
  const file = join(cacheDir, `boot-initramfs-${arch}-${key}.img`);
  if (existsSync(file)) return { file, kernel };
  const stage = join(cacheDir, `boot-initramfs-${arch}-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  try {
    for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'sysroot', 'lib/modules'])
      mkdirSync(join(stage, d), { recursive: true });
    cpSync(bb, join(stage, 'bin/busybox'));
    for (const a of applets) symlinkSync('busybox', join(stage, 'bin', a));
    writeFileSync(join(stage, 'init'), bootInit);
    writeFileSync(join(stage, 'bin/dhcp-event'), dhcpEvent);
    chmodSync(join(stage, 'init'), 0o755);
    chmodSync(join(stage, 'bin/dhcp-event'), 0o755);
    for (const m of kernel.modules) {
      mkdirSync(join(stage, 'lib/modules', m, '..'), { recursive: true });
      cpSync(join(kernel.modulesDir, m), join(stage, 'lib/modules', m));
    }
    writeFileSync(join(stage, 'etc/modules.order'), kernel.modules.map((m) => `${m}\n`).join(''));
    sh('sh', [
      '-c',
      'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible -R 0:0 | gzip -9n > "$2"',
      'sh',
      stage,
      `${file}.tmp`,
    ]);
    renameSync(`${file}.tmp`, file);
    return { file, kernel };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * The bootable FCOS-shaped base for the arch (oci-archive: reference): fcos-base.ts's plain
 * base with the Debian kernel and the boot-test initramfs under /usr/lib/modules/<kver>/ instead
 * of the placeholder files, and no dracut (so the build keeps this initramfs).
 */
export function bootBase(arch: FixtureArch): { ref: string; kernel: DebianKernel } {
  const { file, kernel } = bootInitramfs(arch);
  const key = createHash('sha256').update(readFileSync(file)).update(kernel.pkg).digest('hex').slice(0, 10);
  const ref = fcosBase(arch, 'plain', {
    key: `boot-${key}`,
    write(rootfs) {
      const modules = join(rootfs, 'usr/lib/modules');
      for (const d of readdirSync(modules)) rmSync(join(modules, d), { recursive: true, force: true });
      mkdirSync(join(modules, kernel.kver));
      cpSync(kernel.vmlinuz, join(modules, kernel.kver, 'vmlinuz'));
      cpSync(file, join(modules, kernel.kver, 'initramfs.img'));
    },
  });
  return { ref, kernel };
}
