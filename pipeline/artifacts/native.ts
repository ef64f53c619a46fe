// The `native` backend: disk and PXE artifacts from host tools only (skopeo, umoci, sgdisk,
// mkfs.*, mtools, ostree, grub-mkimage, mksquashfs, cpio, qemu-img), so it runs and is tested on a
// plain Debian machine.
//
// Layout and boot decisions (read by the boot harness, `rock-image test`):
// - GPT as formats.md §3: 1 BIOS-BOOT (x86_64) / reserved (aarch64) 1 MiB, 2 EFI-SYSTEM 127 MiB
//   vfat, 3 boot 384 MiB ext4, 4 root xfs (1.5x the image + 256 MiB, at least 512 MiB; Ignition
//   grows it). Partition, disk and filesystem UUIDs are derived from name/version/arch.
// - The image tree is committed as is, except /etc moved to /usr/etc (ostree's convention) and
//   /var emptied (tmpfiles.d recreates it); stateroot = image.yaml `osname` (rocknsm-coreos,
//   the com.coreos.osname label; written <os> below), deployed with
//   `ostree admin deploy`, sysroot.bootloader=none, so ostree writes BLS entries only:
//   /boot/loader/entries/ostree-1-<os>.conf, kernel and initramfs copied from
//   /usr/lib/modules/<kver>/{vmlinuz,initramfs.img} to /boot/ostree/<os>-<bootcsum>/.
// - Kernel arguments (BLS `options`): root=UUID=<root> rw rootflags=prjquota boot=UUID=<boot>
//   ignition.platform.id=metal|qemu $ignition_firstboot console=tty0 console=ttyS0,115200n8
//   (aarch64: ttyAMA0), then the image's /usr/lib/bootc/kargs.d arguments, then ostree's own
//   ostree=/ostree/boot.1/<os>/<bootcsum>/0.
// - GRUB (Debian's, no blscfg): /boot/grub2/grub.cfg rendered from the BLS entries; it expands
//   $ignition_firstboot to "ignition.firstboot" while /boot/ignition.firstboot exists. Core
//   images from grub-mkimage with an embedded config that searches the filesystem labelled
//   `boot`: BIOS core.img in BIOS-BOOT + boot.img in the MBR (x86_64); EFI/BOOT/BOOTX64.EFI
//   (x86_64) or EFI/BOOT/BOOTAA64.EFI (aarch64) on the ESP. Module directories are copied to
//   /boot/grub2/<target>/.
// - qemu qcow2: the metal disk with ignition.platform.id=qemu in the BLS entry and grub.cfg.
// - PXE: live-kernel and live-initramfs are the deployed kernel and initramfs; live-rootfs is a
//   newc cpio holding root.squashfs, a squashfs (zstd) of the root filesystem (/ostree: repo and
//   deployment). Snippets carry formats.md §7's arguments plus console, the image's kargs and
//   ostree=/ostree/boot.1/<os>/<bootcsum>/0.
// - Live ISO: not made by this backend (use the coreos backend).
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
import { join } from 'node:path';
import { PipelineError } from '../errors.ts';
import { type GrubTarget, grubModuleDir, installBios, mkimage, mkimageArgs } from '../exec/grub.ts';
import { attachRange, type LoopDevice, type Mounted, mount, mountsUnder } from '../exec/losetup.ts';
import { cpioNewc, fatCopy, fatMkdirs, mkfsExt4, mkfsVfat, mkfsXfs, mksquashfs } from '../exec/mkfs.ts';
import { Ostree } from '../exec/ostree.ts';
import { qcow2Args, toQcow2 } from '../exec/qemu-img.ts';
import { kernelVersions } from '../exec/rootfs.ts';
import { partition, sgdiskArgs } from '../exec/sgdisk.ts';
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

/** Writes grub.cfg and the module directories into a mounted boot filesystem. */
function writeGrubFiles(boot: string, arch: Arch): BlsEntry[] {
  const entries = readEntries(boot);
  mkdirSync(join(boot, 'grub2'), { recursive: true });
  writeFileSync(join(boot, 'grub2/grub.cfg'), renderGrubCfg(entries, arch));
  for (const t of grubTargets[arch]) cpSync(grubModuleDir(t), join(boot, 'grub2', t), { recursive: true });
  return entries;
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
    held.push(await mount(ctx.run, root.dev, dir, tag));
    mkdirSync(join(dir, 'boot'), { recursive: true });
    held.push(await mount(ctx.run, boot.dev, join(dir, 'boot'), tag));
    return { release };
  } catch (err) {
    await release().catch(() => undefined);
    throw err;
  }
}

