// What changed between two composes' lockfiles (plan/lockfile.ts), by package: added, removed,
// upgraded, downgraded (by RPM version order, plan/rpm-version.ts) or moved to another arch; and
// that diff as release-note text (`rock-image compose --diff`). Pure.
import type { LockedPackage, Lockfile } from './lockfile.ts';
import { compareEvr, stripArch } from './rpm-version.ts';

function evrOf(p: LockedPackage): string {
  return p.evr ?? stripArch(p.evra!);
}
function archOf(p: LockedPackage): string | undefined {
  return p.evra === undefined ? undefined : p.evra.slice(p.evra.lastIndexOf('.') + 1);
}

export interface PackageChange {
  name: string;
  from?: string;
  to?: string;
  /** Source package, when the lockfile records it (metadata.sourcerpm). */
  source?: string;
}

export interface PackageDiff {
  added: PackageChange[];
  removed: PackageChange[];
  upgraded: PackageChange[];
  downgraded: PackageChange[];
  /** Same EVR, different arch (e.g. a package that became noarch). */
  rearched: PackageChange[];
  unchanged: number;
}

/** What changed between two composes' lockfiles, for release notes. */
export function diffLockfiles(before: Lockfile, after: Lockfile): PackageDiff {
  const diff: PackageDiff = {
    added: [],
    removed: [],
    upgraded: [],
    downgraded: [],
    rearched: [],
    unchanged: 0,
  };
  const names = [...new Set([...Object.keys(before.packages), ...Object.keys(after.packages)])].sort();
  const src = (p?: LockedPackage) =>
    typeof p?.metadata?.sourcerpm === 'string' ? p.metadata.sourcerpm : undefined;
  for (const name of names) {
    const a = before.packages[name];
    const b = after.packages[name];
    if (!a) diff.added.push({ name, to: evrOf(b!), source: src(b) });
    else if (!b) diff.removed.push({ name, from: evrOf(a), source: src(a) });
    else {
      const c = compareEvr(evrOf(a), evrOf(b));
      const change = { name, from: evrOf(a), to: evrOf(b), source: src(b) ?? src(a) };
      if (c < 0) diff.upgraded.push(change);
      else if (c > 0) diff.downgraded.push(change);
      else if (archOf(a) !== archOf(b))
        diff.rearched.push({ ...change, from: a.evra ?? a.evr, to: b.evra ?? b.evr });
      else diff.unchanged++;
    }
  }
  return diff;
}

/** The diff as release-note text: a summary line, then one section per kind of change. */
export function formatDiff(diff: PackageDiff, title = 'Package changes'): string {
  const lines = [
    `${title}: ${diff.upgraded.length} upgraded, ${diff.downgraded.length} downgraded, ${diff.added.length} added, ${diff.removed.length} removed, ${diff.unchanged} unchanged`,
  ];
  const section = (name: string, list: PackageChange[], fmt: (c: PackageChange) => string) => {
    if (!list.length) return;
    lines.push('', `${name}:`);
    for (const c of list) lines.push(`  ${fmt(c)}`);
  };
  section('Upgraded', diff.upgraded, (c) => `${c.name} ${c.from} -> ${c.to}`);
  section('Downgraded', diff.downgraded, (c) => `${c.name} ${c.from} -> ${c.to}`);
  section('Added', diff.added, (c) => `${c.name} ${c.to}`);
  section('Removed', diff.removed, (c) => `${c.name} ${c.from}`);
  section('Architecture changed', diff.rearched, (c) => `${c.name} ${c.from} -> ${c.to}`);
  return `${lines.join('\n')}\n`;
}
