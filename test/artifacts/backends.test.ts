// The bootc and coreos backends through the real `rock-image artifacts`: bootc and osbuild
// cannot run here, so `podman` is a stand-in on PATH that records its exact argv and writes what
// the real container would (a raw disk, custom-coreos-disk-images' files). Everything around it
// is real: skopeo into a private containers-storage, truncate, qemu-img, zstd, meta.json.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSgdiskPrint, stampCommands } from '../../pipeline/artifacts/bootc.ts';
import {
  BUILDER_SCRIPT,
  CCDI_COMMIT,
  CCDI_PLATFORMS,
  ccdiLiveFiles,
  coreosArgs,
} from '../../pipeline/artifacts/coreos.ts';
import { mountsUnder } from '../../pipeline/exec/losetup.ts';
import { planSite } from '../../pipeline/publish/site.ts';
import { cacheDir, fcosBase, repoRoot } from '../world/fcos-base.ts';
import { needTool, sh, shResult, withImageMount } from '../world/tools.ts';

const work = join(cacheDir, `artifacts-backends-${process.pid}`);
const out = join(work, 'out');
const bin = join(work, 'bin');
const podmanLog = join(work, 'podman.log');
const VERSION = '41.20261123.3.0';
const archive = (arch: string) =>
  join(out, 'builds', VERSION, arch, `rocknsm-coreos-${VERSION}-ostree.${arch}.ociarchive`);
const storageConf = join(work, 'storage.conf');
const env = () => ({
  CI: 'true',
  PATH: `${bin}:${process.env.PATH}`,
  FAKE_PODMAN_LOG: podmanLog,
  CONTAINERS_STORAGE_CONF: storageConf,
});
const cli = (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: env() });
const meta = (arch: string) =>
  JSON.parse(readFileSync(join(out, 'builds', VERSION, arch, 'meta.json'), 'utf8'));

/**
 * custom-coreos-disk-images' platform table as bash (custom-coreos-disk-images.sh:29-50), from
 * the entries coreos.ts relies on: upstream-facts.test.ts checks them, and the script's own
 * naming and moving lines run on them, against the upstream file.
 */
const ccdiTable = Object.entries(CCDI_PLATFORMS)
  .map(([p, suffix]) => `['${p}']='${suffix}'`)
  .join(' ');

/** podman stand-in: records argv (NUL after each argument, RS after each call) and writes the outputs. */
const fakePodman = `#!/bin/bash
set -eu
printf '%s\\0' "$@" >> "$FAKE_PODMAN_LOG"; printf '\\036' >> "$FAKE_PODMAN_LOG"
[ "$1" = run ] || { echo "podman stand-in: unexpected $1" >&2; exit 2; }
vols=() workdir= arch= platforms= ociarchive= osname=
prev=
for a in "$@"; do
  case "$prev" in
    -v) vols+=("$a");;
    -w) workdir=$a;;
    --platform) case "$a" in linux/amd64) arch=x86_64;; linux/arm64) arch=aarch64;; esac;;
    --platforms) platforms=$a;;
    --ociarchive) ociarchive=$a;;
    --osname) osname=$a;;
  esac
  prev=$a
done
# The host path of a path in the container, through the -v volumes.
host_of() {
  for v in "\${vols[@]}"; do
    local c=\${v#*:}; c=\${c%:ro}
    if [ "$c" = "$1" ]; then echo "\${v%%:*}"; fi
  done
}
vol_output=$(host_of /output)
last=\${!#}
if [ -n "$vol_output" ]; then
  # bootc install to-disk fills the loopback file it was given with its baseline layout: GPT
  # partitions BIOS-BOOT, EFI-SYSTEM, boot (the root's filesystem type, labelled boot) and root
  # (bootc crates/lib/src/install/baseline.rs); here smaller, with a marker before the table.
  f="$vol_output/\${last#/output/}"
  [ -f "$f" ] || { echo "bootc stand-in: $f was not created first" >&2; exit 3; }
  rm -f "$f"; truncate -s 360M "$f"
  sgdisk --zap-all -n 1:2048:+1M -c 1:BIOS-BOOT -n 2:0:+8M -c 2:EFI-SYSTEM -n 3:0:+300M -c 3:boot \\
    -n 4:0:0 -c 4:root "$f" > /dev/null
  mkfs.xfs -q -L boot -d file,name="$f.boot",size=300m
  dd if="$f.boot" of="$f" bs=1M seek=10 conv=sparse,notrunc status=none; rm -f "$f.boot"
  printf 'bootc-installed' | dd of="$f" conv=notrunc status=none
elif [ -n "$ociarchive" ]; then
  # custom-coreos-disk-images (custom-coreos-disk-images.sh @${CCDI_COMMIT.slice(0, 7)}): --osname
  # rhcos or fedora-coreos (:114-121), --ociarchive an existing file (:147-153); each platform's
  # file <prefix>-<platform>.<arch>.<suffix> (:229-230), an unknown platform failing the lookup
  # under set -u; live's four files (:237,240); all moved into the working directory (:242,247).
  case "$osname" in rhcos|fedora-coreos) ;; *) echo "--osname must be rhcos or fedora-coreos" >&2; exit 1;; esac
  [ -f "$(host_of "$ociarchive")" ] || { echo "need to pass in the path to .ociarchive file" >&2; exit 1; }
  out=$(host_of "$workdir"); [ -d "$out" ] || { echo "podman stand-in: no working directory" >&2; exit 2; }
  prefix=$(basename -s .ociarchive "$ociarchive")
  declare -A SUPPORTED_PLATFORMS=(${ccdiTable})
  IFS=, read -ra ps <<< "$platforms"
  for p in "\${ps[@]}"; do
    suffix=\${SUPPORTED_PLATFORMS[$p]}
    f="$out/$prefix-$p.$arch.$suffix"
    case "$p" in
      live) for t in ${ccdiLiveFiles('$arch').join(' ')}; do echo "live $t" > "$out/$prefix-live-$t"; done;;
      qemu) qemu-img create -q -f qcow2 "$f" 8M;;
      *) printf '%s' "$p" > "$f"; truncate -s 4M "$f";;
    esac
  done
else
  echo "podman stand-in: no known volume" >&2; exit 2
fi
`;

