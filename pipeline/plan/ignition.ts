// Pure: a resolved sensor profile -> Ignition config (spec 3.0.0 to 3.4.0-experimental).
//
// Layout and names: plan/partitions.ts (planLayout). Every existing partition and filesystem is
// kept on reprovision: wipeTable, wipePartitionEntry and wipeFilesystem are false, so Ignition
// reuses what matches and stops (rather than destroying data) when something does not. Each
// service `rocknsm-<svc>.service` gets RequiresMountsFor= its data paths.
//
// Trust. The profile's rocknsm-follow.service rebases a stock Fedora CoreOS onto our image with
// `bootc switch --enforce-container-sigpolicy`. Stock FCOS's policy.json accepts anything by
// default, which bootc refuses outright with that flag (bootc-dev/bootc
// crates/ostree-ext/src/container/store.rs:942-948 @ 534c76ea474a356aa288f6767635e579ea2614d5:
// "containers-policy.json specifies a default of `insecureAcceptAnything`; refusing usage"). So
// the config writes the followed stream's trust files (plan/trust.ts: policy.json, the
// registries.d entry, the public key) as storage.files: Ignition applies its config in the
// initramfs "before `switch_root` is called to pivot to the machine's root filesystem"
// (coreos/ignition docs/getting-started.md:11 @ a5d574a8d2ad42a6f5702c6982d7c5f67ec05107), so they
// are on disk before the real root's systemd starts any unit. The unit also asserts them
// (AssertPathExists=: "any assertion setting that is not met results in failure of the start
// job", systemd.unit(5), systemd 252) and checks that policy.json is ours, so a config without
// them can never rebase unverified. The bytes are the image's own (same mode, owner root): each
// new deployment's /etc keeps only what differs between the running deployment's usr/etc and
// etc (ostreedev/ostree src/libostree/ostree-sysroot-deploy.c:530-546 @
// 462046551181b14c91668eb5378a70ba18607ddd, ostree_diff_dirs with xattrs ignored), so once our
// image runs these files are unmodified copies of its own, and a later image's trust files (a
// rotated keyring) replace them.
//
// Updates. The profile's update strategy goes to Zincati's /etc/zincati/config.d/ (plan/zincati.ts),
// in the full config and in the base config alike: a sensor booted with only a user config of
// SSH keys still reboots into updates only as its image's base profile says.

import type { SensorProfile, SpecVersion } from '../config/profile.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import {
  FIELD_SINCE,
  issueAt,
  type Layout,
  LINUX_DATA_GUID,
  mountUnitName,
  type PlacedPartition,
  planLayout,
  SERVICE_DATA_PATHS,
  specAtLeast,
  systemdEscapePath,
} from './partitions.ts';
import { POLICY_PATH } from './trust.ts';
import { renderUpdatesDropin, UPDATES_DROPIN } from './zincati.ts';

// The layout half lives in partitions.ts; its public names are re-exported for the renderers' users.
export {
  FCOS_ROOT_START_MIB,
  type Layout,
  LINUX_DATA_GUID,
  mountUnitName,
  type PlacedPartition,
  planLayout,
  ROOT_MIN_MIB,
  SERVICE_DATA_PATHS,
  specAtLeast,
  systemdEscapePath,
} from './partitions.ts';

// Ignition types: only what we emit.
export interface IgnitionPartition {
  number: number;
  label: string;
  sizeMiB: number;
  startMiB?: number;
  typeGuid?: string;
  resize?: boolean;
  wipePartitionEntry?: boolean;
  shouldExist?: boolean;
}
export interface IgnitionFilesystem {
  device: string;
  format: string;
  label: string;
  path: string;
  wipeFilesystem: boolean;
}
export interface IgnitionUnit {
  name: string;
  enabled?: boolean;
  mask?: boolean;
  contents?: string;
  dropins?: { name: string; contents: string }[];
}
export interface IgnitionFile {
  path: string;
  mode: number;
  overwrite: boolean;
  contents: { source: string };
}
export interface IgnitionConfig {
  ignition: { version: SpecVersion };
  storage?: {
    disks?: { device: string; wipeTable: boolean; partitions: IgnitionPartition[] }[];
    filesystems?: IgnitionFilesystem[];
    files?: IgnitionFile[];
  };
  systemd?: { units: IgnitionUnit[] };
  passwd?: { users: { name: string; groups?: string[]; sshAuthorizedKeys?: string[] }[] };
  kernelArguments?: { shouldExist: string[] };
}

/** One file of the followed stream's trust (plan/trust.ts), with its bytes. */
export interface TrustFileContents {
  path: string;
  mode: number;
  /** Text (policy, registries.d, armored keys) or bytes (a binary key export). */
  contents: string | Buffer;
}

