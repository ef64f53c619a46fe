// A test client for the Cincinnati update graph that asks and decides as Zincati does: the request
// URL and headers it sends, how it reads the response, and which node it picks as the next update.
// Written from Zincati's source (coreos/zincati @be76c4aa = be76c4aa8822df77124a7377aa32a11a0083732d)
// and, where Zincati leans on a library, from that library at the version in Zincati's Cargo.lock
// (url 2.5.8, reqwest 0.12.28, serde_json 1.0.149, envsubst 0.2.1, ordered-float 5.1.0,
// oci-spec 0.7.1, ostree-ext 0.15.3). Each fact carries its source line.
//
// Where this client differs from Zincati on the wire (none of it changes what a server must serve):
// - Query order: Zincati's parameters are a std HashMap (coreos/zincati src/cincinnati/client.rs:121
//   @be76c4aa), serialised in its iteration order, which Rust seeds at random per process (checked
//   with rustc 1.95: four runs, four orders). Here they come in the order Zincati inserts them
//   (src/identity/mod.rs:135-151 @be76c4aa); a server must not depend on the order.
// - Headers: both send `accept: application/json`; Node's fetch also sends its own user-agent,
//   accept-language, accept-encoding and sec-fetch-mode, and follows up to 20 redirects where
//   reqwest follows 10 (seanmonstar/reqwest src/redirect.rs:163 @v0.12.28).
// - Edge indices above 2^53 lose precision as JS numbers (only the error text could differ: such a
//   node index is never in range).
import { Buffer } from 'node:buffer';

/** Node metadata keys Zincati reads (coreos/zincati src/cincinnati/mod.rs:24,27,30,33 @be76c4aa). */
export const AGE_INDEX_KEY = 'org.fedoraproject.coreos.releases.age_index';
export const SCHEME_KEY = 'org.fedoraproject.coreos.scheme';
export const DEADEND_KEY = 'org.fedoraproject.coreos.updates.deadend';
export const DEADEND_REASON_KEY = 'org.fedoraproject.coreos.updates.deadend_reason';

/** The graph path joined onto base_url (coreos/zincati src/cincinnati/client.rs:21 @be76c4aa). */
export const V1_GRAPH_PATH = 'v1/graph';

/**
 * The one header Zincati sets (coreos/zincati src/cincinnati/client.rs:149 @be76c4aa). reqwest's
 * default accept header, any type (seanmonstar/reqwest src/async_impl/client.rs:286 @v0.12.28), is
 * added only where a request has none (same file :2590-2593), so `application/json` goes out.
 */
export const REQUEST_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  accept: 'application/json',
});

/** reqwest's whole-request timeout in Zincati: 30 minutes (coreos/zincati src/cincinnati/client.rs:18 @be76c4aa). */
export const HTTP_TIMEOUT_MS = 30 * 60 * 1000;

/** Zincati's default update group (coreos/zincati src/identity/mod.rs:16 @be76c4aa). */
export const DEFAULT_GROUP = 'default';

/** One node as the protocol carries it (coreos/zincati src/cincinnati/client.rs:24-29 @be76c4aa). */
export interface GraphNode {
  version: string;
  payload: string;
  metadata: Record<string, string>;
}

/** The graph (coreos/zincati src/cincinnati/client.rs:33-36 @be76c4aa): edges are [from, to] node indices. */
export interface Graph {
  nodes: GraphNode[];
  edges: [number, number][];
}

/**
 * The booted deployment (Zincati's `current_os`): an ostree checksum, or for a host booted from a
 * container image the image name from its origin (tag and all) and the manifest digest that
 * rpm-ostree reports (coreos/zincati src/rpm_ostree/cli_status.rs:92-103,124-135 @be76c4aa).
 * `bootedDeployment` builds it from `rpm-ostree status --json`.
 */
export type Booted =
  | { version: string; checksum: string }
  | { version: string; image: string; digest: string };

/**
 * A graph node as Zincati reads it (`Release`, coreos/zincati src/rpm_ostree/mod.rs:26-33 @be76c4aa).
 * `payload` is the checksum, or for the oci scheme the parsed pullspec printed back (`whole()`),
 * which is the node's payload normalised (a bare `name@digest` becomes `docker.io/library/name@digest`).
 */
export interface Release {
  version: string;
  scheme: 'checksum' | 'oci';
  payload: string;
  /** u64 (src/rpm_ostree/mod.rs:105 @be76c4aa). */
  ageIndex: bigint;
}

/**
 * Zincati's `CincinnatiError` (coreos/zincati src/cincinnati/client.rs:49-64 @be76c4aa): `kind` is
 * its `error_kind()` (the metric label, :68-78), `value` its `error_value()` (:81-91), `status` the
 * server's code when there is one, and `message` its Display, `server-side error, code N: value` or
 * `client-side error: value` (:105-109).
 */
export class CincinnatiError extends Error {
  constructor(
    readonly kind: string,
    readonly value: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(
      `${status === undefined ? 'client-side error' : `server-side error, code ${status}`}: ${value}`,
      options,
    );
    this.name = 'CincinnatiError';
  }
}

