// Loads manifests/image.yaml and manifests/streams/*.yaml, validates each against its JSON Schema
// and the cross-file rules, and returns typed config. Every problem in every file is reported at
// once, with file:line:col, before any work starts.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ConfigError, type ConfigIssue, type Location } from '../errors.ts';
import { showKeysSync } from '../exec/gpg.ts';
import type { TrustConfig } from '../plan/trust.ts';
import { baseUrlProblem, joinBaseProblem } from '../plan/zincati.ts';
import imageSchema from './schema/image.schema.json' with { type: 'json' };
import streamSchema from './schema/stream.schema.json' with { type: 'json' };
import { compileSchema, readYaml, type SourceFile, schemaIssues } from './yaml.ts';

export type Arch = 'x86_64' | 'aarch64';
export type ComposefsMode = 'true' | 'false' | 'yes' | 'no' | 'maybe' | 'verity' | 'signed';
export type AgentMode = 'container' | 'package' | 'none';

export interface DataPath {
  id: string;
  path: string;
  purpose: string;
  legacy?: string;
  mode: string;
  owner: string;
  group: string;
}

export interface Service {
  name: string;
  image: string;
  enabled: boolean;
  /** Where `image` is set: the stream's override, else image.yaml (file:line for pin errors). */
  at: Location;
}

export interface Agent {
  name: string;
  image: string;
  package: string;
  unit: string;
  virtualization: string[];
  mode: AgentMode;
  /** Where `image` is set in image.yaml (file:line for pin errors). */
  at: Location;
}

export interface ImageConfig {
  name: string;
  osname: string;
  variant: string;
  title: string;
  description: string;
  source: string;
  vendor?: string;
  licenses?: string;
  overlays: string[];
  dataPaths: DataPath[];
}

export interface KargsEntry {
  kargs: string[];
  matchArchitectures?: Arch[];
}

export interface StreamConfig {
  stream: string;
  streamNumber: number;
  /** upstream: base.image/tag (digest); compose: the stream's own rpm-ostree compose. */
  baseSource: 'upstream' | 'compose';
  base: { image: string; tag: string; digest?: string };
  arches: Arch[];
  composefs: ComposefsMode;
  composefsKeypath?: string;
  packages: string[];
  kargs: KargsEntry[];
  artifacts: string[];
  /** Backend of `rock-image artifacts`. */
  artifactBackend: 'native' | 'bootc' | 'coreos';
  /**
   * `allow-native-disks`: publish may ship artifacts the native backend made; `at` is where a
   * refusal points: the key itself, else `artifact-backend`, else `stream` (file:line:col).
   */
  nativeDisks: { allowed: boolean; at: Location };
  /**
   * `require-pins`: every service and agent image must be pinned by digest (manifests/image-pins.json
   * or `@sha256:` in the reference); `at` is the key's place, for the error.
   */
  requirePins: { required: boolean; at: Location };
  publish: {
    registry?: string;
    github?: string;
    siteUrl?: string;
    /** Object store serving disk images instead of the GitHub release (publish/site.ts ArtifactHost). */
    artifactUrl?: string;
    /** The update-graph service Zincati asks (plan/zincati.ts); default the site's static graph. */
    updateUrl?: string;
    trust?: TrustConfig;
    /** publish.unsigned: the stated reason this stream's images go out unsigned, and where it is said. */
    unsigned?: { reason: string; at: Location };
  };
}

/** Everything a build of one stream needs to know, resolved from both files. */
export interface ResolvedConfig {
  image: ImageConfig;
  stream: StreamConfig;
  services: Service[];
  agents: Agent[];
  /** Files the config came from, relative to the project root, for the input hash and messages. */
  files: string[];
}

export interface ProjectPaths {
  root: string;
  manifests: string;
  overlays: string;
  containerfiles: string;
}

export function projectPaths(root: string): ProjectPaths {
  return {
    root,
    manifests: join(root, 'manifests'),
    overlays: join(root, 'overlays'),
    containerfiles: join(root, 'containerfiles'),
  };
}

const validateImage = compileSchema(imageSchema);
const validateStream = compileSchema(streamSchema);

