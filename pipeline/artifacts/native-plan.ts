// The native backend's plan: every step `make()` runs, in order, as a serialisable value. Pure: it
// reads nothing (not even the image), so what only the run can know is named, never guessed:
// - run-time inputs: `${NAME}` inside an argument stands for a value the run finds out (a loop
//   device losetup prints, the root size computed from the unpacked tree, the image's kargs.d);
//   the run log records each resolved value (a `plan-input` event), so a test can put the values
//   in and get the exact command lines that ran. A list input (IMAGE_KARGS) in an argument makes
//   one argument per element.
// - step variants: `when` names the image fact a step depends on (its own ostree, its own GRUB);
//   the run resolves the facts once, right after unpacking, and records them as inputs too.
// - in-process steps (files written, the BIOS boot code patched in, the initramfs joined) are
//   steps of their own, with what they do in words, so nothing runs that the plan does not show.
// native.ts executes exactly this list; `rock-image plan --artifacts` prints it.
import { join } from 'node:path';
import { type GrubTarget, grubModuleDir, mkimageArgs } from '../exec/grub.ts';
import { cpioNewcArgs, mkfsExt4Args, mkfsXfsArgs, mksquashfsArgs } from '../exec/mkfs.ts';
import { ostreeArgs } from '../exec/ostree.ts';
import { qcow2Args } from '../exec/qemu-img.ts';
import { sgdiskArgs } from '../exec/sgdisk.ts';
import { archiveCopyArgs } from '../exec/skopeo.ts';
import { TOOLROOT_BINDS, toolRootArgs } from '../exec/toolroot.ts';
import type { ArchJob } from './backend.ts';
import {
  type Arch,
  artifactFile,
  type DiskLayout,
  diskKargs,
  diskLayout,
  earlyGrubConfig,
  MIN_ROOT_MiB,
  renderBlsGrubCfg,
} from './layout.ts';
import { newcDataOffset } from './newc.ts';

/** A run-time input inside an argument: `${NAME}`. */
export const input = (name: string) => `\${${name}}`;

/** GRUB's EFI target and file name on the ESP, per arch. */
export const efiBinary: Record<Arch, { target: GrubTarget; file: string }> = {
  x86_64: { target: 'x86_64-efi', file: 'BOOTX64.EFI' },
  aarch64: { target: 'arm64-efi', file: 'BOOTAA64.EFI' },
};

/** GRUB targets whose modules go to /boot/grub2/<target>/ on each arch. */
export const grubTargets: Record<Arch, GrubTarget[]> = {
  x86_64: ['i386-pc', 'x86_64-efi'],
  aarch64: ['arm64-efi'],
};

/** The image facts that choose a step's variant. */
export interface ImageFacts {
  /** The image has /usr/bin/ostree: it deploys itself, in the tool root. */
  ostree: boolean;
  /** The image has grub-mkimage and a BLS module for every target: its GRUB is the bootloader. */
  grub: boolean;
}

/** When a step runs: always, or only with (or without) the image's own ostree or GRUB. */
export type When = 'image-ostree' | 'host-ostree' | 'image-grub' | 'host-grub' | 'tool-root';

export function applies(when: When | undefined, f: ImageFacts): boolean {
  switch (when) {
    case undefined:
      return true;
    case 'image-ostree':
      return f.ostree;
    case 'host-ostree':
      return !f.ostree;
    case 'image-grub':
      return f.grub;
    case 'host-grub':
      return !f.grub;
    case 'tool-root':
      return f.ostree || f.grub;
  }
}

const whenText: Record<When, string> = {
  'image-ostree': "the image's ostree (IMAGE_OSTREE=yes)",
  'host-ostree': "the host's ostree (IMAGE_OSTREE=no)",
  'image-grub': "the image's GRUB (IMAGE_GRUB=yes)",
  'host-grub': "the host's GRUB (IMAGE_GRUB=no)",
  'tool-root': 'a tool root (IMAGE_OSTREE=yes or IMAGE_GRUB=yes)',
};

