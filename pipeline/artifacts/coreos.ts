// The `coreos` backend: CoreOS-flavoured metal, qemu and live (ISO + PXE) artifacts through
// osbuild, with coreos/custom-coreos-disk-images (pinned) in a Fedora builder container, as
// that project documents (a Fedora machine with osbuild and friends installed, run as root).
// The live artifacts keep composefs on. osbuild cannot run on Debian: here the backend is proven
// by its exact command line and by the renaming of its outputs; it runs on GitHub's runners,
// natively per arch (osbuild's VM uses the container's arch, so no cross-arch build).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PipelineError } from '../errors.ts';
import { hostArch, requireTool } from '../exec/tools.ts';
import { ociArch } from '../plan/build-plan.ts';
import type { ArchJob, ArtifactBackend, Produced } from './backend.ts';
import { type ArtifactKind, artifactFile } from './layout.ts';

/** custom-coreos-disk-images commit the backend runs (its own pins of coreos-assembler follow). */
export const CCDI_COMMIT = '561349037d798c14c12b77523d1320bbfb903f34';
export const CCDI_URL = `https://raw.githubusercontent.com/coreos/custom-coreos-disk-images/${CCDI_COMMIT}/custom-coreos-disk-images.sh`;
/** The builder: the Fedora release custom-coreos-disk-images is documented against. */
export const BUILDER_IMAGE = 'quay.io/fedora/fedora:41';
/** Packages its README lists, plus curl to fetch the script. */
export const BUILDER_PACKAGES = [
  'osbuild',
  'osbuild-tools',
  'osbuild-ostree',
  'podman',
  'jq',
  'xfsprogs',
  'e2fsprogs',
  'dosfstools',
  'genisoimage',
  'squashfs-tools',
  'erofs-utils',
  'syslinux-nonlinux',
  'zip',
  'curl',
];

/**
 * Runs inside the builder. The script refuses to run unless `getenforce` prints Permissive; in a
 * container on a host without SELinux it prints Disabled, which is as permissive as it gets, so
 * a one-line getenforce saying so is put first on PATH in that case only.
 */
export const BUILDER_SCRIPT = [
  `dnf install -y --setopt=install_weak_deps=False ${BUILDER_PACKAGES.join(' ')}`,
  `curl --fail --location --silent --show-error --output /usr/local/bin/custom-coreos-disk-images.sh ${CCDI_URL}`,
  'chmod 0755 /usr/local/bin/custom-coreos-disk-images.sh',
  `if [ "$(getenforce 2>/dev/null || echo Disabled)" = Disabled ]; then printf '#!/bin/sh\\necho Permissive\\n' > /usr/local/sbin/getenforce; chmod 0755 /usr/local/sbin/getenforce; fi`,
  'exec /usr/local/bin/custom-coreos-disk-images.sh "$@"',
].join('\n');

/** custom-coreos-disk-images platform names for ours (pxe and iso both come from `live`). */
function ccdiPlatforms(job: ArchJob): string[] {
  const out: string[] = [];
  if (job.platforms.includes('metal')) out.push('metal');
  if (job.platforms.includes('qemu')) out.push('qemu');
  if (job.platforms.includes('pxe') || job.platforms.includes('iso')) out.push('live');
  return out;
}

export function coreosArgs(job: ArchJob): string[] {
  return [
    'run',
    '--rm',
    '--privileged',
    '--pid=host',
    '--security-opt',
    'label=disable',
    '--platform',
    `linux/${ociArch[job.arch]}`,
    '-v',
    '/dev:/dev',
    '-v',
    `${job.archive}:/in/${basename(job.archive)}:ro`,
    '-v',
    `${job.work}:/srv`,
    '-w',
    '/srv',
    '--entrypoint',
    '/bin/bash',
    BUILDER_IMAGE,
    '-euc',
    BUILDER_SCRIPT,
    'custom-coreos-disk-images',
    '--ociarchive',
    `/in/${basename(job.archive)}`,
    '--osname',
    'fedora-coreos',
    '--platforms',
    ccdiPlatforms(job).join(','),
    ...(job.targetImgref ? ['--imgref', `ostree-image-signed:docker://${job.targetImgref}`] : []),
  ];
}

/** The files custom-coreos-disk-images writes for our platforms, and what each becomes. */
export function coreosOutputs(job: ArchJob): { from: string; kind: ArtifactKind }[] {
  const prefix = basename(job.archive, '.ociarchive');
  const a = job.arch;
  const out: { from: string; kind: ArtifactKind }[] = [];
  if (job.platforms.includes('metal')) out.push({ from: `${prefix}-metal.${a}.raw`, kind: 'metal' });
  if (job.platforms.includes('qemu')) out.push({ from: `${prefix}-qemu.${a}.qcow2`, kind: 'qemu' });
  if (job.platforms.includes('iso')) out.push({ from: `${prefix}-live-iso.${a}.iso`, kind: 'live-iso' });
  if (job.platforms.includes('pxe'))
    out.push(
      { from: `${prefix}-live-kernel.${a}`, kind: 'live-kernel' },
      { from: `${prefix}-live-initramfs.${a}.img`, kind: 'live-initramfs' },
      { from: `${prefix}-live-rootfs.${a}.img`, kind: 'live-rootfs' },
    );
  return out;
}

export const coreos: ArtifactBackend = {
  name: 'coreos',
  supports: () => true,
  commands: (job) => [['podman', ...coreosArgs(job)]],
  async make(ctx, job) {
    if (job.arch !== hostArch())
      throw new PipelineError(
        `the coreos backend builds ${job.arch} only on a ${job.arch} host (osbuild runs a VM of the builder's arch); this host is ${hostArch()}`,
        69,
      );
    requireTool('podman');
    rmSync(job.work, { recursive: true, force: true });
    mkdirSync(job.work, { recursive: true });
    await ctx.log.step(
      'osbuild (custom-coreos-disk-images)',
      () => ctx.run('podman', coreosArgs(job), { tag: job.arch, stream: true }),
      job.arch,
    );
    const produced: Produced[] = [];
    for (const o of coreosOutputs(job)) {
      const from = join(job.work, o.from);
      if (!existsSync(from)) throw new PipelineError(`custom-coreos-disk-images did not write ${o.from}`);
      const dest = join(job.work, artifactFile(job.name, job.version, job.arch, o.kind));
      renameSync(from, dest);
      produced.push({ kind: o.kind, path: dest });
    }
    return produced;
  },
};
