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
// What runs, in order, is native-plan.ts's step list, which `rock-image plan --artifacts` prints:
// this module executes it (runPlan) and records the run-time inputs the plan names.
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
//   /etc/coreos-live-rootfs (written in place around the squashfs, as cpio writes it: newc.ts);
//   both stamps hold the version. Snippets carry formats.md §7's
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
import { join } from 'node:path';
import { PipelineError, ToolMissingError } from '../errors.ts';
import { imageGrubTool, installBios } from '../exec/grub.ts';
import { concatInitrds } from '../exec/initramfs.ts';
import { mountsUnder, waitLoopReleased } from '../exec/losetup.ts';
import { commitChecksum } from '../exec/ostree.ts';
import { kernelVersions } from '../exec/rootfs.ts';
import { canRunArch, hostArch, requireTool } from '../exec/tools.ts';
import type { ArchJob, ArtifactBackend, BackendContext, Produced } from './backend.ts';
import {
  artifactFile,
  type BlsEntry,
  diskLayout,
  kargsFromToml,
  type Platform,
  parseBls,
  pxeSnippets,
  renderBlsGrubCfg,
  renderGrubCfg,
  rootSizeMiB,
  setPlatformId,
} from './layout.ts';
import {
  type Action,
  applies,
  grubTargets,
  type ImageFacts,
  isCommand,
  type NativeStep,
  nativePlan,
  resolveArg,
  rootInputs,
} from './native-plan.ts';
import { writeNewc } from './newc.ts';

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

/** What a command prints that becomes a run-time input, checked. */
const outputs: Record<string, (stdout: string) => string | undefined> = {
  OSTREE_COMMIT: commitChecksum,
  loop: (stdout) => (/^\/dev\/loop\d+$/.test(stdout.trim()) ? stdout.trim() : undefined),
};

/**
 * Runs the plan of `job` (native-plan.ts), step by step: commands through the runner, in-process
 * steps here. Run-time inputs are recorded in the log as they become known (`plan-input`). On a
 * failure, the plan's own release steps of whatever is still held run, in plan order.
 */
