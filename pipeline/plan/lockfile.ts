// Lockfiles in rpm-ostree's format, as fedora-coreos-config keeps them: `manifest-lock.<arch>.json`
// (packages pinned by evra, written by a compose), `manifest-lock.overrides.yaml` (hand-written pins,
// each with a reason), `--autolock` for secondary arches. Versions are compared in
// plan/rpm-version.ts, the package diff between two composes is plan/lockfile-diff.ts.
// Pure: text in, values and text out.

import { parseYaml, type SourceFile } from '../config/yaml.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { parseEvrOrNull, stripArch } from './rpm-version.ts';

/** One locked package: exactly one of `evra` (arch-ful) or `evr` (any arch). */
export interface LockedPackage {
  evra?: string;
  evr?: string;
  digest?: string;
  metadata?: Record<string, unknown>;
}

export interface Lockfile {
  packages: Record<string, LockedPackage>;
  metadata?: {
    /** RFC 3339 timestamp, truncated to the day by rpm-ostree. */
    generated?: string;
    rpmmd_repos?: Record<string, { generated: string }>;
  };
}

/**
 * Metadata of an entry in manifest-lock.overrides.yaml. rpm-ostree reads it as a free-form map
 * (coreos/rpm-ostree rust/src/lockfile.rs:120-133 @d5ef5f0c); the rules on it are the ones
 * fedora-coreos-config's own tool applies when it writes the file (ci/overrides.py @2d0fce6d).
 */
export interface OverrideMetadata {
  /** Why the override exists: a URL. Required for `pin`; for `fast-track` see FCOS_SPECIFIC_SOURCES. */
  reason?: string;
  /** `pin` holds a package back; `fast-track` takes it ahead of the repos. */
  type: 'pin' | 'fast-track';
  /** Bodhi update URL: what a fast-track takes ahead of the repos. */
  bodhi?: string;
}

/**
 * Source packages whose fast-tracks need no reason URL: fedora-coreos-config ci/overrides.py:20-31
 * (TRIVIAL_FAST_TRACKS) @2d0fce6d, enforced at :96-99 (do_fast_track). The names are source RPMs; a lockfile names
 * binary RPMs, so `sourceIsFcosSpecific` maps them (the `rust-` prefix of the Rust crates'
 * sources is not on their binaries: rust-afterburn builds afterburn and afterburn-dracut).
 */
export const FCOS_SPECIFIC_SOURCES = [
  'console-login-helper-messages',
  'ignition',
  'ostree',
  'rpm-ostree',
  'rust-afterburn',
  'rust-bootupd',
  'rust-coreos-installer',
  'rust-ignition-config',
  'rust-zincati',
];

/** Whether binary package `name` comes from one of FCOS_SPECIFIC_SOURCES (by name: base or base-*). */
export function sourceIsFcosSpecific(name: string): boolean {
  return FCOS_SPECIFIC_SOURCES.some((src) => {
    const base = src.replace(/^rust-/, '');
    return name === base || name.startsWith(`${base}-`);
  });
}

/** ci/overrides.py:359-362 (check_url) @2d0fce6d: an http or https URL. */
const isUrl = (v: unknown): v is string => typeof v === 'string' && /^https?:\/\/\S+$/.test(v);

const PKG_KEYS = ['evra', 'evr', 'digest', 'metadata'];

/**
 * Parses a lockfile (JSON or YAML). Mirrors rpm-ostree's serde rules: unknown keys are errors,
 * `packages` is required, each package has exactly one of evr/evra, evra has an arch suffix.
 */
export function parseLockfile(text: string, file: string): Lockfile {
  const { source, issues } = parseYaml(text, file);
  if (!source) throw new ConfigError(issues);
  const out = checkLockfile(source, issues);
  if (issues.length) throw new ConfigError(issues);
  return out;
}