/** Files at the root of the filesystem labelled boot in a disk image (name, size), mounted read-only. */
function bootFiles(file: string): [string, number][] {
  const table = sh('sgdisk', ['--print', file]);
  for (const m of table.matchAll(/^\s*\d+\s+(\d+)\s+(\d+)\s/gm)) {
    const offset = Number(m[1]) * 512;
    const size = (Number(m[2]) - Number(m[1]) + 1) * 512;
    const r = shResult('blkid', [
      '--probe',
      '--offset',
      String(offset),
      '--size',
      String(size),
      '-s',
      'LABEL',
      '-o',
      'value',
      file,
    ]);
    if (r.stdout.trim() !== 'boot') continue;
    return withImageMount(file, offset, size, join(work, 'check-boot'), (mnt) =>
      readdirSync(mnt).map((n): [string, number] => [n, statSync(join(mnt, n)).size]),
    );
  }
  throw new Error(`${file}: no filesystem labelled boot`);
}

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

function podmanCalls(): string[][] {
  if (!existsSync(podmanLog)) return [];
  return readFileSync(podmanLog, 'utf8')
    .split('\x1e')
    .filter(Boolean)
    .map((l) => l.split('\0').slice(0, -1));
}

test.before(() => {
  needTool('skopeo');
  needTool('qemu-img');
  needTool('zstd');
  for (const t of ['sgdisk', 'mkfs.xfs', 'blkid', 'losetup', 'mount']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'podman'), fakePodman);
  chmodSync(join(bin, 'podman'), 0o755);
  writeFileSync(
    storageConf,
    `[storage]\ndriver = "vfs"\ngraphroot = "${work}/storage"\nrunroot = "${work}/run"\n`,
  );
  // A build directory as `rock-image build` leaves it; the archives are the fixture bases.
  for (const arch of ['x86_64', 'aarch64'] as const) {
    mkdirSync(join(out, 'builds', VERSION, arch), { recursive: true });
    copyFileSync(fcosBase(arch, 'plain').slice('oci-archive:'.length), archive(arch));
    writeFileSync(
      join(out, 'builds', VERSION, arch, 'meta.json'),
      `${JSON.stringify({
        name: 'rocknsm-coreos',
        buildid: VERSION,
        'ostree-timestamp': '2026-11-23T00:00:00Z',
        'coreos-assembler.basearch': arch,
        images: {
          ostree: {
            path: `rocknsm-coreos-${VERSION}-ostree.${arch}.ociarchive`,
            sha256: createHash('sha256')
              .update(readFileSync(archive(arch)))
              .digest('hex'),
            size: statSync(archive(arch)).size,
          },
        },
        'rocknsm.stream': 'stable',
      })}\n`,
    );
  }
  writeFileSync(
    join(out, 'builds', 'builds.json'),
    JSON.stringify({
      'schema-version': '1.0.0',
      builds: [{ id: VERSION, arches: ['aarch64', 'x86_64'] }],
      timestamp: '2026-11-23T00:00:00Z',
    }),
  );
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('bootc: image into containers-storage, then bootc install to-disk --via-loopback per disk', () => {
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'bootc',
    '--platform',
    'metal,qemu',
    '--arch',
    'x86_64',
    '--compression',
    'zstd',
  ]);
  assert.is(r.code, 0, r.stderr);
  // skopeo really copied the archive into the (private) storage the container would mount.
  const inspect = shResult(
    'skopeo',
    ['inspect', `containers-storage:localhost/rocknsm-coreos:${VERSION}-x86_64`],
    { env: env() },
  );
  assert.is(inspect.code, 0, inspect.stderr);
  assert.is(JSON.parse(inspect.stdout).Architecture, 'amd64');
  const w = join(out, 'work/artifacts/x86_64');
  const expected = (platform: string) => [
    'run',
    '--rm',
    '--privileged',
    '--pid=host',
    '--security-opt',
    'label=type:unconfined_t',
    '--platform',
    'linux/amd64',
    '-v',
    '/dev:/dev',
    '-v',
    '/var/lib/containers:/var/lib/containers',
    '-v',
    `${w}:/output`,
    `localhost/rocknsm-coreos:${VERSION}-x86_64`,
    'bootc',
    'install',
    'to-disk',
    '--generic-image',
    '--via-loopback',
    '--filesystem',
    'xfs',
    '--target-imgref',
    'ghcr.io/rocknsm/rocknsm-coreos:stable',
    // The shipped stable stream carries publish.trust: the image holds our policy, so installs enforce it.
    '--enforce-container-sigpolicy',
    '--karg',
    '$ignition_firstboot',
    '--karg',
    'mitigations=auto,nosmt',
    '--karg',
    `ignition.platform.id=${platform}`,
    '--karg',
    'console=ttyS0,115200n8',
    `/output/${platform}-bootc.raw`,
  ];
  assert.equal(podmanCalls(), [expected('metal'), expected('qemu')]);
  const m = meta('x86_64');
  assert.is(m.images.metal.path, `rocknsm-coreos-${VERSION}-metal.x86_64.raw.zst`);
  assert.is(m.images.metal['uncompressed-size'], 360 * 1024 * 1024);
  const plain = join(work, 'metal.raw');
  sh('zstd', ['-d', '-q', '-f', join(out, 'builds', VERSION, 'x86_64', m.images.metal.path), '-o', plain]);
  assert.is(readFileSync(plain).subarray(0, 15).toString(), 'bootc-installed');
  // The first-boot stamp: an empty ignition.firstboot at the root of the filesystem labelled boot.
  assert.equal(bootFiles(plain), [['ignition.firstboot', 0]]);
  // qemu-img converted the qemu install's raw disk, after the stamp went in.
  const q = join(work, 'qemu.qcow2');
  sh('zstd', ['-d', '-q', '-f', join(out, 'builds', VERSION, 'x86_64', m.images.qemu.path), '-o', q]);
  const info = JSON.parse(sh('qemu-img', ['info', '--output=json', q]));
  assert.is(info.format, 'qcow2');
  assert.is(info['virtual-size'], 360 * 1024 * 1024);
  const qraw = join(work, 'qemu.raw');
  sh('qemu-img', ['convert', '-O', 'raw', q, qraw]);
  assert.equal(bootFiles(qraw), [['ignition.firstboot', 0]]);
  // What ran is what `plan --artifacts` prints, with the values only the disk tells filled in.
  const logDir = join(out, 'logs');
  const log = readdirSync(logDir)
    .filter((f) => f.startsWith(`artifacts-${VERSION}-`))
    .sort()
    .pop()!;
  const ran = readFileSync(join(logDir, log), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.event === 'command')
    .map((e) => e.argv as string[]);
  const metalRaw = join(w, 'metal-bootc.raw');
  const from = ran.findIndex((a) => a[0] === 'sgdisk' && a[2] === metalRaw);
  const partitions = parseSgdiskPrint(sh('sgdisk', ['--print', plain]));
  const dev = ran[from + partitions.length + 2]![1]!; // the mount after losetup printed it
  assert.match(dev, /^\/dev\/loop\d+$/);
  assert.equal(
    ran.slice(from, from + partitions.length + 6),
    stampCommands(metalRaw, join(w, 'boot-mnt'), { partitions, boot: partitions[2]!, dev }),
  );
  // Nothing stays attached or mounted.
  assert.not.match(sh('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE']), w);
  assert.equal(mountsUnder(w), []);
  assert.equal(m['rocknsm.artifacts'], {
    backend: 'bootc',
    compression: 'zstd',
    platforms: ['metal', 'qemu'],
  });
});

