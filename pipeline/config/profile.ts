// Sensor profiles (manifests/profiles/*.yaml): read, check against the JSON Schema and against
// the image definition (data paths, services, agents, streams), and resolve to a typed profile
// whose every value still knows where it came from, so later checks can point at the line.
import { ConfigError, type ConfigIssue } from '../errors.ts';
import {
  baseUrlProblem,
  DEFAULT_UPDATE_POLICY,
  describeSpan,
  timeZoneProblem,
  type UpdatePolicy,
  type UpdateStrategy,
  weekday,
  windowOverlaps,
} from '../plan/zincati.ts';
import type { LoadedProject } from './index.ts';
import profileSchema from './schema/profile.schema.json' with { type: 'json' };
import { compileSchema, type JsonPath, parseYaml, readYaml, type SourceFile, schemaIssues } from './yaml.ts';

/** The boot disk as Fedora CoreOS names it (a udev symlink made in the initramfs). */
export const BOOT_DISK = '/dev/disk/by-id/coreos-boot-disk';
export const DEFAULT_SPEC = '3.3.0';
export const SPECS = ['3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0-experimental'] as const;
export type SpecVersion = (typeof SPECS)[number];
/** xfsprogs 6.x refuses to make an XFS filesystem smaller than 300 MiB. */
export const XFS_MIN_MIB = 300;

/** What a profile may name: taken from manifests/image.yaml and manifests/streams. */
export interface ProfileCatalog {
  dataPaths: { id: string; path: string; purpose: string }[];
  services: { name: string; enabled: boolean }[];
  agents: { name: string; unit: string }[];
  streams: string[];
}

export function catalogFromProject(project: LoadedProject): ProfileCatalog {
  const img = project.image;
  return {
    dataPaths: Object.entries(img['data-paths']).map(([id, d]) => ({ id, path: d.path, purpose: d.purpose })),
    services: Object.entries(img.services).map(([name, s]) => ({ name, enabled: s.enabled ?? true })),
    agents: Object.entries(img.agents).map(([name, a]) => ({ name, unit: a.unit })),
    streams: [...project.streams.keys()].sort(),
  };
}

interface RawPartition {
  enabled?: boolean;
  size: string;
  start?: string;
  label?: string;
  'fs-label'?: string;
}

export interface RawProfile {
  description?: string;
  hostname: string;
  follows: string;
  'ignition-spec'?: SpecVersion;
  disk?: { device?: string; size?: string };
  'root-size'?: string;
  partitions: Record<string, RawPartition>;
  'kernel-arguments'?: string[];
  admin?: { user?: string; 'ssh-keys'?: string[] };
  services?: Record<string, boolean>;
  agents?: Record<string, boolean>;
  updates?: {
    strategy?: UpdateStrategy;
    'rollout-wariness'?: number;
    'time-zone'?: string;
    windows?: { days: string[]; 'start-time': string; 'length-minutes': number }[];
    'lock-server'?: string;
  };
}

/** A position in some file: the profile, or an --ssh-key file. */
export type Where = { file: string; line: number; col: number; path: string };

export interface ProfilePartition {
  /** `var` or a data-path id. */
  id: string;
  mountPath: string;
  purpose: string;
  /** MiB, or 'rest'. */
  size: number | 'rest';
  startMiB?: number;
  label: string;
  fsLabel: string;
  /** The partition's key in the profile. */
  where: Where;
  /** The explicit `label` / `fs-label` value, or the partition's key when defaulted. */
  labelWhere: Where;
  fsLabelWhere: Where;
}

export interface SensorProfile {
  name: string;
  file: string;
  description?: string;
  hostname: string;
  follows: string;
  spec: SpecVersion;
  device: string;
  bootDisk: boolean;
  diskMiB?: number;
  rootMiB?: number;
  /** Enabled partitions in layout order (var first, then data-paths order). */
  partitions: ProfilePartition[];
  kernelArguments: string[];
  admin: { user: string; sshKeys: string[] };
  services: { name: string; enabled: boolean }[];
  /** Units of agents the profile turns off. */
  maskedAgentUnits: string[];
  /** When Zincati may reboot into an update, defaults applied (plan/zincati.ts). */
  updates: UpdatePolicy;
  /** Locates a value of the profile, for checks made after resolution. */
  at(path: JsonPath, key?: boolean): Where;
}

