// The `coreos` backend: CoreOS-flavoured metal, qemu and live (ISO + PXE) artifacts through
// osbuild, with coreos/custom-coreos-disk-images (pinned) in a Fedora builder container, as
// that project documents (a Fedora machine with osbuild and friends installed, run as root).
// The live artifacts keep composefs on. osbuild cannot run on Debian: here the backend is proven
// by its exact command line and by the renaming of its outputs; it runs on GitHub's runners,
// natively per arch (osbuild's VM uses the container's arch, so no cross-arch build).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PipelineError, UnavailableError } from '../errors.ts';
import { podman } from '../exec/podman.ts';
import { hostArch } from '../exec/tools.ts';
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

/**
 * custom-coreos-disk-images' platforms that make ours, with the suffix of each one's main file
 * (SUPPORTED_PLATFORMS, custom-coreos-disk-images.sh:29-50 @5613490). `metal4k` comes with
 * metal's manifest (:67-75). pxe and iso both come from `live`, which makes the ISO and the PXE
 * kernel, initramfs and rootfs together (:235-244), from the metal and metal4k disks it builds
 * on the way (coreos-assembler src/osbuild-manifests/platform.live.ipp.yaml:15-28 @60d468e7).
 */
export const CCDI_PLATFORMS = { metal: 'raw', metal4k: 'raw', qemu: 'qcow2', live: 'iso' } as const;
export type CcdiPlatform = keyof typeof CCDI_PLATFORMS;

/** The files `live` moves out, after `<prefix>-live-` (custom-coreos-disk-images.sh:237,240). */
export const ccdiLiveFiles = (arch: string) => [
  `iso.${arch}.${CCDI_PLATFORMS.live}`,
  `kernel.${arch}`,
  `rootfs.${arch}.img`,
  `initramfs.${arch}.img`,
];

/** `--platforms` for ours, comma-separated as the script splits it (:122-126). */
export function ccdiPlatforms(job: ArchJob): CcdiPlatform[] {
  const out: CcdiPlatform[] = [];
  if (job.platforms.includes('metal')) out.push('metal');
  if (job.platforms.includes('metal4k')) out.push('metal4k');
  if (job.platforms.includes('qemu')) out.push('qemu');
  if (job.platforms.includes('pxe') || job.platforms.includes('iso')) out.push('live');
  return out;
}

/**
 * The origin a system installed from these disks follows for updates. `--imgref` (getopt :86,
 * :102-105) becomes `container-imgref` (:213), the deploy stage's `target_imgref` (coreos-assembler
 * src/runvm-osbuild:70,118 and src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml:224-225
 * @60d468e7), then `ostree container image deploy --target-imgref=` (osbuild
 * stages/org.osbuild.ostree.deploy.container:37 @f6b23dbc; its schema takes both forms below,
 * .meta.json:40). The deploy itself pulls the archive as `ostree-unverified-image:` (:23): the
 * target is only recorded. `ostree-image-signed:docker://` makes every later pull refuse while
 * containers-policy.json's default is insecureAcceptAnything (bootc
 * crates/ostree-ext/src/container/store.rs:942-948 @534c76ea), so, as with bootc's
 * --enforce-container-sigpolicy (bootc.ts), it goes only to an image carrying our policy
 * (`signed`: stream publish.trust, plan/trust.ts); else `ostree-unverified-registry:`, the
 * registry form without verification (container/mod.rs:255-258), as bootc itself writes an
 * unverified registry origin (:311-320). Without a target, the script's default stays (:157).
 */
export function ccdiImgref(job: ArchJob): string | undefined {
  if (!job.targetImgref) return undefined;
  return job.signed
    ? `ostree-image-signed:docker://${job.targetImgref}`
    : `ostree-unverified-registry:${job.targetImgref}`;
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
  const imgref = ccdiImgref(job);
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
    // An existing file (custom-coreos-disk-images.sh:110-113,147-153 @5613490); its name less
    // `.ociarchive` is the prefix of every output (:209, :230, :240).
    '--ociarchive',
    `/in/${basename(job.archive)}`,
    // rhcos or fedora-coreos only (:114-121); fedora-coreos picks FCOS's image size and kargs
    // (:165-181). It is also the ostree stateroot of the deployment (coreos-assembler
    // src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml:170-171,222-223 @60d468e7).
    '--osname',
    'fedora-coreos',
    '--platforms',
    ccdiPlatforms(job).join(','),
    '--extra-kargs',
    ccdiExtraKargs(job),
    ...(imgref ? ['--imgref', imgref] : []),
  ];
}

/**
 * The files custom-coreos-disk-images writes for our platforms, and what each becomes. It moves
 * each platform's file to its working directory (`mv ... ./`, custom-coreos-disk-images.sh:242,247
 * @5613490; ours is /srv, job.work) as `<prefix>-<platform>.<arch>.<suffix>` (:229-230), and
 * live's as `<prefix>-live-<file>` (:237,240); `<arch>` is the builder's `arch` (:25), ours.
 */
export function coreosOutputs(job: ArchJob): { from: string; kind: ArtifactKind }[] {
  const prefix = basename(job.archive, '.ociarchive');
  const a = job.arch;
  const disk = (p: CcdiPlatform) => `${prefix}-${p}.${a}.${CCDI_PLATFORMS[p]}`;
  const [iso, kernel, rootfs, initramfs] = ccdiLiveFiles(a).map((f) => `${prefix}-live-${f}`);
  const out: { from: string; kind: ArtifactKind }[] = [];
  if (job.platforms.includes('metal')) out.push({ from: disk('metal'), kind: 'metal' });
  if (job.platforms.includes('metal4k')) out.push({ from: disk('metal4k'), kind: 'metal4k' });
  if (job.platforms.includes('qemu')) out.push({ from: disk('qemu'), kind: 'qemu' });
  if (job.platforms.includes('iso')) out.push({ from: iso!, kind: 'live-iso' });
  if (job.platforms.includes('pxe'))
    out.push(
      { from: kernel!, kind: 'live-kernel' },
      { from: initramfs!, kind: 'live-initramfs' },
      { from: rootfs!, kind: 'live-rootfs' },
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
    rmSync(job.work, { recursive: true, force: true });
    mkdirSync(job.work, { recursive: true });
    await ctx.log.step(
      'osbuild (custom-coreos-disk-images)',
      () => podman(ctx.run, coreosArgs(job), { tag: job.arch, stream: true }),
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