async function runPlan(ctx: BackendContext, job: ArchJob): Promise<Produced[]> {
  const { arch } = job;
  const tag = arch;
  const { steps } = nativePlan(job);
  const values: Record<string, string | string[]> = {};
  const record = (name: string, value: string | string[]) => {
    values[name] = value;
    ctx.log.event({ event: 'plan-input', backend: 'native', name, value, tag });
  };
  const one = (arg: string) => resolveArg(arg, values)[0]!;
  let facts: ImageFacts | undefined;
  const on = (s: NativeStep) => {
    if (s.when && !facts)
      throw new PipelineError(`native plan: a step depends on the image before it is inspected`);
    return applies(s.when, facts ?? { ostree: false, grub: false });
  };
  const snippets: Produced[] = [];
  const held = new Set<string>();

  const act = async (a: Action): Promise<void> => {
    switch (a.op) {
      case 'fresh-work': {
        const mounted = mountsUnder(a.dir);
        if (mounted.length)
          throw new PipelineError(`still mounted from an earlier run (unmount first): ${mounted.join(', ')}`);
        rmSync(a.dir, { recursive: true, force: true });
        mkdirSync(a.dir, { recursive: true });
        return;
      }
      case 'inspect-image': {
        facts = inspectImage(ctx, job, a.tree, record);
        return;
      }
      case 'remove':
        rmSync(a.path, { recursive: true, force: true });
        return;
      case 'mkdir':
        mkdirSync(a.path, { recursive: true });
        return;
      case 'write':
        writeFileSync(a.path, a.text);
        return;
      case 'sparse-file':
        sparseFile(a.path, Number(one(a.bytes)));
        return;
      case 'write-into':
        await writeInto(a.dest, a.src, a.offset);
        return;
      case 'aleph':
        writeAleph(a.sysroot, { version: a.version, ref: a.ref, commit: one(a.commit), imgid: a.imgid });
        return;
      case 'grub-cfg':
        mkdirSync(join(a.boot, 'grub2'), { recursive: true });
        writeFileSync(
          join(a.boot, 'grub2/grub.cfg'),
          a.render === 'blscfg' ? renderBlsGrubCfg(arch) : renderGrubCfg(readEntries(a.boot), arch),
        );
        return;
      case 'copy-dir':
        cpSync(a.from, a.to, { recursive: true });
        return;
      case 'bios-boot-code':
        installBios(a.disk, a.core, a.lba, a.sectors, a.bootImg);
        return;
      case 'read-bls-entry': {
        const entry = readEntries(a.boot)[0];
        if (!entry) throw new PipelineError(`${a.boot}/loader/entries holds no BLS entry`);
        record('BLS_LINUX', entry.linux);
        record('BLS_INITRD', entry.initrd);
        return;
      }
      case 'copy-file':
        cpSync(one(a.from), a.to);
        return;
      case 'join-initrds':
        await concatInitrds(a.parts.map(one), a.to);
        return;
      case 'newc':
        writeNewc(a.archive, a.dir, a.names, a.inPlace === undefined ? {} : { inPlace: a.inPlace });
        return;
      case 'loop-released':
        await waitLoopReleased(one(a.device));
        return;
      case 'set-platform': {
        const dir = join(a.boot, 'loader/entries');
        for (const f of readdirSync(dir).filter((n) => n.endsWith('.conf')))
          writeFileSync(join(dir, f), setPlatformId(readFileSync(join(dir, f), 'utf8'), a.id));
        if (a.rerenderMenu)
          writeFileSync(join(a.boot, 'grub2/grub.cfg'), renderGrubCfg(readEntries(a.boot), arch));
        return;
      }
      case 'pxe-snippets':
        for (const sn of pxeSnippets({
          name: job.name,
          version: job.version,
          arch,
          baseUrl: job.pxe.baseUrl,
          ignitionUrl: job.pxe.ignitionUrl,
          // No ostree=: the live initramfs finds the one deployment itself (osbuild
          // coreos.live-artifacts.mono:37-42 LIVE_EXCLUDE_KARGS drops it; fedora-coreos-config
          // 35coreos-live/live-generator:37-54 makes ostree=/ostree/boot.1/*/*/0).
          extra: values.IMAGE_KARGS as string[],
        })) {
          writeFileSync(join(a.dir, sn.file), sn.text);
          snippets.push({ kind: sn.kind, path: join(a.dir, sn.file) });
        }
        return;
    }
  };

  const run = async (s: NativeStep): Promise<void> => {
    if (!isCommand(s)) return act(s.action);
    const argv = s.argv.flatMap((a) => resolveArg(a, values));
    requireTool(argv[0]!);
    // A release is done once tried: a failed one is not tried again on the way out.
    if (s.releases) held.delete(s.releases);
    const r = await ctx.run(argv[0]!, argv.slice(1), { tag, cwd: s.cwd, input: s.input, env: s.env });
    if (s.acquires) held.add(s.acquires);
    if (s.sets) {
      const v = (outputs[s.sets] ?? outputs.loop!)(r.stdout);
      if (v === undefined)
        throw new PipelineError(`${argv.join(' ')} printed '${r.stdout.trim()}', not ${s.sets}`);
      record(s.sets, v);
    }
  };

  try {
    for (let i = 0; i < steps.length; ) {
      const stage = steps[i]!.stage;
      let j = i;
      while (j < steps.length && steps[j]!.stage === stage) j++;
      const group = steps.slice(i, j);
      i = j;
      if (!group.some(on)) continue;
      await ctx.log.step(
        stage,
        async () => {
          for (const s of group) if (on(s)) await run(s);
        },
        tag,
      );
    }
  } catch (err) {
    // The tool root holds binds of the mounted disk: the plan releases it first, and so does this.
    for (const s of steps)
      if (isCommand(s) && s.releases && held.has(s.releases)) await run(s).catch(() => undefined);
    throw err;
  }
  const file = (kind: Parameters<typeof artifactFile>[3]) =>
    join(job.work, artifactFile(job.name, job.version, arch, kind));
  const produced: Produced[] = [];
  if (job.platforms.includes('pxe'))
    produced.push(
      { kind: 'live-kernel', path: file('live-kernel') },
      { kind: 'live-initramfs', path: file('live-initramfs') },
      { kind: 'live-rootfs', path: file('live-rootfs') },
    );
  if (job.platforms.includes('qemu')) produced.push({ kind: 'qemu', path: file('qemu') });
  if (job.platforms.includes('metal')) produced.push({ kind: 'metal', path: file('metal') });
  produced.push(...snippets);
  return produced;
}