/** In-process work, by kind; paths may hold `${NAME}` inputs. */
export type Action =
  | { op: 'fresh-work'; dir: string }
  | { op: 'inspect-image'; tree: string }
  | { op: 'remove'; path: string }
  | { op: 'mkdir'; path: string }
  | { op: 'write'; path: string; text: string }
  | { op: 'sparse-file'; path: string; bytes: string }
  | { op: 'write-into'; dest: string; src: string; offset: number }
  | { op: 'aleph'; sysroot: string; version: string; ref: string; commit: string; imgid: string }
  | { op: 'grub-cfg'; boot: string; render: 'blscfg' | 'menu' }
  | { op: 'copy-dir'; from: string; to: string }
  | { op: 'bios-boot-code'; disk: string; core: string; lba: number; sectors: number; bootImg: string }
  | { op: 'read-bls-entry'; boot: string }
  | { op: 'copy-file'; from: string; to: string }
  | { op: 'join-initrds'; parts: string[]; to: string }
  /** A newc archive of `names` under `dir`, after a first entry `inPlace` whose data is in it already. */
  | { op: 'newc'; archive: string; dir: string; names: string[]; inPlace?: string }
  | { op: 'set-platform'; boot: string; id: 'qemu' | 'metal'; rerenderMenu: boolean }
  | { op: 'pxe-snippets'; dir: string }
  /** The detached loop device is gone, not held open (exec/losetup.ts waitLoopReleased). */
  | { op: 'loop-released'; device: string };

export interface CommandStep {
  stage: string;
  when?: When;
  argv: string[];
  cwd?: string;
  /** Standard input (cpio's file names). */
  input?: string;
  env?: Record<string, string>;
  /** The trimmed stdout (its last line) becomes this run-time input. */
  sets?: string;
  /** Holds a resource (a mount, a loop device) until the step that releases the same key. */
  acquires?: string;
  releases?: string;
}

export interface InProcessStep {
  stage: string;
  when?: When;
  /** What it does, in words (what the plan prints). */
  what: string;
  action: Action;
}

export type NativeStep = CommandStep | InProcessStep;

export interface PlanInput {
  name: string;
  /** How the run finds it. */
  how: string;
  list?: boolean;
  /** Known (and recorded) only in this variant. */
  when?: When;
}

export interface NativePlan {
  inputs: PlanInput[];
  steps: NativeStep[];
}

/** The values the run records for the root size, from the layout it computed. */
export function rootInputs(
  layout: DiskLayout,
): Record<'ROOT_SIZE_MiB' | 'ROOT_LAST_SECTOR' | 'ROOT_BYTES' | 'DISK_BYTES', string> {
  const root = layout.table.partitions[3]!;
  return {
    ROOT_SIZE_MiB: String(root.sectors / 2048),
    ROOT_LAST_SECTOR: String(root.start + root.sectors - 1),
    ROOT_BYTES: String(layout.ranges.root.size),
    DISK_BYTES: String(layout.size),
  };
}

