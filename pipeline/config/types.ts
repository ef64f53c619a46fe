// The typed configuration the loader returns (image, streams, services, agents, paths), the raw
// manifest shapes its checks read, and where an issue in a manifest is (issueAt).
import { join } from 'node:path';
import type { Arch } from '../arch.ts';
import type { ConfigIssue, Location } from '../errors.ts';
import type { TrustConfig } from '../plan/trust.ts';
import type { SourceFile } from './yaml.ts';

export type { Arch };
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

export interface RawImage {
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

export interface RawStream {
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

export function issueAt(
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
