// RPM version ordering as rpm itself has it: rpmvercmp() over version and release strings, and
// `[epoch:]version-release` (EVR) parsed and compared, for lockfile checks and package diffs.
// Pure.

/**
 * rpmvercmp() from rpm's lib/rpmvercmp.c: compares alternating alphabetic and numeric segments;
 * numeric segments beat alphabetic ones; `~` sorts before anything (even the end of the string);
 * `^` sorts after the end of the string but before anything else. Returns -1, 0 or 1.
 */
export function rpmvercmp(a: string, b: string): -1 | 0 | 1 {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const isAlnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  const isAlpha = (c: string | undefined) => c !== undefined && /[A-Za-z]/.test(c);
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;
    // Tilde: the side with it is older, even against the end of the other string.
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    // Caret: like the end of the string, but newer than the actual end.
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < a.length && j < b.length)) break;
    const numeric = isDigit(a[i]);
    const take = (s: string, k: number) => {
      let e = k;
      while (e < s.length && (numeric ? isDigit(s[e]) : isAlpha(s[e]))) e++;
      return e;
    };
    const ei = take(a, i);
    const ej = take(b, j);
    let sa = a.slice(i, ei);
    let sb = b.slice(j, ej);
    // Segments of different types: numeric is newer.
    if (sb.length === 0) return numeric ? 1 : -1;
    if (numeric) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  // The string with segments left over is newer.
  return i >= a.length ? -1 : 1;
}

export interface Evr {
  epoch: number;
  version: string;
  release: string;
}

export function parseEvrOrNull(evr: string): Evr | null {
  const m = /^(?:(\d+):)?([^:-]+)-([^:-]+)$/.exec(evr);
  if (!m) return null;
  return { epoch: m[1] ? Number(m[1]) : 0, version: m[2]!, release: m[3]! };
}

/** Splits `[epoch:]version-release`; a missing epoch is 0. */
export function parseEvr(evr: string): Evr {
  const e = parseEvrOrNull(evr);
  if (!e) throw new Error(`malformed EVR: ${evr}`);
  return e;
}

/** Compares two EVRs: epoch numerically, then version and release with rpmvercmp. */
export function compareEvr(a: string, b: string): -1 | 0 | 1 {
  const x = parseEvr(a);
  const y = parseEvr(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return rpmvercmp(x.version, y.version) || rpmvercmp(x.release, y.release);
}

/** `1:2.3-4.fc41.x86_64` → `1:2.3-4.fc41`. */
export function stripArch(evra: string): string {
  return evra.slice(0, evra.lastIndexOf('.'));
}
