// What a publish does, as data: a site plan plus the image job, the signing key and the GitHub
// release give the ordered list of actions (push each arch and the index by digest, copy and sign
// each file, the GitHub draft, sign each manifest and index per tag, move each tag, write each
// document, publish the release). Pure: `publish --plan` prints this list and apply.ts runs it,
// logging each action with its outcome, so what the plan shows is what runs.
import { dirname, join } from 'node:path';
import { ARCHES, type Arch } from '../arch.ts';
import { UsageError } from '../errors.ts';
import { sha256Digest } from '../exec/skopeo.ts';
import type { ReleaseSpec } from './github.ts';
import { type ImageTarget, type PlannedImage, renderIndex, type SignOptions } from './images.ts';
import type { Document, SitePlan } from './site-types.ts';

export const ACTIONS_SCHEMA = 'rock-image/publish-actions/1';

/** A GitHub release asset: a site file, with its sha256 and size where the plan knows them (not a .sig). */
export interface PlannedAsset {
  name: string;
  /** Path relative to the site root. */
  file: string;
  sha256?: string;
  size?: number;
}

export type Release = Omit<ReleaseSpec, 'assets'>;

export type Action =
  | { kind: 'push-image'; arch: Arch; archive: string; digest: string }
  /** The OCI index over the pushed manifests: its digest is renderIndex's, known before the push. */
  | { kind: 'push-index'; digest: string; manifests: string[] }
  | { kind: 'copy-file'; src: string; dest: string; sha256: string }
  | { kind: 'write-sums'; dest: string; sha256: string; text: string }
  /** Detached signature <file>.sig. */
  | { kind: 'sign-file'; file: string }
  | { kind: 'github-draft'; release: Release; assets: PlannedAsset[] }
  /** Simple signing of a manifest or the index for one tag's identity (<repo>:<tag>). */
  | { kind: 'sign-image'; identity: string; digest: string }
  | { kind: 'tag'; tag: string; digest: string }
  | { kind: 'write-document'; path: string; document: Document['kind'] }
  | { kind: 'github-publish'; release: Release; assets: string[] };

/** What executing an action found: it did it, or the target already held exactly that. */
export type Outcome = 'done' | 'already-present';

/**
 * The steps the JSON log marks when each is complete (`publish-step` events; tests kill the
 * process at these), in order; every action belongs to one.
 */
export const PHASES = ['images', 'artifacts', 'github-assets', 'tags', 'metadata', 'done'] as const;
export type Phase = (typeof PHASES)[number];

export const phaseOf = (a: Action): Phase => {
  switch (a.kind) {
    case 'push-image':
    case 'push-index':
      return 'images';
    case 'copy-file':
    case 'write-sums':
    case 'sign-file':
      return 'artifacts';
    case 'github-draft':
      return 'github-assets';
    case 'sign-image':
    case 'tag':
      return 'tags';
    case 'write-document':
      return 'metadata';
    case 'github-publish':
      return 'done';
  }
};

/** The images half of a publish: where to, which archives (with their manifest descriptors), tags, signing. */
export interface ImageJob {
  target: ImageTarget;
  archives: PlannedImage[];
  tags: string[];
  /** GPG simple signing (cosign is not part of a publish). */
  sign: Omit<SignOptions, 'cosignKey'>;
}

export interface ActionInput {
  plan: SitePlan;
  images?: ImageJob;
  /** GPG key for the artifacts' .sig files; without it no file is signed. */
  signBy?: string;
  github?: { spec: Release };
}

/** The version-wide SHA256SUMS (every file once, by name) beside the per-arch directories. */
export function versionSums(plan: SitePlan): { dest: string; text: string } {
  const dir = dirname(dirname(plan.files[0]?.dest ?? '.'));
  return {
    dest: join(dir, 'SHA256SUMS'),
    text: [...new Set(plan.files.map((f) => `${f.sha256}  ${f.name}\n`))].join(''),
  };
}

/** The repository image signatures name (host/repo), when the job signs. */
export function identityRepoOf(job: ImageJob): string | undefined {
  if (!job.sign.gpgKey) return undefined;
  const repo =
    job.sign.identity ??
    (job.target.repo.startsWith('docker://') ? job.target.repo.slice('docker://'.length) : undefined);
  if (!repo)
    throw new UsageError(`signing ${job.target.repo} needs the identity (registry/repo) it is published as`);
  return repo;
}

/** The actions of a publish (or a promote), in the order apply.ts runs them. */
export function planActions(input: ActionInput): Action[] {
  const { plan } = input;
  const out: Action[] = [];
  const job = input.images;
  let index: string | undefined;
  let digests: string[] = [];
  if (job) {
    if (job.archives.length === 0) throw new UsageError('no images to publish');
    const archives = [...job.archives].sort((a, b) => ARCHES.indexOf(a.arch) - ARCHES.indexOf(b.arch));
    for (const a of archives)
      out.push({ kind: 'push-image', arch: a.arch, archive: a.archive, digest: a.digest });
    index = sha256Digest(renderIndex(archives));
    digests = archives.map((a) => a.digest);
    out.push({ kind: 'push-index', digest: index, manifests: digests });
  }

  for (const f of plan.files) out.push({ kind: 'copy-file', src: f.src, dest: f.dest, sha256: f.sha256 });
  const all = versionSums(plan);
  for (const s of [...plan.sums, all])
    out.push({ kind: 'write-sums', dest: s.dest, sha256: sha256Digest(s.text).slice(7), text: s.text });
  const signed = Boolean(input.signBy);
  if (signed)
    for (const file of [...plan.files.map((f) => f.dest), ...plan.sums.map((s) => s.dest), all.dest])
      out.push({ kind: 'sign-file', file });

  const assets: PlannedAsset[] = [];
  for (const f of plan.files) {
    if (assets.some((a) => a.name === f.name)) continue;
    assets.push({ name: f.name, file: f.dest, sha256: f.sha256, size: f.size });
    if (signed) assets.push({ name: `${f.name}.sig`, file: `${f.dest}.sig` });
  }
  assets.push({
    name: 'SHA256SUMS',
    file: all.dest,
    sha256: sha256Digest(all.text).slice(7),
    size: Buffer.byteLength(all.text),
  });
  if (signed) assets.push({ name: 'SHA256SUMS.sig', file: `${all.dest}.sig` });
  if (input.github) out.push({ kind: 'github-draft', release: input.github.spec, assets });

  if (job && index) {
    const repo = identityRepoOf(job);
    if (repo)
      for (const digest of [...digests, index])
        for (const tag of job.tags) out.push({ kind: 'sign-image', identity: `${repo}:${tag}`, digest });
    for (const tag of job.tags) out.push({ kind: 'tag', tag, digest: index });
  }

  for (const d of plan.documents) out.push({ kind: 'write-document', path: d.path, document: d.kind });
  if (input.github)
    out.push({ kind: 'github-publish', release: input.github.spec, assets: assets.map((a) => a.name) });
  return out;
}