/**
 * Reads what the unpacked image decides (one kernel with its initramfs, kargs.d, its own ostree
 * and GRUB), gives the tree ostree's shape and computes the root size; records each as an input.
 */
function inspectImage(
  ctx: BackendContext,
  job: ArchJob,
  rootfs: string,
  record: (name: string, value: string | string[]) => void,
): ImageFacts {
  const { arch } = job;
  const kvers = kernelVersions(rootfs);
  if (kvers.length !== 1)
    throw new PipelineError(
      `${job.archive}: expected one kernel under /usr/lib/modules/<kver>/vmlinuz, found ${kvers.length ? kvers.join(', ') : 'none'}`,
    );
  if (!existsSync(join(rootfs, 'usr/lib/modules', kvers[0]!, 'initramfs.img')))
    throw new PipelineError(`${job.archive}: /usr/lib/modules/${kvers[0]}/initramfs.img is missing`);
  const kargsDir = join(rootfs, 'usr/lib/bootc/kargs.d');
  record(
    'IMAGE_KARGS',
    existsSync(kargsDir)
      ? kargsFromToml(
          readdirSync(kargsDir)
            .filter((f) => f.endsWith('.toml'))
            .map((f) => ({ name: f, text: readFileSync(join(kargsDir, f), 'utf8') })),
          arch,
        )
      : [],
  );
  ostreeShape(rootfs);
  const layout = diskLayout(
    arch,
    job.rootSizeMiB ?? rootSizeMiB(treeBytes(rootfs)),
    `${job.name}/${job.version}/${arch}`,
  );
  // A root size given (--root-size) is in the plan already; a computed one is an input.
  if (job.rootSizeMiB === undefined) for (const [k, v] of Object.entries(rootInputs(layout))) record(k, v);
  const grub = imageGrubTool(rootfs, grubTargets[arch]);
  const facts = { ostree: existsSync(join(rootfs, 'usr/bin/ostree')), grub: grub !== undefined };
  record('IMAGE_OSTREE', facts.ostree ? 'yes' : 'no');
  record('IMAGE_GRUB', facts.grub ? 'yes' : 'no');
  if (grub) {
    record('IMAGE_GRUB_MKIMAGE', grub.tool);
    for (const t of grubTargets[arch]) record(`IMAGE_BLS_${t.replace(/-/g, '_')}`, grub.bls[t]!);
  }
  if (!facts.ostree && !facts.grub)
    ctx.log.warn(
      `${arch}: the image has neither ostree nor a GRUB with blscfg; deploying with the host's ostree (no composefs image) and GRUB (a menu rendered once)`,
    );
  else if (arch !== hostArch() && !canRunArch(arch))
    throw new ToolMissingError(
      `qemu-${arch} (binfmt_misc)`,
      `the ${arch} image's own ostree and GRUB run through qemu-user: run 'rock-image doctor --install cross-arch'`,
    );
  return facts;
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
  /** Every command line of the plan, each variant's, inputs not put in (plan() has the whole list). */
  commands: (job) =>
    nativePlan(job)
      .steps.filter(isCommand)
      .map((s) => s.argv),
  plan: nativePlan,
  make: runPlan,
};