interface RawImage {
  ignition?: { 'base-profile'?: string; 'published-profiles'?: string[] };
  name: string;
  osname: string;
  variant: string;
  title: string;
  description: string;
  source: string;
  vendor?: string;
  licenses?: string;
  overlays: string[];
  'data-paths': Record<string, Omit<DataPath, 'id' | 'mode' | 'owner' | 'group'> & Partial<DataPath>>;
  services: Record<string, { image: string; enabled?: boolean }>;
  agents: Record<string, Omit<Agent, 'name' | 'mode'>>;
}

interface RawStream {
  stream: string;
  'stream-number': number;
  base: { source?: 'upstream' | 'compose'; image?: string; tag?: string; digest?: string };
  compose?: { 'primary-arch'?: Arch; [key: string]: unknown };
  arches: Arch[];
  composefs?: boolean | string;
  'composefs-keypath'?: string;
  agents?: Record<string, AgentMode>;
  packages?: string[];
  kargs?: { kargs: string[]; 'match-architectures'?: Arch[] }[];
  services?: Record<string, { image?: string; enabled?: boolean }>;
  artifacts?: string[];
  'artifact-backend'?: 'native' | 'bootc' | 'coreos';
  'allow-native-disks'?: boolean;
  'require-pins'?: boolean;
  publish?: {
    registry?: string;
    github?: string;
    'site-url'?: string;
    'artifact-url'?: string;
    'update-url'?: string;
    trust?: { 'gpg-key': string | string[]; lookaside: string; 'cosign-key'?: string };
    unsigned?: string;
  };
}

export interface LoadedProject {
  image: RawImage;
  imageSource: SourceFile;
  streams: Map<string, { raw: RawStream; source: SourceFile }>;
}

/** Reads and checks every manifest. Throws ConfigError listing all issues. */
export function loadProject(paths: ProjectPaths): LoadedProject {
  const issues: ConfigIssue[] = [];
  // Files are named relative to the project root: what GitHub annotations and editors expect.
  const rel = (f: string) => relative(paths.root, f) || f;
  const imageFile = join(paths.manifests, 'image.yaml');
  const img = readYaml(imageFile, rel(imageFile));
  issues.push(...img.issues);
  if (img.source) issues.push(...schemaIssues(img.source, validateImage));

  const streams = new Map<string, { raw: RawStream; source: SourceFile }>();
  const streamDir = join(paths.manifests, 'streams');
  const streamFiles = existsSync(streamDir)
    ? readdirSync(streamDir)
        .filter((f) => f.endsWith('.yaml'))
        .sort()
    : [];
  if (streamFiles.length === 0) {
    issues.push({
      file: rel(streamDir),
      path: '',
      rule: 'streams',
      message: 'no stream definitions (*.yaml)',
    });
  }
  for (const f of streamFiles) {
    const file = join(streamDir, f);
    const parsed = readYaml(file, rel(file));
    issues.push(...parsed.issues);
    if (!parsed.source) continue;
    const schemaProblems = schemaIssues(parsed.source, validateStream);
    issues.push(...schemaProblems);
    if (schemaProblems.length === 0)
      streams.set(basename(f, '.yaml'), { raw: parsed.source.data as RawStream, source: parsed.source });
  }

  if (issues.length === 0 && img.source) {
    issues.push(...crossChecks(img.source, img.source.data as RawImage, streams, paths));
  }
  if (issues.length) throw new ConfigError(issues);
  return { image: img.source!.data as RawImage, imageSource: img.source!, streams };
}

function issueAt(
  source: SourceFile,
  path: (string | number)[],
  rule: string,
  message: string,
  value?: unknown,
  key = false,
): ConfigIssue {
  const pos = source.locate(path, key);
  return { file: source.file, ...pos, path: `/${path.join('/')}`, rule, message, value };
}