test('bootc: PXE and ISO are refused (exit 64) before any work', () => {
  rmSync(podmanLog, { force: true });
  const r = cli(['artifacts', '--build', out, '--backend', 'bootc', '--platform', 'pxe,iso']);
  assert.is(r.code, 64);
  assert.match(r.stderr, /bootc install makes disks only, not PXE files/);
  assert.match(r.stderr, /not a live ISO/);
  assert.equal(podmanCalls(), []);
});

test('coreos: custom-coreos-disk-images in a Fedora builder, outputs renamed, PXE snippets', () => {
  rmSync(podmanLog, { force: true });
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'coreos',
    '--platform',
    'metal,metal4k,qemu,pxe,iso',
    '--arch',
    'x86_64',
    '--compression',
    'zstd',
  ]);
  assert.is(r.code, 0, r.stderr);
  const w = join(out, 'work/artifacts/x86_64');
  const file = `rocknsm-coreos-${VERSION}-ostree.x86_64.ociarchive`;
  assert.equal(podmanCalls(), [
    [
      'run',
      '--rm',
      '--privileged',
      '--pid=host',
      '--security-opt',
      'label=disable',
      '--platform',
      'linux/amd64',
      '-v',
      '/dev:/dev',
      '-v',
      '/var/lib/containers',
      '-v',
      `${archive('x86_64')}:/in/${file}:ro`,
      '-v',
      `${w}:/srv`,
      '-w',
      '/srv',
      '--entrypoint',
      '/bin/bash',
      'quay.io/fedora/fedora:41',
      '-euc',
      BUILDER_SCRIPT,
      'custom-coreos-disk-images',
      '--ociarchive',
      `/in/${file}`,
      '--osname',
      'fedora-coreos',
      '--platforms',
      'metal,metal4k,qemu,live',
      '--extra-kargs',
      'mitigations=auto,nosmt',
      // The shipped stable stream carries publish.trust: the image holds our policy, so the
      // origin demands signatures.
      '--imgref',
      'ostree-image-signed:docker://ghcr.io/rocknsm/rocknsm-coreos:stable',
    ],
  ]);
  // The builder script: syntax-checked by bash, pinned script URL, the packages its README lists.
  assert.is(shResult('bash', ['-n', '-c', BUILDER_SCRIPT]).code, 0);
  assert.ok(
    BUILDER_SCRIPT.includes(`/coreos/custom-coreos-disk-images/${CCDI_COMMIT}/custom-coreos-disk-images.sh`),
  );
  assert.match(BUILDER_SCRIPT, /dnf install -y .*\bosbuild osbuild-tools osbuild-ostree\b/);
  const m = meta('x86_64');
  const dir = join(out, 'builds', VERSION, 'x86_64');
  const n = `rocknsm-coreos-${VERSION}`;
  assert.is(m.images['live-iso'].path, `${n}-live-iso.x86_64.iso`);
  assert.is(readFileSync(join(dir, m.images['live-iso'].path), 'utf8'), 'live iso.x86_64.iso\n');
  assert.is(readFileSync(join(dir, m.images['live-kernel'].path), 'utf8'), 'live kernel.x86_64\n');
  assert.is(readFileSync(join(dir, m.images['live-rootfs'].path), 'utf8'), 'live rootfs.x86_64.img\n');
  assert.is(readFileSync(join(dir, m.images['live-initramfs'].path), 'utf8'), 'live initramfs.x86_64.img\n');
  assert.is(m.images.metal.path, `${n}-metal.x86_64.raw.zst`);
  assert.is(m.images.metal4k.path, `${n}-metal4k.x86_64.raw.zst`);
  assert.is(m.images.qemu.path, `${n}-qemu.x86_64.qcow2.zst`);
  // Each disk is the file custom-coreos-disk-images wrote for its platform.
  for (const k of ['metal', 'metal4k']) {
    const plain = sh('zstd', ['-d', '-q', '-c', join(dir, m.images[k].path)]);
    assert.is(plain.slice(0, k.length + 1), `${k}\0`, k);
  }
  assert.equal(m['rocknsm.artifacts'].platforms, ['metal', 'metal4k', 'qemu', 'pxe', 'iso']);
  assert.is(m['rocknsm.artifact-backends'].metal4k, 'coreos');
  for (const [key, img] of Object.entries(m.images) as [string, { path: string; size: number }][])
    if (key !== 'ostree') assert.is(statSync(join(dir, img.path)).size, img.size, key);
  const ipxe = readFileSync(join(dir, m.images['pxe-ipxe'].path), 'utf8');
  assert.match(
    ipxe,
    /^kernel \$\{base-url\}\/\S+-live-kernel\.x86_64 initrd=main coreos\.live\.rootfs_url=\$\{base-url\}\/\S+-live-rootfs\.x86_64\.img ignition\.firstboot ignition\.platform\.id=metal ignition\.config\.url=\$\{ignition-url\} console=tty0 console=ttyS0,115200n8$/m,
  );
  assert.ok(m.images['pxe-pxelinux'] && m.images['pxe-grub']);
});