const validateProfile = compileSchema(profileSchema);

/** Parses a size like `200GiB` to MiB. */
export function sizeToMiB(size: string): number {
  const m = /^([1-9][0-9]*)(MiB|GiB|TiB)$/.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  const n = Number(m[1]);
  return m[2] === 'MiB' ? n : m[2] === 'GiB' ? n * 1024 : n * 1024 * 1024;
}

export function formatMiB(mib: number): string {
  if (mib % (1024 * 1024) === 0) return `${mib / (1024 * 1024)}TiB`;
  if (mib % 1024 === 0) return `${mib / 1024}GiB`;
  return `${mib}MiB`;
}

// OpenSSH public key types and the name each key blob starts with.
const SSH_KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** Why an authorized_keys line is not a usable public key, or undefined when it is. */
export function sshKeyProblem(line: string): string | undefined {
  const parts = line.trim().split(/\s+/);
  const [type, b64] = parts;
  if (!type || !SSH_KEY_TYPES.has(type)) {
    if (/^(from|command|no-|restrict|environment|permitopen|principals)/.test(type ?? ''))
      return 'options before the key are not allowed here';
    if (/PRIVATE KEY/.test(line)) return 'this is a private key; give the public key (.pub)';
    return `unknown key type '${type ?? ''}'; expected one of ${[...SSH_KEY_TYPES].join(', ')}`;
  }
  if (!b64) return 'key data missing after the key type';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return 'key data is not base64';
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 4) return 'key data is too short';
  const nameLen = blob.readUInt32BE(0);
  const name = blob.subarray(4, 4 + nameLen).toString('latin1');
  if (4 + nameLen > blob.length || name !== type)
    return `key data does not hold a ${type} key${name && /^[ -~]+$/.test(name) ? ` (it says ${name})` : ''}`;
  if (type === 'ssh-ed25519' && blob.length !== 4 + nameLen + 4 + 32)
    return 'ssh-ed25519 key data has the wrong length';
  return undefined;
}

/** Reads and checks a profile file; throws ConfigError listing every problem. */
export function loadProfile(
  file: string,
  displayName: string,
  catalog: ProfileCatalog,
  extraKeys: { key: string; where: Where }[] = [],
): SensorProfile {
  const parsed = readYaml(file, displayName);
  return checkProfile(parsed, displayName, catalog, extraKeys);
}

/** The same as loadProfile, from text (tests, stdin). */
export function parseProfile(
  text: string,
  displayName: string,
  catalog: ProfileCatalog,
  extraKeys: { key: string; where: Where }[] = [],
): SensorProfile {
  return checkProfile(parseYaml(text, displayName), displayName, catalog, extraKeys);
}

/** Reads an authorized_keys-style file: one key per line, `#` comments and blank lines skipped. */
export function parseSshKeyFile(text: string, displayName: string): { key: string; where: Where }[] {
  return text.split('\n').flatMap((line, i) =>
    line.trim() === '' || line.trim().startsWith('#')
      ? []
      : [
          {
            key: line.trim(),
            where: {
              file: displayName,
              line: i + 1,
              col: line.length - line.trimStart().length + 1,
              path: '',
            },
          },
        ],
  );
}

function profileName(displayName: string): string {
  return (
    displayName
      .split('/')
      .pop()!
      .replace(/\.ya?ml$/, '') || displayName
  );
}