function checkLockfile(src: SourceFile, issues: ConfigIssue[]): Lockfile {
  const at = (path: (string | number)[], rule: string, message: string, value?: unknown, key = false) =>
    issues.push({
      file: src.file,
      ...src.locate(path, key),
      path: `/${path.join('/')}`,
      rule,
      message,
      value,
    });
  const d = src.data as Record<string, unknown>;
  if (!isObject(d)) {
    at([], 'type', 'a lockfile must be a mapping');
    return { packages: {} };
  }
  for (const k of Object.keys(d))
    if (k !== 'packages' && k !== 'metadata')
      at([k], 'unknown-key', `unknown key '${k}'; expected packages, metadata`, undefined, true);
  if (!isObject(d.packages)) {
    at(
      d.packages === undefined ? [] : ['packages'],
      d.packages === undefined ? 'required' : 'type',
      "key 'packages' must be a mapping of package names",
    );
    return { packages: {} };
  }
  const packages: Record<string, LockedPackage> = {};
  for (const [name, p] of Object.entries(d.packages)) {
    const path = ['packages', name];
    if (!isObject(p)) {
      at(path, 'type', 'must be a mapping with evra or evr', p);
      continue;
    }
    for (const k of Object.keys(p))
      if (!PKG_KEYS.includes(k))
        at(
          [...path, k],
          'unknown-key',
          `unknown key '${k}'; expected ${PKG_KEYS.join(', ')}`,
          undefined,
          true,
        );
    const has = ['evra', 'evr'].filter((k) => k in p);
    if (has.length !== 1) {
      at(path, 'evr', `needs exactly one of evra, evr (got ${has.length ? has.join(' and ') : 'neither'})`);
      continue;
    }
    const v = p[has[0]!];
    if (typeof v !== 'string') {
      at([...path, has[0]!], 'type', 'must be a string', v);
      continue;
    }
    if (has[0] === 'evra' && !(v.lastIndexOf('.') > v.lastIndexOf('-') && v.lastIndexOf('-') > 0)) {
      at([...path, 'evra'], 'evra', `malformed evra: ${v} (expected [epoch:]version-release.arch)`, v);
      continue;
    }
    if (!parseEvrOrNull(has[0] === 'evra' ? stripArch(v) : v)) {
      at([...path, has[0]!], has[0]!, `malformed ${has[0]}: ${v}`, v);
      continue;
    }
    if (p.digest !== undefined && typeof p.digest !== 'string')
      at([...path, 'digest'], 'type', 'must be a string', p.digest);
    if (p.metadata !== undefined && !isObject(p.metadata))
      at([...path, 'metadata'], 'type', 'must be a mapping', p.metadata);
    packages[name] = p as LockedPackage;
  }
  const out: Lockfile = { packages };
  if (d.metadata !== undefined) {
    if (!isObject(d.metadata)) at(['metadata'], 'type', 'must be a mapping', d.metadata);
    else {
      for (const k of Object.keys(d.metadata))
        if (k !== 'generated' && k !== 'rpmmd_repos')
          at(
            ['metadata', k],
            'unknown-key',
            `unknown key '${k}'; expected generated, rpmmd_repos`,
            undefined,
            true,
          );
      const g = d.metadata.generated;
      if (g !== undefined && (typeof g !== 'string' || Number.isNaN(Date.parse(g))))
        at(['metadata', 'generated'], 'type', 'must be an RFC 3339 timestamp', g);
      out.metadata = d.metadata as Lockfile['metadata'];
    }
  }
  return out;
}

/**
 * Parses manifest-lock.overrides.yaml (or its per-arch form) with fedora-coreos-config's rules
 * (ci/overrides.py @2d0fce6d):
 * - every entry has `metadata.type`, `pin` or `fast-track` (the two writers: :103-106, :123-126);
 * - a `pin` carries a reason URL (:69 `--reason` required=True, :119 check_url);
 * - a `fast-track` carries a reason URL unless its source package is FCOS-specific (:96-99); its
 *   Bodhi URL is always written (:103-106), so an FCOS-specific one needs at least that;
 * - `bodhi` and `reason`, when present, are http(s) URLs (:359-362);
 * - with `locked` (the packages of the config's base lockfiles), an override names a package one
 *   of them locks: the tool only overrides binary packages listed in the lockfiles (:233-267).
 */
