// biome-ignore-all lint/suspicious/noTemplateCurlyInString: upstream shell, GRUB and manifest lines are literal ${...}
// The bootc and coreos backends cannot run here, so their command lines rest on upstream facts,
// each cited beside the code as repo path:line @commit. This test reads those very lines of the
// upstream files at those commits and checks that they say what our arguments assume.
// Files come from git mirrors when ROCK_UPSTREAM_GIT names a directory of them
// (<owner>+<name>/repo, bare), else from raw.githubusercontent.com (cached under .cache/test).
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ArchJob } from '../../pipeline/artifacts/backend.ts';
import {
  BOOT_LABEL,
  BOOTC_FCOS_KARGS,
  bootcInstallArgs,
  FIRSTBOOT_STAMP,
  stampCommands,
} from '../../pipeline/artifacts/bootc.ts';
import {
  BUILDER_SCRIPT,
  CCDI_COMMIT,
  CCDI_FCOS_DEFAULT_KARGS,
  CCDI_PLATFORMS,
  ccdiImgref,
  ccdiPlatforms,
  coreosArgs,
  coreosOutputs,
} from '../../pipeline/artifacts/coreos.ts';
import { streamKargs } from '../../pipeline/artifacts/index.ts';
import { file, lines } from '../world/upstream.ts';

const COSA = '05db482e6439a502bc94f56d3ae11c7f8189c459';
const COSA_PINNED = '60d468e70172345d807886f1e3685b74803c370f';
const BOOTC = '534c76ea474a356aa288f6767635e579ea2614d5';
const BOOTUPD = '8ecc2e7731cab3f71e62057eb772e72aa334123f';
const OSB = 'f6b23dbc90c0919b22cf6ffab5bcb9ccab5aad28';
const FCC = '2d0fce6d5cfd5198c27e131757ecb934e1b092e7';
const STORAGE = '83cf57466529353aced8f1803f2302698e0b5cb7';

const job = (over: Partial<ArchJob> = {}): ArchJob => ({
  arch: 'x86_64',
  name: 'rocknsm-coreos',
  version: '41.1',
  osname: 'rocknsm',
  archive: '/b/x.ociarchive',
  work: '/w',
  platforms: ['metal'],
  created: '1970-01-01T00:00:00Z',
  pxe: { baseUrl: '', ignitionUrl: '' },
  ...over,
});

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

const CCDI = 'coreos/custom-coreos-disk-images';
const SCRIPT = 'custom-coreos-disk-images.sh';
/** Our arguments to custom-coreos-disk-images: what follows its name in the podman command. */
const ccdiArgs = (args: string[]) => args.slice(args.indexOf('custom-coreos-disk-images') + 1);

test('bootc: $ignition_firstboot and the extra kargs, as coreos-assembler passes them', async () => {
  const cosa = await lines(
    'coreos/coreos-assembler',
    COSA,
    'src/osbuild-manifests/build.raw-image-bootc.ipp.yaml',
    192,
    197,
  );
  assert.match(cosa, "then: '$ignition_firstboot'");
  assert.match(cosa, "mpp-format-string: '{extra_kargs}'");
  const extra = await lines('coreos/fedora-coreos-config', FCC, 'image-base.yaml', 9, 11);
  assert.match(extra, /^extra-kargs:\n.*\n\s+- mitigations=auto,nosmt$/);
  assert.equal(BOOTC_FCOS_KARGS, ['$ignition_firstboot', 'mitigations=auto,nosmt']);
  assert.equal(after(bootcInstallArgs(job(), 'metal', 'm.raw'), '--karg').slice(0, 2), BOOTC_FCOS_KARGS);
  // GRUB expands it only while the stamp exists at the root of the boot filesystem.
  const grub = await lines(
    'coreos/fedora-coreos-config',
    FCC,
    'overlay.d/40grub/usr/lib/bootupd/grub2-static/configs.d/40_coreos-ignition.cfg',
    6,
    18,
  );
  assert.match(grub, `if [ -f "/${FIRSTBOOT_STAMP}" ]; then`);
  assert.match(grub, 'set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"');
  // bootc installs those static configs either way (--write-uuid implies them).
  assert.match(
    await lines('bootc-dev/bootc', BOOTC, 'crates/lib/src/bootloader.rs', 173, 177),
    '--with-static-configs',
  );
  assert.match(
    await lines('coreos/bootupd', BOOTUPD, 'src/cli/bootupd.rs', 67, 70),
    'Implies `--with-static-configs`',
  );
});

