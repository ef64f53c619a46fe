// The real `rock-image artifacts` with the native backend, on a real build of both arches from
// the FCOS-shaped fixture bases: the disks are read back with sgdisk, blkid, xfs_db, mtools and
// read-only loop mounts, the PXE files with cpio and unsquashfs, the compressed files with
// zstd/xz, and every boot chain (BIOS and UEFI on x86_64, UEFI on aarch64) is started in QEMU
// until GRUB runs the menu entry rendered from the BLS entry.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TYPE_GUID } from '../../pipeline/artifacts/layout.ts';
import { newcDataOffset } from '../../pipeline/artifacts/newc.ts';
import { initramfsNames } from '../../pipeline/exec/initramfs.ts';
import { cpioNewcArgs } from '../../pipeline/exec/mkfs.ts';
import { bootVm, UEFI_FIRMWARE } from '../../pipeline/exec/qemu.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { cacheDir, fcosBase, KVER, repoRoot } from '../world/fcos-base.ts';
import { cpioFile, needTool, sh, shResult, withImageMount } from '../world/tools.ts';
import { type ArchPlan, planFor } from './plan-compare.ts';

const work = join(cacheDir, `artifacts-${process.pid}`);
const out = join(work, 'out');
const VERSION = '41.20261122.3.0';
const NAME = 'rocknsm-coreos';
const OS = 'rocknsm-coreos';
const arches = ['x86_64', 'aarch64'] as const;
type A = (typeof arches)[number];
const cli = (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: { CI: 'true' } });
const dir = (arch: A) => join(out, 'builds', VERSION, arch);
const meta = (arch: A) => JSON.parse(readFileSync(join(dir(arch), 'meta.json'), 'utf8'));
const sha256 = (file: string) => sh('sha256sum', [file]).split(' ')[0];
const raw = (arch: A) => join(work, `metal-${arch}.raw`);

/** Partition table of a disk image as sgdisk reports it, per partition number. */
function partitions(file: string) {
  const out: Record<number, { start: number; end: number; type: string; name: string; guid: string }> = {};
  for (const n of [1, 2, 3, 4]) {
    const info = sh('sgdisk', ['--info', String(n), file]);
    const field = (re: RegExp) => re.exec(info)?.[1] ?? '';
    out[n] = {
      type: field(/Partition GUID code: (\S+)/),
      guid: field(/Partition unique GUID: (\S+)/),
      start: Number(field(/First sector: (\d+)/)),
      end: Number(field(/Last sector: (\d+)/)),
      name: field(/Partition name: '([^']*)'/),
    };
  }
  return out;
}

/** blkid's view of the filesystem at a byte offset of the image. */
function probe(file: string, offset: number): Record<string, string> {
  const text = sh('blkid', ['--probe', '--offset', String(offset), '--output', 'export', file]);
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
}

/** Mounts a partition (sectors `start`..`end`) of an image read-only for `fn`, then lets go of it. */
function withMount<T>(file: string, start: number, end: number, fn: (dir: string) => T): T {
  const mnt = join(work, `mnt-${start}-${Math.random().toString(36).slice(2)}`);
  return withImageMount(file, start * 512, (end - start + 1) * 512, mnt, fn);
}

/** The first `bytes` bytes of a file. */
function head(file: string, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, bytes, 0);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** The machine field of a PE/COFF (EFI) binary. */
function peMachine(buf: Buffer): number {
  const pe = buf.readUInt32LE(0x3c);
  assert.is(buf.toString('latin1', pe, pe + 4), 'PE\0\0');
  return buf.readUInt16LE(pe + 4);
}

