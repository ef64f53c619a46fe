// The `bootc` backend: the upstream way to put a bootc image on a disk, `bootc install to-disk
// --via-loopback` run from the built image itself in a privileged podman container
// (bootc-dev/bootc docs/src/bootc-install.md, "to-disk --via-loopback"). bootc cannot run on
// Debian, so here it is proven by its exact command lines only; it runs on GitHub's runners.
// Disks only: bootc makes no PXE files and no ISO.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { qcow2Args } from '../exec/qemu-img.ts';
import { requireTool } from '../exec/tools.ts';
import { ociArch } from '../plan/build-plan.ts';
import type { ArchJob, ArtifactBackend, Produced } from './backend.ts';
import { artifactFile, serialConsole } from './layout.ts';

/** Disk size bootc installs into (bootc's docs use 10G; Ignition grows root on first boot). */
export const BOOTC_DISK_SIZE = '10G';

const localImage = (job: ArchJob) => `localhost/${job.name}:${job.version}-${job.arch}`;

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
    '--karg',
    `ignition.platform.id=${platformId}`,
    '--karg',
    `console=${serialConsole[job.arch]}`,
    `/output/${rawName}`,
  ];
}

function steps(job: ArchJob): { cmd: string; args: string[] }[] {
  const out = [
    {
      cmd: 'skopeo',
      args: ['copy', '--quiet', `oci-archive:${job.archive}`, `containers-storage:${localImage(job)}`],
    },
  ];
  for (const platformId of ['metal', 'qemu'] as const) {
    if (!job.platforms.includes(platformId)) continue;
    const raw = `${platformId}-bootc.raw`;
    out.push({ cmd: 'truncate', args: ['--size', BOOTC_DISK_SIZE, join(job.work, raw)] });
    out.push({ cmd: 'podman', args: bootcInstallArgs(job, platformId, raw) });
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

export const bootc: ArtifactBackend = {
  name: 'bootc',
  supports(platform) {
    return platform === 'metal' || platform === 'qemu'
      ? true
      : `bootc install makes disks only, not ${platform === 'pxe' ? 'PXE files' : 'a live ISO'}; use --backend coreos or native`;
  },
  commands: (job) => steps(job).map((s) => [s.cmd, ...s.args]),
  async make(ctx, job) {
    requireTool('podman');
    rmSync(job.work, { recursive: true, force: true });
    mkdirSync(job.work, { recursive: true });
    for (const s of steps(job))
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
