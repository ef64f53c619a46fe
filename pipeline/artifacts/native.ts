// The `native` backend: disk and PXE artifacts from an image and a few host tools (skopeo, umoci,
// sgdisk, mkfs.*, mtools, mksquashfs, cpio, qemu-img); runs and is tested on a plain Debian host.
//
// The image's own tools where it has them, as bootc install and coreos-assembler use the target's
// own (cosa src/create_disk.sh runs the target's grub2-install with chroot): its ostree deploys it
// (the host's may be too old to write a composefs deployment) and its GRUB, when that GRUB reads
// BLS entries (the `blscfg` command), becomes the bootloader; both run from the unpacked image in
// a tool root (exec/toolroot.ts). An image without them gets the host's ostree and GRUB (and then
// no composefs image, and a menu rendered once from the BLS entries).
//
// Layout and boot decisions (read by the boot harness, `rock-image test`):
// - GPT as formats.md §3 and coreos-assembler's create_disk.sh: 1 BIOS-BOOT (x86_64) / reserved
//   (aarch64) 1 MiB, 2 EFI-SYSTEM 127 MiB vfat, 3 boot 384 MiB ext4, 4 root xfs (1.5x the image +
//   256 MiB, at least 512 MiB; Ignition grows it); boot and root typed Linux filesystem data. The
//   disk GUID and the boot and root filesystem UUIDs are Fedora CoreOS's sentinels (layout.ts:
//   the first boot replaces them and moves the backup GPT to the end of the real disk); boot is
//   ext4 with metadata_csum_seed; partition GUIDs are derived from name/version/arch. The aleph
//   file /.aleph-version.json (and the /.coreos-aleph-version.json link) says what was deployed.
// - The image tree is committed as is, except /etc moved to /usr/etc (ostree's convention) and
//   /var emptied (tmpfiles.d recreates it); stateroot = image.yaml `osname` (rocknsm-coreos,
//   the com.coreos.osname label; written <os> below), deployed with
//   `ostree admin deploy`, sysroot.bootloader=none, so ostree writes BLS entries only:
//   /boot/loader/entries/ostree-<N>[-<os>].conf, kernel and initramfs copied from
//   /usr/lib/modules/<kver>/{vmlinuz,initramfs.img} to /boot/ostree/<os>-<bootcsum>/.
// - Kernel arguments (BLS `options`): rw $ignition_firstboot mitigations=auto,nosmt
//   ignition.platform.id=metal|qemu console=tty0 console=ttyS0,115200n8 (aarch64: ttyAMA0), then
//   the image's /usr/lib/bootc/kargs.d arguments, then ostree's own
//   ostree=/ostree/boot.1/<os>/<bootcsum>/0. No root= or boot=: as on Fedora CoreOS, the first
//   boot mounts the filesystems labelled root and boot, gives them new UUIDs, and appends
//   root=UUID= rw rootflags=prjquota boot=UUID= to the entry (layout.ts diskKargs).
// - GRUB: core images from grub-mkimage with an embedded config that searches the filesystem
//   labelled `boot`: BIOS core.img in BIOS-BOOT + boot.img in the MBR (x86_64); EFI/BOOT/BOOTX64.EFI
//   (x86_64) or EFI/BOOT/BOOTAA64.EFI (aarch64) on the ESP; module directories in
//   /boot/grub2/<target>/. /boot/grub2/grub.cfg expands $ignition_firstboot to "ignition.firstboot"
//   while /boot/ignition.firstboot exists, then either runs `blscfg` (the image's GRUB: updates and
//   rollbacks boot without touching it) or lists the BLS entries as menu entries (the host's).
// - qemu qcow2: the metal disk with ignition.platform.id=qemu in the BLS entry.
// - PXE: live-kernel is the deployed kernel; live-initramfs the deployed initramfs followed by a
//   cpio with /etc/coreos-live-initramfs; live-rootfs a newc cpio holding root.squashfs, a
//   squashfs (zstd) of the root filesystem (/ostree: repo and deployment), and
//   /etc/coreos-live-rootfs; both stamps hold the version. Snippets carry formats.md §7's
//   arguments plus console and the image's kargs, and no ostree= (FCOS's live initramfs finds
//   the deployment itself).
// - What this backend cannot give, and why publishing refuses its disks unless a stream allows
//   them: no SELinux labels (nothing here labels the tree; the system boots with whatever the
//   policy makes of unlabelled files), no container origin (the deployment comes from a local
//   ostree commit, so Zincati, rpm-ostree and bootc have no image to update from), and with an
//   image whose GRUB lacks blscfg a menu rendered once. No live ISO, no metal4k.
import {
  closeSync,
  cpSync,
  createReadStream,
  existsSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { PipelineError, ToolMissingError } from '../errors.ts';
import {
  type GrubSource,
  type GrubTarget,
  hostGrub,
  imageGrub,
  installBios,
  mkimageArgs,
} from '../exec/grub.ts';
import { concatInitrds } from '../exec/initramfs.ts';
import { attachRange, type LoopDevice, type Mounted, mount, mountsUnder } from '../exec/losetup.ts';
import {
  cpioNewc,
  cpioNewcArgs,
  fatCopy,
  fatMkdirs,
  mkfsExt4,
  mkfsExt4Args,
  mkfsVfat,
  mkfsXfs,
  mkfsXfsArgs,
  mksquashfs,
  mksquashfsArgs,
} from '../exec/mkfs.ts';
import { Ostree } from '../exec/ostree.ts';
import { qcow2Args, toQcow2 } from '../exec/qemu-img.ts';
import { kernelVersions } from '../exec/rootfs.ts';
import { partition, sgdiskArgs } from '../exec/sgdisk.ts';
import { archiveCopyArgs } from '../exec/skopeo.ts';
import { openToolRoot, type ToolRoot } from '../exec/toolroot.ts';
import { canRunArch, hostArch } from '../exec/tools.ts';
import { unpackArchive } from '../exec/umoci.ts';
import type { ArtifactBackend, BackendContext, Produced } from './backend.ts';
import {
  type Arch,
  artifactFile,
  type BlsEntry,
  diskKargs,
  diskLayout,
  earlyGrubConfig,
  kargsFromToml,
  MIN_ROOT_MiB,
  type Platform,
  parseBls,
  pxeSnippets,
  renderBlsGrubCfg,
  renderGrubCfg,
  rootSizeMiB,
  setPlatformId,
} from './layout.ts';

const efiBinary: Record<Arch, { target: GrubTarget; file: string }> = {
  x86_64: { target: 'x86_64-efi', file: 'BOOTX64.EFI' },
  aarch64: { target: 'arm64-efi', file: 'BOOTAA64.EFI' },
};

/** GRUB targets whose modules go to /boot/grub2/<target>/ on each arch. */
const grubTargets: Record<Arch, GrubTarget[]> = { x86_64: ['i386-pc', 'x86_64-efi'], aarch64: ['arm64-efi'] };

/** Moves /etc into /usr/etc (ostree's place for defaults), empties /var, adds /ostree -> sysroot/ostree. */
export function ostreeShape(rootfs: string): void {
  const etc = join(rootfs, 'etc');
  if (existsSync(etc)) {
    mkdirSync(join(rootfs, 'usr/etc'), { recursive: true });
    cpSync(etc, join(rootfs, 'usr/etc'), { recursive: true, force: true, verbatimSymlinks: true });
    rmSync(etc, { recursive: true, force: true });
  }
  rmSync(join(rootfs, 'var'), { recursive: true, force: true });
  mkdirSync(join(rootfs, 'var'));
  mkdirSync(join(rootfs, 'sysroot'), { recursive: true });
  rmSync(join(rootfs, 'ostree'), { recursive: true, force: true });
  symlinkSync('sysroot/ostree', join(rootfs, 'ostree'));
}

/**
 * The aleph file: what the disk was made from, at the top of the root filesystem. As osbuild's
 * org.osbuild.ostree.aleph stage writes it for a commit deployment (osbuild stages/
 * org.osbuild.ostree.aleph:9,23-28,127-133 @f6b23dbc: `.aleph-version.json`, indent 4, sorted
 * keys, `.coreos-aleph-version.json` a symlink to it, as coreos-assembler asks with
 * coreos_compat), plus `build` and `imgid` of coreos-assembler's older create_disk.sh
 * (src/create_disk.sh:381-403 @57d158fa). osbuild-version is left out: osbuild made nothing here.
 */
export function writeAleph(
  sysroot: string,
  a: { version: string; ref: string; commit: string; imgid: string },
): void {
  const fields: Record<string, string> = {
    build: a.version,
    imgid: a.imgid,
    'ostree-commit': a.commit,
    ref: a.ref,
    version: a.version,
  };
  writeFileSync(join(sysroot, '.aleph-version.json'), `${JSON.stringify(fields, null, 4)}\n`);
  symlinkSync('.aleph-version.json', join(sysroot, '.coreos-aleph-version.json'));
}

/** Copies `src` into `dest` at byte `offset`, skipping all-zero blocks (dest stays sparse). */
async function writeInto(dest: string, src: string, offset: number): Promise<void> {
  const fd = openSync(dest, 'r+');
  try {
    let pos = offset;
    for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      if (chunk.some((b) => b !== 0)) writeSync(fd, chunk, 0, chunk.length, pos);
      pos += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
}

function sparseFile(path: string, size: number): void {
  rmSync(path, { force: true });
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

function readEntries(boot: string): BlsEntry[] {
  const dir = join(boot, 'loader/entries');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.conf'))
    .sort()
    .map((f) => parseBls(f, readFileSync(join(dir, f), 'utf8')));
}

/** Bytes of regular files under a directory (hard links once, links not followed). */
export function treeBytes(dir: string): number {
  let total = 0;
  const seen = new Set<string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = lstatSync(p);
        const key = `${st.dev}:${st.ino}`;
        if (!seen.has(key)) total += st.size;
        seen.add(key);
      }
    }
  };
  walk(dir);
  return total;
}