function crossChecks(
  imageSource: SourceFile,
  image: RawImage,
  streams: Map<string, { raw: RawStream; source: SourceFile }>,
  paths: ProjectPaths,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // Ignition profiles named by the image exist under manifests/profiles.
  const profileExists = (name: string) => existsSync(join(paths.manifests, 'profiles', `${name}.yaml`));
  const baseProfile = image.ignition?.['base-profile'];
  if (baseProfile && !profileExists(baseProfile))
    issues.push(
      issueAt(
        imageSource,
        ['ignition', 'base-profile'],
        'profile-exists',
        `manifests/profiles/${baseProfile}.yaml does not exist`,
        baseProfile,
      ),
    );
  (image.ignition?.['published-profiles'] ?? []).forEach((name, i) => {
    if (!profileExists(name))
      issues.push(
        issueAt(
          imageSource,
          ['ignition', 'published-profiles', i],
          'profile-exists',
          `manifests/profiles/${name}.yaml does not exist`,
          name,
        ),
      );
  });
  // Overlays: each listed one exists; each existing one is listed (nothing ships by accident).
  const present = existsSync(paths.overlays)
    ? readdirSync(paths.overlays).filter(
        (d) => /^[0-9]{2}/.test(d) && statSync(join(paths.overlays, d)).isDirectory(),
      )
    : [];
  image.overlays.forEach((o, i) => {
    if (!present.includes(o))
      issues.push(issueAt(imageSource, ['overlays', i], 'overlay-exists', `overlays/${o} does not exist`, o));
  });
  for (const d of present) {
    if (!image.overlays.includes(d)) {
      issues.push(
        issueAt(
          imageSource,
          ['overlays'],
          'overlay-listed',
          `overlays/${d} exists but is not listed in overlays`,
          d,
        ),
      );
    }
  }
  // Data paths: unique paths, none nested in another (each can be its own partition).
  const dataPaths = Object.entries(image['data-paths']);
  for (const [id, dp] of dataPaths) {
    for (const [other, odp] of dataPaths) {
      if (id !== other && (dp.path === odp.path || dp.path.startsWith(`${odp.path}/`))) {
        issues.push(
          issueAt(
            imageSource,
            ['data-paths', id, 'path'],
            'data-path-unique',
            `overlaps data path '${other}' (${odp.path})`,
            dp.path,
          ),
        );
      }
    }
  }
  for (const [name, { raw, source }] of streams) {
    if (raw.stream !== name) {
      issues.push(
        issueAt(source, ['stream'], 'stream-name', `must equal the file name '${name}'`, raw.stream),
      );
    }
    for (const agent of Object.keys(raw.agents ?? {})) {
      if (!(agent in image.agents)) {
        issues.push(
          issueAt(
            source,
            ['agents', agent],
            'agent-known',
            `unknown agent; known: ${Object.keys(image.agents).join(', ')}`,
            agent,
            true,
          ),
        );
      }
    }
    for (const svc of Object.keys(raw.services ?? {})) {
      if (!(svc in image.services)) {
        issues.push(
          issueAt(
            source,
            ['services', svc],
            'service-known',
            `unknown service; known: ${Object.keys(image.services).join(', ')}`,
            svc,
            true,
          ),
        );
      }
    }
    const primary = raw.compose?.['primary-arch'];
    if (primary && !raw.arches.includes(primary)) {
      issues.push(
        issueAt(
          source,
          ['compose', 'primary-arch'],
          'primary-arch-listed',
          `must be one of the stream's arches (${raw.arches.join(', ')})`,
          primary,
        ),
      );
    }
    if (raw.composefs !== 'signed' && raw['composefs-keypath'] !== undefined) {
      issues.push(
        issueAt(
          source,
          ['composefs-keypath'],
          'composefs-keypath',
          'only meaningful with composefs: signed',
          raw['composefs-keypath'],
        ),
      );
    }
    issues.push(...trustChecks(raw, source, paths));
    const updateUrl = raw.publish?.['update-url'];
    const problem = updateUrl === undefined ? undefined : baseUrlProblem(updateUrl);
    if (problem) issues.push(issueAt(source, ['publish', 'update-url'], 'update-url', problem, updateUrl));
    const artifactUrl = raw.publish?.['artifact-url'];
    const bad = artifactUrl === undefined ? undefined : artifactUrlProblem(artifactUrl);
    if (bad) issues.push(issueAt(source, ['publish', 'artifact-url'], 'artifact-url', bad, artifactUrl));
  }
  return issues;
}

/** publish.artifact-url: file paths are URL-joined onto it (publish/site.ts), so it needs its `/`. */
export const artifactUrlProblem = (url: string) =>
  joinBaseProblem(url, "the files' paths (prod/streams/...) are URL-joined onto it");

/** publish.trust: needs publish.registry; its key files exist under the project root. */
const ARMOR = '-----BEGIN PGP PUBLIC KEY BLOCK-----';
const gpgKeysOf = (t: { 'gpg-key': string | string[] }) =>
  Array.isArray(t['gpg-key']) ? t['gpg-key'] : [t['gpg-key']];

