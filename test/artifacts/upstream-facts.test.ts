// The bootc and coreos backends cannot run here, so their command lines rest on upstream facts,
// each cited beside the code as repo path:line @commit. This test reads those very lines of the
// upstream files at those commits and checks that they say what our arguments assume.
// Files come from git mirrors when ROCK_UPSTREAM_GIT names a directory of them
// (<owner>+<name>/repo, bare), else from raw.githubusercontent.com (cached under .cache/test).
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
import { CCDI_COMMIT, CCDI_FCOS_DEFAULT_KARGS, coreosArgs } from '../../pipeline/artifacts/coreos.ts';
import { streamKargs } from '../../pipeline/artifacts/index.ts';
import { lines } from '../world/upstream.ts';

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
  // biome-ignore lint/suspicious/noTemplateCurlyInString: GRUB's own variable syntax
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
  const script = 'custom-coreos-disk-images.sh';
  const ccdi = 'coreos/custom-coreos-disk-images';
  const getopt = await lines(ccdi, CCDI_COMMIT, script, 86);
  assert.match(getopt, /--longoptions '[^']*\bextra-kargs:[,']/);
  const defaults = await lines(ccdi, CCDI_COMMIT, script, 175, 181);
  assert.match(defaults, `if [ -z "\${extra_kargs:-}" ]; then`);
  assert.match(defaults, `extra_kargs="${CCDI_FCOS_DEFAULT_KARGS.join(' ')}" # FCOS`);
  // Only the one string reaches the deploy, as one kernel_opts element after rw, $ignition_firstboot.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the script's shell variable
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

test.run();