function checkProfile(
  parsed: { source?: SourceFile; issues: ConfigIssue[] },
  displayName: string,
  catalog: ProfileCatalog,
  extraKeys: { key: string; where: Where }[],
): SensorProfile {
  if (!parsed.source) throw new ConfigError(parsed.issues);
  const source = parsed.source;
  const schemaProblems = schemaIssues(source, validateProfile);
  if (schemaProblems.length) throw new ConfigError(schemaProblems);
  const raw = source.data as RawProfile;
  const at = (path: JsonPath, key = false): Where => ({
    file: source.file,
    ...source.locate(path, key),
    path: `/${path.join('/')}`,
  });
  const issues: ConfigIssue[] = [];
  const issue = (where: Where, rule: string, message: string, value?: unknown) =>
    issues.push({ ...where, rule, message, value });

  // Names must exist in the image definition.
  const dataPaths = new Map(catalog.dataPaths.map((d) => [d.id, d]));
  for (const id of Object.keys(raw.partitions)) {
    if (id !== 'var' && !dataPaths.has(id))
      issue(
        at(['partitions', id], true),
        'partition-known',
        `unknown partition '${id}'; known: var, ${[...dataPaths.keys()].join(', ')}`,
        id,
      );
  }
  for (const name of Object.keys(raw.services ?? {})) {
    if (!catalog.services.some((s) => s.name === name))
      issue(
        at(['services', name], true),
        'service-known',
        `unknown service '${name}'; known: ${catalog.services.map((s) => s.name).join(', ')}`,
        name,
      );
  }
  for (const name of Object.keys(raw.agents ?? {})) {
    if (!catalog.agents.some((a) => a.name === name))
      issue(
        at(['agents', name], true),
        'agent-known',
        `unknown agent '${name}'; known: ${catalog.agents.map((a) => a.name).join(', ')}`,
        name,
      );
  }
  const stream = raw.follows.slice(raw.follows.lastIndexOf(':') + 1);
  if (!catalog.streams.includes(stream))
    issue(
      at(['follows']),
      'follows-stream',
      `stream '${stream}' is not defined in manifests/streams; known: ${catalog.streams.join(', ')}`,
      raw.follows,
    );

  // SSH keys: from the profile and from --ssh-key files.
  const admin = { user: raw.admin?.user ?? 'core', sshKeys: [] as string[] };
  if (admin.user === 'root')
    issue(at(['admin', 'user']), 'admin-user', 'the admin user must not be root; use core or a named user');
  const keys = [
    ...(raw.admin?.['ssh-keys'] ?? []).map((key, i) => ({ key, where: at(['admin', 'ssh-keys', i]) })),
    ...extraKeys,
  ];
  const seen = new Map<string, Where>();
  for (const { key, where } of keys) {
    const problem = sshKeyProblem(key);
    if (problem) {
      issue(where, 'ssh-key', problem, key.length > 40 ? `${key.slice(0, 40)}...` : key);
      continue;
    }
    const body = key.trim().split(/\s+/).slice(0, 2).join(' ');
    const first = seen.get(body);
    if (first) {
      issue(where, 'ssh-key-duplicate', `same key as ${first.file}:${first.line}`);
      continue;
    }
    seen.set(body, where);
    admin.sshKeys.push(key.trim());
  }

  // Partitions: var first, then data-paths order; disabled ones are dropped here.
  const partitions: ProfilePartition[] = [];
  const order = ['var', ...catalog.dataPaths.map((d) => d.id)];
  for (const id of order) {
    const p = raw.partitions[id];
    if (!p || p.enabled === false) continue;
    const dp = dataPaths.get(id);
    partitions.push({
      id,
      mountPath: id === 'var' ? '/var' : dp!.path,
      purpose: id === 'var' ? 'variable OS data' : dp!.purpose,
      size: p.size === 'rest' ? 'rest' : sizeToMiB(p.size),
      startMiB: p.start === undefined ? undefined : sizeToMiB(p.start),
      label: p.label ?? (id === 'var' ? 'var' : `rock-${id}`),
      fsLabel: p['fs-label'] ?? id.slice(0, 12),
      where: at(['partitions', id], true),
      labelWhere: p.label === undefined ? at(['partitions', id], true) : at(['partitions', id, 'label']),
      fsLabelWhere:
        p['fs-label'] === undefined ? at(['partitions', id], true) : at(['partitions', id, 'fs-label']),
    });
  }

  const services = catalog.services.map((s) => ({
    name: s.name,
    enabled: raw.services?.[s.name] ?? s.enabled,
  }));
  const maskedAgentUnits = catalog.agents.filter((a) => raw.agents?.[a.name] === false).map((a) => a.unit);
  const updates = updatePolicy(raw.updates, at, issue);
  if (issues.length) throw new ConfigError(issues);

  const device = raw.disk?.device ?? BOOT_DISK;
  return {
    name: profileName(displayName),
    file: source.file,
    description: raw.description,
    hostname: raw.hostname,
    follows: raw.follows,
    spec: raw['ignition-spec'] ?? DEFAULT_SPEC,
    device,
    bootDisk: device === BOOT_DISK,
    diskMiB: raw.disk?.size === undefined ? undefined : sizeToMiB(raw.disk.size),
    rootMiB: raw['root-size'] === undefined ? undefined : sizeToMiB(raw['root-size']),
    partitions,
    kernelArguments: raw['kernel-arguments'] ?? [],
    admin,
    services,
    maskedAgentUnits,
    updates,
    at,
  };
}