export interface RenderOptions {
  /**
   * The followed stream's trust files (publish.trust), written before the follow unit runs and
   * asserted by it. Without them (a stream published unsigned) the unit rebases as the node's
   * own policy says.
   */
  trust?: TrustFileContents[];
  /** Spec version to render; default the profile's `ignition-spec` (3.3.0 when unset). */
  spec?: SpecVersion;
  /**
   * Render for publishing: the admin user without SSH keys (none required), to be merged from a
   * site's own small config (`ignition.config.merge`) that adds the keys for that user.
   */
  forMerge?: boolean;
}

const byPartlabel = (label: string) => `/dev/disk/by-partlabel/${label}`;

function storageOf(profile: SensorProfile, layout: Layout, spec: SpecVersion) {
  const partitions: IgnitionPartition[] = [];
  const canResize = specAtLeast(spec, FIELD_SINCE['partition.resize']!);
  if (layout.bootDisk && layout.partitions.length > 0 && canResize)
    partitions.push({ number: 4, label: 'root', sizeMiB: layout.rootMiB!, resize: true });
  for (const [i, p] of layout.partitions.entries()) {
    const pin = p.startMiB !== undefined || (layout.bootDisk && i === 0 && !canResize);
    partitions.push({
      number: p.number,
      label: p.label,
      sizeMiB: p.size === 'rest' ? 0 : p.size,
      ...(pin ? { startMiB: p.startAt } : {}),
      typeGuid: LINUX_DATA_GUID,
      wipePartitionEntry: false,
      shouldExist: true,
    });
  }
  const filesystems: IgnitionFilesystem[] = layout.partitions.map((p) => ({
    device: byPartlabel(p.label),
    format: 'xfs',
    label: p.fsLabel,
    path: p.mountPath,
    wipeFilesystem: false,
  }));
  const mounts: IgnitionUnit[] = layout.partitions.map((p) => ({
    name: mountUnitName(p.mountPath),
    enabled: true,
    contents: mountUnit(profile, p),
  }));
  return {
    disks: partitions.length ? [{ device: layout.device, wipeTable: false, partitions }] : [],
    filesystems,
    mounts,
  };
}

function mountUnit(profile: SensorProfile, p: PlacedPartition): string {
  const fsck = `systemd-fsck@${systemdEscapePath(byPartlabel(p.label))}.service`;
  return [
    `# Sensor profile ${profile.name}: ${p.purpose} on its own XFS partition (rendered by rock-image).`,
    '[Unit]',
    `Description=RockNSM ${p.purpose} (${p.mountPath})`,
    `Requires=${fsck}`,
    `After=${fsck}`,
    'Before=local-fs.target',
    '',
    '[Mount]',
    `What=${byPartlabel(p.label)}`,
    `Where=${p.mountPath}`,
    'Type=xfs',
    '',
    '[Install]',
    'RequiredBy=local-fs.target',
    '',
  ].join('\n');
}

/** The policy.json line that names our keyring (plan/trust.ts renders it with two-space JSON). */
export const policyKeyLine = (keyPath: string) => `"keyPath": "${keyPath}"`;

