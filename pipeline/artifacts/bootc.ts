// The `bootc` backend: the upstream way to put a bootc image on a disk, `bootc install to-disk
// --via-loopback` run from the built image itself in a privileged podman container
// (bootc-dev/bootc docs/src/bootc-install.md, "to-disk --via-loopback"). bootc cannot run on
// Debian, so here it is proven by its exact command lines only; it runs on GitHub's runners.
// bootc writes no Ignition first-boot stamp, so the backend adds it afterwards in the disk's boot
// filesystem, as coreos-assembler does. Disks only: bootc makes no PXE files and no ISO.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PipelineError } from '../errors.ts';
import { attachRange, mount } from '../exec/losetup.ts';
import { qcow2Args } from '../exec/qemu-img.ts';
import { printTable } from '../exec/sgdisk.ts';
import { archiveCopyArgs } from '../exec/skopeo.ts';
import { requireTool } from '../exec/tools.ts';
import { ociArch } from '../plan/build-plan.ts';
import type { ArchJob, ArtifactBackend, BackendContext, Produced } from './backend.ts';
import { artifactFile, serialConsole } from './layout.ts';

/** Disk size bootc installs into (bootc's docs use 10G; Ignition grows root on first boot). */
export const BOOTC_DISK_SIZE = '10G';

const localImage = (job: ArchJob) => `localhost/${job.name}:${job.version}-${job.arch}`;

/**
 * Kernel arguments coreos-assembler gives `bootc install` for Fedora CoreOS
 * (src/osbuild-manifests/build.raw-image-bootc.ipp.yaml:192-197 @05db482e): the literal
 * `$ignition_firstboot`, which GRUB expands from FCOS's static config to `ignition.firstboot ...`
 * only while /ignition.firstboot exists on the boot filesystem (fedora-coreos-config
 * overlay.d/40grub/usr/lib/bootupd/grub2-static/configs.d/40_coreos-ignition.cfg:6-18 @2d0fce6d;
 * bootc installs those static configs through `bootupctl backend install --write-uuid` or
 * `--with-static-configs`, bootc crates/lib/src/bootloader.rs:173-177 @534c76ea, and
 * --write-uuid implies --with-static-configs, bootupd src/cli/bootupd.rs:67-70 @8ecc2e77), then
 * FCOS's extra kargs (fedora-coreos-config image-base.yaml:9-11 @2d0fce6d). bootc itself knows
 * nothing of Ignition (no `ignition` in bootc crates/ @534c76ea).
 */
export const BOOTC_FCOS_KARGS = ['$ignition_firstboot', 'mitigations=auto,nosmt'];

/** The exact bootc install command (in its podman container) for one platform's raw disk. */
export function bootcInstallArgs(job: ArchJob, platformId: 'metal' | 'qemu', rawName: string): string[] {
  return [
    'run',
    '--rm',
    '--privileged',
    '--pid=host',
    '--security-opt',
    'label=type:unconfined_t',
    '--platform',
    `linux/${ociArch[job.arch]}`,
    '-v',
    '/dev:/dev',
    '-v',
    '/var/lib/containers:/var/lib/containers',
    '-v',
    `${job.work}:/output`,
    localImage(job),
    'bootc',
    'install',
    'to-disk',
    '--generic-image',
    '--via-loopback',
    '--filesystem',
    'xfs',
    ...(job.targetImgref ? ['--target-imgref', job.targetImgref] : []),
    // bootc crates/lib/src/install.rs:269-275 @534c76ea: the installed origin becomes
    // `ostree-image-signed:` (utils.rs:141-146, install.rs:1631-1644), and every later pull
    // refuses while containers-policy.json's default is insecureAcceptAnything
    // (crates/ostree-ext/src/container/store.rs:942-948, skopeo.rs:119-128). Only an image
    // carrying our policy.json (default reject: stream publish.trust, plan/trust.ts) passes, so
    // the flag goes only with `signed`; without it a sensor would never update.
    ...(job.signed ? ['--enforce-container-sigpolicy'] : []),
    ...BOOTC_FCOS_KARGS.flatMap((k) => ['--karg', k]),
    '--karg',
    `ignition.platform.id=${platformId}`,
    '--karg',
    `console=${serialConsole[job.arch]}`,
    `/output/${rawName}`,
  ];
}