const own = (m: Record<string, string>, k: string): string | undefined =>
  Object.hasOwn(m, k) ? m[k] : undefined;

// --- base_url templates (coreos/envsubst-rs src/lib.rs @v0.2.1) ------------------------------------

/** `${` occurs before the first `}` (coreos/envsubst-rs src/lib.rs:64-75 @v0.2.1). */
export function isTemplated(s: string): boolean {
  const start = s.indexOf('${');
  const end = s.indexOf('}');
  return start >= 0 && end >= 0 && start < end;
}

/**
 * base_url with `${basearch}`, `${group}`, `${platform}`, `${stream}` replaced: the only variables
 * (coreos/zincati src/identity/mod.rs:121-130 @be76c4aa), and only when the string is templated
 * (src/cincinnati/mod.rs:119-125 @be76c4aa). A value holding `$`, `{` or `}` is an error
 * (coreos/envsubst-rs src/lib.rs:82-88,95-105 @v0.2.1); replacement is plain text, every
 * occurrence, no escaping (:52-58); other `${...}` stay as they are.
 */
export function substituteBaseUrl(baseUrl: string, vars: Record<string, string>): string {
  if (baseUrl === '') throw new Error('empty Cincinnati base URL'); // src/cincinnati/mod.rs:114-115 @be76c4aa
  if (!isTemplated(baseUrl)) return baseUrl;
  for (const [k, v] of Object.entries(vars))
    for (const [kind, s] of [
      ['key', k],
      ['value', v],
    ] as const)
      for (const c of ['$', '{', '}'])
        if (s.includes(c))
          throw new Error(`envsubst error: variable ${kind} '${s}' contains forbidden character '${c}'`);
  let out = baseUrl;
  for (const [k, v] of Object.entries(vars)) out = out.split(`\${${k}}`).join(v);
  return out;
}

// --- query encoding --------------------------------------------------------------------------------

/**
 * application/x-www-form-urlencoded, as reqwest's `.query()` writes it (seanmonstar/reqwest
 * src/async_impl/request.rs:357-372 @v0.12.28, through url's `query_pairs_mut`): bytes `*-._`,
 * digits and ASCII letters as they are, space as `+`, every other UTF-8 byte as `%XX`
 * (servo/rust-url form_urlencoded/src/lib.rs:131-146 @v2.5.8).
 */