function followUnit(ref: string, trust: TrustFileContents[]): string {
  const policy = trust.find((f) => f.path === POLICY_PATH);
  const key = trust.find((f) => f.path.startsWith('/etc/pki/containers/'));
  return [
    '# Points OS updates at the image this sensor follows, once (rendered by rock-image).',
    '[Unit]',
    `Description=Follow ${ref} for RockNSM OS updates`,
    'Wants=network-online.target',
    'After=network-online.target',
    'ConditionPathExists=!/var/lib/rocknsm/follows.done',
    ...(trust.length
      ? [
          '# Our signature policy, its registries.d entry and key(s), written by Ignition in the',
          '# initramfs: without them the rebase must not run.',
          ...trust.map((f) => `AssertPathExists=${f.path}`),
        ]
      : []),
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    ...(policy && key ? [`ExecStartPre=/usr/bin/grep -qF '${policyKeyLine(key.path)}' ${policy.path}`] : []),
    `ExecStart=/usr/bin/bootc switch --enforce-container-sigpolicy ${ref}`,
    'ExecStartPost=/usr/bin/mkdir -p /var/lib/rocknsm',
    'ExecStartPost=/usr/bin/touch /var/lib/rocknsm/follows.done',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

const dataUrl = (text: string | Buffer) =>
  typeof text === 'string' ? `data:,${encodeURIComponent(text)}` : `data:;base64,${text.toString('base64')}`;

/** Zincati's update strategy drop-in (plan/zincati.ts). */
function updatesFile(profile: SensorProfile): IgnitionFile {
  return {
    path: UPDATES_DROPIN,
    mode: 0o644,
    overwrite: true,
    contents: { source: dataUrl(renderUpdatesDropin(profile.updates, profile.name)) },
  };
}

function specOf(profile: SensorProfile, opts: RenderOptions): SpecVersion {
  return opts.spec ?? profile.spec;
}

/** The full first-boot config of a sensor. Throws ConfigError for layout or spec problems. */
export function renderIgnition(profile: SensorProfile, opts: RenderOptions = {}): IgnitionConfig {
  const spec = specOf(profile, opts);
  const issues: ConfigIssue[] = [];
  let layout: Layout | undefined;
  try {
    layout = planLayout(profile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
  }
  if (profile.kernelArguments.length && !specAtLeast(spec, FIELD_SINCE.kernelArguments!))
    issues.push(
      issueAt(
        profile.at(['kernel-arguments'], true),
        'spec-field',
        `kernel-arguments need Ignition spec ${FIELD_SINCE.kernelArguments} or later; rendering ${spec}`,
      ),
    );
  if (profile.admin.sshKeys.length === 0 && !opts.forMerge)
    issues.push(
      issueAt(
        profile.at(['admin'], true),
        'ssh-key-required',
        `no SSH key for '${profile.admin.user}': add admin.ssh-keys or pass --ssh-key FILE`,
      ),
    );
  if (issues.length || !layout) throw new ConfigError(issues);

  const storage = storageOf(profile, layout, spec);
  const units: IgnitionUnit[] = [...storage.mounts];
  const mounted = new Set(layout.partitions.map((p) => p.mountPath));
  for (const svc of profile.services) {
    const unit = `rocknsm-${svc.name}.service`;
    if (!svc.enabled) {
      units.push({ name: unit, mask: true });
      continue;
    }
    const paths = (SERVICE_DATA_PATHS[svc.name] ?? []).filter((p) => mounted.has(p));
    if (paths.length)
      units.push({
        name: unit,
        dropins: [
          {
            name: '10-rocknsm-data-mounts.conf',
            contents: `# Start only once the sensor data partitions are mounted (rendered by rock-image).\n[Unit]\nRequiresMountsFor=${paths.join(' ')}\n`,
          },
        ],
      });
  }
  for (const unit of profile.maskedAgentUnits) units.push({ name: unit, mask: true });
  const trust = opts.trust ?? [];
  units.push({ name: 'rocknsm-follow.service', enabled: true, contents: followUnit(profile.follows, trust) });

  const keys = profile.admin.sshKeys.length ? { sshAuthorizedKeys: profile.admin.sshKeys } : {};
  const user =
    profile.admin.user === 'core'
      ? { name: 'core', ...keys }
      : { name: profile.admin.user, groups: ['wheel', 'sudo'], ...keys };
  const config: IgnitionConfig = {
    ignition: { version: spec },
    storage: {
      ...(storage.disks.length ? { disks: storage.disks, filesystems: storage.filesystems } : {}),
      files: [
        {
          path: '/etc/hostname',
          mode: 0o644,
          overwrite: true,
          contents: { source: dataUrl(`${profile.hostname}\n`) },
        },
        {
          path: '/etc/rocknsm/follows',
          mode: 0o644,
          overwrite: true,
          contents: { source: dataUrl(`${profile.follows}\n`) },
        },
        updatesFile(profile),
        ...trust.map((f) => ({
          path: f.path,
          mode: f.mode,
          overwrite: true,
          contents: { source: dataUrl(f.contents) },
        })),
      ],
    },
    systemd: { units },
    passwd: { users: [user] },
  };
  if (profile.kernelArguments.length) config.kernelArguments = { shouldExist: profile.kernelArguments };
  return config;
}

/**
 * The storage part (partitions, filesystems, mount units) and the update strategy: an Ignition
 * base config to bake into the image at /usr/lib/ignition/base.d/, so a sensor gets its data
 * partitions and its update windows even when its user config says nothing of them. A user
 * config's file at the same path wins: Ignition merges files by path, the child's fields taking
 * precedence (coreos/ignition docs/operator-notes.md:113-123 @v2.14.0).
 */
export function renderBaseConfig(profile: SensorProfile, opts: RenderOptions = {}): IgnitionConfig {
  const spec = specOf(profile, opts);
  const layout = planLayout(profile);
  const storage = storageOf(profile, layout, spec);
  const files = [updatesFile(profile)];
  if (!storage.disks.length) return { ignition: { version: spec }, storage: { files } };
  return {
    ignition: { version: spec },
    storage: { disks: storage.disks, filesystems: storage.filesystems, files },
    systemd: { units: storage.mounts },
  };
}

/** Deterministic JSON: keys sorted at every level, two-space indent, trailing newline. */
export function serializeIgnition(config: IgnitionConfig): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return `${JSON.stringify(sort(config), null, 2)}\n`;
}
