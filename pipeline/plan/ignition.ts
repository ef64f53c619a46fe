// Pure: a resolved sensor profile -> Ignition config (spec 3.0.0 to 3.4.0-experimental).
//
// Layout. On the boot disk (/dev/disk/by-id/coreos-boot-disk) the sensor partitions follow root
// (partition 4): spec >= 3.2.0 sets root's size with `resize: true` (the Fedora CoreOS way to
// add partitions after root); before 3.2.0 `resize` does not exist, so the first partition is
// pinned at startMiB = end of the wanted root, and coreos-growpart grows root up to it. On a
// separate data disk the partitions start at 1 MiB and root is left alone. Partitions are
// numbered in layout order (5, 6, ... on the boot disk; 1, 2, ... on a data disk), the one
// sized `rest` last. Every existing partition and filesystem is kept on reprovision:
// wipeTable, wipePartitionEntry and wipeFilesystem are false, so Ignition reuses what matches
// and stops (rather than destroying data) when something does not.
//
// Names. GPT label `var` for /var (as Fedora CoreOS documents) and `rock-<id>` for each data
// path of manifests/image.yaml; XFS label `var` and the data-path id (at most 12 characters,
// the XFS limit). Each filesystem is mounted by a `.mount` unit named by systemd's path
// escaping, and each service `rocknsm-<svc>.service` gets RequiresMountsFor= its data paths.
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

import {
  formatMiB,
  type ProfilePartition,
  type SensorProfile,
  type SpecVersion,
  type Where,
  XFS_MIN_MIB,
} from '../config/profile.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { POLICY_PATH } from './trust.ts';
import { renderUpdatesDropin, UPDATES_DROPIN } from './zincati.ts';

export const LINUX_DATA_GUID = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
/** Root (partition 4) starts here in every Fedora CoreOS disk image: 1 MiB gap, BIOS-BOOT 1 MiB,
 * EFI-SYSTEM 127 MiB, boot 384 MiB (formats.md section 3). */
export const FCOS_ROOT_START_MIB = 513;
export const ROOT_MIN_MIB = 8 * 1024;
/** Room for the backup GPT at the end of a disk. */
const GPT_TAIL_MIB = 1;
const FCOS_LABELS = ['BIOS-BOOT', 'reserved', 'EFI-SYSTEM', 'boot', 'root'];

/** Which data paths each service writes; its unit starts only after they are mounted. */
export const SERVICE_DATA_PATHS: Record<string, string[]> = {
  zeek: ['/var/log/bro', '/var/spool/bro'],
  suricata: ['/var/log/suricata'],
  stenographer: ['/var/lib/stenographer'],
  fsf: ['/var/log/fsf'],
  kafka: ['/var/lib/kafka'],
  elasticsearch: ['/var/lib/elasticsearch'],
  docket: ['/var/spool/docket'],
};

// Fields that appeared in a later spec than 3.0.0, and the first spec that has them.
const FIELD_SINCE: Record<string, SpecVersion> = {
  'partition.resize': '3.2.0',
  'filesystem.mountOptions': '3.1.0',
  kernelArguments: '3.3.0',
};

const SPEC_ORDER: SpecVersion[] = ['3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0-experimental'];
export function specAtLeast(spec: SpecVersion, min: SpecVersion): boolean {
  return SPEC_ORDER.indexOf(spec) >= SPEC_ORDER.indexOf(min);
}

/**
 * systemd-escape --path: simplify the path (drop empty and `.` components), turn `/` into `-`,
 * keep ASCII letters, digits, `:`, `_` and `.` (except a leading `.`), and write every other
 * byte of the UTF-8 encoding as `\xNN`. A path with `..` cannot be escaped.
 */