export function formEncode(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[*\-._0-9A-Za-z]/.test(c)) out += c;
    else if (byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * rollout_wariness as `format!("{:.06}", rw)` (coreos/zincati src/identity/mod.rs:151 @be76c4aa;
 * NotNan's Display passes the precision on, reem/rust-ordered-float src/lib.rs:1334-1338 @v5.1.0):
 * six decimals of the double's exact value, a tie rounded to even (rustc 1.95: 1/128 prints
 * `0.007812`, where JS's toFixed gives `0.007813`), and -0.0 keeps its sign.
 */
export function formatWariness(x: number): string {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const e = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = e === 0 ? frac : frac | (1n << 52n);
  const exp = e === 0 ? -1074 : e - 1075;
  let num = mant * 1_000_000n;
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  let q = num / den;
  const twice = (num % den) * 2n;
  if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
  const digits = q.toString().padStart(7, '0');
  return `${sign}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

// --- OCI image references (youki-dev/oci-spec-rs src/distribution/reference.rs @v0.7.1) ---------

/** A parsed image reference (youki-dev/oci-spec-rs src/distribution/reference.rs:77-86 @v0.7.1). */
export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

// REFERENCE_REGEXP (youki-dev/oci-spec-rs src/distribution/reference.rs:18 @v0.7.1), the same
// language written without nested ambiguous repetition (a name component's `(?:[._]|__|[-]*)`
// separator may be empty, which only joins two runs of [a-z0-9]; a host label's two alternatives
// become one), so that JS's backtracking engine stays linear as Rust's regex is. Rust's `\w` is
// Unicode's (\p{Alphabetic}, \p{M}, \d, \p{Pc}, \p{Join_Control}); [[:xdigit:]] is ASCII.
const LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const W = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const REFERENCE = new RegExp(
  `^((?:${LABEL}(?:\\.${LABEL})*(?::[0-9]+)?/)?${COMPONENT}(?:/${COMPONENT})*)` +
    `(?::([${W}][${W}.-]{0,127}))?` +
    '(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?$',
  'u',
);

/**
 * `Reference::try_from` (youki-dev/oci-spec-rs src/distribution/reference.rs:231-281 @v0.7.1): the
 * tag defaults to `latest` when there is neither tag nor digest; the domain split and Docker Hub
 * defaults of :304-331; a repository over 255 bytes and a digest of the wrong length or algorithm
 * are refused. Errors carry oci-spec's Display (:31-57).
 */
export function parseReference(s: string): ImageRef {
  if (s === '') throw new Error('repository name must have at least one component');
  const m = REFERENCE.exec(s);
  if (!m) throw new Error('invalid reference format');
  const name = m[1]!;
  let tag = m[2];
  const digest = m[3];
  if (tag === undefined && digest === undefined) tag = 'latest';
  const slash = name.indexOf('/');
  let registry = 'docker.io';
  let repository = name;
  if (slash >= 0) {
    const left = name.slice(0, slash);
    if (left.includes('.') || left.includes(':') || left === 'localhost') {
      registry = left;
      repository = name.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (Buffer.byteLength(repository) > 255)
    throw new Error('repository name must not be more than 255 characters');
  if (digest !== undefined) {
    const [algo, hex] = digest.split(/:(.*)/s) as [string, string];
    const want = { sha256: 64, sha384: 96, sha512: 128 }[algo];
    if (want === undefined) throw new Error('unsupported digest algorithm');
    if (hex.length !== want) throw new Error('invalid checksum digest length');
  }
  return { registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** `Reference::whole()`: `registry/repository[:tag][@digest]` (youki-dev/oci-spec-rs src/distribution/reference.rs:187-211 @v0.7.1). */
export function referenceWhole(r: ImageRef): string {
  let s = r.registry === '' ? r.repository : `${r.registry}/${r.repository}`;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

// --- the booted deployment --------------------------------------------------------------------------

/** The fields of one `rpm-ostree status --json` deployment that Zincati reads (coreos/zincati src/rpm_ostree/cli_status.rs:69-80 @be76c4aa). */
export interface RpmOstreeDeployment {
  booted?: boolean;
  staged?: boolean;
  'container-image-reference'?: string | null;
  'container-image-reference-digest'?: string | null;
  'base-checksum'?: string | null;
  checksum: string;
  version: string;
}

const TRANSPORTS = new Set([
  'registry',
  'docker',
  'oci',
  'oci-archive',
  'docker-archive',
  'containers-storage',
  'dir',
]);

/**
 * The image name inside an ostree container origin such as
 * `ostree-image-signed:docker://quay.io/fedora/fedora-coreos:stable`, or undefined where ostree-ext
 * refuses it: the signature prefixes of ostreedev/ostree-rs-ext lib/src/container/mod.rs:197-241,
 * then `<transport>:<name>` (:143-164; transports :106-118; `docker:` needs `//`)
 * @ostree-ext-v0.15.3. Zincati uses the name whatever the transport (coreos/zincati
 * src/rpm_ostree/cli_status.rs:130 @be76c4aa).
 */
export function ostreeImageName(origin: string): string | undefined {
  const i = origin.indexOf(':');
  if (i < 0) return undefined;
  const first = origin.slice(0, i);
  let rest = origin.slice(i + 1);
  const afterRemote = (s: string) => (s.includes(':') ? s.slice(s.indexOf(':') + 1) : undefined);
  if (first === 'ostree-unverified-registry') rest = `registry:${rest}`;
  else if (first === 'ostree-remote-registry' || first === 'ostree-remote-image') {
    const r = afterRemote(rest);
    if (r === undefined) return undefined;
    rest = first === 'ostree-remote-registry' ? `registry:${r}` : r;
  } else if (first !== 'ostree-image-signed' && first !== 'ostree-unverified-image') return undefined;
  const k = rest.indexOf(':');
  if (k < 0 || !TRANSPORTS.has(rest.slice(0, k))) return undefined;
  const name = rest.slice(k + 1);
  if (name === '') return undefined;
  if (rest.slice(0, k) !== 'docker') return name;
  return name.startsWith('//') ? name.slice(2) : undefined;
}

/**
 * `Deployment::into_release` (coreos/zincati src/rpm_ostree/cli_status.rs:92-103 @be76c4aa): a
 * pullspec when the origin parses, its name parses as a reference and rpm-ostree reports a digest
 * (:124-135); otherwise a checksum, the base revision: the origin string itself when there is one,
 * else base-checksum, else checksum (:106-111).
 */
export function deploymentRelease(d: RpmOstreeDeployment): Booted {
  const origin = d['container-image-reference'] ?? undefined;
  const digest = d['container-image-reference-digest'] ?? undefined;
  const name = origin === undefined ? undefined : ostreeImageName(origin);
  if (name !== undefined && digest !== undefined) {
    try {
      parseReference(name);
      return { version: d.version, image: name, digest };
    } catch {
      // not a reference: Zincati falls back to the base revision
    }
  }
  return { version: d.version, checksum: origin ?? d['base-checksum'] ?? d.checksum };
}

/**
 * The booted deployment: the first with `booted`, its base revision and version non-empty
 * (coreos/zincati src/rpm_ostree/cli_status.rs:251-262 @be76c4aa).
 */
export function bootedDeployment(status: { deployments: RpmOstreeDeployment[] }): Booted {
  const d = status.deployments.find((x) => x.booted);
  if (!d) throw new Error('no booted deployment found');
  const b = deploymentRelease(d);
  if ((d['container-image-reference'] ?? d['base-checksum'] ?? d.checksum) === '')
    throw new Error('empty base revision');
  if (d.version === '') throw new Error('empty version');
  return b;
}

/**
 * The denylist Zincati keeps: every local deployment but a staged one, read once at start
 * (coreos/zincati src/update_agent/actor.rs:274-279,447 @be76c4aa; src/rpm_ostree/cli_status.rs:226-237).
 */
export function localDeployments(status: { deployments: RpmOstreeDeployment[] }): Booted[] {
  return status.deployments.filter((d) => !d.staged).map(deploymentRelease);
}

type Payload = { kind: 'checksum' | 'pullspec'; value: string };

/**
 * The booted payload as Zincati prints and compares it: the checksum, or the image name's
 * reference with the tag dropped and rpm-ostree's digest put in (`clone_with_digest`,
 * youki-dev/oci-spec-rs src/distribution/reference.rs:112-120 @v0.7.1), printed by `whole()`:
 * `quay.io/fedora/fedora-coreos@sha256:...` for `...:stable` (coreos/zincati
 * src/rpm_ostree/cli_status.rs:406-409 @be76c4aa).
 */
function bootedPayload(b: Booted): Payload {
  if ('checksum' in b) return { kind: 'checksum', value: b.checksum };
  const { tag: _, ...ref } = parseReference(b.image);
  return { kind: 'pullspec', value: referenceWhole({ ...ref, digest: b.digest }) };
}

// --- the request -------------------------------------------------------------------------------------

/** What Zincati knows of itself (`Identity`, coreos/zincati src/identity/mod.rs:37-52 @be76c4aa). */
export interface ZincatiIdentity {
  /** `x86_64`, `aarch64`: coreos-stream-metadata's name for this architecture (src/identity/mod.rs:96). */
  basearch: string;
  /** The booted image's `com.coreos.stream` label, else its manifest's `fedora-coreos.stream` annotation (src/rpm_ostree/cli_status.rs:156-188). */
  stream: string;
  /** `ignition.platform.id` from the kernel command line (src/identity/platform.rs:12-34). */
  platform: string;
  /** `[identity] group`; default `default` (src/identity/mod.rs:16,60-62). */
  group?: string;
  /** The node's app-specific machine ID, 32 lowercase hex digits as Zincati sends it (`lower_hex()`, src/identity/mod.rs:138). */
  nodeUuid: string;
  booted: Booted;
}

export interface GraphUrlOptions {
  /** `[identity] rollout_wariness`, 0..1; sent only when set (src/identity/mod.rs:70-77,150-152 @be76c4aa). */
  rolloutWariness?: number;
}

/**
 * The query Zincati sends (`cincinnati_params`, coreos/zincati src/identity/mod.rs:133-154
 * @be76c4aa), in its insertion order: basearch, os_version, group, node_uuid, platform, stream,
 * os_checksum (the checksum, or the booted pullspec `registry/repo@digest`), oci=true only for a
 * pullspec, rollout_wariness only when configured.
 */
export function graphQuery(identity: ZincatiIdentity, opts: GraphUrlOptions = {}): [string, string][] {
  const payload = bootedPayload(identity.booted);
  const params: [string, string][] = [
    ['basearch', identity.basearch],
    ['os_version', identity.booted.version],
    ['group', identity.group ?? DEFAULT_GROUP],
    ['node_uuid', identity.nodeUuid],
    ['platform', identity.platform],
    ['stream', identity.stream],
    ['os_checksum', payload.value],
  ];
  if (payload.kind === 'pullspec') params.push(['oci', 'true']);
  if (opts.rolloutWariness !== undefined)
    params.push(['rollout_wariness', formatWariness(opts.rolloutWariness)]);
  return params;
}

/**
 * The URL Zincati GETs. Configuration checks first, as Zincati makes them when it starts (plain
 * Errors): the group label (coreos/zincati src/identity/mod.rs:178-190 @be76c4aa), the wariness
 * range (:71-72), the base URL and its template (src/cincinnati/mod.rs:113-125). Then per check,
 * as CincinnatiErrors: base_url parsed (src/cincinnati/client.rs:215-216, `client_failed_build`),
 * `v1/graph` joined onto it by WHATWG URL resolution (`Url::join`, client.rs:145;
 * servo/rust-url url/src/lib.rs:471-473 @v2.5.8: a base without a trailing slash loses its last
 * path segment; its query and fragment are dropped), and the query appended (client.rs:150).
 */
export function graphUrl(baseUrl: string, identity: ZincatiIdentity, opts: GraphUrlOptions = {}): string {
  const group = identity.group ?? DEFAULT_GROUP;
  if (!/^[a-zA-Z0-9.-]+$/.test(group))
    throw new Error(`invalid group label '${group}': not conforming to expression '^[a-zA-Z0-9.-]+$'`);
  const rw = opts.rolloutWariness;
  if (rw !== undefined) {
    if (Number.isNaN(rw)) throw new Error('rollout wariness is NaN');
    if (!(rw >= 0)) throw new Error(`unexpected negative rollout wariness: ${rw}`);
    if (!(rw <= 1)) throw new Error(`unexpected overlarge rollout wariness: ${rw}`);
  }
  const vars = { basearch: identity.basearch, group, platform: identity.platform, stream: identity.stream };
  const base = substituteBaseUrl(baseUrl, vars);
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch (err) {
    throw new CincinnatiError('client_failed_build', `failed to parse '${base}'`, undefined, { cause: err });
  }
  let joined: URL;
  try {
    joined = new URL(V1_GRAPH_PATH, parsed);
  } catch (err) {
    throw new CincinnatiError(
      'client_failed_request',
      'relative URL with a cannot-be-a-base base',
      undefined,
      {
        cause: err,
      },
    );
  }
  const query = graphQuery(identity, opts)
    .map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`)
    .join('&');
  return `${joined.href}?${query}`;
}

// --- the response ------------------------------------------------------------------------------------

// serde_json's from_slice, as reqwest's `json()` calls it (seanmonstar/reqwest
// src/async_impl/response.rs:269-272 @v0.12.28), for the types Zincati decodes into. Syntax is
// checked everywhere, strings of fields it ignores only lightly (escapes and control characters,
// not UTF-8: serde-rs/json src/read.rs:598-618,1025-1048 @v1.0.149); strings it keeps must be UTF-8
// with paired surrogate escapes (read.rs:900-965,869). A struct may come as an object or as an
// array of its fields in order (src/de.rs:1820-1860); unknown object keys are ignored, a repeated
// one is an error; numbers for u64 must be plain non-negative integers up to 2^64-1 (`-0` and `1.0`
// are floats to serde: src/de.rs:509-528); nothing but whitespace may follow (src/de.rs:146-151).
type J =
  | { t: 'obj'; entries: [J, J][] }
  | { t: 'arr'; items: J[] }
  | { t: 'str'; s: number; e: number }
  | { t: 'num'; s: number; e: number }
  | { t: 'lit' };

class JsonError extends Error {}

function parseJson(b: Uint8Array): J {
  let i = 0;
  const fail = (what: string): never => {
    throw new JsonError(`${what} at byte ${i}`);
  };
  const ws = () => {
    while (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x09 || b[i] === 0x0d) i++;
  };
  const digits = () => {
    const s = i;
    while (b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === s) fail('invalid number');
  };
  const value = (): J => {
    ws();
    const c = b[i];
    if (c === undefined) return fail('EOF while parsing a value');
    if (c === 0x22) {
      const s = ++i;
      for (;;) {
        const x = b[i++];
        if (x === undefined) return fail('EOF while parsing a string');
        if (x === 0x22) return { t: 'str', s, e: i - 1 };
        if (x < 0x20) fail('control character while parsing a string');
        if (x === 0x5c) {
          const y = b[i++];
          if (y === 0x75) {
            for (let k = 0; k < 4; k++)
              if (!/[0-9A-Fa-f]/.test(String.fromCharCode(b[i++] ?? 0))) fail('invalid escape');
          } else if (y === undefined || !'"\\/bfnrt'.includes(String.fromCharCode(y))) fail('invalid escape');
        }
      }
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const s = i;
      if (c === 0x2d) i++;
      if (b[i] === 0x30) {
        i++;
        if (b[i]! >= 0x30 && b[i]! <= 0x39) fail('invalid number');
      } else digits();
      if (b[i] === 0x2e) {
        i++;
        digits();
      }
      if (b[i] === 0x65 || b[i] === 0x45) {
        i++;
        if (b[i] === 0x2b || b[i] === 0x2d) i++;
        digits();
      }
      return { t: 'num', s, e: i };
    }
    for (const lit of ['true', 'false', 'null'])
      if (Buffer.from(b.subarray(i, i + lit.length)).toString('latin1') === lit) {
        i += lit.length;
        return { t: 'lit' };
      }
    if (c === 0x5b || c === 0x7b) {
      const obj = c === 0x7b;
      const close = obj ? 0x7d : 0x5d;
      const items: J[] = [];
      const entries: [J, J][] = [];
      i++;
      ws();
      if (b[i] === close) {
        i++;
        return obj ? { t: 'obj', entries } : { t: 'arr', items };
      }
      for (;;) {
        if (obj) {
          ws();
          if (b[i] !== 0x22) fail('key must be a string');
          const k = value();
          ws();
          if (b[i++] !== 0x3a) fail("expected ':'");
          entries.push([k, value()]);
        } else items.push(value());
        ws();
        const sep = b[i++];
        if (sep === close) return obj ? { t: 'obj', entries } : { t: 'arr', items };
        if (sep !== 0x2c) fail(`expected ',' or '${String.fromCharCode(close)}'`);
        ws();
        if (b[i] === close) fail('trailing comma');
      }
    }
    return fail('expected value');
  };
  const v = value();
  ws();
  if (i < b.length) fail('trailing characters');
  return v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function jstr(b: Uint8Array, v: J, what: string): string {
  if (v.t !== 'str') throw new JsonError(`invalid type: expected a string for ${what}`);
  let out = '';
  let run = v.s;
  let k = v.s;
  const hex4 = (at: number) => Number.parseInt(Buffer.from(b.subarray(at, at + 4)).toString('latin1'), 16);
  try {
    while (k < v.e) {
      if (b[k] !== 0x5c) {
        k++;
        continue;
      }
      out += utf8.decode(b.subarray(run, k));
      const c = String.fromCharCode(b[k + 1]!);
      k += 2;
      if (c !== 'u')
        out += { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[c]!;
      else {
        const n = hex4(k);
        k += 4;
        if (n >= 0xdc00 && n <= 0xdfff) throw new JsonError('lone leading surrogate in hex escape');
        if (n >= 0xd800 && n <= 0xdbff) {
          if (b[k] !== 0x5c || b[k + 1] !== 0x75) throw new JsonError('unexpected end of hex escape');
          const n2 = hex4(k + 2);
          if (n2 < 0xdc00 || n2 > 0xdfff) throw new JsonError('lone leading surrogate in hex escape');
          k += 6;
          out += String.fromCharCode(n, n2);
        } else out += String.fromCharCode(n);
      }
      run = k;
    }
    return out + utf8.decode(b.subarray(run, v.e));
  } catch (err) {
    if (err instanceof JsonError) throw err;
    throw new JsonError(`invalid unicode code point in ${what}`);
  }
}

function jstruct(b: Uint8Array, v: J, name: string, fields: readonly string[]): Map<string, J> {
  if (v.t === 'arr') {
    if (v.items.length !== fields.length)
      throw new JsonError(
        `invalid length ${v.items.length}, expected struct ${name} with ${fields.length} elements`,
      );
    return new Map(fields.map((f, n) => [f, v.items[n]!]));
  }
  if (v.t !== 'obj') throw new JsonError(`invalid type: expected struct ${name}`);
  const got = new Map<string, J>();
  for (const [k, val] of v.entries) {
    const key = jstr(b, k, `a ${name} key`);
    if (!fields.includes(key)) continue;
    if (got.has(key)) throw new JsonError(`duplicate field \`${key}\``);
    got.set(key, val);
  }
  for (const f of fields) if (!got.has(f)) throw new JsonError(`missing field \`${f}\``);
  return got;
}

function jarr(v: J, what: string): J[] {
  if (v.t !== 'arr') throw new JsonError(`invalid type: expected a sequence for ${what}`);
  return v.items;
}

function ju64(b: Uint8Array, v: J): number {
  const raw = v.t === 'num' ? Buffer.from(b.subarray(v.s, v.e)).toString('latin1') : '';
  if (!/^(0|[1-9][0-9]*)$/.test(raw) || BigInt(raw) > 0xffff_ffff_ffff_ffffn)
    throw new JsonError(`invalid type: expected u64, found ${raw || v.t}`);
  return Number(raw);
}

function decodeGraph(b: Uint8Array): Graph {
  const g = jstruct(b, parseJson(b), 'Graph', ['nodes', 'edges']);
  const nodes = jarr(g.get('nodes')!, 'nodes').map((n): GraphNode => {
    const f = jstruct(b, n, 'Node', ['version', 'payload', 'metadata']);
    const m = f.get('metadata')!;
    if (m.t !== 'obj') throw new JsonError('invalid type: expected a map for metadata');
    const metadata: Record<string, string> = {};
    for (const [k, val] of m.entries)
      Object.defineProperty(metadata, jstr(b, k, 'a metadata key'), {
        value: jstr(b, val, 'a metadata value'),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return {
      version: jstr(b, f.get('version')!, 'version'),
      payload: jstr(b, f.get('payload')!, 'payload'),
      metadata,
    };
  });
  const edges = jarr(g.get('edges')!, 'edges').map((e): [number, number] => {
    const pair = jarr(e, 'an edge');
    if (pair.length !== 2) throw new JsonError(`invalid length ${pair.length}, expected a tuple of size 2`);
    return [ju64(b, pair[0]!), ju64(b, pair[1]!)];
  });
  return { nodes, edges };
}

const bytesOf = (body: Uint8Array | string) => (typeof body === 'string' ? Buffer.from(body, 'utf8') : body);

/**
 * A 2xx body as Zincati decodes it (coreos/zincati src/cincinnati/client.rs:159-163 @be76c4aa),
 * or `client_failed_json_decoding` with its one message whatever went wrong (reqwest's decode
 * error prints no detail; the test at client.rs:273-288); the detail is the error's cause.
 */
export function parseGraph(body: Uint8Array | string): Graph {
  try {
    return decodeGraph(bytesOf(body));
  } catch (err) {
    if (!(err instanceof JsonError)) throw err;
    throw new CincinnatiError(
      'client_failed_json_decoding',
      'failed to decode graph: error decoding response body',
      undefined,
      { cause: err },
    );
  }
}

/**
 * A non-2xx answer (coreos/zincati src/cincinnati/client.rs:166-170 @be76c4aa): a body that
 * decodes as `{kind, value}` (both strings, :40-45) is the server's error, kind and text;
 * anything else is `generic_http_<status>`, `(unknown/generic server error)`.
 */
export function responseError(status: number, body: Uint8Array | string): CincinnatiError {
  try {
    const b = bytesOf(body);
    const f = jstruct(b, parseJson(b), 'GraphJsonError', ['kind', 'value']);
    return new CincinnatiError(jstr(b, f.get('kind')!, 'kind'), jstr(b, f.get('value')!, 'value'), status);
  } catch (err) {
    if (!(err instanceof JsonError)) throw err;
    return new CincinnatiError(`generic_http_${status}`, '(unknown/generic server error)', status);
  }
}

/**
 * GET the graph at `url` (from graphUrl) with Zincati's header over real HTTP. Any 2xx is success
 * (reqwest's `is_success`, coreos/zincati src/cincinnati/client.rs:159 @be76c4aa) and the
 * Content-Type is not looked at; everything else rejects with a CincinnatiError.
 */
export async function fetchGraph(url: string): Promise<Graph> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { ...REQUEST_HEADERS }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  } catch (err) {
    throw new CincinnatiError('client_failed_request', String((err as Error)?.message ?? err), undefined, {
      cause: err,
    });
  }
  let body: Uint8Array | undefined;
  try {
    body = new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    if (res.status >= 200 && res.status <= 299)
      throw new CincinnatiError(
        'client_failed_json_decoding',
        'failed to decode graph: error decoding response body',
        undefined,
        { cause: err },
      );
  }
  if (res.status >= 200 && res.status <= 299) return parseGraph(body!);
  throw responseError(res.status, body ?? new Uint8Array());
}

// --- the choice --------------------------------------------------------------------------------------

const parsing = (msg: string) => new CincinnatiError('client_failed_node_parsing', msg);

/**
 * `Release::from_cincinnati` (coreos/zincati src/rpm_ostree/mod.rs:85-115 @be76c4aa), in its order:
 * version and payload non-empty, a scheme `checksum` or `oci` (an oci payload must parse as an
 * image reference), an age_index that parses as u64 (Rust's: digits with an optional `+`).
 * Errors are `client_failed_node_parsing` (src/cincinnati/mod.rs:247-248,283-284).
 */
export function releaseFromNode(node: GraphNode): Release {
  if (node.version === '') throw parsing('empty version field');
  if (node.payload === '') throw parsing('empty payload field (checksum)');
  const scheme = own(node.metadata, SCHEME_KEY);
  if (scheme === undefined) throw parsing(`missing metadata key: ${SCHEME_KEY}`);
  let payload: string;
  if (scheme === 'checksum') payload = node.payload;
  else if (scheme === 'oci') {
    try {
      payload = referenceWhole(parseReference(node.payload));
    } catch (err) {
      throw parsing((err as Error).message);
    }
  } else throw parsing(`unexpected payload scheme: ${scheme}`);
  const age = own(node.metadata, AGE_INDEX_KEY);
  if (age === undefined) throw parsing(`missing metadata key: ${AGE_INDEX_KEY}`);
  if (!/^\+?[0-9]+$/.test(age) || BigInt(age) > 0xffff_ffff_ffff_ffffn)
    throw parsing(`invalid age_index value: ${age}`);
  return { version: node.version, scheme, payload, ageIndex: BigInt(age) };
}

const bytesCmp = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

/**
 * `Release`'s order (coreos/zincati src/rpm_ostree/mod.rs:53-75 @be76c4aa): age_index, then the
 * version and then the payload as byte strings (no version semantics: "10" < "9").
 */
export function compareReleases(a: Release, b: Release): number {
  if (a.ageIndex !== b.ageIndex) return a.ageIndex < b.ageIndex ? -1 : 1;
  if (a.version !== b.version) return bytesCmp(a.version, b.version);
  return bytesCmp(a.payload, b.payload);
}

/**
 * `is_same_checksum` (coreos/zincati src/cincinnati/mod.rs:339-357 @be76c4aa): an `oci` node
 * matches a pullspec-booted host when its payload string equals the booted `registry/repo@digest`
 * exactly (no normalisation of the node's side), a `checksum` node a checksum-booted host by
 * checksum; a node with another scheme or none matches nothing.
 */
function isSameChecksum(node: GraphNode, booted: Payload): boolean {
  const scheme = own(node.metadata, SCHEME_KEY);
  if (scheme === 'oci') return booted.kind === 'pullspec' && booted.value === node.payload;
  if (scheme === 'checksum') return booted.kind === 'checksum' && booted.value === node.payload;
  return false;
}

/** The dead-end reason of a node, `(unknown reason)` when empty (coreos/zincati src/cincinnati/mod.rs:363-384 @be76c4aa). */
export function deadendReason(node: GraphNode): string | undefined {
  if (own(node.metadata, DEADEND_KEY) !== 'true') return undefined;
  return own(node.metadata, DEADEND_REASON_KEY) || '(unknown reason)';
}

export interface NextUpdateOptions {
  /** Local deployments: targets with one's payload are skipped (default none). */
  denylist?: Booted[];
  /** `[updates] allow_downgrade` (default false, coreos/zincati src/config/inputs.rs:194). */
  allowDowngrade?: boolean;
}

/** Why Zincati found no update, by the branch of find_update that returned None. */
export type NoUpdateReason = 'not-in-graph' | 'no-update-target' | 'not-newer';

export interface UpdateCheck {
  /** The release Zincati would stage, or undefined. */
  next?: Release;
  /** Set when `next` is undefined. */
  reason?: NoUpdateReason;
  /** Zincati's log line for `not-in-graph` and `not-newer`. */
  message?: string;
  /** The booted node, when the graph has it. */
  booted?: Release;
  /** The booted node's dead-end reason, when it is one (Zincati's MOTD and metric). */
  deadend?: string;
  /** The out-edge targets, ascending, deduplicated by the order; before the denylist. */
  targets: Release[];
  /** How many targets the denylist removed (the metric zincati_cincinnati_ignored_update_targets). */
  ignored: number;
  /** For `not-newer`: the highest target, not newer than the booted node. */
  rejected?: Release;
  /** `next` is not newer than the booted node and allowDowngrade let it through. */
  downgrade?: boolean;
}

/**
 * Zincati's `find_update` (coreos/zincati src/cincinnati/mod.rs:216-318 @be76c4aa):
 * 1. the booted node is the first that `isSameChecksum` matches (:231-245); none: no update,
 *    logged `booted deployment <payload> not found in the update graph`;
 * 2. the booted node must parse as a Release (:247-248), its dead-end status is read (:256);
 * 3. every node whose payload is a local deployment's is denylisted (:260, :321-336);
 * 4. each edge out of the booted node, in order: a target index past the nodes is an error
 *    (`client_failed_node_lookup`, :276-281), a target that does not parse is an error (:283-284);
 *    edges elsewhere, and nodes that are not targets, are never looked at;
 * 5. targets go into an ordered set; denylisted ones are dropped (:289-300); the highest wins
 *    (:303-306) unless it is not newer than the booted node (<=), refused unless downgrades are
 *    allowed (:309-315).
 * Barrier and rollout keys are not read: the server applies them. Errors throw CincinnatiError.
 */
export function nextUpdate(graph: Graph, booted: Booted, opts: NextUpdateOptions = {}): UpdateCheck {
  const mine = bootedPayload(booted);
  const cur = graph.nodes.findIndex((n) => isSameChecksum(n, mine));
  if (cur < 0)
    return {
      reason: 'not-in-graph',
      message: `booted deployment ${mine.value} not found in the update graph`,
      targets: [],
      ignored: 0,
    };
  const curNode = graph.nodes[cur]!;
  const curRelease = releaseFromNode(curNode);
  const deadend = deadendReason(curNode);
  const base = { booted: curRelease, ...(deadend !== undefined && { deadend }) };

  const local = new Set((opts.denylist ?? []).map((d) => JSON.stringify(bootedPayload(d))));
  const denylisted: Release[] = [];
  for (const n of graph.nodes) {
    let r: Release;
    try {
      r = releaseFromNode(n);
    } catch {
      continue;
    }
    const p: Payload = { kind: r.scheme === 'oci' ? 'pullspec' : 'checksum', value: r.payload };
    if (local.has(JSON.stringify(p))) denylisted.push(r);
  }

  const targets: Release[] = [];
  for (const [src, dst] of graph.edges) {
    if (src !== cur) continue;
    const node = graph.nodes[dst];
    if (node === undefined)
      throw new CincinnatiError('client_failed_node_lookup', `target node '${dst}' not present in graph`);
    const r = releaseFromNode(node);
    if (!targets.some((t) => compareReleases(t, r) === 0)) targets.push(r);
  }
  targets.sort(compareReleases);
  const kept = targets.filter((t) => !denylisted.some((d) => compareReleases(d, t) === 0));
  const result = { ...base, targets, ignored: targets.length - kept.length };
  const next = kept.at(-1);
  if (next === undefined) return { ...result, reason: 'no-update-target' };
  if (compareReleases(next, curRelease) <= 0) {
    if (!opts.allowDowngrade)
      return {
        ...result,
        reason: 'not-newer',
        rejected: next,
        message: `downgrade hint towards target release '${next.version}'; update hint rejected, downgrades are not allowed by configuration`,
      };
    return { ...result, next, downgrade: true };
  }
  return { ...result, next };
}

/**
 * One update check end to end, as Zincati's `fetch_update_hint` runs it (coreos/zincati
 * src/cincinnati/mod.rs:133-174 @be76c4aa): any CincinnatiError (request, status, decoding, graph)
 * means no update this time, reported here as reason `error`.
 */
export async function checkForUpdate(
  baseUrl: string,
  identity: ZincatiIdentity,
  opts: GraphUrlOptions & NextUpdateOptions = {},
): Promise<UpdateCheck | { next?: undefined; reason: 'error'; error: CincinnatiError }> {
  try {
    return nextUpdate(await fetchGraph(graphUrl(baseUrl, identity, opts)), identity.booted, opts);
  } catch (error) {
    if (error instanceof CincinnatiError) return { reason: 'error', error };
    throw error;
  }
}
