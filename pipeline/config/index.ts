// Loads manifests/image.yaml and manifests/streams/*.yaml, validates each against its JSON Schema
// and the cross-file rules, and returns typed config. Every problem in every file is reported at
// once, with file:line:col, before any work starts. The types are in types.ts, the publish.trust
// checks in trust-checks.ts; both re-exported here.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ConfigError, type ConfigIssue, type Location } from '../errors.ts';
import { baseUrlProblem, joinBaseProblem } from '../plan/zincati.ts';
import imageSchema from './schema/image.schema.json' with { type: 'json' };
import streamSchema from './schema/stream.schema.json' with { type: 'json' };
import { resolveTrust, trustChecks } from './trust-checks.ts';
import {
  type ComposefsMode,
  type ImageConfig,
  issueAt,
  type ProjectPaths,
  type RawImage,
  type RawStream,
  type ResolvedConfig,
  type StreamConfig,
} from './types.ts';
import { compileSchema, readYaml, type SourceFile, schemaIssues } from './yaml.ts';

export {
  type Agent,
  type AgentMode,
  type Arch,
  type ComposefsMode,
  type DataPath,
  type ImageConfig,
  type KargsEntry,
  type ProjectPaths,
  projectPaths,
  type ResolvedConfig,
  type Service,
  type StreamConfig,
} from './types.ts';

const validateImage = compileSchema(imageSchema);
const validateStream = compileSchema(streamSchema);

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