export function systemdEscapePath(path: string): string {
  const parts = path.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new Error(`'${path}' is not a normalized file system path`);
  if (parts.length === 0) return '-';
  const bytes = Buffer.from(parts.join('/'), 'utf8');
  let out = '';
  bytes.forEach((b, i) => {
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (c === '.' && i === 0) out += '\\x2e';
    else if (/^[A-Za-z0-9:_.]$/.test(c)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  });
  return out;
}

export function mountUnitName(path: string): string {
  return `${systemdEscapePath(path)}.mount`;
}

/** One partition placed on the disk. */
export interface PlacedPartition extends ProfilePartition {
  number: number;
  /** Where the layout puts it (MiB from the disk start). */
  startAt: number;
  /** Size in MiB; for `rest` known only when the disk size is given. */
  sizeAt?: number;
}

export interface Layout {
  device: string;
  bootDisk: boolean;
  rootMiB?: number;
  partitions: PlacedPartition[];
}

const issueAt = (where: Where, rule: string, message: string, value?: unknown): ConfigIssue => ({
  ...where,
  rule,
  message,
  value,
});

/** Places the partitions and checks the layout; throws ConfigError with every problem. */
export function planLayout(profile: SensorProfile): Layout {
  const issues: ConfigIssue[] = [];
  const parts = profile.partitions;
  const at = profile.at;

  if (profile.bootDisk && parts.length > 0) {
    if (profile.rootMiB === undefined)
      issues.push(
        issueAt(
          at(['partitions'], true),
          'root-size-required',
          `partitions follow root on the boot disk, so root-size must be set (at least ${formatMiB(ROOT_MIN_MIB)})`,
        ),
      );
    else if (profile.rootMiB < ROOT_MIN_MIB)
      issues.push(
        issueAt(
          at(['root-size']),
          'root-size-min',
          `root must be at least ${formatMiB(ROOT_MIN_MIB)} when partitions follow it (Fedora CoreOS refuses to boot otherwise)`,
          formatMiB(profile.rootMiB),
        ),
      );
  }
  if (!profile.bootDisk && profile.rootMiB !== undefined)
    issues.push(
      issueAt(
        at(['root-size']),
        'root-size-unused',
        `root-size only applies when partitions follow root on the boot disk; ${profile.device} is a separate disk`,
      ),
    );

  const rests = parts.filter((p) => p.size === 'rest');
  for (const extra of rests.slice(1))
    issues.push(
      issueAt(
        at(['partitions', extra.id, 'size']),
        'rest-multiple',
        `only one partition may take the rest of the disk; '${rests[0]!.id}' already does`,
        'rest',
      ),
    );
  for (const p of parts)
    if (typeof p.size === 'number' && p.size < XFS_MIN_MIB)
      issues.push(
        issueAt(
          at(['partitions', p.id, 'size']),
          'size-too-small',
          `XFS needs at least ${XFS_MIN_MIB}MiB`,
          formatMiB(p.size),
        ),
      );

  // Labels: unique, and not one of the Fedora CoreOS partitions' when on the boot disk.
  const checkLabels = (kind: 'label' | 'fs-label', get: (p: ProfilePartition) => string) => {
    const seen = new Map<string, ProfilePartition>();
    for (const p of parts) {
      const label = get(p);
      const where = kind === 'label' ? p.labelWhere : p.fsLabelWhere;
      const clash = [...seen.entries()].find(([l]) => l.toLowerCase() === label.toLowerCase());
      if (clash)
        issues.push(
          issueAt(
            where,
            kind === 'label' ? 'label-duplicate' : 'fs-label-duplicate',
            `${kind} '${label}' is also used by partition '${clash[1].id}'`,
            label,
          ),
        );
      else if (profile.bootDisk && FCOS_LABELS.some((l) => l.toLowerCase() === label.toLowerCase()))
        issues.push(
          issueAt(
            where,
            'label-reserved',
            `${kind} '${label}' belongs to a Fedora CoreOS partition on the boot disk`,
            label,
          ),
        );
      seen.set(label, p);
    }
  };
  checkLabels('label', (p) => p.label);
  checkLabels('fs-label', (p) => p.fsLabel);

  // Place: fixed sizes in order, then the rest partition.
  const ordered = [...parts.filter((p) => p.size !== 'rest'), ...rests.slice(0, 1)];
  const firstStart = profile.bootDisk ? FCOS_ROOT_START_MIB + (profile.rootMiB ?? 0) : 1;
  const usableEnd = profile.diskMiB === undefined ? undefined : profile.diskMiB - GPT_TAIL_MIB;
  if (profile.bootDisk && usableEnd !== undefined && profile.rootMiB !== undefined && firstStart > usableEnd)
    issues.push(
      issueAt(
        at(['root-size']),
        'disk-size-exceeded',
        `root ends at ${formatMiB(firstStart)}, beyond the ${formatMiB(profile.diskMiB!)} disk`,
        formatMiB(profile.rootMiB),
      ),
    );
  let cursor = firstStart;
  let previous = profile.bootDisk ? `root (ends at ${formatMiB(firstStart)})` : 'the GPT header (first 1MiB)';
  const placed: PlacedPartition[] = [];
  const firstNumber = profile.bootDisk ? 5 : 1;
  for (const [i, p] of ordered.entries()) {
    const start = p.startMiB ?? cursor;
    if (start < cursor)
      issues.push(
        issueAt(
          at(['partitions', p.id, 'start']),
          'partition-overlap',
          `starts at ${formatMiB(start)}, inside ${previous}`,
          formatMiB(start),
        ),
      );
    let size: number | undefined = typeof p.size === 'number' ? p.size : undefined;
    if (usableEnd !== undefined) {
      if (size === undefined) {
        size = usableEnd - start;
        if (size < XFS_MIN_MIB)
          issues.push(
            issueAt(
              at(['partitions', p.id, 'size']),
              'rest-too-small',
              `the rest of the ${formatMiB(profile.diskMiB!)} disk after ${formatMiB(start)} is ${Math.max(size, 0)}MiB; XFS needs at least ${XFS_MIN_MIB}MiB`,
              'rest',
            ),
          );
      } else if (start + size > usableEnd)
        issues.push(
          issueAt(
            at(['partitions', p.id, 'size']),
            'disk-size-exceeded',
            `partition '${p.id}' would end at ${formatMiB(start + size)}, beyond the usable ${usableEnd}MiB of the ${formatMiB(profile.diskMiB!)} disk`,
            formatMiB(size),
          ),
        );
    }
    placed.push({ ...p, number: firstNumber + i, startAt: start, sizeAt: size });
    if (size !== undefined) cursor = Math.max(cursor, start + size);
    previous = `partition '${p.id}' (${formatMiB(start)}..${size === undefined ? 'end' : formatMiB(start + size)})`;
  }
  if (issues.length) throw new ConfigError(issues);
  return { device: profile.device, bootDisk: profile.bootDisk, rootMiB: profile.rootMiB, partitions: placed };
}

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