test('coreos: metal4k as xz, published as metal 4k.raw.xz beside raw.xz (no metal4k platform)', () => {
  rmSync(podmanLog, { force: true });
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'coreos',
    '--platform',
    'metal,metal4k,qemu',
    '--arch',
    'x86_64',
  ]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(after(podmanCalls()[0]!, '--platforms'), ['metal,metal4k,qemu']);
  const dir = join(out, 'builds', VERSION, 'x86_64');
  const m = meta('x86_64');
  const n = `rocknsm-coreos-${VERSION}`;
  assert.is(m.images.metal4k.path, `${n}-metal4k.x86_64.raw.xz`);
  assert.is(sh('xz', ['-d', '-c', join(dir, m.images.metal4k.path)]).slice(0, 8), 'metal4k\0');
  // The publish plan, from this meta.json (the image push adds the digest).
  const plan = planSite({
    stream: 'stable',
    version: VERSION,
    requireArches: ['x86_64'],
    builds: [{ arch: 'x86_64', dir, meta: { ...m, 'rocknsm.image-digest': `sha256:${'0'.repeat(64)}` } }],
    baseUrl: 'https://sensors.example/rock',
    imageRepo: 'ghcr.io/rocknsm/rocknsm-coreos',
    existing: { files: {} },
    now: Date.UTC(2026, 10, 23),
    signed: false,
  });
  const stream = plan.documents.find((d) => d.kind === 'stream')!.json as {
    architectures: Record<
      string,
      { artifacts: Record<string, { formats: Record<string, { disk?: { location: string } }> }> }
    >;
  };
  const artifacts = stream.architectures.x86_64!.artifacts;
  assert.not.ok('metal4k' in artifacts);
  assert.match(
    artifacts.metal!.formats['4k.raw.xz']!.disk!.location,
    new RegExp(`/${n}-metal4k\\.x86_64\\.raw\\.xz$`),
  );
  assert.match(
    artifacts.metal!.formats['raw.xz']!.disk!.location,
    new RegExp(`/${n}-metal\\.x86_64\\.raw\\.xz$`),
  );
});

