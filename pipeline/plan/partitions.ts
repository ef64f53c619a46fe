// Pure: the sensor partition layout of a profile (planLayout), and the names Ignition and
// systemd give its pieces.
//
// On the boot disk (/dev/disk/by-id/coreos-boot-disk) the sensor partitions follow root
// (partition 4): spec >= 3.2.0 sets root's size with `resize: true` (the Fedora CoreOS way to
// add partitions after root); before 3.2.0 `resize` does not exist, so the first partition is
// pinned at startMiB = end of the wanted root, and coreos-growpart grows root up to it. On a
// separate data disk the partitions start at 1 MiB and root is left alone. Partitions are
// numbered in layout order (5, 6, ... on the boot disk; 1, 2, ... on a data disk), the one
// sized `rest` last. GPT label `var` for /var and `rock-<id>` for each data path; each
// filesystem is mounted by a `.mount` unit named by systemd's path escaping.

import {
  formatMiB,
  type ProfilePartition,
  type SensorProfile,
  type SpecVersion,
  type Where,
  XFS_MIN_MIB,
} from '../config/profile.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';

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
export const FIELD_SINCE: Record<string, SpecVersion> = {
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

export const issueAt = (where: Where, rule: string, message: string, value?: unknown): ConfigIssue => ({
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