/**
 * Writes grub.cfg and the module directories (of the GRUB the core images came from) into a
 * mounted boot filesystem: the static blscfg config when that GRUB reads BLS entries, else a
 * menu rendered from the entries.
 */
function writeGrubFiles(boot: string, arch: Arch, grub: GrubSource): BlsEntry[] {
  const entries = readEntries(boot);
  mkdirSync(join(boot, 'grub2'), { recursive: true });
  writeFileSync(
    join(boot, 'grub2/grub.cfg'),
    grub.blscfg ? renderBlsGrubCfg(arch) : renderGrubCfg(entries, arch),
  );
  for (const t of grubTargets[arch]) cpSync(grub.moduleDir(t), join(boot, 'grub2', t), { recursive: true });
  return entries;
}

/** The image's tool root (when it carries ostree or a GRUB with blscfg) and the GRUB to use. */
interface ImageTools {
  root?: ToolRoot;
  grub: GrubSource;
  release(): Promise<void>;
}

async function imageTools(
  ctx: BackendContext,
  rootfs: string,
  work: string,
  arch: Arch,
  tag: string,
): Promise<ImageTools> {
  const hasOstree = existsSync(join(rootfs, 'usr/bin/ostree'));
  const probe = { run: ctx.run, path: (p: string) => p };
  if (!hasOstree && !imageGrub(rootfs, grubTargets[arch], probe)) {
    ctx.log.warn(
      `${arch}: the image has neither ostree nor a GRUB with blscfg; deploying with the host's ostree (no composefs image) and GRUB (a menu rendered once)`,
    );
    return { grub: hostGrub(ctx.run, tag), release: async () => undefined };
  }
  if (arch !== hostArch() && !canRunArch(arch))
    throw new ToolMissingError(
      `qemu-${arch} (binfmt_misc)`,
      `the ${arch} image's own ostree and GRUB run through qemu-user: run 'rock-image doctor --install cross-arch'`,
    );
  const root = await openToolRoot(ctx.run, rootfs, join(work, 'toolroot'), tag);
  try {
    await root.bind(join(work, 'grub'), 'grub');
  } catch (err) {
    await root.release().catch(() => undefined);
    throw err;
  }
  const grub = imageGrub(rootfs, grubTargets[arch], root, tag) ?? hostGrub(ctx.run, tag);
  return { root: hasOstree ? root : undefined, grub, release: () => root.release() };
}