test('coreos: --imgref demands signatures only of an image carrying our policy (publish.trust)', () => {
  const job = {
    arch: 'x86_64' as const,
    name: 'rocknsm-coreos',
    version: VERSION,
    osname: 'rocknsm',
    archive: archive('x86_64'),
    work: '/w',
    platforms: ['metal' as const],
    created: '2026-11-23T00:00:00Z',
    pxe: { baseUrl: '', ignitionUrl: '' },
    targetImgref: 'ghcr.io/rocknsm/rocknsm-coreos:testing',
  };
  assert.equal(after(coreosArgs({ ...job, signed: true }), '--imgref'), [
    'ostree-image-signed:docker://ghcr.io/rocknsm/rocknsm-coreos:testing',
  ]);
  // Without our policy the image's default accepts anything, and a signed origin would refuse
  // every update: the same registry reference, unverified.
  for (const signed of [false, undefined])
    assert.equal(after(coreosArgs({ ...job, signed }), '--imgref'), [
      'ostree-unverified-registry:ghcr.io/rocknsm/rocknsm-coreos:testing',
    ]);
  assert.not.ok(coreosArgs({ ...job, targetImgref: undefined, signed: true }).includes('--imgref'));
});

test('coreos: a foreign arch is refused (osbuild runs a VM of the builder arch), exit 69', () => {
  rmSync(podmanLog, { force: true });
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'coreos',
    '--platform',
    'metal',
    '--arch',
    'aarch64',
  ]);
  assert.is(r.code, 69, r.stderr);
  assert.match(r.stderr, /builds aarch64 only on a aarch64 host/);
  assert.equal(podmanCalls(), []);
  assert.is(meta('aarch64').images.metal, undefined);
});