/** Every step of the native backend for `job`, in the order `make()` runs them. */
export function nativePlan(job: ArchJob): NativePlan {
  const { arch } = job;
  const w = job.work;
  const raw = join(w, artifactFile(job.name, job.version, arch, 'metal'));
  const file = (kind: Parameters<typeof artifactFile>[3]) =>
    join(w, artifactFile(job.name, job.version, arch, kind));
  const seed = `${job.name}/${job.version}/${arch}`;
  const fixedRoot = job.rootSizeMiB !== undefined;
  // Everything but the root partition's size is the same whatever the root size.
  const layout = diskLayout(arch, job.rootSizeMiB ?? MIN_ROOT_MiB, seed);
  const root = rootInputs(layout);
  const val = (name: keyof typeof root) => (fixedRoot ? root[name] : `\${${name}}`);
  const rootPart = layout.table.partitions[3]!;

  const rootfs = join(w, 'rootfs');
  const grubDir = join(w, 'grub');
  const early = join(grubDir, 'early.cfg');
  const scratch = join(w, 'toolroot');
  const troot = join(scratch, 'root');
  const inRoot = (name: string) => `${TOOLROOT_BINDS}/${name}`;
  const sysroot = join(w, 'sysroot');
  const boot = join(sysroot, 'boot');
  const ref = `${job.osname}/${job.version}/${arch}`;
  const efi = efiBinary[arch];
  const core = join(grubDir, 'core.img');
  const live = join(w, 'live');
  const marker = join(w, 'live-initramfs');

  const steps: NativeStep[] = [];
  let stage = '';
  const cmd = (argv: string[], more: Omit<CommandStep, 'stage' | 'argv'> = {}) =>
    steps.push({ stage, argv, ...more });
  const act = (what: string, action: Action, when?: When) =>
    steps.push({ stage, what, action, ...(when ? { when } : {}) });
  const bind = (from: string, to: string, when: When) => {
    act(`mkdir -p ${to}`, { op: 'mkdir', path: to }, when);
    for (const a of toolRootArgs.bind(from, to)) cmd(['mount', ...a], { when });
  };
  // Its filesystem is written out once the device is gone: then the image file holds it all.
  const detach = (name: string) => {
    cmd(['losetup', '--detach', input(name)], { releases: name });
    act(`${input(name)} released (not held open by a copy of its mount elsewhere)`, {
      op: 'loop-released',
      device: input(name),
    });
  };
  const losetup = (offset: number, size: string, sets: string) =>
    cmd(['losetup', '--find', '--show', '--offset', String(offset), '--sizelimit', size, raw], {
      sets,
      acquires: sets,
    });
  // The image's GRUB runs in the tool root, where W/grub is bound; the host's runs on W/grub.
  const mkimage = (target: GrubTarget, out: string) => {
    cmd(
      [
        'chroot',
        troot,
        input('IMAGE_GRUB_MKIMAGE'),
        ...mkimageArgs(
          target,
          `${inRoot('grub')}/${out}`,
          `${inRoot('grub')}/early.cfg`,
          '/grub2',
          `/usr/lib/grub/${target}`,
          [`\${IMAGE_BLS_${target.replace(/-/g, '_')}}`],
        ),
      ],
      { when: 'image-grub' },
    );
    cmd(['grub-mkimage', ...mkimageArgs(target, join(grubDir, out), early, '/grub2')], { when: 'host-grub' });
  };
  // The image's ostree runs in the tool root, where the sysroot and the tree are bound.
  const ostreeImage = (p: string) =>
    p.startsWith(sysroot)
      ? inRoot('sysroot') + p.slice(sysroot.length)
      : inRoot('tree') + p.slice(rootfs.length);
  const ostree = (calls: { args: (at: (p: string) => string) => string[]; sets?: string }[]) => {
    for (const c of calls)
      cmd(['chroot', troot, 'ostree', ...c.args(ostreeImage)], {
        when: 'image-ostree',
        ...(c.sets ? { sets: c.sets } : {}),
      });
    for (const c of calls)
      cmd(['ostree', ...c.args((p) => p)], { when: 'host-ostree', ...(c.sets ? { sets: c.sets } : {}) });
  };

  stage = 'unpack image';
  act(`refuse if anything is mounted under ${w}; remove it and make it again`, { op: 'fresh-work', dir: w });
  cmd(['skopeo', ...archiveCopyArgs(job.archive, `oci:${w}/oci:rock`)]);
  cmd(['umoci', 'raw', 'unpack', '--image', `${w}/oci:rock`, rootfs]);
  act(`rm -rf ${w}/oci (the layout copy of the archive)`, { op: 'remove', path: join(w, 'oci') });

  stage = 'inspect image';
  act(
    'one kernel: /usr/lib/modules/<kver>/{vmlinuz,initramfs.img}; IMAGE_KARGS from kargs.d; ' +
      '/etc moved to /usr/etc, /var emptied, /ostree -> sysroot/ostree; ' +
      `${fixedRoot ? '' : 'ROOT_SIZE_MiB from the tree; '}IMAGE_OSTREE, IMAGE_GRUB (and its tool and modules)`,
    { op: 'inspect-image', tree: rootfs },
  );
  act(`mkdir -p ${grubDir}`, { op: 'mkdir', path: grubDir });
  act(`write ${early} (${earlyGrubConfig.length} bytes: finds the filesystem labelled boot)`, {
    op: 'write',
    path: early,
    text: earlyGrubConfig,
  });

  stage = 'tool root';
  for (const d of ['upper', 'work', 'root'])
    act(`mkdir -p ${join(scratch, d)}`, { op: 'mkdir', path: join(scratch, d) }, 'tool-root');
  cmd(['mount', ...toolRootArgs.overlay(rootfs, scratch)], { when: 'tool-root', acquires: 'toolroot' });
  for (const fs of ['proc', 'sys', 'dev']) bind(`/${fs}`, join(troot, fs), 'tool-root');
  bind(grubDir, join(troot, inRoot('grub')), 'tool-root');

  stage = 'partition disk';
  act(`sparse file ${raw} of ${val('DISK_BYTES')} bytes`, {
    op: 'sparse-file',
    path: raw,
    bytes: val('DISK_BYTES'),
  });
  cmd([
    'sgdisk',
    ...sgdiskArgs(layout.table, raw).map((a) =>
      a === `4:${rootPart.start}:${rootPart.start + rootPart.sectors - 1}`
        ? `4:${rootPart.start}:${val('ROOT_LAST_SECTOR')}`
        : a,
    ),
  ]);

  stage = 'EFI system partition';
  const esp = join(w, 'esp.img');
  act(`sparse file ${esp} of ${layout.ranges.esp.size} bytes`, {
    op: 'sparse-file',
    path: esp,
    bytes: String(layout.ranges.esp.size),
  });
  cmd(['mkfs.vfat', '-F', '32', '-n', 'EFI-SYSTEM', '-i', layout.uuids.espVolumeId, esp]);
  mkimage(efi.target, efi.file);
  for (const d of ['EFI', 'EFI/BOOT']) cmd(['mmd', '-i', esp, `::${d}`]);
  cmd(['mcopy', '-o', '-i', esp, join(grubDir, efi.file), `::EFI/BOOT/${efi.file}`]);
  act(`copy ${esp} into ${raw} at byte ${layout.ranges.esp.offset} (all-zero blocks skipped)`, {
    op: 'write-into',
    dest: raw,
    src: esp,
    offset: layout.ranges.esp.offset,
  });
  act(`rm ${esp}`, { op: 'remove', path: esp });

  if (arch === 'x86_64') {
    stage = 'BIOS core image';
    mkimage('i386-pc', 'core.img');
  }

  stage = 'format root and boot';
  losetup(layout.ranges.root.offset, val('ROOT_BYTES'), 'LOOP_ROOT');
  losetup(layout.ranges.boot.offset, String(layout.ranges.boot.size), 'LOOP_BOOT');
  cmd(['mkfs.xfs', ...mkfsXfsArgs(input('LOOP_ROOT'), 'root', layout.uuids.root)]);
  cmd(['mkfs.ext4', ...mkfsExt4Args(input('LOOP_BOOT'), 'boot', layout.uuids.boot)]);
  act(`mkdir -p ${sysroot}`, { op: 'mkdir', path: sysroot });
  // nouuid: every image's root has Fedora CoreOS's sentinel UUID, and XFS refuses a second
  // mount of a UUID already mounted (xfs(5)), e.g. the other arch's image built beside it.
  cmd(['mount', '-o', 'nouuid', input('LOOP_ROOT'), sysroot], { acquires: 'mnt-root' });
  act(`mkdir -p ${boot}`, { op: 'mkdir', path: boot });
  cmd(['mount', input('LOOP_BOOT'), boot], { acquires: 'mnt-boot' });

  stage = 'ostree deploy';
  bind(sysroot, join(troot, inRoot('sysroot')), 'image-ostree');
  bind(rootfs, join(troot, inRoot('tree')), 'image-ostree');
  const repo = join(sysroot, 'ostree/repo');
  ostree([
    { args: (at) => ostreeArgs.initFs(at(sysroot)) },
    { args: (at) => ostreeArgs.configSet(at(repo), 'sysroot.bootloader', 'none') },
    { args: (at) => ostreeArgs.configSet(at(repo), 'sysroot.readonly', 'true') },
    {
      args: (at) =>
        ostreeArgs.commit(at(repo), ref, at(rootfs), {
          version: job.version,
          timestamp: job.created,
          subject: `${job.name} ${job.version} (${arch})`,
        }),
      sets: 'OSTREE_COMMIT',
    },
    { args: (at) => ostreeArgs.osInit(at(sysroot), job.osname) },
    {
      args: (at) =>
        ostreeArgs.deploy(
          at(sysroot),
          job.osname,
          ref,
          diskKargs({ arch, platformId: 'metal', imageKargs: [input('IMAGE_KARGS')] }),
        ),
    },
  ]);
  act(
    `write ${sysroot}/.aleph-version.json (ostree-commit \${OSTREE_COMMIT}) and its .coreos-aleph-version.json link`,
    {
      op: 'aleph',
      sysroot,
      version: job.version,
      ref,
      commit: input('OSTREE_COMMIT'),
      imgid: artifactFile(job.name, job.version, arch, 'metal'),
    },
  );

  stage = 'bootloader config';
  act(
    `write ${boot}/grub2/grub.cfg (${renderBlsGrubCfg(arch).length} bytes: the static config that runs blscfg)`,
    { op: 'grub-cfg', boot, render: 'blscfg' },
    'image-grub',
  );
  act(
    `write ${boot}/grub2/grub.cfg (a menu rendered from the BLS entries in ${boot}/loader/entries)`,
    { op: 'grub-cfg', boot, render: 'menu' },
    'host-grub',
  );
  for (const t of grubTargets[arch]) {
    const from = `${rootfs}/usr/lib/grub/${t}`;
    act(
      `cp -r ${from} ${join(boot, 'grub2', t)}`,
      { op: 'copy-dir', from, to: join(boot, 'grub2', t) },
      'image-grub',
    );
  }
  for (const t of grubTargets[arch]) {
    const from = grubModuleDir(t);
    act(
      `cp -r ${from} ${join(boot, 'grub2', t)}`,
      { op: 'copy-dir', from, to: join(boot, 'grub2', t) },
      'host-grub',
    );
  }
  act(`write ${boot}/ignition.firstboot (removed after the first boot)`, {
    op: 'write',
    path: join(boot, 'ignition.firstboot'),
    text: '# Removed after the first boot, once Ignition has run.\n',
  });

  // The tree is scratch no more once the BIOS boot code (boot.img of the image's GRUB) is in:
  // it goes before the PXE files are made, so it is never on disk beside their squashfs. The
  // tool root (an overlay on the tree, holding binds of the mounted disk) goes first; the disk
  // stays mounted for the PXE files, and the boot code goes into sectors no loop device maps.
  stage = 'release tool root';
  cmd(['umount', ...toolRootArgs.release(troot)], { when: 'tool-root', releases: 'toolroot' });

  if (arch === 'x86_64') {
    stage = 'BIOS boot code';
    const p1 = layout.table.partitions[0]!;
    for (const [when, dir] of [
      ['image-grub', `${rootfs}/usr/lib/grub/i386-pc`],
      ['host-grub', grubModuleDir('i386-pc')],
    ] as const)
      act(
        `boot.img of ${dir} into the MBR (pointing at sector ${p1.start}), ${core} into BIOS-BOOT (sectors ${p1.start}..${p1.start + p1.sectors - 1}), patched as grub-bios-setup does`,
        {
          op: 'bios-boot-code',
          disk: raw,
          core,
          lba: p1.start,
          sectors: p1.sectors,
          bootImg: `${dir}/boot.img`,
        },
        when,
      );
  }
  stage = 'remove tree';
  act(`rm -rf ${rootfs}`, { op: 'remove', path: rootfs });

  if (job.platforms.includes('pxe')) {
    stage = 'PXE kernel, initramfs, rootfs';
    // Fedora CoreOS's live boot: the live initramfs carries /etc/coreos-live-initramfs
    // (fedora-coreos-config 35coreos-live/is-live-image.sh:6 @2d0fce6d tests only that it
    // exists), the rootfs /etc/coreos-live-rootfs with the same text, which
    // coreos-livepxe-rootfs.sh:12-21 requires of a rootfs appended to the initramfs; both
    // hold the build version (osbuild stages/org.osbuild.coreos.live-artifacts.mono:809-822
    // @f6b23dbc).
    const stamp = `${job.version}\n`;
    act(`BLS_LINUX, BLS_INITRD: linux and initrd of the first entry in ${boot}/loader/entries`, {
      op: 'read-bls-entry',
      boot,
    });
    act(`mkdir -p ${live}/etc`, { op: 'mkdir', path: join(live, 'etc') });
    act(`write ${live}/etc/coreos-live-rootfs (the version)`, {
      op: 'write',
      path: join(live, 'etc/coreos-live-rootfs'),
      text: stamp,
    });
    act(`mkdir -p ${marker}/etc`, { op: 'mkdir', path: join(marker, 'etc') });
    act(`write ${marker}/etc/coreos-live-initramfs (the version)`, {
      op: 'write',
      path: join(marker, 'etc/coreos-live-initramfs'),
      text: stamp,
    });
    cmd(['cpio', ...cpioNewcArgs(`${marker}.cpio`)], {
      cwd: marker,
      input: 'etc\netc/coreos-live-initramfs\n',
    });
    act(`cp ${boot}\${BLS_LINUX} ${file('live-kernel')}`, {
      op: 'copy-file',
      from: `${boot}\${BLS_LINUX}`,
      to: file('live-kernel'),
    });
    act(`join ${boot}\${BLS_INITRD} and ${marker}.cpio (4-byte aligned) into ${file('live-initramfs')}`, {
      op: 'join-initrds',
      parts: [`${boot}\${BLS_INITRD}`, `${marker}.cpio`],
      to: file('live-initramfs'),
    });
    // The rootfs is a newc archive of root.squashfs, etc and etc/coreos-live-rootfs, as
    // `cpio -o -H newc` makes it, written in place: mksquashfs writes the squashfs where
    // root.squashfs's data goes in the archive, and the headers are written around it, so the
    // squashfs is on disk once (newc.ts).
    const squashAt = newcDataOffset('root.squashfs');
    cmd(['mksquashfs', ...mksquashfsArgs(sysroot, file('live-rootfs'), ['boot'], squashAt)], {
      env: { SOURCE_DATE_EPOCH: '0' },
    });
    act(
      `newc archive ${file('live-rootfs')} as cpio ${cpioNewcArgs('-').slice(0, -2).join(' ')} writes it: ` +
        `root.squashfs's header into its first ${squashAt} bytes (its data is the squashfs after them), ` +
        `then etc and etc/coreos-live-rootfs of ${live} and the trailer`,
      {
        op: 'newc',
        archive: file('live-rootfs'),
        dir: live,
        names: ['etc', 'etc/coreos-live-rootfs'],
        inPlace: 'root.squashfs',
      },
    );
  }

  stage = 'release disk';
  cmd(['umount', boot], { releases: 'mnt-boot' });
  cmd(['umount', sysroot], { releases: 'mnt-root' });
  detach('LOOP_BOOT');
  detach('LOOP_ROOT');

  if (job.platforms.includes('qemu')) {
    // No copy of the disk: its entries say qemu while qemu-img converts it, then metal again
    // (only the boot filesystem is mounted for that; root stays as the deploy left it).
    stage = 'qemu image';
    const qboot = join(w, 'qemu-boot');
    const setPlatform = (id: 'qemu' | 'metal') => {
      const loop = `LOOP_BOOT_${id.toUpperCase()}`;
      losetup(layout.ranges.boot.offset, String(layout.ranges.boot.size), loop);
      act(`mkdir -p ${qboot}`, { op: 'mkdir', path: qboot });
      cmd(['mount', `\${${loop}}`, qboot], { acquires: `mnt-${id}` });
      act(
        `ignition.platform.id=${id} in every ${qboot}/loader/entries/*.conf (blscfg reads them at boot)`,
        { op: 'set-platform', boot: qboot, id, rerenderMenu: false },
        'image-grub',
      );
      act(
        `ignition.platform.id=${id} in every ${qboot}/loader/entries/*.conf; ${qboot}/grub2/grub.cfg rendered again from them`,
        { op: 'set-platform', boot: qboot, id, rerenderMenu: true },
        'host-grub',
      );
      cmd(['umount', qboot], { releases: `mnt-${id}` });
      detach(loop);
    };
    setPlatform('qemu');
    cmd(['qemu-img', ...qcow2Args(raw, file('qemu'))]);
    setPlatform('metal');
  }
  if (job.platforms.includes('pxe')) {
    stage = 'PXE snippets';
    act(
      `write the iPXE, GRUB${arch === 'x86_64' ? ' and PXELINUX' : ''} snippets into ${w} (IMAGE_KARGS appended, no ostree=)`,
      {
        op: 'pxe-snippets',
        dir: w,
      },
    );
  }

  const inputs: PlanInput[] = [
    {
      name: 'IMAGE_OSTREE',
      how: "yes when the unpacked image has /usr/bin/ostree (it deploys itself, in the tool root), else no (the host's ostree: no composefs image)",
    },
    {
      name: 'IMAGE_GRUB',
      how: "yes when the image has grub-mkimage (or grub2-mkimage) and a BLS module (blsuki or blscfg) for every target, else no (the host's GRUB, a menu rendered once)",
    },
    {
      name: 'IMAGE_GRUB_MKIMAGE',
      how: "/usr/bin/grub-mkimage or /usr/bin/grub2-mkimage, the image's",
      when: 'image-grub',
    },
    ...grubTargets[arch].map((t) => ({
      name: `IMAGE_BLS_${t.replace(/-/g, '_')}`,
      how: `blsuki or blscfg, whichever /usr/lib/grub/${t}/ of the image has (blsuki first)`,
      when: 'image-grub' as const,
    })),
    {
      name: 'IMAGE_KARGS',
      how: `the image's /usr/lib/bootc/kargs.d/*.toml arguments for ${arch}, in file name order (what the stream bakes in: ${JSON.stringify(job.imageKargs ?? [])})`,
      list: true,
    },
    ...(fixedRoot
      ? []
      : [
          {
            name: 'ROOT_SIZE_MiB',
            how: `max(${MIN_ROOT_MiB}, ceil(1.5 x bytes of the regular files of the unpacked tree, after the /etc and /var moves, / MiB) + 256)`,
          },
          { name: 'ROOT_LAST_SECTOR', how: `${rootPart.start} + ROOT_SIZE_MiB x 2048 - 1` },
          { name: 'ROOT_BYTES', how: 'ROOT_SIZE_MiB x 1048576' },
          { name: 'DISK_BYTES', how: `(${rootPart.start} + ROOT_SIZE_MiB x 2048 + 2048) x 512` },
        ]),
    { name: 'LOOP_ROOT', how: 'the loop device losetup prints for the root partition' },
    { name: 'LOOP_BOOT', how: 'the loop device losetup prints for the boot partition' },
    { name: 'OSTREE_COMMIT', how: 'the checksum ostree commit prints' },
    ...(job.platforms.includes('pxe')
      ? [
          { name: 'BLS_LINUX', how: "the `linux` path of ostree's BLS entry" },
          { name: 'BLS_INITRD', how: "the `initrd` path of ostree's BLS entry" },
        ]
      : []),
    ...(job.platforms.includes('qemu')
      ? [
          {
            name: 'LOOP_BOOT_QEMU',
            how: 'the loop device losetup prints for the boot partition (entries to qemu)',
          },
          {
            name: 'LOOP_BOOT_METAL',
            how: 'the loop device losetup prints for the boot partition (entries back to metal)',
          },
        ]
      : []),
  ];
  return { inputs, steps };
}