/**
 * The first-boot stamp, as coreos-assembler adds it after `bootc install`, which wants empty
 * filesystems (build.raw-image-bootc.ipp.yaml:228-232 @05db482e): an empty `ignition.firstboot`
 * at the root of the boot filesystem (osbuild stages/org.osbuild.ignition:19-22 @f6b23dbc;
 * Fedora CoreOS removes it once Ignition succeeded, fedora-coreos-config overlay.d/05core/usr/
 * libexec/coreos-ignition-firstboot-complete:4-14 @2d0fce6d). The boot filesystem is the one
 * labelled `boot` (bootc crates/lib/src/install/baseline.rs:427 @534c76ea makes it with that
 * label and the root's filesystem type, in the partition named `boot`, :331-336). It is found
 * by probing each partition of the file (no partition scan, so neither udev nor the host's own
 * `boot` label are involved), then mounted through a loop device on its byte range.
 */
export const FIRSTBOOT_STAMP = 'ignition.firstboot';
export const BOOT_LABEL = 'boot';

/** A partition of a disk image file, in bytes. */
export interface Extent {
  start: number;
  size: number;
}

const probeArgs = (raw: string, offset: string, size: string) => [
  '--probe',
  '--offset',
  offset,
  '--size',
  size,
  '--output',
  'export',
  raw,
];

/** The stamp's command lines for `raw`; `found` fills in what only the disk tells (plan: placeholders). */
export function stampCommands(
  raw: string,
  mnt: string,
  found?: { partitions: Extent[]; boot: Extent; dev: string },
): string[][] {
  const partitions = found?.partitions.map((p) => [String(p.start), String(p.size)]) ?? [
    ['<partition start>', '<partition size>'],
  ];
  const boot = found ? [String(found.boot.start), String(found.boot.size)] : ['<boot start>', '<boot size>'];
  const dev = found?.dev ?? '/dev/loopB';
  return [
    ['sgdisk', '--print', raw],
    ...partitions.map(([o, s]) => ['blkid', ...probeArgs(raw, o!, s!)]),
    ['losetup', '--find', '--show', '--offset', boot[0]!, '--sizelimit', boot[1]!, raw],
    ['mount', dev, mnt],
    ['touch', join(mnt, FIRSTBOOT_STAMP)],
    ['umount', mnt],
    ['losetup', '--detach', dev],
  ];
}

/** Partitions of `sgdisk --print` output, in bytes. */
export function parseSgdiskPrint(text: string, sectorSize = 512): Extent[] {
  const sector = /^Sector size \(logical\): (\d+) bytes$/m.exec(text);
  const unit = sector ? Number(sector[1]) : sectorSize;
  const out: Extent[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+\s+(\d+)\s+(\d+)\s/.exec(line);
    if (m) out.push({ start: Number(m[1]) * unit, size: (Number(m[2]) - Number(m[1]) + 1) * unit });
  }
  return out;
}