test('plan --artifacts shows every backend with the same command lines', () => {
  const r = cli(['plan', '--artifacts', '--build', out, '--arch', 'x86_64', '--platform', 'metal,qemu,pxe']);
  assert.is(r.code, 0, r.stderr);
  // The shipped stable stream makes its artifacts with the coreos backend.
  assert.match(r.stdout, /^## backend coreos \(selected\)$/m);
  assert.match(r.stdout, /^## backend native$/m);
  assert.match(
    r.stdout,
    /^\$ sgdisk --zap-all --disk-guid \S+ --new 1:2048:4095 --change-name 1:BIOS-BOOT /m,
  );
  // The image's own ostree and GRUB, run from the unpacked image, or the host's: the image decides
  // (run-time inputs, recorded by the run; native.test.ts compares the plan with a run).
  assert.match(
    r.stdout,
    /^\$ chroot \S+\/toolroot\/root ostree admin deploy .*--karg-append=ignition\.platform\.id=metal .*"--karg-append=\$\{IMAGE_KARGS\}"/m,
  );
  assert.match(r.stdout, /^\$ ostree admin deploy --sysroot=\S+\/sysroot /m);
  assert.match(
    r.stdout,
    /^# with the image's GRUB \(IMAGE_GRUB=yes\):\n\$ chroot \S+\/toolroot\/root "\$\{IMAGE_GRUB_MKIMAGE\}" -O i386-pc -d \/usr\/lib\/grub\/i386-pc .* "\$\{IMAGE_BLS_i386_pc\}"$/m,
  );
  assert.match(
    r.stdout,
    /^\$ grub-mkimage -O i386-pc -d \/usr\/lib\/grub\/i386-pc -o \S+\/grub\/core\.img /m,
  );
  assert.match(
    r.stdout,
    /^# \[in process\] write \S+\/boot\/grub2\/grub\.cfg \(\d+ bytes: the static config that runs blscfg\)$/m,
  );
  assert.match(r.stdout, /^## backend bootc$\n# bootc install makes disks only, not PXE files/m);
  assert.match(
    r.stdout,
    /^\$ podman run --rm --privileged --pid=host .* bootc install to-disk --generic-image --via-loopback /m,
  );
  assert.match(r.stdout, /^\$ podman run .* quay\.io\/fedora\/fedora:41 -euc '/m);
  // The first-boot stamp of each bootc disk, between its install and the qcow2 conversion.
  const bootcPart = r.stdout.slice(
    r.stdout.indexOf('## backend bootc'),
    r.stdout.indexOf('## backend coreos'),
  );
  const lines = bootcPart.split('\n').filter((l) => l.startsWith('$ '));
  const w = join(out, 'work/artifacts/x86_64');
  const at = lines.findIndex((l) => l.includes(`/output/qemu-bootc.raw`));
  assert.equal(lines.slice(at + 1), [
    `$ sgdisk --print ${w}/qemu-bootc.raw`,
    `$ blkid --probe --offset '<partition start>' --size '<partition size>' --output export ${w}/qemu-bootc.raw`,
    `$ losetup --find --show --offset '<boot start>' --sizelimit '<boot size>' ${w}/qemu-bootc.raw`,
    `$ mount /dev/loopB ${w}/boot-mnt`,
    `$ touch ${w}/boot-mnt/ignition.firstboot`,
    `$ umount ${w}/boot-mnt`,
    '$ losetup --detach /dev/loopB',
    `$ qemu-img convert -f raw -O qcow2 ${w}/qemu-bootc.raw ${w}/rocknsm-coreos-${VERSION}-qemu.x86_64.qcow2`,
  ]);
});

test.run();