/** The mounted root and boot filesystems of a disk image; `release` undoes everything attached. */
async function mountDisk(
  ctx: BackendContext,
  file: string,
  layout: ReturnType<typeof diskLayout>,
  dir: string,
  tag: string,
  format = false,
) {
  const held: (LoopDevice | Mounted)[] = [];
  const release = async () => {
    let first: unknown;
    for (const h of held.reverse()) {
      try {
        if ('unmount' in h) await h.unmount();
        else await h.detach();
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  };
  try {
    const root = await attachRange(ctx.run, file, layout.ranges.root.offset, layout.ranges.root.size, tag);
    held.push(root);
    const boot = await attachRange(ctx.run, file, layout.ranges.boot.offset, layout.ranges.boot.size, tag);
    held.push(boot);
    if (format) {
      await mkfsXfs(ctx.run, root.dev, 'root', layout.uuids.root, tag);
      await mkfsExt4(ctx.run, boot.dev, 'boot', layout.uuids.boot, tag);
    }
    mkdirSync(dir, { recursive: true });
    // nouuid: every image's root has Fedora CoreOS's sentinel UUID, and XFS refuses a second
    // mount of a UUID already mounted (xfs(5)), e.g. the other arch's image built beside it.
    held.push(await mount(ctx.run, root.dev, dir, tag, ['nouuid']));
    mkdirSync(join(dir, 'boot'), { recursive: true });
    held.push(await mount(ctx.run, boot.dev, join(dir, 'boot'), tag));
    return { release };
  } catch (err) {
    await release().catch(() => undefined);
    throw err;
  }
}

/** Runs `fn` with the disk image's boot filesystem mounted read-write on `dir`. */
async function withBootMounted(
  ctx: BackendContext,
  file: string,
  layout: ReturnType<typeof diskLayout>,
  dir: string,
  tag: string,
  fn: (boot: string) => void,
): Promise<void> {
  const dev = await attachRange(ctx.run, file, layout.ranges.boot.offset, layout.ranges.boot.size, tag);
  try {
    mkdirSync(dir, { recursive: true });
    const m = await mount(ctx.run, dev.dev, dir, tag);
    try {
      fn(dir);
    } finally {
      await m.unmount();
    }
  } finally {
    await dev.detach();
  }
}

export const native: ArtifactBackend = {
  name: 'native',
  supports(platform: Platform) {
    if (platform === 'iso')
      return 'the native backend cannot make a live ISO (it has no live initramfs and no ISO tooling); use --backend coreos';
    if (platform === 'metal4k')
      return 'the native backend cannot make a 4K-sector disk (its GPT layout and loop devices use 512-byte sectors, layout.ts SECTOR); use --backend coreos';
    return true;
  },
  commands(job) {
    // The path of an image that carries its own ostree and a GRUB with blscfg (Fedora CoreOS and
    // the test world's base): those run from the unpacked image (chroot into an overlay over it,
    // exec/toolroot.ts). An image without them gets the host's ostree and GRUB instead.
    const w = job.work;
    const raw = join(w, artifactFile(job.name, job.version, job.arch, 'metal'));
    const layout = diskLayout(
      job.arch,
      job.rootSizeMiB ?? MIN_ROOT_MiB,
      `${job.name}/${job.version}/${job.arch}`,
    );
    const efi = efiBinary[job.arch];
    const root = `${w}/toolroot/root`;
    const inImage = (cmd: string, ...args: string[]) => ['chroot', root, cmd, ...args];
    const grubIn = (target: GrubTarget, out: string) =>
      inImage(
        '/usr/bin/grub-mkimage',
        ...mkimageArgs(target, out, '/run/rock-image/grub/early.cfg', '/grub2', `/usr/lib/grub/${target}`, [
          'blsuki',
        ]),
      );
    const sysroot = '/run/rock-image/sysroot';
    const repo = `${sysroot}/ostree/repo`;
    const cmds: string[][] = [
      ['skopeo', ...archiveCopyArgs(job.archive, `oci:${w}/oci:rock`)],
      ['umoci', 'raw', 'unpack', '--image', `${w}/oci:rock`, `${w}/rootfs`],
      [
        'mount',
        '-t',
        'overlay',
        'rock-image-toolroot',
        '-o',
        `lowerdir=${w}/rootfs,upperdir=${w}/toolroot/upper,workdir=${w}/toolroot/work`,
        root,
      ],
      ...['proc', 'sys', 'dev'].map((fs) => ['mount', '--rbind', `/${fs}`, `${root}/${fs}`]),
      ['mount', '--rbind', `${w}/grub`, `${root}/run/rock-image/grub`],
      ['sgdisk', ...sgdiskArgs(layout.table, raw)],
      ['mkfs.vfat', '-F', '32', '-n', 'EFI-SYSTEM', '-i', layout.uuids.espVolumeId, `${w}/esp.img`],
      grubIn(efi.target, `/run/rock-image/grub/${efi.file}`),
      ['mcopy', '-o', '-i', `${w}/esp.img`, `${w}/grub/${efi.file}`, `::EFI/BOOT/${efi.file}`],
      ...(job.arch === 'x86_64' ? [grubIn('i386-pc', '/run/rock-image/grub/core.img')] : []),
      [
        'losetup',
        '--find',
        '--show',
        '--offset',
        String(layout.ranges.root.offset),
        '--sizelimit',
        String(layout.ranges.root.size),
        raw,
      ],
      ['mkfs.xfs', ...mkfsXfsArgs('/dev/loopR', 'root', layout.uuids.root)],
      ['mkfs.ext4', ...mkfsExt4Args('/dev/loopB', 'boot', layout.uuids.boot)],
      ['mount', '-o', 'nouuid', '/dev/loopR', `${w}/sysroot`],
      ['mount', '/dev/loopB', `${w}/sysroot/boot`],
      ['mount', '--rbind', `${w}/sysroot`, `${root}${sysroot}`],
      ['mount', '--rbind', `${w}/rootfs`, `${root}/run/rock-image/tree`],
      inImage('ostree', 'admin', 'init-fs', '--modern', sysroot),
      inImage('ostree', 'config', `--repo=${repo}`, 'set', 'sysroot.bootloader', 'none'),
      inImage('ostree', 'config', `--repo=${repo}`, 'set', 'sysroot.readonly', 'true'),
      inImage(
        'ostree',
        `--repo=${repo}`,
        'commit',
        `--branch=${job.osname}/${job.version}/${job.arch}`,
        '--tree=dir=/run/rock-image/tree',
      ),
      inImage('ostree', 'admin', 'os-init', `--sysroot=${sysroot}`, job.osname),
      inImage(
        'ostree',
        'admin',
        'deploy',
        `--sysroot=${sysroot}`,
        `--os=${job.osname}`,
        ...diskKargs({
          arch: job.arch,
          platformId: 'metal',
          imageKargs: ['<kargs.d>'],
        }).map((k) => `--karg-append=${k}`),
        `${job.osname}/${job.version}/${job.arch}`,
      ),
      ['umount', '--recursive', root],
    ];
    if (job.platforms.includes('pxe'))
      cmds.push(
        ['mksquashfs', ...mksquashfsArgs(`${w}/sysroot`, `${w}/live/root.squashfs`, ['boot'])],
        // In ${w}/live-initramfs and ${w}/live, names on standard input; the deployed initramfs and
        // the first archive are then joined (4-byte aligned) into live-initramfs.
        ['cpio', ...cpioNewcArgs(`${w}/live-initramfs.cpio`)],
        ['cpio', ...cpioNewcArgs(join(w, artifactFile(job.name, job.version, job.arch, 'live-rootfs')))],
      );
    if (job.platforms.includes('qemu'))
      // The metal disk itself, its boot entries switched to qemu for the conversion and back.
      cmds.push([
        'qemu-img',
        ...qcow2Args(raw, join(w, artifactFile(job.name, job.version, job.arch, 'qemu'))),
      ]);
    return cmds;
  },
  async make(ctx, job) {
    const { arch, work } = job;
    const tag = arch;
    const step = <T>(name: string, fn: () => Promise<T>) => ctx.log.step(name, fn, tag);
    const mounted = mountsUnder(work);
    if (mounted.length)
      throw new PipelineError(`still mounted from an earlier run (unmount first): ${mounted.join(', ')}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const rootfs = join(work, 'rootfs');
    await step('unpack image', async () => {
      await unpackArchive(ctx.run, job.archive, join(work, 'oci'), rootfs, tag);
      // Scratch goes as soon as its stage is done: the layout copy of the archive now, the tree
      // once the disk holds it (the image's GRUB modules in it serve the BIOS boot code).
      rmSync(join(work, 'oci'), { recursive: true, force: true });
    });
    const kvers = kernelVersions(rootfs);
    if (kvers.length !== 1)
      throw new PipelineError(
        `${job.archive}: expected one kernel under /usr/lib/modules/<kver>/vmlinuz, found ${kvers.length ? kvers.join(', ') : 'none'}`,
      );
    if (!existsSync(join(rootfs, 'usr/lib/modules', kvers[0]!, 'initramfs.img')))
      throw new PipelineError(`${job.archive}: /usr/lib/modules/${kvers[0]}/initramfs.img is missing`);
    const kargsDir = join(rootfs, 'usr/lib/bootc/kargs.d');
    const imageKargs = existsSync(kargsDir)
      ? kargsFromToml(
          readdirSync(kargsDir)
            .filter((f) => f.endsWith('.toml'))
            .map((f) => ({ name: f, text: readFileSync(join(kargsDir, f), 'utf8') })),
          arch,
        )
      : [];
    ostreeShape(rootfs);
    const layout = diskLayout(
      arch,
      job.rootSizeMiB ?? rootSizeMiB(treeBytes(rootfs)),
      `${job.name}/${job.version}/${arch}`,
    );
    const raw = join(work, artifactFile(job.name, job.version, arch, 'metal'));
    const early = join(work, 'grub', 'early.cfg');
    mkdirSync(join(work, 'grub'), { recursive: true });
    writeFileSync(early, earlyGrubConfig);

    // The image's own ostree and GRUB when it has them (toolroot.ts), else the host's.
    const tools = await imageTools(ctx, rootfs, work, arch, tag);
    const produced: Produced[] = [];
    const pxe = job.platforms.includes('pxe');
    try {
      const grub = tools.grub;
      await step('partition disk', async () => {
        sparseFile(raw, layout.size);
        await partition(ctx.run, layout.table, raw, tag);
      });
      await step(`EFI system partition (${grub.origin} GRUB)`, async () => {
        const esp = join(work, 'esp.img');
        sparseFile(esp, layout.ranges.esp.size);
        await mkfsVfat(ctx.run, esp, 'EFI-SYSTEM', layout.uuids.espVolumeId, tag);
        const efi = efiBinary[arch];
        const binary = join(work, 'grub', efi.file);
        await grub.mkimage(efi.target, binary, early, '/grub2');
        await fatMkdirs(ctx.run, esp, ['EFI', 'EFI/BOOT'], tag);
        await fatCopy(ctx.run, esp, binary, `EFI/BOOT/${efi.file}`, tag);
        await writeInto(raw, esp, layout.ranges.esp.offset);
        rmSync(esp);
      });
      const core = join(work, 'grub', 'core.img');
      if (arch === 'x86_64')
        await step('BIOS core image', () => grub.mkimage('i386-pc', core, early, '/grub2'));

      const sysroot = join(work, 'sysroot');
      const ref = `${job.osname}/${job.version}/${arch}`;
      const live = join(work, 'live');
      const disk = await step('format root and boot', () => mountDisk(ctx, raw, layout, sysroot, tag, true));
      try {
        await step(`ostree deploy (${tools.root ? "the image's" : "the host's"} ostree)`, async () => {
          if (tools.root) {
            await tools.root.bind(sysroot, 'sysroot');
            await tools.root.bind(rootfs, 'tree');
          }
          const ostree = tools.root ? Ostree.image(tools.root, tag) : Ostree.host(ctx.run, tag);
          await ostree.initFs(sysroot);
          const repo = join(sysroot, 'ostree/repo');
          await ostree.configSet(repo, 'sysroot.bootloader', 'none');
          await ostree.configSet(repo, 'sysroot.readonly', 'true');
          const commit = await ostree.commit(repo, ref, rootfs, {
            version: job.version,
            timestamp: job.created,
            subject: `${job.name} ${job.version} (${arch})`,
          });
          await ostree.osInit(sysroot, job.osname);
          await ostree.deploy(
            sysroot,
            job.osname,
            ref,
            diskKargs({
              arch,
              platformId: 'metal',
              imageKargs,
            }),
          );
          writeAleph(sysroot, { version: job.version, ref, commit, imgid: basename(raw) });
        });
        const entries = await step('bootloader config', async () => {
          const e = writeGrubFiles(join(sysroot, 'boot'), arch, grub);
          writeFileSync(
            join(sysroot, 'boot/ignition.firstboot'),
            '# Removed after the first boot, once Ignition has run.\n',
          );
          return e;
        });
        const entry = entries[0]!;
        if (pxe)
          await step('PXE kernel, initramfs, rootfs', async () => {
            // Fedora CoreOS's live boot: the live initramfs carries /etc/coreos-live-initramfs
            // (fedora-coreos-config 35coreos-live/is-live-image.sh:6 @2d0fce6d tests only that it
            // exists), the rootfs /etc/coreos-live-rootfs with the same text, which
            // coreos-livepxe-rootfs.sh:12-21 requires of a rootfs appended to the initramfs; both
            // hold the build version (osbuild stages/org.osbuild.coreos.live-artifacts.mono:809-822
            // @f6b23dbc).
            const stamp = `${job.version}\n`;
            mkdirSync(join(live, 'etc'), { recursive: true });
            writeFileSync(join(live, 'etc/coreos-live-rootfs'), stamp);
            const marker = join(work, 'live-initramfs');
            mkdirSync(join(marker, 'etc'), { recursive: true });
            writeFileSync(join(marker, 'etc/coreos-live-initramfs'), stamp);
            await cpioNewc(ctx.run, marker, ['etc', 'etc/coreos-live-initramfs'], `${marker}.cpio`, tag);
            const kernel = join(work, artifactFile(job.name, job.version, arch, 'live-kernel'));
            const initramfs = join(work, artifactFile(job.name, job.version, arch, 'live-initramfs'));
            cpSync(join(sysroot, 'boot', entry.linux), kernel);
            await concatInitrds([join(sysroot, 'boot', entry.initrd), `${marker}.cpio`], initramfs);
            await mksquashfs(ctx.run, sysroot, join(live, 'root.squashfs'), ['boot'], tag);
            const rootfsImg = join(work, artifactFile(job.name, job.version, arch, 'live-rootfs'));
            await cpioNewc(ctx.run, live, ['root.squashfs', 'etc', 'etc/coreos-live-rootfs'], rootfsImg, tag);
            // The archive holds it now: a second copy of the tree's size is scratch no more.
            rmSync(join(live, 'root.squashfs'));
            produced.push(
              { kind: 'live-kernel', path: kernel },
              { kind: 'live-initramfs', path: initramfs },
              { kind: 'live-rootfs', path: rootfsImg },
            );
          });
      } finally {
        // The tool root holds binds of the mounted disk: it goes first.
        await tools.release();
        await disk.release();
      }
      if (arch === 'x86_64')
        await step('BIOS boot code', async () => {
          const p1 = layout.table.partitions[0]!;
          installBios(raw, core, p1.start, p1.sectors, join(grub.moduleDir('i386-pc'), 'boot.img'));
        });
    } finally {
      await tools.release();
    }
    rmSync(rootfs, { recursive: true, force: true });

    if (job.platforms.includes('qemu'))
      await step('qemu image', async () => {
        // No copy of the disk: its entries say qemu while qemu-img converts it, then metal again
        // (only the boot filesystem is mounted for that; root stays as the deploy left it).
        const setPlatform = (id: 'qemu' | 'metal') =>
          withBootMounted(ctx, raw, layout, join(work, 'qemu-boot'), tag, (boot) => {
            const dir = join(boot, 'loader/entries');
            for (const f of readdirSync(dir).filter((n) => n.endsWith('.conf')))
              writeFileSync(join(dir, f), setPlatformId(readFileSync(join(dir, f), 'utf8'), id));
            // A GRUB with blscfg reads the entries at boot; a rendered menu is rendered again.
            if (!tools.grub.blscfg)
              writeFileSync(join(boot, 'grub2/grub.cfg'), renderGrubCfg(readEntries(boot), arch));
          });
        const qcow2 = join(work, artifactFile(job.name, job.version, arch, 'qemu'));
        await setPlatform('qemu');
        try {
          await toQcow2(ctx.run, raw, qcow2, tag);
        } finally {
          await setPlatform('metal');
        }
        produced.push({ kind: 'qemu', path: qcow2 });
      });
    if (job.platforms.includes('metal')) produced.push({ kind: 'metal', path: raw });
    if (pxe)
      for (const sn of pxeSnippets({
        name: job.name,
        version: job.version,
        arch,
        baseUrl: job.pxe.baseUrl,
        ignitionUrl: job.pxe.ignitionUrl,
        // No ostree=: the live initramfs finds the one deployment itself (osbuild
        // coreos.live-artifacts.mono:37-42 LIVE_EXCLUDE_KARGS drops it; fedora-coreos-config
        // 35coreos-live/live-generator:37-54 makes ostree=/ostree/boot.1/*/*/0).
        extra: imageKargs,
      })) {
        writeFileSync(join(work, sn.file), sn.text);
        produced.push({ kind: sn.kind, path: join(work, sn.file) });
      }
    return produced;
  },
};