test.before(() => {
  for (const t of [
    'buildah',
    'skopeo',
    'umoci',
    'sgdisk',
    'mkfs.xfs',
    'mkfs.vfat',
    'mcopy',
    'ostree',
    'grub-mkimage',
  ])
    needTool(t);
  for (const t of ['zstd', 'xz', 'blkid', 'dumpe2fs', 'xfs_db', 'losetup', 'cpio', 'unsquashfs', 'qemu-img'])
    needTool(t);
  rmSync(work, { recursive: true, force: true });
  const r = cli([
    'build',
    '--stream',
    'stable',
    '--base',
    `x86_64=${fcosBase('x86_64', 'tools')}`,
    '--base',
    `aarch64=${fcosBase('aarch64', 'tools')}`,
    '--output',
    out,
    '--storage',
    join(work, 'storage'),
    '--version',
    VERSION,
  ]);
  if (r.code !== 0) throw new Error(`fixture build failed:\n${r.stderr}`);
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('artifacts: native backend makes metal, qemu and PXE for both arches (zstd)', () => {
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'native',
    // What the native backend makes of the shipped stream's list (no metal4k, no live ISO).
    '--platform',
    'metal,qemu,pxe',
    '--compression',
    'zstd',
  ]);
  assert.is(r.code, 0, r.stderr);
  // The run mounted its filesystems in a mount namespace of its own (exec/mount-namespace.ts):
  // its log names one that is not this test's.
  const ns = /mount namespace (mnt:\[\d+\])/.exec(r.stderr)?.[1];
  assert.ok(ns, 'the artifacts run names its mount namespace');
  assert.is.not(ns, readlinkSync('/proc/self/ns/mnt'));
  for (const arch of arches) {
    const m = meta(arch);
    const keys = Object.keys(m.images).sort();
    const expected = [
      'live-initramfs',
      'live-kernel',
      'live-rootfs',
      'metal',
      'pxe-grub',
      'pxe-ipxe',
      'qemu',
    ];
    if (arch === 'x86_64') expected.push('pxe-pxelinux');
    for (const k of expected) assert.ok(keys.includes(k), `${arch}: meta.json images.${k}`);
    assert.ok(keys.includes('ostree'), 'the build entry stays');
    assert.equal(m['rocknsm.artifacts'], {
      backend: 'native',
      compression: 'zstd',
      platforms: ['metal', 'qemu', 'pxe'],
    });
    assert.is(m.images.metal.path, `${NAME}-${VERSION}-metal.${arch}.raw.zst`);
    assert.is(m.images.qemu.path, `${NAME}-${VERSION}-qemu.${arch}.qcow2.zst`);
    assert.is(m.images['live-kernel'].path, `${NAME}-${VERSION}-live-kernel.${arch}`);
    assert.is(m.images['live-initramfs'].path, `${NAME}-${VERSION}-live-initramfs.${arch}.img`);
    assert.is(m.images['live-rootfs'].path, `${NAME}-${VERSION}-live-rootfs.${arch}.img`);
    // Only what meta.json lists is left in the build directory; the work area is gone.
    const listed = new Set(Object.values(m.images).map((i) => (i as { path: string }).path));
    for (const f of readdirSync(dir(arch)))
      if (!['meta.json', 'Containerfile'].includes(f))
        assert.ok(listed.has(f), `${arch}: unlisted file ${f}`);
  }
  assert.not.ok(existsSync(join(out, 'work', 'artifacts', 'x86_64')));
});

