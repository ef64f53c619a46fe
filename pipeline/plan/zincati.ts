// Zincati, the Fedora CoreOS update agent (formats.md §6): the image's drop-in that points it at
// our update graph, and the drop-in of a sensor profile's update strategy that Ignition writes.
// Pure: values in, TOML text or problems out. Every rule below rests on coreos/zincati @be76c4aa.
//
// How Zincati reads its configuration: every *.toml under /usr/lib/, /run/ and /etc/
// zincati/config.d/ (src/config/mod.rs:47-54), merged by file name in lexicographic order, later
// files overriding earlier ones, and of files with the same name only the last directory's
// (docs/usage/configuration.md:11-20); a key set later wins (src/config/inputs.rs:111-115,
// 205-223), but periodic windows ADD UP across files (inputs.rs:224-234). Unknown keys are
// ignored (src/config/fragments.rs:9-19 has no deny_unknown_fields).

/**
 * The image's drop-in: sorts after Fedora CoreOS's 50-fedora-coreos-cincinnati.toml, which Zincati
 * itself ships (dist/config.d/50-fedora-coreos-cincinnati.toml:2-3, installed to
 * /usr/lib/zincati/config.d by its Makefile:22), so our base_url wins.
 */
export const CINCINNATI_DROPIN = '/usr/lib/zincati/config.d/60-rocknsm-cincinnati.toml';
/**
 * The profile's drop-in: after the image's and Zincati's own (10-*, 30-updates-strategy.toml,
 * 50-*), in /etc; 90-99 stay free for a site's own additions.
 */
export const UPDATES_DROPIN = '/etc/zincati/config.d/80-rocknsm-updates.toml';

/**
 * Variables Zincati substitutes in base_url (src/identity/mod.rs:121-130, used by
 * src/cincinnati/mod.rs:118-125 and src/strategy/fleet_lock.rs:39-46). `stream` is the booted
 * image's com.coreos.stream label (src/rpm_ostree/cli_status.rs:149-169), which our build sets
 * to the stream name; `basearch` is x86_64 or aarch64 (src/identity/mod.rs:96).
 */
export const URL_VARIABLES = ['basearch', 'group', 'platform', 'stream'] as const;
const variable = (name: string) => `\${${name}}`;

/**
 * The static graph `rock-image publish` writes on the site (publish/graph.ts staticGraphPath):
 * Zincati URL-joins `v1/graph` onto base_url (src/cincinnati/client.rs:21, :145), so it asks
 * <site>/graph/<stream>/<basearch>/v1/graph.
 */
export function defaultUpdateUrl(siteUrl: string): string {
  return `${siteUrl}/graph/${variable('stream')}/${variable('basearch')}/`;
}

/** Where sensors of a stream ask for updates: publish.update-url, else the site's static graph. */
export function updateServer(publish: { updateUrl?: string; siteUrl?: string }): string | undefined {
  return publish.updateUrl ?? (publish.siteUrl ? defaultUpdateUrl(publish.siteUrl) : undefined);
}

/**
 * Why `url` cannot be a Zincati base URL (Cincinnati or FleetLock), or undefined. Zincati replaces
 * only the variables it knows and leaves any other `${...}` as written (coreos/envsubst-rs
 * src/lib.rs:43-57 @v0.2.1, the version zincati's Cargo.lock pins), parses the result
 * (src/cincinnati/client.rs:215-216) and URL-joins its API path onto it (client.rs:145,
 * src/fleet_lock/mod.rs:145): without a trailing `/` the last path segment is replaced, and a
 * query or fragment is dropped.
 */
export function baseUrlProblem(url: string): string | undefined {
  const unknown = [...url.matchAll(/\$\{([^}]*)\}/g)]
    .map((m) => m[1]!)
    .filter((v) => !(URL_VARIABLES as readonly string[]).includes(v));
  if (unknown.length)
    return `unknown variable ${unknown.map(variable).join(', ')}; Zincati substitutes only ${URL_VARIABLES.map(variable).join(', ')}`;
  if (/\$\{/.test(url.replace(/\$\{[a-z]+\}/g, ''))) return 'a variable without its closing brace';
  return joinBaseProblem(
    url.replace(/\$\{([a-z]+)\}/g, '$1'),
    'Zincati URL-joins its API path (v1/...) onto it',
  );
}