test('bootc: the stamp, an empty ignition.firstboot in the filesystem labelled boot, after the install', async () => {
  const cosa = await lines(
    'coreos/coreos-assembler',
    COSA,
    'src/osbuild-manifests/build.raw-image-bootc.ipp.yaml',
    228,
    232,
  );
  assert.match(cosa, 'bootc want empty filesystems');
  assert.match(cosa, 'type: org.osbuild.ignition');
  assert.match(cosa, 'target: mount://boot/');
  const stage = await lines('osbuild/osbuild', OSB, 'stages/org.osbuild.ignition', 19, 22);
  assert.match(stage, `open(f"{location}/${FIRSTBOOT_STAMP}", "w"`);
  assert.match(stage, 'if network:'); // content only with network kargs; we give none
  const mkfs = await lines('bootc-dev/bootc', BOOTC, 'crates/lib/src/install/baseline.rs', 427);
  assert.match(mkfs, `mkfs(&bootdev.path(), root_filesystem, "${BOOT_LABEL}"`);
  const cmds = stampCommands('/w/d.raw', '/w/m');
  assert.equal(cmds[4], ['touch', `/w/m/${FIRSTBOOT_STAMP}`]);
  assert.equal(cmds.at(-2), ['umount', '/w/m']);
  assert.equal(cmds.at(-1), ['losetup', '--detach', '/dev/loopB']);
});

test('bootc: --enforce-container-sigpolicy only for images carrying our signature policy', async () => {
  const opt = await lines('bootc-dev/bootc', BOOTC, 'crates/lib/src/install.rs', 269, 275);
  assert.match(opt, 'requires signatures');
  assert.match(opt, /#\[clap\(long\)\][\s\S]*pub\(crate\) enforce_container_sigpolicy: bool,/);
  const refuse = await lines('bootc-dev/bootc', BOOTC, 'crates/ostree-ext/src/container/store.rs', 942, 948);
  assert.match(refuse, 'container_policy_is_default_insecure');
  assert.match(refuse, 'refusing usage');
  assert.ok(
    bootcInstallArgs(job({ signed: true }), 'metal', 'm.raw').includes('--enforce-container-sigpolicy'),
  );
  assert.not.ok(
    bootcInstallArgs(job({ signed: false }), 'metal', 'm.raw').includes('--enforce-container-sigpolicy'),
  );
  assert.not.ok(bootcInstallArgs(job(), 'metal', 'm.raw').includes('--enforce-container-sigpolicy'));
});

test('coreos: --extra-kargs carries FCOS default and the kargs.d arguments', async () => {
  const script = SCRIPT;
  const ccdi = CCDI;
  const getopt = await lines(ccdi, CCDI_COMMIT, script, 86);
  assert.match(getopt, /--longoptions '[^']*\bextra-kargs:[,']/);
  const defaults = await lines(ccdi, CCDI_COMMIT, script, 175, 181);
  assert.match(defaults, `if [ -z "\${extra_kargs:-}" ]; then`);
  assert.match(defaults, `extra_kargs="${CCDI_FCOS_DEFAULT_KARGS.join(' ')}" # FCOS`);
  // Only the one string reaches the deploy, as one kernel_opts element after rw, $ignition_firstboot.
  assert.match(await lines(ccdi, CCDI_COMMIT, script, 217), '"extra-kargs-string": "${extra_kargs}"');
  const mpp = await lines(
    'coreos/coreos-assembler',
    COSA_PINNED,
    'src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml',
    229,
    232,
  );
  assert.match(mpp, /- rw\n\s+- '\$ignition_firstboot'\n\s+- mpp-format-string: '\{extra_kargs\}'/);
  assert.match(
    await lines('coreos/coreos-assembler', COSA_PINNED, 'src/cmd-osbuild', 190),
    `print(" ".join(args))`,
  );
  // The script pins those manifests.
  assert.match(await lines(ccdi, CCDI_COMMIT, script, 190), `gitreporef="${COSA_PINNED}"`);
  const kargs = streamKargs(
    [{ kargs: ['audit=0', 'rd.lvm=0'] }, { kargs: ['arm=1'], matchArchitectures: ['aarch64'] }],
    'x86_64',
  );
  assert.equal(kargs, ['audit=0', 'rd.lvm=0']);
  assert.equal(after(coreosArgs(job({ imageKargs: kargs })), '--extra-kargs'), [
    'mitigations=auto,nosmt audit=0 rd.lvm=0',
  ]);
  assert.equal(after(coreosArgs(job()), '--extra-kargs'), ['mitigations=auto,nosmt']);
  assert.throws(() => coreosArgs(job({ imageKargs: ['a="b c"'] })), /cannot carry/);
});

test('coreos: the builder gets /var/lib/containers as a volume for runvm-osbuild podman images', async () => {
  const cosa = 'coreos/coreos-assembler';
  assert.is(await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 2), 'set -euo pipefail');
  assert.is(await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 106), 'podman images > /dev/null');
  assert.is(await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 89), 'storedir=cache/osbuild/store');
  const overlay = await lines('containers/storage', STORAGE, 'drivers/overlay/overlay.go', 366, 369);
  assert.match(overlay, "'overlay' is not supported over %s, a mount_program is required");
  assert.is(await lines('containers/storage', STORAGE, 'storage.conf', 17), 'driver = "overlay"');
  const args = coreosArgs(job());
  assert.ok(after(args, '-v').includes('/var/lib/containers'));
});