/** Writes the stamp into the boot filesystem of `raw`; always unmounts and detaches. */
async function writeFirstbootStamp(
  ctx: BackendContext,
  raw: string,
  mnt: string,
  tag: string,
): Promise<void> {
  requireTool('sgdisk');
  requireTool('blkid');
  const partitions = parseSgdiskPrint(await printTable(ctx.run, raw));
  const labelled: Extent[] = [];
  for (const p of partitions) {
    const r = await ctx.run('blkid', probeArgs(raw, String(p.start), String(p.size)), {
      tag,
      allowFailure: true,
    });
    if (r.exitCode === 0 && new RegExp(`^LABEL=${BOOT_LABEL}$`, 'm').test(r.stdout)) labelled.push(p);
    else if (r.exitCode !== 0 && r.exitCode !== 2)
      throw new PipelineError(`blkid failed on ${raw} at byte ${p.start}: ${r.stderr.trim()}`);
  }
  if (labelled.length !== 1)
    throw new PipelineError(
      `${raw}: expected one filesystem labelled '${BOOT_LABEL}', found ${labelled.length} (bootc install makes one)`,
    );
  const boot = labelled[0]!;
  mkdirSync(mnt, { recursive: true });
  const loop = await attachRange(ctx.run, raw, boot.start, boot.size, tag);
  try {
    const m = await mount(ctx.run, loop.dev, mnt, tag);
    try {
      await ctx.run('touch', [join(mnt, FIRSTBOOT_STAMP)], { tag });
    } finally {
      await m.unmount();
    }
  } finally {
    await loop.detach();
  }
}

type Step = { cmd: string; args: string[] } | { stamp: string };

function steps(job: ArchJob): Step[] {
  const out: Step[] = [
    {
      cmd: 'skopeo',
      args: archiveCopyArgs(job.archive, `containers-storage:${localImage(job)}`),
    },
  ];
  for (const platformId of ['metal', 'qemu'] as const) {
    if (!job.platforms.includes(platformId)) continue;
    const raw = `${platformId}-bootc.raw`;
    out.push({ cmd: 'truncate', args: ['--size', BOOTC_DISK_SIZE, join(job.work, raw)] });
    out.push({ cmd: 'podman', args: bootcInstallArgs(job, platformId, raw) });
    out.push({ stamp: join(job.work, raw) });
    if (platformId === 'qemu')
      out.push({
        cmd: 'qemu-img',
        args: qcow2Args(
          join(job.work, raw),
          join(job.work, artifactFile(job.name, job.version, job.arch, 'qemu')),
        ),
      });
  }
  return out;
}

const stampMount = (job: ArchJob) => join(job.work, 'boot-mnt');

export const bootc: ArtifactBackend = {
  name: 'bootc',
  supports(platform) {
    if (platform === 'metal' || platform === 'qemu') return true;
    if (platform === 'metal4k') return 'this backend makes no 4K-sector disk (metal4k); use --backend coreos';
    return `bootc install makes disks only, not ${platform === 'pxe' ? 'PXE files' : 'a live ISO'}; use --backend coreos or native`;
  },
  commands: (job) =>
    steps(job).flatMap((s) =>
      'stamp' in s ? stampCommands(s.stamp, stampMount(job)) : [[s.cmd, ...s.args]],
    ),
  async make(ctx, job) {
    requireTool('podman');
    rmSync(job.work, { recursive: true, force: true });
    mkdirSync(job.work, { recursive: true });
    for (const s of steps(job))
      if ('stamp' in s)
        await ctx.log.step(
          `first-boot stamp in ${basename(s.stamp)}`,
          () => writeFirstbootStamp(ctx, s.stamp, stampMount(job), job.arch),
          job.arch,
        );
      else
        await ctx.log.step(
          `${s.cmd} ${s.args[0]}`,
          () => ctx.run(s.cmd, s.args, { tag: job.arch, stream: true }),
          job.arch,
        );
    const produced: Produced[] = [];
    if (job.platforms.includes('metal')) {
      const dest = join(job.work, artifactFile(job.name, job.version, job.arch, 'metal'));
      renameSync(join(job.work, 'metal-bootc.raw'), dest);
      produced.push({ kind: 'metal', path: dest });
    }
    if (job.platforms.includes('qemu')) {
      rmSync(join(job.work, 'qemu-bootc.raw'), { force: true });
      produced.push({
        kind: 'qemu',
        path: join(job.work, artifactFile(job.name, job.version, job.arch, 'qemu')),
      });
    }
    return produced;
  },
};