/**
 * Why `url` cannot be a base that paths are URL-joined onto (WHATWG URL resolution, as rust-url's
 * `join` and `new URL(path, base)` do), or undefined: it must parse, be http(s), carry no query
 * or fragment (dropped by the join) and end with `/` (without it the last segment is replaced).
 * `joiner` says who joins what onto it, for the message.
 */
export function joinBaseProblem(url: string, joiner: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    return 'must be an http:// or https:// URL';
  if (parsed.search || parsed.hash || /[?#]/.test(url))
    return `must have no query or fragment: ${joiner}, which drops them`;
  if (!url.endsWith('/')) return `must end with '/': ${joiner}, which replaces a last segment without one`;
  return undefined;
}

/** A TOML basic string. */
export function tomlString(s: string): string {
  let out = '"';
  for (const c of s) {
    const code = c.charCodeAt(0);
    if (c === '\\' || c === '"') out += `\\${c}`;
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

/** The image's drop-in: [cincinnati] base_url (src/config/fragments.rs:47-51). */
export function renderCincinnatiDropin(baseUrl: string, stream: string): string {
  return [
    `# Generated by rock-image from manifests/streams/${stream}.yaml (publish.update-url, else the`,
    "# site's static graph): where Zincati asks for updates. It sorts after Fedora CoreOS's",
    '# 50-fedora-coreos-cincinnati.toml; a later-sorting file in /etc/zincati/config.d/ overrides it.',
    '[cincinnati]',
    `base_url = ${tomlString(baseUrl)}`,
    '',
  ].join('\n');
}

export type UpdateStrategy = 'immediate' | 'periodic' | 'fleet-lock';

/** Zincati's name of each strategy (src/strategy/immediate.rs:16, periodic.rs:43, fleet_lock.rs:35). */
export const ZINCATI_STRATEGY: Record<UpdateStrategy, string> = {
  immediate: 'immediate',
  periodic: 'periodic',
  'fleet-lock': 'fleet_lock',
};

/** Week days from Monday, as Zincati's weeks start (src/weekly/mod.rs:27). */
export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];
const FULL_NAMES = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
/** Day names a profile may use: abbreviated or full English names. */
export const DAY_NAMES = [...WEEKDAYS, ...FULL_NAMES];

/**
 * The abbreviation we write for a day name. Zincati takes the abbreviation or the full name, in
 * any case, but spells one full name `tuesady` (src/weekly/utils.rs:72-85, :75), so "Tuesday" would
 * stop it; the abbreviations are always safe.
 */
export function weekday(name: string): Weekday {
  const i = DAY_NAMES.findIndex((d) => d.toLowerCase() === name.toLowerCase());
  if (i < 0) throw new Error(`not a day name: ${name}`);
  return WEEKDAYS[i % 7]!;
}

/** A week is the longest window Zincati takes (src/weekly/utils.rs:60-69, weekly/mod.rs:22). */
export const WEEK_MINUTES = 7 * 24 * 60;

export interface UpdateWindow {
  days: Weekday[];
  /** HH:MM, 24-hour, in the policy's time zone. */
  startTime: string;
  lengthMinutes: number;
}

export interface UpdatePolicy {
  strategy: UpdateStrategy;
  /** [identity] rollout_wariness, 0.0 (eager) to 1.0 (cautious); unset: the server decides. */
  rolloutWariness?: number;
  /** periodic: IANA name or `localtime`. */
  timeZone: string;
  windows: UpdateWindow[];
  /** fleet-lock: the FleetLock server's base URL. */
  lockServer?: string;
}

/**
 * A sensor reboots for an update only in a known weekly hour: Saturdays and Sundays 01:00-02:00
 * UTC, the window Zincati's own shipped config suggests (dist/config.d/30-updates-strategy.toml:
 * 14-21), in UTC as Zincati assumes by default (src/config/inputs.rs:200-203). Fedora CoreOS's
 * default, immediate (src/strategy/mod.rs:65, :182-186), reboots whenever an update is staged:
 * on a sensor that is a capture gap at any hour of a shift.
 */
export const DEFAULT_UPDATE_POLICY: UpdatePolicy = {
  strategy: 'periodic',
  timeZone: 'UTC',
  windows: [{ days: ['Sat', 'Sun'], startTime: '01:00', lengthMinutes: 60 }],
};

/**
 * Why `tz` is not a time zone Zincati can open, or undefined. Zincati takes `localtime` or a name
 * it opens under /usr/share/zoneinfo (src/strategy/periodic.rs:83-118): a tz database name, with
 * its exact case (the file system is case-sensitive, Intl is not).
 */
export function timeZoneProblem(tz: string): string | undefined {
  if (tz === 'localtime') return undefined;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return `unknown time zone '${tz}'; use a tz database name such as America/Chicago, or localtime`;
  }
  if (resolved.toLowerCase() === tz.toLowerCase() && resolved !== tz)
    return `write it as ${resolved}: Zincati opens /usr/share/zoneinfo/<name>, which is case-sensitive`;
  if (tz.split('/').some((part) => !/^[A-Z]/.test(part)))
    return 'every part of a tz database name starts with a capital letter (Zincati opens /usr/share/zoneinfo/<name>)';
  return undefined;
}

/** Minutes from Monday 00:00 (src/weekly/mod.rs:27, :327-336). */
export function weekMinute(day: Weekday, startTime: string): number {
  const [h, m] = startTime.split(':').map(Number);
  return WEEKDAYS.indexOf(day) * 24 * 60 + h! * 60 + m!;
}

/** One day of one window. */
export interface WindowSpan {
  window: number;
  /** Index in the window's `days`. */
  day: number;
  start: number;
  length: number;
}

/**
 * Pairs of spans that share a minute. A span past Sunday's end goes on from Monday 00:00, as Zincati
 * wraps it (src/weekly/mod.rs:273-305). Spans that only touch (one ends as the next starts) are
 * not an overlap here. Zincati itself takes overlapping windows and merges them
 * (src/weekly/mod.rs:33, :156-191; docs/usage/updates-strategy.md:102): the overlap is refused by
 * us as a configuration mistake, never by Zincati.
 */
export function windowOverlaps(windows: UpdateWindow[]): [WindowSpan, WindowSpan][] {
  const spans = windows.flatMap((w, window) =>
    w.days.map((d, day) => ({ window, day, start: weekMinute(d, w.startTime), length: w.lengthMinutes })),
  );
  const pieces = (s: WindowSpan): [number, number][] =>
    s.start + s.length <= WEEK_MINUTES
      ? [[s.start, s.start + s.length]]
      : [
          [s.start, WEEK_MINUTES],
          [0, s.start + s.length - WEEK_MINUTES],
        ];
  const out: [WindowSpan, WindowSpan][] = [];
  for (const [j, b] of spans.entries())
    for (const a of spans.slice(0, j))
      if (pieces(a).some(([as, ae]) => pieces(b).some(([bs, be]) => as < be && bs < ae))) out.push([a, b]);
  return out;
}

/** `Sat 01:00 for 60 min`. */
export const describeSpan = (w: UpdateWindow, day: number) =>
  `${w.days[day]} ${w.startTime} for ${w.lengthMinutes} min`;

/** TOML float: rollout_wariness is a float (src/config/fragments.rs:43). */
const tomlFloat = (n: number) => (Number.isInteger(n) ? `${n}.0` : String(n));

/**
 * The profile's drop-in: exactly the keys Zincati reads for the strategy
 * (src/config/fragments.rs:37-96): [updates] strategy; [updates.periodic] time_zone and
 * [[updates.periodic.window]] days, start_time, length_minutes; [updates.fleet_lock] base_url;
 * [identity] rollout_wariness. updates.enabled is left to Zincati's default (true).
 */
export function renderUpdatesDropin(policy: UpdatePolicy, profile: string): string {
  const lines = [
    `# Generated by rock-image from sensor profile ${profile} (updates): when Zincati may reboot`,
    '# this sensor into an update. Periodic windows in later-sorting files add to these.',
    '[updates]',
    `strategy = ${tomlString(ZINCATI_STRATEGY[policy.strategy])}`,
  ];
  if (policy.strategy === 'periodic') {
    lines.push('', '[updates.periodic]', `time_zone = ${tomlString(policy.timeZone)}`);
    for (const w of policy.windows)
      lines.push(
        '',
        '[[updates.periodic.window]]',
        `days = [${w.days.map(tomlString).join(', ')}]`,
        `start_time = ${tomlString(w.startTime)}`,
        `length_minutes = ${w.lengthMinutes}`,
      );
  }
  if (policy.strategy === 'fleet-lock' && policy.lockServer)
    lines.push('', '[updates.fleet_lock]', `base_url = ${tomlString(policy.lockServer)}`);
  if (policy.rolloutWariness !== undefined)
    lines.push('', '[identity]', `rollout_wariness = ${tomlFloat(policy.rolloutWariness)}`);
  return `${lines.join('\n')}\n`;
}