/**
 * publish.trust and publish.unsigned. A stream that pushes to a registry says how sensors verify
 * its images (trust) or, visibly, that they do not (unsigned: reason). Trust needs the registry,
 * no cosign key (publish attaches no cosign signatures, so a sigstoreSigned requirement would
 * reject every image), and key files that hold usable OpenPGP public keys, checked with real gpg.
 */
function trustChecks(raw: RawStream, source: SourceFile, paths: ProjectPaths): ConfigIssue[] {
  const trust = raw.publish?.trust;
  const unsigned = raw.publish?.unsigned;
  const issues: ConfigIssue[] = [];
  if (raw.publish?.registry && !trust && unsigned === undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'registry'],
        'publish-signed',
        "a stream that publishes images must be signed: add publish.trust (make the key with 'rock-image keys generate'), or say publish.unsigned: <reason> to publish unsigned images on purpose",
        raw.publish.registry,
      ),
    );
  if (trust && unsigned !== undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'unsigned'],
        'unsigned-with-trust',
        'publish.unsigned contradicts publish.trust: keep one',
        unsigned,
      ),
    );
  if (!trust) return issues;
  if (!raw.publish?.registry)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust'],
        'trust-registry',
        'publish.trust needs publish.registry (the repository sensors trust)',
      ),
    );
  if (trust['cosign-key'] !== undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust', 'cosign-key'],
        'cosign-unsigned',
        'rock-image publish signs images with GPG simple signing only and never attaches cosign signatures, so a sigstoreSigned requirement would make sensors reject every image: remove cosign-key',
        trust['cosign-key'],
      ),
    );
  const files = gpgKeysOf(trust);
  const keyPath = (i: number) =>
    Array.isArray(trust['gpg-key']) ? ['publish', 'trust', 'gpg-key', i] : ['publish', 'trust', 'gpg-key'];
  const seen = new Map<string, string>();
  let armored = 0;
  files.forEach((f, i) => {
    const at = keyPath(i);
    const file = join(paths.root, f);
    if (!existsSync(file) || !statSync(file).isFile()) {
      issues.push(
        issueAt(
          source,
          at,
          'trust-key-exists',
          `${f} does not exist (the public key sensors verify with, relative to the project root)`,
          f,
        ),
      );
      return;
    }
    if (readFileSync(file).subarray(0, ARMOR.length).toString('latin1') === ARMOR) armored++;
    const shown = showKeysSync(file);
    if ('error' in shown) {
      issues.push(
        issueAt(
          source,
          at,
          'trust-key-openpgp',
          `${f} is not an OpenPGP public key (gpg: ${shown.error})`,
          f,
        ),
      );
      return;
    }
    for (const k of shown.keys) {
      const who = `${k.fingerprint}${k.uids[0] ? ` (${k.uids[0]})` : ''}`;
      const problem =
        k.type === 'sec'
          ? 'holds a private key: commit only the public half (gpg --armor --export FPR); the private half is a CI secret'
          : k.validity === 'r'
            ? `key ${who} is revoked`
            : k.validity === 'e'
              ? `key ${who} expired on ${new Date((k.expires ?? 0) * 1000).toISOString().slice(0, 10)}: extend it (gpg --quick-set-expire) and re-export, or rotate to a new key`
              : !k.capabilities.includes('S')
                ? `key ${who} cannot sign`
                : seen.has(k.fingerprint)
                  ? `key ${who} is also in ${seen.get(k.fingerprint)}`
                  : undefined;
      seen.set(k.fingerprint, f);
      if (problem)
        issues.push(
          issueAt(
            source,
            at,
            k.type === 'sec'
              ? 'trust-key-public'
              : k.validity === 'e'
                ? 'trust-key-expired'
                : 'trust-key-usable',
            `${f} ${problem}`,
            f,
          ),
        );
    }
  });
  if (files.length > 1 && armored !== files.length)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust', 'gpg-key'],
        'trust-keys-armored',
        'rotation keys are joined into one keyring file: give both as ASCII-armored exports (gpg --armor --export FPR)',
      ),
    );
  return issues;
}