export const isCommand = (s: NativeStep): s is CommandStep => 'argv' in s;

const INPUT = /\$\{([A-Z][A-Za-z0-9_]*)\}/g;

/**
 * An argument with its inputs put in. An argument naming a list input becomes one argument per
 * element; an input without a value is an error (the plan and the run disagree).
 */
export function resolveArg(arg: string, values: Record<string, string | string[]>): string[] {
  const names = [...arg.matchAll(INPUT)].map((m) => m[1]!);
  const missing = names.filter((n) => values[n] === undefined);
  if (missing.length) throw new Error(`run-time input ${missing.join(', ')} has no value yet (in '${arg}')`);
  const list = names.find((n) => Array.isArray(values[n]));
  if (list !== undefined) {
    if (names.length !== 1) throw new Error(`'${arg}': a list input stands alone in its argument`);
    return (values[list] as string[]).map((v) => arg.replace(INPUT, () => v));
  }
  return [arg.replace(INPUT, (_, n: string) => values[n] as string)];
}

/** The plan as text: the inputs, then each stage's steps (commands after `$`, the rest after `#`). */
export function nativePlanText(plan: NativePlan, quote: (s: string) => string): string[] {
  const out = ['# run-time inputs (the run log records each value as a plan-input event):'];
  for (const i of plan.inputs)
    out.push(`#   ${i.name}${i.list ? ' (list: one argument per element)' : ''}: ${i.how}`);
  let stage = '';
  let when: When | undefined;
  for (const s of plan.steps) {
    if (s.stage !== stage) {
      stage = s.stage;
      when = undefined;
      out.push(`# -- ${stage}`);
    }
    if (s.when !== when) {
      when = s.when;
      out.push(when ? `# with ${whenText[when]}:` : '# always:');
    }
    if (isCommand(s)) {
      const env = Object.entries(s.env ?? {}).map(([k, v]) => `${k}=${v} `);
      const stdin =
        s.input === undefined ? '' : `  # in ${s.cwd}, stdin: ${s.input.trim().split('\n').join(' ')}`;
      out.push(`$ ${env.join('')}${s.argv.map(quote).join(' ')}${s.sets ? `  # -> ${s.sets}` : ''}${stdin}`);
    } else out.push(`# [in process] ${s.what}`);
  }
  return out;
}