test('coreos: every option we pass is one of the script getopt long options, taking a value', async () => {
  const getopt = await lines(CCDI, CCDI_COMMIT, SCRIPT, 86);
  const long = /--longoptions '([^']*)'/.exec(getopt)![1]!.split(',');
  assert.equal(long, [
    'imgref:',
    'ociarchive:',
    'osname:',
    'platforms:',
    'metal-image-size:',
    'cloud-image-size:',
    'extra-kargs:',
  ]);
  const all = job({ platforms: ['metal', 'metal4k', 'qemu', 'pxe', 'iso'], targetImgref: 'ghcr.io/r/i:s' });
  const ours = ccdiArgs(coreosArgs(all));
  const flags = ours.filter((a) => a.startsWith('--'));
  assert.equal(flags, ['--ociarchive', '--osname', '--platforms', '--extra-kargs', '--imgref']);
  for (const f of flags) assert.ok(long.includes(`${f.slice(2)}:`), f);
  assert.is(ours.length, flags.length * 2, 'each option with its value, nothing else');
  // --ociarchive: an existing file; its name less .ociarchive prefixes every output.
  const check = await lines(CCDI, CCDI_COMMIT, SCRIPT, 147, 153);
  assert.match(check, 'if [ ! -f $ociarchive ]; then');
  assert.match(
    await lines(CCDI, CCDI_COMMIT, SCRIPT, 209),
    '"artifact-name-prefix": "$(basename -s .ociarchive $ociarchive)",',
  );
  assert.match(after(ours, '--ociarchive')[0]!, /^\/in\/[^/]+\.ociarchive$/);
  // --osname: only rhcos or fedora-coreos; fedora-coreos picks FCOS's defaults.
  const osname = await lines(CCDI, CCDI_COMMIT, SCRIPT, 114, 121);
  assert.match(osname, 'if [ "$osname" != rhcos ] && [ "$osname" != fedora-coreos ]; then');
  assert.equal(after(ours, '--osname'), ['fedora-coreos']);
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 178), `if [ "$osname" == 'fedora-coreos' ]; then`);
  // The osname is the deployment's stateroot (not the image's own osname).
  const mpp = await lines(
    'coreos/coreos-assembler',
    COSA_PINNED,
    'src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml',
    220,
    223,
  );
  assert.match(
    mpp,
    /type: org\.osbuild\.ostree\.deploy\.container\n\s+options:\n\s+osname:\n\s+mpp-format-string: '\{osname\}'/,
  );
  // The script refuses unless getenforce says Permissive; the builder script provides that where
  // SELinux is absent.
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 138), 'if [ "$(getenforce)" != "Permissive" ]; then');
  assert.match(BUILDER_SCRIPT, "printf '#!/bin/sh\\necho Permissive\\n' > /usr/local/sbin/getenforce");
});