export function parseOverrides(text: string, file: string, locked?: ReadonlySet<string>): Lockfile {
  const { source, issues } = parseYaml(text, file);
  if (!source) throw new ConfigError(issues);
  const lf = checkLockfile(source, issues);
  const at = (path: (string | number)[], rule: string, message: string, value?: unknown, key = false) =>
    issues.push({ file, ...source.locate(path, key), path: `/${path.join('/')}`, rule, message, value });
  for (const [name, p] of Object.entries(lf.packages)) {
    const path = ['packages', name];
    if (locked && !locked.has(name))
      at(
        path,
        'override-unlocked',
        `'${name}' is in no base lockfile (manifest-lock.<arch>.json); an override replaces a locked package`,
        undefined,
        true,
      );
    const m = p.metadata as Partial<Record<string, unknown>> | undefined;
    if (!m) {
      at(
        path,
        'override-type',
        'every override needs metadata.type (pin or fast-track) and a reason URL',
        undefined,
        true,
      );
      continue;
    }
    const where = (k: string) => [...path, 'metadata', ...(m[k] === undefined ? [] : [k])];
    if (m.type !== 'pin' && m.type !== 'fast-track') {
      at(where('type'), 'override-type', 'metadata.type must be "pin" or "fast-track"', m.type);
      continue;
    }
    if (m.reason !== undefined && !isUrl(m.reason))
      at(where('reason'), 'override-reason', 'metadata.reason must be an http(s) URL', m.reason);
    if (m.bodhi !== undefined && !isUrl(m.bodhi))
      at(where('bodhi'), 'override-bodhi', 'metadata.bodhi must be a Bodhi update URL', m.bodhi);
    if (m.reason !== undefined) continue;
    if (m.type === 'pin')
      at(where('reason'), 'override-reason', 'a pin needs metadata.reason (a URL saying why)');
    else if (!sourceIsFcosSpecific(name) || m.bodhi === undefined)
      at(
        where('reason'),
        'override-reason',
        sourceIsFcosSpecific(name)
          ? 'a fast-track needs metadata.bodhi (the update it takes) or metadata.reason'
          : `a fast-track of '${name}' needs metadata.reason (a URL); only FCOS-specific packages (${FCOS_SPECIFIC_SOURCES.join(', ')}) may omit it`,
      );
  }
  if (issues.length) throw new ConfigError(issues);
  return lf;
}

/** Later lockfiles override earlier ones per package, like rpm-ostree's repeated `--lockfile`. */
export function mergeLockfiles(...lockfiles: Lockfile[]): Lockfile {
  const packages: Record<string, LockedPackage> = {};
  for (const lf of lockfiles) Object.assign(packages, lf.packages);
  return { packages: sortRecord(packages), metadata: lockfiles[0]?.metadata };
}

/**
 * Serializes as fedora-coreos-config stores lockfiles: `packages` sorted by name, then `metadata`,
 * two-space JSON, trailing newline; keys of each package in evra/evr, digest, metadata order.
 */
export function serializeLockfile(lf: Lockfile): string {
  const packages: Record<string, LockedPackage> = {};
  for (const [name, p] of Object.entries(sortRecord(lf.packages))) {
    const o: LockedPackage = {};
    if (p.evra !== undefined) o.evra = p.evra;
    if (p.evr !== undefined) o.evr = p.evr;
    if (p.digest !== undefined) o.digest = p.digest;
    if (p.metadata !== undefined) o.metadata = sortRecord(p.metadata);
    packages[name] = o;
  }
  const out: Record<string, unknown> = { packages };
  if (lf.metadata) {
    const m: Record<string, unknown> = {};
    if (lf.metadata.generated !== undefined) m.generated = lf.metadata.generated;
    if (lf.metadata.rpmmd_repos !== undefined) m.rpmmd_repos = sortRecord(lf.metadata.rpmmd_repos);
    out.metadata = m;
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** rpm-ostree's lockfile timestamp: now, truncated to midnight UTC. */
export function coarseTimestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 10)}T00:00:00Z`;
}

/**
 * `--autolock`: a lockfile for a secondary arch from the primary's generated one, as
 * coreos-assembler does it: noarch entries are kept as they are, arch-ful ones become an arch-less
 * `evr` so the secondary gets the same version of its own build. When `secondaryNames` (the
 * packages the secondary is known to have, e.g. from its previous lockfile) is given, only
 * packages present in both are locked.
 */
export function autolock(primary: Lockfile, secondaryNames?: Iterable<string>): Lockfile {
  const only = secondaryNames ? new Set(secondaryNames) : undefined;
  const packages: Record<string, LockedPackage> = {};
  for (const [name, p] of Object.entries(primary.packages)) {
    if (only && !only.has(name)) continue;
    if (p.evra === undefined || p.evra.endsWith('.noarch')) packages[name] = p;
    else packages[name] = { evr: stripArch(p.evra) };
  }
  return { packages: sortRecord(packages), metadata: primary.metadata };
}

function sortRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(
    Object.keys(r)
      .sort()
      .map((k) => [k, r[k]!]),
  );
}
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
