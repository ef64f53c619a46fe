// Fedora CoreOS style versions, X.YYYYMMDD.S.N (formats.md §2): releasever, snapshot date,
// stream number, respin. They must order as versions because Zincati compares them.

export interface Version {
  releasever: number;
  date: string; // YYYYMMDD
  stream: number;
  respin: number;
}

const pattern = /^(\d+)\.(\d{8})\.(\d+)\.(\d+)$/;

export function parseVersion(v: string): Version | undefined {
  const m = pattern.exec(v);
  if (!m) return undefined;
  return { releasever: Number(m[1]), date: m[2]!, stream: Number(m[3]), respin: Number(m[4]) };
}

export function formatVersion(v: Version): string {
  return `${v.releasever}.${v.date}.${v.stream}.${v.respin}`;
}

export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return a.localeCompare(b);
  return (
    pa.releasever - pb.releasever ||
    pa.date.localeCompare(pb.date) ||
    pa.stream - pb.stream ||
    pa.respin - pb.respin
  );
}

export function utcDate(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10).replace(/-/g, '');
}

/** The next version for a build on `date`: respin N counts earlier builds of the same day and stream. */
export function nextVersion(releasever: number, date: string, stream: number, existing: string[]): string {
  const prefix = `${releasever}.${date}.${stream}.`;
  const respins = existing.filter((v) => v.startsWith(prefix)).map((v) => parseVersion(v)?.respin ?? -1);
  const respin = respins.length ? Math.max(...respins) + 1 : 0;
  return formatVersion({ releasever, date, stream, respin });
}