test('coreos: --platforms names are the script own, metal4k with metal manifest, pxe and iso from live', async () => {
  const table = await lines(CCDI, CCDI_COMMIT, SCRIPT, 29, 50);
  const upstream = Object.fromEntries(
    [...table.matchAll(/\['([\w-]+)'\]='([\w.]+)'/g)].map((m) => [m[1], m[2]]),
  );
  for (const [p, suffix] of Object.entries(CCDI_PLATFORMS)) assert.is(upstream[p], suffix, p);
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 125), 'IFS=, read -ra platforms <<<"$1"');
  assert.equal(
    after(coreosArgs(job({ platforms: ['metal', 'metal4k', 'qemu', 'pxe', 'iso'] })), '--platforms'),
    ['metal,metal4k,qemu,live'],
  );
  assert.equal(ccdiPlatforms(job({ platforms: ['iso'] })), ['live']);
  assert.equal(ccdiPlatforms(job({ platforms: ['pxe'] })), ['live']);
  // The script fetches platform.<name>.ipp.yaml of the pinned coreos-assembler for each, but
  // metal4k's pipelines are in metal's.
  const names = await lines(CCDI, CCDI_COMMIT, SCRIPT, 67, 75);
  assert.match(names, `if [ "$platform_name" != 'metal4k' ]; then`);
  assert.match(names, 'echo "platform.${platform_name}.ipp.yaml"');
  const cosa = 'coreos/coreos-assembler';
  const manifests = 'src/osbuild-manifests';
  for (const p of ['metal', 'qemu', 'live'])
    await file(cosa, COSA_PINNED, `${manifests}/platform.${p}.ipp.yaml`);
  const metal = `${manifests}/platform.metal.ipp.yaml`;
  assert.is(await lines(cosa, COSA_PINNED, metal, 173), '  - name: metal4k');
  assert.match(
    await lines(cosa, COSA_PINNED, metal, 188),
    "mpp-format-string: 'tree:///{artifact_name_prefix}-metal4k.{arch}.raw'",
  );
  // The live pipeline builds on the metal and metal4k disks, and names the ISO and PXE files.
  const live = await lines(cosa, COSA_PINNED, `${manifests}/platform.live.ipp.yaml`, 15, 38);
  assert.match(live, "mpp-format-string: '/{artifact_name_prefix}-metal4k.{arch}.raw'");
  for (const f of [
    'live-iso.{arch}.iso',
    'live-kernel.{arch}',
    'live-initramfs.{arch}.img',
    'live-rootfs.{arch}.img',
  ])
    assert.match(live, `mpp-format-string: '{artifact_name_prefix}-${f}'`);
  // runvm-osbuild exports one directory per platform, where the script looks for them.
  assert.is(await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 142), '    ${platforms[@]/#/--export=}  \\');
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 231), 'imgpath="${outdir}/${platform}/${imgname}"');
});