function resolveTrust(raw: RawStream, root: string): TrustConfig | undefined {
  const t = raw.publish?.trust;
  if (!t || !raw.publish?.registry) return undefined;
  const files = gpgKeysOf(t).map((f) => join(root, f));
  const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  // One key: the file as it is. Two (rotation): one keyring holding both, the armored exports
  // joined, because two signedBy requirements would both have to be satisfied.
  const gpgKey =
    files.length === 1
      ? { source: files[0]!, sha256: sha256(readFileSync(files[0]!)) }
      : (() => {
          const content = files.map((f) => readFileSync(f, 'utf8').replace(/\n*$/, '\n')).join('');
          return { content, sha256: sha256(content) };
        })();
  return { registry: raw.publish.registry, lookaside: t.lookaside, gpgKey, keyFiles: gpgKeysOf(t) };
}

/** Resolves one stream against the image definition. */
export function resolveStream(project: LoadedProject, name: string, root: string): ResolvedConfig {
  const entry = project.streams.get(name);
  if (!entry) {
    throw new ConfigError([
      {
        file: 'manifests/streams',
        path: '',
        rule: 'stream-exists',
        message: `no stream '${name}'; known: ${[...project.streams.keys()].join(', ')}`,
        value: name,
      },
    ]);
  }
  const { raw, source } = entry;
  const img = project.image;
  const image: ImageConfig = {
    name: img.name,
    osname: img.osname,
    variant: img.variant,
    title: img.title,
    description: img.description,
    source: img.source,
    vendor: img.vendor,
    licenses: img.licenses,
    overlays: img.overlays,
    dataPaths: Object.entries(img['data-paths']).map(([id, d]) => ({
      id,
      path: d.path,
      purpose: d.purpose,
      legacy: d.legacy,
      mode: d.mode ?? '0750',
      owner: d.owner ?? 'root',
      group: d.group ?? 'root',
    })),
  };
  const stream: StreamConfig = {
    stream: raw.stream,
    streamNumber: raw['stream-number'],
    baseSource: raw.base.source ?? 'upstream',
    base: { image: raw.base.image ?? '', tag: raw.base.tag ?? '', digest: raw.base.digest },
    arches: raw.arches,
    composefs: String(raw.composefs ?? true) as ComposefsMode,
    composefsKeypath: raw['composefs-keypath'],
    packages: raw.packages ?? [],
    kargs: (raw.kargs ?? []).map((k) => ({ kargs: k.kargs, matchArchitectures: k['match-architectures'] })),
    artifacts: raw.artifacts ?? ['ostree'],
    artifactBackend: raw['artifact-backend'] ?? 'native',
    nativeDisks: {
      allowed: raw['allow-native-disks'] === true,
      at: {
        file: source.file,
        ...source.locate(
          [(['allow-native-disks', 'artifact-backend'] as const).find((k) => k in raw) ?? 'stream'],
          true,
        ),
      },
    },
    requirePins: {
      required: raw['require-pins'] === true,
      at: { file: source.file, ...source.locate(['require-pins' in raw ? 'require-pins' : 'stream'], true) },
    },
    publish: {
      registry: raw.publish?.registry,
      github: raw.publish?.github,
      siteUrl: raw.publish?.['site-url'],
      artifactUrl: raw.publish?.['artifact-url'],
      updateUrl: raw.publish?.['update-url'],
      trust: resolveTrust(raw, root),
      ...(raw.publish?.unsigned !== undefined
        ? {
            unsigned: {
              reason: raw.publish.unsigned,
              at: { file: source.file, ...source.locate(['publish', 'unsigned']) },
            },
          }
        : {}),
    },
  };
  const imageAt = (path: string[]): Location => ({
    file: project.imageSource.file,
    ...project.imageSource.locate(path),
  });
  const services = Object.entries(img.services).map(([n, s]) => ({
    name: n,
    image: raw.services?.[n]?.image ?? s.image,
    enabled: raw.services?.[n]?.enabled ?? s.enabled ?? true,
    at:
      raw.services?.[n]?.image !== undefined
        ? { file: source.file, ...source.locate(['services', n, 'image']) }
        : imageAt(['services', n, 'image']),
  }));
  const agents = Object.entries(img.agents).map(([n, a]) => ({
    name: n,
    ...a,
    mode: raw.agents?.[n] ?? 'none',
    at: imageAt(['agents', n, 'image']),
  }));
  return {
    image,
    stream,
    services,
    agents,
    files: [relative(root, join(root, project.imageSource.file)), source.file].map((f) => f),
  };
}