/**
 * The profile's `updates`, defaults applied, checked beyond the schema: each key only with the
 * strategy that reads it, windows required on an explicit periodic and never overlapping, a
 * lock server with fleet-lock, URLs and time zone as Zincati takes them (plan/zincati.ts).
 */
function updatePolicy(
  raw: RawProfile['updates'],
  at: (path: JsonPath, key?: boolean) => Where,
  issue: (where: Where, rule: string, message: string, value?: unknown) => void,
): UpdatePolicy {
  const u = raw ?? {};
  const strategy = u.strategy ?? DEFAULT_UPDATE_POLICY.strategy;
  const chosen = u.strategy === undefined ? `${strategy} (the default)` : strategy;
  const onlyWith = (key: 'windows' | 'time-zone' | 'lock-server', wanted: UpdateStrategy) => {
    if (u[key] !== undefined && strategy !== wanted)
      issue(
        at(['updates', key], true),
        'updates-strategy-field',
        `${key} applies only to the ${wanted} strategy; strategy is ${chosen}`,
      );
  };
  onlyWith('windows', 'periodic');
  onlyWith('time-zone', 'periodic');
  onlyWith('lock-server', 'fleet-lock');
  if (u.strategy === 'periodic' && !u.windows?.length)
    issue(
      at(['updates', u.windows ? 'windows' : 'strategy'], u.windows !== undefined),
      'updates-windows-required',
      'the periodic strategy needs at least one window (days, start-time, length-minutes)',
    );
  if (strategy === 'fleet-lock' && u['lock-server'] === undefined)
    issue(
      at(['updates', 'strategy']),
      'updates-lock-server-required',
      'the fleet-lock strategy needs lock-server, the FleetLock server it asks before rebooting',
    );
  const lockProblem = u['lock-server'] === undefined ? undefined : baseUrlProblem(u['lock-server']);
  if (lockProblem)
    issue(at(['updates', 'lock-server']), 'updates-lock-server', lockProblem, u['lock-server']);
  const tzProblem = u['time-zone'] === undefined ? undefined : timeZoneProblem(u['time-zone']);
  if (tzProblem) issue(at(['updates', 'time-zone']), 'updates-time-zone', tzProblem, u['time-zone']);

  const windows = u.windows
    ? u.windows.map((w) => ({
        days: w.days.map(weekday),
        startTime: w['start-time'],
        lengthMinutes: w['length-minutes'],
      }))
    : DEFAULT_UPDATE_POLICY.windows;
  if (u.windows)
    for (const [a, b] of windowOverlaps(windows)) {
      const [wa, wb] = [windows[a.window]!, windows[b.window]!];
      issue(
        at(['updates', 'windows', b.window, 'days', b.day]),
        'updates-window-overlap',
        a.window === b.window && wa.days[a.day] === wb.days[b.day]
          ? `${u.windows[b.window]!.days[b.day]} is ${wa.days[a.day]} again in the same window`
          : `${describeSpan(wb, b.day)} overlaps ${a.window === b.window ? 'the same window' : `window ${a.window + 1}`} on ${describeSpan(wa, a.day)}; Zincati would merge them, but an overlap is taken here as a mistake`,
      );
    }
  return {
    strategy,
    ...(u['rollout-wariness'] === undefined ? {} : { rolloutWariness: u['rollout-wariness'] }),
    timeZone: u['time-zone'] ?? DEFAULT_UPDATE_POLICY.timeZone,
    windows: strategy === 'periodic' ? windows : [],
    ...(u['lock-server'] === undefined ? {} : { lockServer: u['lock-server'] }),
  };
}