test('artifacts: meta.json sha256 and sizes; compressed entries keep the uncompressed ones', () => {
  for (const arch of arches) {
    const m = meta(arch);
    for (const [key, img] of Object.entries(m.images) as [string, Record<string, unknown>][]) {
      const file = join(dir(arch), img.path as string);
      assert.is(statSync(file).size, img.size, `${arch} ${key} size`);
      assert.is(sha256(file), img.sha256, `${arch} ${key} sha256`);
    }
    for (const key of ['metal', 'qemu']) {
      const img = m.images[key];
      const file = join(dir(arch), img.path);
      // zstd frame magic, then the content it decompresses to.
      assert.equal([...readFileSync(file).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
      const plain = key === 'metal' ? raw(arch) : join(work, `qemu-${arch}.qcow2`);
      sh('zstd', ['-d', '-q', '-f', file, '-o', plain]);
      assert.is(statSync(plain).size, img['uncompressed-size']);
      assert.is(sha256(plain), img['uncompressed-sha256']);
      assert.is(img['skip-compression'], undefined);
    }
    for (const key of ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe', 'pxe-grub'])
      assert.is(m.images[key]['skip-compression'], true, key);
  }
});

/** The events of the JSON logs of `rock-image artifacts` in a build directory, one list per run. */
function artifactLogs(dir: string): Record<string, unknown>[][] {
  return readdirSync(join(dir, 'logs'))
    .filter((f) => f.startsWith('artifacts-'))
    .sort()
    .map((f) =>
      readFileSync(join(dir, 'logs', f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
}

/** `rock-image plan --artifacts --json` for the native backend, per arch. */
function nativePlans(dir: string, args: string[]): ArchPlan[] {
  const r = cli(['plan', '--artifacts', '--json', '--build', dir, '--backend', 'native', ...args]);
  assert.is(r.code, 0, r.stderr);
  const backends = JSON.parse(r.stdout).backends as { backend: string; arches: ArchPlan[] }[];
  return backends.find((b) => b.backend === 'native')!.arches;
}

test('plan --artifacts is what ran: the same commands, order and arguments, once the recorded inputs are put in', () => {
  const [log, ...later] = artifactLogs(out);
  assert.is(later.length, 0, 'one artifacts run so far');
  const platformArgs = ['--platform', 'metal,qemu,pxe', '--compression', 'zstd'];
  const plans = nativePlans(out, platformArgs);
  const text = cli(['plan', '--artifacts', '--build', out, '--backend', 'native', ...platformArgs]);
  assert.is(text.code, 0, text.stderr);
  const nativeText = text.stdout.slice(text.stdout.indexOf('## backend native'));
  for (const arch of arches) {
    const plan = plans.find((p) => p.arch === arch)!;
    const mine = log!.filter((e) => e.tag === arch);
    const values = Object.fromEntries(
      mine
        .filter((e) => e.event === 'plan-input')
        .map((e) => [e.name as string, e.value as string | string[]]),
    );
    // The fixture base has neither ostree nor GRUB: the host's ran (the image's are the sensor
    // suites' and native-variants.test.ts's).
    assert.equal([values.IMAGE_OSTREE, values.IMAGE_GRUB], ['no', 'no']);
    // Every input the plan names for this variant was recorded, and only those.
    assert.equal(
      Object.keys(values).sort(),
      plan.inputs
        .filter((i) => i.when !== 'image-grub')
        .map((i) => i.name)
        .sort(),
      arch,
    );
    for (const k of ['LOOP_ROOT', 'LOOP_BOOT', 'LOOP_BOOT_QEMU', 'LOOP_BOOT_METAL'])
      assert.match(values[k] as string, /^\/dev\/loop\d+$/, k);
    // The recorded root size is the disk's root partition.
    const p = partitions(raw(arch));
    assert.is(Number(values.ROOT_SIZE_MiB), (p[4]!.end - p[4]!.start + 1) / 2048);
    assert.is(Number(values.ROOT_LAST_SECTOR), p[4]!.end);
    assert.is(Number(values.DISK_BYTES), statSync(raw(arch)).size);

    const { active, commands } = planFor(plan.steps, values);
    const ran = mine.filter((e) => e.event === 'command').map((e) => e.argv as string[]);
    assert.ok(commands.length > 30, `${commands.length} planned commands`);
    assert.equal(
      ran.slice(0, commands.length),
      commands.map((c) => c.argv),
    );
    // After the backend, only the compression of the two disk images, one after the other, each
    // punched out as it is read (makeArtifacts, exec/compress.ts compressConsuming).
    const after = ran.slice(commands.length);
    assert.equal(
      after.filter((a) => a[0] !== 'fallocate').map((a) => a[0]),
      ['zstd', 'zstd'],
    );
    for (const a of after.filter((x) => x[0] === 'fallocate')) assert.is(a[1], '--punch-hole');
    // The steps that ran (commands and in-process work alike) are the plan's stages, in order.
    const stages = active.map((s) => s.stage).filter((s, i, a) => a[i - 1] !== s);
    const started = mine
      .filter((e) => e.event === 'step-start' && !(e.step as string).startsWith('compress '))
      .map((e) => e.step);
    assert.equal(started, stages);
    // The printed text shows the same steps: each command after `$`, in-process ones as such.
    const section = nativeText.slice(nativeText.indexOf(`### ${arch}`)).split('\n### ')[0]!;
    const lines = section.split('\n').filter((l) => l.startsWith('$ ') || l.startsWith('# [in process] '));
    assert.is(lines.length, plan.steps.length);
    plan.steps.forEach((s, i) => {
      assert.ok(
        s.argv
          ? lines[i]!.startsWith('$ ') && lines[i]!.includes(` ${s.argv[0]} `)
          : lines[i] === `# [in process] ${s.what}`,
        lines[i],
      );
    });
  }
});

test('metal: FCOS partition table (labels, type GUIDs, sizes, 1 MiB alignment)', () => {
  for (const arch of arches) {
    const p = partitions(raw(arch));
    const mib = (n: number) => (p[n]!.end - p[n]!.start + 1) / 2048;
    assert.is(p[1]!.name, arch === 'x86_64' ? 'BIOS-BOOT' : 'reserved');
    assert.is(p[1]!.type, arch === 'x86_64' ? TYPE_GUID.biosBoot : TYPE_GUID.reserved);
    assert.is(p[2]!.name, 'EFI-SYSTEM');
    assert.is(p[2]!.type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    assert.is(p[3]!.name, 'boot');
    // Linux filesystem data for both, as coreos-assembler's create_disk.sh makes them.
    assert.is(p[3]!.type, '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
    assert.is(p[4]!.name, 'root');
    assert.is(p[4]!.type, '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
    assert.equal([mib(1), mib(2), mib(3)], [1, 127, 384]);
    assert.ok(mib(4) >= 512, `root is ${mib(4)} MiB`);
    for (const n of [1, 2, 3, 4]) assert.is(p[n]!.start % 2048, 0, `partition ${n} aligned`);
    assert.is(p[1]!.start, 2048);
    for (const n of [2, 3, 4]) assert.is(p[n]!.start, p[n - 1]!.end + 1, `partition ${n} follows ${n - 1}`);
    const verify = sh('sgdisk', ['--verify', raw(arch)]);
    assert.match(verify, /No problems found/);
  }
});

test("metal: filesystems (vfat EFI-SYSTEM, ext4 boot, xfs root) with Fedora CoreOS's sentinel UUIDs, no root= yet", () => {
  for (const arch of arches) {
    const p = partitions(raw(arch));
    const esp = probe(raw(arch), p[2]!.start * 512);
    assert.is(esp.TYPE, 'vfat');
    assert.is(esp.LABEL, 'EFI-SYSTEM');
    const boot = probe(raw(arch), p[3]!.start * 512);
    assert.is(boot.TYPE, 'ext4');
    assert.is(boot.LABEL, 'boot');
    const root = probe(raw(arch), p[4]!.start * 512);
    assert.is(root.TYPE, 'xfs');
    assert.is(root.LABEL, 'root');
    // The values FCOS's first boot replaces, only when it finds them (fedora-coreos-config
    // 40ignition-ostree/ignition-ostree-firstboot-uuid:12-35 @2d0fce6d: TYPE and UUID compared).
    assert.is(boot.UUID, '96d15588-3596-4b3c-adca-a2ff7279ea63');
    assert.is(root.UUID, '910678ff-f77e-4a7d-8d53-86f2ac47a823');
    // The disk's sentinel GUID (35coreos-ignition/coreos-gpt-setup.sh:7,24-27 @2d0fce6d).
    assert.match(
      sh('sgdisk', ['--print', raw(arch)]),
      /^Disk identifier \(GUID\): 00000000-0000-4000-A000-000000000001$/m,
    );
    // metadata_csum_seed: tune2fs -U can change the UUID of the mounted boot filesystem
    // (coreos-assembler build.raw-image.ipp.yaml:54-57 @05db482e).
    const features = sh('dumpe2fs', ['-h', `${raw(arch)}?offset=${p[3]!.start * 512}`]);
    assert.match(features, /^Filesystem features:.*\bmetadata_csum_seed\b/m);
    // xfs_db reads the superblock straight from the partition (read-only loop).
    const loop = sh('losetup', [
      '--find',
      '--show',
      '--read-only',
      '--offset',
      String(p[4]!.start * 512),
      '--sizelimit',
      String((p[4]!.end - p[4]!.start + 1) * 512),
      raw(arch),
    ]).trim();
    try {
      const db = sh('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p fname', '-c', 'p uuid', loop]);
      assert.match(db, /fname = "root\\000\\000\\000\\000\\000\\000\\000\\000"/);
      assert.match(db, new RegExp(`uuid = ${root.UUID}`));
    } finally {
      sh('losetup', ['--detach', loop]);
    }
    const entry = withMount(raw(arch), p[3]!.start, p[3]!.end, (b) =>
      readFileSync(join(b, 'loader/entries', `ostree-1-${OS}.conf`), 'utf8'),
    );
    // No root=, boot= or rootflags= until the first boot has new UUIDs to name (rdcore rootmap and
    // bind-boot add them: fedora-coreos-config 35coreos-ignition/coreos-boot-edit.sh:31-45).
    const options = /^options (.*)$/m.exec(entry)?.[1] ?? '';
    assert.not.match(options, /(^| )(root|boot|rootflags)=/, options);
    assert.match(options, /(^| )rw( |$)/);
  }
});

test('metal: ostree deployment, BLS entry, kernel and grub.cfg rendered from it', () => {
  for (const arch of arches) {
    const p = partitions(raw(arch));
    const { bootcsum, kargs } = withMount(raw(arch), p[4]!.start, p[4]!.end, (root) => {
      const deploys = readdirSync(join(root, 'ostree/deploy', OS, 'deploy')).filter(
        (d) => !d.endsWith('.origin'),
      );
      assert.is(deploys.length, 1);
      const d = join(root, 'ostree/deploy', OS, 'deploy', deploys[0]!);
      const osr = readFileSync(join(d, 'usr/lib/os-release'), 'utf8');
      assert.match(osr, /^VARIANT_ID=rocknsm$/m);
      assert.match(osr, new RegExp(`^IMAGE_VERSION=${VERSION.replace(/\./g, '\\.')}$`, 'm'));
      // /etc of the deployment comes from the image's /etc (moved to /usr/etc for ostree).
      assert.ok(existsSync(join(d, 'usr/etc/passwd')));
      assert.ok(existsSync(join(d, 'etc/passwd')));
      // The aleph file, as osbuild's org.osbuild.ostree.aleph writes it with coreos_compat
      // (stages/org.osbuild.ostree.aleph:9-10,23-28,127-133 @f6b23dbc): a symlink to .aleph-version.json.
      assert.is(sh('readlink', [join(root, '.coreos-aleph-version.json')]).trim(), '.aleph-version.json');
      const aleph = JSON.parse(readFileSync(join(root, '.aleph-version.json'), 'utf8'));
      assert.is(aleph.version, VERSION);
      assert.is(aleph.ref, `${OS}/${VERSION}/${arch}`);
      assert.match(aleph['ostree-commit'], /^[0-9a-f]{64}$/);
      assert.is(
        readFileSync(join(root, 'ostree/repo/config'), 'utf8').match(/bootloader=(\w+)/)?.[1],
        'none',
      );
      // The image's kargs.d arguments (when the stream has any) are on the command line too.
      const tomlFile = join(d, 'usr/lib/bootc/kargs.d/10-rocknsm.toml');
      const toml = existsSync(tomlFile) ? readFileSync(tomlFile, 'utf8') : '';
      const kargs = JSON.parse(/^kargs = (\[.*\])$/m.exec(toml)?.[1] ?? '[]') as string[];
      // ostree=/ostree/boot.1/<os>/<bootcsum>/0 leads to the deployment.
      const bootcsums = readdirSync(join(root, 'ostree/boot.1', OS));
      assert.is(bootcsums.length, 1);
      const link = sh('readlink', [join(root, 'ostree/boot.1', OS, bootcsums[0]!, '0')]).trim();
      assert.ok(link.endsWith(`deploy/${OS}/deploy/${deploys[0]}`), link);
      return { bootcsum: bootcsums[0]!, kargs };
    });
    withMount(raw(arch), p[3]!.start, p[3]!.end, (boot) => {
      const entry = readFileSync(join(boot, 'loader/entries', `ostree-1-${OS}.conf`), 'utf8');
      const field = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(entry)?.[1] ?? '';
      const options = field('options');
      for (const k of [
        'ignition.platform.id=metal',
        '$ignition_firstboot',
        'console=tty0',
        `console=${arch === 'x86_64' ? 'ttyS0' : 'ttyAMA0'},115200n8`,
        ...kargs,
      ])
        assert.ok(options.split(' ').includes(k), `${arch}: karg ${k} in ${options}`);
      assert.ok(options.split(' ').includes(`ostree=/ostree/boot.1/${OS}/${bootcsum}/0`), options);
      const linux = field('linux');
      assert.match(linux, new RegExp(`^/ostree/${OS}-[0-9a-f]{64}/vmlinuz-${KVER[arch]}$`));
      // ostree copied the image's own kernel and initramfs.
      assert.is(readFileSync(join(boot, linux), 'utf8'), `fixture kernel ${KVER[arch]}\n`);
      assert.match(cpioFile(join(boot, field('initrd')), 'dracut.record'), /^dracut .*--reproducible/);
      const grub = readFileSync(join(boot, 'grub2/grub.cfg'), 'utf8');
      assert.ok(grub.includes(`  linux ${linux} ${options}\n`), 'grub.cfg linux line = BLS linux + options');
      assert.ok(grub.includes(`  initrd ${field('initrd')}\n`));
      assert.ok(grub.includes(`menuentry '${field('title')}'`));
      assert.match(grub, /source \(\$root\)\/ignition\.firstboot/);
      assert.ok(existsSync(join(boot, 'ignition.firstboot')));
      const targets = arch === 'x86_64' ? ['i386-pc', 'x86_64-efi'] : ['arm64-efi'];
      assert.equal(
        readdirSync(join(boot, 'grub2'))
          .filter((f) => f !== 'grub.cfg')
          .sort(),
        targets.sort(),
      );
      for (const t of targets) assert.ok(existsSync(join(boot, 'grub2', t, 'normal.mod')));
    });
  }
});

test('metal: EFI binaries on the ESP are GRUB for the right machine; BIOS boot code in place', () => {
  for (const arch of arches) {
    const p = partitions(raw(arch));
    const img = `${raw(arch)}@@${p[2]!.start * 512}`;
    const name = arch === 'x86_64' ? 'BOOTX64.EFI' : 'BOOTAA64.EFI';
    const listing = sh('mdir', ['-b', '-i', img, '::/EFI/BOOT']);
    assert.equal(listing.trim().split('\n'), [`::/EFI/BOOT/${name}`]);
    const efi = join(work, `${arch}-${name}`);
    sh('mcopy', ['-o', '-i', img, `::/EFI/BOOT/${name}`, efi]);
    const bin = readFileSync(efi);
    assert.is(peMachine(bin), arch === 'x86_64' ? 0x8664 : 0xaa64);
    // The embedded early config finds the boot filesystem by label.
    assert.ok(bin.includes('search --no-floppy --label boot --set bootfs'));
    assert.ok(bin.includes('set prefix=($root)/grub2'));
    const espFile = join(work, `esp-${arch}.img`);
    sh('dd', [
      `if=${raw(arch)}`,
      `of=${espFile}`,
      'bs=1M',
      `skip=${p[2]!.start / 2048}`,
      'count=127',
      'status=none',
    ]);
    const fsck = shResult('fsck.vfat', ['-n', espFile]);
    assert.is(fsck.code, 0, fsck.stdout + fsck.stderr);
    rmSync(espFile);
  }
  const disk = head(raw('x86_64'), 2048 * 512 + 1024);
  const bootImg = readFileSync('/usr/lib/grub/i386-pc/boot.img');
  assert.ok(disk.subarray(0, 0x5c).equals(bootImg.subarray(0, 0x5c)), 'boot.img code in the MBR');
  assert.is(disk.readBigUInt64LE(0x5c), 2048n, 'boot.img points at BIOS-BOOT');
  assert.is(disk.readUInt16LE(510), 0xaa55);
  assert.is(disk[0x1c2], 0xee, 'protective MBR partition kept');
  const diskboot = readFileSync('/usr/lib/grub/i386-pc/diskboot.img');
  const core = disk.subarray(2048 * 512);
  assert.ok(core.subarray(0, 0x1f4).equals(diskboot.subarray(0, 0x1f4)), 'core.img starts with diskboot.img');
  assert.is(core.readBigUInt64LE(0x1f4), 2049n);
  assert.is(core.readUInt16LE(0x1fe), 0x820);
  // aarch64 has no BIOS: the MBR stays sgdisk's protective MBR without boot code.
  const arm = head(raw('aarch64'), 512);
  assert.ok(arm.subarray(0, 440).every((b) => b === 0));
});

test('qemu: qcow2 of the metal disk with ignition.platform.id=qemu', () => {
  for (const arch of arches) {
    const q = join(work, `qemu-${arch}.qcow2`);
    const info = JSON.parse(sh('qemu-img', ['info', '--output=json', q]));
    assert.is(info.format, 'qcow2');
    assert.is(info['virtual-size'], statSync(raw(arch)).size);
    const back = join(work, `qemu-${arch}.raw`);
    sh('qemu-img', ['convert', '-O', 'raw', q, back]);
    const p = partitions(back);
    assert.equal(partitions(raw(arch)), p);
    withMount(back, p[3]!.start, p[3]!.end, (boot) => {
      const entry = readFileSync(join(boot, 'loader/entries', `ostree-1-${OS}.conf`), 'utf8');
      assert.match(entry, /^options .*\bignition\.platform\.id=qemu\b/m);
      assert.not.match(entry, /platform\.id=metal/);
      assert.match(readFileSync(join(boot, 'grub2/grub.cfg'), 'utf8'), /ignition\.platform\.id=qemu/);
    });
    rmSync(back);
  }
});

test('pxe: kernel, live initramfs, rootfs (cpio with root.squashfs of the sysroot and the stamp) and boot snippets', async () => {
  for (const arch of arches) {
    const m = meta(arch);
    const f = (k: string) => join(dir(arch), m.images[k].path);
    assert.is(readFileSync(f('live-kernel'), 'utf8'), `fixture kernel ${KVER[arch]}\n`);
    assert.match(cpioFile(f('live-initramfs'), 'dracut.record'), /^dracut .*--reproducible/);
    // Fedora CoreOS's live stamps (fedora-coreos-config 35coreos-live/is-live-image.sh:6 and
    // coreos-livepxe-rootfs.sh:12-21 @2d0fce6d): the initramfs is a live one, the rootfs's stamp
    // equals it (both the version: osbuild coreos.live-artifacts.mono:809-822 @f6b23dbc).
    const names = await initramfsNames(
      createRunner(createLogger({ mode: 'plain', out: { write: () => true } })),
      f('live-initramfs'),
    );
    assert.ok(names.has('etc/coreos-live-initramfs'), [...names].join(' '));
    assert.ok(names.has('dracut.record'));
    const listing = shResult('sh', ['-c', 'cpio -it --quiet < "$1"', 'sh', f('live-rootfs')]);
    assert.equal(listing.stdout.trim().split('\n'), ['root.squashfs', 'etc', 'etc/coreos-live-rootfs']);
    const x = join(work, `live-${arch}`);
    mkdirSync(x, { recursive: true });
    shResult('sh', ['-c', 'cd "$1" && cpio -idm --quiet < "$2"', 'sh', x, f('live-rootfs')]);
    assert.is(readFileSync(join(x, 'etc/coreos-live-rootfs'), 'utf8'), `${VERSION}\n`);
    // Written in place around the squashfs (artifacts/newc.ts), and still byte for byte what cpio
    // makes of the same entries with the flags it was made with before (exec/mkfs.ts
    // cpioNewcArgs). cpio -m gives the files their mtimes back, but not etc, which its stamp
    // changed after: etc's comes from its header (the entry after root.squashfs's data).
    const rootfs = readFileSync(f('live-rootfs'));
    const hexAt = (at: number, field: number) =>
      Number.parseInt(rootfs.toString('latin1', at + 6 + field * 8, at + 14 + field * 8), 16);
    const etcAt = (newcDataOffset('root.squashfs') + hexAt(0, 6) + 3) & ~3;
    assert.is(rootfs.toString('latin1', etcAt + 110, etcAt + 114), 'etc\0');
    utimesSync(join(x, 'etc'), hexAt(etcAt, 5), hexAt(etcAt, 5));
    const again = join(work, `live-${arch}.cpio`);
    sh('cpio', cpioNewcArgs(again), { cwd: x, input: 'root.squashfs\netc\netc/coreos-live-rootfs\n' });
    assert.ok(readFileSync(again).equals(rootfs), 'the live rootfs is what cpio makes of its entries');
    // No ostree= on a live boot: FCOS's live initramfs makes its own (live-generator:37-54).
    for (const sn of ['pxe-ipxe', 'pxe-grub']) assert.not.match(readFileSync(f(sn), 'utf8'), /ostree=/, sn);
    const files = sh('unsquashfs', ['-l', join(x, 'root.squashfs')]);
    assert.match(
      files,
      new RegExp(`squashfs-root/ostree/deploy/${OS}/deploy/[0-9a-f]{64}\\.0/usr/lib/os-release`),
    );
    assert.match(files, /squashfs-root\/ostree\/repo\/config/);
    assert.not.match(files, /squashfs-root\/boot\/loader/);
    // Written at zstd level 3, not mksquashfs's default 15 (squashfs-tools zstd_wrapper.h:37
    // @db038ef2): the superblock keeps a non-default level (zstd_wrapper.c:103, printed by
    // zstd_display_options, :186), which `unsquashfs -s` shows.
    const sb = sh('unsquashfs', ['-s', join(x, 'root.squashfs')]);
    assert.match(sb, /Compression zstd/);
    assert.match(sb, /compression-level 3\b/);

    const base = `https://rocknsm.github.io/rocknsm-coreos/prod/streams/stable/builds/${VERSION}/${arch}`;
    const ign = `${base}/${NAME}-${VERSION}-default.ign`;
    const ipxe = readFileSync(f('pxe-ipxe'), 'utf8');
    assert.match(ipxe, /^#!ipxe\n/);
    assert.ok(ipxe.includes(`\nset base-url ${base}\n`));
    assert.ok(ipxe.includes(`\nset ignition-url ${ign}\n`));
    const kernelLine = /^kernel (.*)$/m.exec(ipxe)![1]!.split(' ');
    assert.is(kernelLine[0], `\${base-url}/${m.images['live-kernel'].path}`);
    assert.equal(kernelLine.slice(1, 6), [
      'initrd=main',
      `coreos.live.rootfs_url=\${base-url}/${m.images['live-rootfs'].path}`,
      'ignition.firstboot',
      'ignition.platform.id=metal',
      `ignition.config.url=\${ignition-url}`,
    ]);
    assert.match(
      ipxe,
      new RegExp(`^initrd --name main \\$\\{base-url\\}/${m.images['live-initramfs'].path}$`, 'm'),
    );
    assert.match(ipxe, /\nboot\n$/);
    const grub = readFileSync(f('pxe-grub'), 'utf8');
    assert.match(
      grub,
      new RegExp(`^  linux ${m.images['live-kernel'].path} coreos\\.live\\.rootfs_url=${base}/`, 'm'),
    );
    assert.ok(grub.includes(`ignition.config.url=${ign}`));
    assert.match(grub, new RegExp(`^  initrd ${m.images['live-initramfs'].path}$`, 'm'));
    if (arch === 'x86_64') {
      const pxelinux = readFileSync(f('pxe-pxelinux'), 'utf8');
      assert.match(pxelinux, new RegExp(`^  KERNEL ${m.images['live-kernel'].path}$`, 'm'));
      assert.match(
        pxelinux,
        new RegExp(
          `^  APPEND initrd=${m.images['live-initramfs'].path} coreos\\.live\\.rootfs_url=${base}/${m.images['live-rootfs'].path} ignition\\.firstboot ignition\\.platform\\.id=metal ignition\\.config\\.url=`,
          'm',
        ),
      );
    } else assert.is(m.images['pxe-pxelinux'], undefined, 'no PXELINUX on aarch64');
  }
});

test('boot: BIOS and UEFI (x86_64) and UEFI (aarch64) reach the GRUB entry rendered from BLS', async () => {
  for (const f of Object.values(UEFI_FIRMWARE))
    if (!existsSync(f)) throw new Error(`${f} is missing: run 'npx rock-image doctor --install test'`);
  const marker = 'rock-image: booting';
  const cases = [
    { arch: 'x86_64', firmware: 'bios' },
    { arch: 'x86_64', firmware: 'uefi' },
    { arch: 'aarch64', firmware: 'uefi' },
  ] as const;
  const results = await Promise.all(
    cases.map((c) => {
      const disk = join(work, `boot-${c.arch}-${c.firmware}.qcow2`);
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', raw(c.arch), disk]);
      return bootVm({
        arch: c.arch,
        firmware: c.firmware,
        drives: [{ file: disk, format: 'qcow2' }],
        serialLog: join(work, `console-${c.arch}-${c.firmware}.log`),
        timeoutSec: 180,
        marker,
      });
    }),
  );
  for (const [i, r] of results.entries())
    assert.is(r.outcome, 'marker', `${cases[i]!.arch} ${cases[i]!.firmware}: ${r.log.slice(-600)}`);
});

test('artifacts: xz (-T0) replaces the zstd files of the platforms made again', () => {
  const before = meta('aarch64');
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--platform',
    'qemu',
    '--arch',
    'aarch64',
    '--backend',
    'native',
    '--compression',
    'xz',
  ]);
  assert.is(r.code, 0, r.stderr);
  const m = meta('aarch64');
  assert.is(m.images.qemu.path, `${NAME}-${VERSION}-qemu.aarch64.qcow2.xz`);
  const file = join(dir('aarch64'), m.images.qemu.path);
  assert.equal([...readFileSync(file).subarray(0, 6)], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  assert.is(shResult('xz', ['-t', file]).code, 0);
  const plain = join(work, 'qemu-aarch64-xz.qcow2');
  sh('sh', ['-c', 'xz -dc "$1" > "$2"', 'sh', file, plain]);
  assert.is(sha256(plain), m.images.qemu['uncompressed-sha256']);
  assert.is(statSync(plain).size, m.images.qemu['uncompressed-size']);
  assert.not.ok(existsSync(join(dir('aarch64'), before.images.qemu.path)), 'the .zst file is gone');
  assert.equal(m.images.metal, before.images.metal, 'other platforms untouched');
  assert.equal(m.images['live-kernel'], before.images['live-kernel']);
  // Multithreaded: the command line the runner logged.
  const logs = readdirSync(join(out, 'logs')).filter((f) => f.startsWith('artifacts-'));
  const argvs = logs.flatMap((f) =>
    readFileSync(join(out, 'logs', f), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === 'command')
      .map((e) => e.argv as string[]),
  );
  // Each image is fed to its compressor through a pipe, its blocks punched out as it is read
  // (exec/compress.ts compressConsuming).
  assert.ok(
    argvs.some(
      (a) => a[0] === 'sh' && a[2] === 'exec xz -T0 -c > "$0"' && a[3]!.endsWith('qemu.aarch64.qcow2.xz'),
    ),
  );
  assert.ok(argvs.some((a) => a[0] === 'zstd' && a[1] === '-T0' && a.includes('-')));
  assert.ok(argvs.some((a) => a[0] === 'fallocate' && a[1] === '--punch-hole'));
});

test('artifacts: refused requests exit 64 before any work, naming the reason', () => {
  const before = readFileSync(join(dir('x86_64'), 'meta.json'), 'utf8');
  const iso = cli(['artifacts', '--build', out, '--backend', 'native', '--platform', 'iso']);
  assert.is(iso.code, 64, iso.stderr);
  assert.match(iso.stderr, /native backend cannot make a live ISO/);
  const k4 = cli(['artifacts', '--build', out, '--backend', 'native', '--platform', 'metal4k']);
  assert.is(k4.code, 64, k4.stderr);
  assert.match(k4.stderr, /native backend cannot make a 4K-sector disk/);
  const bad = cli(['artifacts', '--build', out, '--platform', 'floppy']);
  assert.is(bad.code, 64);
  assert.match(bad.stderr, /unknown platform 'floppy'/);
  const none = cli(['artifacts', '--build', join(work, 'nowhere')]);
  assert.is(none.code, 64);
  assert.match(none.stderr, /builds\.json does not exist/);
  assert.is(readFileSync(join(dir('x86_64'), 'meta.json'), 'utf8'), before);
});

test('artifacts: a failure after the disk is mounted releases mounts and loops, leaves the build as it was', () => {
  // An image without os-release: ostree admin deploy refuses it, with root and boot mounted.
  const bad = join(work, 'bad');
  const rootfs = join(bad, 'rootfs');
  mkdirSync(join(rootfs, `usr/lib/modules/${KVER.x86_64}`), { recursive: true });
  mkdirSync(join(rootfs, 'usr/bin'), { recursive: true });
  writeFileSync(join(rootfs, `usr/lib/modules/${KVER.x86_64}/vmlinuz`), 'k\n');
  writeFileSync(join(rootfs, `usr/lib/modules/${KVER.x86_64}/initramfs.img`), 'i\n');
  const dirOut = join(bad, 'out', 'builds', VERSION, 'x86_64');
  mkdirSync(dirOut, { recursive: true });
  const g = ['--root', join(bad, 'st'), '--runroot', join(bad, 'run'), '--storage-driver', 'vfs'];
  const ctr = sh('buildah', [...g, 'from', 'scratch']).trim();
  sh('buildah', [...g, 'add', ctr, `${rootfs}/`, '/']);
  sh('buildah', [...g, 'commit', '-q', ctr, 'bad:1']);
  sh('buildah', [...g, 'push', '-q', 'bad:1', `oci-archive:${join(dirOut, 'bad.ociarchive')}`]);
  const ostree = {
    path: 'bad.ociarchive',
    sha256: sha256(join(dirOut, 'bad.ociarchive')),
    size: statSync(join(dirOut, 'bad.ociarchive')).size,
  };
  const metaText = `${JSON.stringify({ name: NAME, buildid: VERSION, 'coreos-assembler.basearch': 'x86_64', images: { ostree }, 'rocknsm.stream': 'stable' })}\n`;
  writeFileSync(join(dirOut, 'meta.json'), metaText);
  writeFileSync(
    join(bad, 'out', 'builds', 'builds.json'),
    JSON.stringify({
      'schema-version': '1.0.0',
      builds: [{ id: VERSION, arches: ['x86_64'] }],
      timestamp: '',
    }),
  );
  const r = cli([
    'artifacts',
    '--build',
    join(bad, 'out'),
    '--platform',
    'metal',
    '--backend',
    'native',
    '--compression',
    'zstd',
  ]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /command failed \(exit \d+\): ostree admin deploy/);
  // The host's ostree and GRUB (the image has neither), as the plan's other variant says, up to
  // the deploy that failed; then the plan's own release steps of what was held, in plan order.
  const [log] = artifactLogs(join(bad, 'out'));
  const values = Object.fromEntries(
    log!.filter((e) => e.event === 'plan-input').map((e) => [e.name as string, e.value as string | string[]]),
  );
  assert.equal([values.IMAGE_OSTREE, values.IMAGE_GRUB], ['no', 'no']);
  const { commands } = planFor(
    nativePlans(join(bad, 'out'), ['--platform', 'metal'])[0]!.steps,
    values,
    true,
  );
  const failed = commands.findIndex((c) => c.argv[0] === 'ostree' && c.argv[2] === 'deploy');
  assert.ok(failed > 0);
  const releases = commands
    .slice(failed + 1)
    .filter((c) => ['mnt-boot', 'mnt-root', 'LOOP_BOOT', 'LOOP_ROOT'].includes(c.step.releases ?? ''));
  assert.is(releases.length, 4);
  assert.equal(
    log!.filter((e) => e.event === 'command' && e.tag === 'x86_64').map((e) => e.argv),
    [...commands.slice(0, failed + 1), ...releases].map((c) => c.argv),
  );
  assert.is(readFileSync(join(dirOut, 'meta.json'), 'utf8'), metaText);
  assert.equal(readdirSync(dirOut).sort(), ['bad.ociarchive', 'meta.json']);
  assert.not.ok(existsSync(join(bad, 'out', 'work', 'artifacts', 'x86_64')));
  assert.not.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(bad));
  assert.not.ok(sh('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE']).includes(bad));
});

test.run();
