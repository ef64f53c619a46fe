// The `coreos` backend: CoreOS-flavoured metal, qemu and live (ISO + PXE) artifacts through
// osbuild, with coreos/custom-coreos-disk-images (pinned) in a Fedora builder container, as
// that project documents (a Fedora machine with osbuild and friends installed, run as root).
// The live artifacts keep composefs on. osbuild cannot run on Debian: here the backend is proven
// by its exact command line and by the renaming of its outputs; it runs on GitHub's runners,
// natively per arch (osbuild's VM uses the container's arch, so no cross-arch build).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PipelineError, UnavailableError } from '../errors.ts';
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
  if (job.platforms.includes('metal4k')) out.push('metal4k');
  if (job.platforms.includes('qemu')) out.push('qemu');
  if (job.platforms.includes('pxe') || job.platforms.includes('iso')) out.push('live');
  return out;
}

/**
 * Fedora CoreOS's default of `--extra-kargs` (custom-coreos-disk-images.sh:175-181 @5613490, the
 * value of fedora-coreos-config image-base.yaml:9-11 @2d0fce6d). Passing the option replaces it.
 */
export const CCDI_FCOS_DEFAULT_KARGS = ['mitigations=auto,nosmt'];

/**
 * The one kernel-argument string custom-coreos-disk-images takes. Its getopt spelling is
 * `extra-kargs:` (custom-coreos-disk-images.sh:86, value at :98-100); it is the only way kargs get
 * in: the script writes it as `extra-kargs-string` into a JSON heredoc (:206-219), runvm-osbuild
 * hands it to osbuild-mpp (coreos-assembler src/runvm-osbuild:73,121 @60d468e7) and the manifest
 * puts it, as one element, into the deploy stage's `kernel_opts` after `rw` and
 * `$ignition_firstboot` (src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml:229-232 @60d468e7),
 * which osbuild turns into `ostree container image deploy --karg=` (stages/
 * org.osbuild.ostree.deploy.container:39-42 @f6b23dbc). That deploy uses only the kargs it is
 * given (bootc crates/ostree-ext/src/container/deploy.rs:26,105-107 @534c76ea): kargs.d is
 * read by bootc's install and upgrade alone (crates/lib/src/bootc_kargs.rs:21), so the image's
 * kargs.d arguments must be passed here, after FCOS's default that the option replaces. Space-
 * separated, as coreos-assembler joins image.yaml's list (src/cmd-osbuild:190 @60d468e7); a `"`
 * or `\` would break the JSON and the -D expression, so such a karg is refused.
 */
export function ccdiExtraKargs(job: ArchJob): string {
  const kargs = [...CCDI_FCOS_DEFAULT_KARGS, ...(job.imageKargs ?? [])];
  const bad = kargs.filter((k) => /["\\\s]/.test(k) || k === '');
  if (bad.length)
    throw new PipelineError(
      `kernel arguments custom-coreos-disk-images cannot carry (no quotes, backslashes or spaces): ${bad.join(', ')}`,
    );
  return kargs.join(' ');
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
    // runvm-osbuild runs `podman images` under `set -e` (coreos-assembler src/runvm-osbuild:2,
    // 102-106 @60d468e7) in this container, whose /var/lib/containers would be on the overlayfs
    // of the container's root: containers-storage refuses overlay on overlayfs without a mount
    // program (containers/storage drivers/overlay/overlay.go:349,366-369 @83cf5746) and
    // Fedora's storage.conf names the driver (storage.conf:17), so there is no fallback
    // (drivers/driver.go:425-429). An anonymous volume is a plain filesystem and goes with
    // --rm (podman docs/source/markdown/options/volume.md:16-19 @c6580b4a). osbuild's own
    // containers-storage, where org.osbuild.container-deploy copies the OCI archive
    // (osbuild/util/containers.py:239-248 @f6b23dbc), is in its sandbox's /var, a directory of
    // the osbuild store (osbuild/buildroot.py:134-139,226; objectstore.py:339), which
    // runvm-osbuild keeps under the working directory /srv (src/runvm-osbuild:89): not here.
    '-v',
    '/var/lib/containers',
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
    '--extra-kargs',
    ccdiExtraKargs(job),
    ...(job.targetImgref ? ['--imgref', `ostree-image-signed:docker://${job.targetImgref}`] : []),
  ];
}

/** The files custom-coreos-disk-images writes for our platforms, and what each becomes. */
export function coreosOutputs(job: ArchJob): { from: string; kind: ArtifactKind }[] {
  const prefix = basename(job.archive, '.ociarchive');
  const a = job.arch;
  const out: { from: string; kind: ArtifactKind }[] = [];
  if (job.platforms.includes('metal')) out.push({ from: `${prefix}-metal.${a}.raw`, kind: 'metal' });
  // custom-coreos-disk-images.sh:42,229-230,247 @5613490: ['metal4k']='raw', moved out as
  // <prefix>-<platform>.<arch>.<suffix> (the manifest comes with metal's, :69-71).
  if (job.platforms.includes('metal4k')) out.push({ from: `${prefix}-metal4k.${a}.raw`, kind: 'metal4k' });
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
      throw new UnavailableError(
        `the coreos backend builds ${job.arch} only on a ${job.arch} host (osbuild runs a VM of the builder's arch); this host is ${hostArch()}`,
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