test('coreos: the files we pick up are the ones the script own lines move out, into the working directory', async () => {
  // The script's platform table and its move loop, run by bash with `mv` recording its arguments.
  const table = await lines(CCDI, CCDI_COMMIT, SCRIPT, 29, 50);
  const loop = await lines(CCDI, CCDI_COMMIT, SCRIPT, 226, 251);
  assert.match(loop, /^ {4}for platform in "\$\{platforms\[@\]\}"; do\n[\s\S]*\n {4}done$/);
  const all = job({
    arch: 'aarch64',
    archive: '/b/rocknsm-coreos-41.1-ostree.aarch64.ociarchive',
    platforms: ['metal', 'metal4k', 'qemu', 'pxe', 'iso'],
  });
  const ran = execFileSync(
    'bash',
    [
      '-euc',
      [
        'ARCH=aarch64 ociarchive=/in/rocknsm-coreos-41.1-ostree.aarch64.ociarchive outdir=/o',
        `platforms=(${ccdiPlatforms(all).join(' ')})`,
        'mv() { printf "mv %s %s\\n" "$1" "$2"; }',
        table,
        loop,
      ].join('\n'),
    ],
    { encoding: 'utf8' },
  );
  const moves = ran
    .split('\n')
    .filter((l) => l.startsWith('mv '))
    .map((l) => l.split(' ').slice(1));
  // Each from the platform's export directory into ./ (the working directory: ours is /srv).
  for (const [from, to] of moves) {
    assert.is(to, './');
    assert.match(from!, /^\/o\/(metal|metal4k|qemu|live)\//);
  }
  assert.equal(after(coreosArgs(all), '-w'), ['/srv']);
  assert.ok(coreosArgs(all).includes(`${all.work}:/srv`));
  // `ARCH=$(arch)`: the builder's, which is the job's (the backend refuses a foreign arch).
  assert.is(await lines(CCDI, CCDI_COMMIT, SCRIPT, 25), 'ARCH=$(arch)');
  const names = moves.map(([from]) => from!.slice(from!.lastIndexOf('/') + 1));
  assert.equal(
    coreosOutputs(all)
      .map((o) => o.from)
      .sort(),
    [...names].sort(),
  );
  assert.ok(names.includes('rocknsm-coreos-41.1-ostree.aarch64-metal4k.aarch64.raw'));
  assert.ok(names.includes('rocknsm-coreos-41.1-ostree.aarch64-live-iso.aarch64.iso'));
});

test('coreos: --imgref is the update origin, ostree-image-signed only for images carrying our policy', async () => {
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 102, 105), /--imgref\)\n\s+shift.*\n\s+imgref=\$1/);
  assert.match(
    await lines(CCDI, CCDI_COMMIT, SCRIPT, 157),
    'imgref="${imgref:-ostree-image-signed:oci-archive:/$(basename "${ociarchive}")}"',
  );
  assert.match(await lines(CCDI, CCDI_COMMIT, SCRIPT, 213), '"container-imgref": "${imgref}",');
  const cosa = 'coreos/coreos-assembler';
  assert.is(
    await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 70),
    'container_imgref=$(getconfig "container-imgref")',
  );
  assert.match(
    await lines(cosa, COSA_PINNED, 'src/runvm-osbuild', 118),
    '-D container_imgref=\\""${container_imgref}"\\"',
  );
  assert.match(
    await lines(cosa, COSA_PINNED, 'src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml', 224, 225),
    /target_imgref:\n\s+mpp-format-string: '\{container_imgref\}'/,
  );
  const stage = 'stages/org.osbuild.ostree.deploy.container';
  assert.match(
    await lines('osbuild/osbuild', OSB, stage, 37),
    "extra_args.append(f'--target-imgref={target_imgref}')",
  );
  // The deploy pulls the archive unverified either way: the target is only recorded.
  assert.match(
    await lines('osbuild/osbuild', OSB, stage, 23),
    'imgref = f"ostree-unverified-image:{image_source}"',
  );
  const schema = JSON.parse(await file('osbuild/osbuild', OSB, `${stage}.meta.json`));
  const pattern = new RegExp(schema.schema_2.options.properties.target_imgref.pattern);
  const signed = ccdiImgref(job({ targetImgref: 'ghcr.io/rocknsm/rocknsm-coreos:stable', signed: true }))!;
  const unsigned = ccdiImgref(job({ targetImgref: 'ghcr.io/rocknsm/rocknsm-coreos:stable' }))!;
  assert.is(signed, 'ostree-image-signed:docker://ghcr.io/rocknsm/rocknsm-coreos:stable');
  assert.is(unsigned, 'ostree-unverified-registry:ghcr.io/rocknsm/rocknsm-coreos:stable');
  assert.ok(pattern.test(signed) && pattern.test(unsigned));
  // ostree-ext: the signed scheme means the containers policy, and refuses an insecure default;
  // the unverified-registry scheme is the registry transport without verification, as bootc
  // itself writes an unverified registry origin.
  const mod = 'crates/ostree-ext/src/container/mod.rs';
  assert.match(
    await lines('bootc-dev/bootc', BOOTC, mod, 250),
    '"ostree-image-signed" => (SignatureSource::ContainerPolicy, Cow::Borrowed(second)),',
  );
  assert.match(await lines('bootc-dev/bootc', BOOTC, mod, 588, 591), 'Transport::Registry');
  const shorthand = await lines('bootc-dev/bootc', BOOTC, mod, 255, 258);
  assert.match(shorthand, '"ostree-unverified-registry" => (');
  assert.match(shorthand, 'SignatureSource::ContainerPolicyAllowInsecure,');
  assert.match(shorthand, 'Cow::Owned(format!("registry:{second}")),');
  assert.match(
    await lines('bootc-dev/bootc', BOOTC, mod, 320),
    'write!(f, "ostree-unverified-registry:{}", self.imgref.name)',
  );
  const refuse = await lines('bootc-dev/bootc', BOOTC, 'crates/ostree-ext/src/container/store.rs', 942, 948);
  assert.match(
    refuse,
    /SignatureSource::ContainerPolicy\n\s+if skopeo::container_policy_is_default_insecure/,
  );
  assert.match(refuse, 'refusing usage');
  // What reaches the script: the stream's image, signed only with publish.trust; no target, no option.
  const t = { targetImgref: 'ghcr.io/rocknsm/rocknsm-coreos:stable' };
  assert.equal(after(coreosArgs(job({ ...t, signed: true })), '--imgref'), [signed]);
  assert.equal(after(coreosArgs(job({ ...t, signed: false })), '--imgref'), [unsigned]);
  assert.equal(after(coreosArgs(job(t)), '--imgref'), [unsigned]);
  assert.not.ok(coreosArgs(job({ signed: true })).includes('--imgref'));
});

test.run();
