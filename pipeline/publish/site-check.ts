// Site documents read from text (releases.json, updates/<stream>.json): JSON syntax, schema and
// the rules the update graph relies on, each problem at its file:line:col. Pure.
import { parseYaml } from '../config/yaml.ts';
import { type ConfigIssue, DataError, formatIssue } from '../errors.ts';
import type { ReleasesDoc, UpdatesDoc } from './site-types.ts';
import { type DocKind, problems } from './validate.ts';

// --- site documents read from text -----------------------------------------------------------------

/** Where a value is: line and column in the file's text, when there is one. */
export type Locate = (path: (string | number)[]) => { line: number; col: number } | undefined;

/**
 * What the update graph would misread in updates/<stream>.json, beyond its schema: a rollout
 * start that is not a time, a start percentage outside 0..1, a duration under one minute, and a
 * version listed twice (upstream applies every entry of a version in turn,
 * commons/src/graph.rs:164-167 @95388bdf, so one silently overrides the other).
 */
export function updatesIssues(doc: unknown, file: string, locate: Locate = () => undefined): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const releases = (doc as { releases?: unknown })?.releases;
  if (!Array.isArray(releases)) return issues;
  const add = (path: (string | number)[], message: string, value?: unknown) =>
    issues.push({
      file,
      ...locate(path),
      path: `/${path.join('/')}`,
      rule: 'rollout',
      message,
      ...(value !== undefined && { value }),
    });
  const seen = new Map<string, number>();
  releases.forEach((entry: { version?: unknown; metadata?: { rollout?: Record<string, unknown> } }, i) => {
    const version = typeof entry?.version === 'string' ? entry.version : '?';
    const first = seen.get(version);
    if (first !== undefined)
      add(
        ['releases', i, 'version'],
        `${version} is listed again (first at /releases/${first}); give one entry per version`,
      );
    else seen.set(version, i);
    const r = entry?.metadata?.rollout;
    if (!r || typeof r !== 'object') return;
    const at = (k: string) => ['releases', i, 'metadata', 'rollout', k];
    if ('start_epoch' in r && !(Number.isSafeInteger(r.start_epoch) && (r.start_epoch as number) >= 0))
      add(
        at('start_epoch'),
        `${version}: start_epoch is not a time: it is whole seconds since 1970-01-01T00:00:00Z`,
        r.start_epoch,
      );
    const p = r.start_percentage;
    if ('start_percentage' in r && !(typeof p === 'number' && p >= 0 && p <= 1))
      add(
        at('start_percentage'),
        `${version}: start_percentage is the fraction of machines at the start, 0..1${typeof p === 'number' && p > 1 && p <= 100 ? ` (for ${p}% write ${p / 100})` : ''}`,
        p,
      );
    const d = r.duration_minutes;
    if ('duration_minutes' in r && !(Number.isSafeInteger(d) && (d as number) >= 1))
      add(
        at('duration_minutes'),
        `${version}: a rollout lasts at least one minute (duration_minutes, whole minutes); leave it out to hold the rollout at start_percentage`,
        d,
      );
  });
  return issues;
}

/** Offset of the first JSON syntax error in `text` (RFC 8259), or -1 when there is none. */
export function jsonErrorAt(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const literal = (word: string) => {
    for (const c of word) {
      if (text[i] !== c) fail();
      i++;
    }
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          for (let k = 1; k <= 4; k++)
            if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) {
              i += k;
              fail();
            }
          i += 5;
        } else if ('"\\/bfnrt'.includes(text[i] ?? 'x')) i++;
        else fail();
      } else i++;
    }
    fail();
  };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === close) return void i++;
        else fail();
      }
    }
    if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      number.lastIndex = i;
      const m = number.exec(text);
      if (!m) fail();
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (at) {
    return at as number;
  }
}

/** Throws (exit 65) naming the file and each issue, when there are any: nothing gets written. */
export function refuseIssues(file: string, issues: ConfigIssue[]): void {
  if (issues.length)
    throw new DataError(
      `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing written:\n  ${issues.map(formatIssue).join('\n  ')}`,
    );
}

/**
 * A site document (releases.json or updates/<stream>.json) read from its text: JSON, its schema
 * (validate.ts) and for updates the checks above, each problem at its line and column; the
 * document's `stream` must be `stream` when given. Throws (exit 65) listing every problem.
 */
export function checkSiteDocText<K extends 'releases' | 'updates'>(
  kind: K,
  text: string,
  file: string,
  stream?: string,
): K extends 'releases' ? ReleasesDoc : UpdatesDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The engine's message differs between Node versions and may carry no position: find it.
    const at = jsonErrorAt(text);
    const before = text.slice(0, at).split('\n');
    const what = at >= text.length ? 'end of file' : JSON.stringify(text[at]);
    throw new DataError(
      `${file}:${before.length}:${before.at(-1)!.length + 1}: not JSON: unexpected ${what}`,
    );
  }
  let source: { locate(p: (string | number)[]): { line: number; col: number } } | undefined;
  const locate: Locate = (path) => {
    source ??= parseYaml(text, file).source;
    return source?.locate(path.map(String));
  };
  const issues = kind === 'updates' ? updatesIssues(doc, file, locate) : [];
  const covered = new Set(issues.map((i) => i.path));
  for (const line of problems(kind as DocKind, doc)) {
    const sep = line.indexOf(': ');
    const pointer = line.slice(0, sep);
    if ([...covered].some((c) => pointer === c || pointer.startsWith(`${c}/`))) continue;
    const path =
      pointer === '/'
        ? []
        : pointer
            .slice(1)
            .split('/')
            .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const [rule, ...rest] = line.slice(sep + 2).split(': ');
    issues.push({ file, ...locate(path), path: pointer, rule: rule!, message: rest.join(': ') });
  }
  const got = (doc as { stream?: unknown })?.stream;
  if (stream !== undefined && issues.length === 0 && got !== stream)
    issues.push({
      file,
      ...locate(['stream']),
      path: '/stream',
      rule: 'stream',
      message: `is for stream ${String(got)}, not ${stream}`,
    });
  refuseIssues(file, issues);
  return doc as K extends 'releases' ? ReleasesDoc : UpdatesDoc;
}