export const native: ArtifactBackend = {
  name: 'native',
  supports(platform: Platform) {
    return platform === 'iso'
      ? 'the native backend cannot make a live ISO (it has no live initramfs and no ISO tooling); use --backend coreos'
      : true;
  },
  commands(job) {
    const w = job.work;
    const raw = join(w, artifactFile(job.name, job.version, job.arch, 'metal'));
    const layout = diskLayout(
      job.arch,
      job.rootSizeMiB ?? MIN_ROOT_MiB,
      `${job.name}/${job.version}/${job.arch}`,
    );
    const efi = efiBinary[job.arch];
    const cmds: string[][] = [
      ['skopeo', 'copy', '--quiet', `oci-archive:${job.archive}`, `oci:${w}/oci:rock`],
      ['umoci', 'raw', 'unpack', '--image', `${w}/oci:rock`, `${w}/rootfs`],
      ['sgdisk', ...sgdiskArgs(layout.table, raw)],
      ['mkfs.vfat', '-F', '32', '-n', 'EFI-SYSTEM', '-i', layout.uuids.espVolumeId, `${w}/esp.img`],
      ['grub-mkimage', ...mkimageArgs(efi.target, `${w}/${efi.file}`, `${w}/early.cfg`, '/grub2')],
      ['mcopy', '-o', '-i', `${w}/esp.img`, `${w}/${efi.file}`, `::EFI/BOOT/${efi.file}`],
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
      ['mkfs.xfs', '-q', '-f', '-L', 'root', '-m', `uuid=${layout.uuids.root}`, '/dev/loopR'],
      ['mkfs.ext4', '-q', '-F', '-L', 'boot', '-U', layout.uuids.boot, '/dev/loopB'],
      ['ostree', 'admin', 'init-fs', '--modern', `${w}/sysroot`],
      ['ostree', 'config', `--repo=${w}/sysroot/ostree/repo`, 'set', 'sysroot.bootloader', 'none'],
      [
        'ostree',
        `--repo=${w}/sysroot/ostree/repo`,
        'commit',
        `--branch=${job.osname}/${job.version}/${job.arch}`,
        `--tree=dir=${w}/rootfs`,
      ],
      ['ostree', 'admin', 'os-init', `--sysroot=${w}/sysroot`, job.osname],
      [
        'ostree',
        'admin',
        'deploy',
        `--sysroot=${w}/sysroot`,
        `--os=${job.osname}`,
        ...diskKargs({
          arch: job.arch,
          platformId: 'metal',
          rootUuid: layout.uuids.root,
          bootUuid: layout.uuids.boot,
          imageKargs: ['<kargs.d>'],
        }).map((k) => `--karg-append=${k}`),
        `${job.osname}/${job.version}/${job.arch}`,
      ],
    ];
    if (job.arch === 'x86_64')
      cmds.push(['grub-mkimage', ...mkimageArgs('i386-pc', `${w}/core.img`, `${w}/early.cfg`, '/grub2')]);
    if (job.platforms.includes('pxe'))
      cmds.push([
        'mksquashfs',
        `${w}/sysroot`,
        `${w}/live/root.squashfs`,
        '-noappend',
        '-comp',
        'zstd',
        '-no-progress',
        '-e',
        'boot',
      ]);
    if (job.platforms.includes('qemu'))
      cmds.push([
        'qemu-img',
        ...qcow2Args(`${w}/qemu.raw`, join(w, artifactFile(job.name, job.version, job.arch, 'qemu'))),
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
    await step('unpack image', () => unpackArchive(ctx.run, job.archive, join(work, 'oci'), rootfs, tag));
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
    const early = join(work, 'early.cfg');
    writeFileSync(early, earlyGrubConfig);

    await step('partition disk', async () => {
      sparseFile(raw, layout.size);
      await partition(ctx.run, layout.table, raw, tag);
    });
    await step('EFI system partition', async () => {
      const esp = join(work, 'esp.img');
      sparseFile(esp, layout.ranges.esp.size);
      await mkfsVfat(ctx.run, esp, 'EFI-SYSTEM', layout.uuids.espVolumeId, tag);
      const efi = efiBinary[arch];
      await mkimage(ctx.run, efi.target, join(work, efi.file), early, '/grub2', tag);
      await fatMkdirs(ctx.run, esp, ['EFI', 'EFI/BOOT'], tag);
      await fatCopy(ctx.run, esp, join(work, efi.file), `EFI/BOOT/${efi.file}`, tag);
      await writeInto(raw, esp, layout.ranges.esp.offset);
      rmSync(esp);
    });

    const sysroot = join(work, 'sysroot');
    const ostree = new Ostree(ctx.run, tag);
    const ref = `${job.osname}/${job.version}/${arch}`;
    const produced: Produced[] = [];
    const pxe = job.platforms.includes('pxe');
    const live = join(work, 'live');
    let bootcsum = '';
    const disk = await step('format root and boot', () => mountDisk(ctx, raw, layout, sysroot, tag, true));
    try {
      await step('ostree deploy', async () => {
        await ostree.initFs(sysroot);
        const repo = join(sysroot, 'ostree/repo');
        await ostree.configSet(repo, 'sysroot.bootloader', 'none');
        await ostree.configSet(repo, 'sysroot.readonly', 'true');
        await ostree.commit(repo, ref, rootfs, {
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
            rootUuid: layout.uuids.root,
            bootUuid: layout.uuids.boot,
            imageKargs,
          }),
        );
      });
      const entries = await step('bootloader config', async () => {
        const e = writeGrubFiles(join(sysroot, 'boot'), arch);
        writeFileSync(
          join(sysroot, 'boot/ignition.firstboot'),
          '# Removed by Ignition after the first boot.\n',
        );
        return e;
      });
      const entry = entries[0]!;
      bootcsum = /\bostree=(\/ostree\/boot\.\d\/[^\s]+)/.exec(entry.options)?.[1] ?? '';
      if (pxe)
        await step('PXE kernel, initramfs, rootfs', async () => {
          mkdirSync(live, { recursive: true });
          const kernel = join(work, artifactFile(job.name, job.version, arch, 'live-kernel'));
          const initramfs = join(work, artifactFile(job.name, job.version, arch, 'live-initramfs'));
          cpSync(join(sysroot, 'boot', entry.linux), kernel);
          cpSync(join(sysroot, 'boot', entry.initrd), initramfs);
          await mksquashfs(ctx.run, sysroot, join(live, 'root.squashfs'), ['boot'], tag);
          const rootfsImg = join(work, artifactFile(job.name, job.version, arch, 'live-rootfs'));
          await cpioNewc(ctx.run, live, ['root.squashfs'], rootfsImg, tag);
          produced.push(
            { kind: 'live-kernel', path: kernel },
            { kind: 'live-initramfs', path: initramfs },
            { kind: 'live-rootfs', path: rootfsImg },
          );
        });
    } finally {
      await disk.release();
    }
    if (arch === 'x86_64')
      await step('BIOS boot code', async () => {
        const core = join(work, 'core.img');
        await mkimage(ctx.run, 'i386-pc', core, early, '/grub2', tag);
        const p1 = layout.table.partitions[0]!;
        installBios(raw, core, p1.start, p1.sectors);
      });

    if (job.platforms.includes('qemu'))
      await step('qemu image', async () => {
        const qraw = join(work, 'qemu.raw');
        await ctx.run('cp', ['--sparse=always', raw, qraw], { tag });
        const mnt = join(work, 'qemu-sysroot');
        const m = await mountDisk(ctx, qraw, layout, mnt, tag);
        try {
          const dir = join(mnt, 'boot/loader/entries');
          for (const f of readdirSync(dir).filter((n) => n.endsWith('.conf')))
            writeFileSync(join(dir, f), setPlatformId(readFileSync(join(dir, f), 'utf8'), 'qemu'));
          writeFileSync(
            join(mnt, 'boot/grub2/grub.cfg'),
            renderGrubCfg(readEntries(join(mnt, 'boot')), arch),
          );
        } finally {
          await m.release();
        }
        const qcow2 = join(work, artifactFile(job.name, job.version, arch, 'qemu'));
        await toQcow2(ctx.run, qraw, qcow2, tag);
        rmSync(qraw);
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
        extra: [...imageKargs, ...(bootcsum ? [`ostree=${bootcsum}`] : [])],
      })) {
        writeFileSync(join(work, sn.file), sn.text);
        produced.push({ kind: sn.kind, path: join(work, sn.file) });
      }
    rmSync(rootfs, { recursive: true, force: true });
    return produced;
  },
};
